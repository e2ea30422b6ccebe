/*
 * peers_remote.c — the remote peers issue 5 quotes, measured the way
 * remote_latency.c, remote_throughput.c and remote_fanout.c measure us, on
 * this machine, in the same run: Redis (a SET reaching a client subscribed
 * to its keyspace notification) and NATS (a JetStream KV put reaching a KV
 * watch; core publish/subscribe). Built and run only by `make bench-peers`.
 *
 * Ours is measured again here, in turns with the peers: each sample goes to
 * libreactivestate, then to each peer, then again, so every system meets
 * the machine in the same state. On this 2-vCPU guest a wakeup costs
 * several times more while the vCPUs are idle than while they are busy,
 * and the state changes from one second to the next, even between the
 * runs of one program; figures taken one after the other do not compare.
 *
 * The program starts its own servers (fork/exec; Redis on a socket in a
 * temporary directory and a port on 127.0.0.1, NATS on a port of
 * 127.0.0.1; nothing persisted), waits until they answer (a bounded poll),
 * and kills and reaps them when it exits, however it exits. The clients
 * are minimal protocol code of our own (RESP2; the NATS client protocol),
 * each subscriber's connection read by a thread of its own blocked in
 * read(), as our clients' connection threads are; arrivals meet at
 * bench_remote.h's `arrival`, the clock read where our inline callbacks
 * read it, once the whole message is parsed. Ours is what the remote_*
 * programs measure: a server thread in this process, client stores.
 *
 *   X.unix / .p50 / .p99  a change on client A, A waiting for its reply,
 *                         then for client B to have it: ours rstate_set_float
 *                         -> inline callback (ours.*: remote.unix); Redis
 *                         SET temperature <n>, +OK -> B, SUBSCRIBEd to
 *                         __keyspace@0__:temperature, has parsed the
 *                         "message" push (peer.redis.*)
 *   X.unix.set            A's call, to its reply      (remote.unix.set)
 *   X.tcp.*               the same over tcp:127.0.0.1, and NATS, which has
 *                         no Unix socket: peer.nats.kv.* a KV put (PUB to
 *                         $KV.bench.temperature with a reply inbox) and its
 *                         JetStream ack -> a KV watch (an ephemeral push
 *                         consumer of the bucket's stream, deliver new, no
 *                         acks, filtered on the key); peer.nats.core.* a
 *                         PUB -> a SUB (no reply to wait for)
 *   X.stream / .cpu       change events/s to one subscriber, and the CPU per
 *                         event of the server and the clients: ours set in
 *                         the server process (as remote.stream), unix:;
 *                         Redis SETs pipelined 100 to a write (the next 100
 *                         written before the last 100's replies are read),
 *                         unix:; peer.nats.* core PUBs 100 to a write, tcp:
 *   X.fan100 / .first     one change -> the last (first) of 100
 *                         subscribers, each its own connection and thread:
 *                         ours and Redis unix:, peer.nats.* core, tcp:
 *
 * Floors (same run, bench_remote.h): floor.X.rtt and floor.X.relay for unix
 * and tcp (as remote_latency.c), floor.X.stream (as remote_throughput.c),
 * floor.X.fan100 (as remote_fanout.c). The peers' servers are processes of
 * their own where ours is a thread of this process: a wakeup across
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

/* ---- probes: one system each, measured in turns ------------------------------------ */

/* One system under measurement: a setter and nsubs subscribers (client
 * stores, or connections each read by a thread of its own) whose arrivals
 * meet at `a`. The loops below give every probe of a group one sample in
 * turn (ours, then each peer), so all of them meet the machine in the same
 * state: on this guest a wakeup costs several times more while the vCPUs
 * are idle (halted) than while they are busy, and the state changes from
 * one second to the next, so figures taken one after the other (even in
 * one run) do not compare. */
