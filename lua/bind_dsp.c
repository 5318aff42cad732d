/* Lua bindings of the DSP (core/include/fsvc/dsp.h, f0.h, and resampling from audio.h): the table
 * fsvc.dsp. Reference: docs/dsp.md.
 *
 *   dsp.hann_window(n, {periodic=true, dtype="float32"})
 *   dsp.rfft(x)                                       [..., n] -> [..., n/2+1, 2], differentiable
 *   dsp.stft(x, {n_fft, hop_length=n_fft/4, win_length=n_fft, window=hann, center=true,
 *                pad_mode="reflect"|"constant"|"replicate", onesided=true})   -> [B, F, T, 2]
 *   dsp.istft(spec, {same options..., length})                                 -> [B, L]
 *   dsp.magnitude(spec, {power=1}) (or a number)     dsp.spectrogram(x, n_fft=1920, hop=480)
 *   dsp.mel_filterbank{sample_rate, n_fft | n_freqs, n_mels=128, f_min=0, f_max=sr/2,
 *                      mel_scale="htk"|"slaney", norm=nil|"slaney", dtype}      -> [n_freqs, n_mels]
 *   dsp.mel_spectrogram(x, {sample_rate=16000, n_fft=400, hop_length=win/2, win_length=n_fft,
 *                      n_mels=128, f_min, f_max, power=2, center, pad_mode, mel_scale, norm})
 *   dsp.log_mel_loss(fake, real)   dsp.multiscale_stft_loss(fake, real)   dsp.energy(x, {frame_size=480})
 *   dsp.oscillate_harmonics(f0, frame_size=480, sample_rate=24000, num_harmonics=0,
 *                           {min_frequency=10, return_phase=false})
 *   dsp.Oscillator{frame_size=480, sample_rate=24000, num_harmonics=0, min_frequency=10}
 *       :process(f0_chunk) :flush() :reset()
 *   dsp.StreamSTFT{n_fft, hop_length, win_length, window, center=false, pad_mode, onesided}
 *       :process(chunk) :flush() :reset()
 *   dsp.pitch_shift(f0, semitones)  dsp.freq2id(f0)  dsp.id2freq(ids, {dtype})  dsp.interpolate_f0(f0, n)
 * rfft, stft, istft, magnitude, spectrogram, mel_spectrogram, the two losses, energy,
 * oscillate_harmonics and the four pitch helpers take CUDA tensors too; the others (the
 * streaming objects' process, resample, harvest, dio) raise for them ("... runs on the CPU only
 * for now").
 *   dsp.resample(x, from, to)       [..., L] -> [..., L'] (libsoxr, not differentiable)
 *   dsp.harvest(x, sr, {f0_floor=71, f0_ceil=800, frame_period=5})  -> float64 [frames]
 *   dsp.dio(x, sr, {f0_floor, f0_ceil, frame_period, allowed_range=0.1, channels_in_octave=2, speed=1})
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsvc/audio.h"
#include "fsvc/dsp.h"
#include "fsvc/f0.h"
#include "fsvc_lua.h"

#define OSC_MT "fsvc.dsp.Oscillator"
#define SSTFT_MT "fsvc.dsp.StreamSTFT"

static fsvc_stft_pad check_pad_mode(lua_State *L, int idx, const char *op) {
  const char *m = fsvc_lua_opt_field_string(L, idx, "pad_mode", "reflect", op);
  if (!strcmp(m, "reflect")) return FSVC_STFT_PAD_REFLECT;
  if (!strcmp(m, "constant")) return FSVC_STFT_PAD_CONSTANT;
  if (!strcmp(m, "replicate")) return FSVC_STFT_PAD_REPLICATE;
  fsvc_lua_raisef(L, "%s: pad_mode must be 'reflect', 'constant' or 'replicate', got '%s'", op, m);
  return FSVC_STFT_PAD_REFLECT;
}

static fsvc_tensor *opt_field_tensor(lua_State *L, int idx, const char *key, const char *op) {
  if (lua_isnoneornil(L, idx)) return NULL;
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!fsvc_lua_is_tensor(L, -1))
    fsvc_lua_raisef(L, "%s: option '%s' must be a tensor, got %s", op, key, luaL_typename(L, -1));
  /* stft and istft read their window through a host copy; StreamSTFT runs on the CPU only */
  fsvc_tensor *t = strcmp(op, "stft") == 0 || strcmp(op, "istft") == 0
                       ? fsvc_lua_check_tensor(L, -1, op, key)
                       : fsvc_lua_check_cpu_tensor(L, -1, op, key);
  lua_pop(L, 1); /* still referenced by the options table */
  return t;
}

