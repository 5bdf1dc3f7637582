"""Running a one-layer TransformerStack and the Hugging Face model of the same weights side
by side: a 7-token prompt is prefilled, then two tokens are decoded over a paged cache;
HF runs the 9 tokens at once. The decoder layer's own output (before the final norm), the
logits of every position and the prefill's hidden states must agree in float32."""

from __future__ import annotations

import re

import torch

from tttv2.blocks import TransformerStack
from tttv2.core import ExecutionMode, KVBlockManager

PROMPT, DECODED = 7, 2


def rename(state: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """``state`` under new names: the first rule whose pattern matches a name whole renames it."""
    out = {}
    for name, tensor in state.items():
        target = next((re.sub(p, t, name) for p, t in rules if re.fullmatch(p, name)), None)
        assert target is not None, f"no rule for {name}"
        out[target] = tensor
    return out


def _output(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def _check(what: str, ours: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    scale = max(1.0, ref.abs().max().item())
    error = (ours - ref).abs().max().item()
    assert error < tol * scale, f"{what}: max abs error {error:.3g} >= {tol * scale:.3g}"


def compare_one_layer(
    stack: TransformerStack,
    hf: torch.nn.Module,
    hf_layer: torch.nn.Module,
    vocab: int,
    tol: float = 1e-4,
) -> None:
    """``hf_layer`` is HF's decoder layer (its output is compared with ``stack.layers[0]``'s)."""
    assert stack.num_layers == 1
    ids = torch.randint(0, vocab, (PROMPT + DECODED,))
    seen: dict[str, list[torch.Tensor]] = {"ours": [], "hf": []}
    hooks = [
        stack.layers[0].register_forward_hook(
            lambda _m, _a, out: seen["ours"].append(_output(out))
        ),
        hf_layer.register_forward_hook(lambda _m, _a, out: seen["hf"].append(_output(out)[0])),
    ]
    with torch.no_grad():
        expected = hf(ids[None], output_hidden_states=True)
        cache = stack.new_cache(8, 16)
        blocks = KVBlockManager(8, 16, stack.spec.max_seq_len)
        meta = blocks.prepare([0], [PROMPT], ExecutionMode.PREFILL, logits="all")
        logits, hidden = stack(ids[:PROMPT], meta, cache, output_hidden_states=True)
        for hook in hooks:  # decode as deployed (a hooked layer is never run fused)
            hook.remove()
        rows = [logits]
        for p in range(PROMPT, PROMPT + DECODED):
            meta = blocks.prepare([0], [1], ExecutionMode.DECODE)
            rows.append(stack(ids[p : p + 1], meta, cache))
    _check("decoder layer output", seen["ours"][0], seen["hf"][0][:PROMPT], tol)
    _check("logits", torch.cat(rows), expected.logits[0], tol)
    assert len(hidden) == len(expected.hidden_states) == 2
    for i, (ours, ref) in enumerate(zip(hidden, expected.hidden_states, strict=True)):
        _check(f"hidden state {i}", ours, ref[0, :PROMPT], tol)
