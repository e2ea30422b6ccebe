/*
 * bench.h — the harness every benchmark program in bench/ shares.
 *
 * What it gives a program:
 *  - a monotonic nanosecond clock (clock_gettime, vDSO: about 20 ns a read);
 *  - batched samples: a latency figure times a batch of operations per
 *    sample (100 unless a program says otherwise), so the two clock reads
 *    cost a fraction of a nanosecond per operation; p50 / p99 / max are
 *    percentiles of the per-operation time of each batch, the mean is the
 *    total time over the total operations;
 *  - the machine's floors, measured in the same process with the same
 *    harness: an indirect call, an uncontended mutex lock+unlock, a
 *    cross-thread eventfd wakeup;
 *  - one report line per figure: a human line on stdout and, with
 *    `--out FILE`, a tab-separated line appended to FILE that bench/run.sh
 *    collects into bench/RESULTS.md.
 *
 * Every program takes `--out FILE` and `--scale X` (multiplies the number of
 * samples; 0.1 for a quick try). Programs exit non-zero only when the library
 * misbehaves (a call fails, an event is lost); a missed target is reported,
 * not an error.
 */
#ifndef BENCH_H
#define BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <reactivestate.h>

#define BENCH_BATCH 100

static const char *bench_prog = "?";
static FILE *bench_out;
static double bench_scale = 1.0;

static inline int64_t bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the calling thread: the clock of the per-op means, read once
 * around a whole loop (it is a system call, ~0.2 us). Time the thread spends
 * descheduled (other processes on a 2-core machine) does not count. */
static inline int64_t bench_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void bench_die(const char *what) {
  fprintf(stderr, "%s: %s\n", bench_prog, what);
  exit(2);
}

/* Fails the program when a library call fails: a benchmark of a failing
 * call measures nothing. */
#define BENCH_OK(call)                                                                     \
  do {                                                                                     \
    int rc_ = (call);                                                                      \
    if (rc_ != 0) {                                                                        \
      fprintf(stderr, "%s:%d: %s: %d %s\n", __FILE__, __LINE__, #call, rc_, bench_err()); \
      exit(2);                                                                             \
    }                                                                                      \
  } while (0)

static inline const char *bench_err(void) { return rstate_last_error(); }

static inline void bench_init(int argc, char **argv, const char *prog) {
  bench_prog = prog;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--out") && i + 1 < argc) {
      if (!(bench_out = fopen(argv[++i], "a"))) bench_die("cannot open the --out file");
    } else if (!strcmp(argv[i], "--scale") && i + 1 < argc) {
      bench_scale = atof(argv[++i]);
      if (!(bench_scale > 0)) bench_die("--scale wants a positive number");
    } else {
      fprintf(stderr, "usage: %s [--out FILE] [--scale X]\n", argv[0]);
      exit(2);
    }
  }
}

/* n scaled by --scale, at least min. */
static inline size_t bench_n(size_t n, size_t min) {
  double x = (double)n * bench_scale;
  return x < (double)min ? min : (size_t)x;
}

/* ---- samples ------------------------------------------------------------- */

typedef struct bstats {
  double *v; /* ns per operation of each sample */
  size_t n, cap;
  double ns, ops; /* totals: wall-clock ns of the samples, operations */
  double cpu;     /* thread CPU ns over the loops (0: not measured) */
} bstats;

static inline void bs_push(bstats *s, double per_op) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 1024;
    if (!(s->v = realloc(s->v, s->cap * sizeof *s->v))) bench_die("out of memory");
  }
  s->v[s->n++] = per_op;
}

static inline void bs_add(bstats *s, double ns, double ops) {
  bs_push(s, ns / ops);
  s->ns += ns;
  s->ops += ops;
}

/* Merges b into a (threads' samples into one). */
static inline void bs_merge(bstats *a, const bstats *b) {
  for (size_t i = 0; i < b->n; i++) bs_push(a, b->v[i]);
  a->ns += b->ns;
  a->ops += b->ops;
  a->cpu += b->cpu;
}

