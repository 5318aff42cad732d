/* Seedable random numbers (a counter-based Philox-style generator would suit the GPU; on the CPU
 * we use xoshiro256** with a splitmix64 seeder). One global generator, or pass your own. */
#ifndef FSVC_RANDOM_H
#define FSVC_RANDOM_H
#include <stdint.h>
#include "fsvc/tensor.h"

typedef struct { uint64_t s[4]; } fsvc_generator;

void fsvc_generator_seed(fsvc_generator *g, uint64_t seed);
fsvc_generator *fsvc_default_generator(void);
void fsvc_manual_seed(uint64_t seed); /* seeds the default generator */
uint64_t fsvc_random_u64(fsvc_generator *g);
double fsvc_random_uniform(fsvc_generator *g); /* [0, 1) */
double fsvc_random_normal(fsvc_generator *g);

/* g may be NULL for the default generator */
fsvc_tensor *fsvc_rand(int ndim, const int64_t *shape, fsvc_dtype dt, fsvc_generator *g);
fsvc_tensor *fsvc_randn(int ndim, const int64_t *shape, fsvc_dtype dt, fsvc_generator *g);
fsvc_tensor *fsvc_randint(int64_t low, int64_t high, int ndim, const int64_t *shape,
                          fsvc_generator *g); /* int64 in [low, high) */
fsvc_tensor *fsvc_randperm(int64_t n, fsvc_generator *g); /* int64 */
fsvc_tensor *fsvc_arange(double start, double end, double step, fsvc_dtype dt);
fsvc_tensor *fsvc_linspace(double start, double end, int64_t steps, fsvc_dtype dt);
/* in place, no autograd */
int fsvc_uniform_(fsvc_tensor *t, double low, double high, fsvc_generator *g);
int fsvc_normal_(fsvc_tensor *t, double mean, double std, fsvc_generator *g);
#endif
