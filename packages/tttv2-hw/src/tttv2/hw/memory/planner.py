"""How many KV-cache blocks, and what batch x context, fit on a device after the weights.

Budget = device memory - weights - reserve. The reserve covers activations of one prefill
chunk, the logits of a decode batch, and a fraction of the device kept for the runtime
(allocator slack, CUDA context); pass ``reserve_bytes`` to set it yourself. Sizes in
messages are decimal GB (10^9 bytes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tttv2.core.errors import InputError, TTTv2Error
from tttv2.core.specs import ModelSpec, MoESpec
from tttv2.hw.dtypes import dtype_bytes, dtype_name
from tttv2.hw.memory.param_count import ModelParamCount, count_params, kv_bytes_per_token


class DeviceConfig(Protocol):
    """What planning reads of a :class:`tttv2.hw.DeviceConfig`."""

    @property
    def name(self) -> str: ...
    @property
    def profile(self) -> str: ...
    @property
    def memory_available_bytes(self) -> int: ...
    def get_optimal_params(self, op: str, mode: Any, spec: Any = None) -> Any: ...


GB = 10**9
DEFAULT_RUNTIME_FRACTION = 0.05


class MemoryPlanError(InputError, TTTv2Error, ValueError):
    """The model does not fit the device; the message names the sizes."""


@dataclass(frozen=True)
class MemoryPlan:
    """Where a device's memory goes for one model. Bytes unless named otherwise."""

    device: str
    memory_bytes: int
    weight_dtype: str
    kv_dtype: str
    num_params: int
    weight_bytes: int
    reserve_bytes: int
    kv_budget_bytes: int
    kv_bytes_per_token: int
    block_size: int
    num_blocks: int
    context_len: int
    params: ModelParamCount

    @property
    def kv_bytes_per_block(self) -> int:
        return self.kv_bytes_per_token * self.block_size

    @property
    def max_tokens(self) -> int:
        """Tokens the KV cache holds, over all sequences."""
        return self.num_blocks * self.block_size

    @property
    def max_batch(self) -> int:
        """Sequences of ``context_len`` tokens that fit at once."""
        return self.max_batch_at(self.context_len)

    def max_batch_at(self, context_len: int) -> int:
        """Sequences of ``context_len`` tokens that fit at once (0 when not even one does)."""
        _require_positive("max_batch_at", "context_len", context_len)
        return self.num_blocks // math.ceil(context_len / self.block_size)

    def max_context_at(self, batch: int) -> int:
        """Longest context each of ``batch`` sequences can reach (whole blocks)."""
        _require_positive("max_context_at", "batch", batch)
        return (self.num_blocks // batch) * self.block_size

    def summary(self) -> str:
        return (
            f"{self.device}: {self.memory_bytes / GB:.2f} GB = weights {self.weight_bytes / GB:.2f} GB "
            f"({self.num_params / 1e9:.2f}B params, {self.weight_dtype}) + reserve {self.reserve_bytes / GB:.2f} GB "
            f"+ KV {self.kv_budget_bytes / GB:.2f} GB -> {self.num_blocks} blocks of {self.block_size} tokens "
            f"({self.kv_bytes_per_token} B/token, {self.kv_dtype}) = {self.max_tokens} tokens; "
            f"batch {self.max_batch} at context {self.context_len}"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = {
            "embedding": self.params.embedding,
            "attention": self.params.attention,
            "ffn": self.params.ffn,
            "norms": self.params.norms,
            "lm_head": self.params.lm_head,
        }
        data.update(
            max_tokens=self.max_tokens,
            max_batch=self.max_batch,
            kv_bytes_per_block=self.kv_bytes_per_block,
        )
        return data


def activation_bytes(
    spec: ModelSpec, chunk_tokens: int, logit_rows: int, bytes_per_element: float
) -> int:
    """Peak activations of one prefill chunk (residual stream, normed input, attention and
    MLP outputs, the widest intermediate) plus fp32 logits for ``logit_rows`` rows, plus
    fp32 attention scores of one chunk when a layer needs explicit (soft-capped) attention."""
    widest = spec.hidden_dim
    scores = 0
    for layer in spec.layers:
        att = layer.attention
        qkv = (att.num_heads + 2 * att.num_kv_heads) * att.head_dim  # type: ignore[operator]
        ffn = layer.ffn
        inter = (
            ffn.expert.intermediate_dim * ffn.top_k
            if isinstance(ffn, MoESpec)
            else ffn.intermediate_dim
        )
        widest = max(widest, qkv, 2 * inter)
        if att.logit_softcap is not None:
            scores = max(scores, att.num_heads * chunk_tokens * chunk_tokens * 4)
    hidden = 4 * spec.hidden_dim + widest
    return (
        int(chunk_tokens * hidden * bytes_per_element) + logit_rows * spec.vocab_size * 4 + scores
    )


def plan_memory(
    spec: ModelSpec,
    *,
    device: DeviceConfig | None = None,
    memory_bytes: int | None = None,
    weight_dtype: str | None = None,
    kv_dtype: str | None = None,
    block_size: int | None = None,
    context_len: int | None = None,
    reserve_bytes: int | None = None,
    runtime_fraction: float = DEFAULT_RUNTIME_FRACTION,
    precision: str | None = None,
) -> MemoryPlan:
    """Plan ``spec`` on ``device`` (detected when None).

    Unset arguments come from the device: ``memory_bytes`` (available memory), the weight
    dtype from ``device.get_optimal_params("model", "decode", spec)``, and the KV dtype and
    block size from the ``kv_cache`` op's decode parameters (what tttv2-blocks' paged cache
    reads, so one override moves both). ``context_len`` defaults to ``spec.max_seq_len``. Raises
    :class:`MemoryPlanError` naming the sizes when the weights and the reserve do not fit.
    ``precision`` (default: the model decode parameters' ``precision`` unless
    ``weight_dtype`` is passed) counts each weight in its preset's format, packed
    (:func:`tttv2.hw.precision.weight_bytes.policy_weight_bytes`), instead of ``weight_dtype``.
    """
    if device is None:
        from tttv2.hw.device.config import DeviceConfig as Detected

        device = Detected.auto_detect()
    decode = device.get_optimal_params("model", "decode", spec)
    prefill = device.get_optimal_params("model", "prefill", spec)
    cache = device.get_optimal_params("kv_cache", "decode")  # what the paged cache itself reads
    memory = int(memory_bytes if memory_bytes is not None else device.memory_available_bytes)
    w_dtype = dtype_name(weight_dtype or decode.weight_dtype)  # type: ignore[union-attr]
    k_dtype = dtype_name(kv_dtype or cache.kv_cache_dtype)  # type: ignore[union-attr]
    block = block_size if block_size is not None else cache.kv_block_size  # type: ignore[union-attr]
    context = context_len if context_len is not None else spec.max_seq_len
    for name, value in (("memory_bytes", memory), ("block_size", block), ("context_len", context)):
        _require_positive("plan_memory", name, value)
    if reserve_bytes is not None and reserve_bytes < 0:
        raise ValueError(f"plan_memory: reserve_bytes={reserve_bytes} must be >= 0")

    params = count_params(spec)
    policy_name = precision
    if policy_name is None and weight_dtype is None:
        policy_name = getattr(decode, "precision", None)
    if policy_name is not None:
        from tttv2.hw.precision.policy import get_precision_policy
        from tttv2.hw.precision.weight_bytes import policy_weight_bytes

        weights = policy_weight_bytes(spec, get_precision_policy(policy_name))
        w_dtype = f"precision {policy_name}"
    else:
        weights = math.ceil(params.total * dtype_bytes(w_dtype))
    if reserve_bytes is None:
        act = activation_bytes(
            spec,
            prefill.prefill_chunk_size,  # type: ignore[union-attr]
            decode.decode_batch_size,  # type: ignore[union-attr]
            dtype_bytes(prefill.compute_dtype),
        )
        reserve_bytes = act + int(memory * runtime_fraction)
    if weights + reserve_bytes > memory:
        raise MemoryPlanError(
            f"{device.profile} ({device.name}): model weights need {weights / GB:.2f} GB "
            f"({params.total / 1e9:.2f}B parameters in {w_dtype}) but only "
            f"{(memory - reserve_bytes) / GB:.2f} GB of the device's {memory / GB:.2f} GB remain after "
            f"reserving {reserve_bytes / GB:.2f} GB for activations and runtime; use a smaller weight "
            "dtype or a device with more memory (the plan is per device: weights are not sharded)"
        )
    per_token = math.ceil(kv_bytes_per_token(spec, dtype_bytes(k_dtype)))
    budget = memory - weights - reserve_bytes
    num_blocks = budget // (per_token * block)
    needed = math.ceil(context / block)
    if num_blocks < needed:
        raise MemoryPlanError(
            f"{device.profile} ({device.name}): after weights {weights / GB:.2f} GB and reserve "
            f"{reserve_bytes / GB:.2f} GB, {budget / GB:.2f} GB remain for the KV cache = {num_blocks} "
            f"blocks of {block} tokens ({per_token} B/token, {k_dtype}); one sequence of context_len="
            f"{context} needs {needed} blocks. Longest context that fits: {num_blocks * block} tokens; "
            "pass a shorter context_len, a smaller KV dtype or a device with more memory"
        )
    return MemoryPlan(
        device=device.profile,
        memory_bytes=memory,
        weight_dtype=w_dtype,
        kv_dtype=k_dtype,
        num_params=params.total,
        weight_bytes=weights,
        reserve_bytes=reserve_bytes,
        kv_budget_bytes=budget,
        kv_bytes_per_token=per_token,
        block_size=block,
        num_blocks=num_blocks,
        context_len=context,
        params=params,
    )


def _require_positive(where: str, name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{where}: {name}={value} must be positive")
