"""Packing a loaded model's CPU weights into one buffer on huge pages, in order of use.

Decode streams every weight once per step, layer after layer. After loading and fusing,
the parameters sit wherever the allocator put them, on 4 KiB pages. :func:`pack_weights`
copies them, storage by storage in the order ``module.parameters()`` yields them (a
module's own, then its children's in registration order: for a decoder the embedding,
layer after layer, the final norm and the head, the order a pass reads them), into one :func:`tttv2.hw.memory.huge_pages.huge_page_buffer`,
and points each parameter at its copy. Parameters that share a storage (tied embeddings,
views) still share it afterwards. Values, dtypes, shapes, strides and parameter objects
are unchanged; only ``data_ptr()`` moves. One storage is copied at a time, so the weights
never exist twice over (the old storage is freed once nothing else holds it).
"""

from __future__ import annotations

import torch

from tttv2.hw.memory.huge_pages import huge_page_buffer

ALIGN = 64  # bytes: a cache line, and more than any dtype needs


def pack_weights(module: torch.nn.Module) -> int:
    """Move ``module``'s CPU parameters into one huge-page buffer (see the module
    docstring); returns the bytes packed (0 when there are none, e.g. on a GPU)."""
    storages: dict[int, list[torch.nn.Parameter]] = {}  # insertion order: the order of use
    for p in module.parameters():
        if p.device.type == "cpu" and p.numel() > 0:
            storages.setdefault(p.untyped_storage().data_ptr(), []).append(p)
    if not storages:
        return 0
    sizes = {
        key: _round_up(params[0].untyped_storage().nbytes()) for key, params in storages.items()
    }
    buffer = huge_page_buffer(sum(sizes.values()))
    offset = 0
    with torch.no_grad():
        for key, params in storages.items():
            old = params[0].untyped_storage()
            region = buffer[offset : offset + old.nbytes()]
            region.copy_(
                torch.empty(0, dtype=torch.uint8).set_(old)
            )  # the storage's bytes as they are
            base = region.storage_offset()  # bytes into the buffer's storage; 64-byte aligned
            for p in params:
                at = base // p.element_size() + p.storage_offset()
                p.data = torch.empty(0, dtype=p.dtype).set_(
                    region.untyped_storage(), at, p.shape, p.stride()
                )
            offset += sizes[key]
    return offset


def _round_up(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN
