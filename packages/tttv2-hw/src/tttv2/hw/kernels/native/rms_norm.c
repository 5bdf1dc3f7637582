/* RMSNorm over the last dim: y = x / sqrt(mean(x^2) + eps) * w, or * (1 + w) (Gemma).
 *
 * fp32 accumulation and fp32 products, one rounding to y's dtype: the order of torch's
 * F.rms_norm on half inputs. One call replaces the ~8 aten ops torch runs for a half row
 * (conversion, pow, mean, rsqrt, two multiplies, cast), which at decode (one row of a few
 * thousand values) cost far more than the arithmetic. Rows run in parallel from 1M elements.
 */
#include <math.h>
#include <omp.h>

#include "dtypes.h"

static void norm_row(const void *x, int xt, const void *w, int wt, void *y, int yt, int64_t row, int64_t dim,
                     float eps, int unit_offset) {
    const int64_t base = row * dim, d8 = dim & ~(int64_t)7;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < d8; i += 8) {
        __m256 v = load8(x, base + i, xt);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    float ss = hsum(acc);
    for (int64_t i = d8; i < dim; i++) {
        float v = load1(x, base + i, xt);
        ss += v * v;
    }
    const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
    const __m256 inv8 = _mm256_set1_ps(inv), one = _mm256_set1_ps(unit_offset ? 1.0f : 0.0f);
    for (int64_t i = 0; i < d8; i += 8) {
        __m256 g = _mm256_add_ps(load8(w, i, wt), one);
        store8(y, base + i, _mm256_mul_ps(_mm256_mul_ps(load8(x, base + i, xt), inv8), g), yt);
    }
    for (int64_t i = d8; i < dim; i++) {
        float g = load1(w, i, wt);
        if (unit_offset) g += 1.0f;
        store1(y, base + i, load1(x, base + i, xt) * inv * g, yt);
    }
}

int tttv2_rms_norm(const void *x, int xt, const void *w, int wt, void *y, int yt, int64_t rows, int64_t dim,
                   float eps, int unit_offset) {
    if (!valid_dtype(xt) || !valid_dtype(wt) || !valid_dtype(yt)) return 1;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * dim >= (1 << 20))
    for (int64_t r = 0; r < rows; r++) norm_row(x, xt, w, wt, y, yt, r, dim, eps, unit_offset);
    return 0;
}
