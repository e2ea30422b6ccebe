/*
 * remote_throughput.c — change events per second delivered to one watching
 * client over a Unix socket (issue 5: ≥ 2,000,000 per second).
 *
 * A setter in the server process changes a float variable N times with
 * rstate_set_float on the served mem: store, as fast as it can (each change
 * its own revision, so its own EVENT frame); one client store watches it
 * inline and counts its callbacks. Events per second from the first set to
 * the last callback, wall clock, the mean of 3 rounds. The server is given a
 * max_queue_bytes of 1 GiB so that it never coalesces: every change must
 * reach the callback (the program checks that the count and the sum of
 * `coalesced` are N).
 *
 *   remote.stream         one rstate_set_float per change (the target)
 *   remote.stream.cpu     CPU time per event of the whole process (every
 *                         thread): what the pipeline costs, whatever share
 *                         of the machine it got (remote.stream.cpus: CPU
 *                         time over wall time while streaming)
 *   remote.stream.cpu.*   CPU time per event of the setting thread, the
 *                         client's connection thread (from its first to its
 *                         last callback) and the rest of the process (the
 *                         server thread): where the time goes
 *   remote.stream.batch   rstate_set_many of 100 variables per call (one
 *                         revision, one EVENT frame of 100 events), the
 *                         client watching them with one pattern
 *
 * Floors (same run): floor.unix.stream — BR_FRAME-byte (89, one EVENT
 * frame) messages through a Unix socket, written 64 KiB at a time and read
 * 64 KiB at a time, the reader walking every frame's length prefix: what the
 * kernel's copy costs per event when everything is batched; floor.unix.msg —
 * the same with one write() per message (the reader still reads what has
 * arrived): what an event costs when each goes out in its own system call.
 */
#include "bench_remote.h"

/* ---- the library -------------------------------------------------------------- */

typedef struct counter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_ulong count;
  unsigned long want;
  uint64_t coalesced;
  int64_t cpu_first, cpu_last; /* the connection thread's CPU clock */
} counter;

static int count_cb(const rstate_event *ev, void *ud) {
  counter *c = ud;
  if (ev->kind != RSTATE_EVENT_CHANGED) return RSTATE_CONTINUE;
  c->coalesced += ev->coalesced; /* one connection thread calls this */
  unsigned long n = atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed) + 1;
  if (c->cpu_first == 0) c->cpu_first = bench_cpu_now();
  pthread_mutex_lock(&c->mu);
  unsigned long want = c->want;
  pthread_mutex_unlock(&c->mu);
  if (n == want) {
    c->cpu_last = bench_cpu_now();
    pthread_mutex_lock(&c->mu);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
  return RSTATE_CONTINUE;
}

static void counter_expect(counter *c, unsigned long more) {
  pthread_mutex_lock(&c->mu);
  c->want = atomic_load(&c->count) + more;
  c->cpu_first = 0;
  pthread_mutex_unlock(&c->mu);
}

