/*
 * file.c — the file: store beside mem: and beside the disk's own floor,
 * measured in the same run.
 *
 *   file.set.none      rstate_set_int on file: with RSTATE_SYNC_NONE  (target <= 2x mem.set)
 *   file.set.interval  the same with RSTATE_SYNC_INTERVAL              (target <= 2x mem.set)
 *   file.set.always    one thread, RSTATE_SYNC_ALWAYS, beside floor.fdatasync: a bare
 *                      pwrite of a record's size + fdatasync          (target <= 1.3x the floor)
 *   file.always.t16    16 threads setting with SYNC_ALWAYS: sets per fdatasync (target >= 8)
 *   file.reopen        journal records replayed per second on open     (target >= 2 M/s)
 *   file.open.100k     opening a store of 100,000 variables, from its journal and from
 *                      its snapshot                                     (target <= 0.5 s)
 *   file.compact.p999  p99.9 of a set while a 100,000-variable store compacts (target <= 50 us)
 *
 * The store directories are made under $BENCH_DIR (default /tmp) and removed.
 */
#include "bench.h"
#include "disk.h"

#include <fcntl.h>
#include <sys/stat.h>

/* internal counters of the library (linked statically) */
extern _Atomic uint64_t rstate__file_syncs;
extern _Atomic size_t rstate__file_compact_bytes;

static char base[256];

static void rmrf(const char *dir) {
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) bench_die("rm -rf failed");
}

static rstate_store *open_file(const char *name, rstate_sync sync, bool fresh) {
  char dir[512], uri[600];
  snprintf(dir, sizeof dir, "%s/%s", base, name);
  if (fresh) rmrf(dir);
  snprintf(uri, sizeof uri, "file:%s", dir);
  rstate_options o = {0};
  o.sync = sync;
  rstate_store *s;
  BENCH_OK(rstate_open(&s, uri, &o));
  return s;
}

static void define_int(rstate_store *s, const char *name) {
  rstate_var_def d = {.name = name, .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(0)};
  BENCH_OK(rstate_define(s, &d));
}

static bsum time_sets(rstate_store *s, size_t samples, int64_t *x) {
  bstats st = {0};
  BENCH_LOOP(&st, samples, BENCH_BATCH, BENCH_OK(rstate_set_int(s, "x", ++*x)));
  bsum r = bs_sum(&st);
  bs_free(&st);
  return r;
}

typedef struct th_arg {
  rstate_store *s;
  int id;
  size_t n;
} th_arg;

static void *always_writer(void *p) {
  th_arg *a = p;
  char name[16];
  snprintf(name, sizeof name, "t%d", a->id);
  for (size_t i = 1; i <= a->n; i++) BENCH_OK(rstate_set_int(a->s, name, (int64_t)i));
  return NULL;
}

