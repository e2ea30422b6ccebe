/*
 * peers_file.c — durable writes beside Redis's append-only file, measured in
 * turns in one run (as bench/peers_remote.c measures the remote peers).
 * Built and run only by `make bench-peers`.
 *
 * The program starts its own redis-server (Debian's package; fork/exec, in a
 * temporary directory, on a Unix socket only: --port 0, so nothing listens
 * on the network) with `appendonly yes`, and switches its `appendfsync`
 * between `always` and `everysec` (CONFIG SET); the server dies with this
 * process and the directory is removed when it exits, however it exits.
 * Ours are file: stores in the same directory: SYNC_ALWAYS beside
 * `always`, SYNC_INTERVAL (1000 ms, the default) beside `everysec`, each
 * measured twice: called in this process, and through a server
 * (rstate_server_start, the code rstated runs) on a unix: socket, so that
 * the socket hop Redis's figure includes is in ours too.
 *
 *   X.set    one thread, one set at a time, each timed alone (wall): the
 *            call to its return, or SET to its +OK (p50 is the figure,
 *            p99 and max beside it)
 *   X.t16    16 clients setting flat out, each its own variable (ours in
 *            process: 16 threads on the store; ours unix: and Redis: 16
 *            connections, one thread each, one request in flight on each):
 *            sets/s, wall clock from the first to the last
 *
 * In turns: a latency figure takes its samples in rounds, a few samples of
 * each system per round; a throughput figure is the median of 3 rounds,
 * each system once per round. Beside them, floor.fdatasync: a pwrite of 64
 * bytes appended + fdatasync in the same directory (the disk's own cost of
 * one durable append).
 */
#include "bench.h"
#include "disk.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define T16 16

/* internal counter of the library (linked statically): fdatasync calls on journals */
extern _Atomic uint64_t rstate__file_syncs;

static char dir[80]; /* the temporary directory: short enough for a socket's path */
static pid_t redis_pid;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void cleanup(void) {
  if (redis_pid > 0) {
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
  }
  if (dir[0]) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Interrupted: the server goes (kill, waitpid: safe here); the directory is
 * left to the atexit handler of a normal exit, and named on stderr. */
static void on_signal(int sig) {
  if (redis_pid > 0) {
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
  }
  static const char msg[] = "peers_file: interrupted; its directory may be left in /tmp (rstate-peers-file-*)\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  _exit(128 + sig);
}

/* ---- a minimal Redis client: RESP2 over the Unix socket ------------------------ */

static int redis_connect(void) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s/redis.sock", dir);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    return -1;
  }
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) bench_die("redis: a write failed");
    p += k;
    n -= (size_t)k;
  }
}

/* Reads one reply line (the replies used here are one line each) into buf;
 * false when the connection closed or nothing came for 10 s. */
static bool read_line(int fd, char *buf, size_t size) {
  size_t n = 0;
  while (n + 1 < size) {
    ssize_t k = read(fd, buf + n, 1);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    n += (size_t)k;
    if (n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n') {
      buf[n] = 0;
      return true;
    }
  }
  return false;
}

/* A command of string arguments; its one-line reply must be want. */
static void redis_cmd(int fd, const char *want, int argc, const char *const *argv) {
  char buf[512];
  size_t n = (size_t)snprintf(buf, sizeof buf, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
  write_all(fd, buf, n);
  char line[256];
  if (!read_line(fd, line, sizeof line)) bench_die("redis: no reply within 10 s");
  if (strcmp(line, want)) {
    fprintf(stderr, "peers_file: redis: %s answered %s", argv[0], line);
    exit(2);
  }
}

/* SET key n, waiting for its +OK. The reply is exactly 5 bytes. */
static void redis_set(int fd, const char *key, uint64_t x) {
  char v[24], buf[128];
  int vl = snprintf(v, sizeof v, "%llu", (unsigned long long)x);
  int n = snprintf(buf, sizeof buf, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%d\r\n%s\r\n", strlen(key), key, vl, v);
  write_all(fd, buf, (size_t)n);
  char r[5];
  size_t got = 0;
  while (got < 5) {
    ssize_t k = read(fd, r + got, 5 - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) bench_die("redis: SET: no reply within 10 s");
    got += (size_t)k;
  }
  if (memcmp(r, "+OK\r\n", 5)) bench_die("redis: SET did not answer +OK");
}

static void redis_start(void) {
  char sock[192], log[192];
  snprintf(sock, sizeof sock, "%s/redis.sock", dir);
  snprintf(log, sizeof log, "%s/redis-server.log", dir);
  char *argv[] = {"redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", dir,
                  "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", NULL};
  pid_t pid = fork();
  if (pid < 0) bench_die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0) _exit(126);
    dup2(in, 0), dup2(out, 1), dup2(out, 2);
    execvp(argv[0], argv);
    execv("/usr/bin/redis-server", argv);
    _exit(127);
  }
  redis_pid = pid;
  int64_t deadline = bench_now() + 10000000000LL;
  for (;;) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      redis_pid = 0;
      fprintf(stderr, "peers_file: redis-server %s (its log: %s)\n",
              WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "is not installed (apt-get install redis-server)"
                                                                : "exited at once",
              log);
      exit(2);
    }
    int fd = redis_connect();
    if (fd >= 0) {
      write_all(fd, "*1\r\n$4\r\nPING\r\n", 14);
      char line[64];
      bool ok = read_line(fd, line, sizeof line) && !strcmp(line, "+PONG\r\n");
      close(fd);
      if (ok) return;
    }
    if (bench_now() > deadline) bench_die("redis-server did not answer within 10 s");
    usleep(5000);
  }
}

