/* Audio file reading and writing with libsndfile, on planar float32 buffers.
 * Every failure is a returned status plus a one-line message naming the file and the problem. */
#define _GNU_SOURCE /* mkstemp, fchmod, fsync, strcasecmp */
#include "fsvc/audio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FSVC_AUDIO_MAX_CHANNELS 1024      /* libsndfile's own limit */
#define FSVC_AUDIO_CHUNK_FRAMES 8192      /* frames per interleaved read/write chunk */
#define FSVC_AUDIO_INITIAL_CAP (1 << 22)  /* samples preallocated before trusting the header */

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (!errbuf || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
  /* keep it one line: libsndfile messages sometimes end in a newline */
  for (char *p = errbuf; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  size_t n = strlen(errbuf);
  while (n > 0 && errbuf[n - 1] == ' ') errbuf[--n] = '\0';
}

/* libsndfile's message without trailing dot/newline, into a small buffer. */
static const char *lib_message(SNDFILE *sf, char *buf, size_t len) {
  snprintf(buf, len, "%s", sf_strerror(sf));
  size_t n = strlen(buf);
  while (n > 0 && (buf[n - 1] == '.' || buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = '\0';
  return buf;
}

/* ---- names of formats ------------------------------------------------------------------------ */

static void major_name(int format, char *out, size_t len) {
  const char *name = NULL;
  switch (format & SF_FORMAT_TYPEMASK) {
  case SF_FORMAT_WAV: case SF_FORMAT_WAVEX: name = "wav"; break;
  case SF_FORMAT_FLAC: name = "flac"; break;
  case SF_FORMAT_OGG: name = "ogg"; break;
  case SF_FORMAT_MPEG:
    switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_MPEG_LAYER_I: name = "mp1"; break;
    case SF_FORMAT_MPEG_LAYER_II: name = "mp2"; break;
    default: name = "mp3"; break;
    }
    break;
  case SF_FORMAT_AIFF: name = "aiff"; break;
  case SF_FORMAT_AU: name = "au"; break;
  case SF_FORMAT_RAW: name = "raw"; break;
  case SF_FORMAT_W64: name = "w64"; break;
  case SF_FORMAT_RF64: name = "rf64"; break;
  case SF_FORMAT_CAF: name = "caf"; break;
  case SF_FORMAT_NIST: name = "nist"; break;
  default: break;
  }
  if (name) { snprintf(out, len, "%s", name); return; }
  SF_FORMAT_INFO fi;
  memset(&fi, 0, sizeof fi);
  fi.format = format & SF_FORMAT_TYPEMASK;
  if (sf_command(NULL, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.extension)
    snprintf(out, len, "%s", fi.extension);
  else
    snprintf(out, len, "other");
}

static void subtype_name(int format, char *out, size_t len) {
  const char *name;
  switch (format & SF_FORMAT_SUBMASK) {
  case SF_FORMAT_PCM_S8: name = "pcm8"; break;
  case SF_FORMAT_PCM_U8: name = "pcmu8"; break;
  case SF_FORMAT_PCM_16: name = "pcm16"; break;
  case SF_FORMAT_PCM_24: name = "pcm24"; break;
  case SF_FORMAT_PCM_32: name = "pcm32"; break;
  case SF_FORMAT_FLOAT: name = "float"; break;
  case SF_FORMAT_DOUBLE: name = "double"; break;
  case SF_FORMAT_ULAW: name = "ulaw"; break;
  case SF_FORMAT_ALAW: name = "alaw"; break;
  case SF_FORMAT_IMA_ADPCM: name = "ima_adpcm"; break;
  case SF_FORMAT_MS_ADPCM: name = "ms_adpcm"; break;
  case SF_FORMAT_GSM610: name = "gsm610"; break;
  case SF_FORMAT_VORBIS: name = "vorbis"; break;
  case SF_FORMAT_OPUS: name = "opus"; break;
  case SF_FORMAT_ALAC_16: name = "alac16"; break;
  case SF_FORMAT_ALAC_20: name = "alac20"; break;
  case SF_FORMAT_ALAC_24: name = "alac24"; break;
  case SF_FORMAT_ALAC_32: name = "alac32"; break;
  case SF_FORMAT_MPEG_LAYER_I: name = "mp1"; break;
  case SF_FORMAT_MPEG_LAYER_II: name = "mp2"; break;
  case SF_FORMAT_MPEG_LAYER_III: name = "mp3"; break;
  default: name = "other"; break;
  }
  snprintf(out, len, "%s", name);
}

/* ---- opening: from a path or from memory ----------------------------------------------------- */

typedef struct {
  const unsigned char *data;
  sf_count_t size, pos;
} memory_file;

static sf_count_t mem_get_filelen(void *user) { return ((memory_file *)user)->size; }

static sf_count_t mem_seek(sf_count_t offset, int whence, void *user) {
  memory_file *m = user;
  sf_count_t base;
  switch (whence) {
  case SEEK_SET: base = 0; break;
  case SEEK_CUR: base = m->pos; break;
  case SEEK_END: base = m->size; break;
  default: return -1;
  }
  /* overflow-safe: offsets from a corrupt header can be anything */
  if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0) return -1;
  m->pos = base + offset; /* past the end is allowed, as with lseek; reads there return 0 */
  return m->pos;
}

static sf_count_t mem_read(void *ptr, sf_count_t count, void *user) {
  memory_file *m = user;
  if (count <= 0 || m->pos >= m->size) return 0;
  sf_count_t n = m->size - m->pos;
  if (count < n) n = count;
  memcpy(ptr, m->data + m->pos, (size_t)n);
  m->pos += n;
  return n;
}

static sf_count_t mem_write(const void *ptr, sf_count_t count, void *user) { return 0; }
static sf_count_t mem_tell(void *user) { return ((memory_file *)user)->pos; }

/* Explains a failed sf_open in one line; uses libsndfile's parse log to name a zero sample rate or
 * channel count, which libsndfile itself only reports as "SF_INFO struct incomplete". */
static void explain_open_failure(const char *who, const char *name, char *errbuf, size_t errlen) {
  char msg[256], log[2048] = "";
  int code = sf_error(NULL);
  lib_message(NULL, msg, sizeof msg);
  sf_command(NULL, SFC_GET_LOG_INFO, log, sizeof log);
  const char *p;
  if ((p = strstr(log, "Sample rate :")) != NULL && atoi(p + strlen("Sample rate :")) <= 0) {
    set_err(errbuf, errlen, "%s: '%s' has sample rate 0 in its header (corrupt file; re-export it)",
            who, name);
  } else if ((p = strstr(log, "Channels    :")) != NULL && atoi(p + strlen("Channels    :")) <= 0) {
    set_err(errbuf, errlen, "%s: '%s' has 0 channels in its header (corrupt file; re-export it)",
            who, name);
  } else if (code == SF_ERR_UNRECOGNISED_FORMAT) {
    set_err(errbuf, errlen,
            "%s: '%s' is not a recognised audio file (unsupported or unknown format; "
            "use wav, flac, ogg or mp3)", who, name);
  } else if (code == SF_ERR_MALFORMED_FILE) {
    set_err(errbuf, errlen, "%s: '%s' has a corrupt or truncated header (%s)", who, name, msg);
  } else if (code == SF_ERR_UNSUPPORTED_ENCODING) {
    set_err(errbuf, errlen, "%s: '%s' uses an unsupported encoding (%s)", who, name, msg);
  } else {
    set_err(errbuf, errlen, "%s: cannot decode '%s': corrupt, truncated or unsupported file (%s)",
            who, name, msg);
  }
}

/* Either a file descriptor (path) or memory; fd is owned by the caller. */
typedef struct {
  int fd;
  memory_file mem;
  SF_VIRTUAL_IO vio;
} audio_source;

static SNDFILE *open_path(const char *who, const char *path, audio_source *src, SF_INFO *info,
                          char *errbuf, size_t errlen) {
  src->fd = -1;
  if (!path) {
    set_err(errbuf, errlen, "%s: path is NULL", who);
    return NULL;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    set_err(errbuf, errlen, "%s: cannot open '%s': %s", who, path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    set_err(errbuf, errlen, "%s: cannot stat '%s': %s", who, path, strerror(errno));
    close(fd);
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) {
    set_err(errbuf, errlen, "%s: cannot open '%s': Is a directory", who, path);
    close(fd);
    return NULL;
  }
  if (S_ISREG(st.st_mode) && st.st_size == 0) {
    set_err(errbuf, errlen, "%s: '%s' is empty (0 bytes)", who, path);
    close(fd);
    return NULL;
  }
  memset(info, 0, sizeof *info);
  /* close_desc = 0: we close fd ourselves on every path, whether or not sf_open_fd succeeded */
  SNDFILE *sf = sf_open_fd(fd, SFM_READ, info, 0);
  if (!sf) {
    explain_open_failure(who, path, errbuf, errlen);
    close(fd);
    return NULL;
  }
  src->fd = fd;
  return sf;
}

static SNDFILE *open_memory(const char *who, const void *data, size_t size, const char *name,
                            audio_source *src, SF_INFO *info, char *errbuf, size_t errlen) {
  src->fd = -1;
  if (!data && size > 0) {
    set_err(errbuf, errlen, "%s: '%s': data is NULL", who, name);
    return NULL;
  }
  if (size == 0) {
    set_err(errbuf, errlen, "%s: '%s' is empty (0 bytes)", who, name);
    return NULL;
  }
  if ((uint64_t)size > (uint64_t)INT64_MAX) {
    set_err(errbuf, errlen, "%s: '%s' is too large", who, name);
    return NULL;
  }
  src->mem.data = data;
  src->mem.size = (sf_count_t)size;
  src->mem.pos = 0;
  src->vio.get_filelen = mem_get_filelen;
  src->vio.seek = mem_seek;
  src->vio.read = mem_read;
  src->vio.write = mem_write;
  src->vio.tell = mem_tell;
  memset(info, 0, sizeof *info);
  SNDFILE *sf = sf_open_virtual(&src->vio, SFM_READ, info, &src->mem);
  if (!sf) explain_open_failure(who, name, errbuf, errlen);
  return sf;
}

static void close_source(SNDFILE *sf, audio_source *src) {
  if (sf) sf_close(sf);
  if (src->fd >= 0) close(src->fd);
  src->fd = -1;
}

/* Header fields that no decoder can work with. */
static int check_header(const char *who, const char *name, const SF_INFO *info, char *errbuf,
                        size_t errlen) {
  if (info->samplerate <= 0) {
    set_err(errbuf, errlen, "%s: '%s' has sample rate %d in its header (corrupt file; re-export it)",
            who, name, info->samplerate);
    return -1;
  }
  if (info->channels <= 0 || info->channels > FSVC_AUDIO_MAX_CHANNELS) {
    set_err(errbuf, errlen, "%s: '%s' has %d channels in its header (corrupt file)", who, name,
            info->channels);
    return -1;
  }
  if (info->frames < 0) {
    set_err(errbuf, errlen, "%s: '%s' has a negative length in its header (corrupt file)", who, name);
    return -1;
  }
  return 0;
}

/* ---- info ------------------------------------------------------------------------------------ */

int fsvc_audio_info_read(const char *path, fsvc_audio_info *out, char *errbuf, size_t errlen) {
  const char *who = "audio.info";
  if (!out) {
    set_err(errbuf, errlen, "%s: info is NULL", who);
    return -1;
  }
  audio_source src;
  SF_INFO info;
  SNDFILE *sf = open_path(who, path, &src, &info, errbuf, errlen);
  if (!sf) return -1;
  int rc = check_header(who, path, &info, errbuf, errlen);
  if (rc == 0) {
    memset(out, 0, sizeof *out);
    out->frames = info.frames == SF_COUNT_MAX ? -1 : (int64_t)info.frames;
    out->channels = info.channels;
    out->sample_rate = info.samplerate;
    major_name(info.format, out->format, sizeof out->format);
    subtype_name(info.format, out->subtype, sizeof out->subtype);
    out->duration_s = out->frames >= 0 ? (double)out->frames / info.samplerate : -1.0;
  }
  close_source(sf, &src);
  return rc;
}

/* ---- load ------------------------------------------------------------------------------------ */

/* For WAV, libsndfile silently shortens a data chunk that runs past the end of the file and logs
 * "data : <declared> (should be <present>)". That is a truncated file (an interrupted copy or
 * download), so we report it instead of returning part of the audio. Streaming writers that never
 * patch the header write 0 or 0xFFFFFFFF(-ish) as the size; those are accepted. */
static int wav_truncation(SNDFILE *sf, long long *declared, long long *present) {
  char log[4096] = "";
  sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
  const char *p = strstr(log, "\ndata : ");
  if (!p) return 0;
  long long d, s;
  if (sscanf(p, "\ndata : %lld (should be %lld)", &d, &s) != 2) return 0;
  if (d <= s || d == 0 || d >= 0xFFFFF000LL) return 0;
  *declared = d;
  *present = s;
  return 1;
}

/* Grows a planar buffer from capacity old_cap to new_cap frames per channel, keeping the first
 * `frames` frames of each channel. Channels move from last to first so nothing is overwritten. */
static float *grow_planar(float *buf, int channels, int64_t old_cap, int64_t new_cap, int64_t frames) {
  float *nb = realloc(buf, (size_t)new_cap * (size_t)channels * sizeof(float));
  if (!nb) return NULL;
  for (int c = channels - 1; c > 0; c--)
    memmove(nb + (size_t)c * (size_t)new_cap, nb + (size_t)c * (size_t)old_cap,
            (size_t)frames * sizeof(float));
  return nb;
}

static int load_opened(const char *who, const char *name, SNDFILE *sf, const SF_INFO *info,
                       float **out, int64_t *frames_out, int *channels_out, int *rate_out,
                       char *errbuf, size_t errlen) {
  if (check_header(who, name, info, errbuf, errlen) != 0) return -1;
  const int ch = info->channels;
  const int major = info->format & SF_FORMAT_TYPEMASK;
  const int64_t declared = info->frames == SF_COUNT_MAX ? -1 : (int64_t)info->frames;

  long long dbytes, pbytes;
  if ((major == SF_FORMAT_WAV || major == SF_FORMAT_WAVEX) && wav_truncation(sf, &dbytes, &pbytes)) {
    set_err(errbuf, errlen,
            "%s: '%s' is truncated: the header declares %lld bytes of audio but only %lld are "
            "present (re-copy or re-export the file)", who, name, dbytes, pbytes);
    return -1;
  }
  if (declared == 0) {
    set_err(errbuf, errlen, "%s: '%s' has zero frames (no audio in the file)", who, name);
    return -1;
  }

  /* Do not trust the header's length for the allocation: a corrupt file can claim anything.
   * Start with at most FSVC_AUDIO_INITIAL_CAP samples and grow geometrically as data arrives. */
  int64_t cap = FSVC_AUDIO_INITIAL_CAP / ch;
  if (declared > 0 && declared < cap) cap = declared;
  if (cap < 1) cap = 1;
  float *planar = malloc((size_t)cap * (size_t)ch * sizeof(float));
  float *chunk = malloc((size_t)FSVC_AUDIO_CHUNK_FRAMES * (size_t)ch * sizeof(float));
  if (!planar || !chunk) {
    free(planar);
    free(chunk);
    set_err(errbuf, errlen, "%s: '%s': out of memory", who, name);
    return -1;
  }
  int64_t total = 0;
  for (;;) {
    sf_count_t got = sf_readf_float(sf, chunk, FSVC_AUDIO_CHUNK_FRAMES);
    if (got <= 0) break;
    if (total + got > cap) {
      int64_t new_cap = cap * 2;
      if (new_cap < total + got) new_cap = total + got;
      if ((uint64_t)new_cap * (uint64_t)ch > (uint64_t)(SIZE_MAX / sizeof(float) / 2)) {
        free(planar);
        free(chunk);
        set_err(errbuf, errlen, "%s: '%s' is too long to load into memory", who, name);
        return -1;
      }
      float *nb = grow_planar(planar, ch, cap, new_cap, total);
      if (!nb) {
        free(planar);
        free(chunk);
        set_err(errbuf, errlen, "%s: '%s': out of memory after %lld frames", who, name,
                (long long)total);
        return -1;
      }
      planar = nb;
      cap = new_cap;
    }
    for (sf_count_t i = 0; i < got; i++) {
      const float *frame = chunk + (size_t)i * (size_t)ch;
      for (int c = 0; c < ch; c++) {
        float v = frame[c];
        if (!isfinite(v)) {
          free(planar);
          free(chunk);
          set_err(errbuf, errlen,
                  "%s: '%s' contains %s samples (first at channel %d, frame %lld); "
                  "the file is corrupt or was written from a diverged model",
                  who, name, isnan(v) ? "NaN" : "Inf", c, (long long)(total + i));
          return -1;
        }
        planar[(size_t)c * (size_t)cap + (size_t)(total + i)] = v;
      }
    }
    total += got;
  }
  free(chunk);
  int lib_err = sf_error(sf);
  if (total == 0) {
    free(planar);
    if (lib_err) {
      char msg[256];
      set_err(errbuf, errlen, "%s: cannot decode '%s': %s", who, name, lib_message(sf, msg, sizeof msg));
    } else {
      set_err(errbuf, errlen, "%s: '%s' has zero frames (no audio in the file)", who, name);
    }
    return -1;
  }
  /* A stream that stops before its header's length is truncated. Not for MPEG: without a
   * Xing/LAME header mpg123's length is only an estimate from the bitrate. */
  if (declared > 0 && total < declared && major != SF_FORMAT_MPEG) {
    free(planar);
    set_err(errbuf, errlen,
            "%s: '%s' is truncated or corrupt: the header declares %lld frames but only %lld "
            "could be decoded (re-copy or re-export the file)", who, name, (long long)declared,
            (long long)total);
    return -1;
  }
  if (total < cap) { /* compact channels to stride `total` and give back the slack */
    for (int c = 1; c < ch; c++)
      memmove(planar + (size_t)c * (size_t)total, planar + (size_t)c * (size_t)cap,
              (size_t)total * sizeof(float));
    float *nb = realloc(planar, (size_t)total * (size_t)ch * sizeof(float));
    if (nb) planar = nb;
  }
  *out = planar;
  if (frames_out) *frames_out = total;
  if (channels_out) *channels_out = ch;
  if (rate_out) *rate_out = info->samplerate;
  return 0;
}

int fsvc_audio_load(const char *path, float **out, int64_t *frames, int *channels, int *sample_rate,
                    char *errbuf, size_t errlen) {
  const char *who = "audio.load";
  if (!out) {
    set_err(errbuf, errlen, "%s: out is NULL", who);
    return -1;
  }
  *out = NULL;
  audio_source src;
  SF_INFO info;
  SNDFILE *sf = open_path(who, path, &src, &info, errbuf, errlen);
  if (!sf) return -1;
  int rc = load_opened(who, path, sf, &info, out, frames, channels, sample_rate, errbuf, errlen);
  close_source(sf, &src);
  return rc;
}

int fsvc_audio_load_memory(const void *data, size_t size, const char *name_for_errors, float **out,
                           int64_t *frames, int *channels, int *sample_rate, char *errbuf,
                           size_t errlen) {
  const char *who = "audio.load";
  const char *name = name_for_errors ? name_for_errors : "<memory>";
  if (!out) {
    set_err(errbuf, errlen, "%s: out is NULL", who);
    return -1;
  }
  *out = NULL;
  audio_source src;
  SF_INFO info;
  SNDFILE *sf = open_memory(who, data, size, name, &src, &info, errbuf, errlen);
  if (!sf) return -1;
  int rc = load_opened(who, name, sf, &info, out, frames, channels, sample_rate, errbuf, errlen);
  close_source(sf, &src);
  return rc;
}

/* ---- save ------------------------------------------------------------------------------------ */

static const char *file_extension(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  const char *dot = strrchr(base, '.');
  return (dot && dot != base) ? dot + 1 : NULL;
}

/* Mode for a new file: that of the file being replaced, else 0666 minus the process umask (read
 * from /proc so that we never change the umask, which would race with other threads). */
static mode_t new_file_mode(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return st.st_mode & 07777;
  mode_t mask = 022;
  FILE *f = fopen("/proc/self/status", "r");
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "Umask:", 6) == 0) {
        mask = (mode_t)strtol(line + 6, NULL, 8);
        break;
      }
    fclose(f);
  }
  return 0666 & ~mask;
}

