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
 *     Between them, in the same turning blocks, the floor of any design
 *     that writes 1,000 TCP streams per change: an inline watch on the
 *     served store (as the HTTP side's one watch) wakes a plain thread,
 *     which send()s the SSE record part 1 received, byte for byte, to each
 *     of 1,000 loopback TCP connections, read by the same epoll reader as
 *     the SSE streams; it covers a third variable, which no SSE stream
 *     reads. The socket client's latency with that fan-out against
 *     without; the fan-out thread's CPU per change; and the CPU per change
 *     of the HTTP side and of the floor, from the process's CPU in the
 *     blocks of each kind beyond the quiet blocks', less the readers'.
 *
 * BENCH_HTTP_NICE=N runs the HTTP threads N steps below the others (as
 * rstated --http-nice N), and the floor's writing thread with them.
 * BENCH_HTTP_READER_IDLE=1 runs the 1,000 streams' readers (both kinds) as
 * SCHED_IDLE: the socket client's latency then meets the writing alone.
 *
 * Built by `make bench-http` (mk/tools.mk), which links tools/http/ and
 * libmicrohttpd; not part of bench/run.sh's list, which builds only
 * against the library.
 */
#include "bench_remote.h"

#include <arpa/inet.h>
#include <sched.h>
#include <sys/epoll.h>

#include "../tools/http/http.h"

#define QUIET_VAR "pressure" /* watched by the socket client, by no stream */
#define STREAM_VAR "flow"    /* read by one stream only (part 2) */
#define FLOOR_VAR "humidity" /* watched by the socket client and the floor (part 3) */

/* ---- a curl-like SSE client ------------------------------------------------- */

typedef struct sse_client {
  int fd;
  arrival *a;
  char buf[1 << 16];
  size_t len;
  bool head_done;
  bool sample; /* keeps the first change's record in sse_record */
} sse_client;

/* One change's SSE record as a stream carried it ("id: ...\ndata: {...}\n\n"):
 * the floor (part 3) writes exactly these bytes. */
static char sse_record[1024];
static size_t sse_record_len;

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
      if (c->sample && !sse_record_len && (size_t)(rec + 2 - p) <= sizeof sse_record) {
        sse_record_len = (size_t)(rec + 2 - p);
        memcpy(sse_record, p, sse_record_len);
      }
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

/* One stream with its own reading thread. */
static sse_client *sse_open(const char *query, arrival *a, bool sample, pthread_t *t) {
  sse_client *c = calloc(1, sizeof *c);
  if (!c) bench_die("out of memory");
  c->fd = sse_connect(query);
  c->a = a;
  c->sample = sample;
  pthread_create(t, NULL, sse_reader, c);
  return c;
}

/* Many streams read by one epoll thread, each into its own small buffer. */
typedef struct herd {
  int ep;
  size_t n;
  sse_client *c;
  arrival a; /* counts every stream's events */
  pthread_t t;
  bool stop;
} herd;

/* BENCH_HTTP_READER_IDLE=1: the streams' readers run as SCHED_IDLE, on
 * CPU time no other thread wants, as if the 1,000 clients read on other
 * machines and only the writing stayed on this one. */
static bool reader_idle;

static void *herd_reader(void *arg) {
  herd *h = arg;
  struct sched_param sp = {0};
  if (reader_idle && pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp)) bench_die("SCHED_IDLE refused");
  struct epoll_event evs[256];
  while (!__atomic_load_n(&h->stop, __ATOMIC_RELAXED)) {
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

/* Stream i of the herd reads fd (in the herd's epoll set). */
static void herd_add(herd *h, size_t i, int fd, bool head_done) {
  h->c[i].fd = fd;
  h->c[i].a = &h->a;
  h->c[i].head_done = head_done;
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = &h->c[i]};
  if (epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &e)) bench_die("epoll_ctl");
}

