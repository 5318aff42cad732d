/* One thread count for OpenMP kernels and OpenBLAS. */
#include <omp.h>

#include "fsvc/threads.h"

void openblas_set_num_threads(int n); /* from OpenBLAS */

static int num_threads = 0;

void fsvc_set_num_threads(int n) {
  if (n < 1) n = 1;
  num_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int fsvc_get_num_threads(void) { return num_threads > 0 ? num_threads : omp_get_max_threads(); }
