/*
 * test_server.c — rstate_server (src/server/) seen from the
 * wire: a raw protocol client (wireclient.c) talks to a server over a "mem:"
 * store and checks the frames against docs/PROTOCOL.md: listening and
 * stopping, the handshake and access, every request and its error codes,
 * subscriptions (NEW, RESUMED, GAP), event order and grouping, coalescing
 * for a slow client, heartbeats, limits, and bad input from one client
 * leaving the others alone.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "server/history.h"
#include "wireclient.h"

TestSuite(server, .timeout = 60);

#define WAIT_MS 5000

static int64_t ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A socket path unique to this test process. */
static const char *sock_path(int n) {
  static char path[4][108];
  snprintf(path[n], sizeof path[n], "/tmp/rstate-test-%d-%d.sock", (int)getpid(), n);
  return path[n];
}

static rstate_server *start_at(rstate_store *s, const char *uri, const rstate_server_opts *o) {
  rstate_server *srv = NULL;
  int rc = rstate_server_start(&srv, s, uri, o);
  cr_assert_eq(rc, RSTATE_OK, "rstate_server_start(%s) returned %s: %s", uri, rstate_error_name(rc),
               rstate_last_error());
  cr_assert_not_null(srv);
  return srv;
}

static rstate_server *start(rstate_store *s, const rstate_server_opts *o) {
  char uri[128];
  snprintf(uri, sizeof uri, "unix:%s", sock_path(0));
  return start_at(s, uri, o);
}

/* Connects and completes the handshake; returns the WELCOME. */
static rstate__wire_welcome join(wc *c, rstate_server *srv, const char *token) {
  int rc = wc_connect(c, rstate_server_uri(srv));
  cr_assert_eq(rc, 0, "connect to %s: %s", rstate_server_uri(srv), strerror(-rc));
  rstate__wire_welcome w;
  rc = wc_hello(c, token, 0, &w);
  cr_assert_eq(rc, 0, "handshake: got %s", rstate_error_name(rc));
  return w;
}

/* The next frame must be of this type. */
static void expect(wc *c, int type) {
  int t = wc_next(c, WAIT_MS);
  if (t == RSTATE__WIRE_ERROR && type != RSTATE__WIRE_ERROR)
    cr_assert_fail("expected %s, got ERROR %s \"%s\"", rstate__wire_type_name((uint8_t)type),
                   rstate_error_name(c->m.u.error.code), c->m.u.error.sentence);
  cr_assert_eq(t, type, "expected %s, got %d (%s)", rstate__wire_type_name((uint8_t)type), t,
               t > 0 ? rstate__wire_type_name((uint8_t)t) : (t == 0 ? "timeout" : "closed"));
}

static void expect_error(wc *c, uint32_t req, int code) {
  expect(c, RSTATE__WIRE_ERROR);
  cr_assert_eq(c->m.u.error.req, req, "ERROR for request %u, want %u", c->m.u.error.req, req);
  cr_assert_eq(c->m.u.error.code, code, "ERROR %s (\"%s\"), want %s", rstate_error_name(c->m.u.error.code),
               c->m.u.error.sentence, rstate_error_name(code));
}

/* ERROR with request id 0, then the server closes. */
static void expect_closed_with(wc *c, int code) {
  expect_error(c, 0, code);
  int t = wc_next(c, WAIT_MS);
  cr_assert_eq(t, -1, "the server should close after ERROR 0, got %d", t);
}

static void send_name(wc *c, uint8_t type, uint32_t req, const char *name) {
  rstate__wire_name m = {req, name};
  cr_assert_eq(rstate__wire_put_name(&c->out, type, &m), RSTATE_OK);
  cr_assert_eq(wc_flush(c), 0);
}

static void send_names(wc *c, uint8_t type, uint32_t req, const char *const *names, size_t n) {
  rstate__wire_names m = {req, names, n};
  cr_assert_eq(rstate__wire_put_names(&c->out, type, &m), RSTATE_OK);
  cr_assert_eq(wc_flush(c), 0);
}

static void send_req(wc *c, uint8_t type, uint32_t req) {
  cr_assert_eq(rstate__wire_put_req(&c->out, type, req), RSTATE_OK);
  cr_assert_eq(wc_flush(c), 0);
}

static void send_watch(wc *c, uint32_t req, uint64_t sub, uint8_t flags, uint64_t resume, const char *const *p,
                       size_t n) {
  rstate__wire_watch m = {req, sub, flags, resume, p, n};
  cr_assert_eq(rstate__wire_put_watch(&c->out, &m), RSTATE_OK);
  cr_assert_eq(wc_flush(c), 0);
}

static void send_set(wc *c, uint32_t req, const rstate_assign *items, const uint64_t *expected, size_t n,
                     const rstate_set_opts *o) {
  rstate__wire_set_many m = {req, items, expected, n, o ? *o : (rstate_set_opts){0}};
  cr_assert_eq(rstate__wire_put_set_many(&c->out, &m), RSTATE_OK);
  cr_assert_eq(wc_flush(c), 0);
}

static rstate__wire_watch_reply watch(wc *c, uint32_t req, uint64_t sub, uint8_t flags, uint64_t resume,
                                      const char *const *p, size_t n) {
  send_watch(c, req, sub, flags, resume, p, n);
  expect(c, RSTATE__WIRE_WATCH_REPLY);
  cr_assert_eq(c->m.u.watch_reply.req, req);
  cr_assert_eq(c->m.u.watch_reply.sub, sub);
  return c->m.u.watch_reply;
}

/* STATS, one key. */
static uint64_t stat_of(wc *c, const char *key) {
  send_req(c, RSTATE__WIRE_STATS, 900);
  expect(c, RSTATE__WIRE_STATS_REPLY);
  for (size_t i = 0; i < c->m.u.stats.n; i++)
    if (!strcmp(c->m.u.stats.stats[i].key, key)) return c->m.u.stats.stats[i].value;
  cr_assert_fail("STATS has no key %s", key);
  return 0;
}

/* Events received, flattened, with copies of what the tests compare. */
typedef struct ev {
  uint64_t sub, revision;
  uint8_t flags;
  int kind;
  char name[64];
  rstate_kind old_kind, new_kind;
  int64_t old_i, new_i;
  uint64_t version;
  uint32_t coalesced;
  char source[32];
  size_t n_meta;
  char meta0[32];
  size_t frame; /* which EVENT frame it came in */
} ev;

typedef struct evlog {
  ev *e;
  size_t n, cap, frames;
} evlog;

static void evlog_add_frame(evlog *l, const rstate__wire_events *m) {
  for (size_t i = 0; i < m->n; i++) {
    if (l->n == l->cap) {
      l->cap = l->cap ? l->cap * 2 : 64;
      l->e = realloc(l->e, l->cap * sizeof *l->e);
      cr_assert_not_null(l->e);
    }
    ev *e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    const rstate__wire_event *w = &m->events[i];
    e->sub = m->sub;
    e->revision = m->revision;
    e->flags = m->flags;
    e->kind = w->kind;
    snprintf(e->name, sizeof e->name, "%s", w->name);
    e->old_kind = w->old_value.kind;
    e->new_kind = w->new_value.kind;
    e->old_i = w->old_value.kind == RSTATE_INT ? w->old_value.u.i : 0;
    e->new_i = w->new_value.kind == RSTATE_INT ? w->new_value.u.i : 0;
    e->version = w->version;
    e->coalesced = w->coalesced;
    snprintf(e->source, sizeof e->source, "%s", m->source ? m->source : "");
    e->n_meta = m->n_meta;
    if (m->n_meta) snprintf(e->meta0, sizeof e->meta0, "%s=%s", m->meta[0].key, m->meta[0].value);
    e->frame = l->frames;
  }
  l->frames++;
}

/* Reads EVENT frames until n events are in (other frames fail the test). */
static void read_events(wc *c, evlog *l, size_t n) {
  while (l->n < n) {
    expect(c, RSTATE__WIRE_EVENT);
    evlog_add_frame(l, &c->m.u.events);
  }
}

static rstate_store *open_store(void) { return h_open(); }

static void define_int(rstate_store *s, const char *name, int64_t v) {
  h_define_ok(s, name, RSTATE_TYPE_INTEGER, rstate_int(v), NULL);
}

static void set_int(rstate_store *s, const char *name, int64_t v) { ASSERT_RC(rstate_set_int(s, name, v), RSTATE_OK); }

/* ---- listening and stopping ------------------------------------------------- */

Test(server, unix_socket_mode_0600_and_removed_at_stop) {
  rstate_store *s = open_store();
  rstate_server *srv = start(s, NULL);
  char want[128];
  snprintf(want, sizeof want, "unix:%s", sock_path(0));
  cr_assert_str_eq(rstate_server_uri(srv), want);
  struct stat st;
  cr_assert_eq(stat(sock_path(0), &st), 0);
  cr_assert(S_ISSOCK(st.st_mode));
  cr_assert_eq(st.st_mode & 0777, 0600, "socket mode is %o, want 600", st.st_mode & 0777);
  wc c;
  join(&c, srv, NULL);
  rstate_server_stop(srv);
  cr_assert_neq(stat(sock_path(0), &st), 0, "the socket file is still there after rstate_server_stop");
  wc_close(&c);
  /* the store stays open and usable */
  define_int(s, "after", 1);
  rstate_close(s);
}

