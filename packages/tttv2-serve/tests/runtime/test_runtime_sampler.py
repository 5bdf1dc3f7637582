"""Each sampling filter against small distributions worked out by hand, and the sampler's
draws against those distributions."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_helpers import assert_close

from tttv2.serve.runtime import (
    SamplingParams,
    SamplingRow,
    apply_count_penalties,
    apply_repetition_penalty,
    apply_temperature,
    greedy_tokens,
    min_p_filter,
    probabilities,
    sample,
    top_k_filter,
    top_p_filter,
)

# probabilities 0.4, 0.3, 0.2, 0.1 as logits
P = torch.tensor([0.4, 0.3, 0.2, 0.1])
LOGITS = P.log()[None, :]


def dist(logits):
    return logits.softmax(-1)[0]


def test_top_k_keeps_the_k_largest():
    assert_close(dist(top_k_filter(LOGITS, torch.tensor([2]))), torch.tensor([4 / 7, 3 / 7, 0, 0]))
    assert_close(dist(top_k_filter(LOGITS, torch.tensor([0]))), P)  # off


def test_top_k_keeps_ties_with_the_kth():
    logits = torch.tensor([[1.0, 2.0, 2.0, 0.0]])
    assert torch.isfinite(top_k_filter(logits, torch.tensor([2]))).tolist() == [
        [False, True, True, False]
    ]
    assert torch.isfinite(top_k_filter(logits, torch.tensor([1]))).tolist() == [
        [False, True, True, False]
    ]


def test_top_p_keeps_the_smallest_set_reaching_p():
    # 0.4 < 0.65 so the second token is needed; 0.4 + 0.3 = 0.7 >= 0.65 so the third is not
    assert_close(
        dist(top_p_filter(LOGITS, torch.tensor([0.65]))), torch.tensor([4 / 7, 3 / 7, 0, 0])
    )
    assert_close(dist(top_p_filter(LOGITS, torch.tensor([0.35]))), torch.tensor([1.0, 0, 0, 0]))
    assert_close(dist(top_p_filter(LOGITS, torch.tensor([0.85]))), torch.tensor([4, 3, 2, 0]) / 9)
    assert_close(dist(top_p_filter(LOGITS, torch.tensor([1.0]))), P)


def test_min_p_keeps_tokens_above_a_fraction_of_the_top():
    # threshold 0.45 * 0.4 = 0.18: tokens with 0.4, 0.3, 0.2 stay; 0.6 * 0.4 = 0.24: two stay
    assert_close(dist(min_p_filter(LOGITS, torch.tensor([0.45]))), torch.tensor([4, 3, 2, 0]) / 9)
    assert_close(dist(min_p_filter(LOGITS, torch.tensor([0.6]))), torch.tensor([4, 3, 0, 0]) / 7)
    assert_close(dist(min_p_filter(LOGITS, torch.tensor([0.8]))), torch.tensor([1.0, 0, 0, 0]))


def test_temperature_sharpens_and_flattens():
    # softmax(log p / T) is proportional to p ** (1 / T)
    for t in (0.5, 2.0):
        expected = P ** (1 / t) / (P ** (1 / t)).sum()
        assert_close(dist(apply_temperature(LOGITS, torch.tensor([t]))), expected)


def test_repetition_penalty_divides_positive_multiplies_negative():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(logits, seen, torch.tensor([2.0]))
    assert out.tolist() == [[1.0, -2.0, 0.5, 0.0]]


def test_presence_and_frequency_penalties():
    logits = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    counts = torch.tensor([[0.0, 3.0, 1.0, 0.0]])
    out = apply_count_penalties(logits, counts, torch.tensor([0.5]), torch.tensor([0.25]))
    assert out.tolist() == [[1.0, 1.0 - 0.75 - 0.5, 1.0 - 0.25 - 0.5, 1.0]]


def test_filters_apply_in_order_with_renormalisation():
    # top_k=3 -> [4,3,2,0]/9; top_p=0.5: 4/9 < 0.5 so [4,3,0,0]/7; min_p=0.8: 3/7 < 0.8*4/7 -> [1,0,0,0]
    row = SamplingRow(SamplingParams(temperature=1.0, top_k=3, top_p=0.5))
    assert_close(probabilities(LOGITS, [row])[0], torch.tensor([4 / 7, 3 / 7, 0, 0]))
    row = SamplingRow(SamplingParams(temperature=1.0, top_k=3, top_p=0.5, min_p=0.8))
    assert_close(probabilities(LOGITS, [row])[0], torch.tensor([1.0, 0, 0, 0]))


def test_penalties_see_prompt_for_repetition_and_output_for_presence():
    logits = torch.tensor([[2.0, 2.0, 2.0, 2.0]])
    row = SamplingRow(
        SamplingParams(repetition_penalty=2.0, presence_penalty=1.0), None, (0,), (1, 1)
    )
    p = probabilities(logits, [row])  # greedy: one-hot of the argmax of [1.0, 0.0, 2.0, 2.0]
    assert p.tolist() == [[0.0, 0.0, 1.0, 0.0]]


def test_draws_follow_the_filtered_distribution():
    row = SamplingRow(
        SamplingParams(temperature=1.0, top_k=3, seed=0), torch.Generator().manual_seed(0)
    )
    n = 3000
    counts = torch.bincount(torch.tensor([sample(LOGITS, [row])[0] for _ in range(n)]), minlength=4)
    expected = torch.tensor([4, 3, 2, 0]) / 9
    assert counts[3] == 0
    assert (counts / n - expected).abs().max() < 4 * math.sqrt(0.25 / n)


def test_seeded_row_ignores_the_rest_of_the_batch():
    def draws(extra_rows: int) -> list[int]:
        gen = torch.Generator().manual_seed(7)
        mine = SamplingRow(SamplingParams(temperature=1.3, top_p=0.95, seed=7), gen)
        out = []
        for step in range(30):
            logits = torch.randn(1 + extra_rows, 50, generator=torch.Generator().manual_seed(step))
            logits[0] = torch.linspace(-2, 2, 50)
            others = [SamplingRow(SamplingParams(temperature=0.8)) for _ in range(extra_rows)]
            out.append(sample(logits, [mine, *others])[0])
        return out

    assert draws(0) == draws(5) == draws(17)


@settings(max_examples=40, deadline=None)
@given(
    logits=st.lists(st.floats(-8, 8), min_size=2, max_size=12),
    top_k=st.integers(0, 12),
    top_p=st.floats(0.01, 1.0),
    min_p=st.floats(0.0, 1.0),
    temperature=st.floats(0.05, 4.0),
)
def test_filtered_distribution_is_a_distribution_over_the_most_likely(
    logits, top_k, top_p, min_p, temperature
):
    x = torch.tensor([logits])
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    p = probabilities(x, [SamplingRow(params)])[0]
    assert abs(float(p.sum()) - 1) < 1e-5 and (p >= 0).all()
    assert p[x[0].argmax()] > 0  # the most likely token always survives
    kept = p > 0
    # whatever is kept is at least as likely as whatever is dropped
    if (~kept).any():
        assert x[0][kept].min() >= x[0][~kept].max()
    if top_k:
        assert kept.sum() <= max(top_k, int((x[0] == x[0][kept].min()).sum()) + top_k)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_greedy_tokens_match_torch_argmax_with_ties_and_nan(dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 1000, generator=g).to(dtype)
    logits[1, 10] = logits[1, 700] = 50.0  # a tie: the first index wins
    logits[2, 333] = float("nan")  # NaN wins, as in torch.argmax
    logits[3] = 0.0
    got = greedy_tokens(logits)
    assert got == logits.argmax(dim=-1).tolist()
    assert got[1] == 10 and got[2] == 333 and got[3] == 0
    assert greedy_tokens(logits[:, ::2]) == logits[:, ::2].argmax(dim=-1).tolist()  # strided rows


def test_all_greedy_sample_is_the_argmax_and_penalties_still_apply():
    logits = torch.tensor([[0.0, 3.0, 2.9], [1.0, 0.0, 0.5]])
    plain = SamplingRow(SamplingParams())
    assert sample(logits, [plain, plain]) == [1, 0]
    penalised = SamplingRow(SamplingParams(repetition_penalty=2.0), prompt_ids=[1])
    assert sample(logits, [penalised, plain]) == [2, 0]