static void herd_init(herd *h, size_t n) {
  memset(h, 0, sizeof *h);
  h->n = n;
  arrival_init(&h->a);
  if ((h->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) bench_die("epoll_create1");
  if (!(h->c = calloc(n, sizeof *h->c))) bench_die("out of memory");
}

static void herd_stop(herd *h) {
  __atomic_store_n(&h->stop, true, __ATOMIC_RELAXED);
  pthread_join(h->t, NULL);
  for (size_t i = 0; i < h->n; i++) close(h->c[i].fd);
  close(h->ep);
  free(h->c);
}

/* ---- the floor: a bare fan-out (part 3) -------------------------------------- */

/* An inline watch on the served store tells a plain thread of each change,
 * as the HTTP side's one watch tells its waker (a mutex, a condition
 * variable); the thread writes the record with one send() to each
 * connection. */
typedef struct fanout {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t pending;
  bool stop;
  int *fd;
  size_t n;
  int64_t cpu;     /* the thread's CPU time while writing */
  uint64_t rounds; /* changes written to every connection */
  pthread_t t;
} fanout;

static int fanout_cb(const rstate_event *ev, void *ud) {
  if (ev->kind != RSTATE_EVENT_CHANGED) return RSTATE_CONTINUE;
  fanout *f = ud;
  pthread_mutex_lock(&f->mu);
  f->pending++;
  pthread_cond_signal(&f->cv);
  pthread_mutex_unlock(&f->mu);
  return RSTATE_CONTINUE;
}

/* BENCH_HTTP_NICE lowers the floor's writing thread as it lowers the HTTP
 * threads: the floor stays the same design as the one it bounds. */
static int fanout_nice;

static void *fanout_main(void *arg) {
  fanout *f = arg;
  if (fanout_nice > 0) {
    errno = 0;
    int now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0) setpriority(PRIO_PROCESS, (id_t)gettid(), now + fanout_nice > 19 ? 19 : now + fanout_nice);
  }
  pthread_mutex_lock(&f->mu);
  for (;;) {
    while (!f->pending && !f->stop) pthread_cond_wait(&f->cv, &f->mu);
    if (f->stop) break;
    uint64_t k = f->pending;
    f->pending = 0;
    pthread_mutex_unlock(&f->mu);
    int64_t c0 = bench_cpu_now();
    for (uint64_t j = 0; j < k; j++)
      for (size_t i = 0; i < f->n; i++)
        if (send(f->fd[i], sse_record, sse_record_len, MSG_NOSIGNAL) != (ssize_t)sse_record_len)
          bench_die("floor: send");
    int64_t c1 = bench_cpu_now();
    pthread_mutex_lock(&f->mu);
    f->cpu += c1 - c0;
    f->rounds += k;
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

/* n loopback TCP connections (TCP_NODELAY both ends): the writer's ends in
 * f, the reader's in the herd. */
static void fanout_connect(fanout *f, herd *h) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 64) || getsockname(l, (struct sockaddr *)&a, &len))
    bench_die("floor: tcp listen");
  if (!(f->fd = calloc(h->n, sizeof *f->fd))) bench_die("out of memory");
  f->n = h->n;
  int one = 1;
  for (size_t i = 0; i < h->n; i++) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) bench_die("floor: tcp connect");
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) bench_die("floor: tcp accept");
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    f->fd[i] = s;
    herd_add(h, i, c, true);
  }
  close(l);
}

/* ---- CPU per change ------------------------------------------------------------ */

static int64_t clock_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The CPU time blocks of one kind took: the whole process's, and the
 * readers' (the benchmark's own reading). */
typedef struct cpu_acct {
  double proc, reader;
  size_t changes;
} cpu_acct;

/* The CPU per change the streams' blocks took beyond the quiet blocks,
 * less what the reader took: the fan-out's (with its wakeups). */
static double cpu_fanout(const cpu_acct *with, const cpu_acct *quiet) {
  return (with->proc - with->reader) / (double)with->changes - (quiet->proc - quiet->reader) / (double)quiet->changes;
}

