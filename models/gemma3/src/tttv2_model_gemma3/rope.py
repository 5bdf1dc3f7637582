"""Gemma 3's two RoPEs, one per layer kind, in every spelling transformers reads.

As ``Gemma3TextConfig.convert_rope_params_to_dict`` then ``standardize_rope_params``:

- ``rope_parameters`` nested per layer kind (``{"full_attention": {...},
  "sliding_attention": {...}}``, what transformers 5 writes) is the base; a kind without an
  entry gets ``{"rope_type": "default"}``; a flat (not nested) ``rope_parameters`` is
  ignored, as transformers ignores it;
- ``rope_scaling`` (older files, e.g. ``{"rope_type": "linear", "factor": 8.0}``) is merged
  into the ``full_attention`` entry only: the local layers are never scaled. Its ``rope_type``
  overrides; an old-style ``type`` in it does not (the entry already says ``"default"``);
- a kind's ``rope_theta`` inside its entry wins; else ``full_attention`` takes ``rope_theta``
  (default 1e6) and ``sliding_attention`` takes ``rope_local_base_freq`` (default 1e4);
- an entry without ``rope_type`` takes its ``type``, else ``"default"``.

``rope_scaling`` beside a ``rope_parameters`` that has no ``full_attention`` entry is refused
(transformers fails on it with a ``KeyError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tttv2.blocks.hf_config import FULL, SLIDING, HFConfig, read_rope
from tttv2.core.specs import RopeSpec

#: The base of each kind when neither its entry nor the top level sets one.
DEFAULT_THETA = {FULL: 1_000_000.0, SLIDING: 10_000.0}
#: The top-level key that sets each kind's base (older files).
THETA_KEY = {FULL: "rope_theta", SLIDING: "rope_local_base_freq"}


def rope_parameters_by_layer_type(cfg: HFConfig) -> dict[str, dict[str, Any]]:
    """Each layer kind's RoPE parameters as transformers' ``Gemma3TextConfig`` ends up with."""
    params, scaling = cfg.raw("rope_parameters", None), cfg.raw("rope_scaling", None)
    for key, value in (("rope_parameters", params), ("rope_scaling", scaling)):
        if value is not None and not isinstance(value, Mapping):
            raise cfg.error(key, value, "a JSON object")
    entries: dict[str, Any] = {kind: {"rope_type": "default"} for kind in (FULL, SLIDING)}
    if params is not None:
        entries = {kind: params.get(kind) for kind in (FULL, SLIDING)}
        for kind, entry in entries.items():
            if entry is not None and not isinstance(entry, Mapping):
                raise cfg.error(f"rope_parameters.{kind}", entry, "a JSON object or null")
    if scaling is not None:
        if entries[FULL] is None:
            raise cfg.error(
                "rope_scaling", "<set>", "absent, or rope_parameters with a full_attention entry"
            )
        entries[FULL] = {**entries[FULL], **scaling}
    result = {}
    for kind, entry in entries.items():
        entry = dict(entry) if entry is not None else {"rope_type": "default"}
        if entry.get("rope_theta") is None:
            entry["rope_theta"] = cfg.float(THETA_KEY[kind], DEFAULT_THETA[kind], positive=True)
        entry.setdefault("rope_type", entry.get("type", "default"))
        result[kind] = entry
    return result


def ropes_by_layer_type(cfg: HFConfig, head_dim: int, max_position: int) -> dict[str, RopeSpec]:
    """``{"full_attention": RopeSpec, "sliding_attention": RopeSpec}``; errors name the
    entry, ``rope_parameters.<kind>.<field>`` (``rope_scaling`` is merged into
    ``rope_parameters.full_attention``)."""
    nested = HFConfig({"rope_parameters": rope_parameters_by_layer_type(cfg)}, cfg.owner)
    return {
        kind: read_rope(nested, head_dim, max_position, layer_type=kind) for kind in (FULL, SLIDING)
    }
