"""The engine joins the logits rows it samples from without copying when they already lie
one after another in one tensor, and copies (``torch.cat``) in every other case."""

from __future__ import annotations

import torch

from tttv2.serve.runtime.engine import joined_rows


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def test_adjacent_rows_of_one_pass_are_a_view() -> None:
    logits = torch.randn(5, 11)
    rows = [logits[0:1], logits[1:3], logits[3:4]]
    joined = joined_rows(rows)
    assert _same(joined, torch.cat(rows))
    assert joined.data_ptr() == logits.data_ptr()  # no copy
    logits[2, 4] = 123.0  # and truly a view of the pass's logits
    assert joined[2, 4] == 123.0
    every_other = [logits[0:1, ::2], logits[1:2, ::2]]  # strided, still one after another
    assert _same(joined_rows(every_other), torch.cat(every_other))


def test_rows_with_gaps_reordered_or_from_two_passes_are_copied() -> None:
    logits, other = torch.randn(5, 11), torch.randn(3, 11)
    cases = {
        "gap": [logits[0:1], logits[2:3]],
        "reordered": [logits[1:2], logits[0:1]],
        "two passes": [logits[3:5], other[0:1]],
        "not views": [torch.randn(1, 11), torch.randn(2, 11)],
        "shifted columns": [logits[0:1, :10], logits[1:2, 1:]],
    }
    for name, rows in cases.items():
        joined = joined_rows(rows)
        assert _same(joined, torch.cat(rows)), name
        assert all(joined.data_ptr() != r.data_ptr() for r in rows), name


def test_one_row_is_itself() -> None:
    row = torch.randn(4, 8)[1:2]
    assert joined_rows([row]) is row
