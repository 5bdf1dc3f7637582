"""Reference outputs of a ``transformers`` model: what a TTTv2 model must reproduce.

One prompt (a single sequence, no padding) gives the per-layer outputs, the logits at
every position, the teacher-forced top-1 tokens and a greedy continuation computed by
re-running the whole sequence each step (no KV cache, nothing clever to get wrong).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class HFReference:
    input_ids: torch.Tensor  # [T] int64
    logits: torch.Tensor  # [T, vocab] float32: logits[t] predicts token t + 1
    layer_outputs: tuple[torch.Tensor, ...]  # per decoder layer, its output [T, hidden] (hooks)
    hidden_states: tuple[torch.Tensor, ...]  # transformers' output_hidden_states, each [T, hidden]
    teacher_forced_top1: torch.Tensor  # [T] argmax of logits at each position
    greedy_tokens: torch.Tensor  # [greedy_steps] continuation of input_ids
    dtype: torch.dtype

    @property
    def num_layers(self) -> int:
        return len(self.layer_outputs)


def find_decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The ``ModuleList`` holding the decoder layers (as many as ``num_hidden_layers``)."""
    n = getattr(model.config, "num_hidden_layers", None)
    candidates = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n]
    if not candidates:
        raise ValueError(
            f"{type(model).__name__}: no ModuleList of num_hidden_layers={n} decoder layers found"
        )
    return max(candidates, key=lambda m: sum(p.numel() for p in m.parameters()))


def _as_ids(input_ids: Any, tokenizer_path: Path | None) -> torch.Tensor:
    if isinstance(input_ids, str):
        if tokenizer_path is None:
            raise ValueError("a text prompt needs a checkpoint folder with tokenizer.json")
        from tokenizers import Tokenizer

        encoded = Tokenizer.from_file(str(tokenizer_path / "tokenizer.json")).encode(input_ids).ids
        return torch.tensor(encoded, dtype=torch.long)
    ids = torch.as_tensor(input_ids, dtype=torch.long).flatten()
    if ids.numel() == 0:
        raise ValueError("input_ids is empty")
    return ids


def _check_model_placement(
    model: torch.nn.Module, dtype: torch.dtype, device: str | torch.device
) -> None:
    """Raise ``ValueError`` unless ``model``'s parameters are in ``dtype`` on ``device``
    (a device without an index, like ``"cuda"``, matches any index)."""
    params = [p for p in model.parameters() if p.is_floating_point()]
    if not params:
        return
    have_dtype = getattr(model, "dtype", None) or params[0].dtype
    have_device = params[0].device
    if have_dtype != dtype:
        raise ValueError(
            f"dtype={dtype} does not match the model, which is in {have_dtype}: reference_outputs does not cast a "
            f"model it is given; pass dtype={have_dtype}, or model.to({dtype}) (or a checkpoint folder to load in "
            f"{dtype})"
        )
    want = torch.device(device)
    if have_device.type != want.type or (
        want.index is not None and have_device.index != want.index
    ):
        raise ValueError(
            f"device={str(want)!r} does not match the model, which is on {str(have_device)!r}: reference_outputs "
            f"does not move a model it is given; pass device={str(have_device)!r} or model.to({str(want)!r})"
        )


@torch.no_grad()
def reference_outputs(
    model: Any,
    input_ids: Any,
    *,
    greedy_steps: int = 8,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> HFReference:
    """Run ``model`` (a ``transformers`` model, a checkpoint folder or a
    :class:`~tttv2.testing.hf.checkpoint.TinyCheckpoint`) on one prompt: token ids
    (list / 1-D tensor) or text (needs the folder's tokenizer).

    A folder or checkpoint is loaded in ``dtype`` on ``device`` by
    :func:`~tttv2.testing.hf.reference_model.load_reference_model`: built-in classes only
    (a config needing remote code is refused), from exactly the safetensors files our loader
    reads, never unpickling. A model instance is run
    as it is and never cast or moved (that would change the caller's model, and casting
    back from bf16 loses precision): its dtype must be ``dtype`` and its device
    ``device``, otherwise ``ValueError`` says which differs - pass ``model.to(...)`` or
    matching arguments. ``HFReference.dtype`` is thus always the dtype the model ran in."""
    from tttv2.testing.hf.checkpoint import TinyCheckpoint
    from tttv2.testing.hf.reference_model import load_reference_model

    folder: Path | None = None
    if isinstance(model, TinyCheckpoint):
        folder, model = model.path, model.load_model(dtype, device)
    elif isinstance(model, (str, Path)):
        folder = Path(model)
        model = load_reference_model(folder, dtype, device)  # no remote code, no pickles
    else:
        _check_model_placement(model, dtype, device)
        model = model.eval()
    ids = _as_ids(input_ids, folder).to(device)
    if greedy_steps < 0:
        raise ValueError(f"greedy_steps must be >= 0, got {greedy_steps}")

    captured: list[torch.Tensor] = []

    def hook(_module: Any, _args: Any, output: Any) -> None:
        captured.append(
            (output[0] if isinstance(output, tuple) else output)[0].detach().float().cpu()
        )

    handles = [layer.register_forward_hook(hook) for layer in find_decoder_layers(model)]
    try:
        out = model(ids[None], output_hidden_states=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    logits = out.logits[0].float().cpu()
    hidden = tuple(h[0].float().cpu() for h in out.hidden_states)

    seq = ids.clone()
    greedy = []
    for _ in range(greedy_steps):
        next_token = model(seq[None], use_cache=False).logits[0, -1].argmax()
        greedy.append(int(next_token))
        seq = torch.cat([seq, next_token.view(1)])
    return HFReference(
        input_ids=ids.cpu(),
        logits=logits,
        layer_outputs=tuple(captured),
        hidden_states=hidden,
        teacher_forced_top1=logits.argmax(dim=-1),
        greedy_tokens=torch.tensor(greedy, dtype=torch.long),
        dtype=dtype,
    )
