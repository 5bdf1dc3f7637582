"""tttv2.serve.runtime: generation on top of any model that follows the CausalLM protocol.

Continuous batching over a paged KV cache with chunked prefill and preemption
(:class:`LLMEngine`), sampling (:class:`SamplingParams`), stop conditions, streaming
(:class:`TokenEvent`), speculative decoding (:class:`SpeculativeDecoder`) and tensor
parallelism (:class:`TensorParallelLeader` on rank 0, :func:`follow_leader` on the others). The runtime
never imports a model: it calls ``forward(input_ids, meta, cache)`` and ``new_cache``.
"""

from tttv2.serve.runtime.detokenizer import IncrementalDetokenizer
from tttv2.serve.runtime.engine import LLMEngine
from tttv2.serve.runtime.engine_base import EngineBase
from tttv2.serve.runtime.errors import (
    InvalidParameterError,
    InvalidRequestError,
    RequestFailedError,
    SamplingError,
)
from tttv2.serve.runtime.interface import CausalLM, SupportsModes
from tttv2.serve.runtime.kv_swap import HostKVPool
from tttv2.serve.runtime.logits_processing import (
    apply_count_penalties,
    apply_repetition_penalty,
    apply_temperature,
    min_p_filter,
    top_k_filter,
    top_p_filter,
)
from tttv2.serve.runtime.request import Request, RequestOutput, TokenEvent
from tttv2.serve.runtime.runner import Chunk, ModelRunner
from tttv2.serve.runtime.sampler import (
    SamplingRow,
    greedy_tokens,
    probabilities,
    sample,
    sample_rows,
)
from tttv2.serve.runtime.sampling_params import SamplingParams
from tttv2.serve.runtime.scheduler import Scheduler
from tttv2.serve.runtime.speculative import SpeculativeDecoder, SpeculativeStats
from tttv2.serve.runtime.speculative_sampling import verify_greedy, verify_sampled
from tttv2.serve.runtime.stop_conditions import StopConditions
from tttv2.serve.runtime.tensor_parallel import RankLocalCache, TensorParallelLeader, follow_leader
from tttv2.serve.runtime.timings import EngineStats, RequestTimings
from tttv2.serve.runtime.token_logprobs import TokenLogprobs, token_logprobs

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
    "RankLocalCache",
    "TensorParallelLeader",
    "TokenEvent",
    "TokenLogprobs",
    "apply_count_penalties",
    "apply_repetition_penalty",
    "apply_temperature",
    "follow_leader",
    "min_p_filter",
    "probabilities",
    "greedy_tokens",
    "sample",
    "sample_rows",
    "token_logprobs",
    "top_k_filter",
    "top_p_filter",
    "verify_greedy",
    "verify_sampled",
]
