/* Lua bindings of audio files (core/include/fsvc/audio.h): the table fsvc.audio.
 *
 *   local x, sr = fsvc.audio.load(path, {mono=false, sr=nil})
 *       float32 [L] when the file is mono or mono=true, else [C, L]; with sr the signal is
 *       resampled (libsoxr) to that rate and sr is returned as given.
 *   fsvc.audio.save(path, x, sr, {format="wav"|"flac" (default: from the extension),
 *                                  subtype="pcm16"|"pcm24"|"float" (default pcm16)})
 *       x is [L] or [C, L], float32 or float64 (a CUDA tensor is copied to the host); the write is
 *       atomic.
 *   fsvc.audio.info(path) -> {frames=, channels=, sample_rate=, format=, subtype=, duration=}
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/audio.h"
#include "fsvc/device.h"
#include "fsvc_lua.h"

/* Raises the C API's message, which already names the function and the file. */
static int raise_api(lua_State *L, const char *op, const char *path, const char *err) {
  if (!err[0]) return fsvc_lua_raisef(L, "%s: %s: failed", op, path);
  if (strncmp(err, op, strlen(op)) == 0) return fsvc_lua_raisef(L, "%s", err);
  return fsvc_lua_raisef(L, "%s: %s", op, err);
}

static const char *check_path(lua_State *L, const char *op) {
  if (lua_type(L, 1) != LUA_TSTRING)
    fsvc_lua_raisef(L, "%s: argument #1 (path) must be a string, got %s", op, luaL_typename(L, 1));
  const char *p = lua_tostring(L, 1);
  if (!p[0]) fsvc_lua_raisef(L, "%s: path is empty", op);
  return p;
}

static int l_load(lua_State *L) {
  const char *op = "audio.load";
  const char *path = check_path(L, op);
  static const char *const keys[] = {"mono", "sr", NULL};
  fsvc_lua_check_option_keys(L, 2, op, keys);
  int mono = fsvc_lua_opt_field_bool(L, 2, "mono", 0, op);
  double want = fsvc_lua_opt_field_number(L, 2, "sr", 0, op);
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "sr");
    int given = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (given && (!(want > 0) || !isfinite(want) || want > 1e7))
      fsvc_lua_raisef(L, "%s: %s: option sr must be a positive sample rate, got %g", op, path,
                      want);
  }
  float *buf = NULL;
  int64_t frames = 0;
  int channels = 0, rate = 0;
  char err[512] = "";
  if (fsvc_audio_load(path, &buf, &frames, &channels, &rate, err, sizeof err))
    return raise_api(L, op, path, err);
  if (mono && channels > 1) {
    fsvc_audio_mix_to_mono(buf, frames, channels, buf);
    channels = 1;
  }
  int64_t out_frames = frames;
  float *out = buf;
  if (want > 0 && want != (double)rate) {
    out_frames = fsvc_resample_output_length(frames, rate, want);
    out = out_frames > 0 ? malloc(sizeof(float) * (size_t)(out_frames * channels)) : NULL;
    int rc = out ? 0 : -1;
    if (!out)
      snprintf(err, sizeof err, "%lld samples at %d Hz give no samples at %g Hz", (long long)frames,
               rate, want);
    for (int c = 0; c < channels && rc == 0; c++)
      rc = fsvc_resample(buf + (size_t)c * (size_t)frames, frames, rate, want,
                         out + (size_t)c * (size_t)out_frames, err, sizeof err);
    free(buf);
    if (rc) {
      free(out);
      return fsvc_lua_raisef(L, "%s: %s: %s", op, path, err);
    }
  }
  int64_t shape[2] = {channels, out_frames};
  fsvc_tensor *t = channels == 1 ? fsvc_from_buffer(1, shape + 1, FSVC_FLOAT32, out, FSVC_FLOAT32)
                                 : fsvc_from_buffer(2, shape, FSVC_FLOAT32, out, FSVC_FLOAT32);
  free(out);
  fsvc_lua_push_tensor(L, t);
  if (want > 0) lua_pushnumber(L, want);
  else lua_pushinteger(L, rate);
  if (want > 0 && want == floor(want)) {
    lua_pop(L, 1);
    lua_pushinteger(L, (lua_Integer)want);
  }
  return 2;
}

