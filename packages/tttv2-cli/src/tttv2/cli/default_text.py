"""The text the built-in checkpoint is trained on (written for this project, free to use).

Each paragraph is one training sequence, starting with the tokenizer's beginning-of-sequence
token and ending with its end-of-sequence token, so that a prompt that opens a paragraph is
continued with the rest of it. The first one continues the default prompt of ``tttv2
generate``. Changing the text changes the checkpoint: bump ``NAME`` in
:mod:`tttv2.cli.default_checkpoint`.
"""

PARAGRAPHS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog, and the dog does not mind: it has watched "
    "the fox do this every morning for years.",
    "Once upon a time there was a small model that had read only one page of text. It could "
    "not answer questions, but it could finish the sentences it had read.",
    "Hello, world! This is the built-in checkpoint of the tttv2 command. Give it a real "
    "checkpoint to read real text.",
)
