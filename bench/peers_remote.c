/*
 * peers_remote.c — the remote peers issue 5 quotes, measured the way
 * remote_latency.c, remote_throughput.c and remote_fanout.c measure us, on
 * this machine, in the same run: Redis (a SET reaching a client subscribed
 * to its keyspace notification) and NATS (a JetStream KV put reaching a KV
 * watch; core publish/subscribe). Built and run only by `make bench-peers`.
 *
 * The program starts its own servers (fork/exec; Redis on a socket in a
 * temporary directory and a port on 127.0.0.1, NATS on a port of
 * 127.0.0.1; nothing persisted), waits until they answer (a bounded poll),
 * and kills and reaps them when it exits, however it exits. The clients
 * are minimal protocol code of our own (RESP2; the NATS client protocol),
 * each subscriber's connection read by a thread of its own blocked in
 * read(), as our clients' connection threads are; arrivals meet at
 * bench_remote.h's `arrival`, the clock read where our inline callbacks
 * read it, once the whole message is parsed.
 *
 *   peer.redis.unix / .p50 / .p99   client A: SET temperature <n>, waits for
 *                         its +OK, then for client B, SUBSCRIBEd to
 *                         __keyspace@0__:temperature, to have parsed the
 *                         "message" push: from just before A's write
 *                                                    (ours: remote.unix)
 *   peer.redis.unix.set   A's SET, write to +OK        (ours: remote.unix.set)
 *   peer.redis.tcp.*      the same over tcp:127.0.0.1  (ours: remote.tcp)
 *   peer.nats.kv.tcp / .p50 / .p99   A: a KV put (PUB to $KV.bench.temperature
 *                         with a reply inbox), waits for the JetStream ack;
 *                         B: a KV watch (an ephemeral push consumer of the
 *                         bucket's stream, deliver new, no acks, filtered on
 *                         the key) has parsed the value   (ours: remote.tcp)
 *   peer.nats.kv.tcp.set  A's put, write to the ack    (ours: remote.tcp.set)
 *   peer.nats.core.tcp.*  A: PUB temperature; B: SUB temperature, no reply
 *                         to wait for                  (ours: remote.tcp)
 *   peer.redis.stream     keyspace messages/s to one subscriber, unix:, a
 *                         setter pipelining SETs 100 to a write (the next
 *                         100 written before the last 100's replies are
 *                         read)                        (ours: remote.stream)
 *   peer.nats.stream      core messages/s to one subscriber, tcp:, PUBs
 *                         100 to a write               (ours: remote.stream)
 *   peer.X.stream.cpu     CPU per event: the server process and this one
 *                                                  (ours: remote.stream.cpu)
 *   peer.redis.fan100 / .first  one SET -> the last (first) of 100
 *                         subscribers, each its own connection and reader
 *                         thread, unix:            (ours: remote.fanout100)
 *   peer.nats.fan100 / .first   one core PUB -> the last (first) of 100
 *                         core subscribers, tcp:   (ours: remote.fanout100)
 *
 * NATS has no Unix socket: its figures are over TCP only. Floors (same run,
 * bench_remote.h): floor.X.rtt and floor.X.relay for unix and tcp (as
 * remote_latency.c), floor.X.stream (as remote_throughput.c),
 * floor.X.fan100 (as remote_fanout.c). The servers are processes of their
 * own where ours is a thread of the benchmark's process: a wakeup across
 * processes and one across threads are the same kind of hop (the floors').
 */
#include "bench_remote.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define PEER_START_S 10 /* a server has this long to answer */
#define PEER_READ_S 10  /* a reply or message has this long to come */

/* ---- the servers ----------------------------------------------------------- */

typedef struct peer_proc {
  const char *name;
  pid_t pid;
  char log[128];
} peer_proc;

static char peer_dir[64];        /* the temporary directory: sockets, logs, storage */
static atomic_bool peer_exiting; /* the servers are being stopped: connections close */
static peer_proc *peer_procs[4];
static int peer_nprocs;

/* Kills and reaps every server started. Safe in a signal handler (kill and
 * waitpid only). */
