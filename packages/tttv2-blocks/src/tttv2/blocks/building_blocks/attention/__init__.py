"""attention"""

__all__: list[str] = []
