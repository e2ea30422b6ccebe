/*
 * rstate.c — the reactivestate command line: get, set, define, list and
 * watch the variables of a store served by rstated (or any program running
 * rstate_server_start), the way etcdctl, redis-cli and gsettings are used.
 *
 *     rstate [--connect URI] [--token T] COMMAND [ARG]... [OPTION]...
 *
 * Values on the command line are read by the variable's type, asked of the
 * server first (rstate_info). Exit status: 0 success; 1 the store refused
 * (a rejected value, an unknown variable, a conflict: the library's
 * sentence is on stderr); 2 usage error; 3 no connection (cannot connect,
 * token refused, connection lost). The manual is man/rstate.1.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <reactivestate.h>

#include "args.h"
#include "defaults.h"
#include "eventfmt.h"
#include "json.h"
#include "textvalue.h"

enum { EXIT_REJECTED = 1, EXIT_USAGE = 2, EXIT_CONNECTION = 3 };

/* ---- commands and their options ------------------------------------------ */

/* Every command's table starts with the common options, at these indices. */
enum { OPT_CONNECT, OPT_TOKEN, OPT_HELP, OPT_PEER_UID, OPT_FIRST };
#define COMMON_OPTS {"connect", true}, {"token", true}, {"help", false}, {"peer-uid", true}

typedef struct command {
  const char *name;
  const char *synopsis;
  const char *help;     /* description and options, each line ending in \n */
  const tool_opt *opts;
  size_t min_pos, max_pos;
  int (*run)(rstate_store *s, const tool_args *a);
  int (*check)(const tool_args *a); /* usage checks before connecting; NULL: none */
} command;

static const command *current; /* the command being run, for messages */
static const char *current_uri;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "rstate: %s%s", current ? current->name : "", current ? ": " : "");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (current)
    fprintf(stderr, "\nTry 'rstate %s --help'.\n", current->name);
  else
    fputs("\nTry 'rstate --help'.\n", stderr);
  return EXIT_USAGE;
}

static bool connection_error(int rc) {
  return rc == RSTATE_EIO || rc == RSTATE_ETIMEDOUT || rc == RSTATE_ECLOSED || rc == RSTATE_EPROTO;
}

/* Reports a failed library call: its sentence on stderr, and the exit
 * status, 3 for a lost or broken connection, else 1. */
static int lib_failure(int rc) {
  const char *why = rstate_last_error();
  fprintf(stderr, "rstate: %s\n", *why ? why : rstate_strerror(rc));
  return connection_error(rc) ? EXIT_CONNECTION : EXIT_REJECTED;
}

/* An allocation of ours failed (not the library's: its last error may be
 * an older, unrelated sentence). */
static int out_of_memory(void) {
  fputs("rstate: out of memory\n", stderr);
  return EXIT_REJECTED;
}

/* Our own sentence for a value that does not parse: a rejected value. */
static int rejected(const char *sentence) {
  fprintf(stderr, "rstate: %s\n", sentence);
  return EXIT_REJECTED;
}

static int print_failed(void) {
  if (errno == EPIPE) return 0; /* the reader went away: nothing more to say */
  fprintf(stderr, "rstate: writing to standard output: %s\n", strerror(errno ? errno : EIO));
  return EXIT_REJECTED;
}

/* Reads text as a value of the named variable, by its type. */
static int value_for(rstate_store *s, const char *name, const char *text, rstate_value *out) {
  rstate_var_info info;
  int rc = rstate_info(s, name, &info);
  if (rc != RSTATE_OK) return lib_failure(rc);
  char err[512];
  if (tv_parse(info.type, name, text, out, err, sizeof err) != 0) return rejected(err);
  return 0;
}

/* ---- get ----------------------------------------------------------------- */

static int cmd_get(rstate_store *s, const tool_args *a) {
  rstate_value *v = calloc(a->n_pos, sizeof *v);
  if (!v) return out_of_memory();
  int rc = rstate_get_many(s, a->pos, a->n_pos, v, NULL);
  int status = 0;
  if (rc != RSTATE_OK) status = lib_failure(rc);
  for (size_t i = 0; i < a->n_pos && status == 0; i++) {
    errno = 0;
    if (tv_print(stdout, &v[i], TV_RAW) < 0 || putchar('\n') == EOF) status = print_failed();
  }
  for (size_t i = 0; i < a->n_pos; i++) rstate_value_clear(&v[i]);
  free(v);
  return status;
}

/* ---- set ----------------------------------------------------------------- */

enum { SET_SOURCE = OPT_FIRST, SET_IF_VERSION };
static const tool_opt set_opts[] = {COMMON_OPTS, {"source", true}, {"if-version", true}, {NULL, false}};

