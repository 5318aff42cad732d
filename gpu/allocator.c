/* Caching device allocator. cudaMalloc/cudaFree synchronise the device and cost tens of
 * microseconds, and a training step frees and reallocates the same activation sizes every
 * iteration, so freed blocks are kept in per-(device, stream, size class) free lists and handed
 * out again: in steady state no cudaMalloc happens (n_cuda_malloc stays flat; the specs check it).
 *
 * Size classes: 512-byte multiples below 1 MiB, then four steps per power of two (at most 25%
 * waste). A block freed by a tensor goes back to the list of the stream it was allocated on;
 * kernels are stream-ordered, so reuse on the same stream needs no event. When cudaMalloc fails,
 * every cached block is released and the call retried once.
 *
 * CUDA graphs (gpu/graph.c): while a graph is captured no cudaMalloc may happen, and the memory the
 * captured kernels use must stay theirs for every replay. So during a capture allocations come only
 * from the cache (the graph's warm-up run filled it), and every block handed out then joins the
 * graph's pool: freed or not, it is never given to anything outside the graph until the graph is
 * destroyed (fsvc_gpu_pool_release). */
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/error.h"
#include "gpu_internal.h"

typedef struct block {
  void *p;
  size_t size;
  int device;
  void *stream;
  int pool; /* 0: general; else the CUDA graph that owns it */
  struct block *next;
} block;

/* live blocks are found again by pointer on release: a small open hash */
#define LIVE_BUCKETS 4096
static block *live[LIVE_BUCKETS];
/* cached blocks, newest first, in buckets by size class (a training step has thousands of live
 * and cached blocks; a single list would make every allocation a long walk) */
#define FREE_BUCKETS 1024
static block *free_lists[FREE_BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fsvc_gpu_memory_stats stats;
static int capture_pool = 0; /* the pool of the graph being captured, 0 when none */

/* FSVC_CUDA_EXACT_ALLOC=1: every block is exactly the size asked for (still cached, by exact size),
 * so that compute-sanitizer's memcheck, which knows only cudaMalloc's bounds, sees an access past
 * a tensor's end that the rounding to a size class would hide (spec/gpu/device_check.sh sets it) */
static int exact_sizes(void) {
  static int exact = -1;
  if (exact < 0) {
    const char *v = getenv("FSVC_CUDA_EXACT_ALLOC");
    exact = v && *v && strcmp(v, "0") != 0;
  }
  return exact;
}

static size_t size_class(size_t n) {
  if (n == 0) n = 1;
  if (exact_sizes()) return n;
  if (n < (1u << 20)) return (n + 511) / 512 * 512;
  size_t pow2 = 1u << 20;
  while (pow2 < n) pow2 <<= 1;
  size_t step = pow2 >> 3;
  return (n + step - 1) / step * step;
}

static unsigned hash_ptr(const void *p) { return (unsigned)(((uintptr_t)p >> 9) % LIVE_BUCKETS); }
static unsigned hash_size(size_t size) { return (unsigned)((size >> 9) % FREE_BUCKETS); }

static void release_cached_locked(void) {
  for (int k = 0; k < FREE_BUCKETS; k++) {
    block **pp = &free_lists[k];
    while (*pp) {
      block *b = *pp;
      if (b->pool != 0) { /* a graph's memory: its replays still write there */
        pp = &b->next;
        continue;
      }
      *pp = b->next;
      int prev = -1;
      cudaGetDevice(&prev);
      cudaSetDevice(b->device);
      cudaFree(b->p);
      if (prev >= 0) cudaSetDevice(prev);
      stats.reserved -= (int64_t)b->size;
      free(b);
    }
  }
}

void *fsvc_gpu_alloc(int device, size_t nbytes) {
  size_t size = size_class(nbytes);
  void *stream = fsvc_gpu_stream();
  pthread_mutex_lock(&lock);
  block **pp = &free_lists[hash_size(size)], *b = NULL;
  for (; *pp; pp = &(*pp)->next) {
    if ((*pp)->size == size && (*pp)->device == device && (*pp)->stream == stream &&
        ((*pp)->pool == 0 || (*pp)->pool == capture_pool)) {
      b = *pp;
      *pp = b->next;
      stats.n_cache_hits++;
      break;
    }
  }
  if (!b && capture_pool != 0) {
    pthread_mutex_unlock(&lock);
    fsvc_set_error("cuda graph capture: an allocation of %zu bytes that the warm-up run did not make "
                   "(memory cannot be allocated while a graph is captured; the captured function "
                   "must allocate the same sizes on every call)", nbytes);
    return NULL;
  }
  if (b && capture_pool != 0) b->pool = capture_pool;
  if (!b) {
    void *p = NULL;
    int prev = -1;
    cudaGetDevice(&prev);
    if (prev != device) cudaSetDevice(device);
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) { /* out of memory: give the cache back to the driver and retry */
      (void)cudaGetLastError();
      release_cached_locked();
      e = cudaMalloc(&p, size);
    }
    if (prev >= 0 && prev != device) cudaSetDevice(prev);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      pthread_mutex_unlock(&lock);
      fsvc_set_error("cuda: out of device memory allocating %zu bytes on cuda:%d (%lld in use, "
                     "%lld reserved): %s", nbytes, device, (long long)stats.allocated,
                     (long long)stats.reserved, cudaGetErrorString(e));
      return NULL;
    }
    b = malloc(sizeof *b);
    if (!b) {
      cudaFree(p);
      pthread_mutex_unlock(&lock);
      fsvc_set_error("cuda: out of host memory");
      return NULL;
    }
    b->p = p;
    b->size = size;
    b->device = device;
    b->stream = stream;
    b->pool = 0;
    stats.n_cuda_malloc++;
    stats.reserved += (int64_t)size;
  }
  unsigned h = hash_ptr(b->p);
  b->next = live[h];
  live[h] = b;
  stats.n_alloc++;
  stats.allocated += (int64_t)b->size;
  if (stats.allocated > stats.peak_allocated) stats.peak_allocated = stats.allocated;
  void *p = b->p;
  pthread_mutex_unlock(&lock);
  return p;
}

