"""Fusing projections after loading, by asking each block to fuse itself.

Checkpoints store ``q_proj``/``k_proj``/``v_proj`` and ``gate_proj``/``up_proj``
separately; blocks know how to concatenate their own weights (``Attention.fuse_qkv``,
``FeedForward.fuse_gate_up``). This walks a model and calls them, one block at a time, so
at most one block's projections exist twice while it is being fused: the walk keeps only
the blocks that fuse, never the projections themselves, so each block's old projections
are freed as soon as it has replaced them (unless the caller holds them elsewhere).
"""

from __future__ import annotations

import torch


def fuse_projections(module: torch.nn.Module, *, qkv: bool = True, gate_up: bool = True) -> int:
    """Call ``fuse_qkv()`` (with ``qkv``) and ``fuse_gate_up()`` (with ``gate_up``, on gated
    feed-forwards only) on every block inside ``module`` that has them. Returns the number
    of blocks fused. Call it after :func:`~tttv2.blocks.weights.load_weights`: parameter
    names change (``qkv_proj``, ``gate_up_proj``)."""
    fusions = []  # (block, method name) only: a list of every module would keep each
    for block in module.modules():  # replaced projection alive until the last block is fused
        if qkv and callable(getattr(block, "fuse_qkv", None)):
            fusions.append((block, "fuse_qkv"))
        if (
            gate_up
            and callable(getattr(block, "fuse_gate_up", None))
            and getattr(getattr(block, "spec", None), "gated", True)
        ):
            fusions.append((block, "fuse_gate_up"))
    for block, method in fusions:
        getattr(block, method)()
    return len(fusions)
