/* A minimal read-only zip reader over a buffer in memory (a mapped file): what torch.save files
 * need. Stored members are used in place; deflated members are inflated with zlib when the binary
 * links it (FSVC links zlib weakly: without it, deflated members are refused by name). Zip64 is
 * supported (torch writes it for large checkpoints). Encryption and multi-disk archives are not. */
#ifndef FSVC_ZIP_READER_H
#define FSVC_ZIP_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *name;           /* NUL-terminated */
  uint64_t data_offset; /* of the member's (compressed) bytes in the archive */
  uint64_t comp_size, size;
  int method; /* 0 stored, 8 deflate */
} fsvc_zip_entry;

typedef struct {
  const unsigned char *data;
  size_t size;
  fsvc_zip_entry *entries;
  size_t n_entries;
} fsvc_zip;

/* Reads the central directory and checks every member lies inside the buffer. 0, or -1 with
 * "op: file: reason". */
int fsvc_zip_open(fsvc_zip *z, const void *data, size_t size, const char *op, const char *file);
void fsvc_zip_close(fsvc_zip *z);
const fsvc_zip_entry *fsvc_zip_find(const fsvc_zip *z, const char *name);
/* The member's bytes: a pointer into the archive when stored (*owned = 0), else a malloc'ed
 * inflated copy (*owned = 1, free it). NULL with an error naming the member on failure. */
const unsigned char *fsvc_zip_read(const fsvc_zip *z, const fsvc_zip_entry *e, int *owned,
                                   const char *op, const char *file);
/* 1 when deflated members can be read (zlib linked in). */
int fsvc_zip_has_inflate(void);

#endif
