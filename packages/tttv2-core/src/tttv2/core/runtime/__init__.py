"""tttv2.core.runtime: generation on top of any model that follows the CausalLM protocol.

Continuous batching over a paged KV cache with chunked prefill and preemption
(:class:`LLMEngine`), sampling (:class:`SamplingParams`), stop conditions, streaming
(:class:`TokenEvent`) and speculative decoding (:class:`SpeculativeDecoder`). The runtime
never imports a model: it calls ``forward(input_ids, meta, cache)`` and ``new_cache``.
"""

from tttv2.core.runtime.detokenizer import IncrementalDetokenizer
from tttv2.core.runtime.engine import LLMEngine
from tttv2.core.runtime.engine_base import EngineBase
from tttv2.core.runtime.errors import (
    InvalidParameterError,
    InvalidRequestError,
    RequestFailedError,
    SamplingError,
)
from tttv2.core.runtime.interface import CausalLM, SupportsModes
from tttv2.core.runtime.kv_swap import HostKVPool
from tttv2.core.runtime.logits_processing import (
    apply_count_penalties,
    apply_repetition_penalty,
    apply_temperature,
    min_p_filter,
    top_k_filter,
    top_p_filter,
)
from tttv2.core.runtime.request import Request, RequestOutput, TokenEvent
from tttv2.core.runtime.runner import Chunk, ModelRunner
from tttv2.core.runtime.sampler import (
    SamplingRow,
    greedy_tokens,
    probabilities,
    sample,
    sample_rows,
)
from tttv2.core.runtime.sampling_params import SamplingParams
from tttv2.core.runtime.scheduler import Scheduler
from tttv2.core.runtime.speculative import SpeculativeDecoder, SpeculativeStats
from tttv2.core.runtime.speculative_sampling import verify_greedy, verify_sampled
from tttv2.core.runtime.stop_conditions import StopConditions
from tttv2.core.runtime.timings import EngineStats, RequestTimings

__all__ = [
    "CausalLM",
    "Chunk",
    "EngineBase",
    "EngineStats",
    "HostKVPool",
    "IncrementalDetokenizer",
    "InvalidParameterError",
    "InvalidRequestError",
    "LLMEngine",
    "ModelRunner",
    "Request",
    "RequestFailedError",
    "RequestOutput",
    "RequestTimings",
    "SamplingError",
    "SamplingParams",
    "SamplingRow",
    "Scheduler",
    "SpeculativeDecoder",
    "SpeculativeStats",
    "StopConditions",
    "SupportsModes",
    "TokenEvent",
    "apply_count_penalties",
    "apply_repetition_penalty",
    "apply_temperature",
    "min_p_filter",
    "probabilities",
    "greedy_tokens",
    "sample",
    "sample_rows",
    "top_k_filter",
    "top_p_filter",
    "verify_greedy",
    "verify_sampled",
]
