/* IEEE half and bfloat16 conversions (round to nearest even), used for storage on the CPU. */
#ifndef FSVC_HALF_H
#define FSVC_HALF_H
#include <stdint.h>
#include <string.h>

static inline float fsvc_bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t fsvc_float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float fsvc_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) { /* zero or subnormal */
    float v = (float)mant * (1.0f / 16777216.0f); /* 2^-24 */
    return sign ? -v : v;
  }
  if (exp == 31) return fsvc_bits_to_float(sign | 0x7f800000u | (mant << 13));
  return fsvc_bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
}

static inline uint16_t fsvc_float_to_half(float f) {
  uint32_t u = fsvc_float_to_bits(f), sign = (u >> 16) & 0x8000;
  uint32_t absu = u & 0x7fffffffu;
  if (absu >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absu > 0x7f800000u ? 0x200 : 0));
  if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow to inf */
  if (absu < 0x38800000u) { /* subnormal half: scale so rounding happens in float add */
    float v = fsvc_bits_to_float(absu) + 0.5f;
    return (uint16_t)(sign | (fsvc_float_to_bits(v) - 0x3f000000u));
  }
  uint32_t mant_odd = (absu >> 13) & 1;
  absu += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
  return (uint16_t)(sign | (absu >> 13));
}

static inline float fsvc_bfloat_to_float(uint16_t b) { return fsvc_bits_to_float((uint32_t)b << 16); }
static inline uint16_t fsvc_float_to_bfloat(float f) {
  uint32_t u = fsvc_float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fff + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}
#endif
