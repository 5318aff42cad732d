/* Reference-counted file mappings for zero-copy checkpoint loading. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdio.h>
#include <unistd.h>

#include "fsvc/error.h"
#include "io_internal.h"

fsvc_mapping *fsvc_mapping_open(const char *path, const char *op) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fsvc_set_error("%s: %s: cannot open (%s)", op, path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    fsvc_set_error("%s: %s: not a regular file", op, path);
    close(fd);
    return NULL;
  }
  fsvc_mapping *m = calloc(1, sizeof *m);
  if (!m) { close(fd); fsvc_set_error("%s: %s: out of memory", op, path); return NULL; }
  m->size = (size_t)st.st_size;
  if (m->size == 0) { /* mmap refuses empty files; the callers report "truncated" */
    m->base = malloc(1);
  } else {
    void *p = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      fsvc_set_error("%s: %s: cannot map the file (%s)", op, path, strerror(errno));
      close(fd);
      free(m);
      return NULL;
    }
    m->base = p;
    m->is_mmap = 1;
  }
  close(fd);
  atomic_init(&m->refcount, 1);
  return m;
}

fsvc_mapping *fsvc_mapping_copy(const void *data, size_t size, const char *op, const char *name) {
  fsvc_mapping *m = calloc(1, sizeof *m);
  if (m) m->base = malloc(size ? size : 1);
  if (!m || !m->base) {
    free(m);
    fsvc_set_error("%s: %s: out of memory", op, name);
    return NULL;
  }
  if (size) memcpy(m->base, data, size);
  m->size = size;
  atomic_init(&m->refcount, 1);
  return m;
}

void fsvc_mapping_release(fsvc_mapping *m) {
  if (!m || atomic_fetch_sub(&m->refcount, 1) != 1) return;
  if (m->is_mmap) munmap(m->base, m->size);
  else free(m->base);
  free(m);
}

static void release_storage(void *owner, void *data, size_t nbytes) {
  (void)data;
  (void)nbytes;
  fsvc_mapping_release(owner);
}

fsvc_tensor *fsvc_mapping_wrap(fsvc_mapping *m, size_t offset, int ndim, const int64_t *shape,
                               fsvc_dtype dt) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  size_t nbytes = (size_t)n * fsvc_dtype_size(dt);
  atomic_fetch_add(&m->refcount, 1);
  fsvc_tensor *t = fsvc_wrap(ndim, shape, dt, m->base + offset, nbytes, release_storage, m);
  if (!t) fsvc_mapping_release(m);
  return t;
}

int64_t fsvc_read_int_le(const unsigned char *p, int width, int is_signed) {
  uint64_t u = 0;
  for (int i = width - 1; i >= 0; i--) u = (u << 8) | p[i];
  if (is_signed && width < 8 && (u >> (8 * width - 1)) & 1) u |= ~(uint64_t)0 << (8 * width);
  return (int64_t)u;
}

void fsvc_io_error_oneline(void) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", fsvc_last_error());
  for (char *c = buf; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
  fsvc_set_error("%s", buf);
}
