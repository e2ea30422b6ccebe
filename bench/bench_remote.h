/*
 * bench_remote.h — what the remote benchmarks (remote_*.c) share on top of
 * bench.h: a server in this process serving a mem: store over unix: or tcp:,
 * client stores opened on it, a meeting point where watch callbacks on the
 * clients' connection threads record when the last of them ran, and the
 * kernel's own floors: a socket ping-pong round trip, a relay through a
 * middle thread, a stream of frames, one writer waking 100 readers.
 *
 * Everything is in one process, so one CLOCK_MONOTONIC times a set on one
 * thread and its callback on another.
 */
#ifndef BENCH_REMOTE_H
#define BENCH_REMOTE_H

#include "bench.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* The size of one EVENT frame carrying one CHANGED event of a float variable
 * named "temperature" without source or meta (docs/PROTOCOL.md 6.2): 4
 * length + 1 type + 8 sub + 8 revision + 1 flags + 4 source (absent) + 4 meta
 * count + 4 event count + 1 kind + 4+11 name + 1 type + 9 old + 9 new + 8
 * version + 8 timestamp + 4 coalesced. The floors move messages this big. */
#define BR_FRAME 89

/* ---- the server ------------------------------------------------------------ */

typedef struct bserver {
  rstate_store *store; /* the served mem: store */
  rstate_server *srv;
  char path[108]; /* unix: the socket file */
} bserver;

/* Starts a server for a new mem: store on "unix" (a socket in /tmp) or
 * "tcp" (127.0.0.1, any port). opts may be NULL. */
static inline void bserver_start(bserver *b, const char *transport, const rstate_server_opts *opts) {
  static int seq;
  memset(b, 0, sizeof *b);
  b->store = bench_open(false);
  char listen[160];
  if (!strcmp(transport, "unix")) {
    snprintf(b->path, sizeof b->path, "/tmp/rstate-bench-%ld-%d.sock", (long)getpid(), seq++);
    snprintf(listen, sizeof listen, "unix:%s", b->path);
  } else {
    snprintf(listen, sizeof listen, "tcp:127.0.0.1:0");
  }
  BENCH_OK(rstate_server_start(&b->srv, b->store, listen, opts));
}

static inline const char *bserver_uri(const bserver *b) { return rstate_server_uri(b->srv); }

static inline void bserver_stop(bserver *b) {
  rstate_server_stop(b->srv);
  rstate_close(b->store);
}

/* A client store on the server (inline watches run on its connection
 * thread). */
static inline rstate_store *bclient_open(const bserver *b) {
  rstate_store *s;
  rstate_options o = {.connect_timeout_ms = 10000, .request_timeout_ms = 10000};
  BENCH_OK(rstate_open(&s, bserver_uri(b), &o));
  return s;
}

/* ---- where callbacks meet ------------------------------------------------------ */

/* Callbacks of one or more watches (one per client) count CHANGED events
 * here; the one that brings the count to `want` records the time and wakes
 * the waiting thread. */
typedef struct arrival {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t count, want;
  int64_t t_first, t_last; /* first and last arrival since arrival_expect */
  uint64_t coalesced;      /* sum of the events' coalesced counts */
} arrival;

static inline void arrival_init(arrival *a) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
}

static inline int arrival_cb(const rstate_event *ev, void *ud) {
  if (ev->kind != RSTATE_EVENT_CHANGED) return RSTATE_CONTINUE;
  int64_t t = bench_now();
  arrival *a = ud;
  pthread_mutex_lock(&a->mu);
  if (a->t_first == 0) a->t_first = t;
  a->t_last = t;
  a->coalesced += ev->coalesced;
  if (++a->count == a->want) pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  return RSTATE_CONTINUE;
}

/* The next `more` arrivals are awaited. */
static inline void arrival_expect(arrival *a, uint64_t more) {
  pthread_mutex_lock(&a->mu);
  a->want = a->count + more;
  a->t_first = 0;
  pthread_mutex_unlock(&a->mu);
}

/* Waits for them (10 s at most: a lost event fails the program); returns the
 * time of the last. */
static inline int64_t arrival_wait(arrival *a, const char *what) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock(&a->mu);
  while (a->count < a->want)
    if (pthread_cond_timedwait(&a->cv, &a->mu, &dl) == ETIMEDOUT) break;
  uint64_t got = a->count, want = a->want;
  int64_t t = a->t_last;
  pthread_mutex_unlock(&a->mu);
  bench_expect(what, got, want);
  return t;
}

/* ---- rows ------------------------------------------------------------------- */

/* A row whose figure is one of the percentiles (a target on p50 or p99), the
 * others still shown beside it; the floor is the same percentile of the
 * floor. */
static inline void bench_pct_row(const char *id, const char *label, double value, bsum b, const char *floor,
                                 double floor_value, char cmp, double target) {
  brow r = {id, label, "ns/event", value, b, floor, floor_value, floor ? value / floor_value : NAN, cmp, target};
  bench_row(&r);
}

