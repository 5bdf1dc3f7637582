"""Top-k agreement of logits and token match rate: values, rejected inputs, and failures on
the mistakes they exist to catch (tokens or logits shifted by one position)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.testing import (
    assert_tokens_match,
    assert_topk_agreement,
    compare_tokens,
    token_match_rate,
    topk_agreement,
)


def _logits(tokens, vocab=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(len(tokens), vocab, generator=gen)
    out[torch.arange(len(tokens)), torch.tensor(tokens)] += 10.0
    return out


def test_agreement_of_identical_logits():
    logits = _logits([1, 2, 3, 4])
    report = topk_agreement(logits, logits.clone())
    assert report.passed and report.agreement == 1.0 and report.first_disagreement is None


def test_disagreement_is_counted_and_located():
    expected = _logits([1, 2, 3, 4])
    actual = _logits([1, 2, 7, 4])
    report = topk_agreement(actual, expected, k=1, threshold=1.0)
    assert not report.passed and report.agreement == 0.75
    assert report.first_disagreement == (2,)
    assert "reference top-1 token 3" in report.message and "[7]" in report.message
    assert topk_agreement(actual, expected, threshold=0.75).passed
    with pytest.raises(AssertionError, match="position \\(2,\\)"):
        assert_topk_agreement(actual, expected)


def test_top_k_accepts_reference_token_in_actual_top_k():
    expected = _logits([3])
    actual = expected.clone()
    actual[0, 5] = actual[0, 3] + 1.0  # 3 becomes the runner-up
    assert not topk_agreement(actual, expected, k=1).passed
    assert topk_agreement(actual, expected, k=2).passed


def test_batched_positions_report_multi_dimensional_index():
    expected = torch.stack([_logits([1, 2, 3]), _logits([4, 5, 6], seed=1)])
    actual = expected.clone()
    actual[1, 2, 0] = 100.0
    report = topk_agreement(actual, expected)
    assert report.num_positions == 6 and report.first_disagreement == (1, 2)


def test_invalid_logits_fail():
    good = _logits([1, 2])
    bad = good.clone()
    bad[0, 0] = float("nan")
    assert "NaN" in topk_agreement(bad, good).message
    assert not topk_agreement(good, good[:1]).passed
    assert "exceeds the vocabulary" in topk_agreement(good, good, k=11).message
    with pytest.raises(ValueError):
        topk_agreement(good, good, k=0)


def test_token_match_rate_and_first_mismatch():
    assert token_match_rate([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    report = compare_tokens([1, 2, 9, 4], torch.tensor([1, 2, 3, 4]))
    assert not report.passed and report.match_rate == 0.75 and report.first_mismatch == 2
    assert "actual 9, expected 3" in report.message
    with pytest.raises(AssertionError, match="first mismatch at position 2"):
        assert_tokens_match([1, 2, 9, 4], [1, 2, 3, 4])
    assert compare_tokens([1, 2, 9, 4], [1, 2, 3, 4], threshold=0.75).passed


def test_length_difference_counts_as_mismatch():
    report = compare_tokens([1, 2], [1, 2, 3, 4])
    assert report.match_rate == 0.5 and report.first_mismatch == 2
    assert "lengths differ" in report.message and "<missing>" in report.message


def test_empty_sequences_fail():
    assert not compare_tokens([], []).passed


def test_float_tokens_are_rejected_not_truncated():
    with pytest.raises(
        ValueError, match=r"actual_tokens has dtype torch.float32 .*1.7.*integer token ids"
    ):
        compare_tokens(torch.tensor([1.7, 2.2]), [1, 2])
    with pytest.raises(ValueError, match="expected_tokens has dtype torch.float32"):
        compare_tokens([1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="topk_agreement"):  # logits are not token ids
        token_match_rate(_logits([1, 2])[0], list(range(10)))
    with pytest.raises(ValueError, match="torch.bool"):
        compare_tokens(torch.tensor([True, False]), [1, 0])


def test_only_1d_sequences_are_compared():
    batch = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match=r"actual_tokens has shape \(2, 3\).*1-D"):
        compare_tokens(batch, batch.clone())
    with pytest.raises(ValueError, match=r"expected_tokens has shape \(\)"):
        compare_tokens([7], torch.tensor(7))
    # integer dtypes of any width, lists and numpy arrays are token ids
    np = pytest.importorskip("numpy")
    assert compare_tokens(
        torch.tensor([1, 2, 3], dtype=torch.int32), np.array([1, 2, 3], dtype=np.uint16)
    ).passed


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 50_000), min_size=2, max_size=64).filter(lambda s: len(set(s)) > 1))
def test_a_sequence_shifted_by_one_fails(expected):
    shifted = expected[-1:] + expected[:-1]  # every token one position late
    report = compare_tokens(shifted, expected)
    first = next(i for i in range(len(expected)) if expected[i] != expected[i - 1])
    assert not report.passed and report.match_rate < 1.0
    assert report.first_mismatch == first
    assert f"actual {shifted[first]}, expected {expected[first]}" in report.message
    dropped = compare_tokens(expected[1:], expected)  # the first token lost
    assert not dropped.passed and "lengths differ" in dropped.message


def test_logits_shifted_by_one_position_fail():
    tokens = [1, 2, 3, 4, 5, 6]
    expected = _logits(tokens)
    shifted = torch.roll(expected, 1, dims=0)  # position t carries position t-1's logits
    report = topk_agreement(shifted, expected)
    assert not report.passed and report.agreement == 0.0 and report.first_disagreement == (0,)
    assert not topk_agreement(shifted, expected, k=1, threshold=0.5).passed
    ahead = topk_agreement(expected[1:], expected[:-1])  # predicting one token too far
    assert not ahead.passed and ahead.agreement == 0.0
    batch = torch.stack([expected, _logits(tokens[::-1], seed=1)])
    report = topk_agreement(torch.roll(batch, 1, dims=1), batch)
    assert not report.passed and report.first_disagreement == (0, 0) and report.num_positions == 12
