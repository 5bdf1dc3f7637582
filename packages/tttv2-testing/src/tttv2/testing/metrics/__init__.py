"""Comparison metrics. Each ``compare_*`` returns a report (``passed``, the values, and a
message naming the worst element); each ``assert_*`` raises ``AssertionError`` with it."""

from tttv2.testing.metrics.allclose import CloseReport, allclose, assert_close, compare_close
from tttv2.testing.metrics.errors import max_abs_error, max_rel_error
from tttv2.testing.metrics.pcc import PCCReport, assert_pcc, compare_pcc, pcc
from tttv2.testing.metrics.relative_error import (
    RelativeErrorReport,
    assert_relative_error,
    compare_relative_error,
)
from tttv2.testing.metrics.report import Element
from tttv2.testing.metrics.tokens import (
    TokenMatchReport,
    TopKReport,
    assert_tokens_match,
    assert_topk_agreement,
    compare_tokens,
    token_match_rate,
    topk_agreement,
)

__all__ = [
    "CloseReport",
    "Element",
    "PCCReport",
    "RelativeErrorReport",
    "TokenMatchReport",
    "TopKReport",
    "allclose",
    "assert_close",
    "assert_pcc",
    "assert_relative_error",
    "assert_tokens_match",
    "assert_topk_agreement",
    "compare_close",
    "compare_pcc",
    "compare_relative_error",
    "compare_tokens",
    "max_abs_error",
    "max_rel_error",
    "pcc",
    "token_match_rate",
    "topk_agreement",
]
