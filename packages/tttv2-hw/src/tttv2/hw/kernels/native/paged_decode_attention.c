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
 * Returns 0, 1 for a bad dtype code, 2 when scratch memory is missing, 3 for a block
 * index outside the pool or a length outside the table (nothing is read out of bounds).
 */
#include <math.h>
#include <stdlib.h>
#include <omp.h>

#include "dtypes.h"

static int one_head(const void *q, int qt, const void *kp, const void *vp, int kvt, const int64_t *table,
                    int64_t width, int64_t len, int64_t num_blocks, void *out, int ot, int64_t b, int64_t kvh,
                    int64_t H, int64_t Hkv, int64_t D, int64_t bs, float scale, float softcap, int64_t window) {
    const int64_t G = H / Hkv, start = window > 0 && len > window ? len - window : 0, n = len - start;
    if (len < 1 || (len + bs - 1) / bs > width) return 3;
    for (int64_t t = start; t < len; t += bs - (t % bs)) {
        int64_t blk = table[t / bs];
        if (blk < 0 || blk >= num_blocks) return 3;
    }
    float *scratch = (float *)malloc((size_t)(G * (n + 2 * D)) * sizeof(float));
    if (!scratch) return 2;
    float *scores = scratch, *qf = scratch + G * n, *acc = qf + G * D; /* [G, n], [G, D], [G, D] */
    for (int64_t g = 0; g < G; g++)
        for (int64_t d = 0; d < D; d++) {
            qf[g * D + d] = load1(q, (b * H + kvh * G + g) * D + d, qt) * scale;
            acc[g * D + d] = 0.0f;
        }
    const int64_t d8 = D & ~(int64_t)7, row = Hkv * D;
    for (int64_t t = start; t < len; t++) {
        const int64_t off = (table[t / bs] * bs + t % bs) * row + kvh * D;
        for (int64_t g = 0; g < G; g++) {
            __m256 s8 = _mm256_setzero_ps();
            for (int64_t d = 0; d < d8; d += 8) s8 = _mm256_fmadd_ps(_mm256_loadu_ps(qf + g * D + d), load8(kp, off + d, kvt), s8);
            float s = hsum(s8);
            for (int64_t d = d8; d < D; d++) s += qf[g * D + d] * load1(kp, off + d, kvt);
            if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
            scores[g * n + (t - start)] = s;
        }
    }
    for (int64_t g = 0; g < G; g++) {
        float *s = scores + g * n, mx = -INFINITY, sum = 0.0f;
        for (int64_t i = 0; i < n; i++) mx = s[i] > mx ? s[i] : mx;
        const int64_t n8 = n & ~(int64_t)7;
        __m256 sum8 = _mm256_setzero_ps(), mx8 = _mm256_set1_ps(mx);
        for (int64_t i = 0; i < n8; i += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), mx8));
            _mm256_storeu_ps(s + i, e);
            sum8 = _mm256_add_ps(sum8, e);
        }
        sum = hsum(sum8);
        for (int64_t i = n8; i < n; i++) sum += (s[i] = expf(s[i] - mx));
        for (int64_t i = 0; i < n; i++) s[i] /= sum;
    }
    for (int64_t t = start; t < len; t++) {
        const int64_t off = (table[t / bs] * bs + t % bs) * row + kvh * D;
        for (int64_t d = 0; d < d8; d += 8) {
            __m256 v = load8(vp, off + d, kvt);
            for (int64_t g = 0; g < G; g++) {
                __m256 p = _mm256_set1_ps(scores[g * n + (t - start)]);
                _mm256_storeu_ps(acc + g * D + d, _mm256_fmadd_ps(p, v, _mm256_loadu_ps(acc + g * D + d)));
            }
        }
        for (int64_t d = d8; d < D; d++) {
            float v = load1(vp, off + d, kvt);
            for (int64_t g = 0; g < G; g++) acc[g * D + d] += scores[g * n + (t - start)] * v;
        }
    }
    for (int64_t g = 0; g < G; g++)
        for (int64_t d = 0; d < D; d++) store1(out, (b * H + kvh * G + g) * D + d, acc[g * D + d], ot);
    free(scratch);
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
