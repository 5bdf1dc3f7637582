"""Inverse frequencies of the rotary embedding, one rule per ``RopeSpec.scaling``.

Every rule returns ``(inv_freq, attention_scaling)``: ``inv_freq`` is a float32 tensor of
``rotary_dim / 2`` angular frequencies (pair ``i`` rotates by ``position * inv_freq[i]``)
and ``attention_scaling`` multiplies the cos/sin tables (1.0 except for YaRN and
LongRoPE). The formulas, and the order of their float32 operations, follow Hugging Face
``transformers.modeling_rope_utils`` so that tables agree bit for bit where possible.

``seq_len`` is the length (largest position + 1) of the longest sequence in the current
batch. Only ``dynamic`` (NTK base growth beyond ``max_position``) and ``longrope``
(short or long factors either side of ``original_max_position``) depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from tttv2.core.specs import RopeSpec

FrequencyRule = Callable[
    [RopeSpec, "int | None", "torch.device | None"], tuple[torch.Tensor, float]
]


def _base_frequencies(theta: float, dim: int, device: torch.device | None) -> torch.Tensor:
    """``1 / theta ** (2i / dim)`` for ``i < dim / 2``, in float32."""
    exponents = (
        torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    )
    return 1.0 / (theta**exponents)


def default_frequencies(
    spec: RopeSpec, seq_len: int | None = None, device: torch.device | None = None
) -> tuple[torch.Tensor, float]:
    """The original RoPE: ``theta ** (-2i / rotary_dim)``."""
    assert spec.rotary_dim is not None  # RopeSpec.validate() set it
    return _base_frequencies(spec.theta, spec.rotary_dim, device), 1.0


def linear_frequencies(
    spec: RopeSpec, seq_len: int | None = None, device: torch.device | None = None
) -> tuple[torch.Tensor, float]:
    """Position interpolation: every frequency divided by ``factor``."""
    assert spec.rotary_dim is not None and spec.factor is not None  # RopeSpec.validate() set them
    inv_freq = _base_frequencies(spec.theta, spec.rotary_dim, device)
    inv_freq /= spec.factor
    return inv_freq, 1.0


def dynamic_ntk_frequencies(
    spec: RopeSpec, seq_len: int | None = None, device: torch.device | None = None
) -> tuple[torch.Tensor, float]:
    """Dynamic NTK: once a sequence is longer than ``max_position`` the base grows to
    ``theta * (factor * seq_len / max_position - (factor - 1)) ** (d / (d - 2))``;
    up to ``max_position`` this is the default RoPE. With ``rotary_dim == 2`` the one
    frequency is ``base ** 0 = 1`` whatever the base (Hugging Face divides by zero there)."""
    dim, factor = spec.rotary_dim, spec.factor
    assert dim is not None and factor is not None  # RopeSpec.validate() set them
    if dim == 2:
        return _base_frequencies(spec.theta, dim, device), 1.0
    seq_len = spec.max_position if seq_len is None else max(seq_len, spec.max_position)
    base = spec.theta * ((factor * seq_len / spec.max_position) - (factor - 1)) ** (dim / (dim - 2))
    return _base_frequencies(base, dim, device), 1.0


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def yarn_frequencies(
    spec: RopeSpec, seq_len: int | None = None, device: torch.device | None = None
) -> tuple[torch.Tensor, float]:
    """YaRN: interpolate (divide by ``factor``) the low frequencies, keep the high ones,
    blend linearly between the correction dimensions given by ``beta_fast``/``beta_slow``
    (defaults 32 and 1); cos/sin are scaled by ``attention_factor`` (default
    ``0.1 * ln(factor) + 1``, or the ``mscale``/``mscale_all_dim`` ratio when both are set)."""
    dim, base, factor = spec.rotary_dim, spec.theta, spec.factor
    original = spec.original_max_position
    assert (
        dim is not None and factor is not None and original is not None
    )  # validate() checked them
    attention_factor = spec.attention_factor
    if attention_factor is None:
        if spec.mscale and spec.mscale_all_dim:
            attention_factor = float(
                _yarn_mscale(factor, spec.mscale) / _yarn_mscale(factor, spec.mscale_all_dim)
            )
        else:
            attention_factor = _yarn_mscale(factor)
    beta_fast = spec.beta_fast or 32
    beta_slow = spec.beta_slow or 1

    def correction_dim(num_rotations: float) -> float:
        # the dimension whose wavelength fits ``num_rotations`` times into ``original``
        return (dim * math.log(original / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if spec.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero in the ramp

    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolation_weight = 1 - ramp.to(device=device, dtype=torch.float)

    pos_freqs = base ** (torch.arange(0, dim, 2).to(device=device, dtype=torch.float) / dim)
    inv_freq_extrapolation = 1.0 / pos_freqs
    inv_freq_interpolation = 1.0 / (factor * pos_freqs)
    inv_freq = (
        inv_freq_interpolation * (1 - extrapolation_weight)
        + inv_freq_extrapolation * extrapolation_weight
    )
    return inv_freq, attention_factor


def llama3_frequencies(
    spec: RopeSpec, seq_len: int | None = None, device: torch.device | None = None
) -> tuple[torch.Tensor, float]:
    """Llama 3.1: wavelengths longer than ``original_max_position / low_freq_factor`` are
    divided by ``factor``, shorter than ``original_max_position / high_freq_factor`` kept,
    and the band between blended smoothly."""
    assert spec.rotary_dim is not None  # RopeSpec.validate() set it
    inv_freq = _base_frequencies(spec.theta, spec.rotary_dim, device)
    factor, low, high = spec.factor, spec.low_freq_factor, spec.high_freq_factor
    old_context = spec.original_max_position
    # validate() requires all four for scaling="llama3"
    assert factor is not None and low is not None and high is not None and old_context is not None
    low_freq_wavelen = old_context / low
    high_freq_wavelen = old_context / high

    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled), 1.0


def longrope_attention_factor(spec: RopeSpec) -> float:
    """The cos/sin scale of LongRoPE: ``attention_factor``, else
    ``sqrt(1 + ln(factor) / ln(original_max_position))`` (1.0 when ``factor <= 1``)."""
    if spec.attention_factor is not None:
        return spec.attention_factor
    assert (
        spec.factor is not None and spec.original_max_position is not None
    )  # validate() checked them
    if spec.factor <= 1.0:
        return 1.0
    return math.sqrt(1 + math.log(spec.factor) / math.log(spec.original_max_position))


def longrope_frequencies(
    spec: RopeSpec, seq_len: int | None = None, device: torch.device | None = None
) -> tuple[torch.Tensor, float]:
    """LongRoPE (Phi-3): per-frequency divisors, ``long_factor`` when the current sequence
    is longer than ``original_max_position``, ``short_factor`` otherwise."""
    assert (
        spec.original_max_position is not None and spec.rotary_dim is not None
    )  # validate() checked them
    use_long = seq_len is not None and seq_len > spec.original_max_position
    factors = spec.long_factor if use_long else spec.short_factor
    ext_factors = torch.tensor(factors, dtype=torch.float32, device=device)
    dim = spec.rotary_dim
    shape = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    return 1.0 / (ext_factors * spec.theta**shape), longrope_attention_factor(spec)


FREQUENCY_RULES: dict[str, FrequencyRule] = {
    "default": default_frequencies,
    "linear": linear_frequencies,
    "dynamic": dynamic_ntk_frequencies,
    "yarn": yarn_frequencies,
    "llama3": llama3_frequencies,
    "longrope": longrope_frequencies,
}


def rope_frequencies(
    spec: RopeSpec, seq_len: int | None = None, device: torch.device | str | None = None
) -> tuple[torch.Tensor, float]:
    """``(inv_freq [rotary_dim/2] float32, attention_scaling)`` for ``spec`` when the
    longest sequence of the batch is ``seq_len`` tokens long (``None``: at start-up)."""
    return FREQUENCY_RULES[spec.scaling](
        spec, seq_len, None if device is None else torch.device(device)
    )
