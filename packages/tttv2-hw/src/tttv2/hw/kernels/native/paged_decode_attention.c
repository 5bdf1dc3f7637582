/* Decode attention: one query token per sequence against its paged KV cache.
 *
 * Pools are [num_blocks, block_size, Hkv, D]; sequence b's token t lives in block
 * block_tables[b, t / block_size] at row t % block_size. The G = H / Hkv query heads of
 * one KV head share each key and value row, read once (GQA/MQA without copies). Keys and
 * values are read in place through the block table: no gather, no mask, no copy, so the
 * cost is the visible context and nothing else. Scores, softmax and the weighted sum are
 * fp32; optional logit soft-capping (cap * tanh(s / cap)) and a sliding window of the last
 * `window` tokens.
 *
 * Work items are (sequence, span of its tokens) with every KV head: a token's Hkv * D row
 * is read whole and in order (a block is one contiguous run), and a long context is split
 * into spans that run on different threads (flash-decoding), each keeping its own softmax
 * maximum and sum; the spans are merged at the end. Within a span, CHUNK tokens at a time
 * are visited by every head and every register tile while they sit in L1/L2.
 *
 * Register tiles: the G query heads of a KV head go in passes of at most 4; scores take
 * 8, 4, 3 or 2 tokens x 1, 2, 3 or 4 heads (each key vector converted once per pass and
 * used by every head of it, no register spilled); the weighted sum keeps 16 output dims x
 * up to 4 heads in registers across a chunk. Head dims that are not a multiple of 8 take
 * the scalar path.
 *
 * Returns 0, 1 for a bad dtype code, 2 when scratch memory is missing, 3 for a block
 * index outside the pool or a length outside the table (nothing is read out of bounds).
 */
#include <math.h>
#include <stdlib.h>
#include <omp.h>

#include "dtypes.h"

/* Token rows lie in blocks anywhere in the pool: too scattered for the hardware prefetcher,
 * so each tile fetches the rows it will read PREFETCH_AHEAD tokens later (offsets past the
 * end point at the last row: the offset array is padded). */
#define PREFETCH_AHEAD 16
INLINE void prefetch_row(const void *pool, int t, int64_t off, int64_t len) {
    const int64_t size = t == F32 ? 4 : 2;
    for (int64_t b = 0; b < len * size; b += 64) _mm_prefetch((const char *)pool + off * size + b, _MM_HINT_T0);
}

/* The sums of 4 vectors' lanes: {sum a, sum b, sum c, sum d}. */
INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d), abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* scores[g][i..i+TT) for query heads g0..g0+GT and the TT tokens at key offsets off[i..).
 * Token by token within each 8 dims, so one converted key vector is live at a time: the
 * TT x GT sums, GT query vectors and one key fit the 16 vector registers (tiles 8x1, 4x2,
 * 3x3, 2x4 tokens x heads) and each converted key serves every head of its group. */
INLINE void score_tile(const float *qf, int64_t D, const void *kp, int kvt, const int64_t *off, int64_t g0,
                       float *scores, int64_t n, int64_t i, int64_t fetch, const int GT, const int TT) {
    if (fetch)
        for (int t = 0; t < TT; t++) prefetch_row(kp, kvt, off[i + t + PREFETCH_AHEAD], fetch);
    __m256 acc[4][8];
    for (int g = 0; g < GT; g++)
        for (int t = 0; t < TT; t++) acc[g][t] = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d += 8) {
        __m256 q[4];
        for (int g = 0; g < GT; g++) q[g] = _mm256_loadu_ps(qf + (g0 + g) * D + d);
        for (int t = 0; t < TT; t++) {
            const __m256 k = load8(kp, off[i + t] + d, kvt);
            for (int g = 0; g < GT; g++) acc[g][t] = _mm256_fmadd_ps(q[g], k, acc[g][t]);
        }
    }
    const __m256 z = _mm256_setzero_ps();
    for (int g = 0; g < GT; g++) {
        float *s = scores + (g0 + g) * n + i;
        if (TT == 1) {
            s[0] = hsum(acc[g][0]);
            continue;
        }
        for (int t = 0; t < TT; t += 4) {
            const __m128 sum = hsum4(acc[g][t], TT > t + 1 ? acc[g][t + 1] : z, TT > t + 2 ? acc[g][t + 2] : z,
                                     TT > t + 3 ? acc[g][t + 3] : z);
            if (TT - t >= 4) {
                _mm_storeu_ps(s + t, sum);
            } else {
                float tmp[4];
                _mm_storeu_ps(tmp, sum);
                for (int j = 0; j < TT - t; j++) s[t + j] = tmp[j];
            }
        }
    }
}