/* ---- the systems ------------------------------------------------------------------ */

typedef enum { OURS, OURS_UNIX, REDIS } kind;

typedef struct sys {
  kind k;
  const char *id;
  rstate_store *store;          /* OURS: the file: store; OURS_UNIX: the client */
  rstate_store *clients[T16];   /* OURS_UNIX: 16 more clients for t16 */
  int fd;                       /* REDIS: the one-thread connection */
  uint64_t x;
  bstats lat;
  double t16[3];
  double syncs, sets; /* t16 of ours: journal fdatasyncs, sets */
} sys;

static void sys_set(sys *s, rstate_store *st, int fd, const char *name, uint64_t x) {
  if (s->k == REDIS)
    redis_set(fd, name, x);
  else
    BENCH_OK(rstate_set_int(st, name, (int64_t)x));
}

typedef struct th {
  sys *s;
  int i;
  size_t n;
  pthread_barrier_t *go;
} th;

static void *t16_main(void *p) {
  th *a = p;
  char name[16];
  snprintf(name, sizeof name, "t%d", a->i);
  int fd = a->s->k == REDIS ? redis_connect() : -1;
  if (a->s->k == REDIS && fd < 0) bench_die("redis: connect");
  rstate_store *st = a->s->k == OURS_UNIX ? a->s->clients[a->i] : a->s->store;
  pthread_barrier_wait(a->go);
  for (size_t i = 1; i <= a->n; i++) sys_set(a->s, st, fd, name, i + a->s->x);
  if (fd >= 0) close(fd);
  return NULL;
}

/* 16 clients, n sets each: sets per second (wall). */
static double run_t16(sys *s, size_t n) {
  pthread_t t[T16];
  th a[T16];
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, T16 + 1);
  for (int i = 0; i < T16; i++) {
    a[i] = (th){s, i, n, &go};
    pthread_create(&t[i], NULL, t16_main, &a[i]);
  }
  uint64_t s0 = atomic_load(&rstate__file_syncs);
  pthread_barrier_wait(&go);
  int64_t t0 = bench_now();
  for (int i = 0; i < T16; i++) pthread_join(t[i], NULL);
  int64_t t1 = bench_now();
  s->syncs += (double)(atomic_load(&rstate__file_syncs) - s0);
  s->sets += (double)T16 * (double)n;
  pthread_barrier_destroy(&go);
  s->x += n;
  return (double)T16 * (double)n * 1e9 / (double)(t1 - t0);
}

static rstate_store *open_file(const char *name, rstate_sync sync) {
  char uri[256];
  snprintf(uri, sizeof uri, "file:%s/%s", dir, name);
  rstate_options o = {0};
  o.sync = sync;
  rstate_store *s;
  BENCH_OK(rstate_open(&s, uri, &o));
  char v[16];
  for (int i = -1; i < T16; i++) {
    snprintf(v, sizeof v, i < 0 ? "x" : "t%d", i);
    rstate_var_def d = {.name = v, .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(0)};
    BENCH_OK(rstate_define(s, &d));
  }
  return s;
}

static rstate_store *open_client(rstate_server *srv) {
  rstate_options o = {.connect_timeout_ms = 10000, .request_timeout_ms = 10000};
  rstate_store *c;
  BENCH_OK(rstate_open(&c, rstate_server_uri(srv), &o));
  return c;
}

static double median3(double *v) {
  double a = v[0], b = v[1], c = v[2];
  if (a > b) { double t = a; a = b; b = t; }
  if (b > c) { double t = b; b = c; c = t; }
  if (a > b) { double t = a; a = b; b = t; }
  return b;
}

