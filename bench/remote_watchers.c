/*
 * remote_watchers.c — a server holding 1,000 connected watchers (issue 5),
 * over a Unix socket.
 *
 * Opens 1,000 client stores in this process (each is a connection, an
 * eventfd and a connection thread: the soft RLIMIT_NOFILE is raised to fit),
 * each watching one float variable inline, then makes changes from a
 * 1,001st client, one at a time, each waited for until all 1,000 callbacks
 * ran. The number of watchers is not scaled by --scale: the target is
 * 1,000; the number of changes is.
 *
 *   remote.watchers          watchers connected that received every change
 *                            (the target: all 1,000)
 *   remote.watchers.connect  time to open the 1,000 stores and register their
 *                            watches, one after the other: per connection
 *                            (.first100 and .last100: the first and the
 *                            last hundred), and all of them (.all)
 *   remote.watchers.rss      process RSS growth per connection: client and
 *                            server side together (both are in this process:
 *                            the connection thread's stack pages, its
 *                            buffers, the server's client state)
 *   remote.watchers.heap     heap allocated per connection (glibc mallinfo2):
 *                            more than the RSS, since buffers reserved for
 *                            64 KiB reads are mostly never touched
 *   remote.watchers.last     set on a client → the last of the 1,000
 *                            callbacks (p50 / p99)
 *   remote.watchers.one      set a variable that one other client watches →
 *                            its callback, with the 1,000 connected and idle
 *                            (their variable does not change); its floor,
 *                            remote.watchers.one.alone, is the same before
 *                            the 1,000 connect: the difference is what the
 *                            server spends per connected client and change
 *
 * No floor of its own: what waking 100 threads through 100 sockets costs
 * here is remote_fanout's floor.unix.fan100, and 1,000 cost about ten
 * times that.
 */
#include "bench_remote.h"

#define WATCHERS 1000

typedef struct watcher {
  arrival *a;
  uint64_t got;
} watcher;

static int watcher_cb(const rstate_event *ev, void *ud) {
  watcher *w = ud;
  if (ev->kind == RSTATE_EVENT_CHANGED) w->got++;
  return arrival_cb(ev, w->a);
}

#define ONE_VAR "pressure"

/* Sets ONE_VAR samples times (after a warm-up), each waited for until the
 * one client watching it ran its callback. */