static const char *const stft_keys[] = {"n_fft", "hop_length", "win_length", "window", "center",
                                        "pad_mode", "onesided", "length", NULL};

/* STFT options from the table at idx; n_fft is required unless def_n_fft > 0. */
static void check_stft_options(lua_State *L, int idx, const char *op, fsvc_stft_options *o,
                               int def_center) {
  fsvc_lua_check_option_keys(L, idx, op, stft_keys);
  if (lua_isnoneornil(L, idx)) fsvc_lua_raisef(L, "%s: options table with n_fft is required", op);
  int64_t n = fsvc_lua_opt_field_int(L, idx, "n_fft", -1, op);
  if (n < 1) fsvc_lua_raisef(L, "%s: option 'n_fft' is required and must be >= 1", op);
  fsvc_stft_default_options(o, n);
  o->hop_length = fsvc_lua_opt_field_int(L, idx, "hop_length", n / 4 > 0 ? n / 4 : 1, op);
  o->win_length = fsvc_lua_opt_field_int(L, idx, "win_length", n, op);
  if (o->hop_length < 1) fsvc_lua_raisef(L, "%s: hop_length must be >= 1", op);
  if (o->win_length < 1) fsvc_lua_raisef(L, "%s: win_length must be >= 1", op);
  o->window = opt_field_tensor(L, idx, "window", op);
  o->center = fsvc_lua_opt_field_bool(L, idx, "center", def_center, op);
  o->pad_mode = check_pad_mode(L, idx, op);
  o->onesided = fsvc_lua_opt_field_bool(L, idx, "onesided", 1, op);
}

static int l_hann_window(lua_State *L) {
  int64_t n = fsvc_lua_check_int(L, 1, "hann_window", "n");
  static const char *const keys[] = {"periodic", "dtype", NULL};
  fsvc_lua_check_option_keys(L, 2, "hann_window", keys);
  int periodic = fsvc_lua_opt_field_bool(L, 2, "periodic", 1, "hann_window");
  fsvc_dtype dt = FSVC_FLOAT32;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "dtype");
    dt = fsvc_lua_opt_dtype(L, -1, FSVC_FLOAT32, "hann_window");
    lua_pop(L, 1);
  }
  return fsvc_lua_push_tensor(L, fsvc_hann_window(n, periodic, dt));
}

static int l_rfft(lua_State *L) {
  return fsvc_lua_push_tensor(L, fsvc_rfft(fsvc_lua_check_tensor(L, 1, "rfft", "input")));
}

static int l_stft(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "stft", "input");
  fsvc_stft_options o;
  check_stft_options(L, 2, "stft", &o, 1);
  return fsvc_lua_push_tensor(L, fsvc_stft(x, &o));
}

static int l_istft(lua_State *L) {
  fsvc_tensor *s = fsvc_lua_check_tensor(L, 1, "istft", "input");
  fsvc_stft_options o;
  check_stft_options(L, 2, "istft", &o, 1);
  int64_t length = fsvc_lua_opt_field_int(L, 2, "length", 0, "istft");
  if (length < 0) fsvc_lua_raisef(L, "istft: length must be >= 0");
  return fsvc_lua_push_tensor(L, fsvc_istft(s, &o, length));
}