/* out[g][d0..d0+16) = sum_i p[g][i] v_i for heads g0..g0+GT, kept in registers over the
 * tokens (named variables, not an array: GCC keeps a vector array in memory, storing it
 * on every token). Prefetches the value rows PREFETCH_AHEAD tokens ahead, line by line. */
INLINE void value_tile(const float *p, int64_t n, int64_t i0, int64_t i1, const void *vp, int kvt, const int64_t *off,
                       int64_t g0, int64_t d0, float *out, int64_t D, const int GT) {
    float *o0 = out + g0 * D + d0, *o1 = o0 + D, *o2 = o1 + D, *o3 = o2 + D;
    const float *p0 = p + g0 * n, *p1 = p0 + n, *p2 = p1 + n, *p3 = p2 + n;
    const __m256 z = _mm256_setzero_ps();
    __m256 a0 = _mm256_loadu_ps(o0), b0 = _mm256_loadu_ps(o0 + 8);
    __m256 a1 = GT > 1 ? _mm256_loadu_ps(o1) : z, b1 = GT > 1 ? _mm256_loadu_ps(o1 + 8) : z;
    __m256 a2 = GT > 2 ? _mm256_loadu_ps(o2) : z, b2 = GT > 2 ? _mm256_loadu_ps(o2 + 8) : z;
    __m256 a3 = GT > 3 ? _mm256_loadu_ps(o3) : z, b3 = GT > 3 ? _mm256_loadu_ps(o3 + 8) : z;
    const int64_t size = kvt == F32 ? 4 : 2;
    for (int64_t i = i0; i < i1; i++) {
        _mm_prefetch((const char *)vp + (off[i + PREFETCH_AHEAD] + d0) * size, _MM_HINT_T0);
        const __m256 v0 = load8(vp, off[i] + d0, kvt), v1 = load8(vp, off[i] + d0 + 8, kvt);
        __m256 w = _mm256_broadcast_ss(p0 + i);
        a0 = _mm256_fmadd_ps(w, v0, a0), b0 = _mm256_fmadd_ps(w, v1, b0);
        if (GT > 1) w = _mm256_broadcast_ss(p1 + i), a1 = _mm256_fmadd_ps(w, v0, a1), b1 = _mm256_fmadd_ps(w, v1, b1);
        if (GT > 2) w = _mm256_broadcast_ss(p2 + i), a2 = _mm256_fmadd_ps(w, v0, a2), b2 = _mm256_fmadd_ps(w, v1, b2);
        if (GT > 3) w = _mm256_broadcast_ss(p3 + i), a3 = _mm256_fmadd_ps(w, v0, a3), b3 = _mm256_fmadd_ps(w, v1, b3);
    }
    _mm256_storeu_ps(o0, a0), _mm256_storeu_ps(o0 + 8, b0);
    if (GT > 1) _mm256_storeu_ps(o1, a1), _mm256_storeu_ps(o1 + 8, b1);
    if (GT > 2) _mm256_storeu_ps(o2, a2), _mm256_storeu_ps(o2 + 8, b2);
    if (GT > 3) _mm256_storeu_ps(o3, a3), _mm256_storeu_ps(o3 + 8, b3);
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

/* Shortest span worth its own work item, and tokens per chunk (a chunk of the keys or values
 * of a work item's heads stays in L1/L2 while every tile passes over it). */
#define MIN_SPAN 256
#define CHUNK 48

typedef struct {
    const void *q, *kp, *vp;
    int qt, kvt;
    int64_t H, Hkv, D, bs, num_blocks;
    float scale, softcap;
} Args;

/* Tokens [t0, t1) of sequence b (block table `table`) for KV heads [k0, k1) and their query
 * heads: the span's softmax maximum mx[h] and sum sums[h] and the unnormalised output
 * acc[h * D + d], h counted over all H query heads; with `out` (the sequence's only span)
 * the normalised output is stored there instead. */
static int span(const Args *a, const int64_t *table, int64_t b, int64_t t0, int64_t t1, int64_t k0, int64_t k1,
                float *mx, float *sums, float *acc, void *final, int ot) {
    const int64_t Hkv = a->Hkv, D = a->D, G = a->H / Hkv, bs = a->bs, n = t1 - t0, row = Hkv * D;
    const int64_t h0 = k0 * G, nh = (k1 - k0) * G;
    const int kvt = a->kvt;
    const int64_t esize = kvt == F32 ? 4 : 2;
    for (int64_t t = t0; t < t1; t += bs - (t % bs)) {
        int64_t blk = table[t / bs];
        if (blk < 0 || blk >= a->num_blocks) return 3;
    }
    /* offsets of the token rows [n + PREFETCH_AHEAD], then in fp32: scores [nh, n], q [nh, D] */
    int64_t *off = (int64_t *)malloc((size_t)(n + PREFETCH_AHEAD) * sizeof(int64_t) + (size_t)(nh * (n + D)) * sizeof(float));
    if (!off) return 2;
    float *scores = (float *)(off + n + PREFETCH_AHEAD), *qf = scores + nh * n;
    for (int64_t t = t0; t < t1;) { /* block by block: one division per block, not per token */
        const int64_t in_block = t % bs, run = bs - in_block < t1 - t ? bs - in_block : t1 - t;
        const int64_t first_row = (table[t / bs] * bs + in_block) * row;
        for (int64_t r = 0; r < run; r++) off[t - t0 + r] = first_row + r * row;
        t += run;
    }
    for (int64_t i = n; i < n + PREFETCH_AHEAD; i++) off[i] = off[n - 1];
    for (int64_t h = 0; h < nh; h++)
        for (int64_t d = 0; d < D; d++) qf[h * D + d] = load1(a->q, (b * a->H + h0 + h) * D + d, a->qt) * a->scale;

    const int vec = D % 8 == 0;
    if (vec)
        for (int64_t c = 0; c < n; c += CHUNK) {
            const int64_t end = c + CHUNK < n ? c + CHUNK : n;
            for (int64_t kvh = k0; kvh < k1; kvh++) {
                const char *kh = (const char *)a->kp + kvh * D * esize;
                const float *qh = qf + (kvh - k0) * G * D;
                float *sh = scores + (kvh - k0) * G * n;
                /* the G heads in passes of at most 4, as even as possible (6 = 3 + 3) */
                for (int64_t g0 = 0, passes = (G + 3) / 4; g0 < G; passes--) {
                    const int64_t gt = (G - g0 + passes - 1) / passes, fetch = g0 == 0 ? D : 0;
                    int64_t i = c;
                    switch (gt) {
                        case 4: for (; i + 2 <= end; i += 2) score_tile(qh, D, kh, kvt, off, g0, sh, n, i, fetch, 4, 2); break;
                        case 3: for (; i + 3 <= end; i += 3) score_tile(qh, D, kh, kvt, off, g0, sh, n, i, fetch, 3, 3); break;
                        case 2: for (; i + 4 <= end; i += 4) score_tile(qh, D, kh, kvt, off, g0, sh, n, i, fetch, 2, 4); break;
                        default: for (; i + 8 <= end; i += 8) score_tile(qh, D, kh, kvt, off, g0, sh, n, i, fetch, 1, 8); break;
                    }
                    for (; i < end; i++) switch (gt) {
                        case 4: score_tile(qh, D, kh, kvt, off, g0, sh, n, i, fetch, 4, 1); break;
                        case 3: score_tile(qh, D, kh, kvt, off, g0, sh, n, i, fetch, 3, 1); break;
                        case 2: score_tile(qh, D, kh, kvt, off, g0, sh, n, i, fetch, 2, 1); break;
                        default: score_tile(qh, D, kh, kvt, off, g0, sh, n, i, fetch, 1, 1); break;
                    }
                    g0 += gt;
                }
            }
        }
    else
        for (int64_t h = 0; h < nh; h++) {
            const char *kh = (const char *)a->kp + (k0 + h / G) * D * esize;
            for (int64_t i = 0; i < n; i++) scores[h * n + i] = score1(qf + h * D, D, kh, kvt, off[i]);
        }
    if (a->softcap > 0.0f)
        for (int64_t j = 0; j < nh * n; j++) scores[j] = a->softcap * tanhf(scores[j] / a->softcap);

    /* softmax numerators in place, the span's maximum and sum per head */
    for (int64_t h = 0; h < nh; h++) {
        float *s = scores + h * n, m = -INFINITY;
        const int64_t n8 = n & ~(int64_t)7;
        __m256 m8 = _mm256_set1_ps(-INFINITY);
        for (int64_t i = 0; i < n8; i += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(s + i));
        for (int k = 0; k < 8; k++) m = m8[k] > m ? m8[k] : m;
        for (int64_t i = n8; i < n; i++) m = s[i] > m ? s[i] : m;
        __m256 sum8 = _mm256_setzero_ps(), mx8 = _mm256_set1_ps(m);
        for (int64_t i = 0; i < n8; i += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), mx8));
            _mm256_storeu_ps(s + i, e);
            sum8 = _mm256_add_ps(sum8, e);
        }
        float sum = hsum(sum8);
        for (int64_t i = n8; i < n; i++) sum += (s[i] = expf(s[i] - m));
        mx[h0 + h] = m;
        sums[h0 + h] = sum;
    }

    const int64_t d16 = vec ? D & ~(int64_t)15 : 0;
    float *out = acc + h0 * D;
    memset(out, 0, (size_t)(nh * D) * sizeof(float));
    for (int64_t c = 0; c < n; c += CHUNK) {
        const int64_t end = c + CHUNK < n ? c + CHUNK : n;
        for (int64_t kvh = k0; kvh < k1; kvh++) {
            const char *vh = (const char *)a->vp + kvh * D * esize;
            const float *ph = scores + (kvh - k0) * G * n;
            float *oh = out + (kvh - k0) * G * D;
            for (int64_t g0 = 0; g0 < G; g0 += 4) {
                const int64_t gt = G - g0 < 4 ? G - g0 : 4;
                for (int64_t d0 = 0; d0 < d16; d0 += 16) {
                    if (gt == 4) value_tile(ph, n, c, end, vh, kvt, off, g0, d0, oh, D, 4);
                    else if (gt == 3) value_tile(ph, n, c, end, vh, kvt, off, g0, d0, oh, D, 3);
                    else if (gt == 2) value_tile(ph, n, c, end, vh, kvt, off, g0, d0, oh, D, 2);
                    else value_tile(ph, n, c, end, vh, kvt, off, g0, d0, oh, D, 1);
                }
            }
        }
    }
    for (int64_t h = 0; h < nh; h++) {
        const char *vh = (const char *)a->vp + (k0 + h / G) * D * esize;
        for (int64_t d = d16; d < D; d++) {
            float s = 0.0f;
            for (int64_t i = 0; i < n; i++) s += scores[h * n + i] * load1(vh, off[i] + d, kvt);
            out[h * D + d] = s;
        }
    }
    if (final)
        for (int64_t h = 0; h < nh; h++) {
            const float inv = 1.0f / sums[h0 + h];
            for (int64_t d = 0; d < D; d++) store1(final, (b * a->H + h0 + h) * D + d, out[h * D + d] * inv, ot);
        }
    free(off);
    return 0;
}

