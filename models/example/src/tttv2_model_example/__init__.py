"""TTTv2 model project example.

Compose the model from released tttv2 building blocks (`tttv2.blocks`) here. Keep
model-specific numbers (scale factors, eps, offsets) in this package; nothing model-specific
goes into the libraries. :class:`PreNormFeedForward` is such a composition: the feed-forward
half of a pre-norm decoder layer, ``x + ffn(norm(x))``, from tttv2-blocks' ``RMSNorm`` and
``FeedForward`` with this package's numbers (:mod:`tttv2_model_example.numbers`).
"""

from tttv2_model_example.pre_norm_feed_forward import PreNormFeedForward, sublayer_specs

ARCHITECTURE = None
"""Hugging Face architecture name served by this package (config.json "architectures")."""

__all__ = ["ARCHITECTURE", "PreNormFeedForward", "sublayer_specs"]
