/*
 * clock.c — the library's clocks: wall time for event timestamps, monotonic
 * time for waits, and the debounce clock, which tests may replace through
 * rstate__clock_hook to drive time deterministically.
 */
#include <time.h>

#include "util.h"

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rstate__realtime_ns(void) { return clock_ns(CLOCK_REALTIME); }
int64_t rstate__monotonic_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

int64_t (*rstate__clock_hook)(void);

int64_t rstate__now_ns(void) { return rstate__clock_hook ? rstate__clock_hook() : clock_ns(CLOCK_MONOTONIC); }
