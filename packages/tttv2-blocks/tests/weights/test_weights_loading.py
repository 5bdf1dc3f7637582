"""load_weights: names mapped with rename rules, every mismatch reported in one error,
dtype casting, tied weights, progress, and one checkpoint tensor alive at a time."""

from __future__ import annotations

import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from tttv2.blocks.weights import (
    RenameRules,
    SafetensorsCheckpoint,
    WeightMismatchError,
    load_weights,
    plan_load,
)


class Tiny(torch.nn.Module):
    def __init__(self, tied: bool = False) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(2))
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        if tied:
            self.head.weight = self.embed.weight
        self.register_buffer("scratch", torch.zeros(3), persistent=False)


HF_RULES = RenameRules(
    [
        (r"model\.embed_tokens\.weight", "embed.weight"),
        (r"model\.layers\.(\d+)\.proj\.(weight|bias)", r"layers.\1.\2"),
        (r"model\.norm\.(weight|bias)", r"norm.\1"),
        (r"lm_head\.weight", "head.weight"),
        (r".*\.rotary_emb\.inv_freq", None),
    ]
)


def hf_state(seed: int = 0, tied: bool = False) -> dict[str, torch.Tensor]:
    src = Tiny(tied)
    torch.nn.init.normal_(src.norm.weight, generator=torch.Generator().manual_seed(seed))
    names = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    names |= {"norm.bias": "model.norm.bias", "head.weight": "lm_head.weight"}
    out = {}
    for k, v in src.state_dict().items():
        if k.startswith("layers."):
            i, leaf = k.split(".")[1:]
            out[f"model.layers.{i}.proj.{leaf}"] = v.clone()
        else:
            out[names[k]] = v.clone()
    if tied:
        del out["lm_head.weight"]
    return out


def save(folder, state, shards: int = 1) -> None:
    names = sorted(state)
    for s in range(shards):
        save_file(
            {n: state[n].contiguous() for n in names[s::shards]}, folder / f"part{s}.safetensors"
        )


def test_loads_every_tensor_like_load_state_dict(tmp_path):
    state = hf_state()
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(2)
    save(tmp_path, state, shards=3)
    model = Tiny()
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        report = load_weights(model, ckpt, HF_RULES)
    assert report.skipped == ("model.layers.0.self_attn.rotary_emb.inv_freq",)
    # independent reference: the safetensors library plus torch's load_state_dict
    ref = Tiny()
    merged = {}
    for part in tmp_path.glob("*.safetensors"):
        merged |= load_file(part)
    ref.load_state_dict({HF_RULES(k): v for k, v in merged.items() if HF_RULES(k)})
    for (n1, p1), (n2, p2) in zip(
        model.state_dict().items(), ref.state_dict().items(), strict=True
    ):
        assert n1 == n2 and torch.equal(p1, p2)


def test_all_problems_reported_together_by_name(tmp_path):
    state = hf_state()
    del state["model.norm.bias"]  # missing
    del state["model.layers.1.proj.weight"]  # missing
    state["model.layers.0.proj.weight"] = torch.zeros(4, 5)  # mis-shaped
    state["model.extra.weight"] = torch.zeros(1)  # unexpected
    save(tmp_path, state)
    model = Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with SafetensorsCheckpoint(tmp_path) as ckpt, pytest.raises(WeightMismatchError) as info:
        load_weights(model, ckpt, HF_RULES)
    err = info.value
    assert sorted(err.missing) == ["layers.1.weight", "norm.bias"]
    assert err.unexpected == ["model.extra.weight"]
    assert err.mismatched == [("model.layers.0.proj.weight", (4, 5), (4, 4))]
    msg = str(err)
    assert "\n" not in msg
    for word in (
        "layers.1.weight",
        "norm.bias",
        "model.extra.weight",
        "model.layers.0.proj.weight (checkpoint [4, 5], model [4, 4])",
    ):
        assert word in msg
    for k, v in model.state_dict().items():  # nothing was copied
        assert torch.equal(v, before[k])


def test_renamed_onto_an_unknown_parameter_shows_both_names(tmp_path):
    state = hf_state()
    state["model.layers.7.proj.weight"] = torch.zeros(4, 4)
    save(tmp_path, state)
    with (
        SafetensorsCheckpoint(tmp_path) as ckpt,
        pytest.raises(
            WeightMismatchError, match=r"model\.layers\.7\.proj\.weight \(as layers\.7\.weight\)"
        ),
    ):
        plan_load(Tiny(), ckpt, HF_RULES)