static void peers_kill(void) {
  for (int i = 0; i < peer_nprocs; i++)
    if (peer_procs[i]->pid > 0) kill(peer_procs[i]->pid, SIGKILL);
  for (int i = 0; i < peer_nprocs; i++)
    if (peer_procs[i]->pid > 0) {
      waitpid(peer_procs[i]->pid, NULL, 0);
      peer_procs[i]->pid = 0;
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void peers_cleanup(void) {
  atomic_store(&peer_exiting, true);
  peers_kill();
  if (peer_dir[0]) nftw(peer_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Interrupted (hyperfine's Ctrl-C, a kill): the servers go, and the files
 * they leave, removed by name (unlink and rmdir, safe in a signal handler,
 * where nftw is not). */
static void on_signal(int sig) {
  atomic_store(&peer_exiting, true);
  peers_kill();
  static const char *const files[] = {"redis.sock", "redis-server.log", "nats-server.log", "nats/jetstream", "nats"};
  char path[sizeof peer_dir + 32];
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    size_t d = strlen(peer_dir), f = strlen(files[i]);
    memcpy(path, peer_dir, d);
    path[d] = '/';
    memcpy(path + d + 1, files[i], f + 1);
    if (unlink(path)) rmdir(path);
  }
  rmdir(peer_dir);
  _exit(128 + sig);
}

static void peers_init(void) {
  snprintf(peer_dir, sizeof peer_dir, "/tmp/rstate-peers-XXXXXX");
  if (!mkdtemp(peer_dir)) bench_die("mkdtemp in /tmp");
  atexit(peers_cleanup);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN); /* a server gone shows as a failed write, not a silent death */
}

/* The tail of a server's log, for the sentence a failed start ends with. */
static void peer_print_log(const peer_proc *p) {
  FILE *f = fopen(p->log, "r");
  if (!f) return;
  char buf[2048];
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  fprintf(stderr, "--- the end of %s's log (%s):\n%s---\n", p->name, p->log, buf);
}

/* Starts argv[0] (looked up in PATH, then /usr/sbin and /usr/bin), its
 * output into a log in peer_dir. The server dies with this process even if
 * this process is killed (PR_SET_PDEATHSIG). */
static void peer_spawn(peer_proc *p, char *const argv[]) {
  p->name = argv[0];
  snprintf(p->log, sizeof p->log, "%s/%s.log", peer_dir, argv[0]);
  peer_procs[peer_nprocs++] = p;
  pid_t pid = fork();
  if (pid < 0) bench_die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int in = open("/dev/null", O_RDONLY), out = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0) _exit(126);
    dup2(in, 0), dup2(out, 1), dup2(out, 2);
    execvp(argv[0], argv);
    char path[64];
    snprintf(path, sizeof path, "/usr/sbin/%s", argv[0]);
    execv(path, argv);
    snprintf(path, sizeof path, "/usr/bin/%s", argv[0]);
    execv(path, argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  p->pid = pid;
}

static void peer_fail(const peer_proc *p, const char *why) {
  fprintf(stderr, "%s: %s did not start: %s\n", bench_prog, p->name, why);
  peer_print_log(p);
  exit(2);
}

/* Polls ready(arg) every 5 ms until it returns 1, for PEER_START_S at most;
 * fails the program if the server exits or the time runs out. */
static void peer_wait_ready(peer_proc *p, int (*ready)(void *), void *arg) {
  int64_t deadline = bench_now() + (int64_t)PEER_START_S * 1000000000;
  for (;;) {
    int status;
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
      p->pid = 0;
      peer_fail(p, WIFEXITED(status) && WEXITSTATUS(status) == 127
                       ? "it is not installed (apt-get install redis-server nats-server)"
                       : "it exited at once");
    }
    if (ready(arg)) return;
    if (bench_now() > deadline) peer_fail(p, "it did not answer within 10 s");
    usleep(5000);
  }
}

/* A TCP port on 127.0.0.1 free a moment ago (bound to port 0, closed): the
 * server fails to start, clearly, in the unlikely case someone takes it
 * in between. */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len))
    bench_die("finding a free port");
  close(fd);
  return ntohs(a.sin_port);
}

/* ---- connections ------------------------------------------------------------- */

/* A connected socket (a socket file's path, or a port on 127.0.0.1 with
 * TCP_NODELAY, as the library sets), reads timing out after PEER_READ_S;
 * -1 if the connect fails. */
static int peer_connect(const char *path, int port) {
  int fd;
  if (path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) goto fail;
  } else {
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) goto fail;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  struct timeval tv = {.tv_sec = PEER_READ_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
fail:
  if (fd >= 0) close(fd);
  return -1;
}

/* Frames of a protocol: the length of the whole frame at p (n bytes), 0 when
 * more bytes are needed; no I/O inside. out receives what the parser
 * decodes (may be NULL). */
typedef size_t (*frame_fn)(const char *p, size_t n, void *out);

#define PC_MAX_FRAME (1 << 20) /* no reply here comes near; a bigger one is a bug */

/* A connection and what has been read from it but not parsed. */
typedef struct pconn {
  int fd;
  pthread_mutex_t wmu; /* writes: the owner, and a reader thread's PONG */
  char *buf;
  size_t cap, off, end;
} pconn;

static void pc_open(pconn *c, int fd) {
  if (fd < 0) bench_die("connecting to a server that was ready");
  memset(c, 0, sizeof *c);
  c->fd = fd;
  pthread_mutex_init(&c->wmu, NULL);
  c->cap = 65536;
  if (!(c->buf = malloc(c->cap))) bench_die("out of memory");
}

static void pc_close(pconn *c) {
  close(c->fd);
  pthread_mutex_destroy(&c->wmu);
  free(c->buf);
}

static void pc_write(pconn *c, const void *p, size_t n) {
  pthread_mutex_lock(&c->wmu);
  const char *s = p;
  while (n) {
    ssize_t k = write(c->fd, s, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      fprintf(stderr, "%s: a write to a server failed: %s\n", bench_prog, k < 0 ? strerror(errno) : "closed");
      exit(2);
    }
    s += k;
    n -= (size_t)k;
  }
  pthread_mutex_unlock(&c->wmu);
}

/* The next whole frame (*len bytes, valid until the next call), reading
 * as needed; NULL when the connection closed or no byte came for
 * PEER_READ_S (errno EAGAIN: the frame read so far is kept). */
static const char *pc_frame(pconn *c, frame_fn parse, void *out, size_t *len) {
  for (;;) {
    if (c->end > c->off) {
      size_t k = parse(c->buf + c->off, c->end - c->off, out);
      if (k) {
        const char *f = c->buf + c->off;
        c->off += k;
        *len = k;
        return f;
      }
    }
    if (c->off == c->end) c->off = c->end = 0;
    if (c->end == c->cap) {
      if (c->off) {
        memmove(c->buf, c->buf + c->off, c->end - c->off);
        c->end -= c->off;
        c->off = 0;
      } else {
        if (c->cap >= PC_MAX_FRAME) bench_die("a server sent a frame over 1 MiB");
        c->cap *= 2;
        if (!(c->buf = realloc(c->buf, c->cap))) bench_die("out of memory");
      }
    }
    ssize_t r = read(c->fd, c->buf + c->end, c->cap - c->end);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = 0;
      return NULL;
    }
    c->end += (size_t)r;
  }
}

/* pc_frame for a reply the calling thread waits for: no frame is an error. */
static const char *pc_expect(pconn *c, frame_fn parse, void *out, size_t *len, const char *what) {
  const char *f = pc_frame(c, parse, out, len);
  if (!f) {
    fprintf(stderr, "%s: %s: %s\n", bench_prog, what,
            errno == EAGAIN ? "no answer within 10 s" : "the server closed the connection");
    exit(2);
  }
  return f;
}

/* A subscriber: its connection, read by a thread of its own blocked in
 * read(), as our clients' connection threads are; each message it parses
 * is an arrival. */
typedef struct sub {
  pconn c;
  arrival *a;
  atomic_bool stop;
  pthread_t thread;
  const char *what;
} sub;