typedef struct probe probe;
struct probe {
  const char *idp;         /* row ids' prefix: "ours", "peer.redis", "peer.nats.kv", ... */
  const char *sidp;        /* the same for the stream and fan-out rows ("peer.nats": core only) */
  const char *name;        /* "libreactivestate", "Redis", ... */
  const char *what;        /* a change reaching a subscriber, for labels */
  const char *set_what;    /* the setter's call to its reply (NULL: it has none) */
  const char *stream_what; /* the stream row's label */
  const char *t;           /* transport: "unix" or "tcp" */
  int nsubs;
  void (*change)(probe *p, uint64_t x); /* one change; returns once the setter has its reply */
  void (*burst)(probe *p, size_t n);    /* n changes as fast as the setter sends them */
  void (*close)(probe *p);
  pid_t server; /* the server's process, for its CPU time (0: ours, a thread of this process) */
  uint64_t x;   /* the last value set: every change is a new value */
  arrival a;
  bstats last, first, set;
  double ns, cpu; /* stream: ns per event summed over the rounds; CPU ns over all of them */
  size_t events;  /* stream: events over all the rounds */
};

static void probe_init(probe *p, const char *t, int nsubs) {
  p->t = t;
  p->nsubs = nsubs;
  arrival_init(&p->a);
}

/* Checks every subscriber got every change (ours: none coalesced), frees
 * what the runs gathered and closes the probe. */
static void probe_close(probe *p) {
  bench_expect(p->name, p->a.coalesced, p->a.count);
  bs_free(&p->last);
  bs_free(&p->first);
  bs_free(&p->set);
  p->close(p);
}

/* libreactivestate, as the remote_* programs measure it: a server in this
 * process serving a mem: store (a 1 GiB queue per client, as
 * remote_throughput gives it, so no event is coalesced), nsubs client
 * stores each watching BENCH_VAR inline, one more client setting it;
 * streams are set in the server process itself (remote_throughput's
 * setter). */
typedef struct ours_probe {
  probe p;
  bserver b;
  rstate_store *setter, **subs;
} ours_probe;

static void ours_change(probe *p, uint64_t x) {
  ours_probe *o = (ours_probe *)p;
  BENCH_OK(rstate_set_float(o->setter, BENCH_VAR, (double)x));
}

static void ours_burst(probe *p, size_t n) {
  ours_probe *o = (ours_probe *)p;
  for (size_t i = 0; i < n; i++) BENCH_OK(rstate_set_float(o->b.store, BENCH_VAR, (double)++p->x));
}

static void ours_close(probe *p) {
  ours_probe *o = (ours_probe *)p;
  rstate_close(o->setter);
  for (int i = 0; i < p->nsubs; i++) rstate_close(o->subs[i]);
  bserver_stop(&o->b);
  free(o->subs);
  free(o);
}

static probe *ours_open(const char *t, int nsubs) {
  ours_probe *o = calloc(1, sizeof *o);
  if (!o || !(o->subs = calloc((size_t)nsubs, sizeof *o->subs))) bench_die("out of memory");
  probe *p = &o->p;
  probe_init(p, t, nsubs);
  p->idp = p->sidp = "ours";
  p->name = "libreactivestate";
  p->what = "set on client A -> inline callback on client B";
  p->set_what = "rstate_set_float on client A, call to return";
  p->stream_what = "change events/s to one watching client, unix:, rstate_set_float in the server process";
  p->change = ours_change;
  p->burst = ours_burst;
  p->close = ours_close;
  rstate_server_opts so = {.max_queue_bytes = (size_t)1 << 30};
  bserver_start(&o->b, t, &so);
  bench_define_float(o->b.store, BENCH_VAR);
  const char *name = BENCH_VAR;
  for (int i = 0; i < nsubs; i++) {
    o->subs[i] = bclient_open(&o->b);
    rstate_watch_id w;
    BENCH_OK(rstate_watch(o->subs[i], &name, 1, arrival_cb, &p->a, NULL, &w));
  }
  o->setter = bclient_open(&o->b);
  return p;
}

#define STREAM_BATCH 100 /* a peer's commands per write() when streaming */

/* Redis: nsubs connections SUBSCRIBEd to BENCH_VAR's keyspace channel, one
 * more SETting it and waiting for +OK; streams pipeline the SETs,
 * STREAM_BATCH to a write, the next batch written before the replies of the
 * last are read (at most two batches in flight). */
