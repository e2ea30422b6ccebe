/*
 * rstated.c — the reactivestate daemon: serves an in-process ("mem:") store
 * over a Unix or TCP socket with rstate_server_start, defines variables from
 * schema files, keeps their values, versions and revision across restarts
 * in a snapshot file it holds a lock on, and exits cleanly, with the
 * snapshot written, on every signal sent to end it (SIGTERM, SIGINT, ...);
 * SIGHUP reopens the log file.
 *
 * Signals are blocked in every thread (before the store and the server
 * start theirs) and read from a signalfd in the main loop, which also wakes
 * for the periodic snapshot: no code runs in a signal handler.
 *
 * Exit status: 0 after a clean shutdown; 1 when starting fails (schema,
 * snapshot, token file, listening) or the final snapshot cannot be written;
 * 2 on a usage error. The manual is man/rstated.1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <reactivestate.h>

#include "args.h"
#include "defaults.h"
#include "eventfmt.h"
#include "http/http.h"
#include "lockfile.h"
#include "snapshot.h"

/* ---- logging ------------------------------------------------------------- */

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static int log_level = LOG_INFO;

/* One line on stderr: "2026-11-22T11:15:02.123456Z rstated: info: ...". */
static void logf_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(int level, const char *fmt, ...) {
  if (level > log_level) return;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char when[40];
  eventfmt_time((int64_t)now.tv_sec * 1000000000 + now.tv_nsec, when);
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s rstated: %s: %s\n", when, level_names[level], msg);
  fflush(stderr);
}

/* One line per client connect and disconnect (on the server thread), at
 * debug: every rstate command is a client, and the default level is for
 * what an operator acts on. */
static void on_client(rstate_server *srv, const char *peer, bool connected, const char *why, void *ud) {
  (void)srv;
  (void)ud;
  if (connected)
    logf_(LOG_DEBUG, "client %s connected", peer);
  else
    logf_(LOG_DEBUG, "client %s disconnected: %s", peer, why);
}

static void http_log(int level, const char *msg) { logf_(level, "%s", msg); }

/* What the server says when a limit bites or it refuses someone (already
 * rate-limited by the server). */
static void on_server_log(rstate_server *srv, const char *line, void *ud) {
  (void)srv;
  (void)ud;
  logf_(LOG_WARN, "%s", line);
}

static void snapshot_warning(void *ud, const char *sentence) {
  (void)ud;
  logf_(LOG_WARN, "%s", sentence);
}

/* ---- options ------------------------------------------------------------- */

enum {
  OPT_LISTEN,
  OPT_SCHEMA,
  OPT_TOKEN_FILE,
  OPT_READ_TOKEN_FILE,
  OPT_HEARTBEAT,
  OPT_HISTORY,
  OPT_MAX_CLIENTS,
  OPT_SNAPSHOT,
  OPT_SNAPSHOT_EVERY,
  OPT_DATA,
  OPT_STORE,
  OPT_STORE_TOKEN_FILE,
  OPT_SYNC,
  OPT_SYNC_INTERVAL,
  OPT_KEEP_VERSIONS,
  OPT_LOG_LEVEL,
  OPT_HTTP,
  OPT_HTTP_MAX_BODY,
  OPT_HTTP_MAX_HEADER,
  OPT_HTTP_MAX_CONNECTIONS,
  OPT_HTTP_IDLE_TIMEOUT,
  OPT_HTTP_NICE,
  OPT_LOG_FILE,
  OPT_HISTORY_BYTES,
  OPT_MAX_HANDSHAKES,
  OPT_HANDSHAKE_MS,
  OPT_HELP,
  OPT_VERSION
};
static const tool_opt options[] = {
    [OPT_LISTEN] = {"listen", true},
    [OPT_SCHEMA] = {"schema", true},
    [OPT_TOKEN_FILE] = {"token-file", true},
    [OPT_READ_TOKEN_FILE] = {"read-token-file", true},
    [OPT_HEARTBEAT] = {"heartbeat-ms", true},
    [OPT_HISTORY] = {"history", true},
    [OPT_MAX_CLIENTS] = {"max-clients", true},
    [OPT_SNAPSHOT] = {"snapshot", true},
    [OPT_SNAPSHOT_EVERY] = {"snapshot-every", true},
    [OPT_DATA] = {"data", true},
    [OPT_STORE] = {"store", true},
    [OPT_STORE_TOKEN_FILE] = {"store-token-file", true},
    [OPT_SYNC] = {"sync", true},
    [OPT_SYNC_INTERVAL] = {"sync-interval-ms", true},
    [OPT_KEEP_VERSIONS] = {"keep-versions", true},
    [OPT_LOG_LEVEL] = {"log-level", true},
    [OPT_HTTP] = {"http", true},
    [OPT_HTTP_MAX_BODY] = {"http-max-body", true},
    [OPT_HTTP_MAX_HEADER] = {"http-max-header", true},
    [OPT_HTTP_MAX_CONNECTIONS] = {"http-max-connections", true},
    [OPT_HTTP_IDLE_TIMEOUT] = {"http-idle-timeout", true},
    [OPT_HTTP_NICE] = {"http-nice", true},
    [OPT_LOG_FILE] = {"log-file", true},
    [OPT_HISTORY_BYTES] = {"history-bytes", true},
    [OPT_MAX_HANDSHAKES] = {"max-handshakes", true},
    [OPT_HANDSHAKE_MS] = {"handshake-ms", true},
    [OPT_HELP] = {"help", false},
    [OPT_VERSION] = {"version", false},
    {NULL, false},
};

