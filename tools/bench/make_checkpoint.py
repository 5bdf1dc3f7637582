"""Random checkpoints at real model sizes, written one tensor at a time.

The benchmarks need checkpoints at the sizes of real models, and nothing can be downloaded,
so they are made here: a Hugging Face folder (``config.json``, ``*.safetensors`` shards and
``model.safetensors.index.json`` when there are several) with random weights, normal(0,
``initializer_range``) as transformers initialises its models, norms at one (zero for the
families whose RMSNorm scales by ``1 + w``: Gemma), biases at zero. Names and shapes come from
transformers' own model class for the shape's ``model_type`` (Llama unless a shape names
another) built on the meta device, so the folder is exactly what
``save_pretrained`` would write (a tied head is not stored), but no model is materialised:
memory holds one shard at a time, not the fp32 model (32 GB for Llama-3.1-8B). The folder is
written under a temporary name and renamed when complete; an existing complete folder is
reused. ``--tokenizer`` adds a real byte-level BPE tokenizer (``tokenizer.json``, trained on
tttv2-testing's built-in corpus, then filled up to the model's vocabulary with tokens that
decode to short lowercase words, so every token a random model samples streams as text) and
points ``config.json``'s ``bos_token_id`` / ``eos_token_id`` at it: what the HTTP servers need.

    uv run python tools/bench/make_checkpoint.py llama-3.1-8b          # prints the folder
    uv run tttv2 bench --checkpoint "$(uv run python tools/bench/make_checkpoint.py llama-3.2-1b)" \\
        --device cuda --dtype bfloat16 --compile --batch 32            # issue 10, target 5
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

#: Config arguments at real models' sizes: the CPU suite's two (bench_model.py), Llama-3.1-8B,
#: which only GPU runs need (target 5 of issue 10), and other families. ``model_type`` (default
#: ``llama``) picks transformers' config and model class; ``norm_weight`` (default 1.0, not a
#: config key) is the value norms are written with.
SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, head_dim=64, vocab_size=49152, tie_word_embeddings=True,
        rope_theta=100000.0, rms_norm_eps=1e-5, max_position_embeddings=8192,
    ),
    "llama-3.2-1b": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
        rope_theta=500000.0, rms_norm_eps=1e-5, max_position_embeddings=131072,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    ),
    "llama-3.1-8b": dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False,
        rope_theta=500000.0, rms_norm_eps=1e-5, max_position_embeddings=131072,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    ),
    # The other dense families at their published sizes (config.json of Qwen/Qwen2.5-0.5B,
    # google/gemma-2-2b, microsoft/Phi-3-mini-4k-instruct): issue 24's decode benchmarks.
    "qwen2.5-0.5b": dict(
        model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
        rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=32768,
        use_sliding_window=False, sliding_window=32768, max_window_layers=24,
    ),
    "gemma-2-2b": dict(
        model_type="gemma2", norm_weight=0.0, hidden_size=2304, intermediate_size=9216,
        num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
        vocab_size=256000, tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-6,
        max_position_embeddings=8192, query_pre_attn_scalar=256, sliding_window=4096,
        attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
        hidden_activation="gelu_pytorch_tanh",
    ),
    "phi-3-mini": dict(
        model_type="phi3", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, vocab_size=32064,
        tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-5,
        max_position_embeddings=4096, original_max_position_embeddings=4096, sliding_window=2047,
        hidden_act="silu",
    ),
    # (Qwen/Qwen3-0.6B, google/gemma-3-1b-pt, openai-community/gpt2): the README's speed column
    "qwen3-0.6b": dict(
        model_type="qwen3", hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=151936,
        tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6,
        max_position_embeddings=40960,
    ),
    "gemma-3-1b": dict(
        model_type="gemma3_text", norm_weight=0.0, hidden_size=1152, intermediate_size=6912,
        num_hidden_layers=26, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
        vocab_size=262144, tie_word_embeddings=True, rope_theta=1000000.0,
        rope_local_base_freq=10000.0, rms_norm_eps=1e-6, max_position_embeddings=32768,
        query_pre_attn_scalar=256, sliding_window=512, sliding_window_pattern=6,
        final_logit_softcapping=None, attn_logit_softcapping=None,
    ),
    "gpt2-124m": dict(
        model_type="gpt2", n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257,
    ),
    # Mixture-of-experts models at their published per-layer sizes, cut to a few layers so the
    # checkpoint fits beside transformers' copy in 24 GB (mistralai/Mixtral-8x7B-v0.1: 32 layers;
    # Qwen/Qwen3-30B-A3B: 48): issue 25's benchmarks.
    "mixtral-8x7b-2l": dict(
        model_type="mixtral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=2,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=32000, tie_word_embeddings=False,
        rope_theta=1000000.0, rms_norm_eps=1e-5, max_position_embeddings=32768, sliding_window=None,
        num_local_experts=8, num_experts_per_tok=2,
    ),
    "qwen3-30b-a3b-4l": dict(
        model_type="qwen3_moe", hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768,
        num_hidden_layers=4, num_attention_heads=32, num_key_value_heads=4, head_dim=128,
        vocab_size=151936, tie_word_embeddings=False, rope_theta=1000000.0, rms_norm_eps=1e-6,
        max_position_embeddings=40960, num_experts=128, num_experts_per_tok=8, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[],
    ),
}  # fmt: skip
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
INDEX = "model.safetensors.index.json"
#: Tensor names of norm weights (RMSNorm, LayerNorm; GPT-2 names them ``ln_1``, ``ln_2``, ``ln_f``).
NORM_SUFFIXES = ("norm.weight", ".ln_1.weight", ".ln_2.weight", ".ln_f.weight")


def write_checkpoint(folder: Path, config: dict[str, Any], dtype: torch.dtype = torch.bfloat16,
                     shard_bytes: int = 2 << 30, seed: int = 0, progress: bool = False) -> Path:  # fmt: skip
    """A random checkpoint for ``config`` (an entry of :data:`SHAPES`: config keyword arguments,
    ``model_type`` and ``norm_weight`` optional) in ``folder``, which must not exist yet.
    Returns ``folder``."""
    import transformers
    from safetensors.torch import save_file

    if folder.exists():
        raise FileExistsError(f"{folder} exists: remove it or choose another folder")
    kwargs = dict(config)
    model_type = kwargs.pop("model_type", "llama")
    norm_weight = float(kwargs.pop("norm_weight", 1.0))
    cfg = transformers.AutoConfig.for_model(
        model_type, **kwargs, dtype=str(dtype).removeprefix("torch.")
    )
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    # save_pretrained records the model class; loaders read it
    cfg.architectures = [type(model).__name__]
    shapes = {name: tuple(t.shape) for name, t in _saved_layout(model).items()}
    del model
    if cfg.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)  # save_pretrained stores a tied head once
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg.save_pretrained(tmp)
    gen = torch.Generator().manual_seed(seed)
    shards: list[list[str]] = []  # tensor names per written shard
    shard: dict[str, torch.Tensor] = {}
    size, written, start = 0, 0, time.perf_counter()
    total = sum(math.prod(s) for s in shapes.values()) * dtype.itemsize

    def flush() -> None:
        shards.append(list(shard))
        save_file(
            shard, str(tmp / f"shard-{len(shards):05d}.safetensors"), metadata={"format": "pt"}
        )
        shard.clear()

    for name, shape in shapes.items():
        nbytes = math.prod(shape) * dtype.itemsize
        if shard and size + nbytes > shard_bytes:
            flush()
            size = 0
        if name.endswith(NORM_SUFFIXES):
            shard[name] = torch.full(shape, norm_weight, dtype=dtype)
        elif name.endswith(".bias"):
            shard[name] = torch.zeros(shape, dtype=dtype)
        else:
            values = torch.empty(shape, dtype=torch.float32).normal_(
                0.0, cfg.initializer_range, generator=gen
            )
            shard[name] = values.to(dtype)
        size += nbytes
        written += nbytes
        if progress and written * 20 // total > (written - nbytes) * 20 // total:  # every 5%
            print(
                f"\rwriting {written / 2**30:.1f} / {total / 2**30:.1f} GiB",
                end="",
                file=sys.stderr,
                flush=True,
            )
    flush()
    _name_shards(tmp, shards, total)
    if progress:
        print(
            f"\rwritten {total / 2**30:.1f} GiB in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
    tmp.rename(folder)
    return folder


def _saved_layout(model: Any) -> dict[str, torch.Tensor]:
    """The model's tensors under the names and shapes ``save_pretrained`` writes (meta tensors:
    nothing is materialised). transformers 5 keeps some weights in another layout in memory
    than on disk (mixture-of-experts experts stacked into one tensor, saved one per expert) and
    reverts them on saving; checkpoints on the hub have the saved layout."""
    state = model.state_dict()
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:  # a transformers without load-time conversions: memory is the saved layout
        return dict(state)
    return dict(revert_weight_conversion(model, state))


def _name_shards(folder: Path, shards: list[list[str]], total: int) -> None:
    """Hugging Face names: ``model.safetensors`` alone, else ``model-0000i-of-0000n`` and the index."""
    if len(shards) == 1:
        (folder / "shard-00001.safetensors").rename(folder / "model.safetensors")
        return
    weight_map = {}
    for i, names in enumerate(shards, start=1):
        final = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        (folder / f"shard-{i:05d}.safetensors").rename(folder / final)
        weight_map.update(dict.fromkeys(names, final))
    (folder / INDEX).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )


def fill_vocab(vocab: dict[str, int], size: int) -> dict[str, int]:
    """``vocab`` (token -> id) with ids ``len(vocab)`` .. ``size - 1`` added as byte-level
    strings of a space and two to four lowercase letters: no merge produces them, so encoding
    is unchanged, but each decodes to a word (a random model samples ids across the whole
    vocabulary; ids the tokenizer lacks decode to nothing, and stream nothing)."""
    import itertools
    import string

    filled = dict(vocab)
    words = (
        "\u0120" + "".join(letters)  # byte-level "Ġ" is the space byte
        for n in (2, 3, 4)
        for letters in itertools.product(string.ascii_lowercase, repeat=n)
    )
    for word in words:
        if len(filled) >= size:
            break
        filled.setdefault(word, len(filled))
    return filled


def add_tokenizer(folder: Path) -> Path:
    """Give ``folder`` a byte-level BPE tokenizer (tttv2.testing.hf.tokenizer: ``<s>`` id 0,
    ``</s>`` id 1, at most the model's vocabulary) unless it has ``tokenizer.json``, and set
    ``config.json``'s ``bos_token_id`` / ``eos_token_id`` to its special tokens."""
    from tttv2.testing.hf.tokenizer import BOS_TOKEN, EOS_TOKEN, save_tokenizer, train_tokenizer

    if (folder / "tokenizer.json").is_file():
        return folder
    from tokenizers import Tokenizer

    config = json.loads((folder / "config.json").read_text())
    trained = json.loads(train_tokenizer(int(config["vocab_size"])).to_str())
    trained["model"]["vocab"] = fill_vocab(trained["model"]["vocab"], int(config["vocab_size"]))
    tokenizer = Tokenizer.from_str(json.dumps(trained))
    config["bos_token_id"] = tokenizer.token_to_id(BOS_TOKEN)
    config["eos_token_id"] = tokenizer.token_to_id(EOS_TOKEN)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tmp = folder / ".tokenizer.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tokenizer(
        tokenizer, tmp, model_max_length=int(config.get("max_position_embeddings", 2048))
    )
    (tmp / "tokenizer_config.json").rename(folder / "tokenizer_config.json")
    (tmp / "tokenizer.json").rename(
        folder / "tokenizer.json"
    )  # last: its presence marks the folder complete
    tmp.rmdir()
    return folder


