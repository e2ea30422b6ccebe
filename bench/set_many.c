/*
 * set_many.c — rstate_set_many of 10 and 100 variables against as many
 * single rstate_set calls on the same variables; ns per variable set,
 * beside an uncontended mutex lock+unlock. The rstate_assign array is built
 * once and reused: each call only changes the numbers.
 *
 *   many.N         one rstate_set_many of N float variables, no watchers
 *   singles.N      N rstate_set calls on them, no watchers
 *   many.N.ratio   many.N / singles.N (below 1: the batch is cheaper)
 *   many.N.w / singles.N.w / many.N.w.ratio   the same, each variable with
 *                  one inline watcher (one batch of events against N)
 */
#include "bench.h"

static void run(size_t n, bool watched, double floor_ns) {
  rstate_store *s = bench_open(false);
  rstate_assign *items = calloc(n, sizeof *items);
  char (*names)[16] = calloc(n, sizeof *names);
  uint64_t count = 0;
  for (size_t i = 0; i < n; i++) {
    snprintf(names[i], sizeof names[i], "batch.%03zu", i);
    bench_define_float(s, names[i]);
    if (watched) bench_watch(s, names[i], bench_count_cb, &count, false);
    items[i].name = names[i];
    items[i].value = rstate_float(0);
  }
  size_t calls = bench_n(2000000, 20000) / n / (watched ? 2 : 1); /* variable sets per figure */
  size_t per_sample = n >= BENCH_BATCH ? 1 : BENCH_BATCH / n;
  size_t samples = calls / per_sample;
  double x = 0;
  bstats sm = {0}, ss = {0};
  for (int round = 0; round < 4; round++) { /* interleaved, so drift hits both alike */
    BENCH_LOOP(&sm, samples / 4, per_sample, {
      x += 1;
      for (size_t i = 0; i < n; i++) items[i].value.u.f = x;
      rstate_set_many(s, items, n, NULL, NULL);
    });
    BENCH_LOOP(&ss, samples / 4, per_sample, {
      x += 1;
      for (size_t i = 0; i < n; i++) {
        items[i].value.u.f = x;
        rstate_set(s, items[i].name, &items[i].value, NULL);
      }
    });
  }
  uint64_t sets = (uint64_t)(samples / 4) * 4 * per_sample * n;
  if (watched) bench_expect("set_many", count, 2 * sets);
  for (size_t i = 0; i < sm.n; i++) sm.v[i] /= (double)n; /* per variable */
  for (size_t i = 0; i < ss.n; i++) ss.v[i] /= (double)n;
  sm.ops *= (double)n;
  ss.ops *= (double)n;
  bsum bm = bs_sum(&sm), bsg = bs_sum(&ss);
  char id[32], label[96];
  const char *w = watched ? ".w" : "";
  const char *wl = watched ? ", one inline watcher each" : ", no watchers";
  snprintf(id, sizeof id, "many.%zu%s", n, w);
  snprintf(label, sizeof label, "rstate_set_many of %zu vars%s (per var)", n, wl);
  bench_latency(id, label, "ns/var", bm, "floor.mutex", floor_ns, 0, 0);
  snprintf(id, sizeof id, "singles.%zu%s", n, w);
  snprintf(label, sizeof label, "%zu single rstate_set%s (per var)", n, wl);
  bench_latency(id, label, "ns/var", bsg, "floor.mutex", floor_ns, 0, 0);
  snprintf(id, sizeof id, "many.%zu%s.ratio", n, w);
  snprintf(label, sizeof label, "set_many / singles, %zu vars%s", n, wl);
  bench_ratio(id, label, bm.mean / bsg.mean, 0, 0);
  bs_free(&sm);
  bs_free(&ss);
  rstate_close(s);
  free(items);
  free(names);
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "set_many");
  bsum fm = floor_mutex(bench_n(20000, 1000));
  bench_floor_row("floor.mutex", "floor: uncontended mutex lock+unlock", fm);
  run(10, false, fm.mean);
  run(100, false, fm.mean);
  run(10, true, fm.mean);
  run(100, true, fm.mean);
  return 0;
}