static const char usage_text[] =
    "Usage: rstated [OPTION]...\n"
    "Serve a reactivestate store over a Unix or TCP socket.\n"
    "\n"
    "  --listen URI            unix:PATH or tcp:HOST:PORT (default: unix:$XDG_RUNTIME_DIR/reactivestate.sock,\n"
    "                          else unix:/tmp/reactivestate-UID/reactivestate.sock, in a directory of its own)\n"
    "  --schema FILE           define the variables of a schema file (repeatable, in order)\n"
    "  --token-file FILE       clients must present this token (first line of FILE) for read-write access\n"
    "  --read-token-file FILE  this token (first line of FILE) grants read-only access\n"
    "  --heartbeat-ms N        heartbeat interval, 1 or more (default 1000)\n"
    "  --history N             events kept for reconnecting clients, 1 or more (default 65536)\n"
    "  --history-bytes N       bytes those events may hold; the oldest go first (default 67108864, 64 MiB)\n"
    "  --max-clients N         simultaneous clients past the handshake, 1 or more (default 1024)\n"
    "  --max-handshakes N      connections still in the handshake (default 64)\n"
    "  --handshake-ms N        time a connection has to complete its handshake (default 3000)\n"
    "  --snapshot FILE         restore values from FILE at start; write it on exit and periodically\n"
    "                          (one rstated per FILE: it holds FILE.lock; a damaged FILE is refused)\n"
    "  --snapshot-every SECS   how often to write the snapshot when values changed (default 60; 0: only on exit)\n"
    "  --data DIR              serve a durable file:DIR store instead: every change is journaled before it is\n"
    "                          acknowledged and survives a crash or kill -9 (not with --snapshot)\n"
    "  --store URI             serve the store at URI instead (redis:HOST:PORT/STORE, redis-sentinel:...,\n"
    "                          file:DIR, mem:, unix:PATH or tcp:HOST:PORT); not with --data or --snapshot\n"
    "  --store-token-file FILE  with --store: the store's token, e.g. the Redis password (first line of FILE)\n"
    "  --sync MODE             with --data: always (on disk before the answer), interval (default) or none\n"
    "  --sync-interval-ms N    with --data and --sync interval: how often the journal reaches the disk (1000)\n"
    "  --keep-versions N       past versions kept per variable for rstate history (--data: 100; else 0)\n"
    "  --log-level LEVEL       error, warn, info (default) or debug\n"
    "  --http HOST:PORT        also serve the HTTP API, SSE watch, /metrics and the live page (PORT 0: any)\n"
    "  --http-max-body BYTES   largest request body (default 1048576)\n"
    "  --http-max-header BYTES largest request line and headers (default 16384)\n"
    "  --http-max-connections N  simultaneous HTTP connections, streams included (default 1024)\n"
    "  --http-idle-timeout SECS  close an idle HTTP connection after this long (default 60)\n"
    "  --http-nice N           run the HTTP threads N steps below the socket server's priority (default 0)\n"
    "  --log-file FILE         log to FILE (appended to) instead of standard error; SIGHUP reopens it\n"
    "  -h, --help              show this help and exit\n"
    "  --version               show the version and exit\n"
    "\n"
    "SIGTERM or SIGINT (and any other signal sent to end it: SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, ...) stops\n"
    "the server, writes the snapshot and exits with status 0. SIGHUP reopens the log file and goes on.\n"
    "Exit status: 0 clean shutdown, 1 failure, 2 usage error. See rstated(1).\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("rstated: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\nTry 'rstated --help'.\n", stderr);
  return 2;
}

