"""load_hf_checkpoint: one call from a folder to a loaded model, with every check made
before allocation (sizes config.json implies against the safetensors headers, tensor
dtypes), NaN/inf refused while copying unless allowed, eos/bos ids read strictly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from toy_hf_mapping import spec_of

from tttv2.blocks.weights import (
    CheckpointSizeError,
    NonFiniteWeightError,
    RenameRules,
    WeightDtypeError,
    load_hf_checkpoint,
)
from tttv2.core.errors import SpecError
from tttv2.core.specs import ModelSpec

CONFIG = {
    "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 64,
    "intermediate_size": 48, "eos_token_id": [3, 4], "bos_token_id": 1,
}  # fmt: skip


def rules(spec: ModelSpec) -> RenameRules:
    return RenameRules([(r"stored\.(.*)", r"\1")])


def load(folder: Path, **kwargs):
    return load_hf_checkpoint(
        folder, model_spec=spec_of, rename_rules=rules, config_name="ToyConfig", **kwargs
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    from tttv2.blocks import TransformerStack

    torch.manual_seed(0)
    model = TransformerStack(spec_of(CONFIG))
    state = {f"stored.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    return tmp_path


def edit(folder: Path, config=None, tensors=None) -> Path:
    from safetensors.torch import load_file

    if config is not None:
        (folder / "config.json").write_text(json.dumps({**CONFIG, **config}))
    if tensors is not None:
        state = load_file(folder / "model.safetensors")
        tensors(state)
        save_file(state, folder / "model.safetensors")
    return folder


def test_loads_weights_ids_and_context(folder):
    loaded = load(folder)
    assert loaded.eos_token_ids == (3, 4) and loaded.bos_token_id == 1
    assert loaded.max_context == 64 and loaded.tokenizer is None
    assert loaded.spec.num_layers == 2
    assert loaded.model.final_norm.weight.dtype == torch.float32


@pytest.mark.parametrize(
    ("change", "what"),
    [({"hidden_size": 2**40, "num_attention_heads": 2**35}, "implies .* parameters \\(2 layers, hidden size 1099511627776"),
     ({"num_hidden_layers": 10_000_000}, "num_hidden_layers=10000000 but the safetensors"),
     ({"num_hidden_layers": 15}, "implies .* parameters \\(15 layers")],
)  # fmt: skip
def test_absurd_sizes_are_refused_before_allocating(folder, change, what):
    start = time.perf_counter()
    with pytest.raises(CheckpointSizeError, match=what) as info:
        load(edit(folder, config=change))
    assert "\n" not in str(info.value)
    assert time.perf_counter() - start < 30  # no allocation attempt, no per-layer walk


def test_weights_larger_than_free_memory_are_refused(folder, monkeypatch):
    import tttv2.blocks.weights.checks as checks

    monkeypatch.setattr(checks, "available_bytes", lambda device: 1000)
    with pytest.raises(CheckpointSizeError, match="GiB free"):
        load(folder)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8])
def test_integer_tensors_of_any_byte_count_are_refused_by_name(folder, dtype):
    def to_int(state):
        w = state["stored.final_norm.weight"]
        state["stored.final_norm.weight"] = (
            torch.zeros(w.numel() * 4 // dtype.itemsize, dtype=dtype)
            if dtype != torch.int32
            else torch.zeros_like(w, dtype=dtype)
        )

    with pytest.raises(WeightDtypeError, match=r"stored\.final_norm\.weight \((I32|U8)\)"):
        load(edit(folder, tensors=to_int))


def test_nonfinite_weights_are_refused_by_default_and_loaded_on_request(folder):
    def poison(state):
        state["stored.layers.1.ffn.down_proj.weight"][0, 0] = float("nan")
        state["stored.layers.1.ffn.down_proj.weight"][1, 1] = float("inf")

    edit(folder, tensors=poison)
    with pytest.raises(
        NonFiniteWeightError,
        match=r"'stored\.layers\.1\.ffn\.down_proj\.weight' holds 1 NaN and 1 infinite",
    ):
        load(folder)
    loaded = load(folder, allow_nonfinite_weights=True)
    assert loaded.model.layers[1].ffn.down_proj.weight.isnan().sum() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [({"eos_token_id": 1.0}, "eos_token_id"), ({"eos_token_id": [1, [2]]}, "eos_token_id"),
     ({"bos_token_id": [1]}, "bos_token_id"), ({"bos_token_id": True}, "bos_token_id"),
     ({"num_attention_heads": 0}, "num_attention_heads"), ({"hidden_size": "32"}, "hidden_size")],
)  # fmt: skip
def test_malformed_config_fields_are_one_line_spec_errors(folder, change, field):
    with pytest.raises(SpecError, match=rf"^ToyConfig\.{field}=.* is invalid: expected") as info:
        load(edit(folder, config=change))
    assert "\n" not in str(info.value)


def test_a_mapping_that_trips_on_a_value_still_raises_a_spec_error(folder):
    def fragile(config):
        return spec_of(config) if config["hidden_size"] // 2 else None  # TypeError on a list

    edit(folder, config={"hidden_size": [32]})
    with pytest.raises(SpecError, match="TypeError"):
        load_hf_checkpoint(folder, model_spec=fragile, rename_rules=rules)