static int cmd_set(rstate_store *s, const tool_args *a) {
  const char *name = a->pos[0];
  const char *ifv = tool_args_get(a, SET_IF_VERSION);
  unsigned long long expected = 0;
  if (ifv && tool_parse_u64(ifv, UINT64_MAX, &expected) != 0)
    return usage_error("--if-version: \"%s\" is not a version number", ifv);
  rstate_value v;
  int status = value_for(s, name, a->pos[1], &v);
  if (status) return status;
  rstate_set_opts so = {.source = tool_args_get(a, SET_SOURCE)};
  int rc = ifv ? rstate_set_if(s, name, &v, (uint64_t)expected, &so) : rstate_set(s, name, &v, &so);
  return rc == RSTATE_OK ? 0 : lib_failure(rc);
}

static int check_set(const tool_args *a) {
  const char *ifv = tool_args_get(a, SET_IF_VERSION);
  unsigned long long expected;
  if (ifv && tool_parse_u64(ifv, UINT64_MAX, &expected) != 0)
    return usage_error("--if-version: \"%s\" is not a version number", ifv);
  return 0;
}

/* ---- set-many ------------------------------------------------------------ */

enum { SETMANY_SOURCE = OPT_FIRST };
static const tool_opt set_many_opts[] = {COMMON_OPTS, {"source", true}, {NULL, false}};

static int cmd_set_many(rstate_store *s, const tool_args *a) {
  rstate_assign *items = calloc(a->n_pos, sizeof *items);
  char **names = calloc(a->n_pos, sizeof *names);
  int status = 0;
  if (!items || !names) status = out_of_memory();
  for (size_t i = 0; i < a->n_pos && status == 0; i++) {
    const char *eq = strchr(a->pos[i], '=');
    if (!eq || eq == a->pos[i]) {
      status = usage_error("\"%s\" is not NAME=VALUE", a->pos[i]);
      break;
    }
    names[i] = strndup(a->pos[i], (size_t)(eq - a->pos[i]));
    if (!names[i]) {
      status = out_of_memory();
      break;
    }
    items[i].name = names[i];
  }
  for (size_t i = 0; i < a->n_pos && status == 0; i++)
    status = value_for(s, names[i], strchr(a->pos[i], '=') + 1, &items[i].value);
  if (status == 0) {
    rstate_set_opts so = {.source = tool_args_get(a, SETMANY_SOURCE)};
    int rc = rstate_set_many(s, items, a->n_pos, &so, NULL);
    if (rc != RSTATE_OK) status = lib_failure(rc);
  }
  for (size_t i = 0; names && i < a->n_pos; i++) free(names[i]);
  free(names);
  free(items);
  return status;
}

static int check_set_many(const tool_args *a) {
  for (size_t i = 0; i < a->n_pos; i++) {
    const char *eq = strchr(a->pos[i], '=');
    if (!eq || eq == a->pos[i]) return usage_error("\"%s\" is not NAME=VALUE", a->pos[i]);
  }
  return 0;
}

/* ---- define -------------------------------------------------------------- */

enum {
  DEF_MIN = OPT_FIRST,
  DEF_MAX,
  DEF_CHOICES,
  DEF_PATTERN,
  DEF_NAMESPACE,
  DEF_MIN_LENGTH,
  DEF_MAX_LENGTH,
  DEF_DESCRIPTION
};
static const tool_opt define_opts[] = {COMMON_OPTS,         {"min", true},        {"max", true},
                                       {"choices", true},   {"pattern", true},    {"namespace", true},
                                       {"min-length", true}, {"max-length", true}, {"description", true},
                                       {NULL, false}};

/* A bound: by the variable's type for float and integer; for other types
 * read as a number anyway and left for the library to refuse. */
static int parse_bound(const tool_args *a, size_t opt, rstate_type type, rstate_value *out) {
  const char *text = tool_args_get(a, opt);
  if (!text) return 0;
  char err[512];
  rstate_type as = type == RSTATE_TYPE_FLOAT ? RSTATE_TYPE_FLOAT : RSTATE_TYPE_INTEGER;
  if (tv_parse(as, "", text, out, err, sizeof err) != 0)
    return usage_error("--%s: \"%s\" is not a number", define_opts[opt].name, text);
  return 0;
}

static int parse_length(const tool_args *a, size_t opt, size_t *out) {
  const char *text = tool_args_get(a, opt);
  unsigned long long v;
  if (!text) return 0;
  if (tool_parse_u64(text, SIZE_MAX, &v) != 0)
    return usage_error("--%s: \"%s\" is not a length in bytes", define_opts[opt].name, text);
  *out = (size_t)v;
  return 0;
}

