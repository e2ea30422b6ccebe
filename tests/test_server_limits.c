/*
 * test_server_limits.c — what a server's configuration bounds, whatever its
 * clients send or fail to send (src/server/): the bytes its history holds,
 * connections still in the handshake (their own bound and deadline, never
 * counted against max_clients), the answers a client that does not read may
 * make it queue, the heartbeat floor and the tick that follows the clients
 * connected now, and the lines on_log gets when a limit bites. Seen from
 * the wire, with a raw protocol client (wireclient.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "wireclient.h"

TestSuite(server_limits, .timeout = 60);

#define WAIT_MS 5000

static int64_t ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- the lines on_log gets ---------------------------------------------------- */

typedef struct loglines {
  pthread_mutex_t mu;
  char lines[64][512];
  size_t n;
} loglines;

static loglines logged = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};

static void on_log(rstate_server *srv, const char *line, void *ud) {
  (void)srv;
  loglines *l = ud;
  pthread_mutex_lock(&l->mu);
  if (l->n < 64) snprintf(l->lines[l->n++], sizeof l->lines[0], "%s", line);
  pthread_mutex_unlock(&l->mu);
}

/* Waits for a logged line holding every one of the fragments. */
static void expect_logged(const char *a, const char *b) {
  int64_t deadline = ms_now() + WAIT_MS;
  for (;;) {
    pthread_mutex_lock(&logged.mu);
    for (size_t i = 0; i < logged.n; i++)
      if (strstr(logged.lines[i], a) && (!b || strstr(logged.lines[i], b))) {
        pthread_mutex_unlock(&logged.mu);
        return;
      }
    size_t n = logged.n;
    pthread_mutex_unlock(&logged.mu);
    if (ms_now() > deadline) {
      for (size_t i = 0; i < n; i++) fprintf(stderr, "logged: %s\n", logged.lines[i]);
      cr_assert_fail("no line logged with \"%s\"%s%s", a, b ? " and " : "", b ? b : "");
    }
    nap_ms(5);
  }
}

/* ---- a server and raw clients ---------------------------------------------------- */

static rstate_server *start(rstate_store *s, rstate_server_opts o) {
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-limits-%d.sock", (int)getpid());
  o.on_log = on_log;
  o.log_userdata = &logged;
  rstate_server *srv = NULL;
  int rc = rstate_server_start(&srv, s, uri, &o);
  cr_assert_eq(rc, RSTATE_OK, "rstate_server_start: %s: %s", rstate_error_name(rc), rstate_last_error());
  return srv;
}

static void connect_to(wc *c, rstate_server *srv) {
  int rc = wc_connect(c, rstate_server_uri(srv));
  cr_assert_eq(rc, 0, "connect to %s: %s", rstate_server_uri(srv), strerror(-rc));
}

static void join(wc *c, rstate_server *srv, const char *token) {
  connect_to(c, srv);
  rstate__wire_welcome w;
  int rc = wc_hello(c, token, 0, &w);
  cr_assert_eq(rc, 0, "handshake: got %s", rstate_error_name(rc));
}

static void expect(wc *c, int type) {
  int t = wc_next(c, WAIT_MS);
  if (t == RSTATE__WIRE_ERROR && type != RSTATE__WIRE_ERROR)
    cr_assert_fail("expected %s, got ERROR %s \"%s\"", rstate__wire_type_name((uint8_t)type),
                   rstate_error_name(c->m.u.error.code), c->m.u.error.sentence);
  cr_assert_eq(t, type, "expected %s, got %d", rstate__wire_type_name((uint8_t)type), t);
}

/* ERROR with request id 0 and this code, then the server closes. */
static void expect_closed_with(wc *c, int code, const char *sentence) {
  expect(c, RSTATE__WIRE_ERROR);
  cr_assert_eq(c->m.u.error.req, 0u);
  cr_assert_eq(c->m.u.error.code, code, "ERROR %s (\"%s\"), want %s", rstate_error_name(c->m.u.error.code),
               c->m.u.error.sentence, rstate_error_name(code));
  if (sentence) cr_assert_str_eq(c->m.u.error.sentence, sentence);
  cr_assert_eq(wc_next(c, WAIT_MS), -1, "the server should close after ERROR 0");
}

static uint64_t stat_of(wc *c, const char *key) {
  cr_assert_eq(rstate__wire_put_req(&c->out, RSTATE__WIRE_STATS, 900), RSTATE_OK);
  cr_assert_eq(wc_flush(c), 0);
  expect(c, RSTATE__WIRE_STATS_REPLY);
  for (size_t i = 0; i < c->m.u.stats.n; i++)
    if (!strcmp(c->m.u.stats.stats[i].key, key)) return c->m.u.stats.stats[i].value;
  cr_assert_fail("STATS has no key %s", key);
  return 0;
}