/* ---- floors ------------------------------------------------------------------ */

static inline void br_read_full(int fd, void *p, size_t n) {
  char *c = p;
  while (n) {
    ssize_t k = read(fd, c, n);
    if (k <= 0) {
      if (k < 0 && errno == EINTR) continue;
      bench_die("floor: read");
    }
    c += k;
    n -= (size_t)k;
  }
}

static inline void br_write_full(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = write(fd, c, n);
    if (k <= 0) {
      if (k < 0 && errno == EINTR) continue;
      bench_die("floor: write");
    }
    c += k;
    n -= (size_t)k;
  }
}

/* A connected pair of stream sockets: socketpair(AF_UNIX), or a TCP
 * connection over 127.0.0.1 with TCP_NODELAY on both ends (as the library
 * sets). */
static inline void br_pair(const char *transport, int fd[2]) {
  if (!strcmp(transport, "unix")) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd)) bench_die("socketpair");
    return;
  }
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len))
    bench_die("floor: tcp listen");
  fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd[0] < 0 || connect(fd[0], (struct sockaddr *)&a, sizeof a)) bench_die("floor: tcp connect");
  fd[1] = accept(l, NULL, NULL);
  if (fd[1] < 0) bench_die("floor: tcp accept");
  close(l);
  int one = 1;
  setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Ping-pong: a thread blocked in read() echoes each BR_FRAME-byte message;
 * one sample is one round trip (two one-way trips, two wakeups). */
typedef struct br_echo {
  int fd;
  size_t n;
} br_echo;

static inline void *br_echo_main(void *arg) {
  br_echo *e = arg;
  char buf[BR_FRAME];
  for (size_t i = 0; i < e->n; i++) {
    br_read_full(e->fd, buf, sizeof buf);
    br_write_full(e->fd, buf, sizeof buf);
  }
  return NULL;
}

static inline bsum floor_pingpong(const char *transport, size_t samples) {
  int fd[2];
  br_pair(transport, fd);
  size_t warm = 100;
  br_echo e = {fd[1], samples + warm};
  pthread_t t;
  if (pthread_create(&t, NULL, br_echo_main, &e)) bench_die("pthread_create");
  char buf[BR_FRAME] = {0};
  bstats st = {0};
  for (size_t i = 0; i < samples + warm; i++) {
    int64_t t0 = bench_now();
    br_write_full(fd[0], buf, sizeof buf);
    br_read_full(fd[0], buf, sizeof buf);
    int64_t t1 = bench_now();
    if (i >= warm) bs_add(&st, (double)(t1 - t0), 1);
  }
  pthread_join(t, NULL);
  close(fd[0]);
  close(fd[1]);
  bsum b = bs_sum(&st);
  bs_free(&st);
  return b;
}

/* A reader thread standing for a watching client: reads n frames from fd,
 * each an arrival (the clock read once the whole frame is in). */
typedef struct br_reader {
  int fd;
  size_t n;
  arrival *a;
} br_reader;

static inline void *br_reader_main(void *arg) {
  br_reader *f = arg;
  char buf[BR_FRAME];
  rstate_event ev = {.kind = RSTATE_EVENT_CHANGED, .coalesced = 1};
  for (size_t i = 0; i < f->n; i++) {
    br_read_full(f->fd, buf, sizeof buf);
    arrival_cb(&ev, f->a);
  }
  return NULL;
}

/* Relay: the shape of a remote set → callback without the library. The
 * timing thread writes a message into a socket; a middle thread (the
 * server) reads it and writes it into a second socket; a third thread (the
 * watching client) reads it, reads the clock and wakes the timing thread
 * through a condition variable, which then sends the next. One sample per
 * message, from the write to the third thread's clock read. */
typedef struct br_relay {
  int in, out; /* middle: reads in, writes out */
  size_t n;
} br_relay;

static inline void *br_relay_middle(void *arg) {
  br_relay *r = arg;
  char buf[BR_FRAME];
  for (size_t i = 0; i < r->n; i++) {
    br_read_full(r->in, buf, sizeof buf);
    br_write_full(r->out, buf, sizeof buf);
  }
  return NULL;
}

