"""Bring-up aid: compare modules with a reference as a model runs.

Watch any ``torch.nn.Module`` inside a model; every time it runs, the same inputs are
passed to a reference callable and the two outputs are compared (PCC and max-abs error).
Each comparison is logged on the ``tttv2.testing.debug`` logger and kept as a
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

from tttv2.testing.metrics import compare_pcc

LOGGER = logging.getLogger("tttv2.testing.debug")


@dataclass(frozen=True)
class DebugRecord:
    name: str
    call: int  # 0 for the module's first call, 1 for the second, ...
    shape: tuple[int, ...]
    pcc: float
    max_abs_error: float
    passed: bool
    message: str


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


class CompareSession:
    """Collects comparisons of watched modules; a context manager removing its hooks."""

    def __init__(self, threshold: float = 0.99, logger: logging.Logger = LOGGER) -> None:
        self.threshold = threshold
        self.logger = logger
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
    ) -> None:
        """Compare ``module``'s output with ``reference(*args, **kwargs)`` on every call.

        ``select`` picks the tensor to compare from either output (default: the first
        tensor). With ``replace_output`` the module's output tensor is replaced by the
        reference's (reshaped and cast to match) for the rest of the forward pass."""
        label = name or type(module).__name__
        if label in self._calls:
            raise ValueError(f"a module named {label!r} is already watched; pass a distinct name=")
        self._calls[label] = 0
        limit = self.threshold if threshold is None else threshold

        def hook(mod: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
            with torch.no_grad():
                expected = select(reference(*args, **kwargs))
            actual = select(output)
            self._record(label, actual, expected, limit)
            if replace_output:
                return _substitute(output, actual, expected.reshape(actual.shape).to(actual.dtype))
            return None

        self._handles.append(module.register_forward_hook(hook, with_kwargs=True))

    def _record(self, name: str, actual: torch.Tensor, expected: torch.Tensor, threshold: float) -> None:
        call = self._calls[name]
        self._calls[name] = call + 1
        expected_view = expected.reshape(actual.shape) if expected.numel() == actual.numel() else expected
        report = compare_pcc(actual, expected_view, threshold, label=f"{name}#{call}")
        record = DebugRecord(
            name=name, call=call, shape=tuple(actual.shape), pcc=report.pcc,
            max_abs_error=report.max_abs_error, passed=report.passed, message=report.message,
        )
        self.records.append(record)
        self.logger.log(logging.INFO if record.passed else logging.WARNING, record.message)

    def first_failure(self) -> DebugRecord | None:
        """The earliest comparison (in execution order) that failed."""
        return next((r for r in self.records if not r.passed), None)

    def summary(self) -> str:
        lines = [f"{'module':<32} {'call':>4} {'pcc':>10} {'max abs err':>12}  status"]
        for r in self.records:
            lines.append(
                f"{r.name:<32} {r.call:>4} {r.pcc:>10.6f} {r.max_abs_error:>12.4g}  {'ok' if r.passed else 'FAIL'}"
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
) -> CompareSession:
    """Watch one module (shortcut for a session with a single :meth:`CompareSession.watch`);
    call ``.close()`` on the result (or use it in ``with``) to stop."""
    session = CompareSession(threshold)
    session.watch(module, reference, name=name, replace_output=replace_output)
    return session
