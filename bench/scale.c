/*
 * scale.c — does a set cost more in a big store? A set on one of 100,000
 * variables, each with one inline watcher, against the same set in a store
 * of one variable with one inline watcher; beside an uncontended mutex
 * lock+unlock.
 *
 *   scale.one        store of 1 variable + 1 watcher: set it
 *   scale.big.same   store of 100,000 watched variables: set one of them
 *                    over and over (the store's size alone)
 *   scale.big.rand   the same store: each set picks another variable, in a
 *                    fixed shuffled order (size plus cache misses: names,
 *                    hash slots, variables and watches spread over ~100 MB)
 *   scale.ratio.same / scale.ratio.rand   big / one
 *   scale.misses     scale.big.rand over floor.miss: how many cache misses
 *                    (with their TLB misses) a random set is worth
 */
#include "bench.h"

#define NVARS 100000

static uint64_t xorshift(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "scale");
  size_t samples = bench_n(10000, 500);

  bsum fm = floor_mutex(samples);
  bench_floor_row("floor.mutex", "floor: uncontended mutex lock+unlock", fm);

  /* one variable */
  rstate_store *one = bench_open(false);
  uint64_t count1 = 0;
  bench_define_float(one, "var.050000");
  bench_watch(one, "var.050000", bench_count_cb, &count1, false);

  /* 100,000 variables, one watcher each */
  double heap0 = bench_heap_bytes();
  rstate_store *big = bench_open(false);
  char *names = malloc((size_t)NVARS * 16);
  const char **order = malloc((size_t)NVARS * sizeof *order);
  uint64_t *counts = calloc(NVARS, sizeof *counts);
  for (size_t i = 0; i < NVARS; i++) {
    char *n = names + i * 16;
    snprintf(n, 16, "var.%06zu", i);
    bench_define_float(big, n);
    bench_watch(big, n, bench_count_cb, &counts[i], false);
    order[i] = n;
  }
  uint64_t seed = 88172645463325252ULL;
  for (size_t i = NVARS - 1; i > 0; i--) { /* Fisher-Yates */
    size_t j = xorshift(&seed) % (i + 1);
    const char *t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  double store_bytes = bench_heap_bytes() - heap0;
  bsum fmiss = floor_miss((size_t)store_bytes, samples);
  bench_floor_row("floor.miss", "floor: one random cache-line load in a region as big as the store", fmiss);

  rstate_value v = rstate_float(0);
  bstats st = {0};
  bsum r_one, r_same, r_rand;
  /* interleave the three so drift on the machine hits each alike */
  bstats s1 = {0}, s2 = {0}, s3 = {0};
  for (int round = 0; round < 4; round++) {
    BENCH_LOOP(&s1, samples / 4, BENCH_BATCH, {
      v.u.f += 1;
      rstate_set(one, "var.050000", &v, NULL);
    });
    BENCH_LOOP(&s2, samples / 4, BENCH_BATCH, {
      v.u.f += 1;
      rstate_set(big, "var.050000", &v, NULL);
    });
    size_t k = (size_t)round * 7919;
    BENCH_LOOP(&s3, samples / 4, BENCH_BATCH, {
      v.u.f += 1;
      rstate_set(big, order[k], &v, NULL);
      if (++k == NVARS) k = 0;
    });
  }
  uint64_t total = 0;
  for (size_t i = 0; i < NVARS; i++) total += counts[i];
  bench_expect("scale.big", total, (uint64_t)(samples / 4) * 4 * BENCH_BATCH * 2);
  bench_expect("scale.one", count1, (uint64_t)(samples / 4) * 4 * BENCH_BATCH);
  r_one = bs_sum(&s1);
  r_same = bs_sum(&s2);
  r_rand = bs_sum(&s3);
  bench_latency("scale.one", "set + watcher, store of 1 variable", "ns/op", r_one, "floor.mutex", fm.mean, 0, 0);
  bench_latency("scale.big.same", "set + watcher, store of 100,000 watched vars, same var", "ns/op", r_same,
                "floor.mutex", fm.mean, 0, 0);
  bench_latency("scale.big.rand", "set + watcher, store of 100,000 watched vars, random var", "ns/op", r_rand,
                "floor.mutex", fm.mean, 0, 0);
  bench_ratio("scale.misses", "random-var set / one random load (cache misses per set)", r_rand.mean / fmiss.mean,
              0, 0);
  bench_ratio("scale.ratio.same", "100,000 watched vars (same var) / 1 var", r_same.mean / r_one.mean, '<', 1.5);
  bench_ratio("scale.ratio.rand", "100,000 watched vars (random var) / 1 var", r_rand.mean / r_one.mean, '<', 1.5);
  bs_free(&s1);
  bs_free(&s2);
  bs_free(&s3);
  bs_free(&st);
  rstate_close(one);
  rstate_close(big);
  free(names);
  free(order);
  free(counts);
  return 0;
}
