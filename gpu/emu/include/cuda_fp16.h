// CPU emulation of CUDA's __half (FSVC_CUDA=EMULATE): IEEE binary16 storage, arithmetic in float,
// conversions rounding to nearest even (core/half.h), as the device's conversion instructions do.
#ifndef FSVC_EMU_CUDA_FP16_H
#define FSVC_EMU_CUDA_FP16_H
#include "cuda_runtime.h"
#include "half.h"

struct __half {
  unsigned short __x;
  __half() = default;
  __half(float f) : __x(fsvc_float_to_half(f)) {}
  __half(double d) : __x(fsvc_float_to_half((float)d)) {}
  __half(int i) : __x(fsvc_float_to_half((float)i)) {}
  __half(long long i) : __x(fsvc_float_to_half((float)i)) {}
  __half(long i) : __x(fsvc_float_to_half((float)i)) {}
  __half(unsigned u) : __x(fsvc_float_to_half((float)u)) {}
  operator float() const { return fsvc_half_to_float(__x); }
};
inline float __half2float(__half h) { return (float)h; }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
#endif
