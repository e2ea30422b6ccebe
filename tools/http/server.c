/*
 * server.c — the glue between libmicrohttpd and the handlers: starting
 * and stopping, the limits, the route table, tokens, request bodies, the
 * answer helpers. One MHD thread (epoll) serves every connection; the
 * streams are suspended responses, resumed by the hub's waker.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../json.h"

/* ---- logging ------------------------------------------------------------- */

static void logf_(const http_server *h, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(const http_server *h, int level, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (h->o.log) h->o.log(level, msg);
  else fprintf(stderr, "rstated: http: %s\n", msg);
}

/* libmicrohttpd's own messages: the limits it enforces (connections,
 * header size) and socket errors. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  http_server *h = cls;
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
  logf_(h, 1, "http: %s", msg);
}

enum { R_READ = 1, R_WRITE = 2, R_BODY = 4, R_PREFIX = 8, R_OPEN = 16 };

typedef struct route {
  const char *method;
  const char *path;  /* exact, or a prefix whose rest is the variable's name (R_PREFIX) */
  const char *label; /* for the latency histogram */
  unsigned flags;
  enum MHD_Result (*fn)(request *r);
  enum MHD_Result (*named)(request *r, const char *name);
} route;

/* ---- answers ------------------------------------------------------------- */

static const char *const content_types[] = {
    [ANSWER_JSON] = "application/json",
    [ANSWER_TEXT] = "text/plain; charset=utf-8",
    [ANSWER_HTML] = "text/html; charset=utf-8",
    [ANSWER_PROM] = "text/plain; version=0.0.4; charset=utf-8",
};

enum MHD_Result http_answer(request *r, unsigned status, answer_kind kind, const char *body, size_t len) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", content_types[kind]);
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"rstated\"");
  enum MHD_Result ok = MHD_queue_response(r->c, status, resp);
  MHD_destroy_response(resp);
  metrics_request(r->route ? r->route->label : "other", status, metrics_now_ns() - r->start_ns);
  return ok;
}

enum MHD_Result http_answer_stream(request *r, unsigned status, FILE *f, char **buf, size_t *len) {
  bool bad = ferror(f) != 0;
  if (fclose(f) != 0) bad = true;
  enum MHD_Result res = bad ? http_error(r, 500, RSTATE_ENOMEM, "out of memory writing the answer")
                            : http_answer(r, status, ANSWER_JSON, *buf, *len);
  free(*buf);
  return res;
}

enum MHD_Result http_error(request *r, unsigned status, int code, const char *message) {
  metrics_refused(code);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return MHD_NO;
  fprintf(f, "{\"error\":\"%s\",\"message\":", rstate_error_name(code));
  json_string(f, message, strlen(message));
  fputs("}\n", f);
  if (fclose(f) != 0) {
    free(buf);
    return MHD_NO;
  }
  enum MHD_Result res = http_answer(r, status, ANSWER_JSON, buf, len);
  free(buf);
  return res;
}

/* The HTTP status of a library error (docs/HTTP.md has the table). */
static unsigned status_of(int code) {
  switch (code) {
    case RSTATE_EINVAL: return 400;
    case RSTATE_EPROTO: return 400;
    case RSTATE_ENOTFOUND: return 404;
    case RSTATE_EEXIST: return 409;
    case RSTATE_ECONFLICT: return 409;
    case RSTATE_ETYPE: return 422;
    case RSTATE_ECONSTRAINT: return 422;
    case RSTATE_EPERM: return 403;
    case RSTATE_ELIMIT: return 413;
    case RSTATE_ENOTSUP: return 501;
    case RSTATE_ETIMEDOUT: return 504;
    case RSTATE_EIO: return 502;
    default: return 503; /* ENOMEM, ECLOSED, EBUSY: try again later */
  }
}

enum MHD_Result http_lib_error(request *r, int code) {
  const char *msg = rstate_last_error();
  return http_error(r, status_of(code), code, *msg ? msg : rstate_strerror(code));
}

const char *http_arg(request *r, const char *key) { return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, key); }

int json_u64(FILE *f, uint64_t v) { return fprintf(f, "\"%" PRIu64 "\"", v) < 0 ? -1 : 0; }
int json_i64(FILE *f, int64_t v) { return fprintf(f, "\"%" PRId64 "\"", v) < 0 ? -1 : 0; }

/* ---- routes --------------------------------------------------------------- */

static enum MHD_Result page(request *r) { return http_answer(r, 200, ANSWER_HTML, (const char *)http_page, http_page_len); }
static enum MHD_Result healthz(request *r) { return http_answer(r, 200, ANSWER_TEXT, "ok\n", 3); }

static const route routes[] = {
    {"GET", "/", "page", R_OPEN, page, NULL},
    {"GET", "/healthz", "healthz", R_OPEN, healthz, NULL},
    {"GET", "/metrics", "metrics", R_READ, metrics_answer, NULL},
    {"GET", "/v1/vars", "vars", R_READ, api_vars, NULL},
    {"GET", "/v1/vars/", "var_get", R_READ | R_PREFIX, NULL, api_var_get},
    {"PUT", "/v1/vars/", "var_put", R_WRITE | R_BODY | R_PREFIX, NULL, api_var_put},
    {"POST", "/v1/set-many", "set_many", R_WRITE | R_BODY, api_set_many, NULL},
    {"GET", "/v1/history/", "history", R_READ | R_PREFIX, NULL, api_history},
    {"GET", "/v1/watch", "watch", R_READ, sse_watch, NULL},
};