/* A row of CPU time per change, beside a floor's (floor NULL: none). */
static void cpu_row(const char *id, const char *label, double ns, const char *floor, double floor_ns) {
  brow r = {id, label, "ns/change", ns, bench_nopct, floor, floor_ns, floor ? ns / floor_ns : NAN, 0, 0};
  bench_row(&r);
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

/* The blocks of part 3: changes of QUIET_VAR (no stream covers it), of
 * BENCH_VAR (the SSE streams read each) and of FLOOR_VAR (the floor's bare
 * streams carry each), in turn. */
enum { QUIET, HTTP, FLOOR, KINDS, BLOCKS = 10 };
static const char *const kind_var[KINDS] = {QUIET_VAR, BENCH_VAR, FLOOR_VAR};

typedef struct kind_run {
  bstats sock, last; /* the socket client's latency; the last stream's */
  cpu_acct cpu;
} kind_run;

/* CPU time of the readers' threads (the benchmark's own reading). */
static int64_t readers_cpu(herd *const *h) {
  int64_t t = 0;
  for (int i = 0; i < 2; i++) {
    clockid_t c;
    if (pthread_getcpuclockid(h[i]->t, &c)) bench_die("pthread_getcpuclockid");
    t += clock_ns(c);
  }
  return t;
}

/* One block of n changes of var, the process's and the readers' CPU counted
 * into r; covered: the streams that carry var (each change is awaited on
 * every one of them), or NULL. */
static void block(rstate_store *setter, const char *var, arrival *sock, size_t n, kind_run *r, herd *const *readers,
                  herd *covered, bstats *quiet_half) {
  int64_t p0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), r0 = readers_cpu(readers);
  latency(setter, var, sock, NULL, n, quiet_half ? quiet_half : &r->sock, &r->last, covered ? &covered->a : NULL,
          covered ? covered->n : 0);
  r->cpu.proc += (double)(clock_ns(CLOCK_PROCESS_CPUTIME_ID) - p0);
  r->cpu.reader += (double)(readers_cpu(readers) - r0);
  r->cpu.changes += n;
}

/* BLOCKS rounds of a block of each kind, the order turning each round so no
 * kind always follows the same one; quiet_half[1]: the quiet changes of the
 * first half. Returns the changes of each kind. */
static size_t alternate(rstate_store *setter, arrival *sock, herd *const *h, size_t n, kind_run *r,
                        bstats *quiet_half) {
  size_t per = n / BLOCKS ? n / BLOCKS : 1;
  for (size_t blk = 0; blk < BLOCKS; blk++)
    for (size_t j = 0; j < KINDS; j++) {
      size_t k = (blk + j) % KINDS;
      block(setter, kind_var[k], sock, per, &r[k], h, k == QUIET ? NULL : h[k - 1],
            k == QUIET ? &quiet_half[blk < BLOCKS / 2] : NULL);
    }
  return per * BLOCKS;
}

/* Every stream of h got every change (want of them), or says how many. */
static void herd_check(herd *h, uint64_t want) {
  int64_t dl = bench_now() + 10000000000LL;
  for (;;) {
    pthread_mutex_lock(&h->a.mu);
    uint64_t c = h->a.coalesced;
    pthread_mutex_unlock(&h->a.mu);
    if (c >= want || bench_now() > dl) {
      printf("  %zu streams covered %llu of %llu changes\n", h->n, (unsigned long long)c, (unsigned long long)want);
      return;
    }
    usleep(1000);
  }
}

/* Rows of one kind against the quiet blocks: the socket client's p50, its
 * ratio to the quiet p50, the last stream's latency, the CPU per change.
 * Returns the ratio. */