/* Splits "a, b,c" at commas, trimming blanks around each item (as schema
 * files do). Fills list (malloc'ed) pointing into buf, which it modifies. */
static int split_choices(char *buf, const char ***list, size_t *n) {
  size_t count = 1;
  for (const char *p = buf; *p; p++) count += *p == ',';
  const char **l = calloc(count, sizeof *l);
  if (!l) return -1;
  size_t k = 0;
  for (char *item = buf;; k++) {
    char *comma = strchr(item, ',');
    if (comma) *comma = '\0';
    while (*item == ' ' || *item == '\t') item++;
    char *end = item + strlen(item);
    while (end > item && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
    l[k] = item;
    if (!comma) break;
    item = comma + 1;
  }
  *list = l;
  *n = k + 1;
  return 0;
}

static int cmd_define(rstate_store *s, const tool_args *a) {
  const char *name = a->pos[0];
  rstate_type type;
  if (tv_parse_type(a->pos[1], &type) != 0)
    return usage_error("\"%s\" is not a type (float, integer, boolean, string, choice, module)", a->pos[1]);
  rstate_constraints c = {0};
  int status;
  if ((status = parse_bound(a, DEF_MIN, type, &c.min)) || (status = parse_bound(a, DEF_MAX, type, &c.max)) ||
      (status = parse_length(a, DEF_MIN_LENGTH, &c.min_length)) ||
      (status = parse_length(a, DEF_MAX_LENGTH, &c.max_length)))
    return status;
  c.pattern = tool_args_get(a, DEF_PATTERN);
  c.module_namespace = tool_args_get(a, DEF_NAMESPACE);
  const char *choices = tool_args_get(a, DEF_CHOICES);
  char *choice_buf = NULL;
  const char **choice_list = NULL;
  if (choices) {
    choice_buf = strdup(choices);
    if (!choice_buf || split_choices(choice_buf, &choice_list, &c.n_choices) != 0) {
      free(choice_buf);
      return out_of_memory();
    }
    c.choices = choice_list;
  }
  rstate_var_def def = {.name = name, .type = type, .constraints = &c};
  def.description = tool_args_get(a, DEF_DESCRIPTION);
  char err[512];
  if (tv_parse(type, name, a->pos[2], &def.initial, err, sizeof err) != 0) {
    status = rejected(err);
  } else {
    int rc = rstate_define(s, &def);
    if (rc != RSTATE_OK) status = lib_failure(rc);
  }
  free(choice_list);
  free(choice_buf);
  return status;
}

static int check_define(const tool_args *a) {
  rstate_type type;
  if (tv_parse_type(a->pos[1], &type) != 0)
    return usage_error("\"%s\" is not a type (float, integer, boolean, string, choice, module)", a->pos[1]);
  rstate_value bound;
  size_t length;
  int status;
  if ((status = parse_bound(a, DEF_MIN, type, &bound)) || (status = parse_bound(a, DEF_MAX, type, &bound)) ||
      (status = parse_length(a, DEF_MIN_LENGTH, &length)) || (status = parse_length(a, DEF_MAX_LENGTH, &length)))
    return status;
  return 0;
}

/* ---- undefine ------------------------------------------------------------ */

static int cmd_undefine(rstate_store *s, const tool_args *a) {
  int rc = rstate_undefine(s, a->pos[0]);
  return rc == RSTATE_OK ? 0 : lib_failure(rc);
}

/* ---- list ---------------------------------------------------------------- */

typedef struct listing {
  const char *pattern;
  char **names;
  rstate_type *types;
  size_t n, cap;
  bool nomem;
} listing;

static int list_one(const char *name, rstate_type type, void *ud) {
  listing *l = ud;
  if (l->pattern && fnmatch(l->pattern, name, 0) != 0) return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    char **names = realloc(l->names, cap * sizeof *names);
    if (names) l->names = names;
    rstate_type *types = realloc(l->types, cap * sizeof *types);
    if (types) l->types = types;
    if (!names || !types) return l->nomem = true;
    l->cap = cap;
  }
  if (!(l->names[l->n] = strdup(name))) return l->nomem = true;
  l->types[l->n++] = type;
  return 0;
}

static void listing_clear(listing *l) {
  for (size_t i = 0; i < l->n; i++) free(l->names[i]);
  l->n = 0;
}

/* Display width of UTF-8 text: code points (wide characters count one). */
static size_t width(const char *s) {
  size_t w = 0;
  for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
  return w;
}

static int print_cell(const char *text, size_t w, bool last) {
  if (fputs(text, stdout) < 0) return -1;
  if (last) return putchar('\n') == EOF ? -1 : 0;
  for (size_t k = width(text); k < w + 2; k++)
    if (putchar(' ') == EOF) return -1;
  return 0;
}

