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
 * Floors (a minimal RESP client of this file, no library), each a write on
 * one connection -> the log entry read by a thread blocked in XREAD BLOCK on
 * another, as redis.latency's:
 *   floor.redis.xread     a bare XADD: the least any Redis-based change feed
 *                         costs
 *   floor.redis.fcall     FCALL of a Function that only XADDs: the least any
 *                         design costs whose writes are decided in a Function
 *                         (issue 19 asks for one)
 *   floor.redis.fcall.rw  FCALL of a bare compare-and-set Function on the
 *                         store's keys as library.c lays them out: the
 *                         commands a set needs, without our library's Lua
 *   redis.fcall.lib       our own Function (library.c's group call, one set),
 *                         called by the same bare client: the Function's cost
 *                         without the client library's
 * and beside them Redis's own time per call of each (INFO commandstats,
 * `redis.cpu.*`: the command's execution, not the request's reading and
 * answering). These and redis.latency are measured in turns (20 samples of
 * each, round after round), so their ratios compare the same state of the
 * machine.
 *   floor.redis.wait1     XADD then WAIT 1 on one connection, call to return
 *   floor.redis.xadd4     XADDs per second from 4 threads, each on its own
 *                         connection with one XADD in flight: what Redis does
 *                         for 4 writers that each wait for their answer (no
 *                         Function, no watcher), beside redis.writers4
 *   floor.redis.fcall4    the same with FCALLs of the appending Function
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
  for (size_t i = 0; i < argc && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
  if (n >= cap) bench_die("redis: a command larger than the buffer");
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

/* ---- a reply at a time ---- */

/* The length of the first complete RESP reply in p[0, n), 0 while it is not
 * all there. */
static size_t rc_complete(const char *p, size_t n) {
  size_t at = 0;
  long need = 1;
  while (need > 0) {
    const char *e = at < n ? memchr(p + at, '\n', n - at) : NULL;
    if (!e) return 0;
    size_t next = (size_t)(e - p) + 1;
    long k = strtol(p + at + 1, NULL, 10);
    need--;
    if (p[at] == '$' && k >= 0) {
      if (next + (size_t)k + 2 > n) return 0;
      next += (size_t)k + 2;
    } else if (p[at] == '*' && k > 0) {
      need += k;
    }
    at = next;
  }
  return at;
}

/* Reads one whole reply into buf (one request in flight on fd); an error
 * reply fails the program with Redis's sentence. Returns its length. */
static size_t rc_reply(int fd, char *buf, size_t cap, const char *what) {
  size_t n = 0, len;
  while (!(len = rc_complete(buf, n))) {
    if (n == cap) bench_die("redis: a reply larger than the buffer");
    ssize_t k = read(fd, buf + n, cap - n);
    if (k <= 0) bench_die("redis: read");
    n += (size_t)k;
  }
  if (buf[0] == '-') {
    fprintf(stderr, "%s: %.*s\n", what, (int)len, buf);
    exit(1);
  }
  return len;
}

/* Sends a command and reads its whole reply. */
static size_t rc_call(int fd, const char *const *argv, char *buf, size_t cap, const char *what) {
  rc_send(fd, argv);
  return rc_reply(fd, buf, cap, what);
}

/* Redis's own time per call of one command (INFO commandstats: the
 * command's execution, without reading and answering the request), in ns
 * since the last CONFIG RESETSTAT; NAN when it did not run. */
static double rc_usec(int port, const char *cmd) {
  int fd = rc_connect(port);
  if (fd < 0) bench_die("redis: connect");
  static char buf[65536];
  const char *info[] = {"INFO", "commandstats", NULL};
  size_t n = rc_call(fd, info, buf, sizeof buf - 1, "INFO");
  buf[n] = 0;
  close(fd);
  char key[64];
  snprintf(key, sizeof key, "cmdstat_%s:", cmd);
  const char *p = strstr(buf, key), *u = p ? strstr(p, "usec_per_call=") : NULL;
  return u ? atof(u + strlen("usec_per_call=")) * 1000 : NAN;
}

static void rc_resetstat(int port) {
  int fd = rc_connect(port);
  if (fd < 0) bench_die("redis: connect");
  char buf[64];
  const char *argv[] = {"CONFIG", "RESETSTAT", NULL};
  rc_call(fd, argv, buf, sizeof buf, "CONFIG RESETSTAT");
  close(fd);
}

/* ---- floors ---- */

/* The floors of the change feed: a write on one connection -> the log entry
 * it appended read by a thread blocked in XREAD BLOCK on another (after the
 * last entry it read). A sample is one write, the writer waiting for the
 * entry to arrive before the next. What is written varies: */
typedef struct chain {
  const char *what;   /* for messages */
  const char *stream; /* the log the reader blocks on */
  char after[48];     /* the entry the reader read last (or the log's last before the first write) */
  /* the i-th write (from 1) into argv (up to 24 arguments, strings in sbuf);
   * its reply's end when known; the end of the entry's XREAD reply */
  void (*write)(struct chain *c, uint64_t i, const char **argv, char (*sbuf)[48]);
  const char *(*reply_end)(uint64_t i, char *buf, size_t cap);
  void (*entry_end)(uint64_t i, char *buf, size_t cap);
  const void *ud;
  int fd, rfd;
  arrival a;
  uint64_t i, n; /* writes made, to make */
  pthread_t reader;
} chain;

/* The id of the only entry of an XREAD reply (of c->stream) into c->after. */
static void chain_last_id(chain *c, const char *rep, size_t len) {
  size_t kl = strlen(c->stream);
  const char *p = rep;
  while ((p = memchr(p, c->stream[0], (size_t)(rep + len - p))) && (size_t)(rep + len - p) > kl &&
         !(memcmp(p, c->stream, kl) == 0 && p[kl] == '\r'))
    p++;
  if (!p || (size_t)(rep + len - p) <= kl) bench_die("redis: an XREAD reply without the log's name");
  p += kl + 2;
  if (strncmp(p, "*1\r\n*2\r\n$", 9)) bench_die("redis: an XREAD reply of more than one entry");
  long l = strtol(p + 9, (char **)&p, 10);
  if (l <= 0 || l >= (long)sizeof c->after) bench_die("redis: an entry id too long");
  memcpy(c->after, p + 2, (size_t)l);
  c->after[l] = 0;
}

static void *chain_reader(void *arg) {
  chain *c = arg;
  char rep[8192], want[64];
  for (uint64_t i = 1; i <= c->n; i++) {
    const char *argv[] = {"XREAD", "BLOCK", "0", "STREAMS", c->stream, c->after, NULL};
    size_t len = rc_call(c->rfd, argv, rep, sizeof rep, c->what);
    c->entry_end(i, want, sizeof want);
    size_t wl = strlen(want);
    if (len < wl || memcmp(rep + len - wl, want, wl)) {
      fprintf(stderr, "%s: entry %llu does not end with %s: %.*s\n", c->what, (unsigned long long)i, want, (int)len,
              rep);
      exit(1);
    }
    chain_last_id(c, rep, len);
    rstate_event ev = {.kind = RSTATE_EVENT_CHANGED, .coalesced = 1};
    arrival_cb(&ev, &c->a);
  }
  return NULL;
}

/* Connects the writer and the reader, which will read n entries. */
static void chain_start(int port, chain *c, uint64_t n) {
  c->fd = rc_connect(port), c->rfd = rc_connect(port);
  if (c->fd < 0 || c->rfd < 0) bench_die("redis: connect");
  arrival_init(&c->a);
  c->i = 0, c->n = n;
  pthread_create(&c->reader, NULL, chain_reader, c);
}

/* One sample: the next write, until its entry reached the reader. */
static int64_t chain_one(void *self, bool keep) {
  (void)keep;
  chain *c = self;
  uint64_t i = ++c->i;
  if (i > c->n) bench_die("redis: more writes than the reader reads");
  const char *argv[25] = {0};
  char sbuf[24][48], rep[8192], end[64];
  c->write(c, i, argv, sbuf);
  arrival_expect(&c->a, 1);
  int64_t t0 = bench_now();
  size_t len = rc_call(c->fd, argv, rep, sizeof rep, c->what);
  const char *want = c->reply_end(i, end, sizeof end);
  if (want && (len < strlen(want) || memcmp(rep + len - strlen(want), want, strlen(want)))) {
    fprintf(stderr, "%s: reply %llu does not end with %s: %.*s\n", c->what, (unsigned long long)i, want, (int)len,
            rep);
    exit(1);
  }
  return arrival_wait(&c->a, c->what) - t0;
}

static void chain_stop(chain *c) {
  if (c->i != c->n) bench_die("redis: the reader waits for writes never made");
  pthread_join(c->reader, NULL);
  close(c->fd);
  close(c->rfd);
}

/* ---- in turns ---- */

/* The figures compared are measured in turns, a few samples of each, round
 * after round (as peers_remote.c does): on this kind of guest a wakeup's
 * cost moves from one second to the next, so figures taken one after the
 * other can come from different states of the machine. */
enum { TURN_WARM = 200, TURN_SAMPLES = 20 };

typedef struct turn {
  int64_t (*one)(void *self, bool keep); /* one sample, ns */
  void *self;
  const char *cmd; /* the command whose time per call Redis reports (warm-up) */
  double cpu;      /* Redis's time per call of it, ns, over the warm-up */
  bstats st;
} turn;

static size_t turn_rounds(size_t samples) { return (samples + TURN_SAMPLES - 1) / TURN_SAMPLES; }

/* The samples each one of t[] takes: warm-up, then per round one not kept
 * (it finds the threads cold) and TURN_SAMPLES kept. */
static uint64_t turn_total(size_t samples) { return TURN_WARM + turn_rounds(samples) * (TURN_SAMPLES + 1); }

static void turns_run(int port, turn *t, size_t nt, size_t samples) {
  /* the warm-up, one after the other: Redis's time per call of each */
  for (size_t k = 0; k < nt; k++) {
    rc_resetstat(port);
    for (int i = 0; i < TURN_WARM; i++) t[k].one(t[k].self, false);
    t[k].cpu = rc_usec(port, t[k].cmd);
  }
  for (size_t r = 0; r < turn_rounds(samples); r++)
    for (size_t k = 0; k < nt; k++) {
      t[k].one(t[k].self, false);
      for (int i = 0; i < TURN_SAMPLES; i++) bs_add(&t[k].st, (double)t[k].one(t[k].self, true), 1);
    }
}

/* floor.redis.xread: a bare XADD with its id, "REV-0" as ours. */
static void xadd_write(chain *c, uint64_t i, const char **argv, char (*sbuf)[48]) {
  snprintf(sbuf[0], sizeof sbuf[0], "%llu-0", (unsigned long long)i);
  snprintf(sbuf[1], sizeof sbuf[1], "v%llu", (unsigned long long)i);
  const char *a[] = {"XADD", c->stream, sbuf[0], "f", sbuf[1], NULL};
  memcpy(argv, a, sizeof a);
}
static const char *xadd_reply(uint64_t i, char *buf, size_t cap) {
  snprintf(buf, cap, "\r\n%llu-0\r\n", (unsigned long long)i);
  return buf;
}
static void v_entry(uint64_t i, char *buf, size_t cap) { snprintf(buf, cap, "\nv%llu\r\n", (unsigned long long)i); }

static const chain floor_xread = {.what = "floor xread", .stream = "floor", .after = "0-0", .write = xadd_write,
                                  .reply_end = xadd_reply, .entry_end = v_entry};

/* The floors of the mandated design: the write decided inside Redis by a
 * Function. `x` does nothing but the XADD (the least any Function-decided
 * write costs); `rw` the least a compare-and-set of one variable does with
 * the store's keys as library.c lays them out (src/redis/library.c): read
 * the record, compare its version, read the head and the time, append the
 * log entry (old and new value), write the record and the head. None of
 * the library's generality: one request, no group call, no pcall, no check
 * beyond the version. */
static const char floor_lib[] =
    "#!lua name=rstate_floor\n"
    "local function x(K, A) return redis.call('XADD', K[1], '*', 'v', A[1]) end\n"
    /* K: 1 head (meta), 2 records (vars), 3 log; A: 1 name, 2 expected version, 3 new value, 4 token */
    "local function rw(K, A)\n"
    "  local cur = redis.call('HGET', K[2], A[1])\n"
    "  local ver, ty, drev, old = string.match(cur, '^(%d+) %d+ %d+ (%d) (%d+) (.*)$')\n"
    "  if ver ~= A[2] then return {'CONFLICT', ver} end\n"
    "  local m = redis.call('HMGET', K[1], 'rev', 'tok')\n"
    "  local t = redis.call('TIME')\n"
    "  local r, v = tostring(tonumber(m[1]) + 1), tostring(tonumber(ver) + 1)\n"
    "  local ts = t[1] .. string.format('%06d', tonumber(t[2])) .. '000'\n"
    "  redis.call('XADD', K[3], 'MAXLEN', '~', '100000', r .. '-0', 't', A[4], 'p', m[2], 'ts', ts,\n"
    "             'c', v .. ' ' .. #A[1] .. ':' .. A[1] .. #old .. ':' .. old .. #A[3] .. ':' .. A[3])\n"
    "  redis.call('HSET', K[2], A[1], v .. ' ' .. r .. ' ' .. ts .. ' ' .. ty .. ' ' .. drev .. ' ' .. A[3])\n"
    "  redis.call('HSET', K[1], 'rev', r, 'tok', A[4])\n"
    "  return r\n"
    "end\n"
    "redis.register_function('rstate_floor_x', x)\n"
    "redis.register_function('rstate_floor_rw', rw)\n";

static void floor_load(int port) {
  int fd = rc_connect(port);
  if (fd < 0) bench_die("redis: connect");
  char buf[256];
  const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", floor_lib, NULL};
  /* rc_send's buffer is too small for the library */
  char cmd[4096];
  size_t n = rc_cmd(cmd, sizeof cmd, argv);
  if (write(fd, cmd, n) != (ssize_t)n) bench_die("redis: write");
  rc_reply(fd, buf, sizeof buf, "FUNCTION LOAD");
  const char *seed[] = {"HSET", "rs:{floor}:vars", "x", "1 0 0 3 1 f0", NULL},
             *head[] = {"HSET", "rs:{floor}:meta", "rev", "0", "tok", "t0", NULL};
  rc_call(fd, seed, buf, sizeof buf, "HSET");
  rc_call(fd, head, buf, sizeof buf, "HSET");
  close(fd);
}

/* floor.redis.fcall: FCALL of the Function that only appends. */
static void x_write(chain *c, uint64_t i, const char **argv, char (*sbuf)[48]) {
  snprintf(sbuf[0], sizeof sbuf[0], "x%llu", (unsigned long long)i);
  const char *a[] = {"FCALL", "rstate_floor_x", "1", c->stream, sbuf[0], NULL};
  memcpy(argv, a, sizeof a);
}
static const char *any_reply(uint64_t i, char *buf, size_t cap) {
  (void)i, (void)buf, (void)cap;
  return NULL;
}
static void x_entry(uint64_t i, char *buf, size_t cap) { snprintf(buf, cap, "\nx%llu\r\n", (unsigned long long)i); }

static const chain floor_fcall = {.what = "floor fcall", .stream = "floorf", .after = "0-0", .write = x_write,
                                  .reply_end = any_reply, .entry_end = x_entry};

/* floor.redis.fcall.rw: the compare-and-set Function on rs:{floor}, version i
 * expected at the i-th write (the record was seeded at version 1). */
static void rw_write(chain *c, uint64_t i, const char **argv, char (*sbuf)[48]) {
  (void)c;
  snprintf(sbuf[0], sizeof sbuf[0], "%llu", (unsigned long long)i);
  snprintf(sbuf[1], sizeof sbuf[1], "f%llu", (unsigned long long)i);
  snprintf(sbuf[2], sizeof sbuf[2], "tok%llx", (unsigned long long)i);
  const char *a[] = {"FCALL", "rstate_floor_rw", "3", "rs:{floor}:meta", "rs:{floor}:vars", "rs:{floor}:log",
                     "x", sbuf[0], sbuf[1], sbuf[2], NULL};
  memcpy(argv, a, sizeof a);
}
static const char *rev_reply(uint64_t i, char *buf, size_t cap) {
  snprintf(buf, cap, "\r\n%llu\r\n", (unsigned long long)i);
  return buf;
}
static void f_entry(uint64_t i, char *buf, size_t cap) { snprintf(buf, cap, ":f%llu\r\n", (unsigned long long)i); }

static const chain floor_fcall_rw = {.what = "floor fcall.rw", .stream = "rs:{floor}:log", .after = "0-0",
                                     .write = rw_write, .reply_end = rev_reply, .entry_end = f_entry};

/* redis.fcall.lib: our own Function (library.c's group call, one set of one
 * variable) called by the same bare client, on a variable of store "bench"
 * defined by a store: the Function's cost without the client library's. */
typedef struct libvar {
  char defrev[24];
  char fn[64]; /* the group call's name: the library's, + "_sets" */
} libvar;
static void lib_write(chain *c, uint64_t i, const char **argv, char (*sbuf)[48]) {
  const libvar *l = c->ud;
  snprintf(sbuf[0], sizeof sbuf[0], "f%llu", (unsigned long long)i);
  snprintf(sbuf[1], sizeof sbuf[1], "tok%llx", (unsigned long long)i);
  const char *a[] = {"FCALL", l->fn, "4", "rs:{benchlib}:meta", "rs:{benchlib}:defs", "rs:{benchlib}:vars",
                     "rs:{benchlib}:log", "100000", "1", sbuf[1], "-", "", "1", "lib", l->defrev, "0", sbuf[0], "0",
                     NULL};
  memcpy(argv, a, sizeof a);
}

/* Reads the variable's definition revision and the store's revision. */
static chain floor_lib_fcall(int port, libvar *l) {
  int fd = rc_connect(port);
  if (fd < 0) bench_die("redis: connect");
  char rep[512];
  const char *rec[] = {"HGET", "rs:{benchlib}:vars", "lib", NULL}, *rev[] = {"HGET", "rs:{benchlib}:meta", "rev", NULL};
  size_t n = rc_call(fd, rec, rep, sizeof rep - 1, "HGET");
  rep[n] = 0;
  /* "$LEN\r\nVERSION REVISION TIME TYPE DEFREV VALUE\r\n" */
  if (sscanf(rep, "$%*d\r\n%*s %*s %*s %*s %23s", l->defrev) != 1) bench_die("redis: no record of lib");
  chain c = {.what = "our Function", .stream = "rs:{benchlib}:log", .write = lib_write, .reply_end = any_reply,
             .entry_end = f_entry, .ud = l};
  n = rc_call(fd, rev, rep, sizeof rep - 1, "HGET");
  rep[n] = 0;
  unsigned long long r;
  if (sscanf(rep, "$%*d\r\n%llu", &r) != 1) bench_die("redis: no revision in rs:{benchlib}:meta");
  snprintf(c.after, sizeof c.after, "%llu-0", r);
  /* the library the store loaded, whatever its version ("rstate_N"; this
   * server has only it and ours) */
  char list[8192];
  const char *fl[] = {"FUNCTION", "LIST", "LIBRARYNAME", "rstate_*", NULL};
  n = rc_call(fd, fl, list, sizeof list - 1, "FUNCTION LIST");
  list[n] = 0;
  const char *p = list;
  l->fn[0] = 0;
  while ((p = strstr(p, "library_name\r\n$"))) {
    int len = atoi(p + 15);
    const char *name = strstr(p, "\r\n") + 2;
    name = strstr(name, "\r\n") + 2;
    if (len > 0 && len < 50 && strncmp(name, "rstate_floor", (size_t)len))
      snprintf(l->fn, sizeof l->fn, "%.*s_sets", len, name);
    p = name;
  }
  if (!l->fn[0]) bench_die("redis: the store's Function library is not on the server");
  close(fd);
  return c;
}

/* ---- ours, as a turn ---- */

typedef struct ours {
  rstate_store *A;
  arrival a; /* B's watch of BENCH_VAR */
  rstate_value v;
  bstats set; /* A's rstate_set, call to return */
} ours;

static int64_t ours_one(void *self, bool keep) {
  ours *o = self;
  o->v.u.f += 1;
  arrival_expect(&o->a, 1);
  int64_t t0 = bench_now();
  BENCH_OK(rstate_set(o->A, BENCH_VAR, &o->v, NULL));
  int64_t t1 = bench_now();
  int64_t t2 = arrival_wait(&o->a, "redis latency");
  if (keep) bs_add(&o->set, (double)(t1 - t0), 1);
  return t2 - t0;
}


/* Waits until the replica acknowledges a write (it syncs after it answers
 * PING): 30 s at most. */
static void replica_synced(int port) {
  int w = rc_connect(port);
  if (w < 0) bench_die("redis: connect");
  char rep[256];
  const char *xadd[] = {"XADD", "floorw.sync", "*", "f", "v", NULL}, *wait1[] = {"WAIT", "1", "1000", NULL};
  for (int i = 0;; i++) {
    rc_call(w, xadd, rep, sizeof rep, "XADD");
    if (rc_call(w, wait1, rep, sizeof rep, "WAIT") == 4 && !memcmp(rep, ":1\r\n", 4)) break;
    if (i == 30) bench_die("redis: the replica did not acknowledge a write within 30 s");
  }
  close(w);
}

static bsum floor_wait1(int port, size_t samples) {
  int w = rc_connect(port);
  if (w < 0) bench_die("redis: connect");
  bstats st = {0};
  size_t warm = 100;
  char rep[256];
  for (uint64_t i = 1; i <= samples + warm; i++) {
    char id[32];
    snprintf(id, sizeof id, "%llu-0", (unsigned long long)i);
    const char *xadd[] = {"XADD", "floorw", id, "f", "v", NULL}, *wait1[] = {"WAIT", "1", "1000", NULL};
    char want[40];
    snprintf(want, sizeof want, "%s\r\n", id);
    int64_t t0 = bench_now();
    rc_send(w, xadd);
    rc_until(w, want);
    if (rc_call(w, wait1, rep, sizeof rep, "WAIT") != 4 || memcmp(rep, ":1\r\n", 4))
      bench_die("redis: WAIT 1: the replica did not acknowledge within 1 s");
    if (i > warm) bs_add(&st, (double)(bench_now() - t0), 1);
  }
  close(w);
  bsum s = bs_sum(&st);
  bs_free(&st);
  return s;
}

typedef struct xadder {
  int port, k;
  bool fcall; /* FCALL of rstate_floor_x instead of the bare XADD */
  size_t n;
} xadder;

static void *xadd_main(void *arg) {
  xadder *x = arg;
  int fd = rc_connect(x->port);
  if (fd < 0) bench_die("redis: connect");
  char key[16], rep[256];
  snprintf(key, sizeof key, "floor4%s.%d", x->fcall ? "f" : "", x->k);
  for (size_t i = 1; i <= x->n; i++) {
    char id[32], want[40];
    snprintf(id, sizeof id, "%zu-0", i);
    snprintf(want, sizeof want, "%s\r\n", id);
    const char *xadd[] = {"XADD", key, id, "f", "v", NULL}, *fcall[] = {"FCALL", "rstate_floor_x", "1", key, "v", NULL};
    if (x->fcall) {
      rc_call(fd, fcall, rep, sizeof rep, "floor fcall4");
    } else {
      rc_send(fd, xadd);
      rc_until(fd, want);
    }
  }
  close(fd);
  return NULL;
}

/* XADDs (or FCALLs of the appending Function) per second from 4 threads,
 * one in flight on each connection. */
static double floor_xadd4(int port, size_t each, bool fcall) {
  enum { N = 4 };
  xadder x[N];
  pthread_t t[N];
  int64_t t0 = bench_now();
  for (int i = 0; i < N; i++) {
    x[i] = (xadder){port, i, fcall, each};
    pthread_create(&t[i], NULL, xadd_main, &x[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  return (double)(N * each) / ((double)(bench_now() - t0) / 1e9);
}

/* A row of Redis's own time per call, in ns. */
static void cpu_row(const char *id, const char *label, double ns) {
  brow r = {id, label, "ns/call", ns, bench_nopct, NULL, NAN, NAN, 0, 0};
  bench_row(&r);
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

  floor_load(primary.port);
  rstate_store *A = ropen(&primary, "bench", 0), *B = ropen(&primary, "bench", 0), *L = ropen(&primary, "benchlib", 0);
  bench_define_float(A, BENCH_VAR);
  bench_define_float(L, "lib");
  rstate_close(L);

  /* the floors and ours, in turns */
  uint64_t total = turn_total(samples);
  chain xrc = floor_xread, fcc = floor_fcall, rwc = floor_fcall_rw;
  libvar lv;
  chain lbc = floor_lib_fcall(primary.port, &lv);
  chain *chains[] = {&xrc, &fcc, &rwc, &lbc};
  for (size_t k = 0; k < 4; k++) chain_start(primary.port, chains[k], total);
  ours o = {.A = A, .v = rstate_float(0)};
  arrival_init(&o.a);
  rstate_watch_id wid;
  const char *name = BENCH_VAR;
  BENCH_OK(rstate_watch(B, &name, 1, arrival_cb, &o.a, NULL, &wid));
  turn t[] = {{chain_one, &xrc, "xadd", 0, {0}}, {chain_one, &fcc, "fcall", 0, {0}}, {chain_one, &rwc, "fcall", 0, {0}},
              {chain_one, &lbc, "fcall", 0, {0}}, {ours_one, &o, "fcall", 0, {0}}};
  turns_run(primary.port, t, 5, samples);
  for (size_t k = 0; k < 4; k++) chain_stop(chains[k]);
  bsum xr = bs_sum(&t[0].st), fc = bs_sum(&t[1].st), rw = bs_sum(&t[2].st), lb = bs_sum(&t[3].st);
  bsum s = bs_sum(&t[4].st), ss = bs_sum(&o.set);
  for (size_t k = 0; k < 5; k++) bs_free(&t[k].st);
  bs_free(&o.set);
  bench_floor_row("floor.redis.xread", "floor: XADD -> XREAD BLOCK on another connection, bare RESP", xr);
  bench_floor_row("floor.redis.fcall", "floor: FCALL of a Function doing only XADD -> XREAD BLOCK, bare RESP", fc);
  bench_ratio("floor.redis.fcall.x", "FCALL floor p50 over the XREAD floor's p50", fc.p50 / xr.p50, 0, 0);
  bench_floor_row("floor.redis.fcall.rw", "floor: FCALL of a bare compare-and-set Function -> XREAD BLOCK", rw);
  bench_ratio("floor.redis.fcall.rw.x", "compare-and-set floor p50 over the XREAD floor's p50", rw.p50 / xr.p50, 0, 0);
  bench_floor_row("redis.fcall.lib", "our Function (group call, one set) by bare RESP -> XREAD BLOCK", lb);
  bench_ratio("redis.fcall.lib.x", "our Function by bare RESP, p50 over the XREAD floor's p50", lb.p50 / xr.p50, 0, 0);
  bench_latency("redis.latency", "set on redis: store A -> inline callback on store B", "ns/event", s,
                "floor.redis.xread", xr.mean, 0, 0);
  bench_pct_row("redis.latency.p50", "set on A -> callback on B, redis:, p50", s.p50, s, "floor.redis.xread", xr.p50,
                0, 0);
  bench_ratio("redis.latency.p50x", "redis: p50 over the XREAD floor's p50", s.p50 / xr.p50, '<', 1.3);
  bench_pct_row("redis.latency.p99", "set on A -> callback on B, redis:, p99", s.p99, s, "floor.redis.xread", xr.p99,
                0, 0);
  bench_ratio("redis.latency.p99x", "redis: p99 over the XREAD floor's p99", s.p99 / xr.p99, '<', 3);
  bench_ratio("redis.latency.fcall.x", "redis: p50 over the FCALL floor's p50", s.p50 / fc.p50, 0, 0);
  bench_ratio("redis.latency.fcall.rw.x", "redis: p50 over the compare-and-set floor's p50", s.p50 / rw.p50, 0, 0);
  bench_ratio("redis.latency.lib.x", "redis: p50 over our Function's by bare RESP", s.p50 / lb.p50, 0, 0);
  cpu_row("redis.cpu.xadd", "Redis's time per call (commandstats): the XREAD floor's XADD", t[0].cpu);
  cpu_row("redis.cpu.fcall", "Redis's time per call: FCALL of the appending Function", t[1].cpu);
  cpu_row("redis.cpu.fcall.rw", "Redis's time per call: FCALL of the compare-and-set Function", t[2].cpu);
  cpu_row("redis.cpu.lib", "Redis's time per call: our Function by bare RESP", t[3].cpu);
  cpu_row("redis.cpu.set", "Redis's time per call: our Function, sets of redis.latency", t[4].cpu);
  bench_latency("redis.set", "rstate_set on a redis: store, call to return", "ns/op", ss, "floor.redis.xread", xr.mean,
                0, 0);
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
  double x4 = floor_xadd4(primary.port, each, false), f4 = floor_xadd4(primary.port, each, true);
  bench_rate("floor.redis.xadd4", "floor: XADDs/s from 4 threads, one in flight on each connection, bare RESP",
             "changes/s", x4, bench_nopct, NULL, 0, 0, 0);
  bench_rate("floor.redis.fcall4", "floor: FCALLs/s (the appending Function) from 4 threads, one in flight on each",
             "changes/s", f4, bench_nopct, "floor.redis.xadd4", 1e9 / x4, 0, 0);
  const char *wpat = "w*";
  arrival a;
  arrival_init(&a);
  arrival_expect(&a, (uint64_t)WRITERS * each);
  BENCH_OK(rstate_watch(B, &wpat, 1, arrival_cb, &a, NULL, &wid));
  int64_t t0 = bench_now();
  for (int i = 0; i < WRITERS; i++) pthread_create(&th[i], NULL, writer_main, &ws[i]);
  for (int i = 0; i < WRITERS; i++) pthread_join(th[i], NULL);
  int64_t t1 = arrival_wait(&a, "redis writers");
  double rate = (double)(WRITERS * each) / ((double)(t1 - t0) / 1e9);
  bench_rate("redis.writers4", "changes/s from 4 writer threads on one redis: store, each reaching a watcher",
             "changes/s", rate, bench_nopct, "floor.redis.xadd4", 1e9 / x4, '>', 100000);
  bench_ratio("redis.writers4.fcall4", "redis.writers4 over the 4-thread FCALL floor (rates)", rate / f4, 0, 0);
  rstate_close(A);
  rstate_close(B);

  /* replicas = 1 */
  rserver_start(&replica, primary.port);
  replica_synced(primary.port);
  bsum w1 = floor_wait1(primary.port, samples / 3 + 1);
  bench_floor_row("floor.redis.wait1", "floor: XADD then WAIT 1, bare RESP", w1);
  rstate_store *C = ropen(&primary, "bench", 1);
  bstats rs = {0};
  rstate_value v = o.v;
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