static inline int bs_cmp(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* mean: CPU ns per op when the loop measured CPU time, else wall ns per op;
 * wall: wall-clock ns per op (descheduled time included); p50 / p99 / max:
 * of the per-op wall time of each sample (batch). */
typedef struct bsum {
  double mean, wall, p50, p99, max;
} bsum;

static inline double bs_pct(const double *sorted, size_t n, double p) {
  size_t k = (size_t)ceil(p * (double)n);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return sorted[k - 1];
}

static inline bsum bs_sum(bstats *s) {
  bsum r = {NAN, NAN, NAN, NAN, NAN};
  if (!s->n) return r;
  qsort(s->v, s->n, sizeof *s->v, bs_cmp);
  r.wall = s->ns / s->ops;
  r.mean = s->cpu > 0 ? s->cpu / s->ops : r.wall;
  r.p50 = bs_pct(s->v, s->n, 0.50);
  r.p99 = bs_pct(s->v, s->n, 0.99);
  r.max = s->v[s->n - 1];
  return r;
}

static inline void bs_free(bstats *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* Times `samples` batches of `batch` runs of body; `bench_op` counts every
 * run from 0 (use it to make each set a real change). */
#define BENCH_LOOP(st, samples, batch, body)                  \
  do {                                                        \
    uint64_t bench_op = 0;                                    \
    int64_t c0_ = bench_cpu_now();                            \
    for (size_t s_ = 0; s_ < (samples); s_++) {               \
      int64_t t0_ = bench_now();                              \
      for (size_t i_ = 0; i_ < (size_t)(batch); i_++) {       \
        body;                                                 \
        bench_op++;                                           \
      }                                                       \
      int64_t t1_ = bench_now();                              \
      bs_add((st), (double)(t1_ - t0_), (double)(batch));     \
    }                                                         \
    (st)->cpu += (double)(bench_cpu_now() - c0_);             \
    (void)bench_op;                                           \
  } while (0)

/* ---- report lines --------------------------------------------------------- */

typedef struct brow {
  const char *id;    /* stable key: "get.float" */
  const char *label; /* what was measured, for the table */
  const char *unit;  /* "ns/op", "ns/event", "events/s", "sets/s", "B", "x" */
  double value;      /* mean ns, a rate, bytes or a ratio */
  bsum pct;          /* p50 / p99 / max where they apply (NAN otherwise) */
  const char *floor; /* the floor's id, or NULL */
  double floor_value;
  double ratio; /* ours / floor, in cost terms (time per op, bytes) */
  char cmp;     /* '<': target is a maximum, '>': a minimum, 0: none */
  double target;
} brow;

static inline int bench_met(const brow *r) {
  if (!r->cmp) return -1;
  return r->cmp == '<' ? r->value <= r->target : r->value >= r->target;
}

static inline void tsv_num(FILE *f, double x) {
  if (isnan(x))
    fputs("\t-", f);
  else
    fprintf(f, "\t%.6g", x);
}

static inline void bench_row(const brow *r) {
  int met = bench_met(r);
  printf("%-16s %-58s %12.4g %-8s", r->id, r->label, r->value, r->unit);
  if (!isnan(r->pct.wall) && r->pct.wall != r->value) printf(" wall %.4g", r->pct.wall);
  if (!isnan(r->pct.p50)) printf(" p50 %.4g p99 %.4g max %.4g", r->pct.p50, r->pct.p99, r->pct.max);
  if (r->floor) printf("  floor %s %.4g  ratio %.2f", r->floor, r->floor_value, r->ratio);
  if (met >= 0) printf("  target %c= %g: %s", r->cmp, r->target, met ? "MET" : "MISSED");
  printf("\n");
  if (!bench_out) return;
  fprintf(bench_out, "%s\t%ld\t%s\t%s\t%s", bench_prog, (long)getpid(), r->id, r->label, r->unit);
  tsv_num(bench_out, r->value);
  tsv_num(bench_out, r->pct.wall);
  tsv_num(bench_out, r->pct.p50);
  tsv_num(bench_out, r->pct.p99);
  tsv_num(bench_out, r->pct.max);
  fprintf(bench_out, "\t%s", r->floor ? r->floor : "-");
  tsv_num(bench_out, r->floor ? r->floor_value : NAN);
  tsv_num(bench_out, r->floor ? r->ratio : NAN);
  if (r->cmp) {
    fprintf(bench_out, "\t%c", r->cmp);
    tsv_num(bench_out, r->target);
  } else {
    fputs("\t-\t-", bench_out);
  }
  fputc('\n', bench_out);
  fflush(bench_out);
}

__attribute__((unused)) static const bsum bench_nopct = {NAN, NAN, NAN, NAN, NAN};

/* A latency row: mean and percentiles in ns per op, beside a floor in ns. */
static inline void bench_latency(const char *id, const char *label, const char *unit, bsum b, const char *floor,
                          double floor_ns, char cmp, double target) {
  brow r = {id, label, unit, b.mean, b, floor, floor_ns, floor ? b.mean / floor_ns : NAN, cmp, target};
  bench_row(&r);
}

/* A rate row (per second); the ratio compares time per operation. */
static inline void bench_rate(const char *id, const char *label, const char *unit, double per_s, bsum b,
                       const char *floor, double floor_ns, char cmp, double target) {
  brow r = {id, label, unit, per_s, b, floor, floor_ns, floor ? (1e9 / per_s) / floor_ns : NAN, cmp, target};
  bench_row(&r);
}

/* A ratio of two of our own figures (no floor). */
static inline void bench_ratio(const char *id, const char *label, double x, char cmp, double target) {
  brow r = {id, label, "x", x, bench_nopct, NULL, NAN, NAN, cmp, target};
  bench_row(&r);
}

static inline void bench_floor_row(const char *id, const char *label, bsum b) {
  brow r = {id, label, "ns/op", b.mean, b, NULL, NAN, NAN, 0, 0};
  bench_row(&r);
}

/* ---- floors ---------------------------------------------------------------- */

/* Keeps the compiler from proving a loop does nothing. */
static inline void bench_escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

/* The shape of a watch callback: a pointer to something and a userdata. */
__attribute__((noinline, unused)) static int bench_nop_cb(const void *ev, void *ud) {
  (void)ev;
  (*(volatile uint64_t *)ud)++;
  return 0;
}

/* An indirect call through a pointer the compiler cannot see through, to a
 * function that increments a counter: what delivering an event must at
 * least cost. */
static inline bsum floor_indirect(size_t samples) {
  int (*volatile fp)(const void *, void *) = bench_nop_cb;
  uint64_t counter = 0;
  bstats st = {0};
  BENCH_LOOP(&st, samples, BENCH_BATCH, fp(&counter, &counter));
  bsum b = bs_sum(&st);
  bs_free(&st);
  return b;
}

/* pthread_mutex_lock + unlock of a mutex no other thread touches. */
static inline bsum floor_mutex(size_t samples) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  bstats st = {0};
  BENCH_LOOP(&st, samples, BENCH_BATCH, {
    pthread_mutex_lock(&m);
    bench_escape(&m);
    pthread_mutex_unlock(&m);
  });
  bsum b = bs_sum(&st);
  bs_free(&st);
  pthread_mutex_destroy(&m);
  return b;
}

/* clock_gettime(CLOCK_REALTIME): every accepted change carries the time it
 * was accepted, so a set reads this clock at least once. */
static inline bsum floor_clock(size_t samples) {
  struct timespec ts;
  uint64_t acc = 0;
  bstats st = {0};
  BENCH_LOOP(&st, samples, BENCH_BATCH, {
    clock_gettime(CLOCK_REALTIME, &ts);
    acc += (uint64_t)ts.tv_nsec;
  });
  bench_escape(&acc);
  bsum b = bs_sum(&st);
  bs_free(&st);
  return b;
}

/* Cross-thread eventfd wakeup: a thread blocked in read() on an eventfd; the
 * timing thread writes it and spins until the woken thread acknowledges.
 * One sample per wakeup (microseconds: the clock costs nothing here). */
typedef struct efd_ping {
  int fd;
  atomic_ulong acked;
  atomic_bool stop;
} efd_ping;

static inline void *efd_waiter(void *arg) {
  efd_ping *p = arg;
  for (;;) {
    uint64_t x;
    if (read(p->fd, &x, sizeof x) != sizeof x) continue;
    if (atomic_load(&p->stop)) break;
    atomic_fetch_add(&p->acked, 1);
  }
  return NULL;
}

static inline bsum floor_eventfd(size_t samples) {
  efd_ping p = {.fd = eventfd(0, EFD_CLOEXEC)};
  if (p.fd < 0) bench_die("eventfd");
  pthread_t t;
  if (pthread_create(&t, NULL, efd_waiter, &p)) bench_die("pthread_create");
  bstats st = {0};
  uint64_t one = 1;
  for (size_t i = 0; i < samples + 100; i++) {
    usleep(20); /* let the waiter block in read() */
    unsigned long before = atomic_load(&p.acked);
    int64_t t0 = bench_now();
    if (write(p.fd, &one, sizeof one) != sizeof one) bench_die("eventfd write");
    while (atomic_load_explicit(&p.acked, memory_order_acquire) == before) {
    }
    int64_t t1 = bench_now();
    if (i >= 100) bs_add(&st, (double)(t1 - t0), 1); /* the first 100 warm up */
  }
  atomic_store(&p.stop, true);
  if (write(p.fd, &one, sizeof one) != sizeof one) bench_die("eventfd write");
  pthread_join(t, NULL);
  close(p.fd);
  bsum b = bs_sum(&st);
  bs_free(&st);
  return b;
}

/* One dependent load from a random cache line of a region of `bytes`
 * (malloc'd, so the same pages as the library's heap: 4 KiB unless the
 * kernel backs it with huge pages): what touching one object of a big store
 * that is not in cache costs on this machine. */
static inline bsum floor_miss(size_t bytes, size_t samples) {
  size_t lines = bytes / 64;
  if (lines < 2) lines = 2;
  char *region = malloc(lines * 64);
  size_t *perm = malloc(lines * sizeof *perm);
  if (!region || !perm) bench_die("out of memory");
  for (size_t i = 0; i < lines; i++) perm[i] = i;
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (size_t i = lines - 1; i > 0; i--) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t j = x % (i + 1), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (size_t i = 0; i < lines; i++) /* one cycle through every line */
    *(void **)(region + perm[i] * 64) = region + perm[(i + 1) % lines] * 64;
  free(perm);
  void *p = region + 0;
  bstats st = {0};
  BENCH_LOOP(&st, samples, BENCH_BATCH, p = *(void **)p);
  bench_escape(p);
  bsum b = bs_sum(&st);
  bs_free(&st);
  free(region);
  return b;
}

/* ---- stores ---------------------------------------------------------------- */

/* The variable name the single-variable figures use: a realistic length
 * (the store hashes it, the registry hashes it again). */
#define BENCH_VAR "temperature"

static inline void bench_define_float(rstate_store *s, const char *name) {
  rstate_var_def d = {.name = name, .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(0)};
  BENCH_OK(rstate_define(s, &d));
}

static inline rstate_store *bench_open(bool dispatch_thread) {
  rstate_store *s;
  rstate_options o = {.dispatch_thread = dispatch_thread};
  BENCH_OK(rstate_open(&s, "mem:", &o));
  return s;
}

/* The callback every inline watcher uses: counts into its userdata. */
static inline int bench_count_cb(const rstate_event *ev, void *ud) {
  (void)ev;
  (*(uint64_t *)ud)++;
  return RSTATE_CONTINUE;
}

static inline rstate_watch_id bench_watch(rstate_store *s, const char *name, rstate_watch_fn fn, void *ud, bool queued) {
  rstate_watch_opts o = {.queued = queued};
  rstate_watch_id id;
  BENCH_OK(rstate_watch(s, &name, 1, fn, ud, &o, &id));
  return id;
}

static inline void bench_expect(const char *what, uint64_t got, uint64_t want) {
  if (got == want) return;
  fprintf(stderr, "%s: %s: %llu events delivered, %llu expected\n", bench_prog, what, (unsigned long long)got,
          (unsigned long long)want);
  exit(3);
}

/* ---- memory ------------------------------------------------------------------ */

#include <malloc.h>
/* Bytes the allocator has handed out (heap chunks, headers included, plus
 * mmapped blocks): the figure memory rows are differences of. */
static inline double bench_heap_bytes(void) {
  struct mallinfo2 mi = mallinfo2();
  return (double)mi.uordblks + (double)mi.hblkhd;
}

#endif