static double kind_rows(const char *id_sock, const char *id_ratio, const char *id_last, const char *what, char cmp,
                        size_t streams, kind_run *r, double quiet_p50, const kind_run *quiet, double *fan_cpu) {
  bsum s = bs_sum(&r->sock), l = bs_sum(&r->last);
  char label[160];
  snprintf(label, sizeof label, "set -> socket client's watch, %zu %s reading", streams, what);
  bench_pct_row(id_sock, label, s.p50, s, NULL, NAN, 0, 0);
  double ratio = s.p50 / quiet_p50;
  snprintf(label, sizeof label, "socket p50 with the %s reading / without, alternating blocks", what);
  bench_ratio(id_ratio, label, ratio, cmp, 1.25);
  snprintf(label, sizeof label, "set -> the last of %zu %s", streams, what);
  bench_pct_row(id_last, label, l.p50, l, NULL, NAN, 0, 0);
  *fan_cpu = cpu_fanout(&r->cpu, &quiet->cpu);
  printf(
      "  CPU per change, every thread: %.0f us with the %s, %.0f us without; the reader's %.0f us; so the "
      "fan-out's %.0f us (%.2f us per stream)\n",
      r->cpu.proc / (double)r->cpu.changes / 1e3, what, quiet->cpu.proc / (double)quiet->cpu.changes / 1e3,
      r->cpu.reader / (double)r->cpu.changes / 1e3, *fan_cpu / 1e3, *fan_cpu / 1e3 / (double)streams);
  return ratio;
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "http");
  struct rlimit rl = {8192, 8192}; /* 1,000 HTTP streams (both ends), 1,000 bare ones */
  setrlimit(RLIMIT_NOFILE, &rl);
  bserver b;
  bserver_start(&b, "unix", NULL);
  bench_define_float(b.store, BENCH_VAR);
  http_server *web;
  http_opts ho = {.listen = "127.0.0.1:0", .max_connections = 1100};
  const char *nice_env = getenv("BENCH_HTTP_NICE"); /* rstated --http-nice */
  ho.nice = nice_env ? atoi(nice_env) : 0;
  fanout_nice = ho.nice;
  const char *idle_env = getenv("BENCH_HTTP_READER_IDLE");
  reader_idle = idle_env && atoi(idle_env) > 0;
  char err[256];
  if (http_start(&web, b.store, &ho, err, sizeof err)) bench_die(err);
  http_port = atoi(strrchr(http_url(web), ':') + 1);

  rstate_store *setter = bclient_open(&b), *watcher = bclient_open(&b);
  arrival sock, sse;
  arrival_init(&sock);
  arrival_init(&sse);
  const char *names[] = {BENCH_VAR};
  BENCH_OK(rstate_watch(watcher, names, 1, arrival_cb, &sock, NULL, NULL));
  pthread_t rt;
  sse_client *one = sse_open("names=" BENCH_VAR, &sse, true, &rt);
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
  pthread_t rt2;
  sse_client *two = sse_open("names=" STREAM_VAR, &flow, false, &rt2);
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
   * larger than the effect, as bench/notes.md shows). Between them, blocks
   * of changes of FLOOR_VAR, which the floor's bare fan-out writes to its
   * own 1,000 connections: the floor of any design writing the streams,
   * in the same minutes. */
  if (!sse_record_len) bench_die("no SSE record was kept for the floor");
  bench_define_float(b.store, QUIET_VAR);
  bench_define_float(b.store, FLOOR_VAR);
  const char *more[] = {QUIET_VAR, FLOOR_VAR};
  BENCH_OK(rstate_watch(watcher, more, 2, arrival_cb, &sock, NULL, NULL));
  herd h, f;
  herd_init(&h, bench_n(1000, 100));
  for (size_t i = 0; i < h.n; i++) herd_add(&h, i, sse_connect("names=" BENCH_VAR), false);
  pthread_create(&h.t, NULL, herd_reader, &h);
  herd_init(&f, h.n);
  fanout fo = {.stop = false};
  pthread_mutex_init(&fo.mu, NULL);
  pthread_cond_init(&fo.cv, NULL);
  fanout_connect(&fo, &f);
  pthread_create(&f.t, NULL, herd_reader, &f);
  pthread_create(&fo.t, NULL, fanout_main, &fo);
  const char *floor_var[] = {FLOOR_VAR};
  rstate_watch_id fw;
  BENCH_OK(rstate_watch(b.store, floor_var, 1, fanout_cb, &fo, NULL, &fw));
  /* every stream open (its answer began after it registered): one change
   * reaches all of them */
  wait_streams_open(h.n + 2);
  herd *herds[] = {&h, &f};
  for (int kd = HTTP; kd <= FLOOR; kd++) {
    arrival_expect(&herds[kd - 1]->a, h.n);
    arrival_expect(&sock, 1);
    BENCH_OK(rstate_set_float(setter, kind_var[kd], -1));
    arrival_wait(&sock, "the socket event");
    arrival_wait(&herds[kd - 1]->a, "the change on every stream");
  }
  kind_run r[KINDS];
  memset(r, 0, sizeof r);
  bstats quiet_half[2] = {{0}};
  size_t per_kind = alternate(setter, &sock, herds, n, r, quiet_half);
  herd_check(&h, (uint64_t)h.n * (per_kind + 1));
  herd_check(&f, (uint64_t)f.n * (per_kind + 1));
  bsum q1 = bs_sum(&quiet_half[1]), q2 = bs_sum(&quiet_half[0]);
  bs_merge(&quiet_half[0], &quiet_half[1]);
  bsum sq = bs_sum(&quiet_half[0]);
  bench_pct_row("http.lat.socket1k.quiet", "set of a variable no stream covers -> the socket watch, blocks between",
                sq.p50, sq, NULL, NAN, 0, 0);
  printf("  (changes no stream covers: p50 %.1f us in the first five blocks, %.1f us in the last five)\n", q1.p50 / 1e3,
         q2.p50 / 1e3);
  double ours_cpu, floor_cpu;
  double ours = kind_rows("http.lat.socket1k", "http.lat.socket1k.ratio", "http.lat.sse1k", "SSE streams", '<', h.n,
                          &r[HTTP], sq.p50, &r[QUIET], &ours_cpu);
  /* no target: what any design writing the streams would pay here */
  double floor = kind_rows("floor.http.socket1k", "floor.http.socket1k.ratio", "floor.http.fanout1k",
                           "bare TCP streams", 0, f.n, &r[FLOOR], sq.p50, &r[QUIET], &floor_cpu);
  pthread_mutex_lock(&fo.mu);
  double thread_cpu = fo.rounds ? (double)fo.cpu / (double)fo.rounds : NAN;
  pthread_mutex_unlock(&fo.mu);
  cpu_row("floor.http.fanout1k.cpu", "the floor's writing thread: CPU per change (a send() per stream)", thread_cpu,
          NULL, NAN);
  cpu_row("floor.http.fanout1k.cpu.all", "the floor's CPU per change beyond a quiet change, every thread", floor_cpu,
          NULL, NAN);
  cpu_row("http.sse1k.cpu", "the HTTP side's CPU per change beyond a quiet change, every thread", ours_cpu,
          "floor.http.fanout1k.cpu.all", floor_cpu);
  printf(
      "  (%zu-byte records; the socket client's p50 ratio: ours %.2fx, the floor %.2fx; CPU per stream per change: "
      "ours %.2f us, the floor %.2f us)\n",
      sse_record_len, ours, floor, ours_cpu / 1e3 / (double)h.n, floor_cpu / 1e3 / (double)f.n);

  BENCH_OK(rstate_unwatch(b.store, fw));
  pthread_mutex_lock(&fo.mu);
  fo.stop = true;
  pthread_cond_signal(&fo.cv);
  pthread_mutex_unlock(&fo.mu);
  pthread_join(fo.t, NULL);
  for (size_t i = 0; i < fo.n; i++) close(fo.fd[i]);
  free(fo.fd);
  readers_stop = true;
  http_stop(web); /* ends every stream: the readers see EOF */
  pthread_join(rt, NULL);
  pthread_join(rt2, NULL);
  herd_stop(&h);
  herd_stop(&f);
  close(one->fd);
  close(two->fd);
  free(two);
  free(one);
  for (int kd = 0; kd < KINDS; kd++) {
    bs_free(&r[kd].sock);
    bs_free(&r[kd].last);
  }
  bs_free(&quiet_half[0]);
  bs_free(&quiet_half[1]);
  rstate_close(setter);
  rstate_close(watcher);
  bserver_stop(&b);
  bs_free(&ls);
  bs_free(&lh);
  return 0;
}
