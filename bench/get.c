/*
 * get.c — reading a float variable, beside an uncontended mutex lock+unlock
 * (a get takes the store's one mutex once).
 *
 *   get.float   rstate_get_float(s, "temperature", &d): the scalar shortcut
 *   get.value   rstate_get(s, "temperature", &v) into one reused rstate_value
 */
#include "bench.h"

int main(int argc, char **argv) {
  bench_init(argc, argv, "get");
  size_t samples = bench_n(40000, 1000);

  bsum fm = floor_mutex(samples);
  bsum fi = floor_indirect(samples);
  bench_floor_row("floor.mutex", "floor: uncontended mutex lock+unlock", fm);
  bench_floor_row("floor.call", "floor: indirect call", fi);

  rstate_store *s = bench_open(false);
  bench_define_float(s, BENCH_VAR);
  BENCH_OK(rstate_set_float(s, BENCH_VAR, 0.5));

  double d = 0, sum = 0;
  bstats st = {0};
  BENCH_LOOP(&st, samples / 10, BENCH_BATCH, BENCH_OK(rstate_get_float(s, BENCH_VAR, &d))); /* warm-up */
  bs_free(&st);
  BENCH_LOOP(&st, samples, BENCH_BATCH, {
    rstate_get_float(s, BENCH_VAR, &d);
    sum += d;
  });
  bench_latency("get.float", "get of a float (rstate_get_float)", "ns/op", bs_sum(&st), "floor.mutex", fm.mean,
                '<', 30);
  bs_free(&st);

  rstate_value v = {0};
  BENCH_LOOP(&st, samples, BENCH_BATCH, {
    rstate_get(s, BENCH_VAR, &v);
    sum += v.u.f;
  });
  bench_latency("get.value", "get of a float (rstate_get, value reused)", "ns/op", bs_sum(&st), "floor.mutex",
                fm.mean, '<', 30);
  bs_free(&st);
  if (sum != sum) return 1; /* keeps sum alive */
  rstate_close(s);
  return 0;
}
