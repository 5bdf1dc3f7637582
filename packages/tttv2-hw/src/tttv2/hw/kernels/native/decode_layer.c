/* One pre-norm decoder layer's decode step in one call, for a few rows (1-16 sequences):
 *
 *     n = rms_norm(h);  qkv = n @ Wqkv^T (+b);  [rms_norm each q and k head (QK-norm)]
 *     rotate q and k;  write k, v to the paged cache
 *     h = h + [post_attn_rms_norm](paged_attention(q) @ Wo^T (+b))
 *     n = rms_norm(h);  gu = n @ Wgu^T (+b);  h = h + [post_ffn_rms_norm]((act(gate) * up) @ Wdown^T (+b))
 *
 * The bracketed norms are optional (NULL weights: absent): QK-norm as Qwen3 and Gemma 3,
 * the sandwich norms after attention and feed-forward as Gemma 2 and 3.
 *
 * The same arithmetic as the eager blocks calling the three kernels included below one
 * by one, rounded where they round: every intermediate is stored in the activation dtype;
 * the rotation rounds each product and sum to the promoted dtype of the activations and
 * the cos/sin rows (as PyTorch's elementwise ops do); the residual sums are rounded once.
 * At decode the weights stream from memory in a few milliseconds in total while each eager
 * operation costs a few microseconds of dispatch: one call per layer removes ~20 of them.
 *
 * A mixture-of-experts layer (moe set; decode_moe.c) has the routed experts, plus an
 * optional shared expert in the gate_up/down weights (NULL: none), as its feed-forward. Its
 * router is the caller's: the stack call returns ROUTE after the layer's ffn_norm, the
 * caller reads n (the first rows * hidden elements of the workspace), writes the routing
 * and calls again to resume at that layer's feed-forward.
 *
 * Returns 0; 1 for a bad dtype or shape; 2 when the workspace is too small or memory is
 * missing; 3 for a slot, block index or length outside the cache (nothing is written then
 * for that row, nothing read out of bounds) or a routing outside the experts or rows;
 * ROUTE (4) from the stack call, see above.
 */
#include "decode_moe.c"
#include "paged_decode_attention.c"
#include "rms_norm.c"
#include "skinny_linear.c"

/* Per layer, built once: sizes, options and the weights (all of dtype wt, biases may be NULL).
 * int8 weights (wt == I8) come with one fp32 scale per output row (*_s) and biases of
 * dtype bt; otherwise the scales are NULL and bt == wt. */
typedef struct {
    int64_t hidden, heads, kv_heads, head_dim, rot_half, inter, window, l2_bytes;
    float attn_eps, ffn_eps, scale, softcap;
    int32_t interleaved, activation, attn_unit_offset, ffn_unit_offset, wt, nt;
    const void *attn_norm, *qkv_w, *qkv_b, *o_w, *o_b, *ffn_norm, *gu_w, *gu_b, *down_w, *down_b;
    int32_t bt;
    const float *qkv_s, *o_s, *gu_s, *down_s;
    /* optional norms (dtype nt; NULL: absent): after o_proj, after down_proj, q and k heads [head_dim] */
    float post_attn_eps, post_ffn_eps, qk_eps;
    int32_t post_attn_unit_offset, post_ffn_unit_offset, qk_unit_offset;
    const void *post_attn_norm, *post_ffn_norm, *q_norm, *k_norm;
    const MoEExperts *moe; /* NULL: a dense feed-forward */
} DecodeLayer;

/* Per pass, shared by the layers: the hidden rows (updated in place) and the batch. */
typedef struct {
    int64_t rows, width, work_bytes;
    int32_t ht, ct;
    void *h;
    const int64_t *slots, *tables, *seq_lens;
    void *work;
} DecodeStep;

enum { ACT_SILU = 0, ACT_GELU_TANH = 1 };
enum { ROUTE = 4 }; /* the stack call stopped for a mixture-of-experts layer's routing */

static int64_t dsize(int t) { return t == F32 ? 4 : 2; }

/* f rounded to dtype t (to nearest even), as a float. */
static inline float round1(float f, int t) {
    if (t == F32) return f;
    uint16_t tmp;
    store1(&tmp, 0, f, t);
    return load1(&tmp, 0, t);
}

int64_t tttv2_decode_layer_workspace(const DecodeLayer *L, int64_t rows, int ht) {
    const int64_t qkv = (L->heads + 2 * L->kv_heads) * L->head_dim, hd = L->heads * L->head_dim;
    const int64_t moe = L->moe ? L->hidden : 0; /* the routed experts' sum beside the shared expert's */
    return rows * (2 * L->hidden + qkv + 2 * hd + 3 * L->inter + moe) * dsize(ht);
}

