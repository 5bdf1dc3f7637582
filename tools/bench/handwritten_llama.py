"""Hand-written, single-file Llama for CPU/CUDA inference: the "hand-optimised" bar.

This is the seed's reference point for composition cost: the same kernels TTTv2 uses
(torch SDPA, ``F.rms_norm``, tttv2-hw's native decode product, fused projections) with none
of the abstractions — no specs, no strategies, no paged cache. It is deliberately good: fused
QKV and gate/up weights packed with the rest into one buffer on huge pages in the order a
step reads them (tttv2-hw's ``huge_page_buffer``), a static contiguous KV cache written in place, the native
few-row product (``tttv2.hw.kernels.native.skinny_linear``, else ``torch.mv``) for decode, one RoPE rotation for q and k together with cos/sin rows looked up
once per forward from tables built once, and — on CPUs without native bf16 — products of
8 or more half-precision rows computed in fp32 from weight slices converted on the fly
into one cache-resident buffer (torch's bf16 GEMM is 2-4x slower there). Besides ``torch``
and ``safetensors`` it uses tttv2-hw's native CPU kernels (few-row linear, RMSNorm, decode
attention, and for decode steps of up to 16 rows the one-call decoder stack that runs them
for every layer: the same kernels TTTv2 uses, as the comparison requires); it reads a Hugging Face
Llama checkpoint folder directly and imports nothing else of tttv2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

from tttv2.hw.kernels.native import NativeKernelUnavailable
from tttv2.hw.kernels.native.decode_layer import (
    MAX_ROWS,
    DecodeLayerShape,
    DecodeLayerWeights,
    NativeDecodeLayer,
    NativeDecodeStep,
    decode_layer_kernel,
)
from tttv2.hw.kernels.native.decode_stack import NativeDecodeStack
from tttv2.hw.kernels.native.paged_decode_attention import native_paged_decode_attention
from tttv2.hw.kernels.native.rms_norm import native_rms_norm
from tttv2.hw.kernels.native.skinny_linear import SKINNY_MAX_ROWS, skinny_kernel, skinny_linear
from tttv2.hw.memory.huge_pages import huge_page_buffer


def _inv_freq(cfg: dict, head_dim: int) -> tuple[torch.Tensor, float]:
    # transformers 5 writes "rope_parameters" (theta inside); older checkpoints use
    # "rope_theta" + "rope_scaling".
    scaling = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    base = scaling.get("rope_theta", cfg.get("rope_theta", 10000.0))
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "llama3":
        factor, lo, hi = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        inv = torch.where(medium, mid, scaled)
    elif kind == "linear":
        inv = inv / scaling["factor"]
    elif kind != "default":
        raise ValueError(f"handwritten baseline supports default/linear/llama3 RoPE, not {kind!r}")
    return inv.float(), 1.0


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16", "bf16"))


def _packed(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of ``tensors`` (each once, however often listed) in one huge-page buffer."""
    unique = list({id(x): x for x in tensors}.values())
    sizes = [-(-x.numel() * x.element_size() // 64) * 64 for x in unique]
    buf, out, at = huge_page_buffer(sum(sizes)), {}, 0
    for x, n in zip(unique, sizes, strict=True):
        out[id(x)] = (
            buf[at : at + x.numel() * x.element_size()].view(x.dtype).view(x.shape).copy_(x)
        )
        at += n
    return [out[id(x)] for x in tensors]


UPCAST_MIN_ROWS = 8  # from here on, half-precision products run in fp32 (no native bf16)
UPCAST_SLICE_BYTES = 4 << 20  # one reused fp32 buffer for the converted weight slice


class HandwrittenLlama:
    def __init__(
        self,
        checkpoint: str | Path,
        dtype: torch.dtype = torch.float32,
        max_seq_len: int = 2048,
        max_batch: int = 1,
        device: str = "cpu",
    ) -> None:
        folder = Path(checkpoint)
        cfg = json.loads((folder / "config.json").read_text())
        self.dtype, self.device = dtype, torch.device(device)
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads", self.n_heads)
        self.hidden = cfg["hidden_size"]
        self.head_dim = cfg.get("head_dim") or self.hidden // self.n_heads
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.upcast = (
            dtype in (torch.bfloat16, torch.float16)
            and self.device.type == "cpu"
            and (dtype == torch.float16 or not _cpu_has_native_bf16())
        )
        self.native = self.device.type == "cpu" and not isinstance(
            skinny_kernel(), NativeKernelUnavailable
        )
        self.scale = 1.0 / math.sqrt(
            cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        )
        t = self._read(folder)
        w = lambda name: t.pop(name).to(device=self.device, dtype=dtype).contiguous()  # noqa: E731
        self.embed = w("model.embed_tokens.weight")
        self.layers = []
        for i in range(self.n_layers):
            p = f"model.layers.{i}."
            qkv = torch.cat(
                [
                    w(p + "self_attn.q_proj.weight"),
                    w(p + "self_attn.k_proj.weight"),
                    w(p + "self_attn.v_proj.weight"),
                ]
            )
            gate_up = torch.cat([w(p + "mlp.gate_proj.weight"), w(p + "mlp.up_proj.weight")])
            self.layers.append(
                (
                    w(p + "input_layernorm.weight"),
                    qkv,
                    w(p + "self_attn.o_proj.weight"),
                    w(p + "post_attention_layernorm.weight"),
                    gate_up,
                    w(p + "mlp.down_proj.weight"),
                )
            )
        self.norm = w("model.norm.weight")
        self.lm_head = w("lm_head.weight") if "lm_head.weight" in t else self.embed
        if self.device.type == "cpu":  # one buffer on huge pages, in the order a step reads them
            flat = [
                self.embed,
                *(x for layer in self.layers for x in layer),
                self.norm,
                self.lm_head,
            ]
            packed = dict(zip(map(id, flat), _packed(flat), strict=True))
            self.embed, self.norm, self.lm_head = (
                packed[id(self.embed)],
                packed[id(self.norm)],
                packed[id(self.lm_head)],
            )
            self.layers = [tuple(packed[id(x)] for x in layer) for layer in self.layers]
        inv, _ = _inv_freq(cfg, self.head_dim)
        ang = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv)
        self.cos, self.sin = ang.cos().to(self.device, dtype), ang.sin().to(self.device, dtype)
        # [B, S, Hkv, D]: the layout the native decode attention reads (one block per sequence)
        shape = (max_batch, max_seq_len, self.n_kv, self.head_dim)
        self.rows = torch.arange(max_batch, device=self.device).view(max_batch, 1)
        self.k_cache = [
            torch.zeros(shape, dtype=dtype, device=self.device) for _ in range(self.n_layers)
        ]
        self.v_cache = [
            torch.zeros(shape, dtype=dtype, device=self.device) for _ in range(self.n_layers)
        ]
        self.max_seq_len = max_seq_len
        self.fused = []  # one native call per layer at decode (the caches are one block per sequence)
        if self.native and not isinstance(decode_layer_kernel(), NativeKernelUnavailable):
            shape = DecodeLayerShape(self.n_heads, self.n_kv, self.head_dim, self.head_dim, False, "silu",
                                     self.eps, self.eps, False, False, self.scale, None, None)  # fmt: skip
            for ln1, wqkv, wo, ln2, wgu, wdown in self.layers:
                weights = DecodeLayerWeights(ln1, wqkv, None, wo, None, ln2, wgu, None, wdown, None)
                self.fused.append(NativeDecodeLayer(weights, shape))
            self.workspace = self.fused[0].workspace_bytes(max_batch, dtype) if self.fused else 0
            # the whole stack in one call; the step's cos/sin rows are written into these buffers
            half = self.head_dim // 2
            self.cos_rows = torch.zeros(max_batch, half, dtype=dtype)
            self.sin_rows = torch.zeros(max_batch, half, dtype=dtype)
            self.stack = NativeDecodeStack(self.fused, self.k_cache, self.v_cache, [self.cos_rows] * self.n_layers,
                                           [self.sin_rows] * self.n_layers)  # fmt: skip

    @staticmethod
    def _read(folder: Path) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for f in sorted(folder.glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():
                    out[k] = fh.get_tensor(k)
        return out

    # -- kernels -------------------------------------------------------------------
    def _linear(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if x.shape[0] <= SKINNY_MAX_ROWS and self.native:
            if torch.compiler.is_compiling():  # the same kernel as an op the graph keeps
                return torch.ops.tttv2_hw.cpu_linear(x, w, None)
            return skinny_linear(x, w)
        if x.shape[0] == 1:  # one row: matrix-vector, which streams weights at full speed
            return torch.mv(w, x[0]).unsqueeze(0)
        if self.upcast and x.shape[0] >= UPCAST_MIN_ROWS:  # fp32 GEMM, weight converted in slices
            xf, step = x.float(), min(w.shape[0], max(1, UPCAST_SLICE_BYTES // (4 * w.shape[1])))
            buf = torch.empty(step, w.shape[1], device=x.device)
            out = torch.empty(x.shape[0], w.shape[0], device=x.device)
            for i in range(0, w.shape[0], step):
                n = min(step, w.shape[0] - i)
                buf[:n].copy_(w[i : i + n])
                torch.mm(xf, buf[:n].t(), out=out[:, i : i + n])
            return out.to(x.dtype)
        return F.linear(x, w)

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.native:
            if torch.compiler.is_compiling():
                return torch.ops.tttv2_hw.cpu_rms_norm(x, w, self.eps, False)
            return native_rms_norm(x, w, self.eps)
        return F.rms_norm(x, (x.shape[-1],), w, self.eps)  # fp32 accumulation for half inputs

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2  # x [B, S, heads, D], cos/sin [S, 1, D/2]
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    # -- model ---------------------------------------------------------------------
    @torch.no_grad()  # not inference_mode: a compiled step with custom ops rejects inference tensors
    def forward(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        """ids [B, S] at positions start..start+S-1; returns logits of the last token [B, V]."""
        bsz, seq = ids.shape
        h = self.embed[ids].reshape(bsz * seq, self.hidden)
        pos = slice(start, start + seq)
        cos, sin = self.cos[pos, None], self.sin[pos, None]  # [S, 1, D/2], shared by the layers
        lens = torch.full((bsz,), start + seq, dtype=torch.int64)
        if seq == 1 and self.fused and bsz <= MAX_ROWS and not torch.compiler.is_compiling():
            return self._fused_decode(h, start, lens)
        nq, nkv, d = self.n_heads * self.head_dim, self.n_kv * self.head_dim, self.head_dim
        for i, (ln1, wqkv, wo, ln2, wgu, wdown) in enumerate(self.layers):
            qkv = self._linear(self._rms(h, ln1), wqkv).view(bsz, seq, -1)
            # q and k heads are adjacent in the fused product: one rotation for both
            qk = self._rope(
                qkv[..., : nq + nkv].view(bsz, seq, self.n_heads + self.n_kv, d), cos, sin
            )
            v = qkv[..., nq + nkv :].view(bsz, seq, self.n_kv, d)
            self.k_cache[i][:bsz, pos] = qk[:, :, self.n_heads :]
            self.v_cache[i][:bsz, pos] = v
            if seq == 1 and self.native:  # decode: keys and values read in place
                args = (
                    qk[:, 0, : self.n_heads],
                    self.k_cache[i],
                    self.v_cache[i],
                    self.rows[:bsz],
                    lens,
                )
                if torch.compiler.is_compiling():
                    o = torch.ops.tttv2_hw.cpu_paged_decode_attention(
                        *args, self.scale, None, None
                    ).unsqueeze(1)
                else:
                    o = native_paged_decode_attention(*args, scale=self.scale).unsqueeze(1)
            else:
                q = qk[:, :, : self.n_heads].transpose(1, 2)
                kc = self.k_cache[i][:bsz, : start + seq].transpose(1, 2)
                vc = self.v_cache[i][:bsz, : start + seq].transpose(1, 2)
                o = F.scaled_dot_product_attention(
                    q,
                    kc,
                    vc,
                    is_causal=seq > 1 and start == 0,
                    enable_gqa=self.n_heads != self.n_kv,
                ).transpose(1, 2)
            h = h + self._linear(o.reshape(bsz * seq, nq), wo)
            gu = self._linear(self._rms(h, ln2), wgu)
            gate, up = gu.chunk(2, dim=-1)
            h = h + self._linear(F.silu(gate) * up, wdown)
        last = h.view(bsz, seq, self.hidden)[:, -1]
        return self._linear(self._rms(last, self.norm), self.lm_head)

    def _fused_decode(self, h: torch.Tensor, start: int, lens: torch.Tensor) -> torch.Tensor:
        bsz = h.shape[0]
        h = h.contiguous()
        rows = self.rows[:bsz]
        step = NativeDecodeStep(
            h, rows[:, 0] * self.max_seq_len + start, rows, lens, self.dtype, self.workspace
        )
        self.cos_rows[:bsz] = self.cos[start]
        self.sin_rows[:bsz] = self.sin[start]
        self.stack(step)
        return self._linear(self._rms(h, self.norm), self.lm_head)

    def generate_greedy(self, prompt: list[int], steps: int) -> list[int]:
        ids = torch.tensor([prompt], device=self.device)
        logits = self.forward(ids, 0)
        out, pos = [], len(prompt)
        for _ in range(steps):
            nxt = int(logits.argmax(-1)[0])
            out.append(nxt)
            logits = self.forward(torch.tensor([[nxt]], device=self.device), pos)
            pos += 1
        return out