static int l_magnitude(lua_State *L) {
  fsvc_tensor *s = fsvc_lua_check_tensor(L, 1, "magnitude", "input");
  double p = 1.0;
  if (lua_type(L, 2) == LUA_TNUMBER) p = lua_tonumber(L, 2);
  else {
    static const char *const keys[] = {"power", NULL};
    fsvc_lua_check_option_keys(L, 2, "magnitude", keys);
    p = fsvc_lua_opt_field_number(L, 2, "power", 1.0, "magnitude");
  }
  return fsvc_lua_push_tensor(L, fsvc_magnitude(s, p));
}

static int l_spectrogram(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "spectrogram", "input");
  int64_t n = fsvc_lua_opt_int(L, 2, 1920, "spectrogram", "n_fft");
  int64_t hop = fsvc_lua_opt_int(L, 3, 480, "spectrogram", "hop");
  return fsvc_lua_push_tensor(L, fsvc_spectrogram(x, n, hop));
}

static fsvc_mel_scale check_mel_scale(lua_State *L, int idx, const char *op) {
  const char *s = fsvc_lua_opt_field_string(L, idx, "mel_scale", "htk", op);
  if (!strcmp(s, "htk")) return FSVC_MEL_HTK;
  if (!strcmp(s, "slaney")) return FSVC_MEL_SLANEY;
  fsvc_lua_raisef(L, "%s: mel_scale must be 'htk' or 'slaney', got '%s'", op, s);
  return FSVC_MEL_HTK;
}

static int check_norm(lua_State *L, int idx, const char *op) {
  const char *s = fsvc_lua_opt_field_string(L, idx, "norm", NULL, op);
  if (!s) return 0;
  if (!strcmp(s, "slaney")) return 1;
  fsvc_lua_raisef(L, "%s: norm must be nil or 'slaney', got '%s'", op, s);
  return 0;
}

static int l_mel_filterbank(lua_State *L) {
  const char *op = "mel_filterbank";
  static const char *const keys[] = {"sample_rate", "n_fft", "n_freqs", "n_mels", "f_min",
                                     "f_max", "mel_scale", "norm", "dtype", NULL};
  if (!lua_istable(L, 1))
    fsvc_lua_raisef(L, "%s: expects an options table {sample_rate, n_fft, n_mels}", op);
  fsvc_lua_check_option_keys(L, 1, op, keys);
  double sr = fsvc_lua_opt_field_number(L, 1, "sample_rate", -1, op);
  if (!(sr > 0)) fsvc_lua_raisef(L, "%s: option 'sample_rate' is required and must be > 0", op);
  int64_t n_fft = fsvc_lua_opt_field_int(L, 1, "n_fft", 0, op);
  int64_t n_freqs = fsvc_lua_opt_field_int(L, 1, "n_freqs", n_fft > 0 ? n_fft / 2 + 1 : 0, op);
  if (n_freqs < 2) fsvc_lua_raisef(L, "%s: give n_fft >= 2 (or n_freqs >= 2)", op);
  int64_t n_mels = fsvc_lua_opt_field_int(L, 1, "n_mels", 128, op);
  double f_min = fsvc_lua_opt_field_number(L, 1, "f_min", 0, op);
  double f_max = fsvc_lua_opt_field_number(L, 1, "f_max", sr / 2, op);
  fsvc_mel_scale sc = check_mel_scale(L, 1, op);
  int norm = check_norm(L, 1, op);
  lua_getfield(L, 1, "dtype");
  fsvc_dtype dt = fsvc_lua_opt_dtype(L, -1, FSVC_FLOAT32, op);
  lua_pop(L, 1);
  return fsvc_lua_push_tensor(L, fsvc_mel_filterbank(n_freqs, f_min, f_max, n_mels, sr, norm, sc, dt));
}

