"""Which layers attend to a sliding window: ``layer_types`` (transformers 5: one entry per
layer, ``"full_attention"`` or ``"sliding_attention"``), or a pattern the architecture
derives when the file has none."""

from __future__ import annotations

from collections.abc import Sequence

from tttv2.blocks.hf_config.reader import HFConfig

FULL, SLIDING = "full_attention", "sliding_attention"
LAYER_TYPES = (FULL, SLIDING)


def every_nth_full(num_layers: int, period: int) -> tuple[str, ...]:
    """Layer ``i`` is full attention when ``(i + 1) % period == 0``, else sliding (the
    ``sliding_window_pattern`` convention: ``period=6`` is five local layers, one global)."""
    return tuple(FULL if (i + 1) % period == 0 else SLIDING for i in range(num_layers))


def read_layer_types(
    cfg: HFConfig, num_layers: int, default: Sequence[str] | None = None
) -> tuple[str, ...]:
    """``config["layer_types"]`` checked (length ``num_layers``, known names); ``default``
    when absent (all full attention when that is ``None`` too)."""
    value = cfg.raw("layer_types", None)
    if value is None:
        return tuple(default) if default is not None else (FULL,) * num_layers
    if (
        not isinstance(value, list)
        or len(value) != num_layers
        or not all(v in LAYER_TYPES for v in value)
    ):
        shown = (
            value if not isinstance(value, list) or len(value) <= 8 else f"<list of {len(value)}>"
        )
        raise cfg.error(
            "layer_types",
            shown,
            f"a list of {num_layers} entries, each one of {', '.join(LAYER_TYPES)}",
        )
    return tuple(value)


def read_sliding_window(cfg: HFConfig, key: str = "sliding_window") -> int | None:
    """The window in tokens, or ``None`` (absent or null: no window)."""
    return cfg.int(key, None)
