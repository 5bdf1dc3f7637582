"""One mapping per architecture: the configuration tier takes a family's config -> spec and
its checkpoint tensor names from that family's model project (``models/NAME``, installed in
the workspace for the ``tttv2`` command), never from a copy written in a test.

    spec = model_spec(hf_model)                           # the project's config mapping
    state = our_state(hf_model, spec)                     # the project's rename rules
    stack = TransformerStack(spec); stack.load_state_dict(state, strict=True)

``layer_state(state, "layers.0.attention.")`` cuts one block's tensors out of ``state``.
"""

from __future__ import annotations

import importlib.metadata

import torch

from tttv2.core import ModelSpec

PLUGIN_GROUP = "tttv2.models"
#: Tiny checkpoints of every family (on top of tttv2.testing's small defaults): peaked
#: logits (initializer_range 0.3) so greedy tokens are not near-ties; no padding id (some
#: configs default it past the tiny vocabulary, e.g. Phi-3's 32000).
TINY_BASE = {"initializer_range": 0.3, "max_position_embeddings": 256, "pad_token_id": None}
#: Sizes the tiny-checkpoint builder does not shrink (transformers' defaults: a 5632-wide
#: shared expert on a 64-wide model, whose fp32 sums differ from transformers' by accumulation
#: order alone beyond 1e-4; 60 and 128 experts, which made the Qwen MoE cases the slowest of
#: the configuration job while top-2 of 8 exercises the same routing).
TINY_EXTRA = {
    "Qwen2MoeForCausalLM": {"moe_intermediate_size": 48, "shared_expert_intermediate_size": 80,
                            "num_experts": 8, "num_experts_per_tok": 2},
    "Qwen3MoeForCausalLM": {"moe_intermediate_size": 48, "num_experts": 8, "num_experts_per_tok": 2},
}  # fmt: skip


def project(architecture: str):
    """The plugin module of the installed model project for ``architecture`` (a
    ``config.json`` ``architectures`` entry); it names its ``model_spec`` and
    ``rename_rules`` in ``load``'s keywords."""
    found = [
        ep for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP) if ep.name == architecture
    ]
    assert found, (
        f"no model project installed for {architecture} (entry point group {PLUGIN_GROUP})"
    )
    return found[0].load()


def _mapping(architecture: str):
    load = project(architecture).load
    return load.keywords["model_spec"], load.keywords["rename_rules"]


def _architecture(hf_model: torch.nn.Module) -> str:
    return type(hf_model).__name__


def model_spec(hf_model: torch.nn.Module) -> ModelSpec:
    """The spec the family's project maps ``hf_model.config`` to (as from its config.json)."""
    to_spec, _ = _mapping(_architecture(hf_model))
    return to_spec(hf_model.config.to_dict())


def our_state(hf_model: torch.nn.Module, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """``hf_model``'s tensors under our parameter names, split and transposed by the
    project's rename rules (skipped tensors dropped); a tied head is the embedding."""
    _, rules_for = _mapping(_architecture(hf_model))
    rules = rules_for(spec)
    state: dict[str, torch.Tensor] = {}
    for name, tensor in hf_model.state_dict().items():
        for placement in rules.placements(name) or ():
            state[placement.target] = placement.tensor(tensor).detach().clone()
    if spec.lm_head.tied:
        state["lm_head.weight"] = state["embedding.weight"]
    return state


def layer_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` (e.g. ``"layers.0.attention."``), the prefix removed."""
    return {name[len(prefix) :]: t for name, t in state.items() if name.startswith(prefix)}


def hf_state(
    hf_model: torch.nn.Module, spec: ModelSpec, ours: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The other way: ``ours`` under ``hf_model``'s tensor names, through the project's rename
    rules (only plain renames can be inverted; a split or transposed tensor raises), so a
    model built on the meta device can share our tensors (``load_state_dict(assign=True)``)."""
    _, rules_for = _mapping(_architecture(hf_model))
    rules = rules_for(spec)
    state = {}
    for name in hf_model.state_dict():
        found = rules.placements(name)
        assert found is not None, f"{name} is skipped by the rules: nothing to give it"
        assert len(found) == 1 and found[0].derive is None, f"{name}: {found} cannot be inverted"
        state[name] = ours[found[0].target]
    return state
