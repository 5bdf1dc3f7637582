"""Weight loading for models: Hugging Face safetensors checkpoints (single file or sharded)
read lazily tensor by tensor, mapped onto module parameters by rename rules (which may also
transpose a tensor or split it into several parameters) with shape checks that name every
missing, unexpected and mis-shaped tensor, cast as they are copied, then fused, then packed
into one buffer on huge pages in order of use."""

from tttv2.blocks.weights.checkpoint import INDEX_FILE, SafetensorsCheckpoint
from tttv2.blocks.weights.construction import default_dtype, no_init_weights
from tttv2.blocks.weights.dtypes import DTYPES, parse_dtype
from tttv2.blocks.weights.errors import (
    CheckpointError,
    CorruptCheckpointError,
    RenameRuleError,
    WeightMismatchError,
)
from tttv2.blocks.weights.fusion import fuse_projections
from tttv2.blocks.weights.loading import (
    LoadReport,
    ProgressCallback,
    load_weights,
    loadable_tensors,
    plan_load,
)
from tttv2.blocks.weights.packing import pack_weights
from tttv2.blocks.weights.placement import Placement
from tttv2.blocks.weights.precision import apply_precision_policy
from tttv2.blocks.weights.renaming import RenameRules, Split, transpose
from tttv2.blocks.weights.safetensors_header import TensorInfo, read_header

__all__ = [
    "apply_precision_policy",
    "DTYPES",
    "INDEX_FILE",
    "CheckpointError",
    "CorruptCheckpointError",
    "LoadReport",
    "ProgressCallback",
    "Placement",
    "RenameRuleError",
    "RenameRules",
    "SafetensorsCheckpoint",
    "Split",
    "TensorInfo",
    "WeightMismatchError",
    "default_dtype",
    "fuse_projections",
    "load_weights",
    "loadable_tensors",
    "no_init_weights",
    "pack_weights",
    "parse_dtype",
    "plan_load",
    "read_header",
    "transpose",
]