static bool path_matches(const route *rt, const char *path) {
  if (rt->flags & R_PREFIX) {
    size_t n = strlen(rt->path);
    return strncmp(path, rt->path, n) == 0 && path[n] != '\0';
  }
  return strcmp(path, rt->path) == 0;
}

static bool method_is(const char *m, const char *want) {
  return strcmp(m, want) == 0 || (strcmp(want, "GET") == 0 && strcmp(m, "HEAD") == 0);
}

/* Compares without stopping at the first difference. */
static bool same_secret(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  unsigned char d = na != nb;
  for (size_t i = 0; i < na; i++) d |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
  return d == 0;
}

/* Returns 0 (go on), or the HTTP status of the refusal with *why set. */
static unsigned check_token(request *r, const route *rt, const char **why) {
  http_server *h = r->srv;
  r->write_access = true;
  if ((rt->flags & R_OPEN) || (!h->token && !h->read_token)) return 0;
  const char *given = NULL;
  const char *auth = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0) given = auth + 7;
  if (!given) given = http_arg(r, "token");
  if (!given) {
    *why = "a token is needed: send \"Authorization: Bearer TOKEN\" or ?token=TOKEN";
    return 401;
  }
  if (h->token && same_secret(given, h->token)) return 0;
  if (h->read_token && same_secret(given, h->read_token)) {
    r->write_access = false;
    if (rt->flags & R_WRITE) {
      *why = "the read-only token cannot change values";
      return 403;
    }
    return 0;
  }
  *why = "the token was refused";
  return 401;
}

static enum MHD_Result dispatch(request *r) {
  const route *rt = r->route;
  if (r->too_big) {
    char msg[160];
    snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes (--http-max-body)", r->srv->o.max_body);
    logf_(r->srv, 1, "%s %s refused: %s", r->method, r->path, msg);
    return http_error(r, 413, RSTATE_ELIMIT, msg);
  }
  if (rt->named) {
    const char *name = r->path + strlen(rt->path);
    return rt->named(r, name);
  }
  return rt->fn(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  (void)version;
  http_server *h = cls;
  request *r = *con_cls;
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) return MHD_NO;
    *con_cls = r;
    r->srv = h;
    r->c = c;
    r->method = method;
    r->path = url;
    r->start_ns = metrics_now_ns();
    const route *found = NULL;
    bool path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
      if (!path_matches(&routes[i], url)) continue;
      path_known = true;
      if (method_is(method, routes[i].method)) {
        found = &routes[i];
        break;
      }
    }
    if (!found) {
      char msg[300];
      if (path_known) {
        snprintf(msg, sizeof msg, "%s is not allowed on %.200s", method, url);
        return http_error(r, 405, RSTATE_EINVAL, msg);
      }
      snprintf(msg, sizeof msg, "no such path: %.200s", url);
      return http_error(r, 404, RSTATE_ENOTFOUND, msg);
    }
    r->route = found;
    const char *why = NULL;
    unsigned refuse = check_token(r, found, &why);
    if (refuse) return http_error(r, refuse, RSTATE_EPERM, why);
    if (!(found->flags & R_BODY)) return dispatch(r);
    return MHD_YES; /* the body follows */
  }
  if (*upload_size) {
    if (!r->too_big) {
      if (r->body_len + *upload_size > h->o.max_body) {
        r->too_big = true;
      } else {
        if (r->body_len + *upload_size + 1 > r->body_cap) {
          size_t cap = r->body_cap ? r->body_cap : 1024;
          while (cap < r->body_len + *upload_size + 1) cap *= 2;
          char *b = realloc(r->body, cap);
          if (!b) return MHD_NO;
          r->body = b;
          r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload, *upload_size);
        r->body_len += *upload_size;
        r->body[r->body_len] = '\0';
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
  (void)cls;
  (void)c;
  (void)why;
  request *r = *con_cls;
  if (!r) return;
  free(r->body);
  free(r);
  *con_cls = NULL;
}

/* --http-nice: the HTTP threads (libmicrohttpd's and the hub's waker) run
 * this many steps below the daemon's priority, so that when many streams
 * share a small machine with the socket server, the socket clients keep
 * their latency and the streams take what is left (coalescing more). Set
 * by http_start; one HTTP server per process. */
static _Atomic int http_nice;

void http_lower_priority(void) {
  static _Thread_local bool done;
  int n = http_nice;
  if (done || n <= 0) return;
  done = true;
  errno = 0;
  int now = getpriority(PRIO_PROCESS, 0); /* the process's, as a new thread inherits it */
  if (errno == 0) setpriority(PRIO_PROCESS, (id_t)gettid(), now + n > 19 ? 19 : now + n);
}

/* Counts connections, to log when --http-max-connections bites: libmicrohttpd
 * then stops accepting, and further connections wait in the listen queue. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx, enum MHD_ConnectionNotificationCode code) {
  (void)c;
  (void)socket_ctx;
  http_server *h = cls;
  http_lower_priority(); /* on MHD's thread, once */
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    if (++h->connections >= h->o.max_connections && !h->at_limit) {
      h->at_limit = true;
      logf_(h, 1, "http: %u connections open, the limit (--http-max-connections): further connections wait", h->connections);
    }
  } else if (h->connections) {
    if (--h->connections < h->o.max_connections && h->at_limit) {
      h->at_limit = false;
      logf_(h, 2, "http: below the connection limit again (%u open)", h->connections);
    }
  }
}

