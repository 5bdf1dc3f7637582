"""kv_cache"""

__all__: list[str] = []