/* One mode: ours in process, ours through a server, Redis, in turns. */
static void measure(const char *mode, const char *redis_mode, rstate_sync sync, size_t rounds, size_t per_round,
                    size_t t16_n, const bsum *floor) {
  char name[32], sockpath[192], listen[200];
  snprintf(name, sizeof name, "ours-%s", mode);
  rstate_store *st = open_file(name, sync);
  snprintf(sockpath, sizeof sockpath, "%s/ours-%s.sock", dir, mode);
  snprintf(listen, sizeof listen, "unix:%s", sockpath);
  rstate_server *srv;
  BENCH_OK(rstate_server_start(&srv, st, listen, NULL));

  int fd = redis_connect();
  if (fd < 0) bench_die("redis: connect");
  const char *cfg[] = {"CONFIG", "SET", "appendfsync", redis_mode};
  redis_cmd(fd, "+OK\r\n", 4, cfg);

  char id[3][64];
  snprintf(id[0], sizeof id[0], "ours.%s", mode);
  snprintf(id[1], sizeof id[1], "ours.%s.unix", mode);
  snprintf(id[2], sizeof id[2], "peer.redis.%s", redis_mode);
  sys s[3] = {{.k = OURS, .id = id[0], .store = st, .fd = -1},
              {.k = OURS_UNIX, .id = id[1], .store = open_client(srv), .fd = -1},
              {.k = REDIS, .id = id[2], .fd = fd}};
  for (int i = 0; i < T16; i++) s[1].clients[i] = open_client(srv);

  /* warm up: every system a few sets */
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 5; i++) sys_set(&s[k], s[k].store, s[k].fd, "x", ++s[k].x);
  for (size_t r = 0; r < rounds; r++)
    for (int k = 0; k < 3; k++)
      BENCH_LOOP(&s[k].lat, per_round, 1, sys_set(&s[k], s[k].store, s[k].fd, "x", ++s[k].x));
  for (int r = 0; r < 3; r++)
    for (int k = 0; k < 3; k++) s[k].t16[r] = run_t16(&s[k], t16_n);

  static const char *const how[3] = {"in process", "through a server, unix:", "Redis, unix:"};
  bsum lat[3];
  for (int k = 0; k < 3; k++) {
    s[k].lat.cpu = 0; /* wall time: waiting for the disk is the cost */
    lat[k] = bs_sum(&s[k].lat);
  }
  for (int k = 0; k < 3; k++) {
    char rid[80], label[160];
    snprintf(rid, sizeof rid, "%s.set", s[k].id);
    if (k < 2)
      snprintf(label, sizeof label, "one set on file:, RSTATE_SYNC_%s, %s (p50)", sync == RSTATE_SYNC_ALWAYS ? "ALWAYS" : "INTERVAL",
               how[k]);
    else
      snprintf(label, sizeof label, "one SET, appendonly yes, appendfsync %s, %s (p50)", redis_mode, how[k]);
    char fid[80];
    snprintf(fid, sizeof fid, "%s.set", s[2].id);
    brow row = {rid, label, "ns/op", lat[k].p50, lat[k], k < 2 ? fid : floor ? "floor.fdatasync" : NULL,
                k < 2 ? lat[2].p50 : floor ? floor->p50 : NAN, NAN, 0, 0};
    row.ratio = row.floor ? row.value / row.floor_value : NAN;
    bench_row(&row);
  }
  double t16[3];
  for (int k = 0; k < 3; k++) t16[k] = median3(s[k].t16);
  for (int k = 0; k < 3; k++) {
    char rid[80], label[160], fid[80];
    snprintf(rid, sizeof rid, "%s.t16", s[k].id);
    snprintf(fid, sizeof fid, "%s.t16", s[2].id);
    snprintf(label, sizeof label, "16 clients setting, %s, %s (median of 3)", k < 2 ? mode : redis_mode, how[k]);
    bstats b = {0};
    bs_add(&b, 1e9 / t16[k], 1);
    bsum bb = bs_sum(&b);
    bench_rate(rid, label, "sets/s", t16[k], bb, k < 2 ? fid : NULL, k < 2 ? 1e9 / t16[2] : 0, 0, 0);
    bs_free(&b);
  }
  for (int k = 0; k < 2 && sync == RSTATE_SYNC_ALWAYS; k++) {
    char rid[80], label[160];
    snprintf(rid, sizeof rid, "%s.t16.per_sync", s[k].id);
    snprintf(label, sizeof label, "16 clients setting, %s, %s, sets per fdatasync", mode, how[k]);
    bench_ratio(rid, label, s[k].syncs > 0 ? s[k].sets / s[k].syncs : NAN, 0, 0);
  }
  for (int k = 0; k < 3; k++) bs_free(&s[k].lat);
  for (int i = 0; i < T16; i++) rstate_close(s[1].clients[i]);
  rstate_close(s[1].store);
  rstate_server_stop(srv);
  rstate_close(st);
  close(fd);
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "peers_file");
  const char *env = getenv("BENCH_DIR");
  if ((size_t)snprintf(dir, sizeof dir, "%s/rstate-peers-file-XXXXXX", env && *env ? env : "/tmp") >= sizeof dir)
    bench_die("BENCH_DIR is too long for a socket's path");
  if (!mkdtemp(dir)) bench_die("mkdtemp");
  atexit(cleanup);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  redis_start();

  bsum fl = bench_floor_fdatasync(dir, bench_n(100, 20), 64);
  brow f = {"floor.fdatasync", "floor: pwrite of 64 bytes appended + fdatasync (p50)", "ns/op", fl.p50, fl, NULL, NAN,
            NAN, 0, 0};
  bench_row(&f);
  measure("always", "always", RSTATE_SYNC_ALWAYS, bench_n(20, 5), 10, bench_n(40, 10), &fl);
  measure("interval", "everysec", RSTATE_SYNC_INTERVAL, bench_n(50, 10), 200, bench_n(2000, 200), NULL);
  return 0;
}
