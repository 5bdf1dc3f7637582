"""Token embeddings: optional scale, optional learned absolute positions."""

from tttv2.blocks.building_blocks.embedding.errors import EmbeddingIndexError
from tttv2.blocks.building_blocks.embedding.token_embedding import TokenEmbedding
from tttv2.core.module_classes import register_module_class
from tttv2.core.specs import EmbeddingSpec

register_module_class(EmbeddingSpec, TokenEmbedding)

__all__ = ["EmbeddingIndexError", "TokenEmbedding"]