static int l_mel_spectrogram(lua_State *L) {
  const char *op = "mel_spectrogram";
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, op, "input");
  static const char *const keys[] = {"sample_rate", "n_fft", "hop_length", "win_length", "n_mels",
                                     "f_min", "f_max", "power", "center", "pad_mode", "mel_scale",
                                     "norm", NULL};
  fsvc_lua_check_option_keys(L, 2, op, keys);
  fsvc_mel_options o;
  fsvc_mel_default_options(&o);
  o.sample_rate = fsvc_lua_opt_field_number(L, 2, "sample_rate", o.sample_rate, op);
  o.n_fft = fsvc_lua_opt_field_int(L, 2, "n_fft", o.n_fft, op);
  o.win_length = fsvc_lua_opt_field_int(L, 2, "win_length", o.n_fft, op);
  o.hop_length = fsvc_lua_opt_field_int(L, 2, "hop_length", o.win_length / 2, op);
  o.n_mels = fsvc_lua_opt_field_int(L, 2, "n_mels", o.n_mels, op);
  o.f_min = fsvc_lua_opt_field_number(L, 2, "f_min", 0, op);
  o.f_max = fsvc_lua_opt_field_number(L, 2, "f_max", o.sample_rate / 2, op);
  o.power = fsvc_lua_opt_field_number(L, 2, "power", 2.0, op);
  o.center = fsvc_lua_opt_field_bool(L, 2, "center", 1, op);
  o.pad_mode = check_pad_mode(L, 2, op);
  o.mel_scale = check_mel_scale(L, 2, op);
  o.slaney_norm = check_norm(L, 2, op);
  if (!(o.sample_rate > 0)) fsvc_lua_raisef(L, "%s: sample_rate must be > 0", op);
  if (o.hop_length < 1 || o.win_length < 1) fsvc_lua_raisef(L, "%s: hop_length and win_length must be >= 1", op);
  return fsvc_lua_push_tensor(L, fsvc_mel_spectrogram(x, &o));
}

static int l_log_mel_loss(lua_State *L) {
  fsvc_tensor *a = fsvc_lua_check_tensor(L, 1, "log_mel_loss", "fake");
  fsvc_tensor *b = fsvc_lua_check_tensor(L, 2, "log_mel_loss", "real");
  return fsvc_lua_push_tensor(L, fsvc_log_mel_loss(a, b));
}

static int l_multiscale_stft_loss(lua_State *L) {
  fsvc_tensor *a = fsvc_lua_check_tensor(L, 1, "multiscale_stft_loss", "fake");
  fsvc_tensor *b = fsvc_lua_check_tensor(L, 2, "multiscale_stft_loss", "real");
  return fsvc_lua_push_tensor(L, fsvc_multiscale_stft_loss(a, b));
}

static int l_energy(lua_State *L) {
  fsvc_tensor *x = fsvc_lua_check_tensor(L, 1, "energy", "input");
  int64_t fs = 480;
  if (lua_type(L, 2) == LUA_TNUMBER) fs = fsvc_lua_check_int(L, 2, "energy", "frame_size");
  else {
    static const char *const keys[] = {"frame_size", NULL};
    fsvc_lua_check_option_keys(L, 2, "energy", keys);
    fs = fsvc_lua_opt_field_int(L, 2, "frame_size", 480, "energy");
  }
  return fsvc_lua_push_tensor(L, fsvc_energy(x, fs));
}

/* ---- harmonic source -------------------------------------------------------------------------- */
static int l_oscillate_harmonics(lua_State *L) {
  const char *op = "oscillate_harmonics";
  fsvc_tensor *f0 = fsvc_lua_check_tensor(L, 1, op, "f0");
  int opt = 0;
  for (int i = 2; i <= 5 && i <= lua_gettop(L); i++)
    if (lua_istable(L, i)) {
      opt = i;
      break;
    }
  int last = opt ? opt - 1 : lua_gettop(L);
  int64_t fs = last >= 2 && !lua_isnil(L, 2) ? fsvc_lua_check_int(L, 2, op, "frame_size") : 480;
  double sr = last >= 3 && !lua_isnil(L, 3) ? fsvc_lua_check_number(L, 3, op, "sample_rate") : 24000;
  int64_t nh = last >= 4 && !lua_isnil(L, 4) ? fsvc_lua_check_int(L, 4, op, "num_harmonics") : 0;
  static const char *const keys[] = {"frame_size", "sample_rate", "num_harmonics",
                                     "min_frequency", "return_phase", NULL};
  double minf = 10.0;
  int want_phase = 0;
  if (opt) {
    fsvc_lua_check_option_keys(L, opt, op, keys);
    fs = fsvc_lua_opt_field_int(L, opt, "frame_size", fs, op);
    sr = fsvc_lua_opt_field_number(L, opt, "sample_rate", sr, op);
    nh = fsvc_lua_opt_field_int(L, opt, "num_harmonics", nh, op);
    minf = fsvc_lua_opt_field_number(L, opt, "min_frequency", minf, op);
    want_phase = fsvc_lua_opt_field_bool(L, opt, "return_phase", 0, op);
  }
  if (nh < 0 || nh > 4096) fsvc_lua_raisef(L, "%s: num_harmonics must be in 0..4096, got %d", op,
                                           (int)nh);
  fsvc_tensor *phase = NULL;
  fsvc_tensor *h = fsvc_oscillate_harmonics(f0, fs, sr, (int)nh, minf, want_phase ? &phase : NULL);
  fsvc_lua_push_tensor(L, h);
  if (!want_phase) return 1;
  fsvc_lua_push_tensor(L, phase);
  return 2;
}