/* The first line of a token file, without its line ending. Returns a
 * malloc'ed string, or NULL with the reason logged. */
static char *read_token_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    logf_(LOG_ERROR, "%s: cannot read the token file: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
    logf_(LOG_WARN, "%s: the token file can be read by other users (mode %03o)", path, (unsigned)(st.st_mode & 0777));
  char *line = NULL;
  size_t cap = 0;
  ssize_t len = getline(&line, &cap, f);
  int saved = errno;
  fclose(f);
  if (len < 0) {
    logf_(LOG_ERROR, "%s: the token file is empty%s%s", path, saved ? ": " : "", saved ? strerror(saved) : "");
    free(line);
    return NULL;
  }
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
  if (len == 0 || strlen(line) != (size_t)len) {
    logf_(LOG_ERROR, "%s: the first line of the token file is %s", path, len == 0 ? "empty" : "not text (a NUL byte)");
    free(line);
    return NULL;
  }
  return line;
}

/* The log file, when --log-file: opened (appended to) onto standard error,
 * so every line of every thread goes there; SIGHUP opens it again, for a
 * log rotated away. Returns 0, or -1 with errno. */
static const char *log_file;

static int open_log(void) {
  int fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  fflush(stderr);
  int r = dup2(fd, STDERR_FILENO);
  int saved = errno;
  close(fd);
  errno = saved;
  return r < 0 ? -1 : 0;
}

typedef struct config {
  const char *listen;
  char *default_listen;
  const char *snapshot;
  unsigned long long snapshot_every;
  char *data_uri;         /* "file:DIR" (--data), the --store URI, or NULL: a mem: store */
  char *store_token;      /* --store-token-file */
  rstate_options store;   /* sync, sync_interval_ms, keep_versions */
  rstate_server_opts server;
  char *token, *read_token;
  http_opts http;
} config;

static int parse_number(const tool_args *a, size_t opt, unsigned long long max, unsigned long long *out) {
  const char *v = tool_args_get(a, opt);
  if (!v) return 0;
  if (tool_parse_u64(v, max, out) != 0)
    return usage_error("--%s: \"%s\" is not a whole number from 0 to %llu", options[opt].name, v, max);
  return 0;
}