/* out[b, h] from the spans of sequence b (items first .. last): each span's output scaled
 * by exp(its maximum - the overall maximum), over the sum of its sums scaled the same. */
static void merge(const float *part, int64_t first, int64_t last, int64_t b, int64_t h, int64_t H, int64_t D, void *out,
                  int ot) {
    const int64_t stride = H * (D + 2);
    float m = -INFINITY, sum = 0.0f, w[64];
    for (int64_t it = first; it < last; it++) m = fmaxf(m, part[it * stride + h]);
    for (int64_t it = first; it < last; it++) {
        w[it - first] = expf(part[it * stride + h] - m);
        sum += part[it * stride + H + h] * w[it - first];
    }
    for (int64_t d = 0; d < D; d++) {
        float v = 0.0f;
        for (int64_t it = first; it < last; it++) v += part[it * stride + 2 * H + h * D + d] * w[it - first];
        store1(out, (b * H + h) * D + d, v / sum, ot);
    }
}

/* Work item `it`: span it / groups of its sequence, KV head group it % groups. */
INLINE int item(const Args *a, const int64_t *first, const int64_t *from, const int64_t *seq_lens, const int64_t *tables,
                int64_t width, int64_t groups, int64_t it, float *part, void *out, int ot) {
    const int64_t sp = it / groups, grp = it % groups, H = a->H, D = a->D, Hkv = a->Hkv;
    int64_t b = 0;
    while (first[b + 1] <= sp) b++;
    const int64_t spans = first[b + 1] - first[b], s = sp - first[b], n = seq_lens[b] - from[b];
    const int64_t t0 = from[b] + n * s / spans, t1 = from[b] + n * (s + 1) / spans;
    const int64_t k0 = Hkv * grp / groups, k1 = Hkv * (grp + 1) / groups;
    float *p = part + sp * H * (D + 2);
    return span(a, tables + b * width, b, t0, t1, k0, k1, p, p + H, p + 2 * H, spans == 1 ? out : NULL, ot);
}

