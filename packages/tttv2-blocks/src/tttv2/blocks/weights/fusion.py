"""Fusing projections after loading, by asking each block to fuse itself.

Checkpoints store ``q_proj``/``k_proj``/``v_proj`` and ``gate_proj``/``up_proj``
separately; blocks know how to concatenate their own weights (``Attention.fuse_qkv``,
``FeedForward.fuse_gate_up``). This walks a model and calls them, one block at a time, so
at most one block's projections exist twice while it is being fused.
"""

from __future__ import annotations

import torch


def fuse_projections(module: torch.nn.Module, *, qkv: bool = True, gate_up: bool = True) -> int:
    """Call ``fuse_qkv()`` (with ``qkv``) and ``fuse_gate_up()`` (with ``gate_up``, on gated
    feed-forwards only) on every block inside ``module`` that has them. Returns the number
    of blocks fused. Call it after :func:`~tttv2.blocks.weights.load_weights`: parameter
    names change (``qkv_proj``, ``gate_up_proj``)."""
    fused = 0
    for block in list(module.modules()):
        if qkv and callable(getattr(block, "fuse_qkv", None)):
            block.fuse_qkv()
            fused += 1
        spec = getattr(block, "spec", None)
        if (
            gate_up
            and callable(getattr(block, "fuse_gate_up", None))
            and getattr(spec, "gated", True)
        ):
            block.fuse_gate_up()
            fused += 1
    return fused