def test_two_tensors_onto_one_parameter_is_an_error(tmp_path):
    state = hf_state()
    state["model.embed_tokens.weight.copy"] = state["model.embed_tokens.weight"].clone()
    save(tmp_path, state)
    rules = RenameRules(
        [
            (r"model\.embed_tokens\.weight\.copy", "embed.weight"),
            *[(p.pattern, r) for p, r in HF_RULES.rules],
        ]
    )
    with (
        SafetensorsCheckpoint(tmp_path) as ckpt,
        pytest.raises(WeightMismatchError, match="already loaded from"),
    ):
        plan_load(Tiny(), ckpt, rules)


def test_tied_weight_loads_from_either_name(tmp_path):
    state = hf_state(tied=True)
    save(tmp_path, state)
    model = Tiny(tied=True)
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        load_weights(model, ckpt, HF_RULES)
    assert model.head.weight is model.embed.weight
    assert torch.equal(model.head.weight, state["model.embed_tokens.weight"])
    untied = Tiny(tied=False)
    with SafetensorsCheckpoint(tmp_path) as ckpt, pytest.raises(WeightMismatchError) as info:
        load_weights(untied, ckpt, HF_RULES)
    assert info.value.missing == ["head.weight"]


def test_dtype_cast_keeps_ties_and_skips_integer_buffers(tmp_path):
    state = hf_state(tied=True)
    save(tmp_path, state)
    model = Tiny(tied=True)
    model.register_buffer("counts", torch.zeros(2, dtype=torch.int64))
    state["counts"] = torch.tensor([3, 4])
    save(tmp_path, state)
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        load_weights(model, ckpt, HF_RULES, dtype=torch.bfloat16)
    assert model.embed.weight.dtype == torch.bfloat16 and model.head.weight is model.embed.weight
    assert model.counts.dtype == torch.int64 and model.counts.tolist() == [3, 4]
    assert model.scratch.dtype == torch.float32  # non-persistent buffers are not touched
    assert torch.equal(model.embed.weight, state["model.embed_tokens.weight"].to(torch.bfloat16))


def test_progress_reports_bytes_up_to_the_total(tmp_path):
    save(tmp_path, hf_state(), shards=2)
    calls = []
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        load_weights(Tiny(), ckpt, HF_RULES, progress=lambda n, d, t: calls.append((n, d, t)))
        total = ckpt.total_bytes
    assert len(calls) == len(hf_state())
    done = [d for _, d, _ in calls]
    assert done == sorted(done) and done[-1] == total and {t for *_, t in calls} == {total}


def test_only_one_checkpoint_tensor_is_alive_at_a_time(tmp_path):
    save(tmp_path, hf_state())
    alive: list[weakref.ref] = []
    max_alive = 0
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        real_get = ckpt.get

        def tracking_get(name):
            nonlocal max_alive
            t = real_get(name)
            alive.append(weakref.ref(t))
            max_alive = max(max_alive, sum(r() is not None for r in alive))
            return t

        ckpt.get = tracking_get
        load_weights(Tiny(), ckpt, HF_RULES)
    assert len(alive) == len(hf_state()) and max_alive == 1


def test_rename_rules_first_full_match_wins():
    rules = RenameRules({r"a\.(\d+)": r"b.\1", r"a\..*": "c", r"skip": None})
    assert rules("a.3") == "b.3" and rules("a.x") == "c" and rules("skip") is None
    assert rules("xa.3") == "xa.3"  # no partial matches


@settings(max_examples=15, deadline=None)
@given(
    dims=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=6),
    shards=st.integers(1, 3),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
)
def test_property_random_modules_round_trip(tmp_path_factory, dims, shards, dtype):
    folder = tmp_path_factory.mktemp("ckpt")
    src = torch.nn.Sequential(*(torch.nn.Linear(i, o) for i, o in dims))
    state = {f"w.{k}": v.detach().clone() for k, v in src.state_dict().items()}
    save(folder, state, shards=min(shards, len(state)))
    dst = torch.nn.Sequential(*(torch.nn.Linear(i, o) for i, o in dims))
    with SafetensorsCheckpoint(folder) as ckpt:
        load_weights(dst, ckpt, RenameRules([(r"w\.(.*)", r"\1")]), dtype=dtype)
    for k, v in dst.state_dict().items():
        assert v.dtype == dtype and torch.equal(v, state[f"w.{k}"].to(dtype))
