/* Lua bindings of the heavy ops (core/include/fsvc/ops_nn.h), plus thread count and a wall clock.
 *
 *   fsvc.matmul(a, b)            a:matmul(b)      numpy.matmul semantics
 *   fsvc.bmm(a, b)               [B,n,k] x [B,k,m]
 *   fsvc.linear(x, w, b?)        x [..., in], w [out, in], b [out] -> x w^T + b
 *   x:conv1d(w, b?, {stride=1, padding=0, dilation=1, groups=1})
 *   x:conv_transpose1d(w, b?, {stride=1, padding=0, output_padding=0, groups=1, dilation=1})
 *       b may be nil, or left out with the options table in its place: x:conv1d(w, {padding=1})
 *   x:avg_pool1d(kernel, {stride=kernel, padding=0})     count_include_pad as PyTorch's default
 *   x:max_pool1d(kernel, {stride=kernel, padding=0})
 *   x:interpolate{size=N | scale_factor=f, mode="linear"|"nearest", align_corners=false}
 *       exactly one of size / scale_factor; with scale_factor the output length is
 *       floor(T * f) and the coordinates use 1/f, as F.interpolate does (recompute_scale_factor
 *       unset); align_corners only applies to mode "linear" (default mode: "nearest", as PyTorch)
 *   fsvc.set_num_threads(n), fsvc.get_num_threads()   OpenMP and OpenBLAS threads
 *   fsvc.time()                  monotonic wall clock in seconds (for benchmarks; os.clock is
 *                                CPU time summed over threads)
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "fsvc_lua.h"

static int l_matmul(lua_State *L) {
  fsvc_tensor *a = fsvc_lua_check_tensor(L, 1, "matmul", "a");
  fsvc_tensor *b = fsvc_lua_check_tensor(L, 2, "matmul", "b");
  return fsvc_lua_push_tensor(L, fsvc_matmul(a, b));
}

static int l_bmm(lua_State *L) {
  fsvc_tensor *a = fsvc_lua_check_tensor(L, 1, "bmm", "a");
  fsvc_tensor *b = fsvc_lua_check_tensor(L, 2, "bmm", "b");
  return fsvc_lua_push_tensor(L, fsvc_bmm(a, b));
}

static int l_linear(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "linear", "input");
  fsvc_tensor *w = fsvc_lua_check_tensor(L, 2, "linear", "weight");
  fsvc_tensor *b = fsvc_lua_opt_tensor(L, 3, "linear", "bias");
  return fsvc_lua_push_tensor(L, fsvc_linear(x, w, b));
}

/* (x, w, b?, opts?) with opts possibly in b's place; returns the options' stack index or 0. */
static int conv_args(lua_State *L, const char *op, fsvc_tensor **x, fsvc_tensor **w,
                     fsvc_tensor **b) {
  *x = fsvc_lua_check_tensor(L, 1, op, "input");
  *w = fsvc_lua_check_tensor(L, 2, op, "weight");
  if (lua_istable(L, 3) && !fsvc_lua_is_tensor(L, 3)) {
    *b = NULL;
    if (!lua_isnoneornil(L, 4)) luaL_error(L, "%s: options table must be the last argument", op);
    return 3;
  }
  *b = fsvc_lua_opt_tensor(L, 3, op, "bias");
  if (!lua_isnoneornil(L, 4) && !lua_istable(L, 4))
    luaL_error(L, "%s: argument #4 (options) must be a table, got %s", op, luaL_typename(L, 4));
  return lua_isnoneornil(L, 4) ? 0 : 4;
}

static int l_conv1d(lua_State *L) {
  fsvc_tensor *x, *w, *b;
  int o = conv_args(L, "conv1d", &x, &w, &b);
  static const char *const keys[] = {"stride", "padding", "dilation", "groups", NULL};
  if (o) fsvc_lua_check_option_keys(L, o, "conv1d", keys);
  fsvc_conv1d_params p;
  p.stride = fsvc_lua_opt_field_int(L, o ? o : 4, "stride", 1, "conv1d");
  p.padding = fsvc_lua_opt_field_int(L, o ? o : 4, "padding", 0, "conv1d");
  p.dilation = fsvc_lua_opt_field_int(L, o ? o : 4, "dilation", 1, "conv1d");
  p.groups = fsvc_lua_opt_field_int(L, o ? o : 4, "groups", 1, "conv1d");
  /* the core reads 0 as "default", so explicit zeros must be rejected here */
  if (p.stride < 1 || p.dilation < 1 || p.groups < 1)
    return luaL_error(L, "conv1d: stride, dilation and groups must be >= 1 (got %d, %d, %d)",
                      (int)p.stride, (int)p.dilation, (int)p.groups);
  return fsvc_lua_push_tensor(L, fsvc_conv1d(x, w, b, &p));
}

static int l_conv_transpose1d(lua_State *L) {
  fsvc_tensor *x, *w, *b;
  const char *op = "conv_transpose1d";
  int o = conv_args(L, op, &x, &w, &b);
  static const char *const keys[] = {"stride", "padding", "output_padding", "dilation", "groups",
                                     NULL};
  if (o) fsvc_lua_check_option_keys(L, o, op, keys);
  int t = o ? o : 4;
  fsvc_conv1d_params p;
  p.stride = fsvc_lua_opt_field_int(L, t, "stride", 1, op);
  p.padding = fsvc_lua_opt_field_int(L, t, "padding", 0, op);
  p.dilation = fsvc_lua_opt_field_int(L, t, "dilation", 1, op);
  p.groups = fsvc_lua_opt_field_int(L, t, "groups", 1, op);
  int64_t opad = fsvc_lua_opt_field_int(L, t, "output_padding", 0, op);
  if (p.stride < 1 || p.dilation < 1 || p.groups < 1)
    return luaL_error(L, "%s: stride, dilation and groups must be >= 1 (got %d, %d, %d)", op,
                      (int)p.stride, (int)p.dilation, (int)p.groups);
  return fsvc_lua_push_tensor(L, fsvc_conv_transpose1d(x, w, b, &p, opad));
}

