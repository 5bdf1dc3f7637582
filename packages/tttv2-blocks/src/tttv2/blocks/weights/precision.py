"""Hold a loaded model's weights in the formats of a precision policy.

:func:`apply_precision_policy` round-trips every weight in place through its role's format
(``tttv2.hw.precision``: Tenstorrent ``bfloat8_b`` / ``bfloat4_b`` exactly as ttnn packs
them, int8 per output channel, bf16, fp32), so a CPU run computes with the numbers the
hardware format gives. Call it once after loading, before the first forward (kernels that
copy weights into their own layouts copy them at first use). Roles come from where a weight
sits in the blocks: ``Attention.{q,k,v,qkv}_proj`` -> ``wqkv``, ``Attention.o_proj`` ->
``wo``, ``FeedForward.{gate,up,gate_up}_proj`` -> ``w1_w3``, ``FeedForward.down_proj`` ->
``w2``, ``LMHead`` -> ``lm_head``, ``TokenEmbedding`` -> ``embedding``, any other
``nn.Linear`` -> ``other``. Norms and biases are left as they are.

A fused weight (``qkv_proj``, ``gate_up_proj``) is rounded as one matrix: the same as the
separate matrices whenever each part's output size is a multiple of 16 (every real model).

``int8`` is stored, not only rounded: a plain ``nn.Linear`` whose role is ``int8`` is
replaced by an :class:`~tttv2.blocks.building_blocks.linear.Int8Linear` (int8 codes and
per-channel float32 scales, the bias as it was) and an ``int8`` LM head gets its own int8
codes (:meth:`~tttv2.blocks.building_blocks.lm_head.LMHead.quantize_int8`; a tied head
keeps sharing the embedding, which keeps the embedding's format). Decode then reads the
int8 codes (tttv2-hw's native int8 kernels on AVX2 CPUs: half the bytes of bf16); prefill
dequantises per call. The values are :func:`~tttv2.hw.precision.int8_round_trip`'s.
"""

from __future__ import annotations

from collections import Counter

import torch

from tttv2.blocks.building_blocks.embedding import TokenEmbedding
from tttv2.blocks.building_blocks.linear import Int8Linear
from tttv2.blocks.building_blocks.lm_head import LMHead
from tttv2.blocks.weights.packing import pack_weights
from tttv2.hw import DeviceConfig, get_optimal_params
from tttv2.hw.precision import PrecisionPolicy, get_precision_policy, round_trip_weight

LINEAR_ROLES = {
    "q_proj": "wqkv",
    "k_proj": "wqkv",
    "v_proj": "wqkv",
    "qkv_proj": "wqkv",
    "o_proj": "wo",
    "gate_proj": "w1_w3",
    "up_proj": "w1_w3",
    "gate_up_proj": "w1_w3",
    "down_proj": "w2",
}


def weight_roles(model: torch.nn.Module) -> dict[str, tuple[str, torch.nn.Parameter, bool]]:
    """Parameter name -> (role, parameter, is a matmul weight) for every weight a policy
    governs (tied parameters once, under their first name)."""
    out: dict[str, tuple[str, torch.nn.Parameter, bool]] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.nn.Parameter) or id(weight) in seen:
            continue
        if isinstance(module, TokenEmbedding):
            role, matmul = "embedding", False
        elif isinstance(module, LMHead):
            role, matmul = "lm_head", True
        elif isinstance(module, torch.nn.Linear):
            role, matmul = LINEAR_ROLES.get(name.rsplit(".", 1)[-1], "other"), True
        else:
            continue
        seen.add(id(weight))
        out[f"{name}.weight" if name else "weight"] = (role, weight, matmul)
    return out


def apply_precision_policy(model: torch.nn.Module, policy: PrecisionPolicy | str) -> dict[str, int]:
    """Round-trip ``model``'s weights in place through ``policy``'s formats (a preset name
    or a :class:`~tttv2.hw.precision.PrecisionPolicy`); ``int8`` projections and LM heads
    are stored as int8 (see the module docstring). Returns how many weights each format
    got. A tied LM head shares the embedding's tensor and gets the embedding's format,
    except an ``int8`` head, which gets its own int8 copy."""
    policy = get_precision_policy(policy)
    counts: Counter[str] = Counter()
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, (role, weight, matmul) in weight_roles(model).items():
            fmt = policy.weight_format(role)
            owner = name.rsplit(".", 1)[0] if "." in name else ""
            module = modules.get(owner)
            if fmt == "int8" and type(module) is torch.nn.Linear:
                _replace_module(model, owner, Int8Linear.from_linear(module))
            elif fmt == "int8" and isinstance(module, LMHead):
                module.quantize_int8()
            else:
                weight.copy_(round_trip_weight(weight.detach(), fmt, matmul=matmul))
            counts[fmt] += 1
        if policy.weight_format("lm_head") == "int8":
            for (
                module
            ) in modules.values():  # tied heads: their weight was listed as the embedding's
                if isinstance(module, LMHead) and module.spec.tied and module.int8_weight is None:
                    module.quantize_int8()
                    counts["int8"] += 1
        if counts["int8"]:
            _repack(model)
    return dict(counts)


def _repack(model: torch.nn.Module) -> None:
    """Pack the weights again (:func:`pack_weights`), so decode streams the new int8 codes
    from the one huge-page buffer as loading arranged the others, and the bf16 weights they
    replaced are freed: each CPU parameter first gets a storage of its own (the loaded
    buffer, bf16 weights included, stays alive while any parameter points into it)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.device.type == "cpu":
                p.data = p.detach().clone()
    pack_weights(model)


def _replace_module(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def apply_device_precision(
    model: torch.nn.Module, device: DeviceConfig | None = None
) -> dict[str, int]:
    """:func:`apply_precision_policy` with the preset ``device`` (default: the detected or
    forced one) names in its model parameters' ``precision`` (the ``tt:*`` profiles:
    ``performance``; any profile through a params override); nothing when it names none."""
    name = getattr(get_optimal_params("model", "decode", device=device), "precision", None)
    return {} if name is None else apply_precision_policy(model, name)
