"""KV cache tensors: per-layer key/value block pools read and written by attention."""

from tttv2.blocks.building_blocks.kv_cache.layer import LayerKVCache
from tttv2.blocks.building_blocks.kv_cache.paged import PagedKVCache
from tttv2.blocks.building_blocks.kv_cache.static import StaticKVCache

__all__ = ["LayerKVCache", "PagedKVCache", "StaticKVCache"]
