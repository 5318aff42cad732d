/* Zip central-directory reader (see zip_reader.h). All sizes and offsets read from the archive are
 * checked against the buffer before use: the input may be any bytes. */
#define _GNU_SOURCE
#include "zip_reader.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fsvc/error.h"
#include "io_internal.h"

/* zlib is referenced weakly so that the core links without -lz, except when CMake found zlib and
 * defines FSVC_HAVE_ZLIB: then the references are strong, since a linker using --as-needed (the
 * Debian default) drops a library that only weak references point at. */
#ifndef FSVC_HAVE_ZLIB
#pragma weak inflateInit2_
#pragma weak inflate
#pragma weak inflateEnd
#endif

#ifdef FSVC_HAVE_ZLIB
int fsvc_zip_has_inflate(void) { return 1; }
#else
int fsvc_zip_has_inflate(void) { return inflateInit2_ != NULL && inflate != NULL && inflateEnd != NULL; }
#endif

static uint64_t rd(const unsigned char *p, int w) { return (uint64_t)fsvc_read_int_le(p, w, 0); }

void fsvc_zip_close(fsvc_zip *z) {
  if (!z) return;
  for (size_t i = 0; i < z->n_entries; i++) free(z->entries[i].name);
  free(z->entries);
  memset(z, 0, sizeof *z);
}

int fsvc_zip_open(fsvc_zip *z, const void *data, size_t size, const char *op, const char *file) {
  memset(z, 0, sizeof *z);
  z->data = data;
  z->size = size;
  const unsigned char *b = data;
  /* end of central directory: 22 bytes plus a comment of up to 65535 */
  if (size < 22) { fsvc_set_error("%s: %s: truncated zip archive (%zu bytes)", op, file, size); return -1; }
  size_t eocd = (size_t)-1;
  size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t i = size - 22 + 1; i-- > lowest;)
    if (rd(b + i, 4) == 0x06054b50u) { eocd = i; break; }
  if (eocd == (size_t)-1) {
    fsvc_set_error("%s: %s: no zip end-of-central-directory record (truncated or not a zip)", op, file);
    return -1;
  }
  uint64_t n_total = rd(b + eocd + 10, 2), cd_size = rd(b + eocd + 12, 4), cd_off = rd(b + eocd + 16, 4);
  if (rd(b + eocd + 4, 2) != 0 || rd(b + eocd + 6, 2) != 0) {
    if (n_total != 0xffff) {
      fsvc_set_error("%s: %s: multi-disk zip archives are not supported", op, file);
      return -1;
    }
  }
  if (n_total == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) { /* zip64 */
    if (eocd < 20 || rd(b + eocd - 20, 4) != 0x07064b50u) {
      fsvc_set_error("%s: %s: zip64 archive without its locator", op, file);
      return -1;
    }
    uint64_t e64 = rd(b + eocd - 20 + 8, 8);
    if (size < 56 || e64 > size - 56 || rd(b + e64, 4) != 0x06064b50u) {
      fsvc_set_error("%s: %s: bad zip64 end-of-central-directory record", op, file);
      return -1;
    }
    n_total = rd(b + e64 + 32, 8);
    cd_size = rd(b + e64 + 40, 8);
    cd_off = rd(b + e64 + 48, 8);
  }
  if (cd_off > size || cd_size > size - cd_off || n_total > cd_size / 46) {
    fsvc_set_error("%s: %s: zip central directory out of range (truncated file?)", op, file);
    return -1;
  }
  z->entries = calloc(n_total ? n_total : 1, sizeof *z->entries);
  if (!z->entries) { fsvc_set_error("%s: %s: out of memory", op, file); return -1; }
  const unsigned char *p = b + cd_off, *end = b + cd_off + cd_size;
  for (uint64_t i = 0; i < n_total; i++) {
    if (end - p < 46 || rd(p, 4) != 0x02014b50u) {
      fsvc_set_error("%s: %s: corrupt zip central directory (entry %llu)", op, file, (unsigned long long)i);
      goto fail;
    }
    unsigned flags = (unsigned)rd(p + 8, 2), method = (unsigned)rd(p + 10, 2);
    uint64_t comp = rd(p + 20, 4), usize = rd(p + 24, 4), lho = rd(p + 42, 4);
    size_t nlen = (size_t)rd(p + 28, 2), xlen = (size_t)rd(p + 30, 2), clen = (size_t)rd(p + 32, 2);
    if ((size_t)(end - p) - 46 < nlen + xlen + clen) {
      fsvc_set_error("%s: %s: corrupt zip central directory (entry %llu)", op, file, (unsigned long long)i);
      goto fail;
    }
    fsvc_zip_entry *e = &z->entries[z->n_entries];
    e->name = strndup((const char *)p + 46, nlen);
    if (!e->name) { fsvc_set_error("%s: %s: out of memory", op, file); goto fail; }
    z->n_entries++;
    /* zip64 extra field: the 8-byte values present are those whose 4-byte field is saturated */
    const unsigned char *x = p + 46 + nlen, *xend = x + xlen;
    while (xend - x >= 4) {
      unsigned id = (unsigned)rd(x, 2), len = (unsigned)rd(x + 2, 2);
      if ((size_t)(xend - x - 4) < len) break;
      if (id == 0x0001) {
        const unsigned char *v = x + 4, *vend = x + 4 + len;
        if (usize == 0xffffffffu && vend - v >= 8) { usize = rd(v, 8); v += 8; }
        if (comp == 0xffffffffu && vend - v >= 8) { comp = rd(v, 8); v += 8; }
        if (lho == 0xffffffffu && vend - v >= 8) { lho = rd(v, 8); v += 8; }
      }
      x += 4 + len;
    }
    if (flags & 1) {
      fsvc_set_error("%s: %s: zip member '%s' is encrypted", op, file, e->name);
      goto fail;
    }
    if (lho > size || size - lho < 30 || rd(b + lho, 4) != 0x04034b50u) {
      fsvc_set_error("%s: %s: zip member '%s': bad local header offset", op, file, e->name);
      goto fail;
    }
    uint64_t data_off = lho + 30 + rd(b + lho + 26, 2) + rd(b + lho + 28, 2);
    if (data_off > size || comp > size - data_off) {
      fsvc_set_error("%s: %s: zip member '%s' runs past the end of the file (truncated?)", op, file,
                     e->name);
      goto fail;
    }
    if (method != 0 && method != 8) {
      fsvc_set_error("%s: %s: zip member '%s' uses compression method %u (only stored and deflate "
                     "are supported)", op, file, e->name, method);
      goto fail;
    }
    if (method == 0 && comp != usize) {
      fsvc_set_error("%s: %s: zip member '%s': stored size %llu differs from its size %llu", op,
                     file, e->name, (unsigned long long)comp, (unsigned long long)usize);
      goto fail;
    }
    e->method = (int)method;
    e->comp_size = comp;
    e->size = usize;
    e->data_offset = data_off;
    p += 46 + nlen + xlen + clen;
  }
  return 0;