static int cmd_list(rstate_store *s, const tool_args *a) {
  listing l = {.pattern = a->n_pos ? a->pos[0] : NULL};
  rstate_value *v = NULL;
  int status = 0, rc = RSTATE_OK;
  /* the names, then their values in one snapshot; a variable undefined in
   * between makes us list again */
  for (int attempt = 0; attempt < 8; attempt++) {
    listing_clear(&l);
    free(v);
    v = NULL;
    rc = rstate_list(s, list_one, &l);
    if (l.nomem) rc = RSTATE_ENOMEM;
    if (rc != RSTATE_OK) break;
    v = calloc(l.n ? l.n : 1, sizeof *v);
    if (!v) {
      rc = RSTATE_ENOMEM;
      break;
    }
    rc = l.n ? rstate_get_many(s, (const char *const *)l.names, l.n, v, NULL) : RSTATE_OK;
    if (rc != RSTATE_ENOTFOUND) break;
  }
  if (rc != RSTATE_OK) status = lib_failure(rc);
  char **cells = status == 0 ? calloc(4 * (l.n + 1), sizeof *cells) : NULL;
  if (status == 0 && !cells) status = out_of_memory();
  size_t w[4] = {0};
  for (size_t i = 0; status == 0 && i <= l.n; i++) {
    char **row = &cells[4 * i];
    if (i == 0) {
      row[0] = strdup("NAME");
      row[1] = strdup("TYPE");
      row[2] = strdup("VALUE");
      row[3] = strdup("VERSION");
    } else {
      rstate_var_info info;
      row[0] = strdup(l.names[i - 1]);
      row[1] = strdup(rstate_type_name(l.types[i - 1]));
      row[2] = tv_to_string(&v[i - 1], TV_QUOTED);
      int irc = rstate_info(s, l.names[i - 1], &info);
      if (irc == RSTATE_OK ? asprintf(&row[3], "%" PRIu64, info.version) < 0 : !(row[3] = strdup("-"))) row[3] = NULL;
      if (irc != RSTATE_OK && irc != RSTATE_ENOTFOUND) status = lib_failure(irc);
    }
    for (int k = 0; k < 4; k++) {
      if (!row[k]) {
        if (status == 0) status = out_of_memory();
        break;
      }
      if (width(row[k]) > w[k]) w[k] = width(row[k]);
    }
  }
  for (size_t i = 0; status == 0 && i <= l.n; i++) {
    errno = 0;
    for (int k = 0; k < 4 && status == 0; k++)
      if (print_cell(cells[4 * i + k], w[k], k == 3) < 0) status = print_failed();
  }
  for (size_t i = 0; cells && i < 4 * (l.n + 1); i++) free(cells[i]);
  free(cells);
  for (size_t i = 0; v && i < l.n; i++) rstate_value_clear(&v[i]);
  free(v);
  listing_clear(&l);
  free(l.names);
  free(l.types);
  return status;
}

/* ---- watch --------------------------------------------------------------- */

enum { WATCH_INITIAL = OPT_FIRST, WATCH_JSON, WATCH_NO_RECONNECT };
static const tool_opt watch_opts[] = {
    COMMON_OPTS, {"initial", false}, {"json", false}, {"no-reconnect", false}, {NULL, false}};

/* The self-pipe: the signal handler and the connection's on_state write one
 * byte each ('S' a signal, 'D' the connection lost, 'C' connected again);
 * the main loop reads. */
static int wake_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  ssize_t r = write(wake_pipe[1], "S", 1);
  (void)r;
  errno = saved;
}

/* On the connection thread: the first CONNECTED comes before rstate_open
 * returns; later ones are reconnects. */
static void on_state(rstate_store *s, rstate_conn_state state, void *ud) {
  (void)s;
  (void)ud;
  static unsigned connects;
  const char *b = state == RSTATE_STATE_DISCONNECTED               ? "D"
                  : state == RSTATE_STATE_CONNECTED && connects++ > 0 ? "C"
                                                                    : NULL;
  if (b && wake_pipe[1] >= 0) {
    ssize_t r = write(wake_pipe[1], b, 1);
    (void)r;
  }
}

typedef struct watch_out {
  bool json;
  bool failed; /* writing stdout failed */
  int error;   /* its errno */
} watch_out;

static int on_event(const rstate_event *ev, void *ud) {
  watch_out *w = ud;
  errno = 0;
  int r = w->json ? eventfmt_json(stdout, ev) : eventfmt_human(stdout, ev);
  if (r < 0 || fflush(stdout) != 0) {
    w->failed = true;
    w->error = errno ? errno : EIO;
    return RSTATE_UNWATCH;
  }
  return RSTATE_CONTINUE;
}

