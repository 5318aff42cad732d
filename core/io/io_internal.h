/* Shared by the checkpoint readers: a reference-counted read-only view of a whole file (mmap) or
 * of a copied buffer, and tensors that wrap bytes of it without copying. */
#ifndef FSVC_IO_INTERNAL_H
#define FSVC_IO_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fsvc/tensor.h"

typedef struct fsvc_mapping {
  _Atomic int refcount; /* the loader's reference + one per wrapping storage */
  unsigned char *base;
  size_t size;
  int is_mmap; /* else base is malloc'ed */
} fsvc_mapping;

/* Maps `path` privately (copy-on-write, so in-place ops on loaded weights work and never reach the
 * file). NULL with "op: path: reason" on failure. */
fsvc_mapping *fsvc_mapping_open(const char *path, const char *op);
/* A private copy of a buffer. */
fsvc_mapping *fsvc_mapping_copy(const void *data, size_t size, const char *op, const char *name);
void fsvc_mapping_release(fsvc_mapping *m);
/* A contiguous tensor over m->base[offset ..] (the caller checked the range and the alignment);
 * the storage holds a reference to the mapping. */
fsvc_tensor *fsvc_mapping_wrap(fsvc_mapping *m, size_t offset, int ndim, const int64_t *shape,
                               fsvc_dtype dt);

/* Reads a stored integer of `width` bytes (1, 2, 4, 8), signed or not, little-endian. */
int64_t fsvc_read_int_le(const unsigned char *p, int width, int is_signed);

/* Names read from a file (keys, zip members) may hold newlines: errors stay on one line by
 * replacing control characters in the last error. Called where the public loaders fail. */
void fsvc_io_error_oneline(void);

#endif
