"""The error for token ids and positions an embedding table has no row for."""

from __future__ import annotations

from tttv2.core.errors import InputError, TTTv2Error


class EmbeddingIndexError(InputError, TTTv2Error, ValueError, IndexError):
    """A token id or learned position outside its embedding table.

    ``argument`` is ``"input_ids"`` or ``"positions"``, ``value`` the offending entry and
    ``size`` the number of rows (valid entries are ``0 <= value < size``). Also an
    :class:`IndexError`, which the table lookup raised before this check existed."""

    def __init__(self, argument: str, what: str, value: int, size: int, field: str) -> None:
        self.argument = argument
        self.value = value
        self.size = size
        super().__init__(
            f"TokenEmbedding: {argument} holds {what} {value}, outside the table: "
            f"expected 0 <= {what} < {size} (EmbeddingSpec.{field}={size})"
        )
