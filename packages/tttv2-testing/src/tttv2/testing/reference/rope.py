"""Readable reference for rotary position embeddings (the math of ``RopeSpec``).

Frequencies are computed one at a time with Python floats (float64), following the
published rules (and Hugging Face's choices where a rule leaves one open); the rotation
is written pair by pair. Nothing here is shared with ``tttv2.blocks``.

``seq_len`` is the length of the longest sequence in the batch (largest position + 1);
only ``dynamic`` and ``longrope`` depend on it.
"""

from __future__ import annotations

import math

import torch

from tttv2.core.specs import RopeSpec


def reference_inv_freq(spec: RopeSpec, seq_len: int | None = None) -> tuple[list[float], float]:
    """``([inv_freq_0, ..., inv_freq_{R/2-1}], attention_scaling)``."""
    dim = spec.rotary_dim
    assert dim is not None and spec.factor is not None  # RopeSpec.validate() set them
    half = dim // 2

    def plain(base: float) -> list[float]:
        return [1.0 / base ** (2 * i / dim) for i in range(half)]

    if spec.scaling == "default":
        return plain(spec.theta), 1.0

    if spec.scaling == "linear":
        return [f / spec.factor for f in plain(spec.theta)], 1.0

    if spec.scaling == "dynamic":
        if dim == 2:  # the single frequency is base ** 0 = 1 for any base
            return [1.0], 1.0
        length = spec.max_position if seq_len is None else max(seq_len, spec.max_position)
        growth = spec.factor * length / spec.max_position - (spec.factor - 1)
        return plain(spec.theta * growth ** (dim / (dim - 2))), 1.0

    if spec.scaling == "llama3":
        original = spec.original_max_position
        # validate() requires these for scaling="llama3"
        assert (
            original is not None
            and spec.low_freq_factor is not None
            and spec.high_freq_factor is not None
        )
        low_wavelen = original / spec.low_freq_factor
        high_wavelen = original / spec.high_freq_factor
        out = []
        for f in plain(spec.theta):
            wavelen = 2 * math.pi / f
            if wavelen < high_wavelen:  # high frequency: unchanged
                out.append(f)
            elif wavelen > low_wavelen:  # low frequency: interpolated
                out.append(f / spec.factor)
            else:  # in between: blend
                smooth = (original / wavelen - spec.low_freq_factor) / (
                    spec.high_freq_factor - spec.low_freq_factor
                )
                out.append((1 - smooth) * f / spec.factor + smooth * f)
        return out, 1.0

    if spec.scaling == "yarn":
        return _yarn(spec)

    if spec.scaling == "longrope":
        assert spec.original_max_position is not None  # validate() requires it for longrope
        long = seq_len is not None and seq_len > spec.original_max_position
        factors = spec.long_factor if long else spec.short_factor
        assert factors is not None  # validate() requires both factor lists for longrope
        freqs = [f / factors[i] for i, f in enumerate(plain(spec.theta))]
        if spec.attention_factor is not None:
            scale = spec.attention_factor
        elif spec.factor <= 1.0:
            scale = 1.0
        else:
            scale = math.sqrt(1 + math.log(spec.factor) / math.log(spec.original_max_position))
        return freqs, scale

    raise ValueError(f"reference_inv_freq: unknown scaling {spec.scaling!r}")


def _yarn(spec: RopeSpec) -> tuple[list[float], float]:
    dim, base, factor = spec.rotary_dim, spec.theta, spec.factor
    original = spec.original_max_position
    assert (
        dim is not None and factor is not None and original is not None
    )  # validate() checked them

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if spec.attention_factor is not None:
        attention = spec.attention_factor
    elif spec.mscale and spec.mscale_all_dim:
        attention = mscale(factor, spec.mscale) / mscale(factor, spec.mscale_all_dim)
    else:
        attention = mscale(factor)

    def dim_of(rotations: float) -> float:
        # dimension index whose wavelength fits `rotations` times into the original context
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = dim_of(spec.beta_fast or 32), dim_of(spec.beta_slow or 1)
    if spec.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    out = []
    for i in range(dim // 2):
        extrapolated = 1.0 / base ** (2 * i / dim)
        interpolated = extrapolated / factor
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)  # 0: keep, 1: interpolate
        out.append(interpolated * ramp + extrapolated * (1 - ramp))
    return out, attention


def reference_rotate(
    x: torch.Tensor, positions: torch.Tensor, spec: RopeSpec, seq_len: int | None = None
) -> torch.Tensor:
    """Rotate ``x [T, H, D]`` (float64 result) by ``positions [T]``, pair by pair."""
    inv_freq, scale = reference_inv_freq(spec, seq_len)
    assert spec.rotary_dim is not None  # RopeSpec.validate() set it
    half = spec.rotary_dim // 2
    x = x.detach().to(torch.float64)
    out = x.clone()
    for i in range(half):
        first, second = (2 * i, 2 * i + 1) if spec.interleaved else (i, i + half)
        angle = positions.to(torch.float64) * inv_freq[i]  # [T]
        cos = (torch.cos(angle) * scale)[:, None]
        sin = (torch.sin(angle) * scale)[:, None]
        a, b = x[:, :, first], x[:, :, second]
        out[:, :, first] = a * cos - b * sin
        out[:, :, second] = b * cos + a * sin
    return out


def reference_rope(
    q: torch.Tensor,
    k: torch.Tensor,
    positions: torch.Tensor,
    spec: RopeSpec,
    seq_len: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, k)`` rotated; ``seq_len`` defaults to ``max(positions) + 1``. Usable as the
    ``rope`` argument of ``reference_attention`` via ``functools.partial(spec=...)``."""
    if seq_len is None:
        seq_len = int(positions.max()) + 1
    return reference_rotate(q, positions, spec, seq_len), reference_rotate(
        k, positions, spec, seq_len
    )
