/*
 * set_watch.c — a set whose variable has one inline watcher: the whole trip
 * from rstate_set to the callback having run (it runs inside rstate_set,
 * on the setting thread), beside an uncontended mutex lock+unlock, an
 * indirect call and a read of the realtime clock (the change's timestamp).
 *
 *   set.watch1        rstate_set, value reused, one inline watcher that
 *                     counts its events
 *   set.watch1.float  the same through rstate_set_float
 */
#include "bench.h"

int main(int argc, char **argv) {
  bench_init(argc, argv, "set_watch");
  size_t samples = bench_n(20000, 1000);

  bsum fm = floor_mutex(samples);
  bsum fi = floor_indirect(samples);
  bsum fc = floor_clock(samples);
  bench_floor_row("floor.mutex", "floor: uncontended mutex lock+unlock", fm);
  bench_floor_row("floor.call", "floor: indirect call", fi);
  bench_floor_row("floor.clock", "floor: clock_gettime(CLOCK_REALTIME), the change's timestamp", fc);

  rstate_store *s = bench_open(false);
  bench_define_float(s, BENCH_VAR);
  uint64_t count = 0;
  bench_watch(s, BENCH_VAR, bench_count_cb, &count, false);
  rstate_value v = rstate_float(0);
  bstats st = {0};

  BENCH_LOOP(&st, samples / 10, BENCH_BATCH, v.u.f += 1; BENCH_OK(rstate_set(s, BENCH_VAR, &v, NULL))); /* warm-up */
  bs_free(&st);
  uint64_t before = count;
  BENCH_LOOP(&st, samples, BENCH_BATCH, {
    v.u.f += 1;
    rstate_set(s, BENCH_VAR, &v, NULL);
  });
  bench_expect("set.watch1", count - before, (uint64_t)samples * BENCH_BATCH);
  bench_latency("set.watch1", "set + one inline watcher (rstate_set, value reused)", "ns/op", bs_sum(&st),
                "floor.mutex", fm.mean, '<', 100);
  bs_free(&st);

  double x = v.u.f;
  before = count;
  BENCH_LOOP(&st, samples, BENCH_BATCH, rstate_set_float(s, BENCH_VAR, x += 1));
  bench_expect("set.watch1.float", count - before, (uint64_t)samples * BENCH_BATCH);
  bench_latency("set.watch1.float", "set + one inline watcher (rstate_set_float)", "ns/op", bs_sum(&st),
                "floor.mutex", fm.mean, '<', 100);
  bs_free(&st);
  rstate_close(s);
  return 0;
}
