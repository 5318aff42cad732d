/* Checkpoints from Lua:
 *   fsvc.load_safetensors(path)                 -> {name = tensor, ...}, {key = "value", ...}
 *   fsvc.save_safetensors(path, tensors, meta?) -- atomic; meta values are strings (numbers ok);
 *                                                  CUDA tensors are copied to the host first
 *   fsvc.load_torch(path)                       -> {name = tensor, ...}, {name = scalar, ...}
 *   fsvc.load_checkpoint(path)                  -> either of the above, chosen by content
 * Names of nested torch objects are dotted ("model.ups.0.weight"). None values are left out. */
#include <string.h>

#include "fsvc/checkpoint.h"
#include "fsvc/device.h"
#include "fsvc_lua.h"

#define DICT_BOX_MT "fsvc.checkpoint_dict"

/* The dict lives in a userdata while its contents are pushed, so a Lua error half-way (out of
 * memory) still frees it. */
typedef struct {
  fsvc_tensor_dict *d;
} dict_box;

static int box_gc(lua_State *L) {
  dict_box *b = luaL_checkudata(L, 1, DICT_BOX_MT);
  fsvc_tensor_dict_free(b->d);
  b->d = NULL;
  return 0;
}

static dict_box *new_box(lua_State *L) {
  dict_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->d = NULL;
  if (luaL_newmetatable(L, DICT_BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

static const char *check_path(lua_State *L, const char *op) {
  if (lua_type(L, 1) != LUA_TSTRING)
    luaL_error(L, "%s: argument #1 (path) must be a string, got %s", op, luaL_typename(L, 1));
  const char *path = lua_tostring(L, 1);
  if (!*path) luaL_error(L, "%s: argument #1 (path) is empty", op);
  return path;
}

/* Pushes the tensors table and the values table of the dict in box (which is at stack index
 * box_idx), then frees the dict. */
static int push_dict(lua_State *L, dict_box *b) {
  fsvc_tensor_dict *d = b->d;
  int64_t n = fsvc_tensor_dict_count(d), nv = fsvc_tensor_dict_value_count(d);
  lua_createtable(L, 0, n > 1000000 ? 1000000 : (int)n);
  for (int64_t i = 0; i < n; i++) {
    fsvc_lua_push_tensor(L, fsvc_tensor_retain(fsvc_tensor_dict_at(d, i)));
    lua_setfield(L, -2, fsvc_tensor_dict_name(d, i));
  }
  lua_createtable(L, 0, nv > 1000000 ? 1000000 : (int)nv);
  for (int64_t i = 0; i < nv; i++) {
    const fsvc_value *v = fsvc_tensor_dict_value_at(d, i);
    switch (v->kind) {
      case FSVC_VALUE_BOOL: lua_pushboolean(L, (int)v->i); break;
      case FSVC_VALUE_INT: lua_pushinteger(L, (lua_Integer)v->i); break;
      case FSVC_VALUE_FLOAT: lua_pushnumber(L, v->f); break;
      case FSVC_VALUE_STRING: lua_pushstring(L, v->s); break;
      default: continue; /* None */
    }
    lua_setfield(L, -2, fsvc_tensor_dict_value_key(d, i));
  }
  fsvc_tensor_dict_free(d);
  b->d = NULL;
  return 2;
}

static int load_with(lua_State *L, const char *op, fsvc_tensor_dict *(*loader)(const char *)) {
  const char *path = check_path(L, op);
  dict_box *b = new_box(L);
  b->d = loader(path);
  if (!b->d) return fsvc_lua_error(L);
  return push_dict(L, b);
}

static int l_load_safetensors(lua_State *L) {
  return load_with(L, "load_safetensors", fsvc_safetensors_load);
}
static int l_load_torch(lua_State *L) { return load_with(L, "load_torch", fsvc_torch_load); }
static int l_load_checkpoint(lua_State *L) {
  return load_with(L, "load_checkpoint", fsvc_checkpoint_load);
}

static int l_save_safetensors(lua_State *L) {
  const char *op = "save_safetensors";
  const char *path = check_path(L, op);
  luaL_argexpected(L, lua_istable(L, 2), 2, "table of tensors");
  if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
    return luaL_error(L, "%s: argument #3 (metadata) must be a table of strings, got %s", op,
                      luaL_typename(L, 3));
  dict_box *b = new_box(L);
  b->d = fsvc_tensor_dict_new();
  if (!b->d) return fsvc_lua_error(L);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_error(L, "%s: %s: tensor names must be strings, got a %s key", op, path,
                        luaL_typename(L, -2));
    const char *name = lua_tostring(L, -2);
    if (!fsvc_lua_is_tensor(L, -1))
      return luaL_error(L, "%s: %s: '%s' is a %s, not a tensor", op, path, name,
                        luaL_typename(L, -1));
    fsvc_tensor *t = fsvc_lua_check_tensor(L, lua_gettop(L), op, name);
    /* a CUDA tensor is saved from a host copy, as torch.save does (the writer reads host memory) */
    fsvc_tensor *host = fsvc_tensor_is_cuda(t) ? fsvc_to_device_raw(t, fsvc_cpu()) : fsvc_tensor_retain(t);
    if (!host) return fsvc_lua_error(L);
    int rc = fsvc_tensor_dict_set(b->d, name, host);
    fsvc_tensor_release(host); /* the dict holds its own reference */
    if (rc) return fsvc_lua_error(L);
    lua_pop(L, 1);
  }
  /* saving nothing is almost always a bug (a wrong table), and never worth clobbering a file */
  if (fsvc_tensor_dict_count(b->d) == 0)
    return luaL_error(L, "%s: %s: no tensors to save (the table is empty)", op, path);
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (lua_type(L, -2) != LUA_TSTRING ||
          (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
        return luaL_error(L, "%s: %s: metadata must map strings to strings (got %s = %s)", op,
                          path, luaL_typename(L, -2), luaL_typename(L, -1));
      lua_pushvalue(L, -1); /* tostring on a copy, so lua_next sees the original key */
      const char *v = lua_tostring(L, -1);
      if (fsvc_tensor_dict_set_meta(b->d, lua_tostring(L, -3), v)) return fsvc_lua_error(L);
      lua_pop(L, 2);
    }
  }
  if (fsvc_safetensors_save(path, b->d)) return fsvc_lua_error(L);
  fsvc_tensor_dict_free(b->d);
  b->d = NULL;
  return 0;
}

void fsvc_bind_checkpoint(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"load_safetensors", l_load_safetensors},
      {"save_safetensors", l_save_safetensors},
      {"load_torch", l_load_torch},
      {"load_checkpoint", l_load_checkpoint},
      {NULL, NULL},
  };
  fsvc_lua_register(L, funcs, FSVC_LUA_FUNCTION_ONLY);
}
