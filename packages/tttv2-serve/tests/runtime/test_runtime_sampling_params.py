"""Sampling and stopping parameters are validated with errors naming field and range."""

import math

import pytest

from tttv2.serve.runtime import InvalidParameterError, SamplingParams, StopConditions

BAD_SAMPLING = [
    ("temperature", -0.1, "0 (greedy) or a float in [0.01, 100]"),
    ("temperature", math.inf, "0 (greedy) or a float in [0.01, 100]"),
    ("temperature", math.nan, "0 (greedy) or a float in [0.01, 100]"),
    ("temperature", "hot", "0 (greedy) or a float in [0.01, 100]"),
    ("temperature", True, "0 (greedy) or a float in [0.01, 100]"),
    ("temperature", False, "0 (greedy) or a float in [0.01, 100]"),
    ("temperature", 1e-300, "[0.01, 100]"),  # 0 in float32: logits / T overflow
    ("temperature", 0.009, "[0.01, 100]"),
    ("temperature", 1e300, "[0.01, 100]"),  # inf in float32
    ("top_k", -1, ">= 0"),
    ("top_k", 2.5, ">= 0"),
    ("top_k", True, ">= 0"),
    ("top_p", 0.0, "(0, 1]"),
    ("top_p", 1.5, "(0, 1]"),
    ("min_p", -0.2, "[0, 1]"),
    ("min_p", 1.01, "[0, 1]"),
    ("repetition_penalty", 0.0, "> 0"),
    ("repetition_penalty", -1.0, "> 0"),
    ("presence_penalty", 2.5, "[-2, 2]"),
    ("frequency_penalty", -3.0, "[-2, 2]"),
    ("seed", -1, "[0, 2**63)"),
    ("seed", 1.5, "[0, 2**63)"),
    ("seed", 2**63, "[0, 2**63)"),
]


@pytest.mark.parametrize(("field", "value", "valid"), BAD_SAMPLING)
def test_bad_sampling_params_name_field_and_range(field, value, valid):
    with pytest.raises(ValueError) as err:
        SamplingParams(**{field: value})
    assert isinstance(err.value, InvalidParameterError)
    message = str(err.value)
    assert f"SamplingParams.{field}=" in message and valid in message


def test_valid_sampling_params_and_greedy_default():
    assert SamplingParams().greedy
    p = SamplingParams(
        temperature=0.7, top_k=5, top_p=0.9, min_p=0.05, repetition_penalty=1.2, seed=0
    )
    assert not p.greedy and p.has_penalties


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 2.0}, "max_new_tokens"),
        ({"eos_token_ids": (-1,)}, "eos_token_ids"),
        ({"eos_token_ids": ("x",)}, "eos_token_ids"),
        ({"stop_strings": ("",)}, "stop_strings"),
        ({"stop_strings": (3,)}, "stop_strings"),
    ],
)
def test_bad_stop_conditions(kwargs, field):
    with pytest.raises(InvalidParameterError, match=f"StopConditions.{field}="):
        StopConditions(**kwargs)


def test_stop_conditions_normalise_single_values():
    s = StopConditions(eos_token_ids=2, stop_strings="\n\n")
    assert s.eos_token_ids == (2,) and s.stop_strings == ("\n\n",)
