/*
 * fanout.c — one change fanned out to 1, 10 and 1,000 inline watchers of
 * the same variable: ns per delivered event (the time of a set divided by
 * its watchers), beside an indirect call (the least a delivery can cost).
 * Each sample is one or more whole sets (100 events or more per sample).
 *
 *   fanout.1 / fanout.10 / fanout.1000
 */
#include "bench.h"

static void run(const char *id, const char *label, size_t watchers, size_t events, double floor_ns, char cmp,
                double target) {
  rstate_store *s = bench_open(false);
  bench_define_float(s, BENCH_VAR);
  uint64_t *counts = calloc(watchers, sizeof *counts);
  for (size_t i = 0; i < watchers; i++) bench_watch(s, BENCH_VAR, bench_count_cb, &counts[i], false);

  size_t per_sample = watchers >= BENCH_BATCH ? 1 : BENCH_BATCH / watchers; /* sets per sample */
  size_t samples = events / (per_sample * watchers);
  if (samples < 200) samples = 200;
  rstate_value v = rstate_float(0);
  bstats st = {0};
  BENCH_LOOP(&st, samples / 10, per_sample, v.u.f += 1; BENCH_OK(rstate_set(s, BENCH_VAR, &v, NULL))); /* warm-up */
  bs_free(&st);
  BENCH_LOOP(&st, samples, per_sample, {
    v.u.f += 1;
    rstate_set(s, BENCH_VAR, &v, NULL);
  });
  /* per delivered event: every sample covered per_sample * watchers events */
  for (size_t i = 0; i < st.n; i++) st.v[i] /= (double)watchers;
  st.ops *= (double)watchers;
  uint64_t sets = (uint64_t)(samples + samples / 10) * per_sample;
  for (size_t i = 0; i < watchers; i++) bench_expect(id, counts[i], sets);
  bench_latency(id, label, "ns/event", bs_sum(&st), "floor.call", floor_ns, cmp, target);
  bs_free(&st);
  rstate_close(s);
  free(counts);
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "fanout");
  size_t events = bench_n(2000000, 20000);

  bsum fi = floor_indirect(bench_n(20000, 1000));
  bench_floor_row("floor.call", "floor: indirect call", fi);

  run("fanout.1", "one change, 1 inline watcher (per event)", 1, events, fi.mean, 0, 0);
  run("fanout.10", "one change, 10 inline watchers (per event)", 10, events, fi.mean, 0, 0);
  run("fanout.1000", "one change, 1,000 inline watchers (per event)", 1000, events, fi.mean, '<', 30);
  return 0;
}
