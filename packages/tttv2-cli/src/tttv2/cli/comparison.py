"""Our model next to Hugging Face transformers on the same checkpoint and input.

Per decoder layer: the PCC of the layer outputs (forward hooks on both sides). Logits of
one prefill over the input: max-abs error, PCC and teacher-forced top-1 agreement (at every
position, does our most likely next token equal transformers'?). Greedy continuation: ours
through the generation runtime (prefill, then paged decode), transformers' by re-running
the whole sequence each step (tttv2.testing.hf.reference_outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tttv2.cli.forward import prompt_logits
from tttv2.cli.generation import generate
from tttv2.cli.kv_pool import KVPool, loaded_kv_pool
from tttv2.core.model_plugins import LoadedModel
from tttv2.serve.runtime import SamplingParams


@dataclass(frozen=True)
class Thresholds:
    """fp32: logits max-abs < 1e-4 and identical greedy tokens; reduced precision: PCC of
    every layer >= 0.99 and teacher-forced top-1 agreement >= 99%."""

    logits_max_abs: float = 1e-4
    layer_pcc: float = 0.99
    top1_agreement: float = 0.99


@dataclass
class Comparison:
    layer_pcc: list[float]
    logits_max_abs_error: float
    logits_pcc: float
    top1_agreement: float
    greedy_ours: list[int]
    greedy_hf: list[int]
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def greedy_identical(self) -> bool:
        return self.greedy_ours == self.greedy_hf

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


def our_decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    from tttv2.blocks import DecoderLayer

    return [m for m in model.modules() if isinstance(m, DecoderLayer)]


def our_outputs(
    loaded: LoadedModel, ids: list[int], device: torch.device, block_size: int | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``[T, vocab]`` and each decoder layer's output ``[T, hidden]`` (float32);
    ``block_size`` as in :func:`tttv2.cli.forward.prompt_logits`."""
    captured: list[torch.Tensor] = []

    def hook(_module: Any, _args: Any, output: Any) -> None:
        out = output[0] if isinstance(output, tuple) else output
        captured.append(out.detach().float().cpu())

    handles = [layer.register_forward_hook(hook) for layer in our_decoder_layers(loaded.model)]
    try:
        logits = prompt_logits(loaded.model, ids, device, block_size)
    finally:
        for h in handles:
            h.remove()
    return logits, captured


def compare(
    loaded: LoadedModel,
    checkpoint: Path,
    ids: list[int],
    greedy_steps: int,
    dtype: torch.dtype,
    device: torch.device,
    thresholds: Thresholds = Thresholds(),
    pool: KVPool | None = None,
) -> Comparison:
    """``pool``: the KV cache of our runs (default: what ``ids`` plus ``greedy_steps`` need,
    planned with tttv2-hw for ``device``)."""
    from tttv2.testing.hf import reference_outputs
    from tttv2.testing.metrics import compare_pcc, max_abs_error, topk_agreement

    if pool is None:
        pool = loaded_kv_pool(loaded, device, seq_len=len(ids) + greedy_steps)
    logits, layers = our_outputs(loaded, ids, device, pool.block_size)
    ref = reference_outputs(checkpoint, ids, greedy_steps=greedy_steps, dtype=dtype, device=device)
    if len(layers) != ref.num_layers:
        raise ValueError(
            f"our model has {len(layers)} decoder layers, transformers' has {ref.num_layers}"
        )
    layer_pcc = [
        compare_pcc(o, r, thresholds.layer_pcc).pcc
        for o, r in zip(layers, ref.layer_outputs, strict=True)
    ]
    greedy = generate(
        loaded, ids, SamplingParams(), greedy_steps, device=device, eos_token_ids=(), pool=pool
    )
    result = Comparison(
        layer_pcc=layer_pcc,
        logits_max_abs_error=float(max_abs_error(logits, ref.logits)),
        logits_pcc=compare_pcc(logits, ref.logits, thresholds.layer_pcc).pcc,
        top1_agreement=topk_agreement(logits, ref.logits, k=1, threshold=0.0).agreement,
        greedy_ours=greedy.generated_ids,
        greedy_hf=ref.greedy_tokens.tolist(),
    )
    if dtype == torch.float32:
        result.checks = {
            "logits_max_abs_error": result.logits_max_abs_error < thresholds.logits_max_abs,
            "greedy_identical": result.greedy_identical,
        }
    else:
        result.checks = {
            "layer_pcc": all(p >= thresholds.layer_pcc for p in layer_pcc),
            "top1_agreement": result.top1_agreement >= thresholds.top1_agreement,
        }
    return result
