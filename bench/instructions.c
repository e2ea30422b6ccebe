/*
 * instructions.c — a loop of in-process sets for counting instructions
 * (bench/instructions.sh runs it under callgrind twice, N and 2N sets, and
 * divides the difference by N). On this shared machine the timings of
 * bench/set*.c and fanout.c move by tens of percent between runs, and the
 * in-process paths are bound by instructions: a count does not move.
 *
 *   instructions MODE N   MODE: value (no watcher), watch1, fan10, fan1000
 *                         (inline watchers counting their events)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactivestate.h"

static unsigned long count;

static int count_cb(const rstate_event *ev, void *ud) {
  (void)ev, (void)ud;
  count++;
  return RSTATE_CONTINUE;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s value|watch1|fan10|fan1000 N\n", argv[0]);
    return 2;
  }
  const char *mode = argv[1];
  long n = atol(argv[2]);
  int watchers = !strcmp(mode, "value")    ? 0
                 : !strcmp(mode, "watch1")  ? 1
                 : !strcmp(mode, "fan10")   ? 10
                 : !strcmp(mode, "fan1000") ? 1000
                                            : -1;
  if (watchers < 0 || n <= 0) {
    fprintf(stderr, "%s: unknown mode %s or bad N\n", argv[0], mode);
    return 2;
  }
  rstate_store *s;
  if (rstate_open(&s, "mem:", NULL)) return 1;
  rstate_var_def d;
  memset(&d, 0, sizeof d);
  d.name = "temperature";
  d.type = RSTATE_TYPE_FLOAT;
  d.initial = rstate_float(0);
  const char *names[] = {"temperature"};
  if (rstate_define(s, &d)) return 1;
  for (int i = 0; i < watchers; i++)
    if (rstate_watch(s, names, 1, count_cb, NULL, NULL, NULL)) return 1;
  rstate_value v = rstate_float(0);
  for (long i = 0; i < n; i++) {
    v.u.f += 1;
    if (rstate_set(s, "temperature", &v, NULL)) return 1;
  }
  rstate_close(s);
  if (count != (unsigned long)n * (unsigned long)watchers) {
    fprintf(stderr, "%s: %lu events, want %ld\n", argv[0], count, n * watchers);
    return 3;
  }
  return 0;
}