/* Stops a subscriber's thread (shutdown: its read returns 0) and closes
 * it. */
static void sub_stop(sub *s) {
  atomic_store(&s->stop, true);
  shutdown(s->c.fd, SHUT_RDWR);
  pthread_join(s->thread, NULL);
  pc_close(&s->c);
}

/* A reader's end: the connection closed because sub_stop asked, or because
 * the program is exiting (another thread failed), or a failure. */
static void sub_ended(sub *s) {
  if (atomic_load(&s->stop) || atomic_load(&peer_exiting)) return;
  fprintf(stderr, "%s: %s: a subscriber's connection %s\n", bench_prog, s->what,
          errno == EAGAIN ? "got nothing for 10 s" : "was closed by the server");
  exit(3);
}

static const rstate_event peer_ev = {.kind = RSTATE_EVENT_CHANGED, .coalesced = 1};

/* ---- Redis: RESP2 ------------------------------------------------------------- */

/* The length of the whole RESP2 reply at p: a simple string, error,
 * integer, bulk string or (nested) array. */
static size_t resp_frame(const char *p, size_t n, void *out) {
  (void)out;
  const char *nl = memchr(p, '\n', n);
  if (!nl) return 0;
  size_t line = (size_t)(nl - p) + 1;
  long k = 0;
  switch (p[0]) {
    case '+':
    case '-':
    case ':':
      return line;
    case '$':
      k = strtol(p + 1, NULL, 10);
      if (k < 0) return line; /* nil */
      if ((size_t)k > PC_MAX_FRAME) bench_die("redis: a bulk string over 1 MiB");
      return n >= line + (size_t)k + 2 ? line + (size_t)k + 2 : 0;
    case '*': {
      k = strtol(p + 1, NULL, 10);
      size_t off = line;
      for (long i = 0; i < k; i++) {
        size_t e = resp_frame(p + off, n - off, NULL);
        if (!e) return 0;
        off += e;
      }
      return off;
    }
    default:
      bench_die("redis: a reply that is not RESP2");
  }
  return 0;
}

/* The RESP array of a SET of BENCH_VAR to n, into buf; its length. */
static size_t resp_set(char *buf, size_t size, uint64_t n) {
  char v[24];
  int vl = snprintf(v, sizeof v, "%llu", (unsigned long long)n);
  return (size_t)snprintf(buf, size, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%d\r\n%s\r\n", strlen(BENCH_VAR), BENCH_VAR, vl,
                          v);
}

static void redis_expect_ok(pconn *c) {
  size_t len;
  const char *f = pc_expect(c, resp_frame, NULL, &len, "redis: SET");
  if (len != 5 || memcmp(f, "+OK\r\n", 5)) {
    fprintf(stderr, "%s: redis: SET answered %.*s\n", bench_prog, (int)len, f);
    exit(2);
  }
}

#define REDIS_CHANNEL "__keyspace@0__:" BENCH_VAR
#define REDIS_MESSAGE "*3\r\n$7\r\nmessage\r\n"

static void *redis_reader(void *arg) {
  sub *s = arg;
  for (;;) {
    size_t len;
    const char *f = pc_frame(&s->c, resp_frame, NULL, &len);
    if (!f) {
      if (errno == EAGAIN && !atomic_load(&s->stop)) continue; /* idle between phases */
      break;
    }
    if (len > sizeof REDIS_MESSAGE - 1 && !memcmp(f, REDIS_MESSAGE, sizeof REDIS_MESSAGE - 1))
      arrival_cb(&peer_ev, s->a);
  }
  sub_ended(s);
  return NULL;
}

typedef struct redis_server {
  peer_proc proc;
  char path[128]; /* the unix socket */
  int port;       /* tcp on 127.0.0.1 */
} redis_server;

static int redis_ready(void *arg) {
  redis_server *r = arg;
  int fd = peer_connect(r->path, 0);
  if (fd < 0) return 0;
  pconn c;
  pc_open(&c, fd);
  pc_write(&c, "*1\r\n$4\r\nPING\r\n", 14);
  size_t len;
  const char *f = pc_frame(&c, resp_frame, NULL, &len);
  int ok = f && len == 7 && !memcmp(f, "+PONG\r\n", 7);
  pc_close(&c);
  return ok;
}

/* Redis with nothing persisted, keyspace notifications on, no limit on a
 * subscriber's output buffer (as our server is given 1 GiB of queue: no
 * event may be dropped), on a socket in peer_dir and a port on 127.0.0.1. */
static void redis_start(redis_server *r) {
  snprintf(r->path, sizeof r->path, "%s/redis.sock", peer_dir);
  r->port = free_port();
  char port[16];
  snprintf(port, sizeof port, "%d", r->port);
  char *argv[] = {"redis-server",
                  "--save",
                  "",
                  "--appendonly",
                  "no",
                  "--port",
                  port,
                  "--bind",
                  "127.0.0.1",
                  "--unixsocket",
                  r->path,
                  "--unixsocketperm",
                  "700",
                  "--notify-keyspace-events",
                  "KA",
                  "--client-output-buffer-limit",
                  "pubsub 0 0 0",
                  "--dir",
                  peer_dir,
                  "--loglevel",
                  "warning",
                  NULL};
  peer_spawn(&r->proc, argv);
  peer_wait_ready(&r->proc, redis_ready, r);
}

static int redis_connect(const redis_server *r, const char *t) {
  return peer_connect(!strcmp(t, "unix") ? r->path : NULL, r->port);
}

/* A subscriber to BENCH_VAR's keyspace channel, its subscription confirmed,
 * its reader thread running. */
static void redis_sub_start(sub *s, const redis_server *r, const char *t, arrival *a, const char *what) {
  memset(s, 0, sizeof *s);
  pc_open(&s->c, redis_connect(r, t));
  s->a = a;
  s->what = what;
  char cmd[128];
  int n = snprintf(cmd, sizeof cmd, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(REDIS_CHANNEL), REDIS_CHANNEL);
  pc_write(&s->c, cmd, (size_t)n);
  size_t len;
  const char *f = pc_expect(&s->c, resp_frame, NULL, &len, "redis: SUBSCRIBE");
  if (len < 20 || memcmp(f, "*3\r\n$9\r\nsubscribe\r\n", 19)) bench_die("redis: SUBSCRIBE was not confirmed");
  if (pthread_create(&s->thread, NULL, redis_reader, s)) bench_die("pthread_create");
}

