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
 *
 * Per instruction set (the variants of tttv2.hw.kernels.native.isa; the AVX2 build is
 * this code with AVX-512 left out by the preprocessor):
 *   AVX-512F builds: the register block loads and multiplies 16 weights per instruction
 *     (block16), the same fp32 products and sums as the AVX2 block in another order;
 *   AVX-512-BF16 builds: bf16 activations x bf16 weights skip the conversion to fp32
 *     altogether: vdpbf16ps multiplies 32 bf16 pairs per instruction into 16 fp32 sums
 *     (block_dp; denormal inputs and sums flush to zero there). Other dtypes use block16.
 */
#ifndef TTTV2_SKINNY_LINEAR_C /* included by several kernels' sources, some of them twice */
#define TTTV2_SKINNY_LINEAR_C
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

#if defined(TTTV2_AVX512F)
/* block() 16 wide: the same products, summed in 16 lanes instead of 8. */
INLINE void block16(const float *x, const void *w, int wt, const float *scale, const void *bias, int bt, void *y,
                    int yt, int64_t m0, int64_t n0, int64_t N, int64_t K, const int MR, const int NR) {
    __m512 acc[4][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();
    const int64_t K16 = K & ~(int64_t)15, wbytes = weight_bytes(wt), step = 16 * NR * wbytes;
    /* the next block's rows, fetched at the pace this block's are read (as block()) */
    const char *next = (const char *)w + (n0 + NR) * K * wbytes;
    for (int64_t k = 0; k < K16; k += 16) {
        for (int64_t b = 0; b < step; b += 64) _mm_prefetch(next + k * NR * wbytes + b, _MM_HINT_T0);
        __m512 wv[4];
        for (int j = 0; j < NR; j++) wv[j] = load16(w, (n0 + j) * K + k, wt);
        for (int i = 0; i < MR; i++) {
            __m512 xv = _mm512_loadu_ps(x + (m0 + i) * K + k);
            for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float s = _mm512_reduce_add_ps(acc[i][j]);
            for (int64_t k = K16; k < K; k++) s += x[(m0 + i) * K + k] * load1(w, (n0 + j) * K + k, wt);
            if (scale) s *= scale[n0 + j];
            if (bias) s += load1(bias, n0 + j, bt);
            store1(y, (m0 + i) * N + n0 + j, s, yt);
        }
}
#define BLOCK block16
#else
#define BLOCK block
#endif

/* Weight rows per chunk for y[M, N] = x @ w[N, K]^T: chunks small enough to stay in L2
 * while all row blocks pass over them, at least one per thread and a multiple of the
 * thread count (balance), each a whole number of register blocks of 3 and of 4 rows. */
static int64_t skinny_chunk_rows(int64_t N, int64_t K, int64_t wbytes, int threads, int64_t l2_bytes) {
    int64_t chunks = (N * K * wbytes + l2_bytes - 1) / (l2_bytes > 0 ? l2_bytes : 1);
    if (chunks < threads) chunks = threads;
    chunks = (chunks + threads - 1) / threads * threads;
    int64_t rows = (N + chunks - 1) / chunks;
    return (rows + 11) / 12 * 12;
}

/* Rows [m0, m0+MR) against weight rows [lo, hi), NR at a time, then the tail one by one. */
#define SWEEP(MR, NR)                                                                   \
    do {                                                                                \
        int64_t n = lo;                                                                 \
        for (; n + (NR) <= hi; n += (NR)) BLOCK(xf, w, wt, scale, bias, bt, y, yt, m0, n, N, K, MR, NR); \
        for (; n < hi; n++) BLOCK(xf, w, wt, scale, bias, bt, y, yt, m0, n, N, K, MR, 1); \
    } while (0)

INLINE void rows_against_chunk_t(const float *xf, const void *w, const int wt, const float *scale, const void *bias,
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

/* One copy of the sweep per weight dtype, the dtype a constant inside it: the weight loads
 * in the inner loop then carry no dtype test (a test per 8 weights cost SmolLM2-135M's
 * bf16 decode step ~15% on a 2-core AVX2 host once int8 made the chain one test longer). */
static void rows_against_chunk(const float *xf, const void *w, int wt, const float *scale, const void *bias,
                               int bt, void *y, int yt, int64_t M, int64_t N, int64_t K, int64_t lo, int64_t hi) {
    switch (wt) {
        case BF16: rows_against_chunk_t(xf, w, BF16, scale, bias, bt, y, yt, M, N, K, lo, hi); break;
        case F16: rows_against_chunk_t(xf, w, F16, scale, bias, bt, y, yt, M, N, K, lo, hi); break;
        case I8: rows_against_chunk_t(xf, w, I8, scale, bias, bt, y, yt, M, N, K, lo, hi); break;
        default: rows_against_chunk_t(xf, w, F32, scale, bias, bt, y, yt, M, N, K, lo, hi); break;
    }
}

#if defined(TTTV2_AVX512BF16)
/* bf16 rows x (MR of them, stride K) against NR bf16 weight rows by vdpbf16ps, 32 pairs
 * per instruction; fp32 sums rounded once to the output dtype, as block(). */
INLINE void block_dp(const uint16_t *x, const uint16_t *w, const void *bias, int bt, void *y, int yt, int64_t m0,
                     int64_t n0, int64_t N, int64_t K, const int MR, const int NR) {
    __m512 acc[4][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();
    const int64_t K32 = K & ~(int64_t)31;
    const char *next = (const char *)(w + (n0 + NR) * K); /* prefetched as in block() */
    for (int64_t k = 0; k < K32; k += 32) {
        for (int j = 0; j < NR; j++) _mm_prefetch(next + (k * NR + 32 * j) * 2, _MM_HINT_T0);
        __m512bh wv[4];
        for (int j = 0; j < NR; j++) wv[j] = load32_bf16(w + (n0 + j) * K + k);
        for (int i = 0; i < MR; i++) {
            const __m512bh xv = load32_bf16(x + (m0 + i) * K + k);
            for (int j = 0; j < NR; j++) acc[i][j] = dot32_bf16(acc[i][j], xv, wv[j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float s = _mm512_reduce_add_ps(acc[i][j]);
            for (int64_t k = K32; k < K; k++) s += load1(x, (m0 + i) * K + k, BF16) * load1(w, (n0 + j) * K + k, BF16);
            if (bias) s += load1(bias, n0 + j, bt);
            store1(y, (m0 + i) * N + n0 + j, s, yt);
        }
}

#define SWEEP_DP(MR, NR)                                                                           \
    do {                                                                                           \
        int64_t n = lo;                                                                            \
        for (; n + (NR) <= hi; n += (NR)) block_dp(x, w, bias, bt, y, yt, m0, n, N, K, MR, NR);   \
        for (; n < hi; n++) block_dp(x, w, bias, bt, y, yt, m0, n, N, K, MR, 1);                  \
    } while (0)

static void rows_against_chunk_dp(const uint16_t *x, const uint16_t *w, const void *bias, int bt, void *y, int yt,
                                  int64_t M, int64_t N, int64_t K, int64_t lo, int64_t hi) {
    int64_t m0 = 0;
    for (; m0 + 4 <= M; m0 += 4) SWEEP_DP(4, 3);
    switch (M - m0) {
        case 3: SWEEP_DP(3, 3); break;
        case 2: SWEEP_DP(2, 4); break;
        case 1: SWEEP_DP(1, 4); break;
        default: break;
    }
}

/* y = x @ w^T (+ bias) for bf16 x and w: no fp32 copy of x, chunks as in the general entry. */
static int skinny_linear_dp(const uint16_t *x, const uint16_t *w, const void *bias, int bt, void *y, int yt,
                            int64_t M, int64_t N, int64_t K, int64_t l2_bytes) {
    const int64_t rows = skinny_chunk_rows(N, K, 2, omp_get_max_threads(), l2_bytes);
    const int64_t chunks = (N + rows - 1) / rows;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * rows, hi = lo + rows < N ? lo + rows : N;
        rows_against_chunk_dp(x, w, bias, bt, y, yt, M, N, K, lo, hi);
    }
    return 0;
}
#endif

/* y = x @ (scale * w)^T (+ bias): ``scale`` (fp32, one per weight row) is required for int8
 * weights and optional otherwise (NULL: none). Returns 0 on success, 1 for a bad dtype
 * code (or int8 weights without scales), 2 when memory for x in fp32 is missing. */
int tttv2_skinny_linear_scaled(const void *x, int xt, const void *w, int wt, const float *scale, const void *bias,
                               int bt, void *y, int yt, int64_t M, int64_t N, int64_t K, int64_t l2_bytes) {
    if (!valid_dtype(xt) || !valid_weight_dtype(wt) || !valid_dtype(yt) || (bias && !valid_dtype(bt))) return 1;
    if (wt == I8 && !scale) return 1;
    if (M <= 0 || N <= 0) return 0;
#if defined(TTTV2_AVX512BF16)
    if (xt == BF16 && wt == BF16 && !scale)
        return skinny_linear_dp((const uint16_t *)x, (const uint16_t *)w, bias, bt, y, yt, M, N, K, l2_bytes);
#endif
    float *xf = (float *)x;
    float *owned = NULL;
    if (xt != F32) {
        owned = (float *)malloc((size_t)(M * K) * sizeof(float));
        if (!owned) return 2;
        for (int64_t i = 0; i < M * K; i++) owned[i] = load1(x, i, xt);
        xf = owned;
    }
    const int64_t rows = skinny_chunk_rows(N, K, weight_bytes(wt), omp_get_max_threads(), l2_bytes);
    const int64_t chunks = (N + rows - 1) / rows;
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
#endif /* TTTV2_SKINNY_LINEAR_C */
