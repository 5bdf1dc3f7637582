"""tttv2.serve: generation on top of tttv2.core models.

The generation runtime (continuous batching over a paged KV cache, sampling, stop
conditions, streaming, speculative decoding) lives in :mod:`tttv2.serve.runtime`; it was
``tttv2.core.runtime`` up to tttv2-core 3.x.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tttv2-serve")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
