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
 * int8 weights (weight-only quantisation, symmetric per output channel): the codes are
 * widened in registers (int8 -> int32 -> fp32, exact), multiplied and summed in fp32 like
 * the other dtypes, and each output's sum is multiplied by its row's fp32 scale once at
 * the end: y = scale[n] * sum_k x[k] * q[n, k] (+ bias[n]). Decode reads half the bytes
 * of bf16.
 *
 * dtype codes: 0 = float32, 1 = bfloat16, 2 = float16, 3 = int8 (weights only, with
 * scales). x, w, y contiguous row-major.
 * Threads: OpenMP, sharing the runtime (libgomp) and thread count PyTorch already loaded.
 * Needs AVX2, FMA and F16C; the Python side checks the CPU before loading this library.
 */
#include <stdlib.h>
#include <omp.h>

#include "dtypes.h"

/* One register block: MR activation rows (fp32, row stride K) x NR weight rows. */
INLINE void block(const float *x, const void *w, int wt, const float *scale, const void *bias, int bt, void *y,
                  int yt, int64_t m0, int64_t n0, int64_t N, int64_t K, const int MR, const int NR) {
    __m256 acc[4][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = _mm256_setzero_ps();
    const int64_t K8 = K & ~(int64_t)7, wbytes = weight_bytes(wt);
    /* The NR rows are contiguous and each is short (a few KB), too short for the hardware
     * prefetcher to learn; fetch the next block's rows at the pace this one is consumed
     * (one cache line per step in half precision): 15 -> 21 GB/s from DRAM at one row. */
    const char *next = (const char *)w + (n0 + NR) * K * wbytes;
    for (int64_t k = 0; k < K8; k += 8) {
        _mm_prefetch(next + k * NR * wbytes, _MM_HINT_T0);
        if (wbytes == 4) _mm_prefetch(next + k * NR * wbytes + 64, _MM_HINT_T0);
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
            if (scale) s *= scale[n0 + j];
            if (bias) s += load1(bias, n0 + j, bt);
            store1(y, (m0 + i) * N + n0 + j, s, yt);
        }
}

/* Rows [m0, m0+MR) against weight rows [lo, hi), NR at a time, then the tail one by one. */
#define SWEEP(MR, NR)                                                                   \
    do {                                                                                \
        int64_t n = lo;                                                                 \
        for (; n + (NR) <= hi; n += (NR)) block(xf, w, wt, scale, bias, bt, y, yt, m0, n, N, K, MR, NR); \
        for (; n < hi; n++) block(xf, w, wt, scale, bias, bt, y, yt, m0, n, N, K, MR, 1); \
    } while (0)

static void rows_against_chunk(const float *xf, const void *w, int wt, const float *scale, const void *bias,
                               int bt, void *y, int yt, int64_t M, int64_t N, int64_t K, int64_t lo, int64_t hi) {
    int64_t m0 = 0;
    for (; m0 + 4 <= M; m0 += 4) SWEEP(4, 3);
    switch (M - m0) {
        case 3: SWEEP(3, 3); break;
        case 2: SWEEP(2, 4); break;
        case 1: SWEEP(1, 4); break;
        default: break;
    }
}

/* y = x @ (scale * w)^T (+ bias): ``scale`` (fp32, one per weight row) is required for int8
 * weights and optional otherwise (NULL: none). Returns 0 on success, 1 for a bad dtype
 * code (or int8 weights without scales), 2 when memory for x in fp32 is missing. */
int tttv2_skinny_linear_scaled(const void *x, int xt, const void *w, int wt, const float *scale, const void *bias,
                               int bt, void *y, int yt, int64_t M, int64_t N, int64_t K, int64_t l2_bytes) {
    if (!valid_dtype(xt) || !valid_weight_dtype(wt) || !valid_dtype(yt) || (bias && !valid_dtype(bt))) return 1;
    if (wt == I8 && !scale) return 1;
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
    const int64_t wbytes = weight_bytes(wt);
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
        rows_against_chunk(xf, w, wt, scale, bias, bt, y, yt, M, N, K, lo, hi);
    }
    free(owned);
    return 0;
}

/* Returns 0 on success, 1 for a bad dtype code (int8 needs the scaled entry), 2 when
 * memory for x in fp32 is missing. */
int tttv2_skinny_linear(const void *x, int xt, const void *w, int wt, const void *bias, int bt, void *y,
                        int yt, int64_t M, int64_t N, int64_t K, int64_t l2_bytes) {
    return tttv2_skinny_linear_scaled(x, xt, w, wt, NULL, bias, bt, y, yt, M, N, K, l2_bytes);
}
