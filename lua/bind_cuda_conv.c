/* fsvc.cuda's convolution settings: which implementation computes conv1d / conv_transpose1d on
 * CUDA, and what the per-shape autotuner chose (gpu/conv.h, docs/cuda.md "Convolutions").
 *
 *   fsvc.cuda.set_conv_backend("auto" | "im2col" | "cudnn")   (clears the recorded choices)
 *   fsvc.cuda.get_conv_backend() -> name
 *   fsvc.cuda.conv_choices() -> { {pass=, dtype=, tf32=, batch=, in_channels=, out_channels=,
 *       length=, out_length=, kernel=, stride=, padding=, dilation=, groups=, backend=,
 *       cudnn_algo=, im2col_ms=, cudnn_ms=, note=}, ... }
 *   fsvc.cuda.cudnn_is_available()  cudnn_version()  cudnn_unavailable_reason()
 *
 * Called by fsvc_bind_cuda with the fsvc.cuda table on the stack top. */
#include <string.h>

#include "fsvc_lua.h"

#ifdef FSVC_HAVE_CUDA
#include "../gpu/conv.h"

static const char *const backend_names[] = {"auto", "im2col", "cudnn", NULL};

static int l_set_conv_backend(lua_State *L) {
  int b = luaL_checkoption(L, 1, NULL, backend_names);
  fsvc_gpu_set_conv_backend((fsvc_gpu_conv_backend)b);
  return 0;
}
static int l_get_conv_backend(lua_State *L) {
  lua_pushstring(L, fsvc_gpu_conv_backend_name(fsvc_gpu_get_conv_backend()));
  return 1;
}

static void set_int(lua_State *L, const char *k, int64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}
static void set_ms(lua_State *L, const char *k, double v) {
  if (v < 0) return; /* not timed: the field stays nil */
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static int l_conv_choices(lua_State *L) {
  fsvc_gpu_conv_choice ch;
  lua_newtable(L);
  for (int i = 0; fsvc_gpu_conv_choice_get(i, &ch); i++) {
    lua_newtable(L);
    lua_pushstring(L, fsvc_gpu_conv_pass_name(ch.pass));
    lua_setfield(L, -2, "pass");
    lua_pushstring(L, fsvc_dtype_name(ch.dtype));
    lua_setfield(L, -2, "dtype");
    lua_pushboolean(L, ch.tf32);
    lua_setfield(L, -2, "tf32");
    set_int(L, "batch", ch.geom.B);
    set_int(L, "in_channels", ch.geom.cin);
    set_int(L, "out_channels", ch.geom.cout);
    set_int(L, "length", ch.geom.t);
    set_int(L, "out_length", ch.geom.tout);
    set_int(L, "kernel", ch.geom.k);
    set_int(L, "stride", ch.geom.s);
    set_int(L, "padding", ch.geom.p);
    set_int(L, "dilation", ch.geom.d);
    set_int(L, "groups", ch.geom.g);
    lua_pushstring(L, ch.use_cudnn ? "cudnn" : "im2col");
    lua_setfield(L, -2, "backend");
    if (ch.cudnn_algo >= 0) set_int(L, "cudnn_algo", ch.cudnn_algo);
    set_ms(L, "im2col_ms", ch.im2col_ms);
    set_ms(L, "cudnn_ms", ch.cudnn_ms);
    lua_pushstring(L, ch.note);
    lua_setfield(L, -2, "note");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_cudnn_is_available(lua_State *L) {
  lua_pushboolean(L, fsvc_cuda_available() && fsvc_gpu_cudnn_available());
  return 1;
}
static int l_cudnn_version(lua_State *L) {
  lua_pushinteger(L, fsvc_cuda_available() ? fsvc_gpu_cudnn_version() : 0);
  return 1;
}
static int l_cudnn_unavailable_reason(lua_State *L) {
  lua_pushstring(L, !fsvc_cuda_available() ? fsvc_cuda_unavailable_reason() : fsvc_gpu_cudnn_unavailable_reason());
  return 1;
}
#else
static const char *const backend_names[] = {"auto", "im2col", "cudnn", NULL};
static int l_set_conv_backend(lua_State *L) {
  luaL_checkoption(L, 1, NULL, backend_names); /* the argument is still checked */
  return 0;
}
static int l_get_conv_backend(lua_State *L) {
  lua_pushstring(L, "auto");
  return 1;
}
static int l_conv_choices(lua_State *L) {
  lua_newtable(L);
  return 1;
}
static int l_cudnn_is_available(lua_State *L) {
  lua_pushboolean(L, 0);
  return 1;
}
static int l_cudnn_version(lua_State *L) {
  lua_pushinteger(L, 0);
  return 1;
}
static int l_cudnn_unavailable_reason(lua_State *L) {
  lua_pushstring(L, "this build has no CUDA backend (rebuild with -DFSVC_CUDA=ON)");
  return 1;
}
#endif

void fsvc_bind_cuda_conv(lua_State *L) {
  static const luaL_Reg funcs[] = {{"set_conv_backend", l_set_conv_backend},
                                   {"get_conv_backend", l_get_conv_backend},
                                   {"conv_choices", l_conv_choices},
                                   {"cudnn_is_available", l_cudnn_is_available},
                                   {"cudnn_version", l_cudnn_version},
                                   {"cudnn_unavailable_reason", l_cudnn_unavailable_reason},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