typedef struct {
  fsvc_oscillator *o;
  fsvc_dtype last_dtype;
} osc_ud;

static osc_ud *check_osc(lua_State *L, const char *op) {
  osc_ud *u = luaL_testudata(L, 1, OSC_MT);
  if (!u) fsvc_lua_raisef(L, "%s: expects an Oscillator (use osc:%s(...))", op, op + 11);
  if (!u->o) fsvc_lua_raisef(L, "%s: the oscillator was closed", op);
  return u;
}

static int l_osc_new(lua_State *L) {
  const char *op = "Oscillator";
  static const char *const keys[] = {"frame_size", "sample_rate", "num_harmonics",
                                     "min_frequency", "batch", NULL};
  fsvc_lua_check_option_keys(L, 1, op, keys);
  int64_t fs = fsvc_lua_opt_field_int(L, 1, "frame_size", 480, op);
  double sr = fsvc_lua_opt_field_number(L, 1, "sample_rate", 24000, op);
  int64_t nh = fsvc_lua_opt_field_int(L, 1, "num_harmonics", 0, op);
  double minf = fsvc_lua_opt_field_number(L, 1, "min_frequency", 10, op);
  int64_t batch = fsvc_lua_opt_field_int(L, 1, "batch", 0, op);
  if (nh < 0 || nh > 4096) fsvc_lua_raisef(L, "%s: num_harmonics must be in 0..4096", op);
  osc_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->o = NULL;
  u->last_dtype = FSVC_FLOAT32;
  luaL_setmetatable(L, OSC_MT);
  u->o = fsvc_oscillator_new(batch, fs, sr, (int)nh, minf);
  if (!u->o) return fsvc_lua_error(L);
  return 1;
}

static int l_osc_process(lua_State *L) {
  osc_ud *u = check_osc(L, "Oscillator:process");
  fsvc_tensor *f0 = fsvc_lua_check_cpu_tensor(L, 2, "Oscillator:process", "f0");
  u->last_dtype = f0->dtype;
  return fsvc_lua_push_tensor(L, fsvc_oscillator_process(u->o, f0));
}

static int l_osc_flush(lua_State *L) {
  osc_ud *u = check_osc(L, "Oscillator:flush");
  return fsvc_lua_push_tensor(L, fsvc_oscillator_flush(u->o, u->last_dtype));
}

static int l_osc_reset(lua_State *L) {
  osc_ud *u = check_osc(L, "Oscillator:reset");
  fsvc_oscillator_reset(u->o);
  return 0;
}

static int l_osc_gc(lua_State *L) {
  osc_ud *u = luaL_checkudata(L, 1, OSC_MT);
  fsvc_oscillator_free(u->o);
  u->o = NULL;
  return 0;
}

/* ---- streaming STFT --------------------------------------------------------------------------- */
typedef struct {
  fsvc_stream_stft *s;
} sstft_ud;

