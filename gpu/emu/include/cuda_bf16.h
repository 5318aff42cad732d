// CPU emulation of CUDA's __nv_bfloat16 (FSVC_CUDA=EMULATE): storage of the upper 16 bits of a
// float, arithmetic in float, conversions rounding to nearest even (core/half.h).
#ifndef FSVC_EMU_CUDA_BF16_H
#define FSVC_EMU_CUDA_BF16_H
#include "cuda_runtime.h"
#include "half.h"

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(fsvc_float_to_bfloat(f)) {}
  __nv_bfloat16(double d) : __x(fsvc_float_to_bfloat((float)d)) {}
  __nv_bfloat16(int i) : __x(fsvc_float_to_bfloat((float)i)) {}
  __nv_bfloat16(long long i) : __x(fsvc_float_to_bfloat((float)i)) {}
  __nv_bfloat16(long i) : __x(fsvc_float_to_bfloat((float)i)) {}
  __nv_bfloat16(unsigned u) : __x(fsvc_float_to_bfloat((float)u)) {}
  operator float() const { return fsvc_bfloat_to_float(__x); }
};
inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
#endif
