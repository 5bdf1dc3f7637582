/* Skinny linear for CPU decode: y[M, N] = x[M, K] @ w[N, K]^T (+ bias[N]) for a few rows.
 *
 * Decode multiplies 1-16 activation rows by every weight matrix once per step, so the
 * step is bound by how fast the weights stream from memory. PyTorch's half-precision
 * matrix-vector and small GEMM kernels on CPUs without native bf16 convert element by
 * element and leave half the bandwidth unused; this kernel converts 8 weights per
 * instruction (bf16: widen and shift, fp16: F16C), reuses each converted weight vector
 * for up to 4 activation rows held in registers, and reads the weight once per call:
 * weights are walked in chunks small enough to stay in L2 while every row block passes
 * over them. Products accumulate in fp32 and are rounded once (round to nearest even),
 * as PyTorch's own kernels do; only the summation order differs.
 *
 * dtype codes: 0 = float32, 1 = bfloat16, 2 = float16. x, w, y contiguous row-major.
 * Threads: OpenMP, sharing the runtime (libgomp) and thread count PyTorch already loaded.
 * Needs AVX2, FMA and F16C; the Python side checks the CPU before loading this library.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

enum { F32 = 0, BF16 = 1, F16 = 2 };

#define INLINE static inline __attribute__((always_inline))

INLINE __m256 load8(const void *base, int64_t i, int dtype) {
    if (dtype == BF16) {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)base + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    if (dtype == F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    return _mm256_loadu_ps((const float *)base + i);
}

INLINE float load1(const void *base, int64_t i, int dtype) {
    if (dtype == BF16) {
        uint32_t bits = (uint32_t)((const uint16_t *)base)[i] << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    if (dtype == F16) return _cvtsh_ss(((const uint16_t *)base)[i]);
    return ((const float *)base)[i];
}

INLINE void store1(void *base, int64_t i, float f, int dtype) {
    if (dtype == BF16) {
        uint32_t bits;
        memcpy(&bits, &f, 4);
        if ((bits & 0x7fffffffu) > 0x7f800000u)
            bits |= 0x00400000u; /* NaN stays a (quiet) NaN */
        else
            bits += 0x7fffu + ((bits >> 16) & 1u); /* round to nearest even */
        ((uint16_t *)base)[i] = (uint16_t)(bits >> 16);
    } else if (dtype == F16) {
        ((uint16_t *)base)[i] = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
    } else {
        ((float *)base)[i] = f;
    }
}

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One register block: MR activation rows (fp32, row stride K) x NR weight rows. */
INLINE void block(const float *x, const void *w, int wt, const void *bias, int bt, void *y, int yt,
                  int64_t m0, int64_t n0, int64_t N, int64_t K, const int MR, const int NR) {
    __m256 acc[4][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = _mm256_setzero_ps();
    const int64_t K8 = K & ~(int64_t)7;
    for (int64_t k = 0; k < K8; k += 8) {
        __m256 wv[4];
        for (int j = 0; j < NR; j++) wv[j] = load8(w, (n0 + j) * K + k, wt);
        for (int i = 0; i < MR; i++) {
            __m256 xv = _mm256_loadu_ps(x + (m0 + i) * K + k);
            for (int j = 0; j < NR; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float s = hsum(acc[i][j]);
            for (int64_t k = K8; k < K; k++) s += x[(m0 + i) * K + k] * load1(w, (n0 + j) * K + k, wt);
            if (bias) s += load1(bias, n0 + j, bt);
            store1(y, (m0 + i) * N + n0 + j, s, yt);
        }
}

/* Rows [m0, m0+MR) against weight rows [lo, hi), NR at a time, then the tail one by one. */
#define SWEEP(MR, NR)                                                                   \
    do {                                                                                \
        int64_t n = lo;                                                                 \
        for (; n + (NR) <= hi; n += (NR)) block(xf, w, wt, bias, bt, y, yt, m0, n, N, K, MR, NR); \
        for (; n < hi; n++) block(xf, w, wt, bias, bt, y, yt, m0, n, N, K, MR, 1);        \
    } while (0)

static void rows_against_chunk(const float *xf, const void *w, int wt, const void *bias, int bt, void *y,
                               int yt, int64_t M, int64_t N, int64_t K, int64_t lo, int64_t hi) {
    int64_t m0 = 0;
    for (; m0 + 4 <= M; m0 += 4) SWEEP(4, 3);
    switch (M - m0) {
        case 3: SWEEP(3, 3); break;
        case 2: SWEEP(2, 4); break;
        case 1: SWEEP(1, 4); break;
        default: break;
    }
}

/* Returns 0 on success, 1 for a bad dtype code, 2 when memory for x in fp32 is missing. */
int tttv2_skinny_linear(const void *x, int xt, const void *w, int wt, const void *bias, int bt, void *y,
                        int yt, int64_t M, int64_t N, int64_t K, int64_t l2_bytes) {
    if (xt < 0 || xt > 2 || wt < 0 || wt > 2 || yt < 0 || yt > 2 || (bias && (bt < 0 || bt > 2))) return 1;
    if (M <= 0 || N <= 0) return 0;
    float *xf = (float *)x;
    float *owned = NULL;
    if (xt != F32) {
        owned = (float *)malloc((size_t)(M * K) * sizeof(float));
        if (!owned) return 2;
        for (int64_t i = 0; i < M * K; i++) owned[i] = load1(x, i, xt);
        xf = owned;
    }
    /* Chunks of weight rows small enough to stay in L2 while all row blocks pass over
     * them, at least one per thread and a multiple of the thread count (balance). */
    const int64_t wbytes = wt == F32 ? 4 : 2;
    const int threads = omp_get_max_threads();
    int64_t chunks = (N * K * wbytes + l2_bytes - 1) / (l2_bytes > 0 ? l2_bytes : 1);
    if (chunks < threads) chunks = threads;
    chunks = (chunks + threads - 1) / threads * threads;
    int64_t rows = (N + chunks - 1) / chunks;
    rows = (rows + 11) / 12 * 12; /* whole register blocks of 3 and of 4 rows */
    chunks = (N + rows - 1) / rows;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * rows, hi = lo + rows < N ? lo + rows : N;
        rows_against_chunk(xf, w, wt, bias, bt, y, yt, M, N, K, lo, hi);
    }
    free(owned);
    return 0;
}
