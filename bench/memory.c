/*
 * memory.c — bytes per variable and per watch, from the allocator's own
 * counters (glibc mallinfo2: heap bytes in use, chunk headers included,
 * plus mmapped blocks), over 100,000 of each. Beside the payload floor:
 * the bytes the information itself takes (a name and a value; a name, a
 * callback pointer and its userdata).
 *
 *   mem.var          bytes per float variable (name "var.000000": 10 bytes)
 *   mem.watch        bytes per watch, the first on its variable (one exact
 *                    name), minus its name bytes (11) — the target's measure
 *   mem.watch.raw    the same, names included
 *   mem.watch2       bytes per further watch on an already-watched variable,
 *                    minus its name bytes
 */
#include "bench.h"

#define N 100000

static int nop(const rstate_event *ev, void *ud) {
  (void)ev;
  (void)ud;
  return RSTATE_CONTINUE;
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "memory");
  char *names = malloc((size_t)N * 16);
  for (size_t i = 0; i < N; i++) snprintf(names + i * 16, 16, "var.%06zu", i);
  const size_t name_bytes = 11; /* "var.000000" and its NUL */
  const double value_bytes = sizeof(rstate_value);

  double h0 = bench_heap_bytes();
  rstate_store *s = bench_open(false);
  double h1 = bench_heap_bytes();
  for (size_t i = 0; i < N; i++) bench_define_float(s, names + i * 16);
  double h2 = bench_heap_bytes();
  for (size_t i = 0; i < N; i++) bench_watch(s, names + i * 16, nop, NULL, false);
  double h3 = bench_heap_bytes();
  for (size_t i = 0; i < N; i++) bench_watch(s, names + i * 16, nop, NULL, false);
  double h4 = bench_heap_bytes();

  double per_var = (h2 - h1) / N, per_watch = (h3 - h2) / N, per_watch2 = (h4 - h3) / N;
  double var_floor = (double)name_bytes + value_bytes, watch_floor = 2 * sizeof(void *);
  brow r;
  r = (brow){"mem.store", "an empty mem: store", "B", h1 - h0, bench_nopct, NULL, NAN, NAN, 0, 0};
  bench_row(&r);
  r = (brow){"mem.var", "bytes per float variable (10-byte name)", "B", per_var, bench_nopct,
             "payload", var_floor, per_var / var_floor, 0, 0};
  bench_row(&r);
  r = (brow){"mem.watch", "bytes per watch (first on its variable), names excluded", "B",
             per_watch - (double)name_bytes, bench_nopct, "payload", watch_floor,
             (per_watch - (double)name_bytes) / watch_floor, '<', 128};
  bench_row(&r);
  r = (brow){"mem.watch.raw", "bytes per watch (first on its variable), names included", "B", per_watch,
             bench_nopct, "payload", watch_floor + (double)name_bytes, per_watch / (watch_floor + (double)name_bytes),
             0, 0};
  bench_row(&r);
  r = (brow){"mem.watch2", "bytes per further watch on the same variable, names excluded", "B",
             per_watch2 - (double)name_bytes, bench_nopct, "payload", watch_floor,
             (per_watch2 - (double)name_bytes) / watch_floor, '<', 128};
  bench_row(&r);
  rstate_close(s);
  free(names);
  return 0;
}