typedef struct redis_probe {
  probe p;
  pconn A;
  sub *subs;
  char *batch[2];
} redis_probe;

static void redis_change(probe *p, uint64_t x) {
  redis_probe *r = (redis_probe *)p;
  char cmd[128];
  pc_write(&r->A, cmd, resp_set(cmd, sizeof cmd, x));
  redis_expect_ok(&r->A);
}

static void redis_burst(probe *p, size_t n) {
  redis_probe *r = (redis_probe *)p;
  size_t nb = n / STREAM_BATCH;
  for (size_t b = 0; b <= nb; b++) {
    if (b < nb) { /* write batch b, then read the replies of batch b - 1 */
      char *out = r->batch[b & 1];
      size_t off = 0;
      for (int i = 0; i < STREAM_BATCH; i++) off += resp_set(out + off, 64, ++p->x);
      pc_write(&r->A, out, off);
    }
    if (b > 0)
      for (int i = 0; i < STREAM_BATCH; i++) redis_expect_ok(&r->A);
  }
}

static void redis_close(probe *p) {
  redis_probe *r = (redis_probe *)p;
  for (int i = 0; i < p->nsubs; i++) sub_stop(&r->subs[i]);
  pc_close(&r->A);
  free(r->subs);
  free(r->batch[0]);
  free(r->batch[1]);
  free(r);
}

static probe *redis_open(const redis_server *srv, const char *t, int nsubs) {
  redis_probe *r = calloc(1, sizeof *r);
  if (!r || !(r->subs = calloc((size_t)nsubs, sizeof *r->subs)) || !(r->batch[0] = malloc(STREAM_BATCH * 64)) ||
      !(r->batch[1] = malloc(STREAM_BATCH * 64)))
    bench_die("out of memory");
  probe *p = &r->p;
  probe_init(p, t, nsubs);
  p->idp = p->sidp = "peer.redis";
  p->name = "Redis";
  p->what = "SET on client A -> keyspace message parsed on client B";
  p->set_what = "SET on client A, write to +OK";
  p->stream_what = "keyspace messages/s to one subscriber, unix:, SETs pipelined 100 a write";
  p->change = redis_change;
  p->burst = redis_burst;
  p->close = redis_close;
  p->server = srv->proc.pid;
  for (int i = 0; i < nsubs; i++) redis_sub_start(&r->subs[i], srv, t, &p->a, "redis");
  pc_open(&r->A, redis_connect(srv, t));
  return p;
}

/* NATS over tcp: (it has no Unix socket). Core: nsubs connections SUBscribed
 * to BENCH_VAR, one more PUBlishing to it (no reply to wait for); streams
 * write PUBs STREAM_BATCH to a write, back to back. KV: one KV watch, the
 * setter putting (a PUB with a reply inbox) and waiting for the JetStream
 * ack. No KV stream: a watch of a bucket of history 1 skips the values the
 * stream has already replaced when it gets to them, so a stream of puts
 * cannot be counted event for event. */
typedef struct nats_probe {
  probe p;
  pconn A, *ctl;
  sub *subs;
  bool kv;
  char consumer[128];
  char *batch;
} nats_probe;

static void nats_change(probe *p, uint64_t x) {
  nats_probe *np = (nats_probe *)p;
  char cmd[160];
  if (np->kv)
    nats_put(&np->A, x);
  else
    pc_write(&np->A, cmd, nats_pub(cmd, sizeof cmd, BENCH_VAR, NULL, x));
}

static void nats_burst(probe *p, size_t n) {
  nats_probe *np = (nats_probe *)p;
  for (size_t b = 0; b < n / STREAM_BATCH; b++) {
    size_t off = 0;
    for (int i = 0; i < STREAM_BATCH; i++) off += nats_pub(np->batch + off, 64, BENCH_VAR, NULL, ++p->x);
    pc_write(&np->A, np->batch, off);
  }
}

static void nats_close(probe *p) {
  nats_probe *np = (nats_probe *)p;
  if (np->kv)
    nats_watch_stop(&np->subs[0], np->ctl, np->consumer);
  else
    for (int i = 0; i < p->nsubs; i++) sub_stop(&np->subs[i]);
  pc_close(&np->A);
  free(np->subs);
  free(np->batch);
  free(np);
}

