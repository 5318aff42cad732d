/* Errors in the core are returned, never raised: a failing function returns NULL or -1 and leaves
 * a one-line message (naming the op, argument and shapes) in a thread-local buffer. */
#ifndef FSVC_ERROR_H
#define FSVC_ERROR_H

#if defined(__GNUC__)
#define FSVC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FSVC_PRINTF(a, b)
#endif

const char *fsvc_last_error(void);
void fsvc_set_error(const char *fmt, ...) FSVC_PRINTF(1, 2);
void fsvc_clear_error(void);

#endif
