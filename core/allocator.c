#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "allocator.h"
#include "fsvc/tensor.h"

#define LARGE_BLOCK (256u << 10) /* blocks from here on are mapped and cached */
#define MAX_CACHED_BLOCKS 256

typedef struct {
  void *p;
  size_t size; /* the size class (bytes mapped) */
} cached_block;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cached_block cache[MAX_CACHED_BLOCKS];
static int cache_len = 0;
static size_t cache_bytes = 0;
static size_t cache_limit = (size_t)2 << 30; /* 2 GiB of freed blocks kept for reuse */

/* Size classes: four steps per power of two, so reuse wastes at most 25%. */
static size_t size_class(size_t n) {
  size_t pow2 = LARGE_BLOCK;
  while (pow2 < n) pow2 <<= 1;
  size_t step = pow2 >> 3 > 4096 ? pow2 >> 3 : 4096; /* pow2/2 .. pow2 in 4 steps of pow2/8 */
  return (n + step - 1) / step * step;
}

static void *map_block(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
  if (size >= (2u << 20)) madvise(p, size, MADV_HUGEPAGE); /* fewer faults when THP allows */
#endif
  return p;
}

void *fsvc_cpu_alloc(size_t nbytes) {
  if (nbytes < LARGE_BLOCK) {
    size_t rounded = (nbytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
  }
  size_t size = size_class(nbytes);
  pthread_mutex_lock(&cache_lock);
  for (int i = cache_len - 1; i >= 0; i--) { /* newest first: most likely still in cache/TLB */
    if (cache[i].size == size) {
      void *p = cache[i].p;
      cache[i] = cache[--cache_len];
      cache_bytes -= size;
      pthread_mutex_unlock(&cache_lock);
      return p;
    }
  }
  pthread_mutex_unlock(&cache_lock);
  return map_block(size);
}

void fsvc_cpu_free(void *p, size_t nbytes) {
  if (!p) return;
  if (nbytes < LARGE_BLOCK) {
    free(p);
    return;
  }
  size_t size = size_class(nbytes);
  pthread_mutex_lock(&cache_lock);
  /* make room: drop the oldest blocks until this one fits under the limit */
  while (cache_len > 0 && (cache_len == MAX_CACHED_BLOCKS || cache_bytes + size > cache_limit)) {
    munmap(cache[0].p, cache[0].size);
    cache_bytes -= cache[0].size;
    for (int i = 1; i < cache_len; i++) cache[i - 1] = cache[i];
    cache_len--;
  }
  if (size <= cache_limit) {
    cache[cache_len].p = p;
    cache[cache_len].size = size;
    cache_len++;
    cache_bytes += size;
    p = NULL;
  }
  pthread_mutex_unlock(&cache_lock);
  if (p) munmap(p, size);
}

void fsvc_empty_cache(void) {
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < cache_len; i++) munmap(cache[i].p, cache[i].size);
  cache_len = 0;
  cache_bytes = 0;
  pthread_mutex_unlock(&cache_lock);
}

int64_t fsvc_memory_cached(void) {
  pthread_mutex_lock(&cache_lock);
  size_t b = cache_bytes;
  pthread_mutex_unlock(&cache_lock);
  return (int64_t)b;
}

void fsvc_set_cache_limit(int64_t bytes) {
  pthread_mutex_lock(&cache_lock);
  cache_limit = bytes > 0 ? (size_t)bytes : 0;
  pthread_mutex_unlock(&cache_lock);
  if (bytes <= 0) fsvc_empty_cache();
}