/* ---- NATS: the client protocol --------------------------------------------------- */

enum { NATS_MSG, NATS_PING, NATS_PONG, NATS_OK, NATS_ERR, NATS_INFO };

/* What nats_frame decodes: the operation; for MSG and HMSG the
 * subscription id and the payload (headers skipped). */
typedef struct nmsg {
  int op;
  long sid;
  const char *data;
  size_t len;
} nmsg;

/* The length of the whole server operation at p: a control line, or MSG /
 * HMSG with their payload. */
static size_t nats_frame(const char *p, size_t n, void *out) {
  nmsg *m = out, ignored;
  if (!m) m = &ignored;
  const char *nl = memchr(p, '\n', n);
  if (!nl) return 0;
  size_t line = (size_t)(nl - p) + 1;
  bool hmsg = line > 5 && !memcmp(p, "HMSG ", 5);
  if (hmsg || (line > 4 && !memcmp(p, "MSG ", 4))) {
    /* MSG subject sid [reply] size; HMSG subject sid [reply] header_size total_size */
    const char *tok[6], *q = p + (hmsg ? 5 : 4), *e = nl;
    if (e > q && e[-1] == '\r') e--;
    int nt = 0;
    while (q < e && nt < 6) {
      while (q < e && *q == ' ') q++;
      if (q == e) break;
      tok[nt++] = q;
      while (q < e && *q != ' ') q++;
    }
    if (nt < (hmsg ? 4 : 3) || nt > (hmsg ? 5 : 4)) bench_die("nats: a malformed MSG line");
    size_t total = strtoul(tok[nt - 1], NULL, 10), hdr = hmsg ? strtoul(tok[nt - 2], NULL, 10) : 0;
    if (total > PC_MAX_FRAME || hdr > total) bench_die("nats: a message over 1 MiB");
    if (n < line + total + 2) return 0;
    m->op = NATS_MSG;
    m->sid = strtol(tok[1], NULL, 10);
    m->data = p + line + hdr;
    m->len = total - hdr;
    return line + total + 2;
  }
  if (line >= 4 && !memcmp(p, "PING", 4))
    m->op = NATS_PING;
  else if (line >= 4 && !memcmp(p, "PONG", 4))
    m->op = NATS_PONG;
  else if (line >= 3 && !memcmp(p, "+OK", 3))
    m->op = NATS_OK;
  else if (line >= 4 && !memcmp(p, "-ERR", 4))
    m->op = NATS_ERR;
  else if (line >= 4 && !memcmp(p, "INFO", 4))
    m->op = NATS_INFO;
  else
    bench_die("nats: an operation that is not in the client protocol");
  return line;
}

/* The next message for the calling thread, answering the server's PINGs on
 * the way; an -ERR fails the program. */
static nmsg nats_next(pconn *c, const char *what) {
  for (;;) {
    nmsg m;
    size_t len;
    const char *f = pc_expect(c, nats_frame, &m, &len, what);
    if (m.op == NATS_PING) pc_write(c, "PONG\r\n", 6);
    if (m.op == NATS_ERR) {
      fprintf(stderr, "%s: %s: the server says %.*s", bench_prog, what, (int)len, f);
      exit(2);
    }
    if (m.op == NATS_MSG || m.op == NATS_PONG) return m;
  }
}

/* PING, then wait for the PONG: the server has processed everything sent
 * before (a SUB is in force). */
static void nats_flush(pconn *c, const char *what) {
  pc_write(c, "PING\r\n", 6);
  if (nats_next(c, what).op != NATS_PONG) bench_die("nats: a message before the PONG of a flush");
}

typedef struct nats_server {
  peer_proc proc;
  int port;
} nats_server;

static int nats_ready(void *arg) {
  nats_server *ns = arg;
  int fd = peer_connect(NULL, ns->port);
  if (fd < 0) return 0;
  pconn c;
  pc_open(&c, fd);
  nmsg m;
  size_t len;
  int ok = pc_frame(&c, nats_frame, &m, &len) && m.op == NATS_INFO;
  pc_close(&c);
  return ok;
}

/* nats-server on a port of 127.0.0.1, JetStream on, its storage directory
 * in peer_dir (the bucket is in memory). */
static void nats_start(nats_server *ns) {
  ns->port = free_port();
  char port[16], store[96];
  snprintf(port, sizeof port, "%d", ns->port);
  snprintf(store, sizeof store, "%s/nats", peer_dir);
  char *argv[] = {"nats-server", "-a", "127.0.0.1", "-p", port, "-js", "-sd", store, NULL};
  peer_spawn(&ns->proc, argv);
  peer_wait_ready(&ns->proc, nats_ready, ns);
}

/* A connection past INFO and CONNECT (headers on: JetStream may send
 * HMSG). */
static void nats_open(pconn *c, const nats_server *ns) {
  pc_open(c, peer_connect(NULL, ns->port));
  nmsg m;
  size_t len;
  pc_expect(c, nats_frame, &m, &len, "nats: INFO");
  if (m.op != NATS_INFO) bench_die("nats: the server did not begin with INFO");
  const char *connect =
      "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"protocol\":1,"
      "\"name\":\"peers_remote\",\"lang\":\"C\",\"version\":\"0\"}\r\n";
  pc_write(c, connect, strlen(connect));
  nats_flush(c, "nats: CONNECT");
}

static void nats_sub(pconn *c, const char *subject, int sid) {
  char cmd[160];
  int n = snprintf(cmd, sizeof cmd, "SUB %s %d\r\n", subject, sid);
  pc_write(c, cmd, (size_t)n);
  nats_flush(c, "nats: SUB");
}

