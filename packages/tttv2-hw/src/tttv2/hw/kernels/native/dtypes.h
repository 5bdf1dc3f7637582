/* Shared by the native kernels: dtype codes, 8-wide loads to fp32, rounding stores. */
#ifndef TTTV2_NATIVE_DTYPES_H
#define TTTV2_NATIVE_DTYPES_H
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* The wider code paths the kernels compile, decided here and nowhere else:
 * TTTV2_AVX512F (16-wide loads and FMAs) and TTTV2_AVX512BF16 (vdpbf16ps). Real builds take
 * them from the compiler's target (-mavx512f, -mavx512bf16: the variants of
 * tttv2.hw.kernels.native.isa). Emulated builds (tests, on hosts without AVX-512) define
 * TTTV2_SIMDE_ISA (1: the avx512f paths, 2: the avx512_bf16 ones too) and are compiled with
 * the AVX2 flags: the AVX-512 intrinsics are SIMDe's portable definitions, the AVX2 ones
 * stay native. That checks the paths' logic, not their speed nor vdpbf16ps's rounding. */
#if defined(TTTV2_SIMDE_ISA)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#undef I /* complex.h, which SIMDe includes: the kernels name variables I */
#define TTTV2_AVX512F 1
#if TTTV2_SIMDE_ISA >= 2
#define TTTV2_AVX512BF16 1
#endif
/* Two intrinsics SIMDe 0.8.2 lacks, from ones it has (named apart: the compiler's own
 * declarations of these names need -mavx512f). Sign-extending 16 int8 to int32: exact. */
INLINE __m512i tttv2_mm512_cvtepi8_epi32(__m128i a) { return _mm512_cvtepi16_epi32(_mm256_cvtepi8_epi16(a)); }
#define _mm512_cvtepi8_epi32 tttv2_mm512_cvtepi8_epi32
/* The sum of 16 lanes in GCC's order (avx512fintrin.h, __MM512_REDUCE_OP): the two 256-bit
 * halves added, then the 128-bit halves, then lanes (0+2) + (1+3). */
INLINE float tttv2_mm512_reduce_add_ps(__m512 a) {
    float v[16], h[8];
    _mm512_storeu_ps(v, a);
    for (int i = 0; i < 8; i++) h[i] = v[i] + v[i + 8];
    for (int i = 0; i < 4; i++) h[i] = h[i] + h[i + 4];
    return (h[0] + h[2]) + (h[1] + h[3]);
}
#define _mm512_reduce_add_ps tttv2_mm512_reduce_add_ps
#else
#include <immintrin.h>
#if defined(__AVX512F__)
#define TTTV2_AVX512F 1
#endif
#if defined(__AVX512BF16__)
#define TTTV2_AVX512BF16 1
#endif
#endif

enum { F32 = 0, BF16 = 1, F16 = 2, I8 = 3 }; /* I8: weights only (int8 codes, a scale per row) */

INLINE __m256 load8(const void *base, int64_t i, int dtype) {
    if (dtype == I8) /* 8 int8 codes widened to int32, then to float (exact) */
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)base + i))));
    if (dtype == BF16) {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)base + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    if (dtype == F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    return _mm256_loadu_ps((const float *)base + i);
}

INLINE float load1(const void *base, int64_t i, int dtype) {
    if (dtype == I8) return (float)((const int8_t *)base)[i];
    if (dtype == BF16) {
        uint32_t bits = (uint32_t)((const uint16_t *)base)[i] << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    if (dtype == F16) return _cvtsh_ss(((const uint16_t *)base)[i]);
    return ((const float *)base)[i];
}

/* Round to the dtype (to nearest even, as torch's casts) and store. */
INLINE void store1(void *base, int64_t i, float f, int dtype) {
    if (dtype == BF16) {
        uint32_t bits;
        memcpy(&bits, &f, 4);
        if ((bits & 0x7fffffffu) > 0x7f800000u)
            bits |= 0x00400000u; /* NaN stays a (quiet) NaN */
        else
            bits += 0x7fffu + ((bits >> 16) & 1u);
        ((uint16_t *)base)[i] = (uint16_t)(bits >> 16);
    } else if (dtype == F16) {
        ((uint16_t *)base)[i] = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
    } else {
        ((float *)base)[i] = f;
    }
}

/* 8 floats rounded to bf16 (to nearest even; NaN stays a quiet NaN): the bf16 values are
 * the high 16 bits of each lane, the low 16 bits are left over from the rounding. */
INLINE __m256i bf16_round_bits8(__m256 v) {
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    const __m256i quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x00400000));
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(quiet), nan));
}

/* 8 values rounded to the dtype (to nearest even; NaN stays NaN) and stored. */
INLINE void store8(void *base, int64_t i, __m256 v, int dtype) {
    if (dtype == BF16) {
        const __m256i bits = _mm256_srli_epi32(bf16_round_bits8(v), 16);
        __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(bits), _mm256_extracti128_si256(bits, 1));
        _mm_storeu_si128((__m128i *)((uint16_t *)base + i), packed);
    } else if (dtype == F16) {
        _mm_storeu_si128((__m128i *)((uint16_t *)base + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    } else {
        _mm256_storeu_ps((float *)base + i, v);
    }
}

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* exp of 8 floats, relative error ~2e-7 (Cephes' polynomial, as in avx_mathfun):
 * x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial, 2^n by the exponent.
 * Inputs below -87.3 give 0 (softmax scores after subtracting the maximum are <= 0). */
INLINE __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447505531f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(n)));
}

INLINE int valid_dtype(int t) { return t >= F32 && t <= F16; }
/* A weight's dtype: an activation dtype, or int8 codes (which need per-row scales). */
INLINE int valid_weight_dtype(int t) { return valid_dtype(t) || t == I8; }
INLINE int64_t weight_bytes(int t) { return t == F32 ? 4 : t == I8 ? 1 : 2; }

#if defined(TTTV2_AVX512F)
/* AVX-512 builds (the avx512f and avx512_bf16 variants) only: load8 16 wide. */
INLINE __m512 load16(const void *base, int64_t i, int dtype) {
    if (dtype == I8)
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((const int8_t *)base + i))));
    if (dtype == BF16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    if (dtype == F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)));
    return _mm512_loadu_ps((const float *)base + i);
}
#endif

#if defined(TTTV2_AVX512BF16)
/* 32 bf16 values (a, b: at least 32 readable) as the operand vdpbf16ps takes. */
INLINE __m512bh load32_bf16(const uint16_t *a) { return (__m512bh)_mm512_loadu_si512((const void *)a); }

/* acc (16 fp32 sums) += products of 32 bf16 pairs in one instruction (vdpbf16ps): lane i
 * adds a[2i] * b[2i] + a[2i+1] * b[2i+1], each product exact in fp32, no conversion of
 * either operand. Unlike the fp32 path, it flushes denormal inputs and results to zero. */
INLINE __m512 dot32_bf16(__m512 acc, __m512bh a, __m512bh b) { return _mm512_dpbf16_ps(acc, a, b); }
#endif

#endif
