"""RoPE settings of a Hugging Face config in every spelling transformers reads, as a
:class:`~tttv2.core.specs.RopeSpec`.

As ``transformers.modeling_rope_utils`` (``convert_rope_params_to_dict`` and
``standardize_rope_params``) reads them:

- the parameters are ``rope_scaling`` when set (older files), else ``rope_parameters``
  (transformers 5); the rule is their ``rope_type``, or the older ``type``, else
  ``"default"``; they may be nested per layer type (``{"full_attention": {...},
  "sliding_attention": {...}}``);
- ``rope_theta`` inside the parameters wins over a top-level ``rope_theta``, then the
  architecture's default;
- ``partial_rotary_factor`` likewise, inside then top level, and only for an
  architecture that rotates part of each head (``partial_rotary=True``): Llama's
  attention rotates the whole head whatever the config says (its default rule ignores the
  key; with a scaled rule transformers computes half the frequencies and then fails), so
  a Llama mapping never reads it;
- for ``llama3`` / ``yarn`` / ``longrope``, a top-level ``original_max_position_embeddings``
  wins over the one inside (Phi-3 stores it there), and ``max_position_embeddings`` is
  the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tttv2.blocks.hf_config.reader import (
    HFConfig,
    check_bool,
    check_float,
    check_float_list,
    check_int,
)
from tttv2.core.specs import RopeSpec

RULES = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")
_ORIGINAL_FROM_TOP = ("llama3", "yarn", "longrope")
_YARN_FLOATS = ("beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim")


def rope_parameters(cfg: HFConfig, layer_type: str | None = None) -> dict[str, Any]:
    """The parameter dict transformers would use (``{}`` when the config has none)."""
    scaling, params = cfg.raw("rope_scaling", None), cfg.raw("rope_parameters", None)
    key = "rope_scaling" if scaling else "rope_parameters"
    chosen = scaling or params or {}
    if not isinstance(chosen, Mapping):
        raise cfg.error(key, chosen, "a JSON object")
    if layer_type is not None and isinstance(chosen.get(layer_type), Mapping):
        chosen, key = chosen[layer_type], f"{key}.{layer_type}"
    elif layer_type is not None and any(isinstance(v, Mapping) for v in chosen.values()):
        nested = sorted(k for k, v in chosen.items() if isinstance(v, Mapping))
        raise cfg.error(key, f"<entries for {', '.join(nested)}>", f"an entry for {layer_type!r}")
    return {"__key__": key, **chosen}


def read_rope(
    cfg: HFConfig,
    head_dim: int,
    max_position: int,
    *,
    partial_rotary: bool = False,
    default_theta: float = 10000.0,
    layer_type: str | None = None,
) -> RopeSpec:
    """The RoPE of a config (see the module docstring for precedence)."""
    params = rope_parameters(cfg, layer_type)
    where = params.pop("__key__")

    def field(name: str) -> str:
        return f"{where}.{name}"

    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in RULES:
        raise cfg.error(field("rope_type"), kind, "one of " + ", ".join(repr(r) for r in RULES))
    theta = params.get("rope_theta")
    theta = (
        check_float(cfg, field("rope_theta"), theta, positive=True)
        if theta is not None
        else cfg.float("rope_theta", default_theta, positive=True)
    )
    partial = None
    if partial_rotary and params.get("partial_rotary_factor") is not None:
        partial = check_float(
            cfg, field("partial_rotary_factor"), params["partial_rotary_factor"], positive=True
        )
    elif partial_rotary:
        partial = cfg.float("partial_rotary_factor", None, positive=True)
    rotary = head_dim if partial is None else int(head_dim * partial)
    base: dict[str, Any] = dict(
        head_dim=head_dim, rotary_dim=rotary, theta=theta, max_position=max_position
    )

    def need(name: str, check: Any = check_float) -> Any:
        value = params.get(name)
        if value is None:
            raise cfg.error(field(name), None, f"a value for rope_type {kind!r}")
        return check(cfg, field(name), value)

    def optional(name: str) -> float | None:
        value = params.get(name)
        return None if value is None else check_float(cfg, field(name), value)

    if kind == "default":
        return RopeSpec(**base)
    if kind in ("linear", "dynamic"):
        return RopeSpec(**base, scaling=kind, factor=need("factor"))
    if cfg.has("original_max_position_embeddings"):
        original = cfg.int("original_max_position_embeddings")
    elif params.get("original_max_position_embeddings") is not None:
        original = need("original_max_position_embeddings", check_int)
    else:
        original = max_position
    if kind == "llama3":
        return RopeSpec(
            **base, scaling="llama3", factor=need("factor"), original_max_position=original,
            low_freq_factor=need("low_freq_factor"), high_freq_factor=need("high_freq_factor"),
        )  # fmt: skip
    if kind == "yarn":
        truncate = params.get("truncate", True)
        return RopeSpec(
            **base, scaling="yarn", factor=optional("factor"),
            original_max_position=original, truncate=check_bool(cfg, field("truncate"), truncate),
            **{name: optional(name) for name in _YARN_FLOATS},  # type: ignore[arg-type]  # float | None fields
        )  # fmt: skip
    half = rotary // 2
    return RopeSpec(  # longrope
        **base, scaling="longrope", factor=optional("factor"), original_max_position=original,
        attention_factor=optional("attention_factor"),
        short_factor=check_float_list(cfg, field("short_factor"), params.get("short_factor"), half),
        long_factor=check_float_list(cfg, field("long_factor"), params.get("long_factor"), half),
    )  # fmt: skip