fail:
  fsvc_zip_close(z);
  return -1;
}

const fsvc_zip_entry *fsvc_zip_find(const fsvc_zip *z, const char *name) {
  for (size_t i = 0; i < z->n_entries; i++)
    if (strcmp(z->entries[i].name, name) == 0) return &z->entries[i];
  return NULL;
}

const unsigned char *fsvc_zip_read(const fsvc_zip *z, const fsvc_zip_entry *e, int *owned,
                                   const char *op, const char *file) {
  *owned = 0;
  if (e->method == 0) return z->data + e->data_offset;
  if (!fsvc_zip_has_inflate()) {
    fsvc_set_error("%s: %s: zip member '%s' is deflate-compressed and this build has no zlib; "
                   "re-save it uncompressed (torch.save does)", op, file, e->name);
    return NULL;
  }
  /* a deflate stream expands at most ~1032x: refuse sizes that cannot be real */
  if (e->size > (uint64_t)1 << 40 || e->size / 1032 > e->comp_size + 1) {
    fsvc_set_error("%s: %s: zip member '%s' claims an impossible size %llu", op, file, e->name,
                   (unsigned long long)e->size);
    return NULL;
  }
  unsigned char *out = malloc(e->size ? (size_t)e->size : 1);
  if (!out) { fsvc_set_error("%s: %s: out of memory inflating '%s'", op, file, e->name); return NULL; }
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, -15) != Z_OK) { /* raw deflate: zip has no zlib header */
    free(out);
    fsvc_set_error("%s: %s: cannot start inflating '%s'", op, file, e->name);
    return NULL;
  }
  const unsigned char *src = z->data + e->data_offset;
  uint64_t in_left = e->comp_size, out_done = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    uInt in_chunk = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
    uint64_t out_left = e->size - out_done;
    uInt out_chunk = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
    s.next_in = (Bytef *)src;
    s.avail_in = in_chunk;
    s.next_out = out + out_done;
    s.avail_out = out_chunk;
    rc = inflate(&s, Z_NO_FLUSH);
    src += in_chunk - s.avail_in;
    in_left -= in_chunk - s.avail_in;
    out_done += out_chunk - s.avail_out;
    if (rc == Z_OK && in_chunk - s.avail_in == 0 && out_chunk - s.avail_out == 0) rc = Z_BUF_ERROR;
  }
  inflateEnd(&s);
  if (rc != Z_STREAM_END || out_done != e->size) {
    free(out);
    fsvc_set_error("%s: %s: zip member '%s' is corrupt (inflate %s)", op, file, e->name,
                   rc == Z_STREAM_END ? "gave the wrong size" : "failed");
    return NULL;
  }
  *owned = 1;
  return out;
}
