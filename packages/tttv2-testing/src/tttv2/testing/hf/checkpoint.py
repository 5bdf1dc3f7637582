"""Tiny random Hugging Face checkpoints, built from a config dict and a seed.

``build_tiny_checkpoint(cache_dir, "LlamaForCausalLM", {...}, seed=0)`` makes a real
checkpoint folder - ``config.json``, ``generation_config.json``, ``model.safetensors``
(or shards plus ``model.safetensors.index.json`` with ``max_shard_size``),
``tokenizer.json`` and ``tokenizer_config.json`` - with ``save_pretrained``, and reuses it
when the same configuration is asked for again. Any architecture
``AutoModelForCausalLM`` supports works; the config dict is passed to its config class
on top of small defaults (:data:`TINY_DEFAULTS`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tttv2.testing.hf.tokenizer import (
    BOS_TOKEN,
    EOS_TOKEN,
    MIN_VOCAB_SIZE,
    save_tokenizer,
    train_tokenizer,
)

#: Small dimensions applied before the caller's config (keys a config class does not
#: know become plain attributes and do no harm).
TINY_DEFAULTS: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 320,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}

MARKER = "tttv2_tiny_checkpoint.json"


@dataclass(frozen=True)
class TinyCheckpoint:
    """A built checkpoint folder and what it was built from."""

    path: Path
    architecture: str
    model_type: str
    seed: int
    config: dict[str, Any]  # config.json as saved
    sharded: bool
    has_tokenizer: bool

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])

    @property
    def num_layers(self) -> int:
        return int(self.config.get("num_hidden_layers", self.config.get("n_layer", 0)))

    def load_model(
        self, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
    ) -> Any:
        """The ``transformers`` model, in eval mode."""
        from tttv2.testing.hf.reference_model import load_reference_model

        return load_reference_model(self.path, dtype, device)

    def load_tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` from ``tokenizer.json``."""
        from tokenizers import Tokenizer

        if not self.has_tokenizer:
            raise FileNotFoundError(f"{self.path} was built with with_tokenizer=False")
        return Tokenizer.from_file(str(self.path / "tokenizer.json"))


def model_type_of(architecture: str) -> str:
    """The ``model_type`` of the causal-LM class ``architecture`` (e.g. ``"llama"``).

    Read from the class's own config class: several model types may share one class
    (``internlm3`` also maps to ``LlamaForCausalLM``)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from tttv2.testing.hf.env import transformers

    if architecture in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        config_class = getattr(getattr(transformers(), architecture, None), "config_class", None)
        model_type = getattr(config_class, "model_type", None)
        if model_type:
            return model_type
        for model_type, class_name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items():
            if class_name == architecture:
                return model_type
    close = sorted(
        c
        for c in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()
        if c[:4].lower() == architecture[:4].lower()
    )
    hint = f"; similar: {', '.join(close)}" if close else ""
    raise ValueError(
        f"{architecture!r} is not a causal-LM architecture known to transformers{hint}"
    )


def checkpoint_key(
    architecture: str,
    config: dict[str, Any],
    seed: int,
    max_shard_size: int | str | None,
    dtype: torch.dtype,
    perturb_vectors: float,
    with_tokenizer: bool,
) -> str:
    """Stable hash of everything a checkpoint is built from (names its cache folder)."""
    from tttv2.testing.hf.env import transformers

    data = {
        "architecture": architecture,
        "config": config,
        "seed": seed,
        "max_shard_size": max_shard_size,
        "dtype": str(dtype),
        "perturb_vectors": perturb_vectors,
        "with_tokenizer": with_tokenizer,
        "transformers": transformers().__version__,
        "format": 1,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_tiny_checkpoint(
    cache_dir: str | Path,
    architecture: str = "LlamaForCausalLM",
    config: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    max_shard_size: int | str | None = None,
    dtype: torch.dtype = torch.float32,
    perturb_vectors: float = 0.1,
    with_tokenizer: bool = True,
) -> TinyCheckpoint:
    """Build (or reuse from ``cache_dir``) a tiny random checkpoint.

    Weights come from the architecture's own initialisation under
    ``torch.manual_seed(seed)``; then every 1-D parameter (norm weights, biases) gets
    ``N(0, perturb_vectors)`` noise, so that norms and biases are not the identity and
    zero that would hide bugs in them (``perturb_vectors=0`` keeps HF's values)."""
    merged = {**TINY_DEFAULTS, **(config or {})}
    key = checkpoint_key(
        architecture, merged, seed, max_shard_size, dtype, perturb_vectors, with_tokenizer
    )
    cache_dir = Path(cache_dir)
    folder = cache_dir / f"{architecture}-{key}"
    if (folder / MARKER).is_file():
        return _describe(folder)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache_dir))
    try:
        _build(
            tmp, architecture, merged, seed, max_shard_size, dtype, perturb_vectors, with_tokenizer
        )
        (tmp / MARKER).write_text(
            json.dumps(
                {
                    "architecture": architecture,
                    "seed": seed,
                    "key": key,
                    "with_tokenizer": with_tokenizer,
                }
            )
            + "\n"
        )
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same checkpoint first
            if not (folder / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _describe(folder)


def _build(
    folder: Path,
    architecture: str,
    config: dict[str, Any],
    seed: int,
    max_shard_size: int | str | None,
    dtype: torch.dtype,
    perturb_vectors: float,
    with_tokenizer: bool,
) -> None:
    from tttv2.testing.hf.env import transformers

    tf = transformers()
    model_type = model_type_of(architecture)
    vocab_size = int(config["vocab_size"])
    special: dict[str, int] = {}
    if with_tokenizer:
        if vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(
                f"vocab_size={vocab_size} is below {MIN_VOCAB_SIZE}, the smallest byte-level BPE vocabulary; "
                "raise it or pass with_tokenizer=False"
            )
        tokenizer = train_tokenizer(vocab_size)
        special = {
            "bos_token_id": tokenizer.token_to_id(BOS_TOKEN),
            "eos_token_id": tokenizer.token_to_id(EOS_TOKEN),
        }
    hf_config = tf.AutoConfig.for_model(model_type, **{**special, **config})
    hf_config.architectures = [architecture]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tf.AutoModelForCausalLM.from_config(hf_config)
        if perturb_vectors:
            gen = torch.Generator().manual_seed(seed + 1)
            with torch.no_grad():
                for _, param in sorted(model.named_parameters(), key=lambda item: item[0]):
                    if param.dim() == 1:
                        param.add_(torch.randn(param.shape, generator=gen) * perturb_vectors)
    model = model.to(dtype).eval()
    kwargs: dict[str, Any] = {}
    if max_shard_size is not None:
        kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(folder, **kwargs)
    if with_tokenizer:
        save_tokenizer(
            tokenizer, folder, model_max_length=int(config.get("max_position_embeddings", 2048))
        )
    if not (folder / "generation_config.json").is_file():  # architectures that cannot generate
        tf.GenerationConfig.from_model_config(hf_config).save_pretrained(folder)


def _describe(folder: Path) -> TinyCheckpoint:
    marker = json.loads((folder / MARKER).read_text())
    config = json.loads((folder / "config.json").read_text())
    return TinyCheckpoint(
        path=folder,
        architecture=marker["architecture"],
        model_type=config.get("model_type", ""),
        seed=marker["seed"],
        config=config,
        sharded=(folder / "model.safetensors.index.json").is_file(),
        has_tokenizer=marker["with_tokenizer"],
    )