int fsvc_audio_save(const char *path, const float *planar, int64_t frames, int channels,
                    int sample_rate, const char *format, fsvc_audio_sample_format sfmt,
                    char *errbuf, size_t errlen) {
  const char *who = "audio.save";
  if (!path || !*path) {
    set_err(errbuf, errlen, "%s: path is NULL or empty", who);
    return -1;
  }
  if (!planar) {
    set_err(errbuf, errlen, "%s: '%s': samples are NULL", who, path);
    return -1;
  }
  if (frames <= 0) {
    set_err(errbuf, errlen, "%s: '%s': frames must be > 0 (got %lld)", who, path, (long long)frames);
    return -1;
  }
  if (channels <= 0 || channels > FSVC_AUDIO_MAX_CHANNELS) {
    set_err(errbuf, errlen, "%s: '%s': channels must be 1..%d (got %d)", who, path,
            FSVC_AUDIO_MAX_CHANNELS, channels);
    return -1;
  }
  if (sample_rate <= 0) {
    set_err(errbuf, errlen, "%s: '%s': sample_rate must be > 0 (got %d)", who, path, sample_rate);
    return -1;
  }

  /* container */
  const char *fmt = format;
  if (!fmt) {
    fmt = file_extension(path);
    if (!fmt) {
      set_err(errbuf, errlen,
              "%s: '%s' has no file extension to choose a format from (name it .wav or .flac, or "
              "pass format \"wav\" or \"flac\")", who, path);
      return -1;
    }
  }
  int major;
  if (strcasecmp(fmt, "wav") == 0 || (!format && strcasecmp(fmt, "wave") == 0)) {
    major = SF_FORMAT_WAV;
  } else if (strcasecmp(fmt, "flac") == 0) {
    major = SF_FORMAT_FLAC;
  } else {
    set_err(errbuf, errlen, "%s: '%s': unsupported output %s '%s' (use \"wav\" or \"flac\")", who,
            path, format ? "format" : "file extension", fmt);
    return -1;
  }
  int sub, bytes_per_sample;
  const char *sub_name;
  switch (sfmt) {
  case FSVC_AUDIO_PCM16: sub = SF_FORMAT_PCM_16; bytes_per_sample = 2; sub_name = "pcm16"; break;
  case FSVC_AUDIO_PCM24: sub = SF_FORMAT_PCM_24; bytes_per_sample = 3; sub_name = "pcm24"; break;
  case FSVC_AUDIO_FLOAT32: sub = SF_FORMAT_FLOAT; bytes_per_sample = 4; sub_name = "float32"; break;
  default:
    set_err(errbuf, errlen, "%s: '%s': unknown sample format %d", who, path, (int)sfmt);
    return -1;
  }
  if (major == SF_FORMAT_FLAC && sfmt == FSVC_AUDIO_FLOAT32) {
    set_err(errbuf, errlen, "%s: '%s': flac cannot store float32 samples (use pcm16 or pcm24 for "
            "flac, or wav for float32)", who, path);
    return -1;
  }
  if (major == SF_FORMAT_WAV &&
      (uint64_t)frames * (uint64_t)channels * (uint64_t)bytes_per_sample > 0xFFFFFF00ULL) {
    set_err(errbuf, errlen, "%s: '%s': %lld frames x %d channels of %s exceed the 4 GiB limit of "
            "wav (split the audio or use flac)", who, path, (long long)frames, channels, sub_name);
    return -1;
  }
  SF_INFO info;
  memset(&info, 0, sizeof info);
  info.samplerate = sample_rate;
  info.channels = channels;
  info.format = major | sub;
  if (!sf_format_check(&info)) {
    set_err(errbuf, errlen, "%s: '%s': %s/%s cannot store %d channels at %d Hz", who, path,
            major == SF_FORMAT_FLAC ? "flac" : "wav", sub_name, channels, sample_rate);
    return -1;
  }

  /* temp file next to the target, so that rename() is atomic (same filesystem) */
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32);
  if (!tmp) {
    set_err(errbuf, errlen, "%s: '%s': out of memory", who, path);
    return -1;
  }
  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
  snprintf(tmp, plen + 32, "%.*s.%s.tmp-XXXXXX", (int)dirlen, path, path + dirlen);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    set_err(errbuf, errlen, "%s: cannot create '%s': %s", who, path, strerror(errno));
    free(tmp);
    return -1;
  }
  mode_t mode = new_file_mode(path);
  SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, 0);
  float *chunk = NULL;
  int rc = -1;
  if (!sf) {
    char msg[256];
    set_err(errbuf, errlen, "%s: cannot write '%s': %s", who, path, lib_message(NULL, msg, sizeof msg));
    goto fail;
  }
  if (sfmt != FSVC_AUDIO_FLOAT32) {
    /* values are already clipped below; this guards libsndfile's own float->int rounding */
    sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
  }
  chunk = malloc((size_t)FSVC_AUDIO_CHUNK_FRAMES * (size_t)channels * sizeof(float));
  if (!chunk) {
    set_err(errbuf, errlen, "%s: '%s': out of memory", who, path);
    goto fail;
  }
  const int clip = sfmt != FSVC_AUDIO_FLOAT32;
  for (int64_t start = 0; start < frames; start += FSVC_AUDIO_CHUNK_FRAMES) {
    int64_t n = frames - start;
    if (n > FSVC_AUDIO_CHUNK_FRAMES) n = FSVC_AUDIO_CHUNK_FRAMES;
    for (int c = 0; c < channels; c++) {
      const float *src = planar + (size_t)c * (size_t)frames + (size_t)start;
      for (int64_t i = 0; i < n; i++) {
        float v = src[i];
        if (!isfinite(v)) {
          set_err(errbuf, errlen, "%s: '%s': sample at channel %d, frame %lld is %s (nothing was "
                  "written; check the model output)", who, path, c, (long long)(start + i),
                  isnan(v) ? "NaN" : "Inf");
          goto fail;
        }
        if (clip) v = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
        chunk[(size_t)i * (size_t)channels + (size_t)c] = v;
      }
    }
    if (sf_writef_float(sf, chunk, n) != n) {
      char msg[256];
      set_err(errbuf, errlen, "%s: cannot write '%s': %s", who, path, lib_message(sf, msg, sizeof msg));
      goto fail;
    }
  }
  free(chunk);
  chunk = NULL;
  int close_err = sf_close(sf);
  sf = NULL;
  if (close_err != 0) {
    set_err(errbuf, errlen, "%s: cannot write '%s': %s", who, path, sf_error_number(close_err));
    goto fail;
  }
  if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
    set_err(errbuf, errlen, "%s: cannot write '%s': %s", who, path, strerror(errno));
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    set_err(errbuf, errlen, "%s: cannot write '%s': %s", who, path, strerror(errno));
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    set_err(errbuf, errlen, "%s: cannot replace '%s': %s", who, path, strerror(errno));
    goto fail;
  }
  rc = 0;
fail:
  free(chunk);
  if (sf) sf_close(sf);
  if (fd >= 0) close(fd);
  if (rc != 0) unlink(tmp);
  free(tmp);
  return rc;
}

/* ---- mixdown --------------------------------------------------------------------------------- */

void fsvc_audio_mix_to_mono(const float *planar, int64_t frames, int channels, float *mono_out) {
  if (!planar || !mono_out || frames <= 0 || channels <= 0) return;
  if (channels == 1) {
    if (mono_out != planar) memmove(mono_out, planar, (size_t)frames * sizeof(float));
    return;
  }
  const double scale = 1.0 / channels;
  for (int64_t i = 0; i < frames; i++) {
    /* all of frame i is read before mono_out[i] is written, so in-place (mono_out == planar) works */
    double sum = 0.0;
    for (int c = 0; c < channels; c++) sum += planar[(size_t)c * (size_t)frames + (size_t)i];
    mono_out[i] = (float)(sum * scale);
  }
}
