/* libFuzzer harness for the checkpoint readers: every input is given both to the safetensors
 * parser and to the torch.save (zip + pickle) loader, as an in-memory file. Besides ASan/UBSan
 * crashes it traps on broken contracts: a success must give tensors whose every element can be
 * read (views inside their storage) and finite-length names; a failure must give a NULL dict and a
 * non-empty one-line message naming the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fsvc/checkpoint.h"
#include "fsvc/error.h"

static void check_result(fsvc_tensor_dict *d, const char *name) {
  if (!d) {
    const char *e = fsvc_last_error();
    if (!e || !*e || strchr(e, '\n') || !strstr(e, name)) __builtin_trap();
    return;
  }
  for (int64_t i = 0; i < fsvc_tensor_dict_count(d); i++) {
    const fsvc_tensor *t = fsvc_tensor_dict_at(d, i);
    const char *n = fsvc_tensor_dict_name(d, i);
    if (!t || !n || !t->storage || t->ndim < 0 || t->ndim > FSVC_MAX_DIMS) __builtin_trap();
    if (fsvc_tensor_dict_get(d, n) == NULL) __builtin_trap();
    int64_t numel = fsvc_numel(t);
    volatile double sum = 0;
    /* first and last elements always; all of them when small */
    for (int64_t k = 0; k < numel; k++) {
      if (numel > 4096 && k > 8 && k < numel - 8) k = numel - 8;
      sum += fsvc_get_flat(t, k);
    }
    (void)sum;
  }
  for (int64_t i = 0; i < fsvc_tensor_dict_value_count(d); i++) {
    const fsvc_value *v = fsvc_tensor_dict_value_at(d, i);
    if (!v || !fsvc_tensor_dict_value_key(d, i)) __builtin_trap();
    if (v->kind == FSVC_VALUE_STRING && (!v->s || strlen(v->s) > (size_t)-2)) __builtin_trap();
  }
  fsvc_tensor_dict_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_result(fsvc_safetensors_load_memory(data, size, "fuzz-input"), "fuzz-input");
  check_result(fsvc_torch_load_memory(data, size, "fuzz-input"), "fuzz-input");
  return 0;
}
