"""Errors raised while reading a checkpoint or loading it into a module."""

from __future__ import annotations

from collections.abc import Sequence

from tttv2.core.errors import InputError, TTTv2Error


class CheckpointError(InputError, TTTv2Error, ValueError):
    """A checkpoint folder cannot be read (missing, no safetensors files, bad index)."""


class CorruptCheckpointError(CheckpointError):
    """A safetensors file is truncated or its header is not valid safetensors."""


class WeightMismatchError(CheckpointError):
    """The checkpoint's tensors do not fit the module's parameters.

    ``missing`` are module parameter names nothing was loaded into, ``unexpected`` are
    checkpoint tensor names with no parameter to go to, ``mismatched`` are
    ``(checkpoint name, checkpoint shape, parameter shape)`` triples. For a tensor a rename
    rule transforms or splits, the name also says how and where to
    (``"c_attn.weight (transpose, part 2 of 3 along dim 0, as layers.0.attention.k_proj.weight)"``,
    followed by ``": why"`` when the transform or split cannot apply) and the shape is the
    one after the transform and split. The message lists every one of them by name, on one
    line.
    """

    def __init__(
        self,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
        source: str = "checkpoint",
    ) -> None:
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        parts = []
        if self.missing:
            parts.append(f"missing {len(self.missing)} tensor(s): " + ", ".join(self.missing))
        if self.unexpected:
            parts.append(
                f"unexpected {len(self.unexpected)} tensor(s): " + ", ".join(self.unexpected)
            )
        if self.mismatched:
            parts.append(
                f"mis-shaped {len(self.mismatched)} tensor(s): "
                + ", ".join(
                    f"{n} (checkpoint {list(got)}, model {list(want)})"
                    for n, got, want in self.mismatched
                )
            )
        super().__init__(f"{source} does not match the model: " + "; ".join(parts))


class RenameRuleError(TTTv2Error, ValueError):
    """A rename rule (or a :class:`~tttv2.blocks.weights.Split`) is malformed; the message
    names the rule's field, the bad value and what would be valid."""

    def __init__(self, owner: str, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{owner}.{field}={value!r} is invalid: expected {expected}")


class CheckpointSizeError(CheckpointError):
    """``config.json`` implies a model the checkpoint's tensors (or the device's memory)
    cannot hold: refused before anything is allocated."""


class WeightDtypeError(CheckpointError):
    """A tensor that would be loaded into a floating-point parameter is stored as another
    type (an ``I32`` or ``U8`` tensor of the right byte count is not a weight)."""


class NonFiniteWeightError(CheckpointError):
    """A checkpoint tensor holds NaN or infinity (detected while it is copied)."""
