// TF32 rounding for the emulated libraries (cuBLAS's TF32 compute, cuDNN's default math on float32):
// a float32 rounded to nearest at bit 13, keeping TF32's 10 explicit mantissa bits; inf and NaN
// pass unchanged.
#ifndef FSVC_EMU_TF32_H
#define FSVC_EMU_TF32_H
#include <stdint.h>
#include <string.h>

inline float fsvc_emu_to_tf32(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u += 0x1000u;
  u &= 0xffffe000u;
  memcpy(&x, &u, 4);
  return x;
}
#endif