int tttv2_paged_decode_attention(const void *q, int qt, const void *k_pool, const void *v_pool, int kvt,
                                 const int64_t *block_tables, int64_t width, const int64_t *seq_lens, void *out,
                                 int ot, int64_t B, int64_t H, int64_t Hkv, int64_t D, int64_t num_blocks,
                                 int64_t block_size, float scale, float softcap, int64_t window) {
    if (!valid_dtype(qt) || !valid_dtype(kvt) || !valid_dtype(ot)) return 1;
    if (Hkv <= 0 || H % Hkv || D <= 0 || block_size <= 0) return 1;
    if (B <= 0) return 0;
    const Args a = {q, k_pool, v_pool, qt, kvt, H, Hkv, D, block_size, num_blocks, scale, softcap};
    /* Work items: two per thread when the batch is small. A sequence is split into spans of
     * at least MIN_SPAN tokens (at most 64), then its KV heads into groups if that is still
     * too few. first[b]: sequence b's first span (spans of all sequences numbered together);
     * items are (span, head group) with `groups` head groups for every span. */
    const int64_t threads = omp_get_max_threads(), want = (2 * threads + B - 1) / B;
    int64_t *first = (int64_t *)malloc((size_t)(2 * B + 1) * sizeof(int64_t)), *from = first + B + 1, work = 0;
    if (!first) return 2;
    first[0] = 0;
    int64_t most = 1;
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = seq_lens[b];
        if (len < 1 || (len + block_size - 1) / block_size > width) {
            free(first);
            return 3;
        }
        from[b] = window > 0 && len > window ? len - window : 0;
        int64_t spans = (len - from[b]) / MIN_SPAN;
        spans = spans < 1 ? 1 : spans > want ? want : spans > 64 ? 64 : spans;
        most = spans > most ? spans : most;
        first[b + 1] = first[b] + spans;
        work += len - from[b];
    }
    /* unsplit (short) sequences: one item per KV head, as many as there are, for balance */
    const int64_t total = first[B], per = total == B ? Hkv : (want + most - 1) / most, groups = per < Hkv ? per : Hkv;
    const int64_t items = total * groups;
    /* per span: maximum [H], sum [H], unnormalised output [H, D] */
    float *part = (float *)malloc((size_t)(total * H * (D + 2)) * sizeof(float));
    if (!part) {
        free(first);
        return 2;
    }
    int status = 0;
    if (total == B) { /* no sequence split: nothing to merge, one barrier */
#pragma omp parallel for schedule(dynamic) reduction(| : status) if (items > 1 && work * H * D >= 65536)
        for (int64_t it = 0; it < items; it++) status |= item(&a, first, from, seq_lens, block_tables, width, groups, it, part, out, ot);
    } else {
#pragma omp parallel if (items > 1 && work * H * D >= 65536)
        {
#pragma omp for schedule(dynamic) reduction(| : status)
            for (int64_t it = 0; it < items; it++) status |= item(&a, first, from, seq_lens, block_tables, width, groups, it, part, out, ot);
            if (!status) {
#pragma omp for schedule(static)
                for (int64_t bh = 0; bh < B * H; bh++)
                    if (first[bh / H + 1] - first[bh / H] > 1) merge(part, first[bh / H], first[bh / H + 1], bh / H, bh % H, H, D, out, ot);
            }
        }
    }
    free(part);
    free(first);
    return status;
}