/* v rounded to dtype t (to nearest even), as floats, in registers. */
static inline __m256 round8(__m256 v, int t) {
    if (t == F16) return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (t != BF16) return v;
    return _mm256_castsi256_ps(_mm256_and_si256(bf16_round_bits8(v), _mm256_set1_epi32((int)0xffff0000u)));
}

/* q and k heads of one row rotated in place: out_a = a*c - b*s, out_b = b*c + a*s. The
 * half-split layout runs 8 pairs at a time, rounding where the scalar path rounds. */
static void rotate_row(const DecodeLayer *L, void *qkv, int ht, const void *cos, const void *sin, int ct, int64_t b) {
    const int rt = ht == ct ? ht : F32; /* PyTorch's promotion of the two dtypes (both half: equal) */
    const int64_t D = L->head_dim, half = L->rot_half, width = (L->heads + 2 * L->kv_heads) * D;
    const int64_t h8 = L->interleaved ? 0 : half & ~(int64_t)7;
    for (int64_t hh = 0; hh < L->heads + L->kv_heads; hh++) {
        const int64_t base = b * width + hh * D;
        for (int64_t i = 0; i < h8; i += 8) {
            const __m256 a = load8(qkv, base + i, ht), bb = load8(qkv, base + i + half, ht);
            const __m256 c = load8(cos, b * half + i, ct), s = load8(sin, b * half + i, ct);
            const __m256 ac = round8(_mm256_mul_ps(a, c), rt), bs = round8(_mm256_mul_ps(bb, s), rt);
            const __m256 bc = round8(_mm256_mul_ps(bb, c), rt), as = round8(_mm256_mul_ps(a, s), rt);
            store8(qkv, base + i, round8(_mm256_sub_ps(ac, bs), rt), ht);
            store8(qkv, base + i + half, round8(_mm256_add_ps(bc, as), rt), ht);
        }
        for (int64_t i = h8; i < half; i++) {
            const int64_t ia = base + (L->interleaved ? 2 * i : i), ib = base + (L->interleaved ? 2 * i + 1 : i + half);
            const float a = load1(qkv, ia, ht), bb = load1(qkv, ib, ht);
            const float c = load1(cos, b * half + i, ct), s = load1(sin, b * half + i, ct);
            const float ac = round1(a * c, rt), bs = round1(bb * s, rt), bc = round1(bb * c, rt), as = round1(a * s, rt);
            store1(qkv, ia, round1(ac - bs, rt), ht);
            store1(qkv, ib, round1(bc + as, rt), ht);
        }
    }
}

static void write_cache(const DecodeLayer *L, const void *qkv, int ht, void *k_pool, void *v_pool, int kvt,
                        int64_t slot, int64_t b) {
    const int64_t row = L->kv_heads * L->head_dim, width = (L->heads + 2 * L->kv_heads) * L->head_dim;
    const int64_t k0 = b * width + L->heads * L->head_dim, v0 = k0 + row;
    if (kvt == ht) { /* the cache keeps the activation dtype: the rows as they are */
        memcpy((char *)k_pool + slot * row * dsize(ht), (const char *)qkv + k0 * dsize(ht), (size_t)(row * dsize(ht)));
        memcpy((char *)v_pool + slot * row * dsize(ht), (const char *)qkv + v0 * dsize(ht), (size_t)(row * dsize(ht)));
        return;
    }
    for (int64_t j = 0; j < row; j++) {
        store1(k_pool, slot * row + j, load1(qkv, k0 + j, ht), kvt);
        store1(v_pool, slot * row + j, load1(qkv, v0 + j, ht), kvt);
    }
}

static inline float activate(float g, int kind) {
    if (kind == ACT_SILU) return g / (1.0f + expf(-g));
    return 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
}

/* y = round(act(gate)) * up, rounded: gu rows are [gate (inter) | up (inter)]. SiLU runs
 * 8 wide with exp8 (relative error ~2e-7, under one rounding of the result). */
static void gated_activation(const DecodeLayer *L, const void *gu, void *y, int ht, int64_t rows) {
    const int64_t I = L->inter, i8 = L->activation == ACT_SILU ? I & ~(int64_t)7 : 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (int64_t b = 0; b < rows; b++) {
        for (int64_t i = 0; i < i8; i += 8) {
            const __m256 g = load8(gu, b * 2 * I + i, ht), u = load8(gu, b * 2 * I + I + i, ht);
            const __m256 a = _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, g))));
            store8(y, b * I + i, _mm256_mul_ps(round8(a, ht), u), ht);
        }
        for (int64_t i = i8; i < I; i++) {
            const float g = load1(gu, b * 2 * I + i, ht), u = load1(gu, b * 2 * I + I + i, ht);
            store1(y, b * I + i, round1(activate(g, L->activation), ht) * u, ht);
        }
    }
}