static int setup_watch_wakeups(void) {
  if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) return -1;
  return 0;
}

/* Watches until a signal, a write error, or (with --no-reconnect) the
 * connection's end. Without --no-reconnect the store reconnects on its own
 * and the watch resumes (the changes missed, or resync lines): a lost
 * connection and each reconnect are told on stderr, and watching goes on. */
static int cmd_watch(rstate_store *s, const tool_args *a) {
  bool reconnect = tool_args_get(a, WATCH_NO_RECONNECT) == NULL;
  watch_out w = {.json = tool_args_get(a, WATCH_JSON) != NULL};
  rstate_watch_opts wo = {.include_initial = tool_args_get(a, WATCH_INITIAL) != NULL, .queued = true};
  rstate_watch_id id;
  int rc = rstate_watch(s, a->pos, a->n_pos, on_event, &w, &wo, &id);
  if (rc != RSTATE_OK) return lib_failure(rc);
  int status = -1;
  while (status < 0 && !w.failed) {
    struct pollfd p[2] = {{.fd = rstate_fd(s), .events = POLLIN}, {.fd = wake_pipe[0], .events = POLLIN}};
    int r = poll(p, 2, rstate_timeout(s));
    if (r < 0 && errno != EINTR) {
      fprintf(stderr, "rstate: watch: poll: %s\n", strerror(errno));
      status = EXIT_REJECTED;
      break;
    }
    char why[16];
    ssize_t n_why = 0;
    if (r > 0 && (p[1].revents & POLLIN) && (n_why = read(wake_pipe[0], why, sizeof why)) < 0) n_why = 0;
    /* deliver what arrived before a signal or the connection's end */
    int n = rstate_dispatch(s, 0);
    if (n < 0 && !w.failed) status = lib_failure(n);
    for (ssize_t i = 0; i < n_why && status < 0; i++) {
      if (why[i] == 'S') {
        status = 0;
      } else if (why[i] == 'D' && !reconnect) {
        fprintf(stderr, "rstate: watch: the connection to %s was lost\n", current_uri);
        status = EXIT_CONNECTION;
      } else if (why[i] == 'D') {
        fprintf(stderr, "rstate: watch: the connection to %s was lost; reconnecting (watching goes on)\n",
                current_uri);
      } else if (why[i] == 'C') {
        fprintf(stderr, "rstate: watch: connected again to %s\n", current_uri);
      }
    }
  }
  if (w.failed) {
    errno = w.error;
    status = print_failed();
  }
  rstate_unwatch(s, id); /* fails harmlessly when the watch ended itself */
  return status;
}

/* ---- info and stats ------------------------------------------------------ */

static int cmd_info(rstate_store *s, const tool_args *a) {
  const char *name = a->pos[0];
  rstate_var_info info;
  rstate_value v = {0};
  int rc = rstate_info(s, name, &info);
  if (rc == RSTATE_OK) rc = rstate_get(s, name, &v);
  if (rc != RSTATE_OK) return lib_failure(rc);
  char when[40];
  eventfmt_time(info.updated_ns, when);
  errno = 0;
  int status = 0;
  if (printf("name      %s\ntype      %s\nvalue     ", name, rstate_type_name(info.type)) < 0 ||
      tv_print(stdout, &v, TV_QUOTED) < 0 ||
      printf("\nversion   %" PRIu64 "\nrevision  %" PRIu64 "\nupdated   %s\n", info.version, info.revision, when) < 0)
    status = print_failed();
  rstate_value_clear(&v);
  return status;
}

static int count_one(const char *name, rstate_type type, void *ud) {
  (void)name;
  (void)type;
  ++*(size_t *)ud;
  return 0;
}

static int cmd_stats(rstate_store *s, const tool_args *a) {
  (void)a;
  size_t n = 0;
  int rc = rstate_list(s, count_one, &n);
  if (rc != RSTATE_OK) return lib_failure(rc);
  uint64_t revision = rstate_revision(s);
  errno = 0;
  if (printf("uri        %s\nrevision   %" PRIu64 "\nvariables  %zu\n", current_uri, revision, n) < 0)
    return print_failed();
  return 0;
}

/* ---- history and rollback ---------------------------------------------------- */

enum { HISTORY_JSON = OPT_FIRST };
static const tool_opt history_opts[] = {COMMON_OPTS, {"json", false}, {NULL, false}};

typedef struct history_out {
  bool json;
  bool failed;
} history_out;