void fsvc_gpu_release(void *owner, void *p, size_t nbytes) {
  (void)owner;
  (void)nbytes;
  if (!p) return;
  pthread_mutex_lock(&lock);
  block **pp = &live[hash_ptr(p)];
  while (*pp && (*pp)->p != p) pp = &(*pp)->next;
  block *b = *pp;
  if (b) {
    *pp = b->next;
    stats.allocated -= (int64_t)b->size;
    unsigned k = hash_size(b->size);
    b->next = free_lists[k];
    free_lists[k] = b;
  }
  pthread_mutex_unlock(&lock);
}

void fsvc_gpu_memory_stats_get(fsvc_gpu_memory_stats *s) {
  pthread_mutex_lock(&lock);
  *s = stats;
  pthread_mutex_unlock(&lock);
}

void fsvc_gpu_memory_reset_peak(void) {
  pthread_mutex_lock(&lock);
  stats.peak_allocated = stats.allocated;
  pthread_mutex_unlock(&lock);
}

void fsvc_gpu_empty_cache(void) {
  pthread_mutex_lock(&lock);
  if (fsvc_gpu_device_count() > 0) cudaDeviceSynchronize(); /* blocks may still be in use by queued kernels */
  release_cached_locked();
  pthread_mutex_unlock(&lock);
}

void fsvc_gpu_pool_capture(int pool) {
  pthread_mutex_lock(&lock);
  capture_pool = pool;
  pthread_mutex_unlock(&lock);
}

/* the graph is gone: its blocks, live or cached, return to general use */
void fsvc_gpu_pool_release(int pool) {
  pthread_mutex_lock(&lock);
  for (int k = 0; k < FREE_BUCKETS; k++)
    for (block *b = free_lists[k]; b; b = b->next)
      if (b->pool == pool) b->pool = 0;
  for (int k = 0; k < LIVE_BUCKETS; k++)
    for (block *b = live[k]; b; b = b->next)
      if (b->pool == pool) b->pool = 0;
  pthread_mutex_unlock(&lock);
}
