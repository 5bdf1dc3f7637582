"""tttv2.blocks: building blocks (attention, KV cache, RoPE, norms, FFN, MoE, embeddings,
LM head), the patterns that compose them, and weight-loading helpers.

Importing this package registers every block's per-mode implementations with
``tttv2.core`` and its module classes with ``create_module``."""

from importlib.metadata import PackageNotFoundError, version

from tttv2.blocks import patterns as _patterns
from tttv2.blocks import weights as _weights
from tttv2.blocks.building_blocks import attention as _attention
from tttv2.blocks.building_blocks import embedding as _embedding
from tttv2.blocks.building_blocks import feed_forward as _feed_forward
from tttv2.blocks.building_blocks import kv_cache as _kv_cache
from tttv2.blocks.building_blocks import lm_head as _lm_head
from tttv2.blocks.building_blocks import moe as _moe
from tttv2.blocks.building_blocks import normalization as _normalization
from tttv2.blocks.building_blocks import rope as _rope
from tttv2.blocks.building_blocks.attention import *  # noqa: F403
from tttv2.blocks.building_blocks.embedding import *  # noqa: F403
from tttv2.blocks.building_blocks.feed_forward import *  # noqa: F403
from tttv2.blocks.building_blocks.kv_cache import *  # noqa: F403
from tttv2.blocks.building_blocks.lm_head import *  # noqa: F403
from tttv2.blocks.building_blocks.moe import *  # noqa: F403
from tttv2.blocks.building_blocks.normalization import *  # noqa: F403
from tttv2.blocks.building_blocks.rope import *  # noqa: F403
from tttv2.blocks.patterns import *  # noqa: F403
from tttv2.blocks.weights import *  # noqa: F403

try:
    __version__ = version("tttv2-blocks")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = sorted(
    {
        "__version__",
        *_attention.__all__,
        *_embedding.__all__,
        *_feed_forward.__all__,
        *_kv_cache.__all__,
        *_lm_head.__all__,
        *_moe.__all__,
        *_normalization.__all__,
        *_rope.__all__,
        *_patterns.__all__,
        *_weights.__all__,
    }
)