static int history_line(const rstate_history_entry *e, void *ud) {
  history_out *h = ud;
  FILE *f = stdout;
  errno = 0;
  int r = 0;
  if (h->json) {
    r = fprintf(f, "{\"version\":%" PRIu64 ",\"revision\":%" PRIu64 ",\"timestamp_ns\":%" PRId64 ",\"value\":",
                e->version, e->revision, e->timestamp_ns);
    if (r >= 0) r = json_value(f, &e->value);
    if (r >= 0) r = fputs(",\"source\":", f);
    if (r >= 0) r = json_string(f, e->source, e->source ? strlen(e->source) : 0);
    if (r >= 0) r = fputs(",\"meta\":{", f);
    for (size_t i = 0; r >= 0 && i < e->n_meta; i++) {
      if (i && putc(',', f) == EOF) r = -1;
      if (r >= 0) r = json_string(f, e->meta[i].key, strlen(e->meta[i].key));
      if (r >= 0 && putc(':', f) == EOF) r = -1;
      if (r >= 0) r = json_string(f, e->meta[i].value, strlen(e->meta[i].value));
    }
    if (r >= 0) r = fputs("}}\n", f);
  } else {
    char when[40];
    eventfmt_time(e->timestamp_ns, when);
    r = fprintf(f, "%" PRIu64 " %s ", e->version, when);
    if (r >= 0) r = tv_print(f, &e->value, TV_QUOTED);
    if (r >= 0 && fprintf(f, " revision %" PRIu64, e->revision) < 0) r = -1;
    if (r >= 0 && e->source && fprintf(f, " source %s", e->source) < 0) r = -1;
    if (r >= 0 && putc('\n', f) == EOF) r = -1;
  }
  if (r < 0) {
    h->failed = true;
    return 1;
  }
  return 0;
}

static int cmd_history(rstate_store *s, const tool_args *a) {
  history_out h = {.json = tool_args_get(a, HISTORY_JSON) != NULL};
  int rc = rstate_history(s, a->pos[0], 0, history_line, &h);
  if (rc != RSTATE_OK) return lib_failure(rc);
  return h.failed ? print_failed() : 0;
}

enum { ROLLBACK_SOURCE = OPT_FIRST };
static const tool_opt rollback_opts[] = {COMMON_OPTS, {"source", true}, {NULL, false}};

static int check_rollback(const tool_args *a) {
  unsigned long long v;
  if (tool_parse_u64(a->pos[1], UINT64_MAX, &v) != 0)
    return usage_error("\"%s\" is not a version number", a->pos[1]);
  return 0;
}

static int cmd_rollback(rstate_store *s, const tool_args *a) {
  unsigned long long v = 0;
  tool_parse_u64(a->pos[1], UINT64_MAX, &v);
  rstate_set_opts so = {.source = tool_args_get(a, ROLLBACK_SOURCE)};
  int rc = rstate_rollback(s, a->pos[0], (uint64_t)v, &so);
  return rc == RSTATE_OK ? 0 : lib_failure(rc);
}

/* ---- connecting ---------------------------------------------------------- */

/* The library's sentence without its "rstate_open: " and address prefixes
 * (the caller names the address once). */
static const char *reason_after(const char *why, const char *uri) {
  if (strncmp(why, "rstate_open: ", 13) == 0) why += 13;
  size_t n = strlen(uri);
  if (strncmp(why, uri, n) == 0 && why[n] == ':' && why[n + 1] == ' ') why += n + 2;
  return why;
}

/* Says why rstate_open failed, naming the address once. When nobody
 * listens there, says so and how to start a daemon: at the default address
 * plain `rstated` does; elsewhere `rstated --listen` with that address. */
static void connect_failure(int rc, const char *uri, bool is_default) {
  const char *why = rstate_last_error();
  why = *why ? reason_after(why, uri) : rstate_strerror(rc);
  if (rc == RSTATE_EIO && strncmp(why, "cannot connect: ", 16) == 0) {
    fprintf(stderr, "rstate: no rstated answers at %s (%s)\n", uri, why);
    if (is_default)
      fputs("Start one with 'rstated' (it listens there by default), or name another server\n"
            "with --connect URI or RSTATE_URI.\n",
            stderr);
    else
      fputs("Start one with 'rstated --listen' and that address, or name another server\n"
            "with --connect URI or RSTATE_URI.\n",
            stderr);
    return;
  }
  fprintf(stderr, "rstate: cannot connect to %s: %s\n", uri, why);
  if (rc == RSTATE_EINVAL) fputs("Try 'rstate --help'.\n", stderr);
}

/* ---- the command table --------------------------------------------------- */

static const tool_opt plain_opts[] = {COMMON_OPTS, {NULL, false}};

