"""lm_head"""

__all__: list[str] = []
