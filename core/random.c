/* Random numbers: xoshiro256** (Blackman & Vigna), seeded by splitmix64; normals by Box-Muller. */
#include <math.h>
#include <stdlib.h>

#include "fsvc/device.h"
#include "fsvc/error.h"
#include "fsvc/random.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fsvc_generator_seed(fsvc_generator *g, uint64_t seed) {
  for (int i = 0; i < 4; i++) g->s[i] = splitmix64(&seed);
}

static fsvc_generator default_generator;
static int default_seeded = 0;

fsvc_generator *fsvc_default_generator(void) {
  if (!default_seeded) {
    fsvc_generator_seed(&default_generator, 0x5eed);
    default_seeded = 1;
  }
  return &default_generator;
}

void fsvc_manual_seed(uint64_t seed) {
  fsvc_generator_seed(&default_generator, seed);
  default_seeded = 1;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fsvc_random_u64(fsvc_generator *g) {
  uint64_t *s = g->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double fsvc_random_uniform(fsvc_generator *g) { return (double)(fsvc_random_u64(g) >> 11) * 0x1.0p-53; }

double fsvc_random_normal(fsvc_generator *g) {
  double u1 = fsvc_random_uniform(g), u2 = fsvc_random_uniform(g);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static fsvc_generator *gen_or_default(fsvc_generator *g) { return g ? g : fsvc_default_generator(); }

/* Fills t with draw(g) * scale + shift in element order. Contiguous float32/float64 tensors are
 * written directly (fsvc_set_flat's per-element index arithmetic cost as much as the draws: a
 * decoder's noise channel for 10 s is 240 000 of them per call); the values are the same. */
static void fill_draws(fsvc_tensor *t, double (*draw)(fsvc_generator *), double scale, double shift,
                       fsvc_generator *g) {
  int64_t n = fsvc_numel(t);
  if (fsvc_is_contiguous(t) && t->dtype == FSVC_FLOAT32) {
    float *p = fsvc_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(shift + scale * draw(g));
  } else if (fsvc_is_contiguous(t) && t->dtype == FSVC_FLOAT64) {
    double *p = fsvc_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = shift + scale * draw(g);
  } else {
    for (int64_t i = 0; i < n; i++) fsvc_set_flat(t, i, shift + scale * draw(g));
  }
}

int fsvc_uniform_(fsvc_tensor *t, double low, double high, fsvc_generator *g) {
  FSVC_DISPATCH_CUDA_INT(uniform_, t, low, high, g); /* the GPU draws from its own Philox stream */
  fill_draws(t, fsvc_random_uniform, high - low, low, gen_or_default(g));
  return 0;
}

int fsvc_normal_(fsvc_tensor *t, double mean, double std, fsvc_generator *g) {
  FSVC_DISPATCH_CUDA_INT(normal_, t, mean, std, g); /* the GPU draws from its own Philox stream */
  fill_draws(t, fsvc_random_normal, std, mean, gen_or_default(g));
  return 0;
}

fsvc_tensor *fsvc_rand(int ndim, const int64_t *shape, fsvc_dtype dt, fsvc_generator *g) {
  if (!fsvc_dtype_is_float(dt)) { fsvc_set_error("rand: dtype must be a float type"); return NULL; }
  fsvc_tensor *t = fsvc_empty(ndim, shape, dt);
  if (t) fsvc_uniform_(t, 0, 1, g);
  return t;
}

fsvc_tensor *fsvc_randn(int ndim, const int64_t *shape, fsvc_dtype dt, fsvc_generator *g) {
  if (!fsvc_dtype_is_float(dt)) { fsvc_set_error("randn: dtype must be a float type"); return NULL; }
  fsvc_tensor *t = fsvc_empty(ndim, shape, dt);
  if (t) fsvc_normal_(t, 0, 1, g);
  return t;
}

fsvc_tensor *fsvc_randint(int64_t low, int64_t high, int ndim, const int64_t *shape,
                          fsvc_generator *g) {
  if (high <= low) {
    fsvc_set_error("randint: high (%lld) must be greater than low (%lld)", (long long)high,
                   (long long)low);
    return NULL;
  }
  g = gen_or_default(g);
  fsvc_tensor *t = fsvc_empty(ndim, shape, FSVC_INT64);
  if (!t) return NULL;
  int64_t *p = fsvc_data(t), n = fsvc_numel(t);
  uint64_t range = (uint64_t)(high - low);
  for (int64_t i = 0; i < n; i++) p[i] = low + (int64_t)(fsvc_random_u64(g) % range);
  return t;
}

fsvc_tensor *fsvc_randperm(int64_t n, fsvc_generator *g) {
  if (n < 0) { fsvc_set_error("randperm: n must be >= 0 (got %lld)", (long long)n); return NULL; }
  g = gen_or_default(g);
  fsvc_tensor *t = fsvc_empty(1, &n, FSVC_INT64);
  if (!t) return NULL;
  int64_t *p = fsvc_data(t);
  for (int64_t i = 0; i < n; i++) p[i] = i;
  for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    int64_t j = (int64_t)(fsvc_random_u64(g) % (uint64_t)(i + 1)), tmp = p[i];
    p[i] = p[j];
    p[j] = tmp;
  }
  return t;
}

fsvc_tensor *fsvc_arange(double start, double end, double step, fsvc_dtype dt) {
  if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step)) {
    fsvc_set_error("arange: start, end and step must be finite and step nonzero");
    return NULL;
  }
  double count = ceil((end - start) / step);
  int64_t n = count > 0 ? (int64_t)count : 0;
  fsvc_tensor *t = fsvc_empty(1, &n, dt);
  if (!t) return NULL;
  for (int64_t i = 0; i < n; i++) fsvc_set_flat(t, i, start + (double)i * step);
  return t;
}

fsvc_tensor *fsvc_linspace(double start, double end, int64_t steps, fsvc_dtype dt) {
  if (steps < 0) { fsvc_set_error("linspace: steps must be >= 0"); return NULL; }
  fsvc_tensor *t = fsvc_empty(1, &steps, dt);
  if (!t) return NULL;
  double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
  /* as PyTorch: the second half counts back from `end` so the last value is exact */
  int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; i++)
    fsvc_set_flat(t, i, i < half ? start + step * (double)i : end - step * (double)(steps - 1 - i));
  return t;
}
