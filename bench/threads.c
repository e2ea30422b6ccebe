/*
 * threads.c — four threads setting concurrently (on this 2-core machine),
 * each its own float variable of one store: sets per second over all four,
 * counted over a fixed period during which all four keep setting (so the
 * figure never includes a tail where some have finished). Beside the same
 * four threads locking and unlocking one shared mutex (the store has one
 * mutex: that is the ceiling), and one thread alone.
 *
 *   threads.4        4 threads, no watchers
 *   threads.4.w      4 threads, each variable with one inline watcher
 *   threads.1        1 thread, no watchers (same loop)
 *   threads.scaling  threads.4 / threads.1 throughput
 * p50 / p99 / max: per-set time of each thread's batches of 100, all four
 * threads' batches together (a batch can wait for the others).
 */
#include "bench.h"

#define NTHREADS 4

typedef struct worker {
  pthread_t t;
  rstate_store *s;
  char name[16];
  int mode; /* 0: rstate_set, 1: the shared mutex (floor) */
  pthread_mutex_t *shared;
  pthread_barrier_t *start;
  atomic_bool *stop, *counting;
  uint64_t counted; /* operations of the batches that began while counting */
  bstats st;        /* and their samples */
} worker;

static void *work(void *arg) {
  worker *w = arg;
  rstate_value v = rstate_float(0);
  pthread_barrier_wait(w->start);
  while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
    bool counting = atomic_load_explicit(w->counting, memory_order_relaxed);
    int64_t t0 = bench_now();
    if (w->mode == 0) {
      for (int i = 0; i < BENCH_BATCH; i++) {
        v.u.f += 1;
        rstate_set(w->s, w->name, &v, NULL);
      }
    } else {
      for (int i = 0; i < BENCH_BATCH; i++) {
        pthread_mutex_lock(w->shared);
        bench_escape(w->shared);
        pthread_mutex_unlock(w->shared);
      }
    }
    int64_t t1 = bench_now();
    if (counting) { /* a batch that began while counting counts */
      w->counted += BENCH_BATCH;
      bs_add(&w->st, (double)(t1 - t0), BENCH_BATCH);
    }
  }
  return NULL;
}

/* Runs n workers: 20 ms to get going, then `ms` milliseconds counted.
 * Returns operations per second; percentiles in *b. */
static double run(int n, int mode, bool watched, int ms, bsum *b) {
  rstate_store *s = bench_open(false);
  pthread_mutex_t shared = PTHREAD_MUTEX_INITIALIZER;
  pthread_barrier_t start;
  atomic_bool stop, counting;
  atomic_init(&stop, false);
  atomic_init(&counting, false);
  pthread_barrier_init(&start, NULL, (unsigned)n + 1);
  worker w[NTHREADS];
  uint64_t counts[NTHREADS] = {0};
  memset(w, 0, sizeof w);
  for (int i = 0; i < n; i++) {
    w[i].s = s;
    snprintf(w[i].name, sizeof w[i].name, "thread.%d", i);
    bench_define_float(s, w[i].name);
    if (watched) bench_watch(s, w[i].name, bench_count_cb, &counts[i], false);
    w[i].mode = mode;
    w[i].shared = &shared;
    w[i].start = &start;
    w[i].stop = &stop;
    w[i].counting = &counting;
  }
  for (int i = 0; i < n; i++)
    if (pthread_create(&w[i].t, NULL, work, &w[i])) bench_die("pthread_create");
  pthread_barrier_wait(&start);
  usleep(20000);
  int64_t t0 = bench_now();
  atomic_store(&counting, true);
  usleep((useconds_t)ms * 1000);
  atomic_store(&counting, false);
  int64_t t1 = bench_now();
  atomic_store(&stop, true);
  bstats all = {0};
  uint64_t total = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(w[i].t, NULL);
    total += w[i].counted;
    bs_merge(&all, &w[i].st);
    bs_free(&w[i].st);
  }
  for (int i = 0; i < n && watched; i++) {
    double sets; /* each set added 1 to the value: it counts them */
    BENCH_OK(rstate_get_float(s, w[i].name, &sets));
    bench_expect("threads.4.w", counts[i], (uint64_t)sets);
  }
  *b = bs_sum(&all);
  bs_free(&all);
  pthread_barrier_destroy(&start);
  rstate_close(s);
  return (double)total / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "threads");
  int ms = (int)(250 * bench_scale) + 20; /* counted period of each figure */

  bsum b;
  double fm4 = run(NTHREADS, 1, false, ms, &b);
  bench_floor_row("floor.mutex4", "floor: 4 threads lock+unlock one shared mutex (per op, all threads)",
                  (bsum){1e9 / fm4, 1e9 / fm4, b.p50, b.p99, b.max});
  bsum fm = floor_mutex(bench_n(10000, 200));
  bench_floor_row("floor.mutex", "floor: uncontended mutex lock+unlock", fm);

  double r4 = run(NTHREADS, 0, false, ms, &b);
  bench_rate("threads.4", "4 threads setting concurrently, no watchers", "sets/s", r4, b, "floor.mutex4", 1e9 / fm4,
             0, 0);
  double r4w = run(NTHREADS, 0, true, ms, &b);
  bench_rate("threads.4.w", "4 threads setting concurrently, one inline watcher each", "sets/s", r4w, b,
             "floor.mutex4", 1e9 / fm4, 0, 0);
  double r1 = run(1, 0, false, ms, &b);
  bench_rate("threads.1", "1 thread setting, no watchers (same loop)", "sets/s", r1, b, "floor.mutex", fm.mean, 0, 0);
  bench_ratio("threads.scaling", "4 threads / 1 thread, sets per second", r4 / r1, 0, 0);
  return 0;
}
