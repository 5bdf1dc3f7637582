"""rope"""

__all__: list[str] = []