def checkpoint(shape: str, cache_dir: Path, dtype: torch.dtype = torch.bfloat16, progress: bool = False,
               tokenizer: bool = False) -> Path:  # fmt: skip
    """The folder of ``shape``'s random checkpoint under ``cache_dir``, written on first use;
    with ``tokenizer``, also its tokenizer (:func:`add_tokenizer`)."""
    folder = cache_dir / (
        shape if dtype == torch.bfloat16 else f"{shape}-{str(dtype).removeprefix('torch.')}"
    )
    if not ((folder / "config.json").is_file() and any(folder.glob("*.safetensors"))):
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_checkpoint(folder, SHAPES[shape], dtype, progress=progress)
    return add_tokenizer(folder) if tokenizer else folder


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Write (or find) a random checkpoint at a real model's sizes (Llama, Qwen2.5, Gemma 2, Phi-3 shapes) and print its folder.",
    )
    p.add_argument("shape", choices=sorted(SHAPES), help="model sizes")
    p.add_argument(
        "--dtype", default="bfloat16", choices=sorted(DTYPES), help="(default: %(default)s)"
    )
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "tttv2-bench-checkpoints",
                   help="where checkpoints are kept (default: %(default)s)")  # fmt: skip
    p.add_argument("--tokenizer", action="store_true",
                   help="also write a real byte-level BPE tokenizer (tokenizer.json, trained on a small built-in "
                   "corpus; needs tttv2-testing), as `tttv2 serve` and `transformers serve` require")  # fmt: skip
    args = p.parse_args(argv)
    print(
        checkpoint(
            args.shape, args.cache_dir, DTYPES[args.dtype], progress=True, tokenizer=args.tokenizer
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
