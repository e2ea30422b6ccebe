/*
 * error.c — error codes and the thread-local last-error sentence.
 *
 * The enum, rstate_strerror and rstate_error_name are all generated from
 * RSTATE_ERRNO_MAP in reactivestate.h, so they cannot drift apart. Each thread
 * has its own sentence buffer: no global error state.
 */
#include <stdio.h>
#include <string.h>

#include "util.h"

static _Thread_local char last_error[512];

const char *rstate_strerror(int code) {
  switch (code) {
#define RSTATE__ERRNO_STR(name, value, sentence) \
  case value:                                    \
    return sentence;
    RSTATE_ERRNO_MAP(RSTATE__ERRNO_STR)
#undef RSTATE__ERRNO_STR
  }
  return "unknown error code";
}

const char *rstate_error_name(int code) {
  switch (code) {
#define RSTATE__ERRNO_NAME(name, value, sentence) \
  case value:                                     \
    return "RSTATE_" #name;
    RSTATE_ERRNO_MAP(RSTATE__ERRNO_NAME)
#undef RSTATE__ERRNO_NAME
  }
  return "RSTATE_E?";
}

const char *rstate_last_error(void) { return last_error; }

/* Formats into a buffer of its own first: a sentence may quote the
 * previous one (rstate_last_error() as an argument), and vsnprintf must not
 * write over what it is reading. */
int rstate__verr(int code, const char *fmt, va_list ap) {
  char sentence[sizeof last_error];
  vsnprintf(sentence, sizeof sentence, fmt, ap);
  memcpy(last_error, sentence, sizeof sentence);
  return code;
}

int rstate__err(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rstate__verr(code, fmt, ap);
  va_end(ap);
  return code;
}

int rstate_set_last_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rstate__verr(code, fmt, ap);
  va_end(ap);
  return code;
}