/* Fills cfg from the command line. Returns -1 to go on, or an exit status. */
static int configure(int argc, char **argv, config *cfg, tool_args *a) {
  char err[256];
  int r = tool_args_parse(argc - 1, argv + 1, options, a, err, sizeof err);
  if (r == -2) {
    fprintf(stderr, "rstated: out of memory\n");
    return 1;
  }
  if (r != 0) return usage_error("%s", err);
  if (tool_args_get(a, OPT_HELP)) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (tool_args_get(a, OPT_VERSION)) {
    printf("rstated %s (libreactivestate %s)\n", rstate_version(), rstate_version());
    return 0;
  }
  if (a->n_pos) return usage_error("unexpected argument \"%s\"", a->pos[0]);
  const char *level = tool_args_get(a, OPT_LOG_LEVEL);
  if (level) {
    int l = 0;
    while (l <= LOG_DEBUG && strcmp(level, level_names[l]) != 0) l++;
    if (l > LOG_DEBUG) return usage_error("--log-level: \"%s\" is not one of error, warn, info, debug", level);
    log_level = l;
  }
  if ((log_file = tool_args_get(a, OPT_LOG_FILE))) {
    if (!*log_file) return usage_error("--log-file needs a file name");
    if (open_log() != 0) {
      fprintf(stderr, "rstated: %s: cannot open the log file: %s\n", log_file, strerror(errno));
      return 1;
    }
  }
  unsigned long long hb = 0, history = 0, max_clients = 0;
  cfg->snapshot_every = 60;
  if ((r = parse_number(a, OPT_HEARTBEAT, INT32_MAX, &hb)) || (r = parse_number(a, OPT_HISTORY, SIZE_MAX, &history)) ||
      (r = parse_number(a, OPT_MAX_CLIENTS, SIZE_MAX, &max_clients)) ||
      (r = parse_number(a, OPT_SNAPSHOT_EVERY, 86400ULL * 365, &cfg->snapshot_every)))
    return r;
  /* 0 means "the default" to rstate_server_start, which a user writing 0
   * would not guess: refuse it rather than serve 65536 or 1024 silently. */
  if (tool_args_get(a, OPT_HISTORY) && history == 0)
    return usage_error("--history: 0 is not allowed: the server keeps at least 1 event (default 65536)");
  if (tool_args_get(a, OPT_MAX_CLIENTS) && max_clients == 0)
    return usage_error("--max-clients: 0 would refuse every client: give 1 or more (default 1024)");
  if (tool_args_get(a, OPT_HEARTBEAT) && hb == 0)
    return usage_error("--heartbeat-ms: 0 is not allowed: give 1 or more (default 1000)");
  unsigned long long body = 0, header = 0, conns = 0, idle = 0, nice_ = 0;
  if ((r = parse_number(a, OPT_HTTP_NICE, 19, &nice_)) || (r = parse_number(a, OPT_HTTP_MAX_BODY, SIZE_MAX, &body)) ||
      (r = parse_number(a, OPT_HTTP_MAX_HEADER, 1ULL << 30, &header)) ||
      (r = parse_number(a, OPT_HTTP_MAX_CONNECTIONS, 1000000, &conns)) ||
      (r = parse_number(a, OPT_HTTP_IDLE_TIMEOUT, 86400, &idle)))
    return r;
  cfg->http.listen = tool_args_get(a, OPT_HTTP);
  if (cfg->http.listen && !*cfg->http.listen) return usage_error("--http needs HOST:PORT");
  if (!cfg->http.listen && (body || header || conns || idle || nice_)) return usage_error("the --http-* options need --http");
  cfg->http.nice = (int)nice_;
  cfg->http.max_body = (size_t)body;
  cfg->http.max_header = (size_t)header;
  cfg->http.max_connections = (unsigned)conns;
  cfg->http.idle_timeout_s = (unsigned)idle;
  cfg->http.heartbeat_ms = (int)hb;
  cfg->http.history = (size_t)history;
  cfg->server.heartbeat_ms = (int)hb;
  cfg->server.history = (size_t)history;
  cfg->server.max_clients = (size_t)max_clients;
  unsigned long long history_bytes = 0, max_handshakes = 0, handshake_ms = 0;
  if ((r = parse_number(a, OPT_HISTORY_BYTES, SIZE_MAX, &history_bytes)) ||
      (r = parse_number(a, OPT_MAX_HANDSHAKES, SIZE_MAX, &max_handshakes)) ||
      (r = parse_number(a, OPT_HANDSHAKE_MS, INT32_MAX, &handshake_ms)))
    return r;
  if (tool_args_get(a, OPT_HISTORY_BYTES) && history_bytes == 0)
    return usage_error("--history-bytes: 0 is not allowed: give 1 or more (default 67108864, 64 MiB)");
  if (tool_args_get(a, OPT_MAX_HANDSHAKES) && max_handshakes == 0)
    return usage_error("--max-handshakes: 0 would refuse every connection: give 1 or more (default 64)");
  if (tool_args_get(a, OPT_HANDSHAKE_MS) && handshake_ms == 0)
    return usage_error("--handshake-ms: 0 is not allowed: give 1 or more (default 3000)");
  cfg->server.history_bytes = (size_t)history_bytes;
  cfg->server.max_handshakes = (size_t)max_handshakes;
  cfg->server.handshake_ms = (int)handshake_ms;
  cfg->snapshot = tool_args_get(a, OPT_SNAPSHOT);
  if (cfg->snapshot && !*cfg->snapshot) return usage_error("--snapshot needs a file name");
  if (tool_args_get(a, OPT_SNAPSHOT_EVERY) && !cfg->snapshot) return usage_error("--snapshot-every needs --snapshot");
  const char *data = tool_args_get(a, OPT_DATA), *sync = tool_args_get(a, OPT_SYNC);
  unsigned long long interval = 0, keep = 0;
  if ((r = parse_number(a, OPT_SYNC_INTERVAL, INT32_MAX, &interval)) ||
      (r = parse_number(a, OPT_KEEP_VERSIONS, SIZE_MAX, &keep)))
    return r;
  if (data && !*data) return usage_error("--data needs a directory");
  const char *store = tool_args_get(a, OPT_STORE), *stf = tool_args_get(a, OPT_STORE_TOKEN_FILE);
  if (store && !*store) return usage_error("--store needs a store URI");
  if (store && data) return usage_error("--store and --data do not go together: --data DIR is --store file:DIR");
  if (store && cfg->snapshot) return usage_error("--store and --snapshot do not go together: the store keeps itself");
  if (stf && !store) return usage_error("--store-token-file needs --store");
  if (data && cfg->snapshot) return usage_error("--data and --snapshot do not go together: a file: store keeps itself");
  if (!data && !store && (sync || tool_args_get(a, OPT_SYNC_INTERVAL)))
    return usage_error("--sync and --sync-interval-ms need --data");
  if (sync) {
    if (strcmp(sync, "always") == 0)
      cfg->store.sync = RSTATE_SYNC_ALWAYS;
    else if (strcmp(sync, "interval") == 0)
      cfg->store.sync = RSTATE_SYNC_INTERVAL;
    else if (strcmp(sync, "none") == 0)
      cfg->store.sync = RSTATE_SYNC_NONE;
    else
      return usage_error("--sync: \"%s\" is not one of always, interval, none", sync);
  }
  cfg->store.sync_interval_ms = (int)interval;
  cfg->store.keep_versions = (size_t)keep;
  if (data) {
    size_t n = strlen(data) + 6;
    if (!(cfg->data_uri = malloc(n))) {
      fprintf(stderr, "rstated: out of memory\n");
      return 1;
    }
    snprintf(cfg->data_uri, n, "file:%s", data);
  }
  if (store && !(cfg->data_uri = strdup(store))) {
    fprintf(stderr, "rstated: out of memory\n");
    return 1;
  }
  if (stf && !(cfg->store_token = read_token_file(stf))) return 1;
  cfg->store.token = cfg->store_token;
  cfg->listen = tool_args_get(a, OPT_LISTEN);
  if (!cfg->listen) {
    char *dir = NULL;
    cfg->default_listen = tool_default_uri();
    if (!cfg->default_listen || tool_fallback_dir(&dir) != 0) {
      fprintf(stderr, "rstated: out of memory\n");
      return 1;
    }
    cfg->listen = cfg->default_listen;
    /* no XDG_RUNTIME_DIR: a directory of our own in /tmp, or nothing */
    char why[512];
    int bad = dir ? tool_private_dir(dir, why, sizeof why) : 0;
    free(dir);
    if (bad) {
      logf_(LOG_ERROR, "%s", why);
      return 1;
    }
  }
  const char *tf = tool_args_get(a, OPT_TOKEN_FILE), *rtf = tool_args_get(a, OPT_READ_TOKEN_FILE);
  if (tf && !(cfg->token = read_token_file(tf))) return 1;
  if (rtf && !(cfg->read_token = read_token_file(rtf))) return 1;
  cfg->server.token = cfg->token;
  cfg->server.read_token = cfg->read_token;
  cfg->http.token = cfg->token;
  cfg->http.read_token = cfg->read_token;
  return -1;
}

