"""SPECULATIVE: verify k draft tokens per sequence in one pass.

Each sequence brings its drafts (typically the last accepted token plus k proposals) as
new tokens; their K/V are written, then the drafts attend causally to the cached context
and to the drafts before them: one prefill-kernel call per sequence over its context
gathered once, whatever k. (Treating each draft as its own decode query would read the
context k + 1 times.) Rolling back rejected drafts is
``KVBlockManager.truncate(seq_id, accepted_len)``: their slots are overwritten by the
next tokens written.
"""

from __future__ import annotations

from tttv2.blocks.building_blocks.attention.implementations.unified import UnifiedAttention


class SpeculativeAttention(UnifiedAttention):
    """The drafts of each sequence are its new tokens: the UNIFIED computation (write K/V,
    then attend causally over the context gathered once) is exactly the verify pass."""
