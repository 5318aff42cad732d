/* Lua bindings of mixed precision (core/include/fsvc/autocast.h, fsvc_amp_unscale_):
 *
 *   fsvc.set_autocast(enabled [, dtype])  sets this thread's autocast state; dtype "float16"
 *                                         (alias "half") or "bfloat16", nil keeps the current one;
 *                                         returns the previous enabled, dtype
 *   fsvc.autocast_enabled()               boolean
 *   fsvc.autocast_dtype()                 "float16" or "bfloat16"
 *   fsvc._autocast_enter(enabled, dtype, cache_enabled)
 *                                         opens a region (fsvc_autocast_enter) and returns a
 *                                         value whose __close ends it: fsvc.autocast holds it in
 *                                         a to-be-closed variable, so the region ends however
 *                                         fn leaves (return, error, coroutine.close)
 *   fsvc.autocast_stats()                 {casts =, cache_hits =, cached =, depth =} of this
 *                                         thread (fsvc_autocast_get_stats)
 *   fsvc.reset_autocast_stats()           zeroes casts and cache_hits
 *   fsvc.clear_autocast_cache()           drops the cached weight casts now
 *   fsvc._amp_unscale_and_check(grads, inv_scale)
 *                                         multiplies each tensor of the list in place by
 *                                         inv_scale; true when any element is NaN or Inf
 *
 * fsvc.autocast(opts, fn, ...) (lua/fsvc/init.lua) is the scoped form users call.
 */
#include <stdlib.h>

#include "fsvc/autocast.h"
#include "fsvc/ops_extra.h"
#include "fsvc_lua.h"

static int l_set_autocast(lua_State *L) {
  luaL_checkany(L, 1);
  int enabled = lua_toboolean(L, 1);
  fsvc_dtype dt = fsvc_lua_opt_dtype(L, 2, fsvc_autocast_dtype(), "set_autocast");
  if (!fsvc_dtype_is_16bit(dt))
    return luaL_error(L, "set_autocast: dtype must be float16 or bfloat16, got %s",
                      fsvc_dtype_name(dt));
  fsvc_autocast_state prev;
  if (fsvc_set_autocast(enabled, dt, &prev) != 0) return fsvc_lua_error(L);
  lua_pushboolean(L, prev.enabled);
  lua_pushstring(L, fsvc_dtype_name(prev.dtype));
  return 2;
}

static int l_autocast_enabled(lua_State *L) {
  lua_pushboolean(L, fsvc_autocast_enabled());
  return 1;
}

static int l_autocast_dtype(lua_State *L) {
  lua_pushstring(L, fsvc_dtype_name(fsvc_autocast_dtype()));
  return 1;
}

/* ---- regions -------------------------------------------------------------------------------- */
#define REGION_MT "fsvc.autocast_region"

typedef struct {
  fsvc_autocast_state prev;
  int open;
} region_ud;

static int l_autocast_enter(lua_State *L) {
  luaL_checkany(L, 1);
  int enabled = lua_toboolean(L, 1);
  fsvc_dtype dt = fsvc_lua_opt_dtype(L, 2, fsvc_autocast_dtype(), "autocast");
  if (!fsvc_dtype_is_16bit(dt))
    return luaL_error(L, "autocast: dtype must be float16 or bfloat16, got %s", fsvc_dtype_name(dt));
  int cache_enabled = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  /* the userdata exists before the region opens: nothing can raise between the two */
  region_ud *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->open = 0;
  luaL_setmetatable(L, REGION_MT);
  if (fsvc_autocast_enter(enabled, dt, cache_enabled, &r->prev) != 0) return fsvc_lua_error(L);
  r->open = 1;
  return 1;
}

static int l_region_close(lua_State *L) {
  region_ud *r = luaL_checkudata(L, 1, REGION_MT);
  if (r->open) {
    r->open = 0;
    fsvc_autocast_exit(r->prev);
  }
  return 0;
}

static int l_autocast_stats(lua_State *L) {
  fsvc_autocast_stats s = fsvc_autocast_get_stats();
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)s.casts);
  lua_setfield(L, -2, "casts");
  lua_pushinteger(L, (lua_Integer)s.cache_hits);
  lua_setfield(L, -2, "cache_hits");
  lua_pushinteger(L, s.cached);
  lua_setfield(L, -2, "cached");
  lua_pushinteger(L, s.depth);
  lua_setfield(L, -2, "depth");
  return 1;
}

static int l_reset_autocast_stats(lua_State *L) {
  (void)L;
  fsvc_autocast_reset_stats();
  return 0;
}

static int l_clear_autocast_cache(lua_State *L) {
  (void)L;
  fsvc_autocast_clear_cache();
  return 0;
}

static int l_amp_unscale_and_check(lua_State *L) {
  const char *op = "_amp_unscale_and_check";
  luaL_checktype(L, 1, LUA_TTABLE);
  double inv_scale = fsvc_lua_check_number(L, 2, op, "inv_scale");
  int n = (int)luaL_len(L, 1);
  /* the tensors stay referenced by the list on the stack while the C call runs */
  fsvc_tensor **grads = lua_newuserdatauv(L, sizeof *grads * (size_t)(n > 0 ? n : 1), 0);
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    if (!fsvc_lua_is_tensor(L, -1))
      return luaL_error(L, "%s: grads[%d] is a %s, expected a tensor", op, i + 1, luaL_typename(L, -1));
    grads[i] = fsvc_lua_check_tensor(L, -1, op, "grads");
    lua_pop(L, 1);
  }
  int found_inf = 0;
  if (fsvc_amp_unscale_(n, grads, inv_scale, &found_inf) != 0) return fsvc_lua_error(L);
  lua_pushboolean(L, found_inf);
  return 1;
}

void fsvc_bind_amp(lua_State *L) {
  static const luaL_Reg funcs[] = {{"set_autocast", l_set_autocast},
                                   {"autocast_enabled", l_autocast_enabled},
                                   {"autocast_dtype", l_autocast_dtype},
                                   {"_autocast_enter", l_autocast_enter},
                                   {"autocast_stats", l_autocast_stats},
                                   {"reset_autocast_stats", l_reset_autocast_stats},
                                   {"clear_autocast_cache", l_clear_autocast_cache},
                                   {"_amp_unscale_and_check", l_amp_unscale_and_check},
                                   {NULL, NULL}};
  fsvc_lua_register(L, funcs, FSVC_LUA_FUNCTION_ONLY);
  /* a region's __close ends it; no __gc: a region left open by a coroutine that is never resumed
   * nor closed cannot be ended out of order by the collector */
  luaL_newmetatable(L, REGION_MT);
  lua_pushcfunction(L, l_region_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}
