#include <stdarg.h>
#include <stdio.h>

#include "fsvc/error.h"

static _Thread_local char error_message[1024];

const char *fsvc_last_error(void) { return error_message[0] ? error_message : "unknown error"; }

void fsvc_set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
}

void fsvc_clear_error(void) { error_message[0] = 0; }
