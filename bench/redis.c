/*
 * redis.c — redis: stores beside Redis's own figures, measured in the same
 * run against the same redis-server (Debian's, started here on loopback in
 * a temporary directory, with a replica for the last figures; both stopped
 * at the end).
 *
 *   redis.latency / .p50 / .p99   set on store A -> inline callback on store B
 *                                 (two clients of one STORE, each with its
 *                                 own connections and reader)
 *   redis.set                     A's rstate_set, call to return
 *   redis.writers4                changes per second from 4 threads setting
 *                                 through one store, counted when all of them
 *                                 reached a watcher on another store
 *   redis.replicas1.set           rstate_set with replicas = 1, p50
 *
 * Floors (a minimal RESP client of this file, no library):
 *   floor.redis.xread   XADD on one connection -> the entry read by a thread
 *                       blocked in XREAD BLOCK on another: the least any
 *                       Redis-based change feed costs
 *   floor.redis.wait1   XADD then WAIT 1 on one connection, call to return
 *   floor.redis.xadd4   XADDs per second from 4 threads, each on its own
 *                       connection with one XADD in flight: what Redis does
 *                       for 4 writers that each wait for their answer (no
 *                       Function, no watcher), beside redis.writers4
 *
 * Targets (issue 19): p50 <= 1.3x and p99 <= 3x the XREAD floor's; >= 100,000
 * changes/s from 4 writers; replicas = 1 p50 <= 1.5x XADD + WAIT 1.
 */
#include "bench_remote.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ---- a Redis server of our own ---- */

typedef struct rserver {
  pid_t pid;
  int port;
  char dir[64];
} rserver;

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len))
    bench_die("no free port");
  close(fd);
  return ntohs(a.sin_port);
}

static int rc_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* A command as RESP, from NULL-terminated arguments. */
static size_t rc_cmd(char *buf, size_t cap, const char *const *argv) {
  size_t n = 0, argc = 0;
  while (argv[argc]) argc++;
  n += (size_t)snprintf(buf + n, cap - n, "*%zu\r\n", argc);
  for (size_t i = 0; i < argc; i++) n += (size_t)snprintf(buf + n, cap - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
  return n;
}

static void rc_send(int fd, const char *const *argv) {
  char buf[512];
  size_t n = rc_cmd(buf, sizeof buf, argv);
  if (write(fd, buf, n) != (ssize_t)n) bench_die("redis: write");
}

/* Reads until what was read ends with suffix (a reply's known last bytes). */
static void rc_until(int fd, const char *suffix) {
  char buf[4096];
  size_t n = 0, sl = strlen(suffix);
  for (;;) {
    ssize_t k = read(fd, buf + n, sizeof buf - n);
    if (k <= 0) bench_die("redis: read");
    n += (size_t)k;
    if (n >= sl && !memcmp(buf + n - sl, suffix, sl)) return;
    if (n == sizeof buf) {
      memmove(buf, buf + n - sl, sl);
      n = sl;
    }
  }
}

static void rserver_start(rserver *r, int replica_of) {
  memset(r, 0, sizeof *r);
  snprintf(r->dir, sizeof r->dir, "/tmp/rstate-bench-redis-XXXXXX");
  if (!mkdtemp(r->dir)) bench_die("mkdtemp");
  r->port = free_port();
  char port[16], log[96], master[16];
  snprintf(port, sizeof port, "%d", r->port);
  snprintf(log, sizeof log, "%s/redis.log", r->dir);
  snprintf(master, sizeof master, "%d", replica_of);
  const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", r->dir, "--logfile", log, "--repl-diskless-sync-delay", "0",
                        replica_of ? "--replicaof" : NULL, "127.0.0.1", master, NULL};
  pid_t parent = getpid();
  r->pid = fork();
  if (r->pid < 0) bench_die("fork");
  if (!r->pid) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    execvp("redis-server", (char *const *)argv);
    _exit(127);
  }
  for (int i = 0; i < 1000; i++) {
    int fd = rc_connect(r->port);
    if (fd >= 0) {
      const char *ping[] = {"PING", NULL};
      rc_send(fd, ping);
      rc_until(fd, "+PONG\r\n");
      close(fd);
      return;
    }
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL); /* the server tells no one it is up */
  }
  bench_die("redis-server did not start (is it installed?)");
}

