"""Both expert layouts load to the same model: the per-expert tensors ``save_pretrained``
writes (``block_sparse_moe.experts.{e}.w1/w2/w3``) and transformers 5's stacked
``mlp.experts.gate_up_proj`` / ``down_proj`` (gate rows first), as transformers itself
reads them."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from tttv2_model_mixtral import load

from tttv2.testing.model_kit import prefill, prompt


def stacked(tensors: dict[str, torch.Tensor], layers: int, experts: int) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in tensors.items():
        if ".block_sparse_moe.experts." in name:
            continue
        out[name.replace(".block_sparse_moe.", ".mlp.")] = t
    for i in range(layers):
        p = f"model.layers.{i}.block_sparse_moe.experts"
        out[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.stack(
            [
                torch.cat([tensors[f"{p}.{e}.w1.weight"], tensors[f"{p}.{e}.w3.weight"]])
                for e in range(experts)
            ]
        )
        out[f"model.layers.{i}.mlp.experts.down_proj"] = torch.stack(
            [tensors[f"{p}.{e}.w2.weight"] for e in range(experts)]
        )
    return out


@pytest.fixture(scope="module")
def stacked_copy(windowed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stacked")
    for f in windowed.path.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, folder / f.name)
    tensors = load_file(windowed.path / "model.safetensors")
    experts = windowed.config["num_local_experts"]
    save_file(
        stacked(tensors, windowed.num_layers, experts),
        folder / "model.safetensors",
        metadata={"format": "pt"},
    )
    return folder


def test_stacked_experts_load_to_the_same_logits_and_transformers_reads_them_alike(
    windowed, stacked_copy
):
    from transformers import AutoModelForCausalLM

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
