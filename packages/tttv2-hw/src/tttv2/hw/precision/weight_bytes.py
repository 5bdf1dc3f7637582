"""Bytes a model's weights take under a precision policy, from its spec alone.

Every matmul weight is counted in its role's format (:func:`format_bytes`: packed
block-float tiles, int8 plus per-channel scales, or dense); norms and biases stay bf16 (2
bytes). A tied LM head is counted once when the head and the embedding share a format and
twice otherwise (the device then keeps two copies, as Tenstorrent bring-up does: the
embedding row-major bf16, the head bfloat8_b tiles).
"""

from __future__ import annotations

from tttv2.core.specs import FeedForwardSpec, ModelSpec, MoESpec
from tttv2.hw.memory.param_count import count_params
from tttv2.hw.precision.policy import PrecisionPolicy, format_bytes

BF16 = 2


def _ffn_bytes(spec: FeedForwardSpec, policy: PrecisionPolicy) -> tuple[int, int]:
    """(matmul weight bytes, matmul weight elements) of one dense FFN."""
    d, i = spec.hidden_dim, spec.intermediate_dim
    first = 2 if spec.gated else 1
    b = first * format_bytes((i, d), policy.weight_format("w1_w3"))
    b += format_bytes((d, i), policy.weight_format("w2"))
    return b, (first + 1) * d * i


def policy_weight_bytes(spec: ModelSpec, policy: PrecisionPolicy) -> int:
    """Device bytes of every weight of ``spec`` under ``policy``."""
    total = 0
    matmul_elems = 0
    for layer in spec.layers:
        att = layer.attention
        hd, h, hkv, d = att.head_dim, att.num_heads, att.num_kv_heads, att.hidden_dim
        q, kv = h * hd, hkv * hd  # type: ignore[operator]
        total += format_bytes((q + 2 * kv, d), policy.weight_format("wqkv"))
        total += format_bytes((d, q), policy.weight_format("wo"))
        matmul_elems += (q + 2 * kv) * d + d * q
        ffn = layer.ffn
        if isinstance(ffn, MoESpec):
            eb, ee = _ffn_bytes(ffn.expert, policy)
            total += ffn.num_experts * eb
            matmul_elems += ffn.num_experts * ee
            total += format_bytes((ffn.num_experts, ffn.hidden_dim), policy.weight_format("other"))
            matmul_elems += ffn.num_experts * ffn.hidden_dim
            if ffn.shared_expert is not None:
                sb, se = _ffn_bytes(ffn.shared_expert, policy)
                total += sb
                matmul_elems += se
        else:
            fb, fe = _ffn_bytes(ffn, policy)
            total += fb
            matmul_elems += fe
    vocab, d = spec.embedding.vocab_size, spec.embedding.hidden_dim
    emb_fmt, head_fmt = policy.weight_format("embedding"), policy.weight_format("lm_head")
    total += format_bytes((vocab, d), emb_fmt, matmul=False)
    matmul_elems += vocab * d
    if not spec.lm_head.tied or head_fmt != emb_fmt:
        total += format_bytes((vocab, d), head_fmt)
    if not spec.lm_head.tied:
        matmul_elems += vocab * d
    params = count_params(spec)
    # everything that is not a matmul weight (norms, biases, qk-norms, position tables)
    rest = params.total - matmul_elems
    return total + max(rest, 0) * BF16