static int dcmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "file");
  const char *env = getenv("BENCH_DIR");
  snprintf(base, sizeof base, "%s/rstate-bench-file-%d", env && *env ? env : "/tmp", (int)getpid());
  rmrf(base);
  if (mkdir(base, 0700)) bench_die("cannot make the bench directory");
  size_t samples = bench_n(5000, 200);

  /* ---- a set: mem: beside file: --------------------------------------------- */
  rstate_store *m;
  BENCH_OK(rstate_open(&m, "mem:", NULL));
  define_int(m, "x");
  int64_t x = 0;
  time_sets(m, samples / 10, &x);
  bsum mem = time_sets(m, samples, &x);
  bench_floor_row("mem.set", "floor: the same set on mem: (rstate_set_int)", mem);
  rstate_close(m);

  const struct {
    rstate_sync sync;
    const char *id, *label, *dir;
  } modes[] = {{RSTATE_SYNC_NONE, "file.set.none", "set on file:, RSTATE_SYNC_NONE", "none"},
               {RSTATE_SYNC_INTERVAL, "file.set.interval", "set on file:, RSTATE_SYNC_INTERVAL", "interval"}};
  for (size_t i = 0; i < 2; i++) {
    rstate_store *s = open_file(modes[i].dir, modes[i].sync, true);
    define_int(s, "x");
    x = 0;
    time_sets(s, samples / 10, &x);
    bsum f = time_sets(s, samples, &x);
    bench_latency(modes[i].id, modes[i].label, "ns/op", f, "mem.set", mem.mean, '<', 2 * mem.mean);
    rstate_close(s);
  }

  /* ---- SYNC_ALWAYS, one thread, beside write + fdatasync ---------------------- */
  size_t dsamples = bench_n(300, 30);
  bsum fl = bench_floor_fdatasync(base, dsamples, 64);
  bench_floor_row("floor.fdatasync", "floor: pwrite of 64 bytes appended + fdatasync", fl);
  {
    rstate_store *s = open_file("always", RSTATE_SYNC_ALWAYS, true);
    define_int(s, "x");
    x = 0;
    bstats st = {0};
    BENCH_LOOP(&st, dsamples, 1, BENCH_OK(rstate_set_int(s, "x", ++x)));
    st.cpu = 0; /* wall time, as the floor */
    bench_latency("file.set.always", "set on file:, RSTATE_SYNC_ALWAYS, 1 thread", "ns/op", bs_sum(&st),
                  "floor.fdatasync", fl.mean, '<', 1.3 * fl.mean);
    bs_free(&st);
    rstate_close(s);
  }

  /* ---- SYNC_ALWAYS, 16 threads: sets per fdatasync ------------------------------- */
  {
    enum { T = 16 };
    rstate_store *s = open_file("always16", RSTATE_SYNC_ALWAYS, true);
    char name[16];
    for (int t = 0; t < T; t++) {
      snprintf(name, sizeof name, "t%d", t);
      define_int(s, name);
    }
    size_t per = bench_n(100, 20);
    pthread_t th[T];
    th_arg args[T];
    uint64_t s0 = atomic_load(&rstate__file_syncs);
    int64_t t0 = bench_now();
    for (int t = 0; t < T; t++) {
      args[t] = (th_arg){s, t, per};
      pthread_create(&th[t], NULL, always_writer, &args[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    int64_t t1 = bench_now();
    uint64_t syncs = atomic_load(&rstate__file_syncs) - s0;
    double sets = (double)T * (double)per;
    bench_ratio("file.always.t16", "16 threads, SYNC_ALWAYS: sets per fdatasync", sets / (double)syncs, '>', 8);
    bstats st = {0};
    bs_add(&st, (double)(t1 - t0), sets);
    bench_rate("file.always.t16r", "16 threads, SYNC_ALWAYS: sets per second", "sets/s", sets * 1e9 / (double)(t1 - t0),
               bs_sum(&st), "floor.fdatasync", fl.mean, 0, 0);
    bs_free(&st);
    rstate_close(s);
  }

  /* ---- reopening: records replayed per second ---------------------------------------- */
  {
    atomic_store(&rstate__file_compact_bytes, SIZE_MAX); /* every record stays in the journal */
    rstate_store *s = open_file("reopen", RSTATE_SYNC_NONE, true);
    char name[16];
    for (int v = 0; v < 1000; v++) {
      snprintf(name, sizeof name, "v%d", v);
      define_int(s, name);
    }
    size_t n = bench_n(1000000, 50000);
    for (size_t i = 0; i < n; i++) {
      snprintf(name, sizeof name, "v%zu", i % 1000);
      BENCH_OK(rstate_set_int(s, name, (int64_t)i));
    }
    rstate_close(s);
    atomic_store(&rstate__file_compact_bytes, 0);
    int64_t t0 = bench_now(), c0 = bench_cpu_now();
    s = open_file("reopen", RSTATE_SYNC_NONE, false);
    int64_t t1 = bench_now(), c1 = bench_cpu_now();
    rstate_close(s);
    bstats st = {0};
    bs_add(&st, (double)(t1 - t0), (double)(n + 1000));
    st.cpu = (double)(c1 - c0);
    bench_rate("file.reopen", "reopen: journal records replayed per second (CPU time)", "records/s",
               (double)(n + 1000) * 1e9 / (double)(c1 - c0), bs_sum(&st), NULL, 0, '>', 2e6);
    bs_free(&st);
  }

  /* ---- 100,000 variables: opening, and sets while it compacts ----------------------- */
  {
    rstate_store *s = open_file("big", RSTATE_SYNC_NONE, true);
    char name[32];
    for (int v = 0; v < 100000; v++) {
      snprintf(name, sizeof name, "var.%06d", v);
      define_int(s, name);
    }
    rstate_close(s);
    int64_t t0 = bench_now(), c0 = bench_cpu_now();
    s = open_file("big", RSTATE_SYNC_NONE, false);
    int64_t t1 = bench_now(), c1 = bench_cpu_now();
    bstats st = {0};
    bs_add(&st, (double)(t1 - t0), 1);
    st.cpu = (double)(c1 - c0);
    bench_latency("file.open.100k.j", "open 100,000 variables from their journal (CPU time)", "ns/op", bs_sum(&st),
                  NULL, 0, '<', 5e8);
    bs_free(&st);

    /* fold it into a snapshot (one set starts the compaction), then open from it */
    char snap[600];
    snprintf(snap, sizeof snap, "%s/big/snapshot", base);
    define_int(s, "x");
    atomic_store(&rstate__file_compact_bytes, 1);
    BENCH_OK(rstate_set_int(s, "x", 1));
    for (int i = 0; i < 60000 && access(snap, F_OK) != 0; i++) usleep(1000);
    atomic_store(&rstate__file_compact_bytes, 0);
    rstate_close(s); /* waits for the compaction to end */
    t0 = bench_now();
    c0 = bench_cpu_now();
    s = open_file("big", RSTATE_SYNC_NONE, false);
    t1 = bench_now();
    c1 = bench_cpu_now();
    st = (bstats){0};
    bs_add(&st, (double)(t1 - t0), 1);
    st.cpu = (double)(c1 - c0);
    bench_latency("file.open.100k.s", "open 100,000 variables from a snapshot (CPU time)", "ns/op", bs_sum(&st),
                  NULL, 0, '<', 5e8);
    bs_free(&st);

    /* compaction again, from the next set on; time each set until the new snapshot is there */
    struct stat sb;
    if (stat(snap, &sb)) bench_die("no snapshot");
    ino_t first = sb.st_ino;
    x = 1;
    size_t cap = 1 << 22, k = 0;
    double *lat = malloc(cap * sizeof *lat);
    atomic_store(&rstate__file_compact_bytes, 1);
    int64_t start = bench_now();
    while (k < cap) {
      int64_t a = bench_now();
      BENCH_OK(rstate_set_int(s, "x", ++x));
      lat[k++] = (double)(bench_now() - a);
      if ((k & 1023) == 0 && stat(snap, &sb) == 0 && sb.st_ino != first) break;
      if (bench_now() - start > 60000000000LL) bench_die("no compaction within 60 s");
    }
    int64_t took = bench_now() - start;
    atomic_store(&rstate__file_compact_bytes, 0);
    qsort(lat, k, sizeof *lat, dcmp);
    bsum b = {.mean = lat[k / 2], .p50 = lat[k / 2], .p99 = lat[(size_t)((double)k * 0.99)], .max = lat[k - 1],
              .wall = NAN};
    double p999 = lat[(size_t)((double)k * 0.999)];
    printf("  (%zu sets during a compaction of %.0f ms)\n", k, (double)took / 1e6);
    bench_latency("file.compact.p50", "a set while 100,000 variables compact: p50 (wall)", "ns/op", b, NULL, 0, 0,
                  0);
    brow r = {"file.compact.p999", "p99.9 of a set while 100,000 variables compact (wall)", "ns/op", p999,
              bench_nopct, NULL, NAN, NAN, '<', 50000};
    bench_row(&r);
    free(lat);
    rstate_close(s);
  }
  rmrf(base);
  return 0;
}
