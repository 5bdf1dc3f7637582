"""Weight loading for models: Hugging Face safetensors checkpoints (single file or sharded)
read lazily tensor by tensor, mapped onto module parameters by rename rules (which may also
transpose a tensor or split it into several parameters) with shape checks that name every
missing, unexpected and mis-shaped tensor, cast as they are copied, then fused, then packed
into one buffer on huge pages in order of use."""

from tttv2.blocks.weights.checkpoint import INDEX_FILE, SafetensorsCheckpoint
from tttv2.blocks.weights.checks import (
    FLOAT_DTYPES,
    check_sizes,
    check_tensor_dtypes,
    implied_parameters,
)
from tttv2.blocks.weights.construction import default_dtype, no_init_weights
from tttv2.blocks.weights.dtypes import DTYPES, parse_dtype
from tttv2.blocks.weights.errors import (
    CheckpointError,
    CheckpointSizeError,
    CorruptCheckpointError,
    NonFiniteWeightError,
    RenameRuleError,
    WeightDtypeError,
    WeightMismatchError,
)
from tttv2.blocks.weights.fusion import fuse_projections
from tttv2.blocks.weights.hf_checkpoint import load_hf_checkpoint, load_tokenizer, spec_from_config
from tttv2.blocks.weights.loading import (
    LoadReport,
    ProgressCallback,
    load_weights,
    loadable_tensors,
    plan_load,
)
from tttv2.blocks.weights.packing import pack_weights
from tttv2.blocks.weights.placement import Placement, StoredRegion
from tttv2.blocks.weights.precision import apply_precision_policy
from tttv2.blocks.weights.renaming import RenameRules, Split, transpose
from tttv2.blocks.weights.safetensors_header import TensorInfo, read_header

__all__ = [
    "apply_precision_policy",
    "DTYPES",
    "FLOAT_DTYPES",
    "INDEX_FILE",
    "CheckpointError",
    "CheckpointSizeError",
    "CorruptCheckpointError",
    "LoadReport",
    "NonFiniteWeightError",
    "ProgressCallback",
    "Placement",
    "RenameRuleError",
    "RenameRules",
    "SafetensorsCheckpoint",
    "Split",
    "StoredRegion",
    "TensorInfo",
    "WeightDtypeError",
    "WeightMismatchError",
    "check_sizes",
    "check_tensor_dtypes",
    "default_dtype",
    "fuse_projections",
    "implied_parameters",
    "load_hf_checkpoint",
    "load_weights",
    "loadable_tensors",
    "load_tokenizer",
    "no_init_weights",
    "pack_weights",
    "parse_dtype",
    "plan_load",
    "read_header",
    "spec_from_config",
    "transpose",
]