static void counter_wait(counter *c, const char *what) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 30;
  pthread_mutex_lock(&c->mu);
  while (atomic_load(&c->count) < c->want)
    if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) break;
  unsigned long got = atomic_load(&c->count), want = c->want;
  pthread_mutex_unlock(&c->mu);
  bench_expect(what, got, want);
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "remote_throughput");
  size_t n = bench_n(200000, 20000);
  int rounds = 3;

  double fs = floor_stream("unix", n * 5, 65536 / BR_FRAME);
  bench_floor_row("floor.unix.stream", "floor: 89-byte frames through a unix socket, 64 KiB writes",
                  (bsum){fs, fs, NAN, NAN, NAN});
  double fm = floor_stream("unix", n, 1);
  bench_floor_row("floor.unix.msg", "floor: 89-byte frames through a unix socket, one write each",
                  (bsum){fm, fm, NAN, NAN, NAN});

  rstate_server_opts so = {.max_queue_bytes = (size_t)1 << 30};
  bserver b;
  bserver_start(&b, "unix", &so);
  bench_define_float(b.store, BENCH_VAR);
  enum { NB = 100 };
  char names[NB][16];
  rstate_assign items[NB];
  for (int i = 0; i < NB; i++) {
    snprintf(names[i], sizeof names[i], "batch.%03d", i);
    bench_define_float(b.store, names[i]);
    items[i] = (rstate_assign){names[i], rstate_float(0)};
  }
  rstate_store *cl = bclient_open(&b);
  counter c1 = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  counter c2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  rstate_watch_id w;
  const char *name = BENCH_VAR, *pattern = "batch.*";
  BENCH_OK(rstate_watch(cl, &name, 1, count_cb, &c1, NULL, &w));
  BENCH_OK(rstate_watch(cl, &pattern, 1, count_cb, &c2, NULL, &w));

  /* one change per set */
  double x = 0, ns = 0, cpu_set = 0, cpu_client = 0, cpu_rest = 0, cpu_all = 0, cpus = 0;
  for (int r = 0; r < rounds; r++) {
    counter_expect(&c1, n);
    int64_t p0 = bench_proc_cpu_now(), c0 = bench_cpu_now(), t0 = bench_now();
    for (size_t i = 0; i < n; i++) BENCH_OK(rstate_set_float(b.store, BENCH_VAR, ++x));
    int64_t c1t = bench_cpu_now();
    counter_wait(&c1, "remote stream");
    int64_t t1 = bench_now(), p1 = bench_proc_cpu_now();
    ns += (double)(t1 - t0) / (double)n;
    double setter = (double)(c1t - c0), client = (double)(c1.cpu_last - c1.cpu_first);
    cpu_set += setter / (double)n;
    cpu_client += client / (double)n;
    cpu_rest += ((double)(p1 - p0) - setter - client) / (double)n;
    cpu_all += (double)(p1 - p0) / (double)n;
    cpus += (double)(p1 - p0) / (double)(t1 - t0);
  }
  bench_expect("remote stream: coalesced", c1.coalesced, (uint64_t)n * rounds);
  ns /= rounds;
  bench_rate("remote.stream", "change events/s to one watching client, unix:, one set each", "events/s", 1e9 / ns,
             bench_nopct, "floor.unix.stream", fs, '>', 2e6);
  bench_latency("remote.stream.cpu", "  CPU per event, all threads (1e9 / this: events/s per CPU)", "ns/event",
                (bsum){cpu_all / rounds, ns, NAN, NAN, NAN}, "floor.unix.stream", fs, 0, 0);
  bench_ratio("remote.stream.cpus", "  CPUs the process had while streaming (of the machine's)", cpus / rounds, 0, 0);
  bench_latency("remote.stream.cpu.set", "  CPU per event: the setting thread (rstate_set_float + tap)", "ns/event",
                (bsum){cpu_set / rounds, ns, NAN, NAN, NAN}, NULL, NAN, 0, 0);
  bench_latency("remote.stream.cpu.server", "  CPU per event: the server thread (rest of the process)", "ns/event",
                (bsum){cpu_rest / rounds, ns, NAN, NAN, NAN}, NULL, NAN, 0, 0);
  bench_latency("remote.stream.cpu.client", "  CPU per event: the client's connection thread", "ns/event",
                (bsum){cpu_client / rounds, ns, NAN, NAN, NAN}, NULL, NAN, 0, 0);

  /* batches of 100 */
  size_t nb = n / NB;
  double bns = 0;
  for (int r = 0; r < rounds; r++) {
    counter_expect(&c2, nb * NB);
    int64_t t0 = bench_now();
    for (size_t i = 0; i < nb; i++) {
      x += 1;
      for (int k = 0; k < NB; k++) items[k].value.u.f = x;
      BENCH_OK(rstate_set_many(b.store, items, NB, NULL, NULL));
    }
    counter_wait(&c2, "remote stream, batches");
    bns += (double)(bench_now() - t0) / (double)(nb * NB);
  }
  bench_expect("remote stream, batches: coalesced", c2.coalesced, (uint64_t)nb * NB * rounds);
  bns /= rounds;
  bench_rate("remote.stream.batch", "change events/s to one client, unix:, set_many of 100", "events/s", 1e9 / bns,
             bench_nopct, "floor.unix.stream", fs, 0, 0);

  rstate_close(cl);
  bserver_stop(&b);
  return 0;
}
