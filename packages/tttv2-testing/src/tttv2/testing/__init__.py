"""tttv2.testing: metrics, references, harness, pytest plugin, HF adapters."""
