"""A small byte-level BPE tokenizer trained deterministically on the built-in corpus.

Saved the way Hugging Face saves a fast tokenizer (``tokenizer.json`` plus
``tokenizer_config.json``), so both ``tokenizers.Tokenizer.from_file`` and
``transformers.AutoTokenizer`` / ``PreTrainedTokenizerFast`` load it. Encoding adds the
beginning-of-sequence token, as Llama-style tokenizers do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tttv2.testing.hf.corpus import CORPUS

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN)  # ids 0 and 1
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)  # the byte alphabet plus the special tokens


def train_tokenizer(vocab_size: int) -> Any:
    """A ``tokenizers.Tokenizer`` with at most ``vocab_size`` tokens (fewer if the corpus
    runs out of merges); ``<s>`` is id 0, ``</s>`` id 1."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for a byte-level tokenizer: it needs at least "
            f"{MIN_VOCAB_SIZE} (256 bytes + {len(SPECIAL_TOKENS)} special tokens); pass a larger vocab_size "
            "or with_tokenizer=False"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    bos = tok.token_to_id(BOS_TOKEN)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, bos)],
    )
    return tok


def save_tokenizer(tokenizer: Any, folder: str | Path, model_max_length: int) -> None:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` into ``folder``."""
    folder = Path(folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",  # resolves in transformers 4.x and 5.x
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
