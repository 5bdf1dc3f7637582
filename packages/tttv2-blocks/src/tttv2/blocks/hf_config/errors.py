"""The error a malformed Hugging Face ``config.json`` value raises."""

from __future__ import annotations

from tttv2.core.errors import SpecError


class HFConfigError(SpecError):
    """A ``config.json`` field is missing, of the wrong JSON type or out of range.

    A :class:`~tttv2.core.errors.SpecError` (so a ``ValueError``): the message is one line
    naming the config class, the field, the value and what would be valid, e.g.
    ``LlamaConfig.eos_token_id=1.0 is invalid: expected an integer, a list of integers or
    null``."""
