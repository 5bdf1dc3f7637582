/* Decode attention: one query token per sequence against its paged KV cache.
 *
 * Pools are [num_blocks, block_size, Hkv, D]; sequence b's token t lives in block
 * block_tables[b, t / block_size] at row t % block_size. The G = H / Hkv query heads of
 * one KV head share each key and value row, read once (GQA/MQA without copies). Keys and
 * values are read in place through the block table: no gather, no mask, no copy, so the
 * cost is the visible context and nothing else. Scores, softmax and the weighted sum are
 * fp32; optional logit soft-capping (cap * tanh(s / cap)) and a sliding window of the last
 * `window` tokens. (sequence, KV head) pairs run in parallel.
 *
 * Register tiles: scores take 4 tokens x up to 3 query heads per pass over the head dim (each
 * key row converted once per 3 heads, four sums reduced together); the weighted sum keeps
 * 16 output dims x up to 4 heads in registers across all tokens and divides by the softmax
 * denominator once at the end. Head dims that are not a multiple of 8 take the scalar path.
 *
 * Returns 0, 1 for a bad dtype code, 2 when scratch memory is missing, 3 for a block
 * index outside the pool or a length outside the table (nothing is read out of bounds).
 */
#include <math.h>
#include <stdlib.h>
#include <omp.h>

#include "dtypes.h"

/* Rows are Hkv * D apart and the blocks anywhere in the pool: too scattered for the
 * hardware prefetcher, so the tiles fetch the rows PREFETCH_AHEAD tokens ahead (offsets
 * past the end point at the last row: the offset array is padded). */
#define PREFETCH_AHEAD 16
INLINE void prefetch_rows(const void *pool, int t, const int64_t *off, int count, int64_t D) {
    const int64_t size = t == F32 ? 4 : 2;
    for (int r = 0; r < count; r++)
        for (int64_t b = 0; b < D * size; b += 64) _mm_prefetch((const char *)pool + off[r] * size + b, _MM_HINT_T0);
}

/* The sums of 4 vectors' lanes: {sum a, sum b, sum c, sum d}. */
INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d), abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* scores[g][i] for query heads g0..g0+GT and the 4 tokens at key offsets off[0..4). */
INLINE void score_tile(const float *qf, int64_t D, const void *kp, int kvt, const int64_t *off, int64_t g0,
                       float *scores, int64_t n, int64_t i, const int GT) {
    prefetch_rows(kp, kvt, off + PREFETCH_AHEAD, 4, D);
    __m256 acc[3][4];
    for (int g = 0; g < GT; g++)
        for (int t = 0; t < 4; t++) acc[g][t] = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d += 8) {
        __m256 k[4];
        for (int t = 0; t < 4; t++) k[t] = load8(kp, off[t] + d, kvt);
        for (int g = 0; g < GT; g++) {
            const __m256 qv = _mm256_loadu_ps(qf + (g0 + g) * D + d);
            for (int t = 0; t < 4; t++) acc[g][t] = _mm256_fmadd_ps(qv, k[t], acc[g][t]);
        }
    }
    for (int g = 0; g < GT; g++) _mm_storeu_ps(scores + (g0 + g) * n + i, hsum4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]));
}

/* out[g][d0..d0+16) = sum_i p[g][i] v_i for heads g0..g0+GT, kept in registers over the tokens. */
INLINE void value_tile(const float *p, int64_t n, const void *vp, int kvt, const int64_t *off, int64_t g0, int64_t d0,
                       float *out, int64_t D, const int GT) {
    __m256 acc[4][2];
    for (int g = 0; g < GT; g++) acc[g][0] = acc[g][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i++) {
        if (d0 == 0) prefetch_rows(vp, kvt, off + i + PREFETCH_AHEAD, 1, D);
        const __m256 v0 = load8(vp, off[i] + d0, kvt), v1 = load8(vp, off[i] + d0 + 8, kvt);
        for (int g = 0; g < GT; g++) {
            const __m256 w = _mm256_broadcast_ss(p + (g0 + g) * n + i);
            acc[g][0] = _mm256_fmadd_ps(w, v0, acc[g][0]);
            acc[g][1] = _mm256_fmadd_ps(w, v1, acc[g][1]);
        }
    }
    for (int g = 0; g < GT; g++) {
        _mm256_storeu_ps(out + (g0 + g) * D + d0, acc[g][0]);
        _mm256_storeu_ps(out + (g0 + g) * D + d0 + 8, acc[g][1]);
    }
}

/* One score (scalar path for the token tail and head dims not a multiple of 8). */
static float score1(const float *q, int64_t D, const void *kp, int kvt, int64_t off) {
    const int64_t d8 = D & ~(int64_t)7;
    __m256 s8 = _mm256_setzero_ps();
    for (int64_t d = 0; d < d8; d += 8) s8 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8(kp, off + d, kvt), s8);
    float s = hsum(s8);
    for (int64_t d = d8; d < D; d++) s += q[d] * load1(kp, off + d, kvt);
    return s;
}