static void rserver_stop(rserver *r) {
  if (r->pid > 0) {
    kill(r->pid, SIGTERM);
    waitpid(r->pid, NULL, 0);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
  if (system(cmd)) {
  }
}

/* ---- floors ---- */

typedef struct xreader {
  int fd;
  arrival *a;
  uint64_t n;
} xreader;

static void *xread_main(void *arg) {
  xreader *x = arg;
  for (uint64_t i = 1; i <= x->n; i++) {
    char after[32], want[40];
    snprintf(after, sizeof after, "%llu-0", (unsigned long long)i - 1);
    snprintf(want, sizeof want, "v%llu\r\n", (unsigned long long)i);
    const char *argv[] = {"XREAD", "BLOCK", "0", "STREAMS", "floor", after, NULL};
    rc_send(x->fd, argv);
    rc_until(x->fd, want);
    rstate_event ev = {.kind = RSTATE_EVENT_CHANGED, .coalesced = 1};
    arrival_cb(&ev, x->a);
  }
  return NULL;
}

static bsum floor_xread(int port, size_t samples) {
  int w = rc_connect(port), rfd = rc_connect(port);
  if (w < 0 || rfd < 0) bench_die("redis: connect");
  arrival a;
  arrival_init(&a);
  size_t warm = 200, n = samples + warm;
  xreader x = {rfd, &a, n};
  pthread_t t;
  pthread_create(&t, NULL, xread_main, &x);
  bstats st = {0};
  for (uint64_t i = 1; i <= n; i++) {
    char id[32], val[32], want[40];
    snprintf(id, sizeof id, "%llu-0", (unsigned long long)i);
    snprintf(val, sizeof val, "v%llu", (unsigned long long)i);
    snprintf(want, sizeof want, "%s\r\n", id);
    const char *argv[] = {"XADD", "floor", id, "f", val, NULL};
    arrival_expect(&a, 1);
    int64_t t0 = bench_now();
    rc_send(w, argv);
    rc_until(w, want);
    int64_t t1 = arrival_wait(&a, "floor xread");
    if (i > warm) bs_add(&st, (double)(t1 - t0), 1);
  }
  pthread_join(t, NULL);
  close(w);
  close(rfd);
  bsum s = bs_sum(&st);
  bs_free(&st);
  return s;
}

static bsum floor_wait1(int port, size_t samples) {
  int w = rc_connect(port);
  if (w < 0) bench_die("redis: connect");
  bstats st = {0};
  size_t warm = 100;
  for (uint64_t i = 1; i <= samples + warm; i++) {
    char id[32];
    snprintf(id, sizeof id, "%llu-0", (unsigned long long)i);
    const char *xadd[] = {"XADD", "floorw", id, "f", "v", NULL}, *wait1[] = {"WAIT", "1", "1000", NULL};
    char want[40];
    snprintf(want, sizeof want, "%s\r\n", id);
    int64_t t0 = bench_now();
    rc_send(w, xadd);
    rc_until(w, want);
    rc_send(w, wait1);
    rc_until(w, ":1\r\n");
    if (i > warm) bs_add(&st, (double)(bench_now() - t0), 1);
  }
  close(w);
  bsum s = bs_sum(&st);
  bs_free(&st);
  return s;
}

typedef struct xadder {
  int port, k;
  size_t n;
} xadder;

static void *xadd_main(void *arg) {
  xadder *x = arg;
  int fd = rc_connect(x->port);
  if (fd < 0) bench_die("redis: connect");
  char key[16];
  snprintf(key, sizeof key, "floor4.%d", x->k);
  for (size_t i = 1; i <= x->n; i++) {
    char id[32], want[40];
    snprintf(id, sizeof id, "%zu-0", i);
    snprintf(want, sizeof want, "%s\r\n", id);
    const char *argv[] = {"XADD", key, id, "f", "v", NULL};
    rc_send(fd, argv);
    rc_until(fd, want);
  }
  close(fd);
  return NULL;
}

/* XADDs per second from 4 threads, one in flight on each connection. */
static double floor_xadd4(int port, size_t each) {
  enum { N = 4 };
  xadder x[N];
  pthread_t t[N];
  int64_t t0 = bench_now();
  for (int i = 0; i < N; i++) {
    x[i] = (xadder){port, i, each};
    pthread_create(&t[i], NULL, xadd_main, &x[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  return (double)(N * each) / ((double)(bench_now() - t0) / 1e9);
}

/* ---- ours ---- */

static rstate_store *ropen(const rserver *r, const char *store, int replicas) {
  char uri[128];
  snprintf(uri, sizeof uri, "redis:127.0.0.1:%d/%s", r->port, store);
  rstate_options o = {.connect_timeout_ms = 10000, .request_timeout_ms = 10000, .replicas = replicas,
                      .replica_timeout_ms = 5000};
  rstate_store *s;
  BENCH_OK(rstate_open(&s, uri, &o));
  return s;
}

typedef struct writer {
  rstate_store *s;
  char name[16];
  size_t n;
} writer;

static void *writer_main(void *arg) {
  writer *w = arg;
  for (size_t i = 1; i <= w->n; i++) BENCH_OK(rstate_set_int(w->s, w->name, (int64_t)i));
  return NULL;
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "redis");
  size_t samples = bench_n(3000, 300);
  rserver primary, replica;
  rserver_start(&primary, 0);

  bsum xr = floor_xread(primary.port, samples);
  bench_floor_row("floor.redis.xread", "floor: XADD -> XREAD BLOCK on another connection, bare RESP", xr);

  rstate_store *A = ropen(&primary, "bench", 0), *B = ropen(&primary, "bench", 0);
  bench_define_float(A, BENCH_VAR);
  arrival a;
  arrival_init(&a);
  rstate_watch_id wid;
  const char *name = BENCH_VAR;
  BENCH_OK(rstate_watch(B, &name, 1, arrival_cb, &a, NULL, &wid));
  size_t warm = 200;
  bstats st = {0}, setst = {0};
  rstate_value v = rstate_float(0);
  for (size_t i = 0; i < samples + warm; i++) {
    v.u.f += 1;
    arrival_expect(&a, 1);
    int64_t t0 = bench_now();
    BENCH_OK(rstate_set(A, BENCH_VAR, &v, NULL));
    int64_t t1 = bench_now();
    int64_t t2 = arrival_wait(&a, "redis latency");
    if (i >= warm) {
      bs_add(&st, (double)(t2 - t0), 1);
      bs_add(&setst, (double)(t1 - t0), 1);
    }
  }
  bsum s = bs_sum(&st), ss = bs_sum(&setst);
  bench_latency("redis.latency", "set on redis: store A -> inline callback on store B", "ns/event", s,
                "floor.redis.xread", xr.mean, 0, 0);
  bench_pct_row("redis.latency.p50", "set on A -> callback on B, redis:, p50", s.p50, s, "floor.redis.xread", xr.p50,
                0, 0);
  bench_ratio("redis.latency.p50x", "redis: p50 over the XREAD floor's p50", s.p50 / xr.p50, '<', 1.3);
  bench_pct_row("redis.latency.p99", "set on A -> callback on B, redis:, p99", s.p99, s, "floor.redis.xread", xr.p99,
                0, 0);
  bench_ratio("redis.latency.p99x", "redis: p99 over the XREAD floor's p99", s.p99 / xr.p99, '<', 3);
  bench_latency("redis.set", "rstate_set on a redis: store, call to return", "ns/op", ss, "floor.redis.xread", xr.mean,
                0, 0);
  bs_free(&st);
  bs_free(&setst);
  BENCH_OK(rstate_unwatch(B, wid));

  /* 4 writer threads through one store, every change reaching a watcher */
  enum { WRITERS = 4 };
  size_t each = bench_n(5000, 500);
  writer ws[WRITERS];
  pthread_t th[WRITERS];
  for (int i = 0; i < WRITERS; i++) {
    ws[i] = (writer){A, "", each};
    snprintf(ws[i].name, sizeof ws[i].name, "w%d", i);
    rstate_var_def d = {.name = ws[i].name, .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(0)};
    BENCH_OK(rstate_define(A, &d));
  }
  double x4 = floor_xadd4(primary.port, each);
  bench_rate("floor.redis.xadd4", "floor: XADDs/s from 4 threads, one in flight on each connection, bare RESP",
             "changes/s", x4, bench_nopct, NULL, 0, 0, 0);
  const char *wpat = "w*";
  arrival_expect(&a, (uint64_t)WRITERS * each);
  BENCH_OK(rstate_watch(B, &wpat, 1, arrival_cb, &a, NULL, &wid));
  int64_t t0 = bench_now();
  for (int i = 0; i < WRITERS; i++) pthread_create(&th[i], NULL, writer_main, &ws[i]);
  for (int i = 0; i < WRITERS; i++) pthread_join(th[i], NULL);
  int64_t t1 = arrival_wait(&a, "redis writers");
  double rate = (double)(WRITERS * each) / ((double)(t1 - t0) / 1e9);
  bench_rate("redis.writers4", "changes/s from 4 writer threads on one redis: store, each reaching a watcher",
             "changes/s", rate, bench_nopct, "floor.redis.xadd4", 1e9 / x4, '>', 100000);
  rstate_close(A);
  rstate_close(B);

  /* replicas = 1 */
  rserver_start(&replica, primary.port);
  bsum w1 = floor_wait1(primary.port, samples / 3 + 1);
  bench_floor_row("floor.redis.wait1", "floor: XADD then WAIT 1, bare RESP", w1);
  rstate_store *C = ropen(&primary, "bench", 1);
  bstats rs = {0};
  for (size_t i = 0; i < samples / 3 + 100; i++) {
    v.u.f += 1;
    int64_t a0 = bench_now();
    BENCH_OK(rstate_set(C, BENCH_VAR, &v, NULL));
    if (i >= 100) bs_add(&rs, (double)(bench_now() - a0), 1);
  }
  bsum r1 = bs_sum(&rs);
  bench_pct_row("redis.replicas1.set", "rstate_set with replicas = 1, p50", r1.p50, r1, "floor.redis.wait1", w1.p50, 0,
                0);
  bench_ratio("redis.replicas1.x", "replicas = 1 set p50 over XADD + WAIT 1's p50", r1.p50 / w1.p50, '<', 1.5);
  bs_free(&rs);
  rstate_close(C);
  rserver_stop(&replica);
  rserver_stop(&primary);
  return 0;
}