Test(server, stale_socket_file_is_replaced) {
  rstate_store *s = open_store();
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path(0));
  unlink(sock_path(0));
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  close(fd); /* a socket file no one listens on: what a crashed server leaves */
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, live_server_at_the_path_is_eio) {
  rstate_store *s = open_store();
  rstate_server *srv = start(s, NULL);
  rstate_server *second = NULL;
  char uri[128];
  snprintf(uri, sizeof uri, "unix:%s", sock_path(0));
  ASSERT_RC(rstate_server_start(&second, s, uri, NULL), RSTATE_EIO);
  cr_assert_null(second);
  wc c;
  join(&c, srv, NULL); /* the first one still serves */
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, tcp_port_0_gives_the_real_port) {
  rstate_store *s = open_store();
  rstate_server *srv = start_at(s, "tcp:127.0.0.1:0", NULL);
  const char *uri = rstate_server_uri(srv);
  cr_assert(strncmp(uri, "tcp:127.0.0.1:", 14) == 0, "uri %s", uri);
  cr_assert_neq(atoi(uri + 14), 0, "uri %s has port 0", uri);
  wc c;
  rstate__wire_welcome w = join(&c, srv, NULL);
  cr_assert_eq(w.access, RSTATE__WIRE_READ_WRITE);
  wc_close(&c);
  rstate_server_stop(srv);
  /* a name, and the wildcard address, give an address a client can connect to */
  srv = start_at(s, "tcp:localhost:0", NULL);
  cr_assert(strncmp(rstate_server_uri(srv), "tcp:127.0.0.1:", 14) == 0, "uri %s", rstate_server_uri(srv));
  rstate_server_stop(srv);
  srv = start_at(s, "tcp:0.0.0.0:0", NULL);
  cr_assert(strncmp(rstate_server_uri(srv), "tcp:127.0.0.1:", 14) == 0, "uri %s", rstate_server_uri(srv));
  join(&c, srv, NULL);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* IPv6: the bound address comes back bracketed, and a remote store reaches
 * it through the same URI (both sides parse "[address]:port" alike). */
Test(server, tcp_on_ipv6_loopback_round_trips) {
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool v6 = probe >= 0 && bind(probe, (struct sockaddr *)&lo, sizeof lo) == 0;
  if (probe >= 0) close(probe);
  if (!v6) cr_skip_test("this machine has no IPv6 loopback");
  rstate_store *s = open_store();
  rstate_server *srv = start_at(s, "tcp:[::1]:0", NULL);
  const char *uri = rstate_server_uri(srv);
  cr_assert(strncmp(uri, "tcp:[::1]:", 10) == 0 && atoi(uri + 10) > 0, "uri %s", uri);
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, uri, NULL), RSTATE_OK);
  h_define_ok(c, "v6.x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  ASSERT_RC(rstate_set_int(c, "v6.x", 6), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "v6.x"), 6, "the served store has the client's value");
  rstate_close(c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, bad_uris_and_options_are_einval) {
  rstate_store *s = open_store();
  rstate_server *srv = NULL;
  ASSERT_RC(rstate_server_start(&srv, s, "mem:", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_server_start(&srv, s, "tcp:127.0.0.1", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_server_start(&srv, s, "tcp:127.0.0.1:70000", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_server_start(&srv, s, "tcp::80", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_server_start(&srv, s, "unix:", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_server_start(&srv, s, "tcp:127.0.0.1:8x", NULL), RSTATE_EINVAL);
  cr_assert(strstr(rstate_last_error(), "\"tcp:127.0.0.1:8x\": the port must be a number from 0 to 65535"),
            "the sentence names the URI and the rule: %s", rstate_last_error());
  ASSERT_RC(rstate_server_start(&srv, s, "tcp:[::1:0", NULL), RSTATE_EINVAL);
  char longpath[200] = "unix:/tmp/";
  memset(longpath + 10, 'x', sizeof longpath - 11);
  ASSERT_RC(rstate_server_start(&srv, s, longpath, NULL), RSTATE_EINVAL);
  cr_assert(strstr(rstate_last_error(), "a socket path is at most"), "%s", rstate_last_error());
  ASSERT_RC(rstate_server_start(&srv, NULL, "tcp:127.0.0.1:0", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_server_start(NULL, s, "tcp:127.0.0.1:0", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_server_start(&srv, s, NULL, NULL), RSTATE_EINVAL);
  rstate_server_opts o = {.max_frame = 100};
  ASSERT_RC(rstate_server_start(&srv, s, "tcp:127.0.0.1:0", &o), RSTATE_EINVAL);
  o = (rstate_server_opts){.heartbeat_ms = -1};
  ASSERT_RC(rstate_server_start(&srv, s, "tcp:127.0.0.1:0", &o), RSTATE_EINVAL);
  cr_assert_null(srv);
  cr_assert_str_eq(rstate_server_uri(NULL), "");
  rstate_server_stop(NULL);
  rstate_close(s);
}

Test(server, stop_tells_clients_eclosed) {
  rstate_store *s = open_store();
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  rstate_server_stop(srv);
  expect_closed_with(&c, RSTATE_ECLOSED);
  wc_close(&c);
  rstate_close(s);
}

/* Closing the served store stops the serving at once, as
 * rstate_server_stop would, with its own sentence; the server is still to
 * be stopped (freed), and its URI stays readable until then. */
Test(server, closing_the_store_stops_serving_it) {
  rstate_store *s = open_store();
  define_int(s, "x", 1);
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  const char *p[] = {"x"};
  watch(&c, 1, 1, 0, 0, p, 1);
  char uri[128];
  snprintf(uri, sizeof uri, "%s", rstate_server_uri(srv));
  rstate_close(s);
  expect_error(&c, 0, RSTATE_ECLOSED);
  cr_assert_str_eq(c.m.u.error.sentence, "the store was closed");
  cr_assert_eq(wc_next(&c, WAIT_MS), -1, "the server should close after ERROR 0");
  wc_close(&c);
  struct stat st;
  cr_assert_neq(stat(sock_path(0), &st), 0, "the socket file is still there");
  cr_assert_neq(wc_connect(&c, uri), 0, "a client could still connect");
  cr_assert_str_eq(rstate_server_uri(srv), uri);
  rstate_server_stop(srv);
}

/* ---- handshake and access ----------------------------------------------------- */

Test(server, welcome_fields) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  rstate_server_opts o = {.heartbeat_ms = 700, .max_frame = 8192};
  rstate_server *srv = start(s, &o);
  wc c;
  rstate__wire_welcome w = join(&c, srv, NULL);
  cr_assert_eq(w.version, RSTATE__WIRE_VERSION, "the highest version both speak");
  cr_assert_eq(w.heartbeat_ms, 700);
  cr_assert_eq(w.revision, rstate_revision(s));
  cr_assert_eq(w.max_frame, 8192);
  cr_assert_eq(w.access, RSTATE__WIRE_READ_WRITE);
  wc c2;
  cr_assert_eq(wc_connect(&c2, rstate_server_uri(srv)), 0);
  cr_assert_eq(wc_hello(&c2, NULL, 300, &w), 0);
  cr_assert_eq(w.heartbeat_ms, 300, "the shorter of the two intervals");
  wc_close(&c);
  rstate__wire_welcome w2 = join(&c, srv, NULL);
  cr_assert_eq(w.instance_id, w2.instance_id, "one instance id per server start");
  wc_close(&c);
  wc_close(&c2);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, token_refused_is_eperm_and_close) {
  rstate_store *s = open_store();
  rstate_server_opts o = {.token = "s3cret", .read_token = "peek"};
  rstate_server *srv = start(s, &o);
  wc c;
  cr_assert_eq(wc_connect(&c, rstate_server_uri(srv)), 0);
  cr_assert_eq(wc_hello(&c, "wrong", 0, NULL), RSTATE_EPERM);
  cr_assert_str_eq(c.m.u.error.sentence, "the token was refused");
  cr_assert_eq(c.m.u.error.req, 0);
  cr_assert_eq(wc_next(&c, WAIT_MS), -1, "closed after the refusal");
  wc_close(&c);
  cr_assert_eq(wc_connect(&c, rstate_server_uri(srv)), 0);
  cr_assert_eq(wc_hello(&c, NULL, 0, NULL), RSTATE_EPERM, "no token when one is needed");
  wc_close(&c);
  rstate__wire_welcome w = join(&c, srv, "s3cret");
  cr_assert_eq(w.access, RSTATE__WIRE_READ_WRITE);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, read_token_is_read_only) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  rstate_server_opts o = {.token = "s3cret", .read_token = "peek"};
  rstate_server *srv = start(s, &o);
  wc c;
  rstate__wire_welcome w = join(&c, srv, "peek");
  cr_assert_eq(w.access, RSTATE__WIRE_READ_ONLY);
  rstate__wire_define d = {1, {.name = "b", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(0)}};
  rstate__wire_put_define(&c.out, &d);
  wc_flush(&c);
  expect_error(&c, 1, RSTATE_EPERM);
  send_name(&c, RSTATE__WIRE_UNDEFINE, 2, "a");
  expect_error(&c, 2, RSTATE_EPERM);
  rstate_assign it = {"a", rstate_int(5)};
  send_set(&c, 3, &it, NULL, 1, NULL);
  expect_error(&c, 3, RSTATE_EPERM);
  send_name(&c, RSTATE__WIRE_GET, 4, "a"); /* reads go on, on the same connection */
  expect(&c, RSTATE__WIRE_GET_REPLY);
  cr_assert_eq(c.m.u.get_reply.value.u.i, 1);
  const char *p[] = {"a"};
  watch(&c, 5, 1, 0, 0, p, 1);
  int64_t v;
  ASSERT_RC(rstate_get_int(s, "a", &v), RSTATE_OK);
  cr_assert_eq(v, 1, "a read-only client changed nothing");
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* ---- HISTORY and ROLLBACK (protocol version 2) --------------------------------- */

static rstate_store *open_keeping(size_t keep) {
  rstate_store *s = NULL;
  rstate_options o = {.keep_versions = keep};
  ASSERT_RC(rstate_open(&s, "mem:", &o), RSTATE_OK);
  return s;
}

Test(server, history_and_rollback_frames) {
  rstate_store *s = open_keeping(4);
  define_int(s, "a", 1);
  ASSERT_RC(rstate_set_int(s, "a", 2), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "a", 3), RSTATE_OK);
  rstate_server_opts o = {.token = "s3cret", .read_token = "peek"};
  rstate_server *srv = start(s, &o);
  wc c;
  join(&c, srv, "s3cret");
  rstate__wire_history h = {1, "a", 0};
  cr_assert_eq(rstate__wire_put_history(&c.out, &h), RSTATE_OK);
  wc_flush(&c);
  expect(&c, RSTATE__WIRE_HISTORY_PART);
  const rstate__wire_hist_part *p = &c.m.u.hist;
  cr_assert_eq(p->req, 1);
  cr_assert_eq(p->flags, 0);
  cr_assert_eq(p->n, 3, "3 versions kept, got %zu", p->n);
  for (size_t i = 0; i < 3; i++) {
    cr_assert_eq(p->entries[i].version, i + 1);
    cr_assert_eq(p->entries[i].value.u.i, (int64_t)i + 1);
  }
  h = (rstate__wire_history){2, "nope", 0};
  rstate__wire_put_history(&c.out, &h);
  wc_flush(&c);
  expect_error(&c, 2, RSTATE_ENOTFOUND);
  rstate_meta meta = {"why", "test"};
  rstate__wire_rollback rb = {3, "a", 1, {.source = "ops", .meta = &meta, .n_meta = 1}};
  cr_assert_eq(rstate__wire_put_rollback(&c.out, &rb), RSTATE_OK);
  wc_flush(&c);
  expect(&c, RSTATE__WIRE_ROLLBACK_REPLY);
  cr_assert_eq(c.m.u.rev.req, 3);
  cr_assert_eq(c.m.u.rev.revision, rstate_revision(s));
  int64_t v = 0;
  ASSERT_RC(rstate_get_int(s, "a", &v), RSTATE_OK);
  cr_assert_eq(v, 1, "rolled back to version 1");
  rb = (rstate__wire_rollback){4, "a", 9, {0}};
  rstate__wire_put_rollback(&c.out, &rb);
  wc_flush(&c);
  expect_error(&c, 4, RSTATE_ECONFLICT);
  cr_assert(strstr(c.m.u.error.sentence, "a") != NULL, "%s", c.m.u.error.sentence);
  wc_close(&c);

  /* read-only: HISTORY yes, ROLLBACK refused as the write it is */
  join(&c, srv, "peek");
  h = (rstate__wire_history){5, "a", 3};
  rstate__wire_put_history(&c.out, &h);
  wc_flush(&c);
  expect(&c, RSTATE__WIRE_HISTORY_PART);
  cr_assert_eq(c.m.u.hist.n, 1, "above version 3: the rollback, version 4");
  cr_assert_eq(c.m.u.hist.entries[0].version, 4);
  cr_assert_str_eq(c.m.u.hist.entries[0].source, "ops");
  cr_assert_eq(c.m.u.hist.entries[0].n_meta, 1);
  rb = (rstate__wire_rollback){6, "a", 2, {0}};
  rstate__wire_put_rollback(&c.out, &rb);
  wc_flush(&c);
  expect_error(&c, 6, RSTATE_EPERM);
  cr_assert(strstr(c.m.u.error.sentence, "a: not changed") != NULL, "%s", c.m.u.error.sentence);
  ASSERT_RC(rstate_get_int(s, "a", &v), RSTATE_OK);
  cr_assert_eq(v, 1, "a read-only client rolled back");
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* A client that said version 1 speaks version 1: HISTORY is as unknown on
 * its connection as it is to a version-1 server. */
Test(server, a_version_1_connection_gets_no_version_2_frames) {
  rstate_store *s = open_keeping(4);
  define_int(s, "a", 1);
  rstate_server *srv = start(s, NULL);
  wc c;
  cr_assert_eq(wc_connect(&c, rstate_server_uri(srv)), 0);
  rstate__wire_hello hello = {1, 0, "", 0};
  rstate__wire_put_hello(&c.out, &hello);
  wc_flush(&c);
  expect(&c, RSTATE__WIRE_WELCOME);
  cr_assert_eq(c.m.u.welcome.version, 1, "the highest version both speak is 1");
  c.rd.max_frame = rstate__wire_client_limit(c.m.u.welcome.max_frame);
  rstate__wire_history h = {1, "a", 0};
  rstate__wire_put_history(&c.out, &h);
  wc_flush(&c);
  expect_error(&c, 0, RSTATE_EPROTO);
  cr_assert(strstr(c.m.u.error.sentence, "needs protocol version 2") != NULL, "%s", c.m.u.error.sentence);
  cr_assert_eq(wc_next(&c, WAIT_MS), -1, "the server should close after ERROR 0");
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* ---- requests ------------------------------------------------------------------ */

Test(server, define_undefine_get_info) {
  rstate_store *s = open_store();
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  rstate_constraints k = {.min = rstate_int(0), .max = rstate_int(10)};
  rstate__wire_define d = {1, {.name = "n", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(3), .constraints = &k}};
  rstate__wire_put_define(&c.out, &d);
  wc_flush(&c);
  expect(&c, RSTATE__WIRE_OK);
  cr_assert_eq(c.m.u.req.req, 1);
  d.req = 2; /* identical: OK, nothing changes */
  rstate__wire_put_define(&c.out, &d);
  wc_flush(&c);
  expect(&c, RSTATE__WIRE_OK);
  d.req = 3;
  d.def.initial = rstate_int(4);
  rstate__wire_put_define(&c.out, &d);
  wc_flush(&c);
  expect_error(&c, 3, RSTATE_EEXIST);
  cr_assert(strstr(c.m.u.error.sentence, "n") != NULL);
  cr_assert_eq(c.m.u.error.failed_index, RSTATE__WIRE_NO_INDEX);
  rstate__wire_define bad = {4, {.name = "bad name", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(0)}};
  rstate__wire_put_define(&c.out, &bad);
  wc_flush(&c);
  expect_error(&c, 4, RSTATE_EINVAL);
  rstate__wire_define big = {5,
                             {.name = "m", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(11), .constraints = &k}};
  rstate__wire_put_define(&c.out, &big);
  wc_flush(&c);
  expect_error(&c, 5, RSTATE_ECONSTRAINT);
  rstate__wire_define str = {6, {.name = "m", .type = RSTATE_TYPE_INTEGER, .initial = rstate_string("x")}};
  rstate__wire_put_define(&c.out, &str);
  wc_flush(&c);
  expect_error(&c, 6, RSTATE_ETYPE);

  send_name(&c, RSTATE__WIRE_GET, 7, "n");
  expect(&c, RSTATE__WIRE_GET_REPLY);
  rstate__wire_get_reply g = c.m.u.get_reply;
  rstate_var_info info;
  ASSERT_RC(rstate_info(s, "n", &info), RSTATE_OK);
  cr_assert_eq(g.req, 7);
  cr_assert_eq(g.type, RSTATE_TYPE_INTEGER);
  cr_assert_eq(g.value.kind, RSTATE_INT);
  cr_assert_eq(g.value.u.i, 3);
  cr_assert_eq(g.version, 1);
  cr_assert_eq(g.revision, info.revision);
  cr_assert_eq(g.updated_ns, info.updated_ns);
  send_name(&c, RSTATE__WIRE_INFO, 8, "n");
  expect(&c, RSTATE__WIRE_INFO_REPLY);
  cr_assert_eq(c.m.u.info_reply.info.type, RSTATE_TYPE_INTEGER);
  cr_assert_eq(c.m.u.info_reply.info.version, 1);
  cr_assert_eq(c.m.u.info_reply.info.revision, info.revision);
  send_name(&c, RSTATE__WIRE_GET, 9, "nope");
  expect_error(&c, 9, RSTATE_ENOTFOUND);
  send_name(&c, RSTATE__WIRE_GET, 10, "no way");
  expect_error(&c, 10, RSTATE_EINVAL);
  send_name(&c, RSTATE__WIRE_INFO, 11, "nope");
  expect_error(&c, 11, RSTATE_ENOTFOUND);
  send_name(&c, RSTATE__WIRE_UNDEFINE, 12, "n");
  expect(&c, RSTATE__WIRE_OK);
  send_name(&c, RSTATE__WIRE_UNDEFINE, 13, "n");
  expect_error(&c, 13, RSTATE_ENOTFOUND);
  send_name(&c, RSTATE__WIRE_UNDEFINE, 14, "");
  expect_error(&c, 14, RSTATE_EINVAL);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, get_many_set_many_revision) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  define_int(s, "b", 2);
  rstate_constraints k = {.max = rstate_int(100)};
  h_define_ok(s, "c", RSTATE_TYPE_INTEGER, rstate_int(0), &k);
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  const char *names[] = {"b", "a"};
  send_names(&c, RSTATE__WIRE_GET_MANY, 1, names, 2);
  expect(&c, RSTATE__WIRE_GET_MANY_PART);
  cr_assert_eq(c.m.u.values.n, 2);
  cr_assert_eq(c.m.u.values.flags, 0);
  cr_assert_eq(c.m.u.values.values[0].u.i, 2);
  cr_assert_eq(c.m.u.values.values[1].u.i, 1);
  cr_assert_eq(c.m.u.values.revision, rstate_revision(s));
  const char *missing[] = {"a", "zz"};
  send_names(&c, RSTATE__WIRE_GET_MANY, 2, missing, 2);
  expect_error(&c, 2, RSTATE_ENOTFOUND);
  cr_assert(strstr(c.m.u.error.sentence, "zz") != NULL);
  send_names(&c, RSTATE__WIRE_GET_MANY, 3, NULL, 0);
  expect(&c, RSTATE__WIRE_GET_MANY_PART);
  cr_assert_eq(c.m.u.values.n, 0);

  uint64_t before = rstate_revision(s);
  rstate_assign two[] = {{"a", rstate_int(10)}, {"b", rstate_int(20)}};
  send_set(&c, 4, two, NULL, 2, NULL);
  expect(&c, RSTATE__WIRE_SET_MANY_REPLY);
  cr_assert_eq(c.m.u.rev.req, 4);
  cr_assert_eq(c.m.u.rev.revision, before + 1, "one revision for the whole batch");
  int64_t v;
  ASSERT_RC(rstate_get_int(s, "b", &v), RSTATE_OK);
  cr_assert_eq(v, 20);
  /* expected versions: a is at 2 now; the second item conflicts */
  uint64_t exp[] = {2, 1};
  rstate_assign again[] = {{"a", rstate_int(11)}, {"b", rstate_int(21)}};
  send_set(&c, 5, again, exp, 2, NULL);
  expect_error(&c, 5, RSTATE_ECONFLICT);
  cr_assert_eq(c.m.u.error.failed_index, 1);
  ASSERT_RC(rstate_get_int(s, "a", &v), RSTATE_OK);
  cr_assert_eq(v, 10, "all or nothing");
  rstate_assign wrong[] = {{"a", rstate_int(1)}, {"c", rstate_string("x")}};
  send_set(&c, 6, wrong, NULL, 2, NULL);
  expect_error(&c, 6, RSTATE_ETYPE);
  cr_assert_eq(c.m.u.error.failed_index, 1);
  rstate_assign over[] = {{"c", rstate_int(101)}};
  send_set(&c, 7, over, NULL, 1, NULL);
  expect_error(&c, 7, RSTATE_ECONSTRAINT);
  cr_assert_eq(c.m.u.error.failed_index, 0);
  rstate_assign nope[] = {{"a", rstate_int(1)}, {"nope", rstate_int(1)}};
  send_set(&c, 8, nope, NULL, 2, NULL);
  expect_error(&c, 8, RSTATE_ENOTFOUND);
  cr_assert_eq(c.m.u.error.failed_index, 1);
  rstate_assign dup[] = {{"a", rstate_int(1)}, {"a", rstate_int(2)}};
  send_set(&c, 9, dup, NULL, 2, NULL);
  expect_error(&c, 9, RSTATE_EINVAL);
  cr_assert_eq(c.m.u.error.failed_index, 1);
  send_set(&c, 10, NULL, NULL, 0, NULL);
  expect(&c, RSTATE__WIRE_SET_MANY_REPLY);
  cr_assert_eq(c.m.u.rev.revision, rstate_revision(s));
  send_req(&c, RSTATE__WIRE_REVISION, 11);
  expect(&c, RSTATE__WIRE_REVISION_REPLY);
  cr_assert_eq(c.m.u.rev.req, 11);
  cr_assert_eq(c.m.u.rev.revision, rstate_revision(s));
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* One door: a set sent as a frame gets every check rstate_set makes, with
 * rstate_set's own sentence, and changes nothing. */
Test(server, a_served_set_is_checked_as_rstate_set_is) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  const char *all[] = {"*"};
  watch(&c, 1, 7, 0, 0, all, 1);
  rstate_set_opts bad = {.source = "\xff\xfe"};
  rstate_value v = rstate_int(2);
  ASSERT_RC(rstate_set(s, "a", &v, &bad), RSTATE_EINVAL);
  char local[256];
  snprintf(local, sizeof local, "%s", rstate_last_error());
  cr_assert(strstr(local, "UTF-8") != NULL, "rstate_set said \"%s\"", local);
  uint64_t before = rstate_revision(s);

  rstate_assign one[] = {{"a", rstate_int(2)}};
  send_set(&c, 2, one, NULL, 1, &bad);
  expect_error(&c, 2, RSTATE_EINVAL);
  cr_assert_str_eq(c.m.u.error.sentence, local);
  /* a conditional set is rstate_set_if's, a batch rstate_set_many's */
  uint64_t exp[] = {1};
  send_set(&c, 3, one, exp, 1, &bad);
  expect_error(&c, 3, RSTATE_EINVAL);
  ASSERT_RC(rstate_set_if(s, "a", &v, 1, &bad), RSTATE_EINVAL);
  cr_assert_str_eq(c.m.u.error.sentence, rstate_last_error());
  rstate_assign two[] = {{"a", rstate_int(2)}, {"a", rstate_int(3)}};
  send_set(&c, 4, two, NULL, 2, &bad);
  expect_error(&c, 4, RSTATE_EINVAL);
  ASSERT_RC(rstate_set_many(s, two, 2, &bad, NULL), RSTATE_EINVAL);
  cr_assert_str_eq(c.m.u.error.sentence, rstate_last_error());
  rstate_meta m = {"k", "\xc3"};
  rstate_set_opts bad_meta = {.meta = &m, .n_meta = 1};
  send_set(&c, 5, one, NULL, 1, &bad_meta);
  expect_error(&c, 5, RSTATE_EINVAL);
  ASSERT_RC(rstate_set(s, "a", &v, &bad_meta), RSTATE_EINVAL);
  cr_assert_str_eq(c.m.u.error.sentence, rstate_last_error());

  cr_assert_eq(rstate_revision(s), before, "nothing changed");
  int64_t x;
  ASSERT_RC(rstate_get_int(s, "a", &x), RSTATE_OK);
  cr_assert_eq(x, 1);
  /* and no event went out: the next frame answers the next request */
  send_req(&c, RSTATE__WIRE_REVISION, 6);
  expect(&c, RSTATE__WIRE_REVISION_REPLY);
  cr_assert_eq(c.m.u.rev.req, 6);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, list_snapshot_stats) {
  rstate_store *s = open_store();
  define_int(s, "cfg.b", 2);
  define_int(s, "cfg.a", 1);
  define_int(s, "other", 3);
  rstate_server_opts o = {.max_frame = 4096};
  rstate_server *srv = start(s, &o);
  wc c;
  join(&c, srv, NULL);
  send_names(&c, RSTATE__WIRE_LIST, 1, NULL, 0);
  expect(&c, RSTATE__WIRE_LIST_PART);
  cr_assert_eq(c.m.u.list.n, 3);
  cr_assert_str_eq(c.m.u.list.items[0].name, "cfg.a");
  cr_assert_str_eq(c.m.u.list.items[1].name, "cfg.b");
  cr_assert_str_eq(c.m.u.list.items[2].name, "other");
  cr_assert_eq(c.m.u.list.items[2].type, RSTATE_TYPE_INTEGER);
  const char *p[] = {"cfg.*"};
  send_names(&c, RSTATE__WIRE_LIST, 2, p, 1);
  expect(&c, RSTATE__WIRE_LIST_PART);
  cr_assert_eq(c.m.u.list.n, 2);
  const char *bad[] = {"cfg a*"};
  send_names(&c, RSTATE__WIRE_LIST, 3, bad, 1);
  expect_error(&c, 3, RSTATE_EINVAL);
  send_names(&c, RSTATE__WIRE_SNAPSHOT, 4, p, 1);
  expect(&c, RSTATE__WIRE_SNAPSHOT_PART);
  cr_assert_eq(c.m.u.snapshot.n, 2);
  cr_assert_eq(c.m.u.snapshot.revision, rstate_revision(s));
  int64_t sum = 0;
  for (size_t i = 0; i < 2; i++) {
    sum += c.m.u.snapshot.vars[i].value.u.i;
    cr_assert_eq(c.m.u.snapshot.vars[i].version, 1);
  }
  cr_assert_eq(sum, 3);
  send_names(&c, RSTATE__WIRE_SNAPSHOT, 5, bad, 1);
  expect_error(&c, 5, RSTATE_EINVAL);
  /* a long list is split to max_frame, in name order across the parts */
  char name[32];
  for (int i = 0; i < 400; i++) {
    snprintf(name, sizeof name, "many.%03d", i);
    define_int(s, name, i);
  }
  const char *many[] = {"many.*"};
  send_names(&c, RSTATE__WIRE_LIST, 6, many, 1);
  size_t got = 0, parts = 0;
  for (;;) {
    expect(&c, RSTATE__WIRE_LIST_PART);
    parts++;
    for (size_t i = 0; i < c.m.u.list.n; i++, got++) {
      snprintf(name, sizeof name, "many.%03zu", got);
      cr_assert_str_eq(c.m.u.list.items[i].name, name);
    }
    if (!(c.m.u.list.flags & RSTATE__WIRE_MORE)) break;
  }
  cr_assert_eq(got, 400);
  cr_assert_gt(parts, 1, "400 names do not fit one 4096-byte frame");
  cr_assert_eq(stat_of(&c, "variables"), 403);
  cr_assert_eq(stat_of(&c, "clients"), 1);
  cr_assert_eq(stat_of(&c, "revision"), rstate_revision(s));
  cr_assert_eq(stat_of(&c, "subscriptions"), 0);
  cr_assert_gt(stat_of(&c, "frames_in"), 5);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, watch_and_unwatch_errors) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  const char *p[] = {"a"};
  send_watch(&c, 1, 0, 0, 0, p, 1);
  expect_error(&c, 1, RSTATE_EINVAL);
  watch(&c, 2, 7, 0, 0, p, 1);
  send_watch(&c, 3, 7, 0, 0, p, 1);
  expect_error(&c, 3, RSTATE_EINVAL);
  const char *bad[] = {"a b"};
  send_watch(&c, 4, 8, 0, 0, bad, 1);
  expect_error(&c, 4, RSTATE_EINVAL);
  send_watch(&c, 5, 8, 0, 0, NULL, 0);
  expect_error(&c, 5, RSTATE_EINVAL);
  rstate__wire_unwatch u = {6, 99};
  rstate__wire_put_unwatch(&c.out, &u);
  wc_flush(&c);
  expect_error(&c, 6, RSTATE_ENOTFOUND);
  u = (rstate__wire_unwatch){7, 7};
  rstate__wire_put_unwatch(&c.out, &u);
  wc_flush(&c);
  expect(&c, RSTATE__WIRE_OK);
  cr_assert_eq(c.m.u.req.req, 7);
  set_int(s, "a", 2); /* no EVENT for an ended subscription */
  send_req(&c, RSTATE__WIRE_REVISION, 8);
  expect(&c, RSTATE__WIRE_REVISION_REPLY);
  cr_assert_eq(stat_of(&c, "subscriptions"), 0);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* ---- subscriptions and events -------------------------------------------------- */

Test(server, watch_new_initial_then_changes_in_order) {
  rstate_store *s = open_store();
  define_int(s, "cfg.a", 1);
  define_int(s, "cfg.b", 2);
  define_int(s, "zzz", 0);
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  const char *p[] = {"cfg.*", "cfg.a"}; /* cfg.a covered twice: one event per change */
  uint64_t R = rstate_revision(s);
  rstate__wire_watch_reply r = watch(&c, 1, 5, RSTATE__WIRE_WATCH_INITIAL, 0, p, 2);
  cr_assert_eq(r.status, RSTATE__WIRE_WATCH_NEW);
  cr_assert_eq(r.revision, R);
  cr_assert_eq(r.n_initial, 2);
  evlog l = {0};
  read_events(&c, &l, 2);
  cr_assert_eq(l.frames, 1, "the INITIAL events are one group");
  for (size_t i = 0; i < 2; i++) {
    cr_assert_eq(l.e[i].kind, RSTATE_EVENT_INITIAL);
    cr_assert_eq(l.e[i].revision, R);
    cr_assert_eq(l.e[i].coalesced, 0);
    cr_assert_eq(l.e[i].old_kind, RSTATE_NONE);
    cr_assert_eq(l.e[i].flags, 0);
  }
  rstate_meta meta[] = {{"why", "test"}};
  rstate_set_opts so = {.source = "py", .meta = meta, .n_meta = 1};
  rstate_value v = rstate_int(10);
  ASSERT_RC(rstate_set(s, "cfg.a", &v, &so), RSTATE_OK);
  set_int(s, "zzz", 5); /* not covered */
  set_int(s, "cfg.b", 20);
  h_define_ok(s, "cfg.c", RSTATE_TYPE_INTEGER, rstate_int(7), NULL);
  ASSERT_RC(rstate_undefine(s, "cfg.b"), RSTATE_OK);
  read_events(&c, &l, 6);
  ev *e = &l.e[2];
  cr_assert_eq(e->kind, RSTATE_EVENT_CHANGED);
  cr_assert_str_eq(e->name, "cfg.a");
  cr_assert_eq(e->old_i, 1);
  cr_assert_eq(e->new_i, 10);
  cr_assert_eq(e->version, 2);
  cr_assert_eq(e->revision, R + 1);
  cr_assert_eq(e->coalesced, 1);
  cr_assert_str_eq(e->source, "py");
  cr_assert_str_eq(e->meta0, "why=test");
  e = &l.e[3];
  cr_assert_str_eq(e->name, "cfg.b");
  cr_assert_eq(e->revision, R + 3);
  cr_assert_eq(e->old_i, 2);
  cr_assert_eq(e->new_i, 20);
  cr_assert_str_eq(e->source, "");
  e = &l.e[4];
  cr_assert_eq(e->kind, RSTATE_EVENT_DEFINED);
  cr_assert_str_eq(e->name, "cfg.c");
  cr_assert_eq(e->old_kind, RSTATE_NONE);
  cr_assert_eq(e->new_i, 7);
  cr_assert_eq(e->version, 1);
  cr_assert_eq(e->revision, R + 4);
  e = &l.e[5];
  cr_assert_eq(e->kind, RSTATE_EVENT_DELETED);
  cr_assert_str_eq(e->name, "cfg.b");
  cr_assert_eq(e->new_kind, RSTATE_NONE);
  cr_assert_eq(e->revision, R + 5);
  /* nothing else: a REVISION round trip comes back with no EVENT before it */
  send_req(&c, RSTATE__WIRE_REVISION, 2);
  expect(&c, RSTATE__WIRE_REVISION_REPLY);
  free(l.e);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* What a client receives: exactly these events (sub, name, new value), in
 * any order across its subscriptions, and then nothing before the answer to
 * a REVISION request. */
typedef struct want {
  uint64_t sub;
  const char *name;
  int64_t v;
} want;

static void expect_exactly(wc *c, const char *who, const want *w, size_t n) {
  evlog l = {0};
  read_events(c, &l, n);
  cr_assert_eq(l.n, n, "%s: %zu events, want %zu", who, l.n, n);
  for (size_t i = 0; i < n; i++) {
    size_t found = 0;
    for (size_t j = 0; j < l.n; j++)
      found += l.e[j].sub == w[i].sub && strcmp(l.e[j].name, w[i].name) == 0 && l.e[j].new_i == w[i].v;
    cr_assert_eq(found, 1, "%s: subscription %llu got %s = %lld %zu times, want once (first event: sub %llu %s)",
                 who, (unsigned long long)w[i].sub, w[i].name, (long long)w[i].v, found,
                 (unsigned long long)l.e[0].sub, l.e[0].name);
  }
  free(l.e);
  static uint32_t req = 100;
  send_req(c, RSTATE__WIRE_REVISION, ++req);
  expect(c, RSTATE__WIRE_REVISION_REPLY);
}

/* The server finds the subscriptions a change concerns through an index of
 * the names they watch (src/types/subindex.c): names shared by several
 * subscriptions, a name given twice, prefix and "*" patterns, a client
 * whose names never change, and an UNWATCH that leaves the name's other
 * watchers in place. */
Test(server, each_change_reaches_exactly_the_subscriptions_that_cover_it) {
  rstate_store *s = open_store();
  const char *names[] = {"a.x", "b.y", "a.z", "c", "d"};
  for (size_t i = 0; i < 5; i++) define_int(s, names[i], 0);
  rstate_server *srv = start(s, NULL);
  wc a, b, c, d;
  join(&a, srv, NULL);
  join(&b, srv, NULL);
  join(&c, srv, NULL);
  join(&d, srv, NULL);
  const char *ax[] = {"a.x"}, *by_ax[] = {"b.y", "a.x"}, *a_pre[] = {"a.*"}, *ax_twice[] = {"a.x", "a.x"},
             *all[] = {"*"}, *only_c[] = {"c"};
  watch(&a, 1, 1, 0, 0, ax, 1);
  watch(&a, 2, 2, 0, 0, by_ax, 2);
  watch(&b, 1, 3, 0, 0, a_pre, 1);
  watch(&b, 2, 4, 0, 0, ax_twice, 2);
  watch(&c, 1, 5, 0, 0, all, 1);
  watch(&d, 1, 6, 0, 0, only_c, 1);

  set_int(s, "a.x", 1);
  set_int(s, "b.y", 2);
  set_int(s, "a.z", 3);
  set_int(s, "d", 5);
  expect_exactly(&a, "client a", (want[]){{1, "a.x", 1}, {2, "a.x", 1}, {2, "b.y", 2}}, 3);
  expect_exactly(&b, "client b", (want[]){{3, "a.x", 1}, {3, "a.z", 3}, {4, "a.x", 1}}, 3);
  expect_exactly(&c, "client c", (want[]){{5, "a.x", 1}, {5, "b.y", 2}, {5, "a.z", 3}, {5, "d", 5}}, 4);

  /* a.x loses one watcher on each of a and b; the others keep it */
  rstate__wire_unwatch u = {3, 1};
  rstate__wire_put_unwatch(&a.out, &u);
  wc_flush(&a);
  expect(&a, RSTATE__WIRE_OK);
  u = (rstate__wire_unwatch){3, 4};
  rstate__wire_put_unwatch(&b.out, &u);
  wc_flush(&b);
  expect(&b, RSTATE__WIRE_OK);
  set_int(s, "a.x", 6);
  set_int(s, "c", 7);
  expect_exactly(&a, "client a after UNWATCH", (want[]){{2, "a.x", 6}}, 1);
  expect_exactly(&b, "client b after UNWATCH", (want[]){{3, "a.x", 6}}, 1);
  expect_exactly(&c, "client c, second round", (want[]){{5, "a.x", 6}, {5, "c", 7}}, 2);
  expect_exactly(&d, "client d", (want[]){{6, "c", 7}}, 1); /* and nothing of the others before it */
  wc_close(&a);
  wc_close(&b);
  wc_close(&c);
  wc_close(&d);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, set_many_of_two_is_one_event_frame) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  define_int(s, "b", 2);
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  const char *p[] = {"*"};
  rstate__wire_watch_reply r = watch(&c, 1, 1, 0, 0, p, 1);
  cr_assert_eq(r.n_initial, 0);
  rstate_assign two[] = {{"a", rstate_int(10)}, {"b", rstate_int(20)}};
  send_set(&c, 2, two, NULL, 2, NULL);
  evlog l = {0};
  bool replied = false;
  while (!replied || l.n < 2) {
    int t = wc_next(&c, WAIT_MS);
    if (t == RSTATE__WIRE_SET_MANY_REPLY) {
      replied = true;
    } else {
      cr_assert_eq(t, RSTATE__WIRE_EVENT, "got %d", t);
      evlog_add_frame(&l, &c.m.u.events);
    }
  }
  cr_assert_eq(l.n, 2);
  cr_assert_eq(l.frames, 1, "one EVENT frame for the batch");
  cr_assert_eq(l.e[0].revision, r.revision + 1);
  cr_assert_eq(l.e[1].revision, r.revision + 1);
  cr_assert_eq(l.e[0].flags, 0);
  free(l.e);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, resumed_replays_exactly_the_missed_changes) {
  rstate_store *s = open_store();
  define_int(s, "a", 0);
  define_int(s, "b", 0);
  rstate_server *srv = start(s, NULL);
  wc c;
  rstate__wire_welcome w1 = join(&c, srv, NULL);
  const char *p[] = {"a"};
  rstate__wire_watch_reply r = watch(&c, 1, 3, 0, 0, p, 1);
  set_int(s, "a", 1);
  evlog l = {0};
  read_events(&c, &l, 1);
  uint64_t last = l.e[0].revision;
  wc_close(&c);
  cr_assert_eq(last, r.revision + 1);
  /* while away: three changes of a, one of b */
  set_int(s, "a", 2);
  set_int(s, "b", 1);
  set_int(s, "a", 3);
  set_int(s, "a", 4);
  rstate__wire_welcome w2 = join(&c, srv, NULL);
  cr_assert_eq(w2.instance_id, w1.instance_id);
  r = watch(&c, 1, 3, RSTATE__WIRE_WATCH_INITIAL, last, p, 1);
  cr_assert_eq(r.status, RSTATE__WIRE_WATCH_RESUMED);
  cr_assert_eq(r.revision, last);
  cr_assert_eq(r.n_initial, 0);
  free(l.e);
  l = (evlog){0};
  read_events(&c, &l, 3);
  for (size_t i = 0; i < 3; i++) {
    cr_assert_eq(l.e[i].kind, RSTATE_EVENT_CHANGED);
    cr_assert_eq(l.e[i].new_i, (int64_t)i + 2);
    cr_assert_eq(l.e[i].old_i, (int64_t)i + 1);
    cr_assert_eq(l.e[i].version, i + 3);
  }
  cr_assert_eq(l.e[0].revision, last + 1);
  cr_assert_eq(l.e[2].revision, last + 4);
  set_int(s, "a", 5); /* then live, exactly once */
  read_events(&c, &l, 4);
  cr_assert_eq(l.e[3].new_i, 5);
  send_req(&c, RSTATE__WIRE_REVISION, 9);
  expect(&c, RSTATE__WIRE_REVISION_REPLY);
  /* a resume point in the future is a GAP */
  r = watch(&c, 10, 4, 0, rstate_revision(s) + 100, p, 1);
  cr_assert_eq(r.status, RSTATE__WIRE_WATCH_GAP);
  free(l.e);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, gap_when_the_history_no_longer_reaches) {
  rstate_store *s = open_store();
  define_int(s, "a", 0);
  define_int(s, "b", 0);
  rstate_server_opts o = {.history = 4};
  rstate_server *srv = start(s, &o);
  uint64_t first = rstate_revision(s);
  for (int i = 1; i <= 20; i++) set_int(s, "a", i);
  set_int(s, "b", 9);
  wc c;
  join(&c, srv, NULL);
  /* history_oldest says where a resume can start; wait for the history to settle */
  uint64_t oldest = 0;
  int64_t deadline = ms_now() + WAIT_MS;
  while ((oldest = stat_of(&c, "history_oldest")) <= first && ms_now() < deadline) {
  }
  cr_assert_gt(oldest, first, "history of 4 events still reaches back to revision %llu", (unsigned long long)first);
  cr_assert_geq(stat_of(&c, "history_events"), 4);
  const char *p[] = {"a", "b"};
  rstate__wire_watch_reply r = watch(&c, 1, 1, 0, first, p, 2);
  cr_assert_eq(r.status, RSTATE__WIRE_WATCH_GAP);
  cr_assert_eq(r.revision, rstate_revision(s));
  cr_assert_eq(r.n_initial, 2, "a GAP sends the current values, INCLUDE_INITIAL or not");
  evlog l = {0};
  read_events(&c, &l, 2);
  for (size_t i = 0; i < 2; i++) {
    cr_assert_eq(l.e[i].kind, RSTATE_EVENT_INITIAL);
    cr_assert_eq(l.e[i].new_i, !strcmp(l.e[i].name, "a") ? 20 : 9);
  }
  /* within the window: RESUMED */
  r = watch(&c, 2, 2, 0, oldest, p, 2);
  cr_assert_eq(r.status, RSTATE__WIRE_WATCH_RESUMED);
  free(l.e);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* The defaults the header gives: a heartbeat of 1000 ms, max_frame 1 MiB,
 * a history of 65536 events. */
Test(server, the_defaults_are_the_documented_ones) {
  rstate_store *s = open_store();
  define_int(s, "a", 0);
  rstate_server *srv = start(s, NULL);
  wc c;
  rstate__wire_welcome w = join(&c, srv, NULL);
  cr_assert_eq(w.heartbeat_ms, 1000);
  cr_assert_eq(w.max_frame, 1u << 20);
  for (int i = 1; i <= 65536 + 100; i++) set_int(s, "a", i);
  uint64_t kept = 0;
  int64_t deadline = ms_now() + WAIT_MS;
  while ((kept = stat_of(&c, "history_events")) != 65536 && ms_now() < deadline) {
  }
  cr_assert_eq(kept, 65536, "the history keeps %llu events", (unsigned long long)kept);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

typedef struct batch_arg {
  rstate_store *s;
  rstate_assign *items;
  int vars, rounds;
} batch_arg;

static void *batch_setter(void *arg) {
  batch_arg *a = arg;
  for (int k = 1; k <= a->rounds; k++) {
    for (int i = 0; i < a->vars; i++) a->items[i].value = rstate_int(k);
    if (rstate_set_many(a->s, a->items, (size_t)a->vars, NULL, NULL) != RSTATE_OK) abort();
  }
  return NULL;
}

Test(server, a_long_stream_arrives_whole_and_in_order) {
  rstate_store *s = open_store();
  enum { VARS = 64, ROUNDS = 1000 };
  char names[VARS][8];
  rstate_assign items[VARS];
  for (int i = 0; i < VARS; i++) {
    snprintf(names[i], sizeof names[i], "s%02d", i);
    define_int(s, names[i], 0);
    items[i].name = names[i];
  }
  /* TCP buffers grow large, so whole writes; no heartbeat tick to wake the loop */
  rstate_server_opts o = {.max_queue_bytes = 64u << 20, .heartbeat_ms = 60000};
  rstate_server *srv = start_at(s, "tcp:127.0.0.1:0", &o);
  wc c;
  join(&c, srv, NULL);
  const char *p[] = {"s*"};
  rstate__wire_watch_reply r = watch(&c, 1, 1, 0, 0, p, 1);
  /* far more than the server encodes ahead of the socket (256 KiB), and
   * already waiting when the client starts reading: streamed in many rounds
   * once no change wakes the server any more, never coalesced */
  batch_arg a = {s, items, VARS, ROUNDS};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, batch_setter, &a), 0);
  pthread_join(t, NULL);
  uint64_t rev = r.revision;
  size_t got = 0;
  while (got < (size_t)VARS * ROUNDS) {
    expect(&c, RSTATE__WIRE_EVENT);
    const rstate__wire_events *m = &c.m.u.events;
    cr_assert_eq(m->revision, rev + 1, "revision %llu after %llu", (unsigned long long)m->revision,
                 (unsigned long long)rev);
    cr_assert_eq(m->n, VARS, "one frame per batch");
    for (size_t i = 0; i < m->n; i++) {
      cr_assert_eq(m->events[i].coalesced, 1);
      cr_assert_eq(m->events[i].new_value.u.i, (int64_t)(m->revision - r.revision));
    }
    rev = m->revision;
    got += m->n;
  }
  cr_assert_eq(stat_of(&c, "events_coalesced"), 0);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, a_write_answer_follows_its_events_even_when_behind) {
  rstate_store *s = open_store();
  enum { VARS = 50, ROUNDS = 400 };
  char names[VARS][8];
  rstate_assign items[VARS];
  for (int i = 0; i < VARS; i++) {
    snprintf(names[i], sizeof names[i], "w%02d", i);
    define_int(s, names[i], 0);
    items[i].name = names[i];
  }
  define_int(s, "mine", 0);
  rstate_server_opts o = {.heartbeat_ms = 30000};
  rstate_server *srv = start(s, &o);
  wc c;
  join(&c, srv, NULL);
  const char *p[] = {"*"};
  watch(&c, 1, 1, 0, 0, p, 1);
  /* about 1 MiB of events the client has not read: more than the server
   * encodes ahead (256 KiB), less than max_queue_bytes (4 MiB) */
  for (int k = 1; k <= ROUNDS; k++) {
    for (int i = 0; i < VARS; i++) items[i].value = rstate_int(k);
    ASSERT_RC(rstate_set_many(s, items, VARS, NULL, NULL), RSTATE_OK);
  }
  rstate_assign mine = {"mine", rstate_int(1)};
  send_set(&c, 7, &mine, NULL, 1, NULL);
  size_t events = 0;
  bool saw_mine = false;
  for (;;) {
    int t = wc_next(&c, WAIT_MS);
    if (t == RSTATE__WIRE_SET_MANY_REPLY) break;
    cr_assert_eq(t, RSTATE__WIRE_EVENT, "got %d", t);
    for (size_t i = 0; i < c.m.u.events.n; i++) saw_mine |= !strcmp(c.m.u.events.events[i].name, "mine");
    events += c.m.u.events.n;
  }
  cr_assert(saw_mine, "the answer to the write came before its event");
  cr_assert_eq(events, (size_t)VARS * ROUNDS + 1);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* ---- slow consumers ------------------------------------------------------------- */

typedef struct setter_arg {
  rstate_store *s;
  int n;
} setter_arg;

static void *setter(void *arg) {
  setter_arg *a = arg;
  char name[8];
  for (int i = 1; i <= a->n; i++) {
    snprintf(name, sizeof name, "v%d", i % 4);
    rstate_set_int(a->s, name, i);
  }
  return NULL;
}

/* A store of v0..v3 served with a 4 KiB queue bound and a history of 100. */
static rstate_server *start_for_slow_client(rstate_store **s) {
  *s = open_store();
  for (int i = 0; i < 4; i++) {
    char name[8];
    snprintf(name, sizeof name, "v%d", i);
    define_int(*s, name, 0);
  }
  rstate_server_opts o = {.max_queue_bytes = 4096, .heartbeat_ms = 30000, .history = 100};
  return start(*s, &o);
}

Test(server, slow_consumer_is_coalesced_and_nothing_is_lost) {
  rstate_store *s;
  rstate_server *srv = start_for_slow_client(&s);
  wc c, b;
  join(&c, srv, NULL);
  join(&b, srv, NULL);
  const char *p[] = {"v*"};
  rstate__wire_watch_reply r = watch(&c, 1, 1, 0, 0, p, 1);
  /* the client reads nothing while another thread sets, much more than any buffer holds */
  enum { N = 20000 };
  setter_arg a = {s, N};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, setter, &a), 0);
  pthread_join(t, NULL);
  /* memory stays bounded: the stalled subscription does not pin the history */
  int64_t deadline = ms_now() + WAIT_MS;
  while (stat_of(&b, "history_events") > 100)
    cr_assert_lt(ms_now(), deadline, "the history still holds %llu events for a client that reads nothing",
                 (unsigned long long)stat_of(&b, "history_events"));
  wc_close(&b);
  /* now read: the final value of each variable arrives, and every change is counted */
  int64_t final[4] = {0};
  uint64_t coalesced = 0, events = 0, last_rev = r.revision, merged_events = 0;
  int done = 0;
  bool in_group = false;
  while (done < 4) {
    expect(&c, RSTATE__WIRE_EVENT);
    const rstate__wire_events *m = &c.m.u.events;
    cr_assert_geq(m->revision, last_rev, "revisions never go back");
    last_rev = m->revision;
    for (size_t i = 0; i < m->n; i++) {
      const rstate__wire_event *e = &m->events[i];
      int k = e->name[1] - '0';
      cr_assert_eq(e->kind, RSTATE_EVENT_CHANGED);
      cr_assert_gt(e->new_value.u.i, final[k], "%s went from %lld back to %lld", e->name, (long long) final[k],
                   (long long)e->new_value.u.i);
      if (e->coalesced > 1) merged_events++;
      final[k] = e->new_value.u.i;
      coalesced += e->coalesced;
      events++;
      if (final[k] > N - 4) done++;
    }
    in_group = m->flags & RSTATE__WIRE_MORE;
  }
  cr_assert_not(in_group, "the last frame ends its group");
  cr_assert_eq(coalesced, N, "sum of coalesced %llu, want %d", (unsigned long long)coalesced, N);
  cr_assert_gt(merged_events, 0, "a client that read nothing for %d changes was not coalesced", N);
  cr_assert_lt(events, N);
  cr_assert_eq(stat_of(&c, "events_coalesced"), N - events);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* The merging rules themselves (history.c), on entries built by hand. */
static rstate__hentry *entry(uint64_t rev, rstate_event_kind kind, const char *name, int64_t old, int64_t now,
                             const char *source) {
  rstate_value o = rstate_int(old), n = rstate_int(now);
  rstate_change ch = {.kind = kind,
                      .name = name,
                      .type = RSTATE_TYPE_INTEGER,
                      .old_value = kind == RSTATE_EVENT_DEFINED ? NULL : &o,
                      .new_value = kind == RSTATE_EVENT_DELETED ? NULL : &n,
                      .version = (uint64_t)now,
                      .revision = rev,
                      .source = source};
  rstate__hentry *e = rstate__hentry_new(&ch, 1);
  cr_assert_not_null(e);
  return e;
}

/* The same with the variables split over two subscriptions of one client:
 * when its output is full the server stops filling before it reaches the
 * second, which must keep its place (src/server/stream.c, fill) and in the end
 * have every change of its variables, counted. */
Test(server, a_slow_client_loses_nothing_on_any_of_its_subscriptions) {
  rstate_store *s;
  rstate_server *srv = start_for_slow_client(&s);
  wc c;
  join(&c, srv, NULL);
  const char *first[] = {"v0", "v1"}, *second[] = {"v2", "v3"};
  watch(&c, 1, 1, 0, 0, first, 2);
  watch(&c, 2, 2, 0, 0, second, 2);
  enum { N = 20000 };
  setter_arg a = {s, N};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, setter, &a), 0);
  pthread_join(t, NULL);
  int64_t final[4] = {0};
  uint64_t coalesced[3] = {0};
  int done = 0;
  while (done < 4) {
    expect(&c, RSTATE__WIRE_EVENT);
    const rstate__wire_events *m = &c.m.u.events;
    for (size_t i = 0; i < m->n; i++) {
      const rstate__wire_event *e = &m->events[i];
      int k = e->name[1] - '0';
      cr_assert_eq(m->sub, k < 2 ? 1u : 2u, "%s came on subscription %llu", e->name, (unsigned long long)m->sub);
      cr_assert_gt(e->new_value.u.i, final[k], "%s went from %lld back to %lld", e->name, (long long) final[k],
                   (long long)e->new_value.u.i);
      final[k] = e->new_value.u.i;
      coalesced[m->sub] += e->coalesced;
      if (final[k] > N - 4) done++;
    }
  }
  cr_assert_eq(coalesced[1], N / 2, "subscription 1 accounts for %llu changes, want %d",
               (unsigned long long)coalesced[1], N / 2);
  cr_assert_eq(coalesced[2], N / 2, "subscription 2 accounts for %llu changes, want %d",
               (unsigned long long)coalesced[2], N / 2);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, coalescing_merges_only_consecutive_changes_of_a_variable) {
  rstate__coalesced c;
  rstate__coalesced_init(&c);
  rstate__hentry *e[] = {
      entry(1, RSTATE_EVENT_CHANGED, "a", 1, 2, "x"),   entry(2, RSTATE_EVENT_CHANGED, "b", 0, 1, NULL),
      entry(3, RSTATE_EVENT_CHANGED, "a", 2, 3, "y"),   entry(4, RSTATE_EVENT_DELETED, "a", 3, 0, NULL),
      entry(5, RSTATE_EVENT_DEFINED, "a", 0, 9, NULL),  entry(6, RSTATE_EVENT_CHANGED, "a", 9, 10, NULL),
      entry(7, RSTATE_EVENT_CHANGED, "a", 10, 11, "z"),
  };
  size_t merged_total = 0;
  for (size_t i = 0; i < 7; i++) {
    uint32_t idx = 0;
    size_t merged = 0;
    cr_assert(rstate__coalesced_add(&c, e[i], &idx, 1, &merged));
    merged_total += merged;
    rstate__hentry_unref(e[i]); /* the list holds what it needs */
  }
  cr_assert_eq(merged_total, 2);
  cr_assert_eq(c.live, 5);
  /* live events in revision order: b@2, a@3 (1 -> 3, x2), DELETED a@4, DEFINED a@5, a@7 (9 -> 11, x2) */
  uint64_t want_rev[] = {2, 3, 4, 5, 7};
  int64_t want_old[] = {0, 1, 3, 0, 9}, want_new[] = {1, 3, 0, 9, 11};
  uint32_t want_coal[] = {1, 2, 1, 1, 2};
  size_t k = 0;
  for (size_t i = 0; i < c.n; i++) {
    if (c.ev[i].dead) continue;
    const rstate__hchange *last = &c.ev[i].e->changes[c.ev[i].idx];
    const rstate__hchange *first = &c.ev[i].first->changes[c.ev[i].first_idx];
    cr_assert_lt(k, 5);
    cr_assert_eq(c.ev[i].e->revision, want_rev[k], "event %zu at revision %llu", k,
                 (unsigned long long)c.ev[i].e->revision);
    cr_assert_eq(c.ev[i].coalesced, want_coal[k]);
    if (first->old_value.kind == RSTATE_INT) cr_assert_eq(first->old_value.u.i, want_old[k]);
    if (last->new_value.kind == RSTATE_INT) cr_assert_eq(last->new_value.u.i, want_new[k]);
    k++;
  }
  cr_assert_eq(k, 5);
  /* the merged event takes source from its last change */
  cr_assert_not_null(c.ev[c.n - 1].e->source);
  cr_assert_str_eq(c.ev[c.n - 1].e->source, "z");
  rstate__coalesced_free(&c); /* frees every entry: valgrind checks */
}

/* Several setters, several watching clients, one client coming and going:
 * each client sees each variable's versions in order, every change counted. */
typedef struct churn_arg {
  rstate_store *s;
  int id, n;
} churn_arg;

static void *churn_setter(void *arg) {
  churn_arg *a = arg;
  char name[8];
  for (int i = 1; i <= a->n; i++) {
    snprintf(name, sizeof name, "c%d", (i + a->id) % 8);
    if (rstate_set_int(a->s, name, i * 10 + a->id) != RSTATE_OK) abort();
  }
  return NULL;
}

Test(server, concurrent_setters_and_clients) {
  rstate_store *s = open_store();
  char name[8];
  for (int i = 0; i < 8; i++) {
    snprintf(name, sizeof name, "c%d", i);
    define_int(s, name, 0);
  }
  rstate_server_opts o = {.max_queue_bytes = 8192}; /* some coalescing too */
  rstate_server *srv = start(s, &o);
  enum { CLIENTS = 3, SETTERS = 2, SETS = 2000 };
  wc c[CLIENTS];
  const char *p[] = {"c*"};
  uint64_t version[CLIENTS][8] = {{0}}, counted[CLIENTS] = {0};
  for (int k = 0; k < CLIENTS; k++) {
    join(&c[k], srv, NULL);
    watch(&c[k], 1, 1, RSTATE__WIRE_WATCH_INITIAL, 0, p, 1);
  }
  pthread_t t[SETTERS];
  churn_arg a[SETTERS];
  for (int i = 0; i < SETTERS; i++) {
    a[i] = (churn_arg){s, i, SETS};
    cr_assert_eq(pthread_create(&t[i], NULL, churn_setter, &a[i]), 0);
  }
  int done = 0, round = 0;
  int64_t deadline = ms_now() + 4 * WAIT_MS;
  while (done < CLIENTS) {
    cr_assert_lt(ms_now(), deadline, "clients did not see every change");
    if (round++ % 16 == 0) { /* a client that comes, watches and goes */
      wc x;
      join(&x, srv, NULL);
      send_watch(&x, 1, 1, RSTATE__WIRE_WATCH_INITIAL, 0, p, 1);
      wc_close(&x);
    }
    done = 0;
    for (int k = 0; k < CLIENTS; k++) {
      if (counted[k] == (uint64_t)SETTERS * SETS) {
        done++;
        continue;
      }
      int ty = wc_next(&c[k], 2);
      if (ty == 0) continue;
      cr_assert_eq(ty, RSTATE__WIRE_EVENT, "client %d got %d", k, ty);
      const rstate__wire_events *m = &c[k].m.u.events;
      for (size_t i = 0; i < m->n; i++) {
        const rstate__wire_event *e = &m->events[i];
        int v = e->name[1] - '0';
        if (e->kind == RSTATE_EVENT_INITIAL) {
          version[k][v] = e->version;
          continue;
        }
        cr_assert_eq(e->version - version[k][v], e->coalesced,
                     "client %d: %s went from version %llu to %llu, counted %u", k, e->name,
                     (unsigned long long)version[k][v], (unsigned long long)e->version, e->coalesced);
        version[k][v] = e->version;
        counted[k] += e->coalesced;
      }
    }
  }
  for (int i = 0; i < SETTERS; i++) pthread_join(t[i], NULL);
  for (int k = 0; k < CLIENTS; k++) {
    for (int v = 0; v < 8; v++) {
      snprintf(name, sizeof name, "c%d", v);
      rstate_var_info info;
      ASSERT_RC(rstate_info(s, name, &info), RSTATE_OK);
      cr_assert_eq(version[k][v], info.version, "client %d saw %s at version %llu, not %llu", k, name,
                   (unsigned long long)version[k][v], (unsigned long long)info.version);
    }
    wc_close(&c[k]);
  }
  rstate_server_stop(srv);
  rstate_close(s);
}

/* ---- heartbeats ---------------------------------------------------------------- */

Test(server, silent_client_is_closed_after_three_intervals) {
  rstate_store *s = open_store();
  rstate_server_opts o = {.heartbeat_ms = 100}; /* 300 ms of silence: room for a loaded machine */
  rstate_server *srv = start(s, &o);
  wc quiet, live;
  join(&live, srv, NULL);
  join(&quiet, srv, NULL);
  quiet.auto_pong = false;
  int64_t t0 = ms_now(), took = 0;
  int t = 0;
  /* live answers its PINGs meanwhile; quiet reads but never answers */
  while (t == 0) {
    cr_assert_lt(ms_now() - t0, WAIT_MS, "the silent client was never closed");
    cr_assert_eq(wc_next(&live, 5), 0, "the client that answers was disturbed");
    t = wc_next(&quiet, 5);
    took = ms_now() - t0;
  }
  cr_assert_eq(t, RSTATE__WIRE_ERROR, "got %d", t);
  cr_assert_eq(quiet.m.u.error.code, RSTATE_ETIMEDOUT);
  cr_assert_eq(quiet.m.u.error.req, 0);
  cr_assert_geq(quiet.pings, 2, "the server pinged every interval");
  cr_assert_geq(took, 200, "closed after %lld ms: too early", (long long)took);
  cr_assert_lt(took, 3000, "closed after %lld ms", (long long)took);
  cr_assert_eq(wc_next(&quiet, WAIT_MS), -1);
  /* the client that answered its PINGs is still served */
  wc mute; /* and one that never even says HELLO is closed too */
  cr_assert_eq(wc_connect(&mute, rstate_server_uri(srv)), 0);
  t = 0;
  t0 = ms_now();
  while (t == 0) {
    cr_assert_lt(ms_now() - t0, WAIT_MS, "a client that never said HELLO was never closed");
    cr_assert_eq(wc_next(&live, 5), 0);
    t = wc_next(&mute, 5);
  }
  cr_assert_eq(t, RSTATE__WIRE_ERROR);
  cr_assert_eq(mute.m.u.error.code, RSTATE_ETIMEDOUT);
  wc_close(&mute);
  send_req(&live, RSTATE__WIRE_REVISION, 1);
  expect(&live, RSTATE__WIRE_REVISION_REPLY);
  cr_assert_gt(live.pings, 0);
  wc_close(&quiet);
  wc_close(&live);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* on_client for the test below: when a client goes, note when and set
 * "gone" on the served store (from the server thread). */
typedef struct gone_setter {
  rstate_store *s;
  _Atomic int64_t at_ms;
} gone_setter;

static void set_when_gone(rstate_server *srv, const char *peer, bool connected, const char *why, void *ud) {
  (void)srv, (void)peer, (void)why;
  gone_setter *g = ud;
  if (connected) return;
  atomic_store(&g->at_ms, ms_now());
  rstate_set_int(g->s, "gone", 1);
}

/* A change made on the server thread after its loop took the turn's changes
 * (here by on_client, when the heartbeat tick closes a silent client) goes
 * out in the next turn, at once: not a tick later, when the timer next
 * wakes the loop. The tick is 200 ms, and the change is made at a tick: the
 * event must come within three quarters of one (room for valgrind on a busy
 * machine; the next tick would be 200 ms). */
Test(server, a_change_made_by_on_client_at_a_tick_goes_out_at_once) {
  rstate_store *s = open_store();
  define_int(s, "gone", 0);
  gone_setter g = {s, 0};
  rstate_server_opts o = {.heartbeat_ms = 800, .on_client = set_when_gone, .client_userdata = &g};
  rstate_server *srv = start(s, &o);
  wc w, quiet;
  join(&w, srv, NULL);
  const char *p[] = {"gone"};
  watch(&w, 1, 1, 0, 0, p, 1);
  join(&quiet, srv, NULL); /* never answers a PING: closed at a tick after 2.4 s */
  evlog l = {0};
  read_events(&w, &l, 1); /* answers its own PINGs meanwhile */
  int64_t late = ms_now() - atomic_load(&g.at_ms);
  cr_assert_str_eq(l.e[0].name, "gone");
  cr_assert_eq(l.e[0].new_i, 1);
  cr_assert_lt(late, 150, "the change made by on_client went out %lld ms after it was made: at the next tick",
               (long long)late);
  free(l.e);
  wc_close(&quiet);
  wc_close(&w);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, ping_gets_pong) {
  rstate_store *s = open_store();
  rstate_server *srv = start(s, NULL);
  wc c;
  join(&c, srv, NULL);
  rstate__wire_put_ping(&c.out, RSTATE__WIRE_PING, 0xfeedULL);
  wc_flush(&c);
  /* wc_next skips PONG: read it raw */
  rstate__wire_frame f;
  int64_t deadline = ms_now() + WAIT_MS;
  for (;;) {
    int rc = rstate__wire_reader_next(&c.rd, &f);
    cr_assert_geq(rc, 0);
    if (rc == 1 && f.type == RSTATE__WIRE_PONG) break;
    cr_assert_lt(ms_now(), deadline, "no PONG");
    uint8_t buf[256];
    ssize_t r = recv(c.fd, buf, sizeof buf, 0);
    cr_assert_gt(r, 0);
    rstate__wire_reader_feed(&c.rd, buf, (size_t)r);
  }
  rstate__wire_ping pong;
  cr_assert_eq(rstate__wire_decode_ping(f.type, f.body, f.len, &pong), RSTATE_OK);
  cr_assert_eq(pong.payload, 0xfeedULL);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* ---- limits and bad input ---------------------------------------------------------- */

Test(server, max_clients_refuses_the_extra_one) {
  rstate_store *s = open_store();
  rstate_server_opts o = {.max_clients = 1};
  rstate_server *srv = start(s, &o);
  wc a, b;
  join(&a, srv, NULL);
  cr_assert_eq(wc_connect(&b, rstate_server_uri(srv)), 0);
  expect_closed_with(&b, RSTATE_ELIMIT);
  wc_close(&b);
  send_req(&a, RSTATE__WIRE_REVISION, 1);
  expect(&a, RSTATE__WIRE_REVISION_REPLY);
  wc_close(&a);
  /* the place is free again once the first one left */
  int64_t deadline = ms_now() + WAIT_MS;
  for (;;) {
    cr_assert_eq(wc_connect(&b, rstate_server_uri(srv)), 0);
    int rc = wc_hello(&b, NULL, 0, NULL);
    wc_close(&b);
    if (rc == 0) break;
    cr_assert_eq(rc, RSTATE_ELIMIT);
    cr_assert_lt(ms_now(), deadline, "the server never noticed the first client left");
  }
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, oversized_frame_is_elimit_and_others_go_on) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  rstate_server_opts o = {.max_frame = 4096};
  rstate_server *srv = start(s, &o);
  wc bad, good;
  join(&good, srv, NULL);
  join(&bad, srv, NULL);
  uint8_t hdr[5] = {0x89, 0x13, 0, 0, RSTATE__WIRE_GET}; /* length 5001 */
  cr_assert_eq(wc_send_raw(&bad, hdr, sizeof hdr), 0);
  expect_closed_with(&bad, RSTATE_ELIMIT);
  send_name(&good, RSTATE__WIRE_GET, 1, "a");
  expect(&good, RSTATE__WIRE_GET_REPLY);
  wc_close(&bad);
  wc_close(&good);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, garbage_is_eproto_and_closes_that_client_only) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  rstate_server *srv = start(s, NULL);
  wc good, c;
  join(&good, srv, NULL);
  /* an unknown frame type */
  join(&c, srv, NULL);
  uint8_t unknown[] = {1, 0, 0, 0, 0xEE};
  wc_send_raw(&c, unknown, sizeof unknown);
  expect_closed_with(&c, RSTATE_EPROTO);
  wc_close(&c);
  /* a frame the server sends, not takes */
  join(&c, srv, NULL);
  rstate__wire_put_req(&c.out, RSTATE__WIRE_OK, 1);
  wc_flush(&c);
  expect_closed_with(&c, RSTATE_EPROTO);
  wc_close(&c);
  /* length 0 */
  join(&c, srv, NULL);
  uint8_t zero[] = {0, 0, 0, 0};
  wc_send_raw(&c, zero, sizeof zero);
  expect_closed_with(&c, RSTATE_EPROTO);
  wc_close(&c);
  /* a malformed body: GET with trailing bytes */
  join(&c, srv, NULL);
  uint8_t trailing[] = {11, 0, 0, 0, RSTATE__WIRE_GET, 1, 0, 0, 0, 1, 0, 0, 0, 'a', 'x'};
  wc_send_raw(&c, trailing, sizeof trailing);
  expect_closed_with(&c, RSTATE_EPROTO);
  wc_close(&c);
  /* a request before HELLO */
  cr_assert_eq(wc_connect(&c, rstate_server_uri(srv)), 0);
  send_req(&c, RSTATE__WIRE_REVISION, 1);
  expect_closed_with(&c, RSTATE_EPROTO);
  wc_close(&c);
  /* not our protocol at all: closed without an answer */
  cr_assert_eq(wc_connect(&c, rstate_server_uri(srv)), 0);
  const char http[] = "\x14\x00\x00\x00\x01GET / HTTP/1.1\r\n\r\n.";
  wc_send_raw(&c, http, sizeof http - 1);
  cr_assert_eq(wc_next(&c, WAIT_MS), -1);
  wc_close(&c);
  /* HELLO with version 0 */
  cr_assert_eq(wc_connect(&c, rstate_server_uri(srv)), 0);
  rstate__wire_hello h = {1, 0, "", 0};
  rstate__wire_put_hello(&c.out, &h);
  c.out.data[4 + 1 + 6] = 0; /* version 1 -> 0 */
  wc_flush(&c);
  expect_closed_with(&c, RSTATE_EPROTO);
  wc_close(&c);
  /* random bytes after the handshake */
  join(&c, srv, NULL);
  uint8_t junk[256];
  srand(7);
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rand();
  junk[0] = 40; /* a plausible length */
  junk[1] = junk[2] = junk[3] = 0;
  wc_send_raw(&c, junk, sizeof junk);
  expect_closed_with(&c, RSTATE_EPROTO);
  wc_close(&c);
  /* the first client never noticed */
  send_name(&good, RSTATE__WIRE_GET, 1, "a");
  expect(&good, RSTATE__WIRE_GET_REPLY);
  wc_close(&good);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, disconnect_removes_its_subscriptions) {
  rstate_store *s = open_store();
  define_int(s, "a", 1);
  rstate_server *srv = start(s, NULL);
  wc a, b;
  join(&a, srv, NULL);
  join(&b, srv, NULL);
  const char *p[] = {"a"}, *all[] = {"*"};
  watch(&a, 1, 1, RSTATE__WIRE_WATCH_INITIAL, 0, p, 1);
  expect(&a, RSTATE__WIRE_EVENT);
  watch(&a, 2, 2, 0, 0, all, 1);
  cr_assert_eq(stat_of(&b, "subscriptions"), 2);
  cr_assert_eq(stat_of(&b, "clients"), 2);
  wc_close(&a);
  int64_t deadline = ms_now() + WAIT_MS;
  while (stat_of(&b, "subscriptions") != 0) cr_assert_lt(ms_now(), deadline, "subscriptions outlived their client");
  cr_assert_eq(stat_of(&b, "clients"), 1);
  set_int(s, "a", 2); /* nothing left to send it to */
  send_req(&b, RSTATE__WIRE_REVISION, 3);
  expect(&b, RSTATE__WIRE_REVISION_REPLY);
  wc_close(&b);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server, initial_events_split_to_max_frame) {
  rstate_store *s = open_store();
  char name[32];
  for (int i = 0; i < 200; i++) {
    snprintf(name, sizeof name, "big.%03d", i);
    define_int(s, name, i);
  }
  rstate_server_opts o = {.max_frame = 4096};
  rstate_server *srv = start(s, &o);
  wc c;
  join(&c, srv, NULL);
  const char *p[] = {"big.*"};
  rstate__wire_watch_reply r = watch(&c, 1, 1, RSTATE__WIRE_WATCH_INITIAL, 0, p, 1);
  cr_assert_eq(r.n_initial, 200);
  evlog l = {0};
  read_events(&c, &l, 200);
  cr_assert_gt(l.frames, 1);
  for (size_t i = 0; i < l.n; i++) {
    bool last_frame = l.e[i].frame == l.frames - 1;
    cr_assert_eq(l.e[i].flags, last_frame ? 0 : RSTATE__WIRE_MORE, "MORE on every frame but the last");
    cr_assert_eq(l.e[i].revision, r.revision);
  }
  free(l.e);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}
