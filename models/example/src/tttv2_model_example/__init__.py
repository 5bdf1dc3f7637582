"""TTTv2 model project example.

Compose the model from released tttv2 building blocks (`tttv2.blocks`) here. Keep
model-specific numbers (scale factors, eps, offsets) in this package; nothing model-specific
goes into the libraries.
"""

ARCHITECTURE = None
"""Hugging Face architecture name served by this package (config.json "architectures")."""
