"""HFConfig: typed reads with one-line errors naming the field, eos/bos as int or list,
head_dim defaults, activation names, layer_types; and a fuzz target: any JSON-like config
fed through a mapping composed from the readers raises only SpecError."""

from __future__ import annotations

import pytest

from tttv2.blocks.hf_config import (
    FULL,
    SLIDING,
    HFConfig,
    HFConfigError,
    every_nth_full,
    read_activation,
    read_layer_types,
)


def test_typed_reads_refuse_other_json_types():
    cfg = HFConfig({"a": 4, "b": True, "c": 4.0, "d": "4", "e": 1e-5, "f": 3}, "C")
    assert (
        cfg.int("a") == 4
        and cfg.bool("b") is True
        and cfg.float("e") == 1e-5
        and cfg.float("f") == 3.0
    )
    for key in "bcd":
        with pytest.raises(
            HFConfigError, match=rf"^C\.{key}=.* is invalid: expected an integer >= 1$"
        ):
            cfg.int(key)
    with pytest.raises(
        HFConfigError, match=r"^C\.missing=None is invalid: expected present in config.json$"
    ):
        cfg.int("missing")
    assert cfg.int("missing", 7) == 7 and cfg.keys_read >= {"a", "b", "missing"}
    with pytest.raises(HFConfigError, match="a finite number"):
        HFConfig({"x": 10**400}, "C").float("x")
    with pytest.raises(HFConfigError, match="integer >= 1"):
        HFConfig({"x": 2**80}, "C").int("x")


@pytest.mark.parametrize(("value", "ids"), [(2, (2,)), ([2, 7], (2, 7)), (None, ()), ([], ())])
def test_token_ids_int_list_or_null(value, ids):
    assert HFConfig({"eos_token_id": value}).token_ids("eos_token_id") == ids


@pytest.mark.parametrize("value", [1.0, True, "2", [1, 2.0], [[1]], {"id": 1}, -1])
def test_token_ids_of_other_types_are_refused(value):
    with pytest.raises(HFConfigError, match=r"^config\.json\.eos_token_id="):
        HFConfig({"eos_token_id": value}).token_ids("eos_token_id")
    with pytest.raises(HFConfigError, match=r"bos_token_id=.*expected an integer >= 0 or null"):
        HFConfig({"bos_token_id": value if value != 1.0 else [1]}).token_id("bos_token_id")


def test_head_dim_default_and_zero_heads():
    assert HFConfig({"hidden_size": 64, "num_attention_heads": 4}).head_dim() == 16
    assert HFConfig({"hidden_size": 64, "num_attention_heads": 4, "head_dim": 32}).head_dim() == 32
    with pytest.raises(HFConfigError, match=r"num_attention_heads=0 is invalid"):
        HFConfig({"hidden_size": 64, "num_attention_heads": 0}).head_dim()


def test_activation_names_as_transformers_spells_them():
    for hf, ours in [("silu", "silu"), ("swish", "silu"), ("gelu_pytorch_tanh", "gelu_tanh"),
                     ("gelu_new", "gelu_tanh"), ("gelu", "gelu"), ("relu", "relu")]:  # fmt: skip
        assert read_activation(HFConfig({"hidden_act": hf})) == ours
    with pytest.raises(HFConfigError, match=r"hidden_act='swishglu'"):
        read_activation(HFConfig({"hidden_act": "swishglu"}))


def test_layer_types_and_patterns():
    assert every_nth_full(6, 3) == (SLIDING, SLIDING, FULL, SLIDING, SLIDING, FULL)
    cfg = HFConfig({"layer_types": [FULL, SLIDING]})
    assert read_layer_types(cfg, 2) == (FULL, SLIDING)
    with pytest.raises(HFConfigError, match="a list of 3 entries"):
        read_layer_types(cfg, 3)
    with pytest.raises(HFConfigError, match="layer_types"):
        read_layer_types(HFConfig({"layer_types": ["full", "x"]}), 2)
    assert read_layer_types(HFConfig({}), 2, default=every_nth_full(2, 2)) == (SLIDING, FULL)