/* ---- running ------------------------------------------------------------- */

/* Writes the snapshot, logging success at level (debug when periodic, info
 * at exit) and failure as an error. */
static int write_snapshot(rstate_store *s, const char *path, int level) {
  char err[1024];
  size_t n = 0;
  if (snapshot_write(s, path, &n, err, sizeof err) != 0) {
    logf_(LOG_ERROR, "snapshot not written: %s", err);
    return -1;
  }
  logf_(level, "snapshot written: %zu variables to %s", n, path);
  return 0;
}

/* Fails fast, before serving, when the snapshot could not be written at
 * exit: creates and removes a temporary file in its directory. */
static int check_writable(const char *path) {
  const char *slash = strrchr(path, '/');
  char *tmp = NULL;
  int r = slash ? asprintf(&tmp, "%.*s/.rstated-check.XXXXXX", (int)(slash - path), path)
                : asprintf(&tmp, ".rstated-check.XXXXXX");
  if (r < 0) {
    logf_(LOG_ERROR, "out of memory");
    return -1;
  }
  int fd = mkstemp(tmp);
  if (fd < 0) {
    logf_(LOG_ERROR, "%s: the snapshot could not be written: cannot create a file in its directory: %s", path,
          strerror(errno));
    free(tmp);
    return -1;
  }
  close(fd);
  unlink(tmp);
  free(tmp);
  return 0;
}

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The signals rstated handles: SIGHUP reopens the log; every other one
 * would end the process by default, and is taken as a request to stop
 * cleanly, with the snapshot written (SIGKILL cannot be caught, and
 * SIGSEGV and its kind are crashes, not requests). */