static sstft_ud *check_sstft(lua_State *L, const char *op) {
  sstft_ud *u = luaL_testudata(L, 1, SSTFT_MT);
  if (!u) fsvc_lua_raisef(L, "%s: expects a StreamSTFT (use st:%s(...))", op, op + 11);
  if (!u->s) fsvc_lua_raisef(L, "%s: the stream was closed", op);
  return u;
}

static int l_sstft_new(lua_State *L) {
  fsvc_stft_options o;
  check_stft_options(L, 1, "StreamSTFT", &o, 0);
  sstft_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, SSTFT_MT);
  u->s = fsvc_stream_stft_new(&o);
  if (!u->s) return fsvc_lua_error(L);
  return 1;
}

static int l_sstft_process(lua_State *L) {
  sstft_ud *u = check_sstft(L, "StreamSTFT:process");
  fsvc_tensor *c = fsvc_lua_check_cpu_tensor(L, 2, "StreamSTFT:process", "chunk");
  return fsvc_lua_push_tensor(L, fsvc_stream_stft_process(u->s, c));
}

static int l_sstft_flush(lua_State *L) {
  sstft_ud *u = check_sstft(L, "StreamSTFT:flush");
  return fsvc_lua_push_tensor(L, fsvc_stream_stft_flush(u->s));
}

static int l_sstft_reset(lua_State *L) {
  sstft_ud *u = check_sstft(L, "StreamSTFT:reset");
  fsvc_stream_stft_reset(u->s);
  return 0;
}

static int l_sstft_gc(lua_State *L) {
  sstft_ud *u = luaL_checkudata(L, 1, SSTFT_MT);
  fsvc_stream_stft_free(u->s);
  u->s = NULL;
  return 0;
}

/* ---- pitch helpers ---------------------------------------------------------------------------- */
static int l_pitch_shift(lua_State *L) {
  fsvc_tensor *f0 = fsvc_lua_check_tensor(L, 1, "pitch_shift", "f0");
  double s = fsvc_lua_check_number(L, 2, "pitch_shift", "semitones");
  return fsvc_lua_push_tensor(L, fsvc_pitch_shift(f0, s));
}

static int l_freq2id(lua_State *L) {
  return fsvc_lua_push_tensor(L, fsvc_freq2id(fsvc_lua_check_tensor(L, 1, "freq2id", "f0")));
}

static int l_id2freq(lua_State *L) {
  fsvc_tensor *ids = fsvc_lua_check_tensor(L, 1, "id2freq", "ids");
  static const char *const keys[] = {"dtype", NULL};
  fsvc_lua_check_option_keys(L, 2, "id2freq", keys);
  fsvc_dtype dt = FSVC_FLOAT32;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "dtype");
    dt = fsvc_lua_opt_dtype(L, -1, FSVC_FLOAT32, "id2freq");
    lua_pop(L, 1);
  }
  return fsvc_lua_push_tensor(L, fsvc_id2freq(ids, dt));
}

static int l_interpolate_f0(lua_State *L) {
  fsvc_tensor *f0 = fsvc_lua_check_tensor(L, 1, "interpolate_f0", "f0");
  int64_t n = fsvc_lua_check_int(L, 2, "interpolate_f0", "n_out");
  return fsvc_lua_push_tensor(L, fsvc_interpolate_f0(f0, n));
}

/* ---- resampling ------------------------------------------------------------------------------- */
static double check_rate(lua_State *L, int idx, const char *op, const char *name) {
  double r = fsvc_lua_check_number(L, idx, op, name);
  if (!(r > 0) || !isfinite(r)) fsvc_lua_raisef(L, "%s: %s must be a positive sample rate, got %g", op, name, r);
  return r;
}