static int l_save(lua_State *L) {
  const char *op = "audio.save";
  const char *path = check_path(L, op);
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 2, op, "signal");
  if (fsvc_tensor_is_cuda(x)) { /* written from a host copy; the stack owns it (errors below) */
    fsvc_tensor *host = fsvc_to_device_raw(x, fsvc_cpu());
    if (!host) return fsvc_lua_error(L);
    fsvc_lua_push_tensor(L, host);
    lua_replace(L, 2);
    x = host;
  }
  double sr = fsvc_lua_check_number(L, 3, op, "sample_rate");
  if (!(sr >= 1) || sr != floor(sr) || sr > 1e7)
    fsvc_lua_raisef(L, "%s: %s: sample rate must be a positive integer, got %g", op, path, sr);
  static const char *const keys[] = {"format", "subtype", NULL};
  fsvc_lua_check_option_keys(L, 4, op, keys);
  const char *format = fsvc_lua_opt_field_string(L, 4, "format", NULL, op);
  const char *subtype = fsvc_lua_opt_field_string(L, 4, "subtype", "pcm16", op);
  fsvc_audio_sample_format sf;
  if (!strcmp(subtype, "pcm16")) sf = FSVC_AUDIO_PCM16;
  else if (!strcmp(subtype, "pcm24")) sf = FSVC_AUDIO_PCM24;
  else if (!strcmp(subtype, "float")) sf = FSVC_AUDIO_FLOAT32;
  else return fsvc_lua_raisef(L, "%s: %s: subtype must be 'pcm16', 'pcm24' or 'float', got '%s'", op, path, subtype);
  if (format && strcmp(format, "wav") && strcmp(format, "flac"))
    fsvc_lua_raisef(L, "%s: %s: format must be 'wav' or 'flac', got '%s'", op, path, format);
  char sb[64];
  if (x->dtype != FSVC_FLOAT32 && x->dtype != FSVC_FLOAT64)
    fsvc_lua_raisef(L, "%s: %s: signal must be float32 or float64, got %s", op, path, fsvc_dtype_name(x->dtype));
  if ((x->ndim != 1 && x->ndim != 2) || fsvc_numel(x) < 1)
    fsvc_lua_raisef(L, "%s: %s: signal must be a non-empty [L] or [C, L], got %s", op, path,
                    fsvc_shape_str(x, sb, sizeof sb));
  int channels = x->ndim == 2 ? (int)x->shape[0] : 1;
  int64_t frames = x->shape[x->ndim - 1];
  if (channels > 256) fsvc_lua_raisef(L, "%s: %s: %d channels (is the signal [C, L]?)", op, path,
                                      channels);
  if (fsvc_has_nonfinite(x)) fsvc_lua_raisef(L, "%s: %s: signal has a NaN or Inf sample", op, path);
  fsvc_tensor *xf = fsvc_to_dtype_raw(x, FSVC_FLOAT32); /* contiguous planar [C, L] */
  if (!xf) return fsvc_lua_error(L);
  char err[512] = "";
  int rc = fsvc_audio_save(path, fsvc_data(xf), frames, channels, (int)sr, format, sf, err, sizeof err);
  fsvc_tensor_release(xf);
  if (rc) return raise_api(L, op, path, err);
  return 0;
}

static int l_info(lua_State *L) {
  const char *op = "audio.info";
  const char *path = check_path(L, op);
  fsvc_audio_info info;
  char err[512] = "";
  if (fsvc_audio_info_read(path, &info, err, sizeof err))
    return raise_api(L, op, path, err);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, info.frames);
  lua_setfield(L, -2, "frames");
  lua_pushinteger(L, info.channels);
  lua_setfield(L, -2, "channels");
  lua_pushinteger(L, info.sample_rate);
  lua_setfield(L, -2, "sample_rate");
  lua_pushstring(L, info.format);
  lua_setfield(L, -2, "format");
  lua_pushstring(L, info.subtype);
  lua_setfield(L, -2, "subtype");
  lua_pushnumber(L, info.duration_s);
  lua_setfield(L, -2, "duration");
  return 1;
}

void fsvc_bind_audio(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"load", l_load}, {"save", l_save}, {"info", l_info}, {NULL, NULL}};
  lua_getfield(L, LUA_REGISTRYINDEX, "fsvc.module");
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_setfield(L, -2, "audio");
  lua_pop(L, 1);
}