static probe *nats_open_probe(const nats_server *ns, pconn *ctl, bool kv, int nsubs) {
  nats_probe *np = calloc(1, sizeof *np);
  if (!np || !(np->subs = calloc((size_t)nsubs, sizeof *np->subs)) || !(np->batch = malloc(STREAM_BATCH * 64)))
    bench_die("out of memory");
  probe *p = &np->p;
  probe_init(p, "tcp", nsubs);
  np->kv = kv;
  np->ctl = ctl;
  p->idp = kv ? "peer.nats.kv" : "peer.nats.core";
  p->sidp = "peer.nats";
  p->name = kv ? "NATS KV" : "NATS core";
  p->what = kv ? "put on client A -> watch message parsed on client B" : "PUB on client A -> MSG parsed on client B";
  p->set_what = kv ? "put on client A, write to the JetStream ack" : NULL;
  p->stream_what = "messages/s to one subscriber, tcp:, PUBs 100 a write";
  p->change = nats_change;
  p->burst = kv ? NULL : nats_burst;
  p->close = nats_close;
  p->server = ns->proc.pid;
  if (kv)
    nats_watch_start(&np->subs[0], ns, ctl, &p->a, "nats KV watch", np->consumer, sizeof np->consumer);
  else
    for (int i = 0; i < nsubs; i++) nats_sub_start(&np->subs[i], ns, BENCH_VAR, &p->a, "nats");
  nats_open(&np->A, ns);
  if (kv) nats_sub(&np->A, "_INBOX.ack.*", 2);
  return p;
}

/* ---- the runs ----------------------------------------------------------------- */

/* The floors of both transports, measured in this run (bench_remote.h);
 * index 0 unix, 1 tcp. */
typedef struct floors {
  bsum rtt[2], relay[2], fan[2];
  double stream[2];
} floors;

static int tix(const char *t) { return !strcmp(t, "tcp"); }

#define TURN 20 /* samples a probe takes in a row: milliseconds, far shorter than a machine state */

/* samples changes through every probe, the probes taking turns of TURN
 * samples; each sample from just before the change to the last (and first)
 * of the probe's subscribers, and to the setter's reply. Each turn begins
 * with one more sample, not kept: it finds the probe's threads cold (in
 * strict alternation a change to 100 subscribers takes twice as long). The
 * first `warm` samples are not kept either. */
static void run_changes(probe **ps, int np, size_t samples, size_t warm) {
  size_t total = samples + warm;
  for (size_t done = 0; done < total; done += TURN)
    for (int k = 0; k < np; k++) {
      probe *p = ps[k];
      size_t m = total - done < TURN ? total - done : TURN;
      for (size_t j = 0; j <= m; j++) {
        arrival_expect(&p->a, (uint64_t)p->nsubs);
        int64_t t0 = bench_now();
        p->change(p, ++p->x);
        int64_t t1 = bench_now();
        int64_t t2 = arrival_wait(&p->a, p->name);
        if (j == 0 || done + j - 1 < warm) continue;
        pthread_mutex_lock(&p->a.mu);
        int64_t tf = p->a.t_first;
        pthread_mutex_unlock(&p->a.mu);
        bs_add(&p->last, (double)(t2 - t0), 1);
        bs_add(&p->first, (double)(tf - t0), 1);
        if (p->set_what) bs_add(&p->set, (double)(t1 - t0), 1);
      }
    }
}

