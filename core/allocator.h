/* The CPU allocator of tensor storage. Small blocks come from malloc; large ones are mapped pages
 * kept in a cache of freed blocks by size class, because first-touch page faults dominate on
 * virtual machines (measured here: ~250 ms to fault in 37 MB, ~2 ms to rewrite it), and a
 * training step allocates and frees the same large activations every iteration. */
#ifndef FSVC_ALLOCATOR_H
#define FSVC_ALLOCATOR_H
#include <stddef.h>

/* Returns 64-byte aligned memory of at least nbytes, or NULL. */
void *fsvc_cpu_alloc(size_t nbytes);
/* nbytes must be the size given to fsvc_cpu_alloc. */
void fsvc_cpu_free(void *p, size_t nbytes);
#endif