/* PUB subject [reply] with a number as its payload, into buf; its length. */
static size_t nats_pub(char *buf, size_t size, const char *subject, const char *reply, uint64_t x) {
  char v[24];
  int vl = snprintf(v, sizeof v, "%llu", (unsigned long long)x);
  return (size_t)snprintf(buf, size, "PUB %s%s%s %d\r\n%s\r\n", subject, reply ? " " : "", reply ? reply : "", vl, v);
}

#define NATS_CTL_SID 99 /* the control connection's inbox, _INBOX.ctl.* */

/* A JetStream API request on the control connection; its reply's payload
 * into out (NUL-terminated). A reply that carries an error fails the
 * program. */
static void nats_request(pconn *ctl, const char *subject, const char *json, char *out, size_t size) {
  static int seq;
  char head[192];
  int hn = snprintf(head, sizeof head, "PUB %s _INBOX.ctl.%d %zu\r\n", subject, ++seq, strlen(json));
  pc_write(ctl, head, (size_t)hn);
  pc_write(ctl, json, strlen(json));
  pc_write(ctl, "\r\n", 2);
  nmsg m;
  do m = nats_next(ctl, subject);
  while (m.op != NATS_MSG || m.sid != NATS_CTL_SID);
  size_t k = m.len < size - 1 ? m.len : size - 1;
  memcpy(out, m.data, k);
  out[k] = 0;
  if (!k || strstr(out, "\"error\"")) {
    fprintf(stderr, "%s: nats: %s answered: %s\n", bench_prog, subject, k ? out : "nothing (no JetStream?)");
    exit(2);
  }
}

#define NATS_BUCKET "bench"
#define NATS_KEY "$KV." NATS_BUCKET "." BENCH_VAR

/* The KV bucket as a JetStream KV client creates it: stream KV_<bucket> on
 * $KV.<bucket>.>, one message (history) per key, in memory. */
static void nats_kv_create(pconn *ctl) {
  const char *cfg =
      "{\"name\":\"KV_" NATS_BUCKET "\",\"subjects\":[\"$KV." NATS_BUCKET
      ".>\"],\"retention\":\"limits\","
      "\"max_consumers\":-1,\"max_msgs\":-1,\"max_bytes\":-1,\"max_age\":0,\"max_msgs_per_subject\":1,"
      "\"max_msg_size\":-1,\"discard\":\"new\",\"storage\":\"memory\",\"num_replicas\":1,"
      "\"duplicate_window\":120000000000,\"allow_rollup_hdrs\":true,\"deny_delete\":true,\"allow_direct\":true}";
  char reply[4096];
  nats_request(ctl, "$JS.API.STREAM.CREATE.KV_" NATS_BUCKET, cfg, reply, sizeof reply);
}

static void *nats_reader(void *arg) {
  sub *s = arg;
  for (;;) {
    nmsg m;
    size_t len;
    if (!pc_frame(&s->c, nats_frame, &m, &len)) {
      if (errno == EAGAIN && !atomic_load(&s->stop)) continue; /* idle between phases */
      break;
    }
    if (m.op == NATS_MSG && m.sid == 1)
      arrival_cb(&peer_ev, s->a);
    else if (m.op == NATS_PING)
      pc_write(&s->c, "PONG\r\n", 6);
  }
  sub_ended(s);
  return NULL;
}

/* A core subscriber (sid 1) to subject, its SUB in force, its reader
 * thread running. */
static void nats_sub_start(sub *s, const nats_server *ns, const char *subject, arrival *a, const char *what) {
  memset(s, 0, sizeof *s);
  nats_open(&s->c, ns);
  s->a = a;
  s->what = what;
  nats_sub(&s->c, subject, 1);
  if (pthread_create(&s->thread, NULL, nats_reader, s)) bench_die("pthread_create");
}

/* A KV watch: the subscriber on an inbox of its own, then an ephemeral push
 * consumer delivering there the bucket's new values of BENCH_VAR, without
 * acks (a KV client's watch: deliver new, ack none, filtered on the key).
 * Its name into name, to delete it. */
static void nats_watch_start(sub *s, const nats_server *ns, pconn *ctl, arrival *a, const char *what, char *name,
                             size_t size) {
  static int seq;
  char inbox[64], cfg[512], reply[4096];
  snprintf(inbox, sizeof inbox, "_INBOX.watch.%d", ++seq);
  nats_sub_start(s, ns, inbox, a, what);
  snprintf(cfg, sizeof cfg,
           "{\"stream_name\":\"KV_" NATS_BUCKET
           "\",\"config\":{\"deliver_subject\":\"%s\",\"deliver_policy\":\"new\","
           "\"ack_policy\":\"none\",\"filter_subject\":\"" NATS_KEY
           "\",\"replay_policy\":\"instant\","
           "\"mem_storage\":true,\"num_replicas\":1}}",
           inbox);
  nats_request(ctl, "$JS.API.CONSUMER.CREATE.KV_" NATS_BUCKET, cfg, reply, sizeof reply);
  const char *nm = strstr(reply, "\"name\":\"");
  if (!nm) bench_die("nats: the consumer's creation did not name it");
  nm += 8;
  size_t k = strcspn(nm, "\"");
  if (k >= size) bench_die("nats: a consumer name too long");
  memcpy(name, nm, k);
  name[k] = 0;
}

static void nats_watch_stop(sub *s, pconn *ctl, const char *name) {
  char subject[192], reply[4096];
  snprintf(subject, sizeof subject, "$JS.API.CONSUMER.DELETE.KV_" NATS_BUCKET ".%s", name);
  nats_request(ctl, subject, "", reply, sizeof reply);
  sub_stop(s);
}

/* The control connection: JetStream API requests, replies on _INBOX.ctl.*. */
static void nats_ctl_open(pconn *ctl, const nats_server *ns) {
  nats_open(ctl, ns);
  nats_sub(ctl, "_INBOX.ctl.*", NATS_CTL_SID);
}

/* A KV put on A: PUB to the key with a reply inbox; the JetStream ack
 * comes back there (sid 2) once the value is stored. */
