"""Model plugin discovery: entry points of installed distributions (a real dist-info made
in the test), in-process registration, listing, and errors that name what is installed."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest
import torch

from tttv2.core.errors import UnknownNameError
from tttv2.core.model_plugins import (
    ENTRY_POINT_GROUP,
    LoadedModel,
    ModelLoadError,
    architecture_of,
    find_model_plugin,
    list_model_plugins,
    load_model,
    read_hf_config,
    register_model_plugin,
    unregister_model_plugin,
)
from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)

PLUGIN_SOURCE = textwrap.dedent(
    """
    from tttv2.core.model_plugins import LoadedModel

    calls = []

    def load(checkpoint_dir, *, dtype, device, progress=None):
        calls.append((str(checkpoint_dir), dtype, str(device)))
        if progress is not None:
            progress("w", 1, 1)
        return LoadedModel(model="model", spec=None, hf_config={}, tokenizer=None,
                           eos_token_ids=(2,), bos_token_id=1, max_context=16)
    """
)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A distribution on sys.path advertising three plugins: a good one, one whose import
    fails, and one without load()."""
    site = tmp_path / "site"
    (site / "fakeplug-1.0.dist-info").mkdir(parents=True)
    (site / "fakeplug-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n"
    )
    (site / "fakeplug-1.0.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "FakeForCausalLM = fakeplug_model\n"
        "BrokenForCausalLM = fakeplug_missing_module\n"
        "NoLoadForCausalLM = textwrap\n"
    )
    (site / "fakeplug_model.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    sys.modules.pop("fakeplug_model", None)
    from tttv2.core import model_plugins

    for name in ("FakeForCausalLM", "BrokenForCausalLM", "NoLoadForCausalLM"):
        model_plugins._loaded.pop(name, None)


def write_checkpoint(folder, architectures=("FakeForCausalLM",)):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"architectures": list(architectures)}))
    return folder


def test_entry_points_are_listed_and_loaded(installed, tmp_path):
    listed = list_model_plugins()
    assert listed["FakeForCausalLM"] == "fakeplug_model"
    assert list(listed) == sorted(listed)
    plugin = find_model_plugin("FakeForCausalLM")
    assert plugin is sys.modules["fakeplug_model"]
    seen = []
    loaded = load_model(
        write_checkpoint(tmp_path / "ck"), dtype=torch.bfloat16, progress=lambda *a: seen.append(a)
    )
    assert isinstance(loaded, LoadedModel) and loaded.eos_token_ids == (2,)
    assert plugin.calls == [(str(tmp_path / "ck"), torch.bfloat16, "cpu")] and seen == [("w", 1, 1)]


def test_unknown_architecture_lists_installed_ones(installed):
    with pytest.raises(UnknownNameError) as info:
        find_model_plugin("MambaForCausalLM")
    msg = str(info.value)
    assert "'MambaForCausalLM'" in msg and "FakeForCausalLM" in msg


def test_broken_plugins_are_reported_by_name(installed):
    with pytest.raises(
        ModelLoadError, match=r"'BrokenForCausalLM' \(fakeplug_missing_module\) failed to load"
    ):
        find_model_plugin("BrokenForCausalLM")
    with pytest.raises(ModelLoadError, match=r"'NoLoadForCausalLM'.*has no load"):
        find_model_plugin("NoLoadForCausalLM")
    assert find_model_plugin("FakeForCausalLM")  # one broken plugin does not hide the others


def tiny_spec() -> ModelSpec:
    attn = AttentionSpec(hidden_dim=8, num_heads=2, max_seq_len=16)
    layer = DecoderLayerSpec(
        attention=attn,
        ffn=FeedForwardSpec(hidden_dim=8, intermediate_dim=16),
        attn_norm=NormSpec(dim=8),
        ffn_norm=NormSpec(dim=8),
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=11, hidden_dim=8),
        layers=(layer,),
        final_norm=NormSpec(dim=8),
        lm_head=LMHeadSpec(hidden_dim=8, vocab_size=11),
        max_seq_len=16,
    )


class ObjectPlugin:
    def load(self, checkpoint_dir, *, dtype, device, progress=None):
        return LoadedModel(
            torch.nn.Identity(), tiny_spec(), read_hf_config(checkpoint_dir), None, (), None, 16
        )


def test_registered_plugin_wins_and_can_be_removed(tmp_path):
    register_model_plugin("ObjForCausalLM", ObjectPlugin())
    try:
        assert list_model_plugins()["ObjForCausalLM"] == "registered"
        loaded = load_model(write_checkpoint(tmp_path / "c", ["ObjForCausalLM", "Other"]))
        assert (
            loaded.spec.num_layers == 1 and loaded.hf_config["architectures"][0] == "ObjForCausalLM"
        )
    finally:
        unregister_model_plugin("ObjForCausalLM")
    assert "ObjForCausalLM" not in list_model_plugins()
    with pytest.raises(ModelLoadError, match="has no load"):
        register_model_plugin("X", object())


def test_bad_checkpoint_folders(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        read_hf_config(tmp_path)
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(ModelLoadError, match="expected a JSON object"):
        read_hf_config(tmp_path)
    for bad in ({}, {"architectures": []}, {"architectures": [3]}):
        with pytest.raises(ModelLoadError, match="names no architecture"):
            architecture_of(bad)
