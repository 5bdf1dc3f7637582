"""weights"""

__all__: list[str] = []
