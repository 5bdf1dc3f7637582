"""The model-specific numbers of this example (the libraries take them as spec fields)."""

NORM_EPS = 1e-5
"""RMSNorm epsilon."""

ACTIVATION = "silu"
"""Feed-forward activation; gated, so the feed-forward block is SwiGLU."""
