/* The routed experts of a mixture-of-experts layer at decode, in one call:
 *
 *     for each expert g that some token chose (groups in ascending expert id):
 *         xg = x[rows of g]                                   (the tokens routed to g)
 *         a  = round(act(xg @ Wgate_g^T)) * (xg @ Wup_g^T)     rounded to the dtype
 *         y  = round(round(a @ Wdown_g^T) * weight)           (routing weight in fp32)
 *         out[token] = round(out[token] + y)                  (out starts at zero)
 *
 * The same arithmetic, rounded where they round, as the eager MoE block (one FeedForward
 * per chosen expert through the few-row linear kernel, then ``index_add_``), with one
 * native call instead of ~10 eager operations per expert: at decode each expert is a
 * few-row product bound by reading its weights, and only the chosen experts are read.
 * SiLU runs 8 wide with exp8 (relative error ~2e-7, under one rounding of the result).
 *
 * rows[a], weights[a] for the assignments a sorted by expert; counts[g] assignments per
 * group. Returns 0; 1 for a bad dtype or activation; 2 when memory is missing.
 */
#include <math.h>

#include "skinny_linear.c"

enum { MOE_SILU = 0, MOE_GELU_TANH = 1 };

static inline float moe_round1(float f, int t) {
    if (t == F32) return f;
    uint32_t tmp; /* 4 bytes: the compiler cannot always see that t is not F32 here */
    store1(&tmp, 0, f, t);
    return load1(&tmp, 0, t);
}

static inline __m256 moe_round8(__m256 v, int t) {
    if (t == F16) return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (t != BF16) return v;
    return _mm256_castsi256_ps(_mm256_and_si256(bf16_round_bits8(v), _mm256_set1_epi32((int)0xffff0000u)));
}

static inline float moe_activate(float g, int kind) {
    if (kind == MOE_SILU) return g / (1.0f + expf(-g));
    return 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
}

/* a = round(act(g)) * u rounded to t, for the elements [s, e) of one group's n elements,
 * as moe_gated over the whole group computes them (so any split gives the same bits):
 * SiLU takes the 8-wide path (exp8) for the first n8 = n & ~7 elements and expf after,
 * GELU-tanh is scalar throughout (n8 = 0). af (NULL: none) gets a in fp32 (exactly). */
static void moe_gated_span(const void *g, const void *u, void *a, float *af, int t, int64_t s, int64_t e,
                           int64_t n8, int kind) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const int64_t vend = e < n8 ? e : n8;
    int64_t i = s;
    for (; i + 8 <= vend; i += 8) {
        const __m256 gv = load8(g, i, t), uv = load8(u, i, t);
        const __m256 av = _mm256_div_ps(gv, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, gv))));
        store8(a, i, _mm256_mul_ps(moe_round8(av, t), uv), t);
    }
    if (i < vend) { /* fewer than 8 left of the 8-wide part: the same lanes, padded */
        float gs[8] = {0}, us[8] = {0}, rs[8];
        for (int64_t j = i; j < vend; j++) gs[j - i] = load1(g, j, t), us[j - i] = load1(u, j, t);
        const __m256 gv = _mm256_loadu_ps(gs), uv = _mm256_loadu_ps(us);
        const __m256 av = _mm256_div_ps(gv, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, gv))));
        _mm256_storeu_ps(rs, _mm256_mul_ps(moe_round8(av, t), uv));
        for (int64_t j = i; j < vend; j++) store1(a, j, rs[j - i], t);
        i = vend;
    }
    for (; i < e; i++) store1(a, i, moe_round1(moe_activate(load1(g, i, t), kind), t) * load1(u, i, t), t);
    if (af)
        for (i = s; i < e; i++) af[i] = load1(a, i, t);
}

/* Whether the products take skinny_linear's bf16 x bf16 path (vdpbf16ps, bf16 inputs). */
#if defined(TTTV2_AVX512BF16)
#define MOE_DP(xt, wt) ((xt) == BF16 && (wt) == BF16)
#else
#define MOE_DP(xt, wt) 0
#endif

/* y[c, N] = x[c, K] @ w[N, K]^T for the weight rows [lo, hi): the general (fp32 x) block or
 * the bf16 x bf16 one, as tttv2_skinny_linear picks them. */
static void moe_rows(int dp, const float *xf, const void *xh, const void *w, int wt, void *y, int yt, int64_t c,
                     int64_t N, int64_t K, int64_t lo, int64_t hi) {
#if defined(TTTV2_AVX512BF16)
    if (dp) {
        rows_against_chunk_dp((const uint16_t *)xh, (const uint16_t *)w, NULL, 0, y, yt, c, N, K, lo, hi);
        return;
    }
#endif
    (void)dp, (void)xh;
    rows_against_chunk(xf, w, wt, NULL, NULL, 0, y, yt, c, N, K, lo, hi);
}