/* h += d, rounded to the dtype once per element. */
static void add_rows(void *h, const void *d, int ht, int64_t n) {
    const int64_t n8 = n & ~(int64_t)7;
    for (int64_t i = 0; i < n8; i += 8) store8(h, i, _mm256_add_ps(load8(h, i, ht), load8(d, i, ht)), ht);
    for (int64_t i = n8; i < n; i++) store1(h, i, load1(h, i, ht) + load1(d, i, ht), ht);
}

/* The workspace of a step: n [B, hidden], qkv, q, att [B, H*D], o [B, hidden], gu [B, 2I],
 * act [B, I], then (MoE layers) the routed sum [B, hidden]. */
typedef struct {
    void *n, *qkv, *q, *att, *o, *gu, *act, *routed;
} Work;

static Work work_of(const DecodeLayer *L, const DecodeStep *S) {
    const int64_t B = S->rows, E = dsize(S->ht), qkvw = (L->heads + 2 * L->kv_heads) * L->head_dim;
    const int64_t hd = L->heads * L->head_dim;
    Work w;
    w.n = S->work, w.qkv = (char *)w.n + B * L->hidden * E, w.q = (char *)w.qkv + B * qkvw * E;
    w.att = (char *)w.q + B * hd * E, w.o = (char *)w.att + B * hd * E, w.gu = (char *)w.o + B * L->hidden * E;
    w.act = (char *)w.gu + B * 2 * L->inter * E, w.routed = (char *)w.act + B * L->inter * E;
    return w;
}

static int check_layer(const DecodeLayer *L, const DecodeStep *S, const void *cos, const void *sin, int kvt) {
    const int ht = S->ht, wt = L->wt, bt = L->bt;
    if (!valid_dtype(ht) || !valid_weight_dtype(wt) || !valid_dtype(bt) || !valid_dtype(L->nt) || !valid_dtype(kvt))
        return 1;
    if (wt == I8 && (!L->qkv_s || !L->o_s || !L->gu_s || !L->down_s)) return 1;
    if (L->rot_half > 0 && (!cos || !sin || !valid_dtype(S->ct))) return 1;
    if (L->kv_heads <= 0 || L->heads % L->kv_heads || 2 * L->rot_half > L->head_dim) return 1;
    if (L->activation != ACT_SILU && L->activation != ACT_GELU_TANH) return 1;
    if (!L->q_norm != !L->k_norm) return 1; /* QK-norm normalizes both or neither */
    if (!L->moe && (!L->gu_w || !L->down_w)) return 1; /* only a MoE layer goes without them */
    if (L->moe && (wt == I8 || !L->gu_w != !L->down_w)) return 1;
    if (S->work_bytes < tttv2_decode_layer_workspace(L, S->rows, ht)) return 2;
    return 0;
}

/* h += [post_attn_norm](attention), then n = ffn_norm(h) into the workspace. */
static int attention_half(const DecodeLayer *L, const DecodeStep *S, const void *cos, const void *sin,
                          void *k_pool, void *v_pool, int kvt, int64_t num_blocks, int64_t block_size) {
    const int ht = S->ht, wt = L->wt, bt = L->bt;
    const int64_t B = S->rows, E = dsize(ht), H = L->heads, D = L->head_dim, hidden = L->hidden;
    const int64_t qkvw = (H + 2 * L->kv_heads) * D, hd = H * D;
    const Work w = work_of(L, S);
    for (int64_t b = 0; b < B; b++)
        if (S->slots[b] < 0 || S->slots[b] >= num_blocks * block_size) return 3; /* before any write */
    int status = tttv2_rms_norm(S->h, ht, L->attn_norm, L->nt, w.n, ht, B, hidden, L->attn_eps, L->attn_unit_offset);
    if (!status) status = tttv2_skinny_linear_scaled(w.n, ht, L->qkv_w, wt, L->qkv_s, L->qkv_b, bt, w.qkv, ht, B, qkvw, hidden, L->l2_bytes);
    if (status) return status;
    for (int64_t b = 0; b < B; b++) {
        if (L->q_norm) { /* per head, in place: the q heads then the k heads of the row */
            char *row = (char *)w.qkv + b * qkvw * E;
            status = tttv2_rms_norm(row, ht, L->q_norm, L->nt, row, ht, H, D, L->qk_eps, L->qk_unit_offset);
            if (!status)
                status = tttv2_rms_norm(row + hd * E, ht, L->k_norm, L->nt, row + hd * E, ht, L->kv_heads, D, L->qk_eps,
                                        L->qk_unit_offset);
            if (status) return status;
        }
        if (L->rot_half > 0) rotate_row(L, w.qkv, ht, cos, sin, S->ct, b);
        write_cache(L, w.qkv, ht, k_pool, v_pool, kvt, S->slots[b], b);
        memcpy((char *)w.q + b * hd * E, (char *)w.qkv + b * qkvw * E, (size_t)(hd * E));
    }
    status = tttv2_paged_decode_attention(w.q, ht, k_pool, v_pool, kvt, S->tables, S->width, S->seq_lens, w.att, ht, B,
                                          H, L->kv_heads, D, num_blocks, block_size, L->scale, L->softcap, L->window);
    if (!status) status = tttv2_skinny_linear_scaled(w.att, ht, L->o_w, wt, L->o_s, L->o_b, bt, w.o, ht, B, hidden, hd, L->l2_bytes);
    if (!status && L->post_attn_norm)
        status = tttv2_rms_norm(w.o, ht, L->post_attn_norm, L->nt, w.o, ht, B, hidden, L->post_attn_eps, L->post_attn_unit_offset);
    if (status) return status;
    add_rows(S->h, w.o, ht, B * hidden);
    return tttv2_rms_norm(S->h, ht, L->ffn_norm, L->nt, w.n, ht, B, hidden, L->ffn_eps, L->ffn_unit_offset);
}

