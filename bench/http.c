/*
 * http.c — rstated's HTTP side (tools/http/) beside its socket, in one
 * process and one run: a server serving a mem: store over unix:, and the
 * HTTP server on the same store, as rstated --http runs them.
 *
 *  1. latency: a set made by a socket client → the event at another socket
 *     client's inline watch, and → the SSE line at a curl-like client (a
 *     plain TCP socket reading /v1/watch). Same changes, same run: p50 of
 *     each, and their ratio (target: SSE p50 <= 2x the socket's).
 *  2. one stream's rate: 200,000 changes made in the served store as fast
 *     as it takes them, of a variable that stream alone reads (no socket
 *     client's work shares the two CPUs with it); events/s the stream
 *     delivers, and the changes it covers per second (events x coalesced)
 *     (target: >= 200,000 events/s).
 *  3. 1,000 SSE streams open on the variable, each reading every change:
 *     the socket client's latency again, and its ratio to its latency for
 *     changes of a variable no stream covers, in alternating blocks of the
 *     same run (target: unchanged within noise, <= 1.25).
 *
 * BENCH_HTTP_NICE=N runs the HTTP threads N steps below the others (as
 * rstated --http-nice N).
 *
 * Built by `make bench-http` (mk/tools.mk), which links tools/http/ and
 * libmicrohttpd; not part of bench/run.sh's list, which builds only
 * against the library.
 */
#include "bench_remote.h"

#include <arpa/inet.h>
#include <sys/epoll.h>

#include "../tools/http/http.h"

#define QUIET_VAR "pressure" /* watched by the socket client, by no stream */
#define STREAM_VAR "flow"    /* read by one stream only (part 2) */

/* ---- a curl-like SSE client ------------------------------------------------- */

typedef struct sse_client {
  int fd;
  arrival *a;
  char buf[1 << 16];
  size_t len;
  bool head_done;
} sse_client;

static int http_port;
static size_t streams_open; /* streams whose answer began (registered in the hub) */

static int sse_connect(const char *query) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) bench_die("sse: connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char req[256];
  int n = snprintf(req, sizeof req, "GET /v1/watch?%s HTTP/1.0\r\nHost: bench\r\n\r\n", query);
  br_write_full(fd, req, (size_t)n);
  return fd;
}

/* Consumes what arrived; counts each complete "data:" record of a change
 * (and its coalesced count) into the arrival. */
static void sse_consume(sse_client *c) {
  char *p = c->buf, *end = c->buf + c->len;
  if (!c->head_done) {
    char *h = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!h) return;
    p = h + 4;
    c->head_done = true;
    __atomic_add_fetch(&streams_open, 1, __ATOMIC_SEQ_CST);
  }
  for (;;) {
    char *rec = memmem(p, (size_t)(end - p), "\n\n", 2);
    if (!rec) break;
    char *data = memmem(p, (size_t)(rec - p), "data: ", 6);
    if (data && memmem(data, (size_t)(rec - data), "\"kind\":\"changed\"", 16)) {
      char *co = memmem(data, (size_t)(rec - data), "\"coalesced\":", 12);
      uint64_t k = co ? strtoull(co + 12, NULL, 10) : 1;
      int64_t t = bench_now();
      arrival *a = c->a;
      pthread_mutex_lock(&a->mu);
      if (a->t_first == 0) a->t_first = t;
      a->t_last = t;
      a->coalesced += k;
      a->count++;
      if (a->count >= a->want && a->want) pthread_cond_signal(&a->cv);
      pthread_mutex_unlock(&a->mu);
    }
    p = rec + 2;
  }
  c->len = (size_t)(end - p);
  memmove(c->buf, p, c->len);
}

/* A change made before a stream registered is not on it (no include_initial):
 * measure only once n streams' answers began. */
static void wait_streams_open(size_t n) {
  int64_t dl = bench_now() + 30000000000LL;
  while (__atomic_load_n(&streams_open, __ATOMIC_SEQ_CST) < n) {
    if (bench_now() > dl) bench_die("the SSE streams did not all open within 30 s");
    usleep(1000);
  }
}

static volatile bool readers_stop;

static void *sse_reader(void *arg) {
  sse_client *c = arg;
  while (!readers_stop) {
    ssize_t k = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    if (k <= 0) break;
    c->len += (size_t)k;
    sse_consume(c);
  }
  return NULL;
}

/* Many streams read by one epoll thread, each into its own small buffer. */
typedef struct herd {
  int ep;
  size_t n;
  sse_client *c;
  arrival a; /* counts every stream's events */
} herd;

static void *herd_reader(void *arg) {
  herd *h = arg;
  struct epoll_event evs[256];
  while (!readers_stop) {
    int n = epoll_wait(h->ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      sse_client *c = evs[i].data.ptr;
      ssize_t k = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
      if (k <= 0) {
        epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL);
        continue;
      }
      c->len += (size_t)k;
      sse_consume(c);
    }
  }
  return NULL;
}


