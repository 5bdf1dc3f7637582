"""normalization"""

__all__: list[str] = []