/* o = down(act(gate) * up) of the gate_up/down weights on n. */
static int dense_ffn(const DecodeLayer *L, const DecodeStep *S, const Work *w) {
    const int ht = S->ht, wt = L->wt, bt = L->bt;
    const int64_t B = S->rows;
    int status = tttv2_skinny_linear_scaled(w->n, ht, L->gu_w, wt, L->gu_s, L->gu_b, bt, w->gu, ht, B, 2 * L->inter,
                                            L->hidden, L->l2_bytes);
    if (status) return status;
    gated_activation(L, w->gu, w->act, ht, B);
    return tttv2_skinny_linear_scaled(w->act, ht, L->down_w, wt, L->down_s, L->down_b, bt, w->o, ht, B, L->hidden,
                                      L->inter, L->l2_bytes);
}

/* h += [post_ffn_norm](feed-forward(n)): dense, or the routed experts plus the shared expert. */
static int ffn_half(const DecodeLayer *L, const DecodeStep *S) {
    const int ht = S->ht;
    const int64_t B = S->rows, hidden = L->hidden;
    const Work w = work_of(L, S);
    void *y = w.o;
    int status = 0;
    if (L->moe) {
        y = w.routed;
        status = moe_routed(L->moe, w.n, ht, y, B, hidden, L->wt, L->l2_bytes);
        if (!status && L->gu_w) {
            status = dense_ffn(L, S, &w);
            if (!status) moe_add_shared(y, w.o, L->moe->routing->shared_gate, ht, B, hidden);
        }
    } else {
        status = dense_ffn(L, S, &w);
    }
    if (!status && L->post_ffn_norm)
        status = tttv2_rms_norm(y, ht, L->post_ffn_norm, L->nt, y, ht, B, hidden, L->post_ffn_eps, L->post_ffn_unit_offset);
    if (status) return status;
    add_rows(S->h, y, ht, B * hidden);
    return 0;
}

/* One dense layer's decode step (a MoE layer needs its routing: tttv2_decode_layers). */
int tttv2_decode_layer(const DecodeLayer *L, const DecodeStep *S, const void *cos, const void *sin,
                       void *k_pool, void *v_pool, int kvt, int64_t num_blocks, int64_t block_size) {
    int status = L->moe ? 1 : check_layer(L, S, cos, sin, kvt);
    if (!status) status = attention_half(L, S, cos, sin, k_pool, v_pool, kvt, num_blocks, block_size);
    return status ? status : ffn_half(L, S);
}

/* One layer of a stack call: the layer, its cos/sin rows and its cache pools. */
typedef struct {
    const DecodeLayer *layer;
    const void *cos, *sin;
    void *k_pool, *v_pool;
    int64_t num_blocks, block_size;
    int32_t kvt;
} LayerCall;

/* calls[*at..n) in order on the same step: a whole decoder stack's decode step in one call.
 * A mixture-of-experts layer stops the call after its ffn_norm: *at is its index and the
 * status ROUTE; the caller writes its routing and calls again with resume set, which runs
 * that layer's feed-forward and goes on. Stops at the first failing layer, its index in
 * *at, and returns its status. */
int tttv2_decode_layers(const LayerCall *calls, int64_t n, const DecodeStep *S, int64_t *at, int resume) {
    for (int64_t i = *at; i < n; i++) {
        const LayerCall *c = &calls[i];
        const DecodeLayer *L = c->layer;
        int status = check_layer(L, S, c->cos, c->sin, c->kvt);
        if (!status && !(resume && i == *at)) {
            status = attention_half(L, S, c->cos, c->sin, c->k_pool, c->v_pool, c->kvt, c->num_blocks, c->block_size);
            if (!status && L->moe) status = ROUTE;
        }
        if (!status) status = ffn_half(L, S);
        if (status) {
            *at = i;
            return status;
        }
    }
    return 0;
}
