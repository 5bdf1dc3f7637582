"""tttv2.testing: the test toolkit of TTTv2 blocks and models.

* :mod:`tttv2.testing.metrics` - PCC, max abs/rel error, dtype-aware allclose, relative
  L2 error, top-k agreement, token match; reports and ``assert_*`` helpers (re-exported here).
* :mod:`tttv2.testing.tolerances` - the per-dtype presets.
* :mod:`tttv2.testing.reference` - readable reference implementations, one per block family.
* :mod:`tttv2.testing.spec_strategies` - hypothesis strategies of valid and invalid specs.
* :mod:`tttv2.testing.harness` - component correctness in every execution mode (of one
  strategy, or of every registered one), relative speed, memory, public-API snapshots and
  breaking-change checks.
* :mod:`tttv2.testing.hf` - tiny random Hugging Face checkpoints and reference outputs
  (``hf`` extra).
* :mod:`tttv2.testing.debug` - compare modules with a reference while a model runs.
* the pytest plugin (fixtures ``device``, ``dtype``, ``seed``, ``tolerance``,
  ``tiny_checkpoint``, ``speed_compare``; markers ``slow``, ``gpu``), loaded automatically.

Importing this package loads only torch and the metrics; the other modules load on first
attribute access (``tttv2.testing.hf`` never loads transformers until it is used).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from tttv2.testing.metrics import (
    CloseReport,
    PCCReport,
    RelativeErrorReport,
    TokenMatchReport,
    TopKReport,
    allclose,
    assert_close,
    assert_pcc,
    assert_relative_error,
    assert_tokens_match,
    assert_topk_agreement,
    compare_close,
    compare_pcc,
    compare_relative_error,
    compare_tokens,
    max_abs_error,
    max_rel_error,
    pcc,
    token_match_rate,
    topk_agreement,
)
from tttv2.testing.tolerances import TOLERANCES, Tolerance, tolerance_for

try:
    __version__ = version("tttv2-testing")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_SUBMODULES = ("debug", "harness", "hf", "metrics", "reference", "spec_strategies", "tolerances")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TOLERANCES",
    "CloseReport",
    "PCCReport",
    "RelativeErrorReport",
    "TokenMatchReport",
    "Tolerance",
    "TopKReport",
    "__version__",
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
    "tolerance_for",
    "topk_agreement",
]
