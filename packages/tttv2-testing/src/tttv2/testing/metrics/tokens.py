"""Agreement of predicted tokens: top-k agreement of logits and match rate of token ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tttv2.testing.metrics.inputs import (
    as_tensor,
    nonfinite_problem,
    pair_problem,
    to_float64,
    unravel,
)
from tttv2.testing.metrics.report import ReportMixin, format_index


@dataclass(frozen=True, kw_only=True)
class TopKReport(ReportMixin):
    """Fraction of positions whose reference top-1 token is among the actual top-k."""

    passed: bool
    agreement: float
    k: int
    threshold: float
    num_positions: int
    first_disagreement: tuple[int, ...] | None
    message: str


def topk_agreement(
    actual_logits: Any, expected_logits: Any, k: int = 1, threshold: float = 1.0, *, label: str = ""
) -> TopKReport:
    """Compare logits ``[..., vocab]`` position by position: a position agrees when the
    reference's most likely token is among the ``k`` most likely of ``actual``."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    prefix = f"{label}: " if label else ""
    a, e = as_tensor(actual_logits), as_tensor(expected_logits)
    problem = pair_problem(a, e)
    if problem is None and a.dim() == 0:
        problem = "logits need a vocabulary dimension (got a scalar)"
    if problem is None and k > a.shape[-1]:
        problem = f"k={k} exceeds the vocabulary size {a.shape[-1]}"
    if problem is None:
        a, e = to_float64(a, e)
        problem = nonfinite_problem(a, e, allow_matching_inf=True)
        if problem is None and bool(torch.isinf(a).all(dim=-1).any()):
            problem = "a position has only infinite logits"
    if problem is not None:
        return TopKReport(
            passed=False,
            agreement=float("nan"),
            k=k,
            threshold=threshold,
            num_positions=0,
            first_disagreement=None,
            message=f"{prefix}top-{k} agreement failed: {problem}",
        )

    lead = a.shape[:-1]
    rows_a, rows_e = a.reshape(-1, a.shape[-1]), e.reshape(-1, e.shape[-1])
    want = rows_e.argmax(dim=-1)
    top = rows_a.topk(k, dim=-1).indices
    hit = (top == want[:, None]).any(dim=-1)
    n = hit.numel()
    agreement = float(hit.double().mean())
    passed = agreement >= threshold
    first = None
    summary = f"{prefix}top-{k} agreement {agreement:.4f} ({int(hit.sum())}/{n} positions)"
    if bool((~hit).any()):
        row = int((~hit).nonzero()[0])
        first = unravel(row, lead) if lead else ()
        tok = int(want[row])
        got = [int(t) for t in top[row]]
        summary += (
            f"; first disagreement at position {format_index(first)}: reference top-1 token {tok} "
            f"(reference logit {rows_e[row, tok].item():.6g}, actual logit {rows_a[row, tok].item():.6g}), "
            f"actual top-{k} {got} (actual logits {[round(rows_a[row, t].item(), 6) for t in got]})"
        )
    message = summary + (f" >= {threshold}" if passed else f" < {threshold}")
    return TopKReport(
        passed=passed,
        agreement=agreement,
        k=k,
        threshold=threshold,
        num_positions=n,
        first_disagreement=first,
        message=message,
    )


def assert_topk_agreement(
    actual_logits: Any, expected_logits: Any, k: int = 1, threshold: float = 1.0, *, label: str = ""
) -> TopKReport:
    report = topk_agreement(actual_logits, expected_logits, k, threshold, label=label)
    report.raise_if_failed()
    return report


@dataclass(frozen=True, kw_only=True)
class TokenMatchReport(ReportMixin):
    """Fraction of positions where two token sequences hold the same id."""

    passed: bool
    match_rate: float
    threshold: float
    num_positions: int
    first_mismatch: int | None
    message: str


def token_match_rate(actual_tokens: Any, expected_tokens: Any) -> float:
    """Matching positions over the longer length (missing tokens count as mismatches)."""
    return compare_tokens(actual_tokens, expected_tokens, threshold=0.0).match_rate


def compare_tokens(
    actual_tokens: Any, expected_tokens: Any, threshold: float = 1.0, *, label: str = ""
) -> TokenMatchReport:
    """Compare two 1-D sequences of integer token ids (lists, arrays or tensors); the
    sequences may differ in length (missing tokens count as mismatches).

    Raises ``ValueError`` for floating, complex or bool input (logits or probabilities are
    not token ids: compare logits with :func:`topk_agreement`, or pass ``argmax(-1)``) and
    for input that is not 1-D (compare a batch row by row), so ``first_mismatch`` is
    always a position in the sequence."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    prefix = f"{label}: " if label else ""
    a = _token_ids(actual_tokens, "actual_tokens")
    e = _token_ids(expected_tokens, "expected_tokens")
    n = max(len(a), len(e))
    if n == 0:
        return TokenMatchReport(
            passed=False,
            match_rate=float("nan"),
            threshold=threshold,
            num_positions=0,
            first_mismatch=None,
            message=f"{prefix}token match failed: nothing to compare (both sequences are empty)",
        )
    matches = [i < len(a) and i < len(e) and a[i] == e[i] for i in range(n)]
    rate = sum(matches) / n
    passed = rate >= threshold
    message = f"{prefix}token match rate {rate:.4f} ({sum(matches)}/{n})" + (
        f" >= {threshold}" if passed else f" < {threshold}"
    )
    first = next((i for i, ok in enumerate(matches) if not ok), None)
    if len(a) != len(e):
        message += f"; lengths differ: actual {len(a)}, expected {len(e)}"
    if first is not None:
        got = a[first] if first < len(a) else "<missing>"
        want = e[first] if first < len(e) else "<missing>"
        message += (
            f"; first mismatch at position {first}: actual {got}, expected {want}; "
            f"actual[{first}:{first + 5}]={a[first : first + 5]}, expected[{first}:{first + 5}]={e[first : first + 5]}"
        )
    return TokenMatchReport(
        passed=passed,
        match_rate=rate,
        threshold=threshold,
        num_positions=n,
        first_mismatch=first,
        message=message,
    )


def _token_ids(tokens: Any, argument: str) -> list[int]:
    """``tokens`` as a list of ints, or a ``ValueError`` naming ``argument`` when they are
    not a 1-D sequence of integers."""
    t = as_tensor(tokens)
    if t.dim() != 1:
        raise ValueError(
            f"{argument} has shape {tuple(t.shape)}: expected a 1-D sequence of token ids "
            "(compare a batch row by row, e.g. compare_tokens(actual[i], expected[i]))"
        )
    if t.numel() and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise ValueError(
            f"{argument} has dtype {t.dtype} (values {t[:5].tolist()}{'...' if t.numel() > 5 else ''}): "
            "expected integer token ids; for logits use topk_agreement or pass logits.argmax(-1)"
        )
    return [int(v) for v in t.tolist()]


def assert_tokens_match(
    actual_tokens: Any, expected_tokens: Any, threshold: float = 1.0, *, label: str = ""
) -> TokenMatchReport:
    report = compare_tokens(actual_tokens, expected_tokens, threshold, label=label)
    report.raise_if_failed()
    return report