static const struct {
  int sig;
  const char *name;
} handled[] = {
    {SIGHUP, "SIGHUP"},   {SIGTERM, "SIGTERM"},     {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
    {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"},     {SIGALRM, "SIGALRM"}, {SIGVTALRM, "SIGVTALRM"},
    {SIGPROF, "SIGPROF"}, {SIGXCPU, "SIGXCPU"},     {SIGIO, "SIGIO"},     {SIGPWR, "SIGPWR"},
    {SIGSTKFLT, "SIGSTKFLT"},
};

static const char *signal_name(int sig) {
  for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
    if (handled[i].sig == sig) return handled[i].name;
  return "a signal";
}

/* SIGHUP: the log file again (a rotated log's new file). */
static void reopen_log(void) {
  if (!log_file) {
    logf_(LOG_INFO, "SIGHUP received: no --log-file to reopen, going on");
    return;
  }
  if (open_log() != 0) {
    logf_(LOG_ERROR, "SIGHUP received: %s: cannot reopen the log file, going on with the old one: %s", log_file,
          strerror(errno));
    return;
  }
  logf_(LOG_INFO, "SIGHUP received: log file %s reopened", log_file);
}

/* Waits for a signal that ends it, writing the snapshot every
 * snapshot_every seconds when the store revision moved, reopening the log
 * on SIGHUP. Returns the signal, or -1. */
static int serve(rstate_store *s, const config *cfg, int sfd) {
  uint64_t saved_revision = rstate_revision(s);
  int64_t period = cfg->snapshot ? (int64_t)cfg->snapshot_every * 1000 : 0;
  int64_t next = period ? now_ms() + period : 0;
  for (;;) {
    int timeout = -1;
    if (period) {
      int64_t left = next - now_ms();
      timeout = left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
    }
    struct pollfd p = {.fd = sfd, .events = POLLIN};
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno != EINTR) {
      logf_(LOG_ERROR, "poll: %s", strerror(errno));
      return -1;
    }
    if (r > 0) {
      struct signalfd_siginfo si;
      ssize_t n = read(sfd, &si, sizeof si);
      if (n == (ssize_t)sizeof si && si.ssi_signo == SIGHUP)
        reopen_log();
      else if (n == (ssize_t)sizeof si)
        return (int)si.ssi_signo;
    }
    if (period && now_ms() >= next) {
      uint64_t rev = rstate_revision(s);
      if (rev != saved_revision && write_snapshot(s, cfg->snapshot, LOG_DEBUG) == 0) saved_revision = rev;
      next = now_ms() + period;
    }
  }
}

int main(int argc, char **argv) {
  config cfg = {0};
  tool_args a = {0};
  rstate_store *s = NULL;
  rstate_server *srv = NULL;
  int sfd = -1, lock_fd = -1;
  int status = configure(argc, argv, &cfg, &a);
  if (status >= 0) goto out;
  status = 1;

  /* Block the signals in this thread before any other starts, so every
   * library thread inherits the mask and the signalfd alone receives them. */
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++) sigaddset(&set, handled[i].sig);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a write over the file size limit fails (EFBIG) and is reported */
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
    logf_(LOG_ERROR, "cannot set up signal handling: %s", strerror(errno));
    goto out;
  }

  /* one snapshot, one daemon: the lock first, then what a write killed
   * half-way left, then the store */
  if (cfg.snapshot) {
    char err[1024];
    if ((lock_fd = lockfile_take(cfg.snapshot, err, sizeof err)) < 0) {
      logf_(LOG_ERROR, "%s", err);
      goto out_fd;
    }
    size_t removed = 0;
    if (snapshot_remove_partial(cfg.snapshot, &removed, err, sizeof err) != 0) {
      logf_(LOG_ERROR, "%s", err);
      goto out_fd;
    }
    if (removed)
      logf_(LOG_INFO, "%zu partial snapshot file%s removed (left by a write cut short)", removed,
            removed == 1 ? "" : "s");
  }

  if (rstate_open(&s, cfg.data_uri ? cfg.data_uri : "mem:", &cfg.store) != RSTATE_OK) {
    logf_(LOG_ERROR, "cannot open the store: %s", rstate_last_error());
    goto out_fd;
  }
  if (cfg.data_uri)
    logf_(LOG_INFO, "store %s opened: %" PRIu64 " changes kept", cfg.data_uri, rstate_revision(s));
  for (size_t i = 0; i < a.n_opts; i++) {
    if (a.opts[i].index != OPT_SCHEMA) continue;
    if (rstate_load_schema(s, a.opts[i].value) != RSTATE_OK) {
      logf_(LOG_ERROR, "schema not loaded: %s", rstate_last_error());
      goto out_store;
    }
    logf_(LOG_INFO, "schema %s loaded", a.opts[i].value);
  }
  if (cfg.snapshot) {
    char err[1024];
    size_t n_set = 0, n_defined = 0;
    int r = snapshot_restore(s, cfg.snapshot, snapshot_warning, NULL, &n_set, &n_defined, err, sizeof err);
    if (r < 0) {
      logf_(LOG_ERROR,
            "snapshot not restored: %s. The file is left as it is: put a whole copy back, or move it away to "
            "start from the schema",
            err);
      goto out_store;
    }
    if (r == 1)
      logf_(LOG_INFO, "no snapshot at %s yet: starting from the schema", cfg.snapshot);
    else
      logf_(LOG_INFO, "snapshot %s restored: %zu values set, %zu variables defined from it, at revision %llu",
            cfg.snapshot, n_set, n_defined, (unsigned long long)rstate_revision(s));
  }
  if (cfg.snapshot && check_writable(cfg.snapshot) != 0) goto out_store;
  cfg.server.on_client = on_client;
  cfg.server.on_log = on_server_log;
  if (rstate_server_start(&srv, s, cfg.listen, &cfg.server) != RSTATE_OK) {
    logf_(LOG_ERROR, "cannot listen on %s: %s", cfg.listen, rstate_last_error());
    goto out_store;
  }
  logf_(LOG_INFO, "listening on %s (rstated %s, pid %ld)", rstate_server_uri(srv), rstate_version(), (long)getpid());

  http_server *web = NULL;
  const char **schemas = NULL;
  if (cfg.http.listen) {
    size_t n_schemas = tool_args_count(&a, OPT_SCHEMA), k = 0;
    schemas = calloc(n_schemas ? n_schemas : 1, sizeof *schemas);
    for (size_t i = 0; schemas && i < a.n_opts; i++)
      if (a.opts[i].index == OPT_SCHEMA) schemas[k++] = a.opts[i].value;
    cfg.http.schemas = schemas;
    cfg.http.n_schemas = k;
    cfg.http.log = http_log;
    cfg.http.server = srv;
    char err[512];
    if (!schemas || http_start(&web, s, &cfg.http, err, sizeof err) != 0) {
      logf_(LOG_ERROR, "%s", schemas ? err : "out of memory");
      free(schemas);
      rstate_server_stop(srv);
      goto out_store;
    }
    logf_(LOG_INFO, "http listening on %s", http_url(web));
  }

  int sig = serve(s, &cfg, sfd);
  if (sig > 0) logf_(LOG_INFO, "%s received: shutting down", signal_name(sig));
  http_stop(web);
  free(schemas);
  rstate_server_stop(srv);
  status = sig > 0 ? 0 : 1;
  if (cfg.snapshot && write_snapshot(s, cfg.snapshot, LOG_INFO) != 0) status = 1;
  if (status == 0) logf_(LOG_INFO, "stopped");

out_store:
  rstate_close(s);
out_fd:
  close(sfd);
  if (lock_fd >= 0) close(lock_fd); /* after the last write of the snapshot */
out:
  tool_args_free(&a);
  free(cfg.default_listen);
  free(cfg.data_uri);
  free(cfg.store_token);
  free(cfg.token);
  free(cfg.read_token);
  return status;
}