static void nats_put(pconn *A, uint64_t x) {
  char cmd[160], inbox[48];
  snprintf(inbox, sizeof inbox, "_INBOX.ack.%llu", (unsigned long long)x);
  pc_write(A, cmd, nats_pub(cmd, sizeof cmd, NATS_KEY, inbox, x));
  nmsg m;
  do m = nats_next(A, "nats: KV put");
  while (m.op != NATS_MSG || m.sid != 2);
  if (!memmem(m.data, m.len, "\"seq\"", 5)) {
    fprintf(stderr, "%s: nats: a KV put was answered %.*s\n", bench_prog, (int)m.len, m.data);
    exit(2);
  }
}

/* ---- latency ------------------------------------------------------------------ */

/* The rows of one latency measurement, beside the floors of its transport
 * (as remote_latency.c reports ours). */
static void latency_rows(const char *idp, const char *what, const char *t, bstats *st, bstats *setst,
                         const char *set_what, bsum rtt, bsum relay) {
  char id[64], fid[64], rid[64], label[160];
  snprintf(fid, sizeof fid, "floor.%s.rtt", t);
  snprintf(rid, sizeof rid, "floor.%s.relay", t);
  bsum s = bs_sum(st);
  snprintf(id, sizeof id, "%s.%s", idp, t);
  snprintf(label, sizeof label, "%s, %s:", what, t);
  bench_latency(id, label, "ns/event", s, rid, relay.mean, 0, 0);
  snprintf(id, sizeof id, "%s.%s.p50", idp, t);
  snprintf(label, sizeof label, "%s, %s:, p50", what, t);
  bench_pct_row(id, label, s.p50, s, fid, rtt.p50, 0, 0);
  snprintf(id, sizeof id, "%s.%s.p99", idp, t);
  snprintf(label, sizeof label, "%s, %s:, p99", what, t);
  bench_pct_row(id, label, s.p99, s, fid, rtt.p99, 0, 0);
  if (setst) {
    bsum ss = bs_sum(setst);
    snprintf(id, sizeof id, "%s.%s.set", idp, t);
    snprintf(label, sizeof label, "%s, %s:", set_what, t);
    bench_latency(id, label, "ns/op", ss, fid, rtt.mean, 0, 0);
  }
}

/* The floors of one transport, as remote_latency.c measures them. */
static void latency_floors(const char *t, size_t samples, bsum *rtt, bsum *relay) {
  char id[64], label[160];
  *rtt = floor_pingpong(t, samples);
  snprintf(id, sizeof id, "floor.%s.rtt", t);
  snprintf(label, sizeof label, "floor: %s socket ping-pong round trip, 89-byte messages", t);
  bench_floor_row(id, label, *rtt);
  *relay = floor_relay(t, samples);
  snprintf(id, sizeof id, "floor.%s.relay", t);
  snprintf(label, sizeof label, "floor: %s relay A -> middle thread -> B, timed as ours", t);
  bench_floor_row(id, label, *relay);
}

/* Client A sets, client B's thread parses the notification; A waits for its
 * +OK, then for B, before the next SET (remote_latency.c's shape). */
static void redis_latency(const redis_server *r, const char *t, size_t samples, bsum rtt, bsum relay) {
  arrival a;
  arrival_init(&a);
  sub B;
  redis_sub_start(&B, r, t, &a, "redis latency");
  pconn A;
  pc_open(&A, redis_connect(r, t));
  size_t warm = 200;
  bstats st = {0}, setst = {0};
  char cmd[128];
  for (size_t i = 0; i < samples + warm; i++) {
    size_t n = resp_set(cmd, sizeof cmd, i + 1);
    arrival_expect(&a, 1);
    int64_t t0 = bench_now();
    pc_write(&A, cmd, n);
    redis_expect_ok(&A);
    int64_t t1 = bench_now();
    int64_t t2 = arrival_wait(&a, "redis latency");
    if (i >= warm) {
      bs_add(&st, (double)(t2 - t0), 1);
      bs_add(&setst, (double)(t1 - t0), 1);
    }
  }
  latency_rows("peer.redis", "Redis: SET on client A -> keyspace message parsed on client B", t, &st, &setst,
               "Redis: SET on client A, write to +OK", rtt, relay);
  bs_free(&st);
  bs_free(&setst);
  sub_stop(&B);
  pc_close(&A);
}

/* KV: A puts and waits for the ack, B's watch thread parses the value;
 * core: A publishes, B's subscription thread parses it. Over tcp: only
 * (NATS has no Unix socket). */
static void nats_latency(const nats_server *ns, pconn *ctl, size_t samples, bsum rtt, bsum relay) {
  size_t warm = 200;
  for (int kv = 1; kv >= 0; kv--) {
    arrival a;
    arrival_init(&a);
    sub B;
    char consumer[128];
    if (kv)
      nats_watch_start(&B, ns, ctl, &a, "nats KV latency", consumer, sizeof consumer);
    else
      nats_sub_start(&B, ns, BENCH_VAR, &a, "nats core latency");
    pconn A;
    nats_open(&A, ns);
    if (kv) nats_sub(&A, "_INBOX.ack.*", 2);
    bstats st = {0}, setst = {0};
    char cmd[160];
    for (size_t i = 0; i < samples + warm; i++) {
      arrival_expect(&a, 1);
      int64_t t0 = bench_now();
      if (kv)
        nats_put(&A, i + 1);
      else
        pc_write(&A, cmd, nats_pub(cmd, sizeof cmd, BENCH_VAR, NULL, i + 1));
      int64_t t1 = bench_now();
      int64_t t2 = arrival_wait(&a, kv ? "nats KV latency" : "nats core latency");
      if (i < warm) continue;
      bs_add(&st, (double)(t2 - t0), 1);
      if (kv) bs_add(&setst, (double)(t1 - t0), 1); /* a core PUB has no reply to wait for */
    }
    if (kv)
      latency_rows("peer.nats.kv", "NATS KV: put on client A -> watch message parsed on client B", "tcp", &st, &setst,
                   "NATS KV: put on client A, write to the JetStream ack", rtt, relay);
    else
      latency_rows("peer.nats.core", "NATS core: PUB on client A -> MSG parsed on client B", "tcp", &st, NULL, NULL,
                   rtt, relay);
    bs_free(&st);
    bs_free(&setst);
    if (kv)
      nats_watch_stop(&B, ctl, consumer);
    else
      sub_stop(&B);
    pc_close(&A);
  }
}

