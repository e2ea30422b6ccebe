/*
 * set.c — setting a float variable that nobody watches, beside an
 * uncontended mutex lock+unlock (a set takes the store's mutex once; with
 * any watch in the store, the registry's mutex too), and beside a read of
 * the realtime clock (every accepted change is stamped with it).
 *
 *   set.value      rstate_set(s, "temperature", &v, NULL), v reused, its
 *                  number changed every call (each set is a real change)
 *   set.float      rstate_set_float(s, "temperature", x): the scalar shortcut
 *   set.value.reg  rstate_set as set.value, in a store where ANOTHER
 *                  variable has a watch (the set is still unwatched)
 */
#include "bench.h"

static uint64_t count;

int main(int argc, char **argv) {
  bench_init(argc, argv, "set");
  size_t samples = bench_n(30000, 1000);

  bsum fm = floor_mutex(samples);
  bsum fc = floor_clock(samples);
  bench_floor_row("floor.mutex", "floor: uncontended mutex lock+unlock", fm);
  bench_floor_row("floor.clock", "floor: clock_gettime(CLOCK_REALTIME), the change's timestamp", fc);

  rstate_store *s = bench_open(false);
  bench_define_float(s, BENCH_VAR);
  rstate_value v = rstate_float(0);
  bstats st = {0};

  BENCH_LOOP(&st, samples / 10, BENCH_BATCH, BENCH_OK(rstate_set(s, BENCH_VAR, &v, NULL)); v.u.f += 1); /* warm-up */
  bs_free(&st);
  BENCH_LOOP(&st, samples, BENCH_BATCH, {
    v.u.f += 1;
    rstate_set(s, BENCH_VAR, &v, NULL);
  });
  bench_latency("set.value", "set, no watcher (rstate_set, value reused)", "ns/op", bs_sum(&st), "floor.mutex",
                fm.mean, '<', 50);
  bs_free(&st);

  double x = v.u.f;
  BENCH_LOOP(&st, samples, BENCH_BATCH, rstate_set_float(s, BENCH_VAR, x += 1));
  bench_latency("set.float", "set, no watcher (rstate_set_float)", "ns/op", bs_sum(&st), "floor.mutex", fm.mean,
                '<', 50);
  bs_free(&st);

  /* a watch on another variable: the store's watch count is no longer 0 */
  bench_define_float(s, "other");
  bench_watch(s, "other", bench_count_cb, &count, false);
  v.u.f = x;
  BENCH_LOOP(&st, samples, BENCH_BATCH, {
    v.u.f += 1;
    rstate_set(s, BENCH_VAR, &v, NULL);
  });
  bench_latency("set.value.reg", "set, no watcher, another variable watched", "ns/op", bs_sum(&st), "floor.mutex",
                fm.mean, '<', 50);
  bs_free(&st);
  bench_expect("other variable's watch", count, 0);

  double check;
  BENCH_OK(rstate_get_float(s, BENCH_VAR, &check));
  if (check != v.u.f) bench_die("the last set did not stick");
  rstate_close(s);
  return 0;
}
