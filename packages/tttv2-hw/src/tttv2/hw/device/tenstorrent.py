"""Tenstorrent Wormhole and Blackhole systems: public figures per product, and detection
through ``ttnn`` when it is installed.

This package contains no ttnn compute code. A ttnn kernel backend plugs in through the
``tttv2.kernels`` entry-point group (see :mod:`tttv2.hw.kernels.registry`) under a
backend name ending in ``-tt`` (e.g. ``"ttnn-tt"``); :class:`DeviceConfig` reports
``device_type == "tt"`` for these systems, so ``get_kernel(op, "tt")`` finds it.

Sources for the figures (all public):

* Tile size 32x32: ``ttnn.TILE_SIZE`` (tt-metal, "Tensor layouts" docs).
* Wormhole ASIC: 80 Tensix tiles of which 64 are enabled on n150/n300 (an 8x8 worker grid,
  ``compute_with_storage_grid_size()``), 12 GiB GDDR6 per chip over 12 DRAM banks,
  1464 KiB L1 per Tensix (tenstorrent/tt-isa-documentation, WormholeB0/README.md;
  tt-metal ``tt_metal/soc_descriptors/wormhole_b0_80_arch.yaml``).
* Blackhole ASIC: 140 Tensix tiles, 120 enabled on p100 and 140 on p150, of which a 12x10
  / 13x10 worker grid is exposed to kernels; 28 GiB (p100, 7 DRAM banks) or 32 GiB (p150,
  8 banks) of GDDR6; 1536 KiB L1 per Tensix (tt-isa-documentation, BlackholeA0/README.md).
* DRAM-shard width for DRAM-sharded matmuls: 8 on Wormhole, ``dram_grid_size().x`` on
  Blackhole (7 on p100, 8 on p150) -- tt-metal ``models/tt_transformers/tt/model_config.py``
  ("dram_shard_grid_width").
* Prefill length cut-off (longer prefill is folded into chunks of this many rows for the
  MLP matmuls): 1024 on Wormhole, 512 on Blackhole -- same file, ``prefill_len_cutoff``.
* Paged KV cache block size 32 and decode batch of 32 users (one tile row) -- tt-metal
  ``models/tt_transformers`` ``PagedAttentionConfig(block_size=32)`` and ``max_batch_size=32``.
* Systems: n150 = 1 Wormhole, n300 = 2, T3K (LoudBox/QuietBox) = 4 n300 = 8 chips,
  Galaxy = 32 chips in an 8x4 mesh; p100 / p150 = 1 Blackhole, p300 = 2, Blackhole
  QuietBox = 4 p150 (``ClusterType.P150_X4``), LoudBox = 8 p150 (``P150_X8``),
  Blackhole Galaxy = 32 chips (tenstorrent.com product pages; ``ttnn.cluster.ClusterType``).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any

GIB = 1 << 30
TILE_SIZE = 32


@dataclass(frozen=True)
class TenstorrentArch:
    """Per-chip figures shared by every product built on one ASIC."""

    name: str  # "wormhole_b0" | "blackhole"
    tile_size: int
    l1_bytes_per_core: int
    prefill_len_cutoff: int
    kv_block_size: int
    decode_batch: int


WORMHOLE = TenstorrentArch("wormhole_b0", TILE_SIZE, 1464 * 1024, 1024, 32, 32)
BLACKHOLE = TenstorrentArch("blackhole", TILE_SIZE, 1536 * 1024, 512, 32, 32)


@dataclass(frozen=True)
class TenstorrentInfo:
    """One Tenstorrent system (a card or a multi-chip box) as kernels see it."""

    product: str  # "N150", "P150x4", ...
    arch: TenstorrentArch
    num_chips: int
    mesh_shape: tuple[int, int]
    dram_bytes_per_chip: int
    dram_banks: int
    dram_shard_grid_width: int
    core_grid: tuple[int, int]  # (x, y) worker cores per chip

    @property
    def memory_total_bytes(self) -> int:
        return self.num_chips * self.dram_bytes_per_chip

    @property
    def cores_per_chip(self) -> int:
        return self.core_grid[0] * self.core_grid[1]


def _wh(product: str, chips: int, mesh: tuple[int, int]) -> TenstorrentInfo:
    return TenstorrentInfo(product, WORMHOLE, chips, mesh, 12 * GIB, 12, 8, (8, 8))


def _bh(product: str, chips: int, mesh: tuple[int, int], p100: bool = False) -> TenstorrentInfo:
    if p100:
        return TenstorrentInfo(product, BLACKHOLE, chips, mesh, 28 * GIB, 7, 7, (12, 10))
    return TenstorrentInfo(product, BLACKHOLE, chips, mesh, 32 * GIB, 8, 8, (13, 10))


#: Product name -> description. Keys are the profile names after ``"tt:"``.
TT_PROFILES: dict[str, TenstorrentInfo] = {
    p.product: p
    for p in (
        _wh("N150", 1, (1, 1)),
        _wh("N300", 2, (1, 2)),
        _wh("T3K", 8, (1, 8)),
        _wh("Galaxy", 32, (8, 4)),
        _bh("P100", 1, (1, 1), p100=True),
        _bh("P150", 1, (1, 1)),
        _bh("P300", 2, (1, 2)),
        _bh("P150x2", 2, (1, 2)),
        _bh("P150x4", 4, (1, 4)),
        _bh("P150x8", 8, (1, 8)),
        _bh("BlackholeGalaxy", 32, (8, 4)),
    )
}

#: ``ttnn.cluster.ClusterType`` member names -> product names above.
CLUSTER_TYPES: dict[str, str] = {
    "N150": "N150",
    "N300": "N300",
    "T3K": "T3K",
    "GALAXY": "Galaxy",
    "TG": "Galaxy",
    "P100": "P100",
    "P150": "P150",
    "P300": "P300",
    "P150_X2": "P150x2",
    "P150_X4": "P150x4",
    "P150_X8": "P150x8",
    "BLACKHOLE_GALAXY": "BlackholeGalaxy",
}


def ttnn_available() -> bool:
    return importlib.util.find_spec("ttnn") is not None


def describe_cluster(ttnn: Any) -> TenstorrentInfo | None:
    """The system a ttnn module reports, or None when it reports no known system.

    Asks ``ttnn.cluster.get_cluster_type()`` (which opens the devices, so detection runs
    only when ttnn is importable); ``num_chips`` comes from ``ttnn.get_num_devices()``
    when available so a partially visible box is described as it is."""
    try:
        cluster = ttnn.cluster.get_cluster_type()
    except Exception:
        return None
    key = getattr(cluster, "name", str(cluster)).rsplit(".", 1)[-1].upper()
    product = CLUSTER_TYPES.get(key)
    if product is None:
        return None
    info = TT_PROFILES[product]
    try:
        chips = int(ttnn.get_num_devices())
    except Exception:
        chips = info.num_chips
    if 0 < chips != info.num_chips:
        info = TenstorrentInfo(
            info.product,
            info.arch,
            chips,
            (1, chips),
            info.dram_bytes_per_chip,
            info.dram_banks,
            info.dram_shard_grid_width,
            info.core_grid,
        )
    return info


def detect_tenstorrent(ttnn: ModuleType | Any | None = None) -> TenstorrentInfo | None:
    """The attached Tenstorrent system, when ``ttnn`` is importable (or passed in)."""
    if ttnn is None:
        if not ttnn_available():
            return None
        try:
            ttnn = importlib.import_module("ttnn")
        except Exception:
            return None
    return describe_cluster(ttnn)