static void one_latency(rstate_store *setter, arrival *a, bstats *st, size_t samples) {
  static double x;
  for (size_t s = 0; s < samples + 10; s++) {
    arrival_expect(a, 1);
    int64_t s0 = bench_now();
    BENCH_OK(rstate_set_float(setter, ONE_VAR, ++x));
    int64_t s1 = arrival_wait(a, "the one watcher");
    if (s >= 10) bs_add(st, (double)(s1 - s0), 1);
  }
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "remote_watchers");
  size_t samples = bench_n(200, 30);
  rlim_t lim = bench_raise_nofile(4 * WATCHERS + 64);
  if (lim < 3 * WATCHERS + 32)
    fprintf(stderr, "remote_watchers: RLIMIT_NOFILE is %lu: fewer than %d connections will fit\n", (unsigned long)lim,
            WATCHERS);

  rstate_server_opts so = {.max_clients = WATCHERS + 16};
  bserver b;
  bserver_start(&b, "unix", &so);
  bench_define_float(b.store, BENCH_VAR);
  bench_define_float(b.store, ONE_VAR);
  rstate_store *setter = bclient_open(&b);
  rstate_store *one = bclient_open(&b);
  arrival a1;
  arrival_init(&a1);
  const char *one_name = ONE_VAR;
  rstate_watch_id one_id;
  BENCH_OK(rstate_watch(one, &one_name, 1, arrival_cb, &a1, NULL, &one_id));
  bstats alone = {0};
  one_latency(setter, &a1, &alone, samples);
  arrival a;
  arrival_init(&a);
  static rstate_store *cl[WATCHERS];
  static watcher w[WATCHERS];
  const char *name = BENCH_VAR;

  double r0 = bench_rss_bytes(), h0 = bench_heap_bytes();
  int64_t t0 = bench_now(), t100 = 0, t900 = 0;
  size_t n = 0;
  for (; n < WATCHERS; n++) {
    if (n == 100) t100 = bench_now();
    if (n == 900) t900 = bench_now();
    rstate_options o = {.connect_timeout_ms = 10000, .request_timeout_ms = 10000};
    int rc = rstate_open(&cl[n], bserver_uri(&b), &o);
    if (rc) {
      fprintf(stderr, "remote_watchers: connection %zu: %s\n", n + 1, rstate_last_error());
      break;
    }
    w[n].a = &a;
    rstate_watch_id id;
    rc = rstate_watch(cl[n], &name, 1, watcher_cb, &w[n], NULL, &id);
    if (rc) {
      fprintf(stderr, "remote_watchers: watch %zu: %s\n", n + 1, rstate_last_error());
      rstate_close(cl[n]);
      break;
    }
  }
  int64_t t1 = bench_now();
  double r1 = bench_rss_bytes(), h1 = bench_heap_bytes();
  double conn_ns = (double)(t1 - t0);

  size_t warm = 10;
  bstats st = {0};
  double x = 0;
  for (size_t s = 0; n && s < samples + warm; s++) {
    arrival_expect(&a, n);
    int64_t s0 = bench_now();
    BENCH_OK(rstate_set_float(setter, BENCH_VAR, ++x));
    int64_t s1 = arrival_wait(&a, "1,000 watchers");
    if (s >= warm) bs_add(&st, (double)(s1 - s0), 1);
  }
  bstats among = {0};
  one_latency(setter, &a1, &among, samples);
  size_t complete = 0;
  for (size_t i = 0; i < n; i++) complete += w[i].got == samples + warm;
  bench_expect("1,000 watchers: coalesced", a.coalesced, a.count);

  char label[160];
  snprintf(label, sizeof label, "watchers connected that got all %zu changes (of %d opened)", samples + warm,
           WATCHERS);
  brow r = {"remote.watchers", label, "watchers", (double)complete, bench_nopct, NULL, NAN, NAN, '>', WATCHERS};
  bench_row(&r);
  bench_latency("remote.watchers.connect", "open + watch, per connection (1,000 one after another)", "ns/op",
                (bsum){n ? conn_ns / (double)n : NAN, NAN, NAN, NAN, NAN}, NULL, NAN, 0, 0);
  if (n == WATCHERS) {
    bench_latency("remote.watchers.connect.first100", "  the first 100, per connection", "ns/op",
                  (bsum){(double)(t100 - t0) / 100, NAN, NAN, NAN, NAN}, NULL, NAN, 0, 0);
    bench_latency("remote.watchers.connect.last100", "  the last 100 (900 already connected), per connection",
                  "ns/op", (bsum){(double)(t1 - t900) / 100, NAN, NAN, NAN, NAN}, NULL, NAN, 0, 0);
  }
  bench_latency("remote.watchers.connect.all", "open + watch of all 1,000 connections", "ns",
                (bsum){conn_ns, NAN, NAN, NAN, NAN}, NULL, NAN, 0, 0);
  brow rr = {"remote.watchers.rss", "process RSS growth per connection (client + server side)", "B",
             n ? (r1 - r0) / (double)n : NAN, bench_nopct, NULL, NAN, NAN, 0, 0};
  bench_row(&rr);
  brow rh = {"remote.watchers.heap", "heap allocated per connection (mallinfo2; much of it never touched)", "B",
             n ? (h1 - h0) / (double)n : NAN, bench_nopct, NULL, NAN, NAN, 0, 0};
  bench_row(&rh);
  bsum sl = bs_sum(&st);
  bench_pct_row("remote.watchers.last", "set on a client -> last of the 1,000 callbacks, p50", sl.p50, sl, NULL, NAN,
                0, 0);
  bs_free(&st);
  bsum s_alone = bs_sum(&alone), s_among = bs_sum(&among);
  bench_pct_row("remote.watchers.one.alone", "set -> callback on the one client watching, no other client, p50",
                s_alone.p50, s_alone, NULL, NAN, 0, 0);
  snprintf(label, sizeof label, "set -> callback on the one client watching, %zu others connected, p50", n);
  bench_pct_row("remote.watchers.one", label, s_among.p50, s_among, "remote.watchers.one.alone", s_alone.p50, 0, 0);
  bs_free(&alone);
  bs_free(&among);

  int64_t c0 = bench_now();
  for (size_t i = 0; i < n; i++) rstate_close(cl[i]);
  bench_latency("remote.watchers.close", "rstate_close, per connection", "ns/op",
                (bsum){n ? (double)(bench_now() - c0) / (double)n : NAN, NAN, NAN, NAN, NAN}, NULL, NAN, 0, 0);
  rstate_close(one);
  rstate_close(setter);
  bserver_stop(&b);
  return 0;
}
