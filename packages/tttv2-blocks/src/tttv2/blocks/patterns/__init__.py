"""patterns"""

__all__: list[str] = []
