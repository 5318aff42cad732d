/* Thread count for CPU kernels (OpenMP) and OpenBLAS. Default: all cores. */
#ifndef FSVC_THREADS_H
#define FSVC_THREADS_H
void fsvc_set_num_threads(int n);
int fsvc_get_num_threads(void);
#endif
