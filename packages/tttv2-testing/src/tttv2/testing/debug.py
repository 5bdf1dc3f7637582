"""Bring-up aid: compare modules with a reference as a model runs.

Watch any ``torch.nn.Module`` inside a model; every time it runs, the same inputs are
passed to a reference callable and the two outputs are compared. A comparison passes when
the PCC reaches the threshold *and* the error is small for the output's size:
``||actual - expected|| <= atol * sqrt(n) + rtol * ||expected||`` with the ``atol``/``rtol``
of the tolerance preset of the less precise of the two outputs' dtypes (or of the
``tolerance`` given), so a module off by a scale or an offset, which the PCC cannot see,
fails too. Each comparison is logged on the ``tttv2.testing.debug`` logger and kept as a
:class:`DebugRecord`, so the first layer where a new model departs from the reference
stands out::

    with CompareSession() as session:
        for i, layer in enumerate(model.layers):
            session.watch(layer, lambda x, *a, i=i, **k: hf_layers[i](x[None])[0][0], name=f"layer{i}")
        model(tokens, meta, cache)
    print(session.summary())
    first_bad = session.first_failure()

With ``replace_output=True`` the reference's output is passed on instead of the module's,
so each module is checked on correct inputs and errors do not compound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.testing.metrics import RelativeErrorReport, compare_pcc, compare_relative_error
from tttv2.testing.tolerances import Tolerance

LOGGER = logging.getLogger("tttv2.testing.debug")


@dataclass(frozen=True)
class DebugRecord:
    name: str
    call: int  # 0 for the module's first call, 1 for the second, ...
    shape: tuple[int, ...]
    pcc: float
    max_abs_error: float
    passed: bool  # PCC >= threshold and the error norm within the tolerance
    message: str
    rel_error: float = float("nan")  # ||actual - expected|| / ||expected||


def first_tensor(output: Any) -> torch.Tensor:
    """The output itself, or the first tensor of a tuple/list/dict output."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise TypeError(f"no tensor in output of type {type(output).__name__}")


ToleranceOption = Tolerance | torch.dtype | str | None


class CompareSession:
    """Collects comparisons of watched modules; a context manager removing its hooks.

    ``threshold`` is the PCC a comparison needs; ``tolerance`` (a :class:`Tolerance`, or a
    dtype whose preset to use) bounds the error norm, by default with the preset of the
    less precise of the two compared outputs' dtypes."""

    def __init__(
        self,
        threshold: float = 0.99,
        logger: logging.Logger = LOGGER,
        *,
        tolerance: ToleranceOption = None,
    ) -> None:
        self.threshold = threshold
        self.logger = logger
        self.tolerance = tolerance
        self.records: list[DebugRecord] = []
        self._handles: list[Any] = []
        self._calls: dict[str, int] = {}

    def watch(
        self,
        module: torch.nn.Module,
        reference: Callable[..., Any],
        *,
        name: str | None = None,
        select: Callable[[Any], torch.Tensor] = first_tensor,
        replace_output: bool = False,
        threshold: float | None = None,
        tolerance: ToleranceOption = None,
    ) -> None:
        """Compare ``module``'s output with ``reference(*args, **kwargs)`` on every call.

        ``select`` picks the tensor to compare from either output (default: the first
        tensor). With ``replace_output`` the module's output tensor is replaced by the
        reference's (reshaped and cast to match) for the rest of the forward pass.
        ``threshold`` and ``tolerance`` override the session's for this module."""
        label = name or type(module).__name__
        if label in self._calls:
            raise ValueError(f"a module named {label!r} is already watched; pass a distinct name=")
        self._calls[label] = 0
        limit = self.threshold if threshold is None else threshold
        bound = self.tolerance if tolerance is None else tolerance

        def hook(
            mod: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
        ) -> Any:
            with torch.no_grad():
                expected = select(reference(*args, **kwargs))
            actual = select(output)
            self._record(label, actual, expected, limit, bound)
            if replace_output:
                return _substitute(output, actual, expected.reshape(actual.shape).to(actual.dtype))
            return None

        self._handles.append(module.register_forward_hook(hook, with_kwargs=True))

    def _record(
        self,
        name: str,
        actual: torch.Tensor,
        expected: torch.Tensor,
        threshold: float,
        tolerance: ToleranceOption,
    ) -> None:
        call = self._calls[name]
        self._calls[name] = call + 1
        expected_view = (
            expected.reshape(actual.shape) if expected.numel() == actual.numel() else expected
        )
        report = compare_pcc(actual, expected_view, threshold, label=f"{name}#{call}")
        size = _compare_size(actual, expected_view, tolerance)
        record = DebugRecord(
            name=name,
            call=call,
            shape=tuple(actual.shape),
            pcc=report.pcc,
            max_abs_error=report.max_abs_error,
            passed=report.passed and size.passed,
            message=f"{report.message}; {size.message}",
            rel_error=size.rel_error,
        )
        self.records.append(record)
        self.logger.log(logging.INFO if record.passed else logging.WARNING, record.message)

    def first_failure(self) -> DebugRecord | None:
        """The earliest comparison (in execution order) that failed."""
        return next((r for r in self.records if not r.passed), None)

    def summary(self) -> str:
        lines = [
            f"{'module':<32} {'call':>4} {'pcc':>10} {'max abs err':>12} {'rel L2 err':>12}  status"
        ]
        for r in self.records:
            lines.append(
                f"{r.name:<32} {r.call:>4} {r.pcc:>10.6f} {r.max_abs_error:>12.4g} {r.rel_error:>12.4g}  "
                f"{'ok' if r.passed else 'FAIL'}"
            )
        return "\n".join(lines)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> CompareSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _compare_size(
    actual: torch.Tensor, expected: torch.Tensor, tolerance: ToleranceOption
) -> RelativeErrorReport:
    """The norm-wise check with a Tolerance's atol/rtol, a dtype's preset or (None) the
    preset of the less precise input."""
    if isinstance(tolerance, Tolerance):
        return compare_relative_error(actual, expected, atol=tolerance.atol, rtol=tolerance.rtol)
    return compare_relative_error(actual, expected, tolerance)


def _substitute(output: Any, old: torch.Tensor, new: torch.Tensor) -> Any:
    if output is old:
        return new
    if isinstance(output, tuple):
        return tuple(new if item is old else item for item in output)
    if isinstance(output, list):
        return [new if item is old else item for item in output]
    if isinstance(output, dict):
        return {k: (new if v is old else v) for k, v in output.items()}
    raise TypeError(f"cannot replace the output of type {type(output).__name__}")


def compare_to_torch(
    module: torch.nn.Module,
    reference: Callable[..., Any],
    *,
    name: str | None = None,
    threshold: float = 0.99,
    replace_output: bool = False,
    tolerance: ToleranceOption = None,
) -> CompareSession:
    """Watch one module (shortcut for a session with a single :meth:`CompareSession.watch`);
    call ``.close()`` on the result (or use it in ``with``) to stop."""
    session = CompareSession(threshold, tolerance=tolerance)
    session.watch(module, reference, name=name, replace_output=replace_output)
    return session