/* A HELLO cut short: the frame header and part of its body, so the
 * connection stays in the handshake however many of these bytes it sends. */
static void drip(wc *c, size_t byte) {
  static const uint8_t hello_start[] = {0x40, 0x00, 0x00, 0x00, RSTATE__WIRE_HELLO, 'R', 'S', 'T', 'A', 'T', 'E'};
  cr_assert_lt(byte, sizeof hello_start);
  cr_assert_eq(wc_send_raw(c, &hello_start[byte], 1), 0);
}

/* ---- 1. history: a bound in bytes --------------------------------------------------- */

Test(server_limits, history_stays_within_history_bytes_and_a_client_behind_it_gets_a_snapshot) {
  rstate_store *s = h_open();
  h_define_ok(s, "big", RSTATE_TYPE_STRING, rstate_string(""), NULL);
  uint64_t start_rev = rstate_revision(s);
  const size_t bound = 1u << 20, size = 48u << 10;
  rstate_server *srv = start(s, (rstate_server_opts){.history_bytes = bound});
  wc c;
  join(&c, srv, NULL);
  char *v = malloc(size + 1);
  cr_assert_not_null(v);
  /* 100 changes of ~96 KiB each (the old value and the new): ~9.4 MiB */
  for (int i = 0; i < 100; i++) {
    memset(v, 'a' + i % 26, size);
    v[size] = '\0';
    ASSERT_RC(rstate_set_string(s, "big", v), RSTATE_OK);
  }
  free(v);
  uint64_t rev = rstate_revision(s);
  /* the server has taken every change in once STATS sees the last */
  (void)rev;
  int64_t deadline = ms_now() + WAIT_MS;
  while (stat_of(&c, "history_forgotten") < 85)
    cr_assert_lt(ms_now(), deadline, "the server never forgot the oldest changes");
  uint64_t held = stat_of(&c, "history_bytes");
  cr_assert_leq(held, bound, "the history holds %llu bytes, over the bound %zu", (unsigned long long)held, bound);
  cr_assert_gt(held, bound - 2 * (size + 1024), "it keeps what fits: %llu bytes", (unsigned long long)held);
  cr_assert_gt(stat_of(&c, "history_oldest"), start_rev + 80);
  expect_logged("history: forgot", "history_bytes (1048576)");
  /* resuming from before what is kept: a snapshot (GAP), as when the count runs out */
  const char *pat[] = {"big"};
  rstate__wire_watch m = {7, 1, 0, start_rev, pat, 1};
  cr_assert_eq(rstate__wire_put_watch(&c.out, &m), RSTATE_OK);
  cr_assert_eq(wc_flush(&c), 0);
  expect(&c, RSTATE__WIRE_WATCH_REPLY);
  cr_assert_eq(c.m.u.watch_reply.status, RSTATE__WIRE_WATCH_GAP);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server_limits, history_bytes_keeps_the_newest_change_however_large) {
  rstate_store *s = h_open();
  h_define_ok(s, "big", RSTATE_TYPE_STRING, rstate_string(""), NULL);
  rstate_server *srv = start(s, (rstate_server_opts){.history_bytes = 1024});
  wc c;
  join(&c, srv, NULL);
  char v[4096];
  memset(v, 'x', sizeof v - 1);
  v[sizeof v - 1] = '\0';
  ASSERT_RC(rstate_set_string(s, "big", v), RSTATE_OK);
  uint64_t rev = rstate_revision(s);
  int64_t deadline = ms_now() + WAIT_MS;
  while (stat_of(&c, "revision") < rev || stat_of(&c, "history_events") < 1)
    cr_assert_lt(ms_now(), deadline, "the server never took the change in");
  /* one entry over the bound stays: a client one revision behind resumes */
  const char *pat[] = {"big"};
  rstate__wire_watch m = {7, 1, 0, rev - 1, pat, 1};
  cr_assert_eq(rstate__wire_put_watch(&c.out, &m), RSTATE_OK);
  cr_assert_eq(wc_flush(&c), 0);
  expect(&c, RSTATE__WIRE_WATCH_REPLY);
  cr_assert_eq(c.m.u.watch_reply.status, RSTATE__WIRE_WATCH_RESUMED);
  expect(&c, RSTATE__WIRE_EVENT);
  cr_assert_eq(c.m.u.events.revision, rev);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* ---- 2. the handshake ----------------------------------------------------------------- */

/* The numbers at small scale: 8 connections dripping a HELLO on a
 * token-protected server with max_clients 10 used to leave room for 2. */
Test(server_limits, connections_in_the_handshake_do_not_lock_clients_out) {
  rstate_store *s = h_open();
  rstate_server *srv = start(s, (rstate_server_opts){.token = "s3cret", .max_clients = 10});
  wc drippers[8], ok[11];
  for (int i = 0; i < 8; i++) {
    connect_to(&drippers[i], srv);
    drip(&drippers[i], 0);
  }
  for (int i = 0; i < 10; i++) join(&ok[i], srv, "s3cret");
  for (int i = 0; i < 8; i++) drip(&drippers[i], 1);
  /* the eleventh client past the handshake is one too many */
  connect_to(&ok[10], srv);
  expect_closed_with(&ok[10], RSTATE_ELIMIT, "the server has reached its limit of 10 clients");
  expect_logged("refused pid", "limit of 10 clients");
  cr_assert_eq(stat_of(&ok[0], "clients"), 10u);
  cr_assert_eq(stat_of(&ok[0], "handshakes"), 8u);
  for (int i = 0; i < 11; i++) wc_close(&ok[i]);
  for (int i = 0; i < 8; i++) wc_close(&drippers[i]);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server_limits, bytes_received_do_not_extend_the_handshake_deadline) {
  rstate_store *s = h_open();
  rstate_server *srv = start(s, (rstate_server_opts){.handshake_ms = 400, .heartbeat_ms = 200});
  wc d;
  connect_to(&d, srv);
  int64_t t0 = ms_now();
  int t = 0;
  /* a byte every 50 ms, well within any heartbeat, for 3 s: the HELLO's
   * start, then bytes of its body (64 bytes long: never complete) */
  for (size_t i = 0; t == 0; i++) {
    cr_assert_lt(i, 60u, "the dripping connection was not closed while it dripped");
    if (i < 11)
      drip(&d, i);
    else
      cr_assert_eq(wc_send_raw(&d, "x", 1), 0);
    t = wc_next(&d, 50);
  }
  int64_t took = ms_now() - t0;
  cr_assert_eq(t, RSTATE__WIRE_ERROR, "got %d", t);
  cr_assert_eq(d.m.u.error.code, RSTATE_ETIMEDOUT);
  cr_assert_str_eq(d.m.u.error.sentence, "the handshake did not complete within 400 ms");
  cr_assert_geq(took, 350);
  cr_assert_lt(took, 2500, "closed after %lld ms, for a deadline of 400 ms", (long long)took);
  expect_logged("no handshake within 400 ms of connecting", "closed pid");
  wc_close(&d);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server_limits, a_new_connection_closes_the_oldest_handshake_when_the_slots_are_full) {
  rstate_store *s = h_open();
  rstate_server *srv = start(s, (rstate_server_opts){.max_handshakes = 4});
  wc d[4], c;
  for (int i = 0; i < 4; i++) {
    connect_to(&d[i], srv);
    drip(&d[i], 0);
    nap_ms(2); /* d[0] is the oldest */
  }
  nap_ms(300); /* past the 250 ms they are given before one can be pushed out */
  join(&c, srv, NULL);
  expect_closed_with(&d[0], RSTATE_ELIMIT,
                     "the server has 4 connections in the handshake, its limit, and this one waited longest");
  expect_logged("all 4 handshake slots were taken", "waited longest");
  cr_assert_eq(stat_of(&c, "handshakes"), 3u);
  for (int i = 1; i < 4; i++) cr_assert_eq(wc_next(&d[i], 10), 0, "connection %d was disturbed", i);
  for (int i = 0; i < 4; i++) wc_close(&d[i]);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* A burst of clients connecting together is not pushed out: the ones over
 * the slots wait to be accepted, then go through. */
Test(server_limits, a_burst_over_the_handshake_slots_waits_and_gets_in) {
  rstate_store *s = h_open();
  rstate_server *srv = start(s, (rstate_server_opts){.max_handshakes = 2});
  enum { N = 12 };
  wc c[N];
  for (int i = 0; i < N; i++) connect_to(&c[i], srv);
  for (int i = 0; i < N; i++) {
    rstate__wire_welcome w;
    int rc = wc_hello(&c[i], NULL, 0, &w);
    cr_assert_eq(rc, 0, "client %d: %s", i, rstate_error_name(rc));
  }
  cr_assert_eq(stat_of(&c[0], "clients"), (uint64_t)N);
  for (int i = 0; i < N; i++) wc_close(&c[i]);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server_limits, a_refused_token_is_logged_with_the_peer) {
  rstate_store *s = h_open();
  rstate_server *srv = start(s, (rstate_server_opts){.token = "s3cret"});
  wc c;
  connect_to(&c, srv);
  cr_assert_eq(wc_hello(&c, "guess", 0, NULL), RSTATE_EPERM);
  char who[64];
  snprintf(who, sizeof who, "refused pid %d uid %u", (int)getpid(), (unsigned)getuid());
  expect_logged(who, "its token matches neither token");
  wc_close(&c);
  join(&c, srv, "s3cret");
  cr_assert_eq(stat_of(&c, "tokens_refused"), 1u);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* Out of descriptors: the connection waits in the backlog, the server says
 * so, and accepts it once it can. */
Test(server_limits, a_connection_that_cannot_be_accepted_is_logged_and_taken_later) {
  /* valgrind checks descriptors against the limit itself: past it, it
   * closes what accept4 returned and fails the call, and the connection is
   * lost instead of waiting in the backlog */
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload")) { /* not cr_skip_test: under valgrind it leaks Criterion's own state */
    cr_log_info("not run under valgrind: accept4 past the limit loses the connection there");
    return;
  }
  rstate_store *s = h_open();
  rstate_server *srv = start(s, (rstate_server_opts){.heartbeat_ms = 200});
  struct rlimit lim, old;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  lim = old;
  int probe = dup(0); /* the lowest free descriptor */
  cr_assert_geq(probe, 0);
  close(probe);
  lim.rlim_cur = (rlim_t)probe + 8;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
  int fill[16], n = 0;
  while (n < 16 && (fill[n] = dup(0)) >= 0) n++;
  cr_assert(n > 0 && n < 16 && errno == EMFILE, "%d descriptors taken", n);
  close(fill[--n]);
  wc c;
  connect_to(&c, srv); /* takes the last descriptor: the server's accept has none */
  expect_logged("cannot accept a connection: Too many open files", NULL);
  while (n) close(fill[--n]);
  rstate__wire_welcome w;
  cr_assert_eq(wc_hello(&c, NULL, 0, &w), 0, "the connection was never accepted");
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server_limits, handshake_ms_must_not_be_negative) {
  rstate_store *s = h_open();
  rstate_server *srv = NULL;
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-limits-%d.sock", (int)getpid());
  ASSERT_RC(rstate_server_start(&srv, s, uri, &(rstate_server_opts){.handshake_ms = -1}), RSTATE_EINVAL);
  cr_assert_str_eq(rstate_last_error(), "rstate_server_start: handshake_ms -1 is negative");
  rstate_close(s);
}

/* ---- 3. no request amplification --------------------------------------------------------- */

/* A client that sends many SNAPSHOT requests and reads nothing: the server
 * stops handling them once its answers are over the bound, and goes on
 * when they are read. */
Test(server_limits, a_client_that_does_not_read_cannot_make_the_server_queue_without_bound) {
  rstate_store *s = h_open();
  enum { VARS = 20, N = 400 };
  char val[1024];
  memset(val, 'v', sizeof val - 1);
  val[sizeof val - 1] = '\0';
  for (int i = 0; i < VARS; i++) {
    char name[16];
    snprintf(name, sizeof name, "v%02d", i);
    h_define_ok(s, name, RSTATE_TYPE_STRING, rstate_string(val), NULL);
  }
  const size_t max_queue = 16384, bound = 2 * max_queue + max_queue; /* 2 x max_queue + the threshold */
  rstate_server *srv = start(s, (rstate_server_opts){.max_queue_bytes = max_queue, .heartbeat_ms = 60000});
  wc greedy, watcher;
  join(&greedy, srv, NULL);
  join(&watcher, srv, NULL);
  rstate__wire_names m = {0, NULL, 0};
  for (uint32_t i = 1; i <= N; i++) {
    m.req = i;
    cr_assert_eq(rstate__wire_put_names(&greedy.out, RSTATE__WIRE_SNAPSHOT, &m), RSTATE_OK);
  }
  /* without blocking: the server may stop reading before it has them all */
  size_t off = 0;
  int64_t deadline = ms_now() + WAIT_MS;
  while (off < greedy.out.len && ms_now() < deadline) {
    ssize_t w = send(greedy.fd, greedy.out.data + off, greedy.out.len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) off += (size_t)w;
    if (w < 0 && errno != EAGAIN) cr_assert_fail("send: %s", strerror(errno));
    if (w < 0 && stat_of(&watcher, "reads_stalled") > 0) break;
  }
  deadline = ms_now() + WAIT_MS;
  while (stat_of(&watcher, "reads_stalled") == 0)
    cr_assert_lt(ms_now(), deadline, "the server never stopped handling the greedy client's requests");
  size_t answer = VARS * sizeof val + 4096; /* one snapshot, encoded */
  uint64_t queued = stat_of(&watcher, "queued_bytes");
  cr_assert_leq(queued, bound + answer, "%llu bytes queued, over the bound %zu and one answer (%zu)",
                (unsigned long long)queued, bound, answer);
  expect_logged("stopped reading pid", "over the bound of 49152");
  /* the watcher is served meanwhile */
  cr_assert_eq(stat_of(&watcher, "clients"), 2u);
  /* once it reads, every request it sent is answered, in order */
  if (off < greedy.out.len) {
    rstate__wire_buf_consume(&greedy.out, off);
  } else {
    greedy.out.len = 0;
  }
  uint32_t last = 0;
  deadline = ms_now() + 4 * WAIT_MS;
  while (last < N) {
    cr_assert_lt(ms_now(), deadline, "only %u of %d requests answered", last, N);
    if (greedy.out.len) {
      ssize_t w = send(greedy.fd, greedy.out.data, greedy.out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w > 0) rstate__wire_buf_consume(&greedy.out, (size_t)w);
    }
    int t = wc_next(&greedy, 100);
    if (t == 0) continue;
    cr_assert_eq(t, RSTATE__WIRE_SNAPSHOT_PART, "got %d", t);
    cr_assert_geq(greedy.m.u.snapshot.req, last);
    last = greedy.m.u.snapshot.req;
  }
  cr_assert_leq(stat_of(&watcher, "queued_bytes"), bound + answer);
  wc_close(&greedy);
  wc_close(&watcher);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* ---- 4. heartbeats: a floor, and a tick that follows the clients ------------------------- */

/* The loop's turns over ms milliseconds, while c answers its PINGs. */
static uint64_t wakeups_over(wc *probe, wc *live, int ms) {
  uint64_t w0 = stat_of(probe, "loop_wakeups");
  int64_t end = ms_now() + ms;
  while (ms_now() < end) {
    if (live)
      cr_assert_geq(wc_next(live, 10), 0, "the live client was closed");
    else
      nap_ms(10);
  }
  return stat_of(probe, "loop_wakeups") - w0;
}

Test(server_limits, a_client_cannot_speed_the_server_up_below_the_floor_nor_for_ever) {
  rstate_store *s = h_open();
  rstate_server *srv = start(s, (rstate_server_opts){0});
  wc fast, probe;
  join(&probe, srv, NULL);
  connect_to(&fast, srv);
  rstate__wire_welcome w;
  cr_assert_eq(wc_hello(&fast, NULL, 1, &w), 0);
  cr_assert_eq(w.heartbeat_ms, 100u, "a HELLO asking 1 ms gets the floor, 100 ms (got %u)", w.heartbeat_ms);
  expect_logged("asked for a 1 ms heartbeat", "the floor, 100 ms");
  /* 40 ticks a second at most, and the PINGs and PONGs of one client */
  uint64_t n = wakeups_over(&probe, &fast, 1000);
  cr_assert_leq(n, 100u, "%llu wakeups in a second with a 100 ms heartbeat", (unsigned long long)n);
  wc_close(&fast);
  /* the tick returns to the default's (4 a second) once the fast client left */
  int64_t deadline = ms_now() + WAIT_MS;
  while (stat_of(&probe, "clients") != 1) cr_assert_lt(ms_now(), deadline, "the fast client never left");
  nap_ms(300); /* a tick at the old rate notices */
  n = wakeups_over(&probe, NULL, 1000);
  cr_assert_leq(n, 12u, "%llu wakeups in a second after the fast client left", (unsigned long long)n);
  wc_close(&probe);
  rstate_server_stop(srv);
  rstate_close(s);
}

/* An operator's own short heartbeat is not raised to the floor. */
Test(server_limits, the_floor_does_not_raise_the_servers_own_heartbeat) {
  rstate_store *s = h_open();
  rstate_server *srv = start(s, (rstate_server_opts){.heartbeat_ms = 50});
  wc c;
  connect_to(&c, srv);
  rstate__wire_welcome w;
  cr_assert_eq(wc_hello(&c, NULL, 1, &w), 0);
  cr_assert_eq(w.heartbeat_ms, 50u);
  wc_close(&c);
  rstate_server_stop(srv);
  rstate_close(s);
}
