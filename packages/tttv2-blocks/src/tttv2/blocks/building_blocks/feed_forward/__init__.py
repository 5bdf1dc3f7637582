"""feed_forward"""

__all__: list[str] = []
