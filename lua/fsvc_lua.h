/* Shared helpers of the Lua bindings (lua/bind_*.c). Each area file defines
 *     void fsvc_bind_<area>(lua_State *L);
 * which registers its functions with fsvc_lua_register(), and lua/bindings.c calls them all.
 *
 * Conventions:
 *  - A registered function is both `fsvc.name(x, ...)` and the method `x:name(...)`, so its first
 *    argument is the tensor (pass FSVC_LUA_FUNCTION_ONLY for factory functions like zeros).
 *  - Dims and indices are 0-based as in PyTorch, negative from the end; shapes are Lua lists or
 *    varargs of integers.
 *  - Options go in a trailing table: x:conv1d(w, b, {stride=2, padding=1}).
 *  - Every argument is validated; a failure raises a Lua error "op: what is wrong" naming the op,
 *    the argument and the shapes. Core errors (NULL returns) are raised with fsvc_last_error().
 */
#ifndef FSVC_LUA_H
#define FSVC_LUA_H

#include <lauxlib.h>
#include <lua.h>

#include "fsvc/fsvc.h"

#define FSVC_TENSOR_MT "fsvc.Tensor"

enum { FSVC_LUA_METHOD_AND_FUNCTION = 0, FSVC_LUA_FUNCTION_ONLY = 1, FSVC_LUA_METHOD_ONLY = 2 };

/* Registers funcs (NULL-terminated) into the module table and/or the Tensor method table. */
void fsvc_lua_register(lua_State *L, const luaL_Reg *funcs, int where);

/* Argument checks: raise a Lua error "op: argument #i (name) ..." on failure. */
fsvc_tensor *fsvc_lua_check_tensor(lua_State *L, int idx, const char *op, const char *name);
fsvc_tensor *fsvc_lua_opt_tensor(lua_State *L, int idx, const char *op, const char *name);
/* Like check_tensor, but refuses a tensor on a GPU: for functions that read tensor memory on the
 * host (DSP, audio files, checkpoints) until they have device implementations. */
fsvc_tensor *fsvc_lua_check_cpu_tensor(lua_State *L, int idx, const char *op, const char *name);
int fsvc_lua_is_tensor(lua_State *L, int idx);
/* A tensor, or a Lua number turned into a 0-d tensor of dtype `like` (new reference either way:
 * release it when done). */
fsvc_tensor *fsvc_lua_check_tensor_or_scalar(lua_State *L, int idx, fsvc_dtype like,
                                             const char *op, const char *name);
int fsvc_lua_check_dim(lua_State *L, int idx, const fsvc_tensor *t, const char *op);
/* like check_dim but for insertion points (unsqueeze, stack): range -(ndim+1) .. ndim */
int fsvc_lua_check_insert_dim(lua_State *L, int idx, int ndim, const char *op);
int64_t fsvc_lua_check_int(lua_State *L, int idx, const char *op, const char *name);
int64_t fsvc_lua_opt_int(lua_State *L, int idx, int64_t def, const char *op, const char *name);
double fsvc_lua_check_number(lua_State *L, int idx, const char *op, const char *name);
/* A shape given as a Lua list at idx, or as integers from idx to the top of the stack. */
int fsvc_lua_check_shape(lua_State *L, int idx, int64_t *shape, const char *op);
/* A list of dims at idx (table or single integer; nil -> 0 dims = all). Returns n_dims. */
int fsvc_lua_check_dims(lua_State *L, int idx, const fsvc_tensor *t, int *dims, const char *op);
/* dtype from a string ("float32", ...) or nil -> def */
fsvc_dtype fsvc_lua_opt_dtype(lua_State *L, int idx, fsvc_dtype def, const char *op);
/* Option-table fields (idx is the table, may be nil/none): integer, number, boolean, string. */
int64_t fsvc_lua_opt_field_int(lua_State *L, int idx, const char *key, int64_t def, const char *op);
double fsvc_lua_opt_field_number(lua_State *L, int idx, const char *key, double def, const char *op);
int fsvc_lua_opt_field_bool(lua_State *L, int idx, const char *key, int def, const char *op);
const char *fsvc_lua_opt_field_string(lua_State *L, int idx, const char *key, const char *def,
                                      const char *op);
/* Raises "op: unknown option 'k'" for any key of the options table at idx that is not in the
 * NULL-terminated keys (and "op: options must be a table" for a non-table); nil/none is fine. */
void fsvc_lua_check_option_keys(lua_State *L, int idx, const char *op, const char *const *keys);
/* luaL_error with the full printf formats (%g, %lld) that lua_pushfstring lacks; never returns. */
int fsvc_lua_raisef(lua_State *L, const char *fmt, ...);

/* Pushes a tensor (taking over the caller's reference). When t is NULL it raises the core's
 * last error as a Lua error prefixed with nothing (the core message already names the op). */
int fsvc_lua_push_tensor(lua_State *L, fsvc_tensor *t);
/* Raises fsvc_last_error() as a Lua error. */
int fsvc_lua_error(lua_State *L);

/* Every area's registration function. */
void fsvc_bind_tensor(lua_State *L);
void fsvc_bind_elementwise(lua_State *L);
void fsvc_bind_reduce(lua_State *L);
void fsvc_bind_shape(lua_State *L);
void fsvc_bind_nn(lua_State *L);
void fsvc_bind_autograd(lua_State *L);
void fsvc_bind_audio(lua_State *L);
void fsvc_bind_dsp(lua_State *L);
void fsvc_bind_checkpoint(lua_State *L);
void fsvc_bind_extra(lua_State *L);
void fsvc_bind_cuda(lua_State *L);
void fsvc_bind_cuda_conv(lua_State *L); /* into the fsvc.cuda table on the stack top */
void fsvc_bind_amp(lua_State *L);

int luaopen_fsvc_core(lua_State *L);

#endif