static int l_resample(lua_State *L) {
  const char *op = "resample";
  fsvc_tensor *x = fsvc_lua_check_cpu_tensor(L, 1, op, "input");
  double from = check_rate(L, 2, op, "from"), to = check_rate(L, 3, op, "to");
  char sb[64];
  if (x->dtype != FSVC_FLOAT32 && x->dtype != FSVC_FLOAT64)
    fsvc_lua_raisef(L, "%s: input must be float32 or float64, got %s", op,
                    fsvc_dtype_name(x->dtype));
  if (x->ndim < 1 || fsvc_numel(x) < 1)
    fsvc_lua_raisef(L, "%s: input must be a non-empty [..., L] signal, got %s", op,
                    fsvc_shape_str(x, sb, sizeof sb));
  if (fsvc_has_nonfinite(x)) fsvc_lua_raisef(L, "%s: input has a NaN or Inf sample", op);
  const int64_t n = x->shape[x->ndim - 1], rows = fsvc_numel(x) / n;
  int64_t m = fsvc_resample_output_length(n, from, to);
  if (m < 1)
    fsvc_lua_raisef(L, "%s: %lld samples at %g Hz give no output samples at %g Hz", op,
                    (long long)n, from, to);
  fsvc_tensor *xf = fsvc_to_dtype_raw(x, FSVC_FLOAT32);
  int64_t shape[FSVC_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
  shape[x->ndim - 1] = m;
  fsvc_tensor *y = fsvc_empty(x->ndim, shape, FSVC_FLOAT32);
  if (!xf || !y) {
    fsvc_tensor_release(xf);
    fsvc_tensor_release(y);
    return fsvc_lua_error(L);
  }
  char err[256] = "";
  int rc = 0;
  for (int64_t r = 0; r < rows && rc == 0; r++)
    rc = fsvc_resample((const float *)fsvc_data(xf) + r * n, n, from, to,
                       (float *)fsvc_data(y) + r * m, err, sizeof err);
  fsvc_tensor_release(xf);
  if (rc) {
    fsvc_tensor_release(y);
    fsvc_lua_raisef(L, "%s: %s", op, err);
  }
  if (x->dtype == FSVC_FLOAT64) {
    fsvc_tensor *yd = fsvc_to_dtype_raw(y, FSVC_FLOAT64);
    fsvc_tensor_release(y);
    y = yd;
  }
  return fsvc_lua_push_tensor(L, y);
}

/* ---- F0 ----------------------------------------------------------------------------------------- */
static int f0_common(lua_State *L, int dio) {
  const char *op = dio ? "dio" : "harvest";
  fsvc_tensor *x = fsvc_lua_check_cpu_tensor(L, 1, op, "input");
  double sr = check_rate(L, 2, op, "sample_rate");
  if (sr != floor(sr) || sr > 1e7) fsvc_lua_raisef(L, "%s: sample_rate must be an integer rate, got %g", op, sr);
  static const char *const keys[] = {"f0_floor", "f0_ceil", "frame_period", "allowed_range",
                                     "channels_in_octave", "speed", NULL};
  fsvc_lua_check_option_keys(L, 3, op, keys);
  fsvc_f0_options o;
  fsvc_f0_default_options(&o);
  o.f0_floor = fsvc_lua_opt_field_number(L, 3, "f0_floor", o.f0_floor, op);
  o.f0_ceil = fsvc_lua_opt_field_number(L, 3, "f0_ceil", o.f0_ceil, op);
  o.frame_period_ms = fsvc_lua_opt_field_number(L, 3, "frame_period", o.frame_period_ms, op);
  o.allowed_range = fsvc_lua_opt_field_number(L, 3, "allowed_range", o.allowed_range, op);
  o.channels_in_octave = fsvc_lua_opt_field_number(L, 3, "channels_in_octave", o.channels_in_octave, op);
  o.speed = (int)fsvc_lua_opt_field_int(L, 3, "speed", o.speed, op);
  char sb[64];
  if (x->dtype != FSVC_FLOAT32 && x->dtype != FSVC_FLOAT64)
    fsvc_lua_raisef(L, "%s: input must be float32 or float64, got %s", op,
                    fsvc_dtype_name(x->dtype));
  if (x->ndim != 1 && !(x->ndim == 2 && x->shape[0] == 1))
    fsvc_lua_raisef(L, "%s: input must be a mono signal [L] (or [1, L]), got %s", op,
                    fsvc_shape_str(x, sb, sizeof sb));
  const int64_t n = fsvc_numel(x);
  if (n < 1) fsvc_lua_raisef(L, "%s: input is empty", op);
  if (fsvc_has_nonfinite(x)) fsvc_lua_raisef(L, "%s: input has a NaN or Inf sample", op);
  int64_t frames = fsvc_f0_frame_count(n, (int)sr, o.frame_period_ms);
  if (frames < 1) fsvc_lua_raisef(L, "%s: bad frame_period %g", op, o.frame_period_ms);
  fsvc_tensor *xd = fsvc_to_dtype_raw(x, FSVC_FLOAT64);
  fsvc_tensor *f0 = fsvc_empty(1, &frames, FSVC_FLOAT64);
  if (!xd || !f0) {
    fsvc_tensor_release(xd);
    fsvc_tensor_release(f0);
    return fsvc_lua_error(L);
  }
  char err[256] = "";
  int rc = dio ? fsvc_dio(fsvc_data(xd), n, (int)sr, &o, fsvc_data(f0), err, sizeof err)
               : fsvc_harvest(fsvc_data(xd), n, (int)sr, &o, fsvc_data(f0), err, sizeof err);
  fsvc_tensor_release(xd);
  if (rc) {
    fsvc_tensor_release(f0);
    if (strncmp(err, op, strlen(op)) == 0) return fsvc_lua_raisef(L, "%s", err);
    return fsvc_lua_raisef(L, "%s: %s", op, err[0] ? err : "failed");
  }
  return fsvc_lua_push_tensor(L, f0);
}

static int l_harvest(lua_State *L) { return f0_common(L, 0); }
static int l_dio(lua_State *L) { return f0_common(L, 1); }

/* ---- registration --------------------------------------------------------------------------- */
static void new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc) {
  luaL_newmetatable(L, mt);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

void fsvc_bind_dsp(lua_State *L) {
  static const luaL_Reg osc_methods[] = {
      {"process", l_osc_process}, {"flush", l_osc_flush}, {"reset", l_osc_reset},
      {"close", l_osc_gc}, {NULL, NULL}};
  static const luaL_Reg sstft_methods[] = {
      {"process", l_sstft_process}, {"flush", l_sstft_flush}, {"reset", l_sstft_reset},
      {"close", l_sstft_gc}, {NULL, NULL}};
  new_class(L, OSC_MT, osc_methods, l_osc_gc);
  new_class(L, SSTFT_MT, sstft_methods, l_sstft_gc);

  static const luaL_Reg funcs[] = {
      {"hann_window", l_hann_window},
      {"rfft", l_rfft},
      {"stft", l_stft},
      {"istft", l_istft},
      {"magnitude", l_magnitude},
      {"spectrogram", l_spectrogram},
      {"mel_filterbank", l_mel_filterbank},
      {"mel_spectrogram", l_mel_spectrogram},
      {"log_mel_loss", l_log_mel_loss},
      {"multiscale_stft_loss", l_multiscale_stft_loss},
      {"energy", l_energy},
      {"oscillate_harmonics", l_oscillate_harmonics},
      {"Oscillator", l_osc_new},
      {"StreamSTFT", l_sstft_new},
      {"pitch_shift", l_pitch_shift},
      {"freq2id", l_freq2id},
      {"id2freq", l_id2freq},
      {"interpolate_f0", l_interpolate_f0},
      {"resample", l_resample},
      {"harvest", l_harvest},
      {"dio", l_dio},
      {NULL, NULL},
  };
  lua_getfield(L, LUA_REGISTRYINDEX, "fsvc.module");
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_setfield(L, -2, "dsp");
  lua_pop(L, 1);
  /* the differentiable ops are methods too: x:stft{...}, spec:magnitude(), x:spectrogram() */
  static const luaL_Reg methods[] = {
      {"rfft", l_rfft},
      {"stft", l_stft}, {"istft", l_istft}, {"magnitude", l_magnitude},
      {"spectrogram", l_spectrogram}, {"mel_spectrogram", l_mel_spectrogram}, {NULL, NULL}};
  fsvc_lua_register(L, methods, FSVC_LUA_METHOD_ONLY);
}
