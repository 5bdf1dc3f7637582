"""Top-k agreement of logits and token match rate."""

import pytest
import torch

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