/* n changes made by setter; the socket watcher's and the SSE client's
 * latency per change. Each change is made once the last one reached every
 * reader (herd: each of its streams), as in any latency measurement here:
 * the figure is a change's way through an otherwise idle daemon. */
static void latency(rstate_store *setter, const char *var, arrival *sock, arrival *sse, size_t n, bstats *ls, bstats *lh,
                    arrival *herd_a, size_t herd_n) {
  static double v = 0;
  for (size_t i = 0; i < n; i++) {
    arrival_expect(sock, 1);
    if (sse) arrival_expect(sse, 1);
    if (herd_a) arrival_expect(herd_a, herd_n);
    int64_t t0 = bench_now();
    BENCH_OK(rstate_set_float(setter, var, v += 1));
    int64_t ts = arrival_wait(sock, "the socket client's event");
    bs_push(ls, (double)(ts - t0));
    if (sse) {
      int64_t th = arrival_wait(sse, "the SSE line");
      bs_push(lh, (double)(th - t0));
    }
    if (herd_a) {
      int64_t tl = arrival_wait(herd_a, "the change on every stream");
      bs_push(lh, (double)(tl - t0));
    }
  }
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "http");
  struct rlimit rl = {4096, 4096};
  setrlimit(RLIMIT_NOFILE, &rl);
  bserver b;
  bserver_start(&b, "unix", NULL);
  bench_define_float(b.store, BENCH_VAR);
  http_server *web;
  http_opts ho = {.listen = "127.0.0.1:0", .max_connections = 1100};
  const char *nice_env = getenv("BENCH_HTTP_NICE"); /* rstated --http-nice */
  ho.nice = nice_env ? atoi(nice_env) : 0;
  char err[256];
  if (http_start(&web, b.store, &ho, err, sizeof err)) bench_die(err);
  http_port = atoi(strrchr(http_url(web), ':') + 1);

  rstate_store *setter = bclient_open(&b), *watcher = bclient_open(&b);
  arrival sock, sse;
  arrival_init(&sock);
  arrival_init(&sse);
  const char *names[] = {BENCH_VAR};
  BENCH_OK(rstate_watch(watcher, names, 1, arrival_cb, &sock, NULL, NULL));
  sse_client *one = calloc(1, sizeof *one);
  one->fd = sse_connect("names=" BENCH_VAR);
  one->a = &sse;
  pthread_t rt;
  pthread_create(&rt, NULL, sse_reader, one);
  wait_streams_open(1);

  /* 1. latency, same changes */
  size_t n = bench_n(2000, 200);
  bstats ls = {0}, lh = {0};
  latency(setter, BENCH_VAR, &sock, &sse, 100, &ls, &lh, NULL, 0); /* warm up */
  bs_free(&ls);
  bs_free(&lh);
  latency(setter, BENCH_VAR, &sock, &sse, n, &ls, &lh, NULL, 0);
  bsum s1 = bs_sum(&ls), h1 = bs_sum(&lh);
  bench_pct_row("http.lat.socket", "set (socket client) -> socket client's inline watch", s1.p50, s1, NULL, NAN, 0, 0);
  bench_pct_row("http.lat.sse", "set (socket client) -> SSE line at a curl-like client", h1.p50, h1, NULL, NAN, 0, 0);
  bench_ratio("http.lat.ratio", "SSE p50 / socket p50, same changes", h1.p50 / s1.p50, '<', 2.0);

  /* 2. one stream's rate: changes made in the served store itself, of a
   * variable only this stream reads */
  bench_define_float(b.store, STREAM_VAR);
  arrival flow;
  arrival_init(&flow);
  sse_client *two = calloc(1, sizeof *two);
  two->fd = sse_connect("names=" STREAM_VAR);
  two->a = &flow;
  pthread_t rt2;
  pthread_create(&rt2, NULL, sse_reader, two);
  wait_streams_open(2);
  size_t k = bench_n(200000, 20000);
  arrival_expect(&flow, 0);
  pthread_mutex_lock(&flow.mu);
  uint64_t events0 = flow.count, cover0 = flow.coalesced;
  flow.t_first = 0;
  flow.want = 0;
  pthread_mutex_unlock(&flow.mu);
  int64_t t0 = bench_now();
  double v = 1e9;
  for (size_t i = 0; i < k; i++) BENCH_OK(rstate_set_float(b.store, STREAM_VAR, v += 1));
  int64_t t_set = bench_now();
  for (;;) { /* until the stream covered every change */
    pthread_mutex_lock(&flow.mu);
    uint64_t covered = flow.coalesced - cover0;
    pthread_mutex_unlock(&flow.mu);
    if (covered >= k) break;
    if (bench_now() - t0 > 30000000000LL) bench_die("the stream did not cover every change within 30 s");
    usleep(1000);
  }
  pthread_mutex_lock(&flow.mu);
  double secs = (double)(flow.t_last - t0) / 1e9;
  uint64_t events = flow.count - events0, covered = flow.coalesced - cover0;
  pthread_mutex_unlock(&flow.mu);
  bench_rate("http.stream.events", "events/s one SSE stream delivered (setter flat out)", "events/s",
             (double)events / secs, bench_nopct, NULL, NAN, '>', 200000);
  bench_rate("http.stream.changes", "changes/s it covered (events x coalesced)", "changes/s", (double)covered / secs,
             bench_nopct, NULL, NAN, 0, 0);
  printf("  (%zu changes set in %.3f s; the stream delivered %llu events covering %llu changes in %.3f s)\n", k,
         (double)(t_set - t0) / 1e9, (unsigned long long)events, (unsigned long long)covered, secs);

  /* 3. 1,000 streams reading every change of BENCH_VAR. The socket client
   * watches QUIET_VAR too, which no stream covers: blocks of changes of the
   * one and of the other alternate, so the socket client's latency with the
   * streams reading is compared with its latency without, in the same
   * minute of the same run (the machine's drift from minute to minute is
   * larger than the effect, as bench/notes.md shows). */
  bench_define_float(b.store, QUIET_VAR);
  const char *quiet[] = {QUIET_VAR};
  BENCH_OK(rstate_watch(watcher, quiet, 1, arrival_cb, &sock, NULL, NULL));
  herd h = {.n = bench_n(1000, 100)};
  arrival_init(&h.a);
  h.ep = epoll_create1(EPOLL_CLOEXEC);
  h.c = calloc(h.n, sizeof *h.c);
  for (size_t i = 0; i < h.n; i++) {
    h.c[i].fd = sse_connect("names=" BENCH_VAR);
    h.c[i].a = &h.a;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &h.c[i]};
    epoll_ctl(h.ep, EPOLL_CTL_ADD, h.c[i].fd, &e);
  }
  pthread_t ht;
  pthread_create(&ht, NULL, herd_reader, &h);
  /* every stream open (its answer began after it registered): one change
   * reaches all of them */
  wait_streams_open(h.n + 2);
  arrival_expect(&h.a, h.n);
  arrival_expect(&sock, 1);
  BENCH_OK(rstate_set_float(setter, BENCH_VAR, -1));
  arrival_wait(&sock, "the socket event");
  arrival_wait(&h.a, "the change on every stream");
  bstats ls3 = {0}, lh3 = {0}, lq[2] = {{0}};
  enum { BLOCKS = 10 };
  size_t per = n / BLOCKS ? n / BLOCKS : 1;
  for (size_t blk = 0; blk < BLOCKS; blk++) {
    latency(setter, QUIET_VAR, &sock, NULL, per, &lq[blk < BLOCKS / 2], NULL, NULL, 0);
    latency(setter, BENCH_VAR, &sock, NULL, per, &ls3, &lh3, &h.a, h.n);
  }
  n = per * BLOCKS;
  bsum s3 = bs_sum(&ls3), q1 = bs_sum(&lq[1]), q2 = bs_sum(&lq[0]);
  bs_merge(&lq[0], &lq[1]);
  bsum sq = bs_sum(&lq[0]);
  /* every stream got every change */
  int64_t dl = bench_now() + 10000000000LL;
  for (;;) {
    pthread_mutex_lock(&h.a.mu);
    uint64_t c = h.a.coalesced;
    pthread_mutex_unlock(&h.a.mu);
    if (c >= (uint64_t)h.n * (n + 1) || bench_now() > dl) {
      printf("  %zu streams covered %llu of %llu changes\n", h.n, (unsigned long long)c,
             (unsigned long long)h.n * (n + 1));
      break;
    }
    usleep(1000);
  }
  char label[120];
  snprintf(label, sizeof label, "set -> socket client's watch, %zu SSE streams reading", h.n);
  bench_pct_row("http.lat.socket1k", label, s3.p50, s3, NULL, NAN, 0, 0);
  bench_pct_row("http.lat.socket1k.quiet", "set of a variable no stream covers -> the socket watch, blocks between",
                sq.p50, sq, NULL, NAN, 0, 0);
  printf("  (changes no stream covers: p50 %.1f us in the first five blocks, %.1f us in the last five)\n", q1.p50 / 1e3,
         q2.p50 / 1e3);
  bench_ratio("http.lat.socket1k.ratio", "socket p50 with the streams reading / without, alternating blocks",
              s3.p50 / sq.p50, '<', 1.25);
  bsum l3 = bs_sum(&lh3);
  snprintf(label, sizeof label, "set -> the last of %zu SSE streams", h.n);
  bench_pct_row("http.lat.sse1k", label, l3.p50, l3, NULL, NAN, 0, 0);

  readers_stop = true;
  http_stop(web); /* ends every stream: the readers see EOF */
  pthread_join(rt, NULL);
  pthread_join(rt2, NULL);
  pthread_join(ht, NULL);
  for (size_t i = 0; i < h.n; i++) close(h.c[i].fd);
  close(one->fd);
  close(two->fd);
  free(two);
  free(h.c);
  free(one);
  rstate_close(setter);
  rstate_close(watcher);
  bserver_stop(&b);
  bs_free(&ls);
  bs_free(&lh);
  bs_free(&ls3);
  bs_free(&lh3);
  bs_free(&lq[0]);
  bs_free(&lq[1]);
  return 0;
}