/* ---- start and stop ------------------------------------------------------- */

static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen) {
  char host[256];
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || !colon[1]) {
    snprintf(err, errlen, "--http: \"%s\" is not HOST:PORT", s);
    return -1;
  }
  size_t hn = (size_t)(colon - s);
  if (s[0] == '[' && colon[-1] == ']') {
    s++;
    hn -= 2;
  }
  if (hn >= sizeof host) {
    snprintf(err, errlen, "--http: the host of \"%s\" is too long", s);
    return -1;
  }
  memcpy(host, s, hn);
  host[hn] = '\0';
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end || port > 65535) {
    snprintf(err, errlen, "--http: \"%s\" is not a port from 0 to 65535", colon + 1);
    return -1;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  int g = getaddrinfo(host, colon + 1, &hints, &ai);
  if (g != 0 || !ai) {
    snprintf(err, errlen, "--http: cannot resolve \"%s\": %s", host, gai_strerror(g));
    return -1;
  }
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *len = ai->ai_addrlen;
  freeaddrinfo(ai);
  return 0;
}

int http_start(http_server **out, rstate_store *s, const http_opts *o, char *err, size_t errlen) {
  *out = NULL;
  http_server *h = calloc(1, sizeof *h);
  if (!h) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  h->s = s;
  h->o = *o;
  if (!h->o.max_body) h->o.max_body = 1 << 20;
  if (!h->o.max_header) h->o.max_header = 16 << 10;
  if (!h->o.max_connections) h->o.max_connections = 1024;
  if (!h->o.idle_timeout_s) h->o.idle_timeout_s = 60;
  if (h->o.heartbeat_ms <= 0) h->o.heartbeat_ms = 1000;
  if ((o->token && !(h->token = strdup(o->token))) || (o->read_token && !(h->read_token = strdup(o->read_token))) ||
      !(h->cat = catalog_load(o->schemas, o->n_schemas))) {
    snprintf(err, errlen, "out of memory");
    http_stop(h);
    return -1;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_listen(o->listen, &ss, &sl, err, errlen) != 0) {
    http_stop(h);
    return -1;
  }
  http_nice = h->o.nice;
  int rc = hub_start(&h->hub, s, h->o.history, h->o.heartbeat_ms, http_lower_priority);
  if (rc != 0) {
    snprintf(err, errlen, "cannot watch the store for the streams: %s", rc == -1 ? strerror(errno) : rstate_last_error());
    http_stop(h);
    return -1;
  }
  /* MHD's memory pool per connection holds the request line and headers
   * and its read buffer: a request whose headers do not fit is answered
   * 431 by MHD (and logged through mhd_log). */
  size_t pool = h->o.max_header + 4096;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                          (unsigned)h->o.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                          MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
  if (!h->d) {
    snprintf(err, errlen, "cannot listen on http://%s: %s", o->listen, strerror(errno ? errno : EADDRINUSE));
    http_stop(h);
    return -1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
  struct sockaddr_storage bound;
  socklen_t bl = sizeof bound;
  char addr[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (info && getsockname(info->listen_fd, (struct sockaddr *)&bound, &bl) == 0) {
    if (bound.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&bound;
      inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
      port = ntohs(a->sin6_port);
    } else {
      struct sockaddr_in *a = (struct sockaddr_in *)&bound;
      inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
      port = ntohs(a->sin_port);
    }
  }
  snprintf(h->url, sizeof h->url, bound.ss_family == AF_INET6 ? "http://[%s]:%u" : "http://%s:%u", addr, port);
  logf_(h, 2,
        "http limits: body %zu bytes, headers %zu bytes, %u connections, idle timeout %u s, heartbeat %d ms, "
        "history %zu events%s",
        h->o.max_body, h->o.max_header, h->o.max_connections, h->o.idle_timeout_s, h->o.heartbeat_ms,
        h->o.history ? h->o.history : 65536, h->o.nice > 0 ? ", threads niced" : "");
  *out = h;
  return 0;
}

const char *http_url(const http_server *h) { return h ? h->url : ""; }

void http_stop(http_server *h) {
  if (!h) return;
  hub_shutdown(h->hub); /* every stream ends: suspended ones are resumed to finish */
  if (h->d) MHD_stop_daemon(h->d);
  hub_free(h->hub);
  catalog_free(h->cat);
  free(h->token);
  free(h->read_token);
  free(h);
}