static int one_head(const void *q, int qt, const void *kp, const void *vp, int kvt, const int64_t *table,
                    int64_t width, int64_t len, int64_t num_blocks, void *out, int ot, int64_t b, int64_t kvh,
                    int64_t H, int64_t Hkv, int64_t D, int64_t bs, float scale, float softcap, int64_t window) {
    const int64_t G = H / Hkv, start = window > 0 && len > window ? len - window : 0, n = len - start;
    if (len < 1 || (len + bs - 1) / bs > width) return 3;
    for (int64_t t = start; t < len; t += bs - (t % bs)) {
        int64_t blk = table[t / bs];
        if (blk < 0 || blk >= num_blocks) return 3;
    }
    /* offsets of the key/value rows [n + PREFETCH_AHEAD], then in fp32: scores [G, n],
     * q [G, D], output [G, D], 1 / softmax denominator [G] */
    int64_t *off = (int64_t *)malloc((size_t)(n + PREFETCH_AHEAD) * sizeof(int64_t) + (size_t)(G * (n + 2 * D + 1)) * sizeof(float));
    if (!off) return 2;
    float *scores = (float *)(off + n + PREFETCH_AHEAD), *qf = scores + G * n, *acc = qf + G * D, *invs = acc + G * D;
    const int64_t row = Hkv * D;
    for (int64_t i = 0; i < n; i++) {
        const int64_t t = start + i;
        off[i] = (table[t / bs] * bs + t % bs) * row + kvh * D;
    }
    for (int64_t i = n; i < n + PREFETCH_AHEAD; i++) off[i] = off[n - 1];
    for (int64_t g = 0; g < G; g++)
        for (int64_t d = 0; d < D; d++) qf[g * D + d] = load1(q, (b * H + kvh * G + g) * D + d, qt) * scale;

    const int vec = D % 8 == 0;
    const int64_t n4 = vec ? n & ~(int64_t)3 : 0;
    for (int64_t g0 = 0; g0 < G; g0 += 3) {
        const int64_t gt = G - g0 < 3 ? G - g0 : 3;
        for (int64_t i = 0; i < n4; i += 4) {
            if (gt == 3) score_tile(qf, D, kp, kvt, off + i, g0, scores, n, i, 3);
            else if (gt == 2) score_tile(qf, D, kp, kvt, off + i, g0, scores, n, i, 2);
            else score_tile(qf, D, kp, kvt, off + i, g0, scores, n, i, 1);
        }
    }
    for (int64_t g = 0; g < G; g++)
        for (int64_t i = n4; i < n; i++) scores[g * n + i] = score1(qf + g * D, D, kp, kvt, off[i]);
    if (softcap > 0.0f)
        for (int64_t j = 0; j < G * n; j++) scores[j] = softcap * tanhf(scores[j] / softcap);

    /* softmax numerators in place; 1 / denominator applied to the output */
    for (int64_t g = 0; g < G; g++) {
        float *s = scores + g * n, mx = -INFINITY;
        const int64_t n8 = n & ~(int64_t)7;
        __m256 m8 = _mm256_set1_ps(-INFINITY);
        for (int64_t i = 0; i < n8; i += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(s + i));
        for (int k = 0; k < 8; k++) mx = m8[k] > mx ? m8[k] : mx;
        for (int64_t i = n8; i < n; i++) mx = s[i] > mx ? s[i] : mx;
        __m256 sum8 = _mm256_setzero_ps(), mx8 = _mm256_set1_ps(mx);
        for (int64_t i = 0; i < n8; i += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), mx8));
            _mm256_storeu_ps(s + i, e);
            sum8 = _mm256_add_ps(sum8, e);
        }
        float sum = hsum(sum8);
        for (int64_t i = n8; i < n; i++) sum += (s[i] = expf(s[i] - mx));
        invs[g] = 1.0f / sum;
    }

    const int64_t d16 = vec ? D & ~(int64_t)15 : 0;
    for (int64_t g0 = 0; g0 < G; g0 += 4) {
        const int64_t gt = G - g0 < 4 ? G - g0 : 4;
        for (int64_t d0 = 0; d0 < d16; d0 += 16) {
            if (gt == 4) value_tile(scores, n, vp, kvt, off, g0, d0, acc, D, 4);
            else if (gt == 3) value_tile(scores, n, vp, kvt, off, g0, d0, acc, D, 3);
            else if (gt == 2) value_tile(scores, n, vp, kvt, off, g0, d0, acc, D, 2);
            else value_tile(scores, n, vp, kvt, off, g0, d0, acc, D, 1);
        }
    }
    for (int64_t g = 0; g < G; g++)
        for (int64_t d = d16; d < D; d++) {
            float a = 0.0f;
            for (int64_t i = 0; i < n; i++) a += scores[g * n + i] * load1(vp, off[i] + d, kvt);
            acc[g * D + d] = a;
        }
    for (int64_t g = 0; g < G; g++)
        for (int64_t d = 0; d < D; d++) store1(out, (b * H + kvh * G + g) * D + d, acc[g * D + d] * invs[g], ot);
    free(off);
    return 0;
}

int tttv2_paged_decode_attention(const void *q, int qt, const void *k_pool, const void *v_pool, int kvt,
                                 const int64_t *block_tables, int64_t width, const int64_t *seq_lens, void *out,
                                 int ot, int64_t B, int64_t H, int64_t Hkv, int64_t D, int64_t num_blocks,
                                 int64_t block_size, float scale, float softcap, int64_t window) {
    if (!valid_dtype(qt) || !valid_dtype(kvt) || !valid_dtype(ot)) return 1;
    if (Hkv <= 0 || H % Hkv || D <= 0 || block_size <= 0) return 1;
    int status = 0;
    int64_t work = 0;
    for (int64_t b = 0; b < B; b++) work += seq_lens[b];
#pragma omp parallel for schedule(dynamic) reduction(| : status) if (B * Hkv > 1 && work * H * D >= 65536)
    for (int64_t i = 0; i < B * Hkv; i++) {
        const int64_t b = i / Hkv;
        status |= one_head(q, qt, k_pool, v_pool, kvt, block_tables + b * width, width, seq_lens[b], num_blocks,
                           out, ot, b, i % Hkv, H, Hkv, D, block_size, scale, softcap, window);
    }
    return status;
}
