// GPU random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11), counter-based, so element i of a fill is a pure function of (seed, offset + i/4): any
// thread count and launch shape give the same numbers, and a seed reproduces a run. Each fill
// advances the global offset by the counters it used. Uniform: 24 (float32) or 53 (float64)
// random bits; normal: Box-Muller on pairs.
#include <math.h>
#include <stdint.h>

#include "gpu_common.cuh"

using namespace fsvc_gpu;

namespace {
struct U4 { uint32_t x, y, z, w; };

__host__ __device__ __forceinline__ uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

__host__ __device__ inline U4 philox(U4 c, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; r++) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c.x, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c.z, &hi1);
    U4 n = {hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    c = n;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

__device__ __forceinline__ double u01_53(uint32_t a, uint32_t b) {
  uint64_t v = ((uint64_t)a << 21) ^ (uint64_t)(b >> 11);  // 53 bits
  return ((double)(v & ((1ULL << 53) - 1)) + 0.5) / 9007199254740992.0;  // (0, 1)
}

// element i uses counter (offset + i/2): two uniforms (a pair for Box-Muller) per element pair
template <typename T>
__global__ void random_kernel(T *p, int64_t n, uint64_t seed, uint64_t offset, int normal, double a,
                              double b) {
  FSVC_GRID_LOOP(pair, (n + 1) / 2) {
    uint64_t ctr = offset + (uint64_t)pair;
    U4 c = {(uint32_t)ctr, (uint32_t)(ctr >> 32), 0u, 0u};
    U4 r = philox(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    double u0 = u01_53(r.x, r.y), u1 = u01_53(r.z, r.w);
    double v0, v1;
    if (normal) {
      double rad = sqrt(-2.0 * log(u0)), th = 6.283185307179586 * u1;
      v0 = a + b * rad * cos(th);
      v1 = a + b * rad * sin(th);
    } else {
      v0 = a + (b - a) * (u0 - 0.5 / 9007199254740992.0);  // back to [0, 1)
      v1 = a + (b - a) * (u1 - 0.5 / 9007199254740992.0);
    }
    int64_t i = pair * 2;
    p[i] = (T)v0;
    if (i + 1 < n) p[i + 1] = (T)v1;
  }
}

uint64_t g_seed = 0x853c49e6748fea9bULL, g_initial = 0x853c49e6748fea9bULL, g_offset = 0;
}  // namespace

extern "C" void fsvc_gpu_manual_seed(uint64_t seed) {
  g_seed = g_initial = seed;
  g_offset = 0;
}
extern "C" uint64_t fsvc_gpu_initial_seed(void) { return g_initial; }

extern "C" int fsvc_gpu_random_launch(void *p, fsvc_dtype dt, int64_t n, int normal, double a, double b) {
  if (n == 0) return 0;
  uint64_t offset = g_offset;
  g_offset += (uint64_t)(n + 1) / 2;
  FSVC_DISPATCH_FLOAT(dt, FSVC_LAUNCH(random_kernel, blocks_for((n + 1) / 2), kThreads, 0, stream())(
                              (T *)p, n, g_seed, offset, normal, a, b));
  return fsvc_gpu_check_launch(normal ? "normal_" : "uniform_");
}
