"""The built-in text the tiny tokenizers are trained on (written for this project).

Mixed prose, code and numbers so the byte-level BPE learns merges of several kinds; the
text is fixed, so the trained tokenizer is the same on every machine.
"""

CORPUS: tuple[str, ...] = (
    "A transformer reads a sequence of tokens and predicts the next one. Each layer mixes "
    "information between positions with attention and then transforms every position on its "
    "own with a feed-forward network.",
    "The key and value of every token are kept in a cache, so that decoding one more token "
    "only computes attention for that token against everything that came before it.",
    "Prefill processes the whole prompt at once; decode produces one token per step. Both "
    "must agree: decoding token t after prefilling the tokens before it gives the same "
    "hidden state as prefilling all of them.",
    "Rotary position embeddings rotate pairs of channels of the query and the key by an angle "
    "that grows with the position, so the score of two tokens depends on their distance.",
    "Normalization keeps activations in a stable range: RMSNorm divides by the root mean "
    "square, LayerNorm also subtracts the mean and may add a bias.",
    "The quick brown fox jumps over the lazy dog. The five boxing wizards jump quickly. "
    "Pack my box with five dozen liquor jugs. How vexingly quick daft zebras jump!",
    "def forward(self, x):\n    h = x + self.attention(self.attn_norm(x))\n    "
    "return h + self.mlp(self.ffn_norm(h))\n",
    "for step in range(16):\n    logits = model(tokens)\n    tokens.append(int(logits[-1].argmax()))\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 16 32 64 128 256 512 1024 2048 4096 8192 3.14159 2.71828",
    "Mixture-of-experts layers route each token to a few experts chosen by a router; the "
    "outputs of the chosen experts are weighted by the router's probabilities and summed.",
    "Greedy decoding always picks the most likely next token; sampling draws it from the "
    "distribution, optionally limited to the top k tokens or to a nucleus of probability p.",
    "Quantities in bfloat16 keep the exponent range of float32 with only eight bits of "
    "mantissa, which is why results are compared by their correlation, not bit for bit.",
)