/* The whole call is one OpenMP parallel region with one barrier, so a thread the OS
 * deschedules holds the step up once, not once per projection (three per expert):
 *   phase 1, units (expert, chunk of intermediate rows): gate and up rows of the chunk for
 *     the expert's tokens, then the activation of those elements (they depend on nothing
 *     else);
 *   barrier (the down projections read whole activation rows);
 *   phase 2, units (chunk of hidden rows): for each expert in ascending order, its down
 *     rows of the chunk, then the weighted sum into out[token] for those columns, so every
 *     output element is summed in the order the serial loop sums it.
 * Chunks are skinny_linear's (L2-sized, a multiple of the thread count); units are handed
 * out dynamically, so a thread that starts late finds the others have taken its share. */
int tttv2_routed_experts(const void *x, int xt, void *out, int64_t tokens, int64_t hidden, int64_t inter,
                         const int64_t *rows, const float *weights, const int64_t *counts, int64_t groups,
                         const void *const *gate_w, const void *const *up_w, const void *const *down_w, int wt,
                         int activation, int64_t l2_bytes) {
    if (!valid_dtype(xt) || !valid_dtype(wt)) return 1;
    if (activation != MOE_SILU && activation != MOE_GELU_TANH) return 1;
    const int64_t E = xt == F32 ? 4 : 2;
    memset(out, 0, (size_t)(tokens * hidden * E));
    int64_t total = 0;
    for (int64_t g = 0; g < groups; g++) total += counts[g] > 0 ? counts[g] : 0;
    if (total == 0) return 0;
    int64_t *first = (int64_t *)malloc((size_t)groups * sizeof(int64_t)); /* each group's first assignment */
    const int dp = MOE_DP(xt, wt);
    /* per assignment: x gathered (dtype xt; fp32 too unless dp), gate, up, activation
     * (dtype xt; fp32 too unless dp), down (dtype xt) */
    const int64_t f32 = dp ? 0 : 4;
    char *work = (char *)malloc((size_t)(total * (hidden * (2 * E + f32) + inter * (3 * E + f32))));
    if (!work || !first) {
        free(work), free(first);
        return 2;
    }
    char *xg = work, *gb = xg + total * hidden * E, *ub = gb + total * inter * E, *ab = ub + total * inter * E;
    char *db = ab + total * inter * E;
    float *xf = dp ? NULL : (float *)(db + total * hidden * E);
    float *af = dp ? NULL : xf + total * hidden;
    for (int64_t g = 0, a0 = 0; g < groups; g++) first[g] = a0, a0 += counts[g] > 0 ? counts[g] : 0;
    for (int64_t a = 0; a < total; a++) {
        const char *src = (const char *)x + rows[a] * hidden * E;
        memcpy(xg + a * hidden * E, src, (size_t)(hidden * E));
        if (xf)
            for (int64_t k = 0; k < hidden; k++) xf[a * hidden + k] = load1(src, k, xt);
    }
    const int threads = omp_get_max_threads();
    const int64_t wbytes = weight_bytes(wt);
    const int64_t rows1 = skinny_chunk_rows(inter, hidden, wbytes, threads, l2_bytes);
    const int64_t rows2 = skinny_chunk_rows(hidden, inter, wbytes, threads, l2_bytes);
    const int64_t chunks1 = (inter + rows1 - 1) / rows1, chunks2 = (hidden + rows2 - 1) / rows2;
    const int64_t units1 = groups * chunks1;
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < units1; u++) {
            const int64_t g = u / chunks1, lo = u % chunks1 * rows1, hi = lo + rows1 < inter ? lo + rows1 : inter;
            const int64_t c = counts[g], a0 = first[g];
            if (c <= 0) continue;
            const float *xfg = xf ? xf + a0 * hidden : NULL;
            const char *xhg = xg + a0 * hidden * E;
            char *gg = gb + a0 * inter * E, *ug = ub + a0 * inter * E, *ag = ab + a0 * inter * E;
            moe_rows(dp, xfg, xhg, gate_w[g], wt, gg, xt, c, inter, hidden, lo, hi);
            moe_rows(dp, xfg, xhg, up_w[g], wt, ug, xt, c, inter, hidden, lo, hi);
            const int64_t n8 = activation == MOE_SILU ? c * inter & ~(int64_t)7 : 0;
            for (int64_t i = 0; i < c; i++)
                moe_gated_span(gg, ug, ag, af ? af + a0 * inter : NULL, xt, i * inter + lo, i * inter + hi, n8,
                               activation);
        } /* the barrier: every activation row is complete */
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < chunks2; u++) {
            const int64_t lo = u * rows2, hi = lo + rows2 < hidden ? lo + rows2 : hidden;
            for (int64_t g = 0; g < groups; g++) {
                const int64_t c = counts[g], a0 = first[g];
                if (c <= 0) continue;
                char *dg = db + a0 * hidden * E;
                moe_rows(dp, af ? af + a0 * inter : NULL, ab + a0 * inter * E, down_w[g], wt, dg, xt, c, hidden,
                         inter, lo, hi);
                for (int64_t i = 0; i < c; i++) {
                    const float w = weights[a0 + i];
                    const int64_t t = rows[a0 + i];
                    for (int64_t h = lo; h < hi; h++) {
                        const float y = moe_round1(load1(dg, i * hidden + h, xt) * w, xt);
                        store1(out, t * hidden + h, load1(out, t * hidden + h, xt) + y, xt);
                    }
                }
            }
        }
    }
    free(work);
    free(first);
    return 0;
}
