/* Checkpoints: named tensors plus named plain values, read from and written to safetensors, and
 * imported from PyTorch torch.save files (.pt/.bin/.pth, the zip format of torch >= 1.6).
 *
 * A fsvc_tensor_dict keeps its entries in insertion order (load order for files). Tensors loaded
 * from a file whose bytes can be used in place wrap a read-only memory mapping of the file; the
 * mapping is reference counted and unmapped when the last tensor using it is released, so tensors
 * may outlive the dict. Such tensors must not be written to (the mapping is private copy-on-write,
 * so a write never reaches the file, but it costs a page copy).
 *
 * Errors: loaders return NULL, savers -1, with a one-line message naming the file and, where there
 * is one, the key: "load_safetensors: model.safetensors: tensor 'w': data_offsets [0, 12] ...". */
#ifndef FSVC_CHECKPOINT_H
#define FSVC_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "fsvc/tensor.h"

typedef struct fsvc_tensor_dict fsvc_tensor_dict;

/* Kinds of non-tensor values: safetensors metadata is always a string; torch checkpoints can hold
 * ints, floats, booleans, strings and None next to their tensors (epoch, loss, config...). */
typedef enum {
  FSVC_VALUE_NONE = 0,
  FSVC_VALUE_BOOL,
  FSVC_VALUE_INT,
  FSVC_VALUE_FLOAT,
  FSVC_VALUE_STRING,
} fsvc_value_kind;

typedef struct {
  fsvc_value_kind kind;
  int64_t i;     /* BOOL (0/1) and INT */
  double f;      /* FLOAT */
  const char *s; /* STRING: NUL-terminated UTF-8 owned by the dict */
} fsvc_value;

/* ---- the dict ------------------------------------------------------------------------------- */
fsvc_tensor_dict *fsvc_tensor_dict_new(void);
void fsvc_tensor_dict_free(fsvc_tensor_dict *d); /* NULL is fine; releases its tensor references */

/* Adds or replaces `name` (the dict retains t; the caller keeps its own reference). 0 or -1. */
int fsvc_tensor_dict_set(fsvc_tensor_dict *d, const char *name, fsvc_tensor *t);
/* Borrowed reference, or NULL when absent (no error is set). */
fsvc_tensor *fsvc_tensor_dict_get(const fsvc_tensor_dict *d, const char *name);
int64_t fsvc_tensor_dict_count(const fsvc_tensor_dict *d);
const char *fsvc_tensor_dict_name(const fsvc_tensor_dict *d, int64_t i); /* NULL when out of range */
fsvc_tensor *fsvc_tensor_dict_at(const fsvc_tensor_dict *d, int64_t i);  /* borrowed */

/* Non-tensor values ("metadata"): safetensors writes only STRING values. */
int fsvc_tensor_dict_set_value(fsvc_tensor_dict *d, const char *key, fsvc_value v); /* copies s */
int fsvc_tensor_dict_set_meta(fsvc_tensor_dict *d, const char *key, const char *value);
const fsvc_value *fsvc_tensor_dict_get_value(const fsvc_tensor_dict *d, const char *key);
const char *fsvc_tensor_dict_get_meta(const fsvc_tensor_dict *d, const char *key); /* STRING only */
int64_t fsvc_tensor_dict_value_count(const fsvc_tensor_dict *d);
const char *fsvc_tensor_dict_value_key(const fsvc_tensor_dict *d, int64_t i);
const fsvc_value *fsvc_tensor_dict_value_at(const fsvc_tensor_dict *d, int64_t i);

/* ---- safetensors ---------------------------------------------------------------------------- */
/* Reads F32, F64, F16, BF16 and I64 as they are (memory-mapped when aligned), and widens I32, I16,
 * I8, U8 and BOOL to int64 (copied). The "__metadata__" map becomes STRING values. */
fsvc_tensor_dict *fsvc_safetensors_load(const char *path);
/* Same from a buffer (copied; `name` is used in error messages). */
fsvc_tensor_dict *fsvc_safetensors_load_memory(const void *data, size_t size, const char *name);
/* Writes atomically (temp file in the same folder, fsync, rename): tensors with keys sorted, the
 * STRING values as "__metadata__" (other kinds are refused), header padded with spaces to a
 * multiple of 8 bytes. Tensors may be any view; float32, float64, float16, bfloat16, int64. */
int fsvc_safetensors_save(const char *path, const fsvc_tensor_dict *d);

/* ---- PyTorch -------------------------------------------------------------------------------- */
/* torch.save zip files: tensors found anywhere in nested dicts/lists get dotted names
 * ("model.ups.0.weight", "optimizer.state.0.exp_avg"); int/float/bool/str/None leaves become
 * values under the same kind of names. Storages float32/float64/float16/bfloat16/int64 are used in
 * place when stored uncompressed and aligned; int32/int16/int8/uint8/bool are widened to int64.
 * Tensors sharing a storage share it here too. The legacy non-zip format is refused by name. */
fsvc_tensor_dict *fsvc_torch_load(const char *path);
fsvc_tensor_dict *fsvc_torch_load_memory(const void *data, size_t size, const char *name);

/* Either format, by content: a zip is a torch file, anything else is tried as safetensors. */
fsvc_tensor_dict *fsvc_checkpoint_load(const char *path);

#endif