/* ---- stream -------------------------------------------------------------------- */

#define STREAM_BATCH 100 /* commands per write() */

/* CPU time of another process (every thread), ns. */
static int64_t proc_cpu_ns(pid_t pid) {
  clockid_t clk;
  struct timespec ts;
  if (clock_getcpuclockid(pid, &clk) || clock_gettime(clk, &ts)) bench_die("a server's CPU clock");
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The rate and CPU rows of a stream: ns per event over the rounds, CPU of
 * the server and of this process over all of them. */
static void stream_rows(const char *id, const char *label, double ns, double cpu_ns, const char *floor,
                        double floor_ns) {
  char cid[64];
  bench_rate(id, label, "events/s", 1e9 / ns, bench_nopct, floor, floor_ns, 0, 0);
  snprintf(cid, sizeof cid, "%s.cpu", id);
  bench_latency(cid, "  CPU per event, the server process and this one (1e9 / this: events/s per CPU)", "ns/event",
                (bsum){cpu_ns, ns, NAN, NAN, NAN}, floor, floor_ns, 0, 0);
}

/* A setter pipelines SETs (STREAM_BATCH per write, the next batch written
 * before the replies of the last are read: at most two batches in flight)
 * while one subscriber counts notifications; events/s from the first
 * write to the last notification, the mean of 3 rounds. */
static void redis_stream(const redis_server *r, size_t n, double floor_ns) {
  int rounds = 3;
  arrival a;
  arrival_init(&a);
  sub B;
  redis_sub_start(&B, r, "unix", &a, "redis stream");
  pconn A;
  pc_open(&A, redis_connect(r, "unix"));
  char *batch[2];
  for (int k = 0; k < 2; k++)
    if (!(batch[k] = malloc(STREAM_BATCH * 64))) bench_die("out of memory");
  size_t nb = (n + STREAM_BATCH - 1) / STREAM_BATCH;
  n = nb * STREAM_BATCH;
  uint64_t x = 0;
  double ns = 0;
  int64_t p0 = bench_proc_cpu_now(), s0 = proc_cpu_ns(r->proc.pid);
  for (int round = 0; round < rounds; round++) {
    arrival_expect(&a, n);
    int64_t t0 = bench_now();
    for (size_t b = 0; b <= nb; b++) {
      if (b < nb) { /* write batch b, then read the replies of batch b - 1 */
        char *p = batch[b & 1];
        size_t off = 0;
        for (int i = 0; i < STREAM_BATCH; i++) off += resp_set(p + off, 64, ++x);
        pc_write(&A, p, off);
      }
      if (b > 0)
        for (int i = 0; i < STREAM_BATCH; i++) redis_expect_ok(&A);
    }
    int64_t t1 = arrival_wait(&a, "redis stream");
    ns += (double)(t1 - t0) / (double)n;
  }
  double cpu = (double)(bench_proc_cpu_now() - p0 + proc_cpu_ns(r->proc.pid) - s0) / ((double)n * rounds);
  stream_rows("peer.redis.stream", "Redis: keyspace messages/s to one subscriber, unix:, SETs pipelined 100 a write",
              ns / rounds, cpu, "floor.unix.stream", floor_ns);
  for (int k = 0; k < 2; k++) free(batch[k]);
  sub_stop(&B);
  pc_close(&A);
}

/* A publisher writes core PUBs STREAM_BATCH to a write, back to back (core
 * NATS has no reply to wait for), while one subscriber counts them;
 * events/s from the first write to the last message, the mean of 3 rounds.
 * Not KV: a watch of a bucket of history 1 skips the values the stream has
 * already replaced when it gets to them, so a stream of puts cannot be
 * counted event for event. */
static void nats_stream(const nats_server *ns, size_t n, double floor_ns) {
  int rounds = 3;
  size_t nb = (n + STREAM_BATCH - 1) / STREAM_BATCH;
  n = nb * STREAM_BATCH;
  char *batch = malloc(STREAM_BATCH * 64);
  if (!batch) bench_die("out of memory");
  arrival a;
  arrival_init(&a);
  sub B;
  nats_sub_start(&B, ns, BENCH_VAR, &a, "nats stream");
  pconn A;
  nats_open(&A, ns);
  uint64_t x = 0;
  double ns_ev = 0;
  int64_t p0 = bench_proc_cpu_now(), s0 = proc_cpu_ns(ns->proc.pid);
  for (int round = 0; round < rounds; round++) {
    arrival_expect(&a, n);
    int64_t t0 = bench_now();
    for (size_t b = 0; b < nb; b++) {
      size_t off = 0;
      for (int i = 0; i < STREAM_BATCH; i++) off += nats_pub(batch + off, 64, BENCH_VAR, NULL, ++x);
      pc_write(&A, batch, off);
    }
    int64_t t1 = arrival_wait(&a, "nats stream");
    ns_ev += (double)(t1 - t0) / (double)n;
  }
  double cpu = (double)(bench_proc_cpu_now() - p0 + proc_cpu_ns(ns->proc.pid) - s0) / ((double)n * rounds);
  stream_rows("peer.nats.stream", "NATS core: messages/s to one subscriber, tcp:, PUBs 100 a write", ns_ev / rounds,
              cpu, "floor.tcp.stream", floor_ns);
  free(batch);
  sub_stop(&B);
  pc_close(&A);
}

/* ---- fan-out --------------------------------------------------------------------- */

static void fan_rows(const char *idp, const char *what, const char *t, bstats *last, bstats *first, bsum ff) {
  char id[64], fid[64], label[160];
  snprintf(fid, sizeof fid, "floor.%s.fan100", t);
  bsum sl = bs_sum(last), sf = bs_sum(first);
  snprintf(id, sizeof id, "%s.fan100", idp);
  snprintf(label, sizeof label, "%s -> last of 100 subscribers, %s:, p50", what, t);
  bench_pct_row(id, label, sl.p50, sl, fid, ff.p50, 0, 0);
  snprintf(id, sizeof id, "%s.fan100.first", idp);
  snprintf(label, sizeof label, "%s -> first of the 100, p50", what);
  bench_pct_row(id, label, sf.p50, sf, NULL, NAN, 0, 0);
}

/* One sample: from just before `send` to the last of BR_FAN arrivals, and
 * to the first (remote_fanout.c's shape). */
static void fan_sample(arrival *a, bool keep, bstats *last, bstats *first, void (*send)(void *), void *arg) {
  arrival_expect(a, BR_FAN);
  int64_t t0 = bench_now();
  send(arg);
  int64_t t1 = arrival_wait(a, "fan-out");
  if (!keep) return;
  pthread_mutex_lock(&a->mu);
  int64_t tf = a->t_first;
  pthread_mutex_unlock(&a->mu);
  bs_add(last, (double)(t1 - t0), 1);
  bs_add(first, (double)(tf - t0), 1);
}

typedef struct redis_setter {
  pconn c;
  uint64_t x;
} redis_setter;

static void redis_set_send(void *arg) {
  redis_setter *s = arg;
  char cmd[128];
  pc_write(&s->c, cmd, resp_set(cmd, sizeof cmd, ++s->x));
  redis_expect_ok(&s->c);
}

/* 100 subscribers over unix:, each its own connection and reader thread;
 * one SET per sample from a 101st connection. */
static void redis_fanout(const redis_server *r, size_t samples, bsum ff) {
  arrival a;
  arrival_init(&a);
  sub *subs = calloc(BR_FAN, sizeof *subs);
  if (!subs) bench_die("out of memory");
  for (int i = 0; i < BR_FAN; i++) redis_sub_start(&subs[i], r, "unix", &a, "redis fan-out");
  redis_setter A = {.x = 0};
  pc_open(&A.c, redis_connect(r, "unix"));
  bstats last = {0}, first = {0};
  size_t warm = 50;
  for (size_t s = 0; s < samples + warm; s++) fan_sample(&a, s >= warm, &last, &first, redis_set_send, &A);
  fan_rows("peer.redis", "Redis: SET on a client", "unix", &last, &first, ff);
  bs_free(&last);
  bs_free(&first);
  for (int i = 0; i < BR_FAN; i++) sub_stop(&subs[i]);
  free(subs);
  pc_close(&A.c);
}

typedef struct nats_setter {
  pconn c;
  uint64_t x;
} nats_setter;

static void nats_pub_send(void *arg) {
  nats_setter *s = arg;
  char cmd[160];
  pc_write(&s->c, cmd, nats_pub(cmd, sizeof cmd, BENCH_VAR, NULL, ++s->x));
}

/* 100 core subscribers over tcp:, each its own connection and reader
 * thread; one PUB per sample from a 101st connection. */
static void nats_fanout(const nats_server *ns, size_t samples, bsum ff) {
  arrival a;
  arrival_init(&a);
  sub *subs = calloc(BR_FAN, sizeof *subs);
  if (!subs) bench_die("out of memory");
  for (int i = 0; i < BR_FAN; i++) nats_sub_start(&subs[i], ns, BENCH_VAR, &a, "nats fan-out");
  nats_setter A = {.x = 0};
  nats_open(&A.c, ns);
  bstats last = {0}, first = {0};
  size_t warm = 50;
  for (size_t s = 0; s < samples + warm; s++) fan_sample(&a, s >= warm, &last, &first, nats_pub_send, &A);
  fan_rows("peer.nats", "NATS core: PUB on a client", "tcp", &last, &first, ff);
  bs_free(&last);
  bs_free(&first);
  for (int i = 0; i < BR_FAN; i++) sub_stop(&subs[i]);
  free(subs);
  pc_close(&A.c);
}

/* ---- the program -------------------------------------------------------------- */

int main(int argc, char **argv) {
  bench_init(argc, argv, "peers_remote");
  size_t samples = bench_n(5000, 500), n = bench_n(200000, 20000), fan_samples = bench_n(1000, 100);
  if (bench_raise_nofile(4 * BR_FAN + 64) < 4 * BR_FAN + 64) bench_die("too few open files allowed for 100 clients");
  peers_init();
  redis_server redis;
  redis_start(&redis);
  nats_server nats;
  nats_start(&nats);
  pconn ctl;
  nats_ctl_open(&ctl, &nats);
  nats_kv_create(&ctl);

  bsum rtt, relay;
  latency_floors("unix", samples, &rtt, &relay);
  redis_latency(&redis, "unix", samples, rtt, relay);
  latency_floors("tcp", samples, &rtt, &relay);
  redis_latency(&redis, "tcp", samples, rtt, relay);
  nats_latency(&nats, &ctl, samples, rtt, relay);

  double fs = floor_stream("unix", n * 5, 65536 / BR_FRAME);
  bench_floor_row("floor.unix.stream", "floor: 89-byte frames through a unix socket, 64 KiB writes",
                  (bsum){fs, fs, NAN, NAN, NAN});
  redis_stream(&redis, n, fs);
  fs = floor_stream("tcp", n * 5, 65536 / BR_FRAME);
  bench_floor_row("floor.tcp.stream", "floor: 89-byte frames through a tcp connection, 64 KiB writes",
                  (bsum){fs, fs, NAN, NAN, NAN});
  nats_stream(&nats, n, fs);

  bsum ff = floor_fan("unix", fan_samples);
  bench_floor_row("floor.unix.fan100", "floor: 100 unix sockets, one writer, 100 reader threads: last read", ff);
  redis_fanout(&redis, fan_samples, ff);
  ff = floor_fan("tcp", fan_samples);
  bench_floor_row("floor.tcp.fan100", "floor: 100 tcp connections, one writer, 100 reader threads: last read", ff);
  nats_fanout(&nats, fan_samples, ff);
  pc_close(&ctl);
  return 0; /* the servers are stopped at exit */
}