#define COMMON_HELP                                                                  \
  "  --connect URI  the server: unix:PATH or tcp:HOST:PORT (default: $RSTATE_URI,\n" \
  "                 else the socket rstated listens on by default)\n"                \
  "  --token T      the server's token (default: $RSTATE_TOKEN)\n"                   \
  "  --peer-uid U   trust a server on a Unix socket that runs as uid U (besides your\n" \
  "                 own and root), or \"any\" (default: $RSTATE_PEER_UID)\n"         \
  "  -h, --help     show this help\n"

static const command commands[] = {
    {"get", "get NAME...", "Print the values of the variables, one a line, in the order given, read at one\n"
                           "revision. Strings are printed as they are.\n", plain_opts, 1, SIZE_MAX, cmd_get, NULL},
    {"set", "set NAME VALUE [--source S] [--if-version N]",
     "Set a variable. VALUE is read by the variable's type: a number for float and\n"
     "integer, true/false/yes/no/on/off/1/0 for boolean, the text itself otherwise.\n"
     "  --source S      who changed it, delivered to watchers\n"
     "  --if-version N  set only if the variable's version is N (else exit 1)\n",
     set_opts, 2, 2, cmd_set, check_set},
    {"set-many", "set-many NAME=VALUE... [--source S]",
     "Set several variables at once, all or nothing, under one revision.\n"
     "  --source S      who changed them, delivered to watchers\n",
     set_many_opts, 1, SIZE_MAX, cmd_set_many, check_set_many},
    {"define", "define NAME TYPE DEFAULT [CONSTRAINT]...",
     "Define a variable. TYPE: float, integer, boolean, string, choice, module.\n"
     "  --min X, --max X      bounds of a float or integer (inclusive)\n"
     "  --choices a,b,c       the choices of a choice (required) or a module\n"
     "  --pattern RE          POSIX extended regex a string or module must match whole\n"
     "  --namespace NS        a module's namespace\n"
     "  --min-length N, --max-length N   a string's length in bytes\n"
     "  --description TEXT    what the variable is for\n",
     define_opts, 3, 3, cmd_define, check_define},
    {"undefine", "undefine NAME", "Remove a variable.\n", plain_opts, 1, 1, cmd_undefine, NULL},
    {"list", "list [PATTERN]",
     "List the variables whose names match PATTERN (a shell glob, default all) as a\n"
     "table: NAME, TYPE, VALUE (strings quoted), VERSION.\n",
     plain_opts, 0, 1, cmd_list, NULL},
    {"watch", "watch NAME|PATTERN... [--initial] [--json] [--no-reconnect]",
     "Print one line per change of the variables, until interrupted. A name ending\n"
     "in '*' covers every variable starting with the rest ('*' alone: all). Lines:\n"
     "TIME KIND NAME OLD -> NEW version V [source S] [coalesced N]. When the\n"
     "connection is lost (the daemon restarts) it reconnects and goes on watching:\n"
     "the changes missed meanwhile, or a resync line per variable that differs.\n"
     "  --initial       first the current value of each variable\n"
     "  --json          one JSON object per line: kind, name, type, old, new, version,\n"
     "                  revision, timestamp_ns, source, meta, coalesced\n"
     "  --no-reconnect  exit (status 3) when the connection is lost\n",
     watch_opts, 1, SIZE_MAX, cmd_watch, NULL},
    {"info", "info NAME", "Print a variable's type, value, version, revision and time of last change.\n",
     plain_opts, 1, 1, cmd_info, NULL},
    {"stats", "stats", "Print the server's address, store revision and number of variables.\n", plain_opts, 0, 0,
     cmd_stats, NULL},
    {"history", "history NAME [--json]",
     "Print the kept versions of a variable, oldest first, the current one last, one\n"
     "a line: VERSION TIME VALUE revision R [source S].\n"
     "  --json      one JSON object per line: version, revision, timestamp_ns, value,\n"
     "              source, meta\n",
     history_opts, 1, 1, cmd_history, NULL},
    {"rollback", "rollback NAME VERSION [--source S]",
     "Set a variable back to the value it had at VERSION, as a new change.\n"
     "  --source S      who changed it, delivered to watchers\n",
     rollback_opts, 2, 2, cmd_rollback, check_rollback},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_global_help(void) {
  printf("Usage: rstate [--connect URI] [--token T] COMMAND [ARG]... [OPTION]...\n"
         "Read, change and watch the variables of a reactivestate server (rstated).\n\nCommands:\n");
  for (size_t i = 0; i < N_COMMANDS; i++) printf("  %s\n", commands[i].synopsis);
  printf("\nOptions:\n" COMMON_HELP "  --version      show the version\n"
         "\n'rstate COMMAND --help' describes a command. Exit status: 0 success, 1 refused\n"
         "by the store (the reason on stderr), 2 usage error, 3 no connection.\n"
         "See rstate(1).\n");
}

static void print_command_help(const command *c) {
  printf("Usage: rstate %s\n%s\nCommon options:\n" COMMON_HELP, c->synopsis, c->help);
}

int main(int argc, char **argv) {
  /* a closed stdout (rstate watch ... | head) is an EPIPE to end on quietly */
  signal(SIGPIPE, SIG_IGN);
  /* find the command: the first argument that is not a common option */
  int at = 1;
  bool help = false;
  while (at < argc) {
    const char *arg = argv[at];
    if (strcmp(arg, "--connect") == 0 || strcmp(arg, "--token") == 0) {
      at += 2;
    } else if (strncmp(arg, "--connect=", 10) == 0 || strncmp(arg, "--token=", 8) == 0) {
      at += 1;
    } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      help = true;
      at += 1;
    } else if (strcmp(arg, "--version") == 0) {
      printf("rstate %s (libreactivestate %s)\n", rstate_version(), rstate_version());
      return 0;
    } else if (arg[0] == '-') {
      return usage_error("unknown option %s", arg);
    } else {
      break;
    }
  }
  if (at >= argc) {
    if (help) {
      print_global_help();
      return 0;
    }
    return usage_error("no command given");
  }
  for (size_t i = 0; i < N_COMMANDS && !current; i++)
    if (strcmp(commands[i].name, argv[at]) == 0) current = &commands[i];
  if (!current) return usage_error("unknown command \"%s\"", argv[at]);

  /* parse everything but the command word against the command's options */
  char **rest = malloc((size_t)argc * sizeof *rest);
  if (!rest) return out_of_memory();
  int n_rest = 0;
  for (int i = 1; i < argc; i++)
    if (i != at) rest[n_rest++] = argv[i];
  tool_args a;
  char err[256];
  int status = 0;
  int r = tool_args_parse(n_rest, rest, current->opts, &a, err, sizeof err);
  rstate_store *s = NULL;
  char *default_uri = NULL;
  if (r == -2) {
    status = out_of_memory();
    goto out;
  }
  if (r != 0) {
    status = usage_error("%s", err);
    goto out;
  }
  if (help || tool_args_get(&a, OPT_HELP)) {
    print_command_help(current);
    goto out;
  }
  if (a.n_pos < current->min_pos || a.n_pos > current->max_pos) {
    status = usage_error("%s (usage: rstate %s)", a.n_pos < current->min_pos ? "missing arguments" : "too many arguments",
                         current->synopsis);
    goto out;
  }
  if (current->check && (status = current->check(&a)) != 0) goto out;

  const char *uri = tool_args_get(&a, OPT_CONNECT);
  if (!uri) uri = getenv("RSTATE_URI");
  if (!uri || !*uri) {
    if (!(default_uri = tool_default_uri())) {
      status = out_of_memory();
      goto out;
    }
    uri = default_uri;
  }
  current_uri = uri;
  const char *token = tool_args_get(&a, OPT_TOKEN);
  if (!token) token = getenv("RSTATE_TOKEN");
  rstate_options so = {.token = token && *token ? token : NULL, .no_reconnect = true};
  const char *peer = tool_args_get(&a, OPT_PEER_UID);
  if (!peer) peer = getenv("RSTATE_PEER_UID");
  if (peer && *peer) {
    unsigned long long uid = 0;
    if (strcmp(peer, "any") == 0)
      so.peer_uid = -1;
    else if (tool_parse_u64(peer, UINT32_MAX - 1, &uid) == 0)
      so.peer_uid = (int64_t)uid;
    else {
      status = usage_error("--peer-uid: \"%s\" is neither a uid (0 to %u) nor \"any\"", peer, UINT32_MAX - 1);
      goto out;
    }
  }
  if (current->run == cmd_watch) {
    so.no_reconnect = tool_args_get(&a, WATCH_NO_RECONNECT) != NULL;
    so.on_state = on_state;
    if (setup_watch_wakeups() != 0) {
      fprintf(stderr, "rstate: watch: %s\n", strerror(errno));
      status = EXIT_REJECTED;
      goto out;
    }
  }
  int rc = rstate_open(&s, uri, &so);
  if (rc != RSTATE_OK) {
    status = rc == RSTATE_EINVAL ? EXIT_USAGE : EXIT_CONNECTION;
    connect_failure(rc, uri, default_uri != NULL);
    s = NULL;
    goto out;
  }
  status = current->run(s, &a);
  if (fflush(stdout) != 0 && status == 0) status = print_failed();

out:
  rstate_close(s);
  for (int i = 0; i < 2; i++)
    if (wake_pipe[i] >= 0) close(wake_pipe[i]);
  free(default_uri);
  tool_args_free(&a);
  free(rest);
  return status;
}