static int pool(lua_State *L, const char *op, int is_max) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  int64_t k = fsvc_lua_check_int(L, 2, op, "kernel_size");
  if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
    return luaL_error(L, "%s: argument #3 (options) must be a table, got %s", op, luaL_typename(L, 3));
  static const char *const keys[] = {"stride", "padding", NULL};
  fsvc_lua_check_option_keys(L, 3, op, keys); /* nil or a table, checked above */
  int64_t s = fsvc_lua_opt_field_int(L, 3, "stride", k, op);
  int64_t p = fsvc_lua_opt_field_int(L, 3, "padding", 0, op);
  if (s < 1) return luaL_error(L, "%s: stride must be >= 1, got %d", op, (int)s);
  return fsvc_lua_push_tensor(L, is_max ? fsvc_max_pool1d(x, k, s, p) : fsvc_avg_pool1d(x, k, s, p));
}
static int l_avg_pool1d(lua_State *L) { return pool(L, "avg_pool1d", 0); }
static int l_max_pool1d(lua_State *L) { return pool(L, "max_pool1d", 1); }

static int l_interpolate(lua_State *L) {
  const char *op = "interpolate";
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  if (!lua_istable(L, 2))
    return luaL_error(L, "%s: argument #2 must be an options table {size=N} or {scale_factor=f}",
                      op);
  static const char *const keys[] = {"size", "scale_factor", "mode", "align_corners", NULL};
  fsvc_lua_check_option_keys(L, 2, op, keys);
  lua_getfield(L, 2, "size");
  int has_size = !lua_isnil(L, -1);
  lua_getfield(L, 2, "scale_factor");
  int has_scale = !lua_isnil(L, -1);
  lua_pop(L, 2);
  if (has_size == has_scale)
    return luaL_error(L, "%s: give exactly one of size and scale_factor", op);
  const char *mode = fsvc_lua_opt_field_string(L, 2, "mode", "nearest", op);
  fsvc_interp_mode m;
  if (strcmp(mode, "linear") == 0) m = FSVC_INTERP_LINEAR;
  else if (strcmp(mode, "nearest") == 0) m = FSVC_INTERP_NEAREST;
  else return luaL_error(L, "%s: mode must be \"linear\" or \"nearest\", got \"%s\"", op, mode);
  lua_getfield(L, 2, "align_corners");
  int has_align = !lua_isnil(L, -1);
  lua_pop(L, 1);
  int align = fsvc_lua_opt_field_bool(L, 2, "align_corners", 0, op);
  if (has_align && m == FSVC_INTERP_NEAREST)
    return luaL_error(L, "%s: align_corners only applies to mode \"linear\"", op);
  if (x->ndim < 1) return luaL_error(L, "%s: input must have at least one dim", op);
  int64_t in = x->shape[x->ndim - 1], size;
  double scale = 0;
  if (has_size) {
    size = fsvc_lua_opt_field_int(L, 2, "size", 0, op);
  } else {
    scale = fsvc_lua_opt_field_number(L, 2, "scale_factor", 0, op);
    if (!(scale > 0) || isinf(scale))
      return luaL_error(L, "%s: scale_factor must be a positive finite number, got %f", op, scale);
    double s = floor((double)in * scale);
    if (s < 1 || s > 9.0e15)
      return luaL_error(L, "%s: scale_factor %g gives output length %.0f for input length %d", op,
                        scale, s, (int)in);
    size = (int64_t)s;
  }
  return fsvc_lua_push_tensor(L, fsvc_interpolate(x, size, scale, m, align));
}

static int l_set_num_threads(lua_State *L) {
  int64_t n = fsvc_lua_check_int(L, 1, "set_num_threads", "n");
  if (n < 1 || n > 1024) return luaL_error(L, "set_num_threads: n must be in 1..1024, got %d", (int)n);
  fsvc_set_num_threads((int)n);
  return 0;
}

static int l_get_num_threads(lua_State *L) {
  lua_pushinteger(L, fsvc_get_num_threads());
  return 1;
}

static int l_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
  return 1;
}

void fsvc_bind_nn(lua_State *L) {
  static const luaL_Reg ops[] = {
      {"matmul", l_matmul},         {"bmm", l_bmm},
      {"linear", l_linear},         {"conv1d", l_conv1d},
      {"conv_transpose1d", l_conv_transpose1d},
      {"avg_pool1d", l_avg_pool1d}, {"max_pool1d", l_max_pool1d},
      {"interpolate", l_interpolate}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"set_num_threads", l_set_num_threads},
                                   {"get_num_threads", l_get_num_threads},
                                   {"time", l_time},
                                   {NULL, NULL}};
  fsvc_lua_register(L, ops, FSVC_LUA_METHOD_AND_FUNCTION);
  fsvc_lua_register(L, funcs, FSVC_LUA_FUNCTION_ONLY);
}
