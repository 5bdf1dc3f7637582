"""Default parameters as data.

``DEFAULT_RULES`` is an ordered list of ``(selector, values)``. A selector is
``(device_type, mode, op)`` where ``"*"`` matches anything; every rule whose selector
matches is applied in order, so later (more specific) rules win. A value ``"$name"`` is
read from the :class:`~tttv2.hw.device.config.DeviceConfig` attribute ``name``
(e.g. ``"$preferred_dtype"``: bf16 where the device computes in bf16 natively).

Where the figures come from:

* CPU: PERF_NOTES (2-core Zen 4): torch.compile costs 45-71 s and helps only small bf16
  models, so compile and graph capture stay off; bf16 only where the ISA has native bf16
  dot products (AVX-512-BF16, AMX, Arm BF16), fp32 otherwise. Batched decode of 8 gives
  about 5x the aggregate tokens/s of batch 1, hence ``decode_batch_size`` 8.
* CUDA: paged blocks of 16 tokens (vLLM's default); decode is captured as a CUDA graph
  (gpt-fast, vLLM); graph capture needs static shapes, so MoE decode runs dense.
* Tenstorrent: figures cited in :mod:`tttv2.hw.device.tenstorrent` (block size 32, decode
  batch 32, prefill row cut-off per architecture; bfloat8_b weights and KV cache as in
  tt-transformers' performance mode, the ``performance`` precision preset: bfloat4_b FFN
  w1/w3, see :mod:`tttv2.hw.precision.policy`); decode is captured as a ttnn trace.
"""

from __future__ import annotations

from typing import Any

Selector = tuple[str, str, str]

#: Knob -> value for every device, mode and op; later rules refine it.
BASE: dict[str, Any] = {
    "compute_dtype": "$preferred_dtype",
    "weight_dtype": "$preferred_dtype",
    "kv_cache_dtype": "$preferred_dtype",
    "num_threads": "$num_threads",
    "compile": False,
    "capture_graph": False,
    "kernel": "sdpa",
    "kv_block_size": 16,
    "prefill_chunk_size": 2048,
    "fuse_qkv": True,
    "fuse_gate_up": True,
    "prefill_row_chunk": None,
    "accumulate_dtype": "float32",
    "table_dtype": "float32",
    "expert_dispatch": "sorted",
    "logits_dtype": "float32",
    "vocab_chunk_size": None,
    "layout": "paged",
    "decode_batch_size": 8,
    "fuse_decode_layers": True,
    "precision": None,
}

DEFAULT_RULES: list[tuple[Selector, dict[str, Any]]] = [
    (("*", "*", "*"), BASE),
    # -- modes, any device ---------------------------------------------------------------
    (("*", "decode", "*"), {"kernel": "paged_decode"}),
    (("*", "continuous_batch", "*"), {"kernel": "paged_decode"}),
    (("*", "long_context", "*"), {"prefill_chunk_size": 1024}),
    (("*", "long_context", "lm_head"), {"vocab_chunk_size": 32768}),
    # -- CPU --------------------------------------------------------------------------
    (("cpu", "*", "*"), {"decode_batch_size": 8}),
    # -- CUDA -------------------------------------------------------------------------
    (("cuda", "*", "*"), {"prefill_chunk_size": 8192, "decode_batch_size": 64}),
    (("cuda", "long_context", "*"), {"prefill_chunk_size": 4096}),
    (("cuda", "decode", "*"), {"capture_graph": True}),
    (("cuda", "decode", "moe"), {"expert_dispatch": "dense"}),
    # -- Apple MPS ----------------------------------------------------------------------
    (("mps", "*", "*"), {"prefill_chunk_size": 2048, "decode_batch_size": 8}),
    # -- Tenstorrent --------------------------------------------------------------------
    (
        ("tt", "*", "*"),
        {
            "kv_block_size": 32,
            "kv_cache_dtype": "bfloat8_b",
            "weight_dtype": "bfloat8_b",
            "table_dtype": "bfloat16",
            "prefill_chunk_size": 4096,
            "prefill_row_chunk": "$prefill_len_cutoff",
            "decode_batch_size": 32,
            "precision": "performance",
        },
    ),
    (("tt", "long_context", "*"), {"prefill_chunk_size": 2048}),
    (("tt", "decode", "*"), {"capture_graph": True}),
    (("tt", "decode", "moe"), {"expert_dispatch": "dense"}),
]

#: ModelParams fields that take the value of a differently named knob.
FIELD_ALIASES = {"attention_kernel": "kernel"}

#: MoE with more experts than this never runs dense (every expert on every token).
DENSE_MOE_MAX_EXPERTS = 8


def matches(selector: Selector, device_type: str, mode: str, op: str) -> bool:
    return all(s in ("*", v) for s, v in zip(selector, (device_type, mode, op), strict=True))
