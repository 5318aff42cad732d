/* Branch-free float32 exp, tanh and erf that the compiler can vectorise inside `omp simd` loops
 * (glibc's expf/erff are scalar calls, ~5x slower on a [16, 24, 24000] activation).
 *
 * exp: Cephes' expf (range reduction by ln 2, degree-6 polynomial; ~1 ulp), with the power of
 *      two applied in two halves so results near FLT_MAX and in the denormal range come out right.
 * tanh: Cephes' tanhf: odd polynomial for |x| < 0.625, 1 - 2 / (exp(2|x|) + 1) beyond.
 * erf: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the form PyTorch's vectorised CPU GELU uses.
 * NaN in gives NaN out; float64 code keeps libm. Internal to core/ops. */
#ifndef FSVC_OPS_FAST_MATH_H
#define FSVC_OPS_FAST_MATH_H

#include <stdint.h>

static inline float fsvc_pow2i_f32(int32_t n) { /* 2^n for -126 <= n <= 127 */
  union { int32_t i; float f; } u;
  u.i = (n + 127) << 23;
  return u.f;
}

static inline float fsvc_expf_fast(float x) {
  /* beyond these the result is inf or 0 anyway; clamping keeps n in range (NaN passes through
   * the comparisons unchanged and is caught below) */
  float xc = x > 89.0f ? 89.0f : (x < -104.0f ? -104.0f : x);
  /* n = round(x / ln 2) by the 1.5 * 2^23 trick: floorf does not vectorise under GCC's default
   * -ftrapping-math, and |x / ln 2| < 2^22 here */
  float fx = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float z = r * r;
  float y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
              4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  int32_t n = (int32_t)(fx == fx ? fx : 0.0f); /* n in [-150, 128] */
  int32_t h = n >> 1;
  y = y * fsvc_pow2i_f32(h) * fsvc_pow2i_f32(n - h);
  return x == x ? y : x;
}

static inline float fsvc_tanhf_fast(float x) {
  float ax = x < 0 ? -x : x;
  float z = x * x;
  float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                  1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
  float big = 1.0f - 2.0f / (fsvc_expf_fast(2.0f * ax) + 1.0f);
  big = x < 0 ? -big : big;
  return ax < 0.625f ? small : (x == x ? big : x);
}

static inline float fsvc_erff_fast(float x) {
  float ax = x < 0 ? -x : x;
  float t = 1.0f / (0.3275911f * ax + 1.0f);
  float r = (((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
            0.254829592f;
  float e = 1.0f - r * t * fsvc_expf_fast(-ax * ax);
  return x < 0 ? -e : e;
}

#endif
