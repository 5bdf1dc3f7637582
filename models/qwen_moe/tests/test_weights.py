"""Both expert layouts load to the same model: the per-expert tensors ``save_pretrained``
writes (``mlp.experts.{e}.gate_proj/up_proj/down_proj``) and transformers 5's stacked
``mlp.experts.gate_up_proj`` / ``down_proj`` (gate rows first), as transformers itself reads
them; dense layers' ``mlp.gate_proj/up_proj/down_proj`` are left as they are."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from loads import load_for
from safetensors.torch import load_file, save_file

from tttv2.testing.model_kit import prefill, prompt

EXPERT = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight")


def stacked(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, experts = {}, {}
    for name, t in tensors.items():
        m = EXPERT.fullmatch(name)
        if m:
            experts.setdefault(int(m[1]), {})[(int(m[2]), m[3])] = t
        else:
            out[name] = t
    for layer, parts in experts.items():
        n = 1 + max(e for e, _ in parts)
        p = f"model.layers.{layer}.mlp.experts"
        out[f"{p}.gate_up_proj"] = torch.stack(
            [torch.cat([parts[(e, "gate")], parts[(e, "up")]]) for e in range(n)]
        )
        out[f"{p}.down_proj"] = torch.stack([parts[(e, "down")] for e in range(n)])
    return out


@pytest.fixture(scope="module")
def stacked_copy(windowed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stacked")
    for f in windowed.path.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, folder / f.name)
    save_file(
        stacked(load_file(windowed.path / "model.safetensors")),
        folder / "model.safetensors",
        metadata={"format": "pt"},
    )
    return folder


def test_stacked_experts_load_to_the_same_logits_and_transformers_reads_them_alike(
    windowed, stacked_copy
):
    from transformers import AutoModelForCausalLM

    load = load_for(windowed)
    ids = prompt(windowed.vocab_size, n=24)
    ours, _ = prefill(load(windowed.path).model, ids)
    from_stacked, _ = prefill(load(stacked_copy).model, ids)
    assert torch.equal(ours, from_stacked)
    hf = AutoModelForCausalLM.from_pretrained(
        stacked_copy, dtype=torch.float32, use_safetensors=True
    ).eval()
    with torch.inference_mode():
        theirs = hf(torch.tensor([ids])).logits[0]
    assert (theirs - from_stacked).abs().max() < 1e-4