/* CPU time of another process (every thread), ns. */
static int64_t proc_cpu_ns(pid_t pid) {
  clockid_t clk;
  struct timespec ts;
  if (clock_getcpuclockid(pid, &clk) || clock_gettime(clk, &ts)) bench_die("a server's CPU clock");
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of a probe's whole system: this process, and the server's. */
static int64_t probe_cpu(const probe *p) { return bench_proc_cpu_now() + (p->server ? proc_cpu_ns(p->server) : 0); }

/* rounds bursts of n changes through every probe, the probes taking turns;
 * each round from the first change sent to the last one parsed. */
static void run_stream(probe **ps, int np, size_t n, int rounds) {
  for (int r = 0; r < rounds; r++)
    for (int k = 0; k < np; k++) {
      probe *p = ps[k];
      arrival_expect(&p->a, n);
      int64_t c0 = probe_cpu(p), t0 = bench_now();
      p->burst(p, n);
      int64_t t1 = arrival_wait(&p->a, p->name);
      p->cpu += (double)(probe_cpu(p) - c0);
      p->ns += (double)(t1 - t0) / (double)n;
      p->events += n;
    }
}

/* The rows of a latency run, beside the floors of its transport (as
 * remote_latency.c reports ours). */
static void latency_rows(probe *p, const floors *f) {
  char id[64], fid[64], rid[64], label[160];
  int ti = tix(p->t);
  snprintf(fid, sizeof fid, "floor.%s.rtt", p->t);
  snprintf(rid, sizeof rid, "floor.%s.relay", p->t);
  bsum s = bs_sum(&p->last);
  snprintf(id, sizeof id, "%s.%s", p->idp, p->t);
  snprintf(label, sizeof label, "%s: %s, %s:", p->name, p->what, p->t);
  bench_latency(id, label, "ns/event", s, rid, f->relay[ti].mean, 0, 0);
  snprintf(id, sizeof id, "%s.%s.p50", p->idp, p->t);
  snprintf(label, sizeof label, "%s: %s, %s:, p50", p->name, p->what, p->t);
  bench_pct_row(id, label, s.p50, s, fid, f->rtt[ti].p50, 0, 0);
  snprintf(id, sizeof id, "%s.%s.p99", p->idp, p->t);
  snprintf(label, sizeof label, "%s: %s, %s:, p99", p->name, p->what, p->t);
  bench_pct_row(id, label, s.p99, s, fid, f->rtt[ti].p99, 0, 0);
  if (!p->set_what) return;
  bsum ss = bs_sum(&p->set);
  snprintf(id, sizeof id, "%s.%s.set", p->idp, p->t);
  snprintf(label, sizeof label, "%s: %s, %s:", p->name, p->set_what, p->t);
  bench_latency(id, label, "ns/op", ss, fid, f->rtt[ti].mean, 0, 0);
}

static void stream_rows(probe *p, const floors *f, int rounds) {
  char id[64], fid[64], label[160];
  double ns = p->ns / rounds, fs = f->stream[tix(p->t)];
  snprintf(fid, sizeof fid, "floor.%s.stream", p->t);
  snprintf(id, sizeof id, "%s.stream", p->sidp);
  snprintf(label, sizeof label, "%s: %s", p->name, p->stream_what);
  bench_rate(id, label, "events/s", 1e9 / ns, bench_nopct, fid, fs, 0, 0);
  snprintf(id, sizeof id, "%s.stream.cpu", p->sidp);
  snprintf(label, sizeof label, "  %s: CPU per event, the server and the clients (1e9 / this: events/s per CPU)",
           p->name);
  bench_latency(id, label, "ns/event", (bsum){p->cpu / (double)p->events, ns, NAN, NAN, NAN}, fid, fs, 0, 0);
}

static void fan_rows(probe *p, const floors *f) {
  char id[64], fid[64], label[160];
  snprintf(fid, sizeof fid, "floor.%s.fan100", p->t);
  bsum sl = bs_sum(&p->last), sf = bs_sum(&p->first);
  snprintf(id, sizeof id, "%s.fan100", p->sidp);
  snprintf(label, sizeof label, "%s: one change -> last of 100 subscribers, %s:, p50", p->name, p->t);
  bench_pct_row(id, label, sl.p50, sl, fid, f->fan[tix(p->t)].p50, 0, 0);
  snprintf(id, sizeof id, "%s.fan100.first", p->sidp);
  snprintf(label, sizeof label, "%s: one change -> first of the 100, p50", p->name);
  bench_pct_row(id, label, sf.p50, sf, NULL, NAN, 0, 0);
}

/* The floors of one transport, as remote_latency.c measures them. */
static void latency_floors(const char *t, size_t samples, floors *f) {
  char id[64], label[160];
  int ti = tix(t);
  f->rtt[ti] = floor_pingpong(t, samples);
  snprintf(id, sizeof id, "floor.%s.rtt", t);
  snprintf(label, sizeof label, "floor: %s socket ping-pong round trip, 89-byte messages", t);
  bench_floor_row(id, label, f->rtt[ti]);
  f->relay[ti] = floor_relay(t, samples);
  snprintf(id, sizeof id, "floor.%s.relay", t);
  snprintf(label, sizeof label, "floor: %s relay A -> middle thread -> B, timed as ours", t);
  bench_floor_row(id, label, f->relay[ti]);
}

/* ---- the program -------------------------------------------------------------- */

int main(int argc, char **argv) {
  bench_init(argc, argv, "peers_remote");
  size_t samples = bench_n(5000, 500), fan_samples = bench_n(1000, 100);
  size_t n = bench_n(200000, 20000) / STREAM_BATCH * STREAM_BATCH;
  int rounds = 3;
  rlim_t files = 8 * BR_FAN + 128; /* three systems of 100 subscribers, ours counting both ends */
  if (bench_raise_nofile(files) < files) bench_die("too few open files allowed for 300 clients");
  peers_init();
  redis_server redis;
  redis_start(&redis);
  nats_server nats;
  nats_start(&nats);
  pconn ctl;
  nats_ctl_open(&ctl, &nats);
  nats_kv_create(&ctl);
  floors f;
  probe *ps[4];

  /* set on A -> B notified: unix (NATS has no Unix socket), then tcp */
  latency_floors("unix", samples, &f);
  ps[0] = ours_open("unix", 1), ps[1] = redis_open(&redis, "unix", 1);
  run_changes(ps, 2, samples, 200);
  for (int k = 0; k < 2; k++) latency_rows(ps[k], &f), probe_close(ps[k]);
  latency_floors("tcp", samples, &f);
  ps[0] = ours_open("tcp", 1), ps[1] = redis_open(&redis, "tcp", 1);
  ps[2] = nats_open_probe(&nats, &ctl, true, 1), ps[3] = nats_open_probe(&nats, &ctl, false, 1);
  run_changes(ps, 4, samples, 200);
  for (int k = 0; k < 4; k++) latency_rows(ps[k], &f), probe_close(ps[k]);

  /* a stream to one subscriber */
  f.stream[0] = floor_stream("unix", n * 5, 65536 / BR_FRAME);
  bench_floor_row("floor.unix.stream", "floor: 89-byte frames through a unix socket, 64 KiB writes",
                  (bsum){f.stream[0], f.stream[0], NAN, NAN, NAN});
  f.stream[1] = floor_stream("tcp", n * 5, 65536 / BR_FRAME);
  bench_floor_row("floor.tcp.stream", "floor: 89-byte frames through a tcp connection, 64 KiB writes",
                  (bsum){f.stream[1], f.stream[1], NAN, NAN, NAN});
  ps[0] = ours_open("unix", 1), ps[1] = redis_open(&redis, "unix", 1);
  ps[2] = nats_open_probe(&nats, &ctl, false, 1);
  run_stream(ps, 3, n, rounds);
  for (int k = 0; k < 3; k++) stream_rows(ps[k], &f, rounds), probe_close(ps[k]);

  /* one change to 100 subscribers */
  f.fan[0] = floor_fan("unix", fan_samples);
  bench_floor_row("floor.unix.fan100", "floor: 100 unix sockets, one writer, 100 reader threads: last read", f.fan[0]);
  f.fan[1] = floor_fan("tcp", fan_samples);
  bench_floor_row("floor.tcp.fan100", "floor: 100 tcp connections, one writer, 100 reader threads: last read",
                  f.fan[1]);
  ps[0] = ours_open("unix", BR_FAN), ps[1] = redis_open(&redis, "unix", BR_FAN);
  ps[2] = nats_open_probe(&nats, &ctl, false, BR_FAN);
  run_changes(ps, 3, fan_samples, 50);
  for (int k = 0; k < 3; k++) fan_rows(ps[k], &f), probe_close(ps[k]);

  pc_close(&ctl);
  return 0; /* the servers are stopped at exit */
}
