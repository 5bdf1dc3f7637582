"""Hugging Face reference adapter: tiny random checkpoints and the outputs of
``transformers`` on them. Needs the ``hf`` extra (transformers, tokenizers); importing
this module switches the Hugging Face libraries to offline mode (nothing is downloaded)."""

from tttv2.testing.hf.env import offline

offline()

from tttv2.testing.hf.checkpoint import (  # noqa: E402
    TINY_DEFAULTS,
    TinyCheckpoint,
    build_tiny_checkpoint,
    checkpoint_key,
    model_type_of,
)
from tttv2.testing.hf.reference import HFReference, find_decoder_layers, reference_outputs  # noqa: E402
from tttv2.testing.hf.reference_model import (  # noqa: E402
    RemoteCodeRefusedError,
    load_reference_model,
    reference_files,
)
from tttv2.testing.hf.tokenizer import BOS_TOKEN, EOS_TOKEN, save_tokenizer, train_tokenizer  # noqa: E402

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "TINY_DEFAULTS",
    "HFReference",
    "RemoteCodeRefusedError",
    "TinyCheckpoint",
    "build_tiny_checkpoint",
    "checkpoint_key",
    "find_decoder_layers",
    "load_reference_model",
    "model_type_of",
    "reference_files",
    "reference_outputs",
    "save_tokenizer",
    "train_tokenizer",
]
