"""The shard plan: which slice of which tensor each rank holds, derived from the specs.

Megatron-style tensor parallelism over ``world_size`` ranks, decided from numbers in the
specs only (never from a model's name):

* attention: ``q_proj`` (and its bias) column-parallel by query heads, ``k_proj``/``v_proj``
  by KV heads; when there are fewer KV heads than ranks each KV head is replicated on
  ``world_size / num_kv_heads`` consecutive ranks (vLLM's ``QKVParallelLinear``), rank
  ``r`` holding KV head ``r // replicas``, the one its query heads use. ``o_proj`` is
  row-parallel (its input columns), followed by one all-reduce; its bias is replicated and
  added once, after the reduce. QK-norm weights are per head-dim: replicated.
* gated or plain feed-forward: ``gate_proj``/``up_proj`` column-parallel, ``down_proj``
  row-parallel (bias replicated, added after the all-reduce).
* MoE: the router is replicated, experts are split across ranks (each whole on one rank:
  expert ``e`` on the rank whose contiguous range holds it); a shared expert is split like a
  feed-forward; one all-reduce sums the routed and the shared parts.
* embedding and LM head: vocab-parallel, rank ``r`` holding rows ``[r*p, (r+1)*p)`` of
  ``p = ceil(vocab / world_size)`` (the last ranks fewer); the embedding is all-reduced,
  the logits all-gathered. Learned positions are replicated.
* norms: replicated.

Sizes that do not divide (heads, KV heads, intermediate dims) raise :class:`ShardPlanError`
at construction, before anything is loaded. Tensor names are those of the modules
(``q_proj.weight``, ``layers.3.ffn.down_proj.weight``, ...), which are Hugging Face's
per-module names; a model maps its checkpoint's prefixes onto them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tttv2.blocks.parallel.errors import ShardPlanError
from tttv2.blocks.parallel.slices import TensorSlice, even_range
from tttv2.core.specs import (
    AttentionSpec,
    FeedForwardSpec,
    ModelSpec,
    MoESpec,
    NormSpec,
)

REPLICATED = TensorSlice.replicated()


def _check_world(world_size: int, rank: int) -> None:
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ShardPlanError("mesh", "world_size", world_size, "an integer >= 1")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ShardPlanError("mesh", "rank", rank, f"an integer in 0 .. {world_size - 1}")


@dataclass(frozen=True)
class AttentionShard:
    """Rank ``rank``'s query heads ``heads`` and KV heads ``kv_heads`` (``[start, stop)``)
    of ``spec``; ``kv_replicas`` ranks hold each KV head. ``local_spec`` is the attention
    this rank runs: its own heads, the full hidden size."""

    spec: AttentionSpec
    world_size: int
    rank: int
    where: str = "attention"
    heads: tuple[int, int] = field(init=False)
    kv_heads: tuple[int, int] = field(init=False)
    kv_replicas: int = field(init=False)
    local_spec: AttentionSpec = field(init=False)

    def __post_init__(self) -> None:
        _check_world(self.world_size, self.rank)
        spec, n, r = self.spec, self.world_size, self.rank
        H, Hkv = spec.num_heads, spec.num_kv_heads
        assert Hkv is not None and spec.head_dim is not None
        if H % n:
            raise ShardPlanError(self.where, "num_heads", H, f"a multiple of world_size ({n})")
        if Hkv >= n:
            if Hkv % n:
                raise ShardPlanError(
                    self.where, "num_kv_heads", Hkv, f"a multiple or a divisor of world_size ({n})"
                )
            replicas, per = 1, Hkv // n
            kv = (r * per, (r + 1) * per)
        else:
            if n % Hkv:
                raise ShardPlanError(
                    self.where, "num_kv_heads", Hkv, f"a multiple or a divisor of world_size ({n})"
                )
            replicas = n // Hkv
            kv = (r // replicas, r // replicas + 1)
        per_rank = H // n
        set_ = object.__setattr__
        set_(self, "heads", (r * per_rank, (r + 1) * per_rank))
        set_(self, "kv_heads", kv)
        set_(self, "kv_replicas", replicas)
        set_(
            self,
            "local_spec",
            dataclasses.replace(
                spec, num_heads=per_rank, num_kv_heads=kv[1] - kv[0], head_dim=spec.head_dim
            ),
        )

    def tensors(self) -> dict[str, TensorSlice]:
        spec, D = self.spec, self.spec.head_dim
        assert D is not None and spec.num_kv_heads is not None
        q = TensorSlice(0, self.heads[0] * D, self.heads[1] * D, spec.num_heads * D)
        kv = TensorSlice(0, self.kv_heads[0] * D, self.kv_heads[1] * D, spec.num_kv_heads * D)
        out = {"q_proj.weight": q, "k_proj.weight": kv, "v_proj.weight": kv}
        if spec.qkv_bias:
            out |= {"q_proj.bias": q, "k_proj.bias": kv, "v_proj.bias": kv}
        out["o_proj.weight"] = TensorSlice(1, q.start, q.stop, q.full)
        if spec.out_bias:
            out["o_proj.bias"] = REPLICATED
        if spec.qk_norm:
            out |= {"q_norm.weight": REPLICATED, "k_norm.weight": REPLICATED}
        return out


@dataclass(frozen=True)
class FeedForwardShard:
    """Rank ``rank``'s intermediate columns ``columns`` of ``spec``; ``local_spec`` is
    the feed-forward it runs (same hidden size, ``intermediate_dim / world_size``)."""

    spec: FeedForwardSpec
    world_size: int
    rank: int
    where: str = "ffn"
    columns: tuple[int, int] = field(init=False)
    local_spec: FeedForwardSpec = field(init=False)

    def __post_init__(self) -> None:
        _check_world(self.world_size, self.rank)
        inter, n = self.spec.intermediate_dim, self.world_size
        if inter % n:
            raise ShardPlanError(
                self.where, "intermediate_dim", inter, f"a multiple of world_size ({n})"
            )
        per = inter // n
        object.__setattr__(self, "columns", (self.rank * per, (self.rank + 1) * per))
        object.__setattr__(self, "local_spec", dataclasses.replace(self.spec, intermediate_dim=per))

    def tensors(self) -> dict[str, TensorSlice]:
        spec = self.spec
        col = TensorSlice(0, *self.columns, spec.intermediate_dim)
        out = {
            "up_proj.weight": col,
            "down_proj.weight": TensorSlice(1, *self.columns, spec.intermediate_dim),
        }
        if spec.gated:
            out["gate_proj.weight"] = col
        if spec.bias:
            out |= {"up_proj.bias": col, "down_proj.bias": REPLICATED}
            if spec.gated:
                out["gate_proj.bias"] = col
        return out


@dataclass(frozen=True)
class MoEShard:
    """Rank ``rank`` runs experts ``experts`` (``[start, stop)``, whole) of ``spec``; the
    router is replicated and a shared expert is split as a feed-forward."""

    spec: MoESpec
    world_size: int
    rank: int
    where: str = "ffn"
    experts: tuple[int, int] = field(init=False)
    shared: FeedForwardShard | None = field(init=False)

    def __post_init__(self) -> None:
        _check_world(self.world_size, self.rank)
        if self.spec.num_experts < self.world_size:
            raise ShardPlanError(
                self.where,
                "num_experts",
                self.spec.num_experts,
                f">= world_size ({self.world_size})",
            )
        object.__setattr__(
            self, "experts", even_range(self.spec.num_experts, self.world_size, self.rank)
        )
        shared = self.spec.shared_expert
        object.__setattr__(
            self,
            "shared",
            FeedForwardShard(shared, self.world_size, self.rank, f"{self.where}.shared_expert")
            if shared
            else None,
        )

    def tensors(self) -> dict[str, TensorSlice | None]:
        out: dict[str, TensorSlice | None] = {"gate.weight": REPLICATED}
        expert = self.spec.expert
        whole = ["up_proj.weight", "down_proj.weight"] + (
            ["gate_proj.weight"] if expert.gated else []
        )
        if expert.bias:
            whole += ["up_proj.bias", "down_proj.bias"] + (
                ["gate_proj.bias"] if expert.gated else []
            )
        first, last = self.experts
        for e in range(self.spec.num_experts):  # None: held by another rank, not loaded here
            out |= {
                f"experts.{e}.{name}": REPLICATED if first <= e < last else None for name in whole
            }
        if self.shared is not None:
            out |= {f"shared_expert.{k}": v for k, v in self.shared.tensors().items()}
        if self.spec.shared_expert_gate:
            out["shared_expert_gate.weight"] = REPLICATED
        return out


@dataclass(frozen=True)
class VocabShard:
    """Rank ``rank``'s vocabulary rows ``rows`` (``[start, stop)``) of ``vocab_size``;
    every rank's part is padded to ``padded`` rows for the logits all-gather."""

    vocab_size: int
    world_size: int
    rank: int
    where: str = "embedding"
    rows: tuple[int, int] = field(init=False)
    padded: int = field(init=False)

    def __post_init__(self) -> None:
        _check_world(self.world_size, self.rank)
        if self.vocab_size < self.world_size:
            raise ShardPlanError(
                self.where, "vocab_size", self.vocab_size, f">= world_size ({self.world_size})"
            )
        object.__setattr__(self, "rows", even_range(self.vocab_size, self.world_size, self.rank))
        object.__setattr__(self, "padded", -(-self.vocab_size // self.world_size))

    @property
    def size(self) -> int:
        return self.rows[1] - self.rows[0]

    @property
    def slice(self) -> TensorSlice:
        return TensorSlice(0, *self.rows, self.vocab_size)


@dataclass(frozen=True)
class ModelShardPlan:
    """The plan of a whole :class:`~tttv2.core.specs.ModelSpec` for one rank."""

    spec: ModelSpec
    world_size: int
    rank: int
    embedding: VocabShard = field(init=False)
    layers: tuple[tuple[AttentionShard, FeedForwardShard | MoEShard], ...] = field(init=False)

    def __post_init__(self) -> None:
        _check_world(self.world_size, self.rank)
        spec, n, r = self.spec, self.world_size, self.rank
        object.__setattr__(
            self, "embedding", VocabShard(spec.embedding.vocab_size, n, r, "embedding")
        )
        layers = []
        for i, layer in enumerate(spec.layers):
            attn = AttentionShard(layer.attention, n, r, f"layers[{i}].attention")
            ffn: FeedForwardShard | MoEShard
            if isinstance(layer.ffn, MoESpec):
                ffn = MoEShard(layer.ffn, n, r, f"layers[{i}].ffn")
            else:
                ffn = FeedForwardShard(layer.ffn, n, r, f"layers[{i}].ffn")
            layers.append((attn, ffn))
        object.__setattr__(self, "layers", tuple(layers))
        if spec.lm_head.vocab_size != spec.embedding.vocab_size:
            VocabShard(spec.lm_head.vocab_size, n, r, "lm_head")  # raises when too small

    @property
    def lm_head(self) -> VocabShard:
        if self.spec.lm_head.vocab_size == self.spec.embedding.vocab_size:
            return self.embedding
        return VocabShard(self.spec.lm_head.vocab_size, self.world_size, self.rank, "lm_head")

    def tensors(self) -> dict[str, TensorSlice | None]:
        """Every parameter of the model by its module name, with this rank's slice (None:
        another rank's, e.g. an expert this rank does not run)."""
        spec = self.spec
        out: dict[str, TensorSlice | None] = {"embedding.weight": self.embedding.slice}
        if spec.embedding.max_positions is not None:
            out["embedding.position_embedding"] = REPLICATED
        for i, (layer, (attn, ffn)) in enumerate(zip(spec.layers, self.layers, strict=True)):
            p = f"layers.{i}."
            out |= {f"{p}attention.{k}": v for k, v in attn.tensors().items()}
            out |= {f"{p}ffn.{k}": v for k, v in ffn.tensors().items()}
            for norm in ("attn_norm", "ffn_norm", "post_attn_norm", "post_ffn_norm"):
                norm_spec = getattr(layer, norm)
                if norm_spec is not None:
                    out |= {f"{p}{norm}.{k}": REPLICATED for k in _norm_params(norm_spec)}
        out |= {f"final_norm.{k}": REPLICATED for k in _norm_params(spec.final_norm)}
        if not spec.lm_head.tied:
            out["lm_head.weight"] = self.lm_head.slice
        if spec.lm_head.bias:
            out["lm_head.bias"] = self.lm_head.slice
        return out


def _norm_params(spec: NormSpec) -> tuple[str, ...]:
    return ("weight", "bias") if spec.bias else ("weight",)