static inline bsum floor_relay(const char *transport, size_t samples) {
  int p1[2], p2[2];
  br_pair(transport, p1);
  br_pair(transport, p2);
  size_t warm = 100;
  arrival a;
  arrival_init(&a);
  br_relay r = {p1[1], p2[0], samples + warm};
  br_reader last = {p2[1], samples + warm, &a};
  pthread_t tm, tl;
  if (pthread_create(&tm, NULL, br_relay_middle, &r) || pthread_create(&tl, NULL, br_reader_main, &last))
    bench_die("pthread_create");
  char buf[BR_FRAME] = {0};
  bstats st = {0};
  for (size_t i = 0; i < samples + warm; i++) {
    arrival_expect(&a, 1);
    int64_t t0 = bench_now();
    br_write_full(p1[0], buf, sizeof buf);
    int64_t t1 = arrival_wait(&a, "floor relay");
    if (i >= warm) bs_add(&st, (double)(t1 - t0), 1);
  }
  pthread_join(tm, NULL);
  pthread_join(tl, NULL);
  close(p1[0]), close(p1[1]), close(p2[0]), close(p2[1]);
  bsum b = bs_sum(&st);
  bs_free(&st);
  return b;
}

/* Stream: BR_FRAME-byte frames through one socket, `batch` frames per
 * write(), the reader reading 64 KiB at a time and walking every frame's
 * length prefix: what the kernel's copy costs per event. */
typedef struct br_sink {
  int fd;
  size_t n; /* frames to read */
  uint64_t sum;
} br_sink;

static inline void *br_frame_reader(void *arg) {
  br_sink *k = arg;
  static uint8_t buf[65536 + BR_FRAME];
  size_t have = 0, got = 0;
  while (got < k->n) {
    ssize_t r = read(k->fd, buf + have, 65536);
    if (r <= 0) bench_die("floor: read");
    have += (size_t)r;
    size_t off = 0;
    while (have - off >= BR_FRAME) { /* walk the frames by their length prefix */
      uint32_t len;
      memcpy(&len, buf + off, 4);
      k->sum += buf[off + 4];
      off += 4 + len;
      got++;
    }
    memmove(buf, buf + off, have - off);
    have -= off;
  }
  return NULL;
}

/* ns per frame; batch: frames per write() */
static inline double floor_stream(const char *transport, size_t n, size_t batch) {
  int fd[2];
  br_pair(transport, fd);
  br_sink k = {fd[1], n, 0};
  pthread_t t;
  if (pthread_create(&t, NULL, br_frame_reader, &k)) bench_die("pthread_create");
  uint8_t *out = calloc(batch, BR_FRAME);
  if (!out) bench_die("out of memory");
  uint32_t len = BR_FRAME - 4;
  for (size_t i = 0; i < batch; i++) {
    memcpy(out + i * BR_FRAME, &len, 4);
    out[i * BR_FRAME + 4] = 0x40;
  }
  int64_t t0 = bench_now();
  for (size_t i = 0; i < n; i += batch) {
    size_t m = n - i < batch ? n - i : batch;
    br_write_full(fd[0], out, m * BR_FRAME);
  }
  pthread_join(t, NULL);
  int64_t t1 = bench_now();
  free(out);
  close(fd[0]);
  close(fd[1]);
  return (double)(t1 - t0) / (double)n;
}

/* Fan-out: one thread writes a BR_FRAME-byte message into each of BR_FAN
 * sockets, each read by its own blocked thread, which reads the clock; one
 * sample is the time to the last reader. What waking BR_FAN threads through
 * as many sockets costs on this machine. */
#define BR_FAN 100

static inline bsum floor_fan(const char *transport, size_t samples) {
  size_t warm = 50;
  arrival a;
  arrival_init(&a);
  int fd[BR_FAN][2];
  br_reader r[BR_FAN];
  pthread_t t[BR_FAN];
  for (int i = 0; i < BR_FAN; i++) {
    br_pair(transport, fd[i]);
    r[i] = (br_reader){fd[i][1], samples + warm, &a};
    if (pthread_create(&t[i], NULL, br_reader_main, &r[i])) bench_die("pthread_create");
  }
  char buf[BR_FRAME] = {0};
  bstats st = {0};
  for (size_t s = 0; s < samples + warm; s++) {
    arrival_expect(&a, BR_FAN);
    int64_t t0 = bench_now();
    for (int i = 0; i < BR_FAN; i++) br_write_full(fd[i][0], buf, sizeof buf);
    int64_t t1 = arrival_wait(&a, "floor fan-out");
    if (s >= warm) bs_add(&st, (double)(t1 - t0), 1);
  }
  for (int i = 0; i < BR_FAN; i++) {
    pthread_join(t[i], NULL);
    close(fd[i][0]);
    close(fd[i][1]);
  }
  bsum b = bs_sum(&st);
  bs_free(&st);
  return b;
}

/* ---- the process ------------------------------------------------------------------ */

/* Resident set size of this process, in bytes (/proc/self/statm). */
static inline double bench_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2) bench_die("/proc/self/statm");
  fclose(f);
  return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

/* CPU time of the whole process (every thread), ns. */
static inline int64_t bench_proc_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Raises the soft limit on open files to at least want (up to the hard
 * limit); returns the limit now in force. */
static inline rlim_t bench_raise_nofile(rlim_t want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl)) bench_die("getrlimit");
  if (rl.rlim_cur < want) {
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

#endif
