/* Audio files (libsndfile) and sample-rate conversion (libsoxr) on plain float buffers.
 *
 * Conventions:
 * - Multichannel buffers are planar, channel-major: sample (c, i) is at buf[c * frames + i].
 * - Functions return 0 (or non-NULL / a length >= 0) on success and -1 on failure; on failure a
 *   one-line message naming the file (or argument) and the problem is written to errbuf
 *   (truncated to errlen; errbuf may be NULL). Nothing aborts or exits on bad input.
 * - Samples are float32 nominally in [-1, 1]; integer PCM is scaled by 1/2^(bits-1) on read.
 */
#ifndef FSVC_AUDIO_H
#define FSVC_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int64_t frames;
  int channels;
  int sample_rate;
  char format[16];  /* container: "wav", "flac", "ogg", "mp3", "aiff", "w64", "rf64", "caf", ... */
  char subtype[16]; /* encoding: "pcm16", "pcm24", "pcm32", "pcm8", "pcmu8", "float", "double",
                       "vorbis", "opus", "mp3", "ulaw", "alaw", ...; "other" if unnamed */
  double duration_s;
} fsvc_audio_info;

/* Reads the header only. frames may be an estimate for mp3 without a Xing/LAME header. */
int fsvc_audio_info_read(const char *path, fsvc_audio_info *info, char *errbuf, size_t errlen);

/* Reads all samples as float32, planar [channels][frames], into a malloc'd buffer that the caller
 * frees with free(). frames/channels/sample_rate may be NULL if not wanted. Rejects: missing or
 * unreadable files, empty files, unrecognised/corrupt/truncated files, zero frames, sample rate 0,
 * and files containing NaN/Inf samples. */
int fsvc_audio_load(const char *path, float **out, int64_t *frames, int *channels, int *sample_rate,
                    char *errbuf, size_t errlen);

/* Same as fsvc_audio_load, from a memory buffer (which is only read, never kept).
 * name_for_errors names the data in messages (NULL -> "<memory>"). */
int fsvc_audio_load_memory(const void *data, size_t size, const char *name_for_errors, float **out,
                           int64_t *frames, int *channels, int *sample_rate, char *errbuf,
                           size_t errlen);

typedef enum { FSVC_AUDIO_PCM16, FSVC_AUDIO_PCM24, FSVC_AUDIO_FLOAT32 } fsvc_audio_sample_format;

/* Writes planar [channels][frames] float32 to path. format is "wav" or "flac"; when NULL it is
 * taken from the extension (.wav/.wave/.flac, any case). PCM values are clipped to [-1, 1];
 * NaN/Inf samples are an error. flac with FLOAT32 is an error. The write is atomic: the data goes
 * to a temp file in the same folder that is fsync'd and renamed over path, so a failure or crash
 * never leaves a half-written file and never destroys an existing file at path. */
int fsvc_audio_save(const char *path, const float *planar, int64_t frames, int channels,
                    int sample_rate, const char *format, fsvc_audio_sample_format sf,
                    char *errbuf, size_t errlen);

/* mono_out[i] = mean over c of planar[c * frames + i]. mono_out may equal planar (in place). */
void fsvc_audio_mix_to_mono(const float *planar, int64_t frames, int channels, float *mono_out);

/* Output length of fsvc_resample: exactly round(n * to_rate / from_rate) (halves away from zero).
 * Returns -1 if n <= 0 or a rate is <= 0 or not finite. */
int64_t fsvc_resample_output_length(int64_t n, double from_rate, double to_rate);

/* Resamples one mono channel of n samples from from_rate to to_rate (any ratio, including
 * irrational) with libsoxr, very high quality, linear phase; the filter delay is removed, so output
 * sample k is the signal at time k / to_rate. out must hold fsvc_resample_output_length(n, ...)
 * samples; soxr's own output is trimmed or zero-padded at the end to exactly that length, so
 * lengths are predictable. Errors: in/out NULL, n <= 0, a rate <= 0 or not finite, output length 0
 * (input too short for the ratio). Equal rates copy the input. */
int fsvc_resample(const float *in, int64_t n, double from_rate, double to_rate, float *out,
                  char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* FSVC_AUDIO_H */
