/*
 * test_remote.c — what a remote store adds to the guarantees every store
 * keeps (those run over unix: and tcp: through RSTATE_TEST_TRANSPORT):
 * connecting, tokens, connection states, heartbeats, failing fast while
 * disconnected, reconnecting, resuming from the server's history, and
 * RESYNC events after a gap. The network failures come from a proxy
 * (proxy.h) between the client and the server.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "proxy.h"
#include "wireclient.h"
#include "recorder.h"
#include "testbackend.h"

/* ---- a served store, a proxy in front of it, and a client ---------------- */

static rstate_store *backing;
static rstate_server *server;
static proxy *px;
static char server_uri[128];

/* connection states seen by on_state, in order */
static pthread_mutex_t st_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t st_cond = PTHREAD_COND_INITIALIZER;
static rstate_conn_state states[64];
static pthread_t state_threads[64];
static int n_states;

static void on_state(rstate_store *s, rstate_conn_state st, void *ud) {
  (void)s;
  (void)ud;
  pthread_mutex_lock(&st_lock);
  if (n_states < 64) {
    state_threads[n_states] = pthread_self();
    states[n_states++] = st;
  }
  pthread_cond_broadcast(&st_cond);
  pthread_mutex_unlock(&st_lock);
}

static int count_state(rstate_conn_state st) {
  int n = 0;
  pthread_mutex_lock(&st_lock);
  for (int i = 0; i < n_states; i++) n += states[i] == st;
  pthread_mutex_unlock(&st_lock);
  return n;
}

/* Waits (at most 10 s) until on_state reported st at least n times. */
static void wait_state(rstate_conn_state st, int n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&st_lock);
  for (;;) {
    int got = 0;
    for (int i = 0; i < n_states; i++) got += states[i] == st;
    if (got >= n) break;
    if (pthread_cond_timedwait(&st_cond, &st_lock, &deadline)) {
      pthread_mutex_unlock(&st_lock);
      cr_assert_fail("waited 10 s for connection state %d to be reported %d times, got %d", (int)st, n, got);
    }
  }
  pthread_mutex_unlock(&st_lock);
}

static void serve(const rstate_server_opts *so) {
  static int serial;
  if (!backing) ASSERT_RC(rstate_open(&backing, "mem:", NULL), RSTATE_OK);
  snprintf(server_uri, sizeof server_uri, "unix:/tmp/rstate-remote-%d-%d.sock", (int)getpid(), serial++);
  ASSERT_RC(rstate_server_start(&server, backing, server_uri, so), RSTATE_OK);
}

static rstate_store *client(const rstate_options *extra) {
  rstate_options o = {0};
  if (extra) o = *extra;
  o.on_state = on_state;
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, proxy_uri(px), &o), RSTATE_OK);
  return c;
}

/* Replaces the test's server by one with these options, behind a new proxy. */
static void serve_again(rstate_server_opts so) {
  rstate_server_stop(server);
  serve(&so);
  proxy_stop(px);
  px = proxy_start(server_uri);
  cr_assert_not_null(px, "the test proxy did not start");
}

/* Cuts the client's connection and holds its reconnect attempts until
 * release_and_reconnect (which waits for the second CONNECTED). */
static void disconnect_and_hold(void) {
  proxy_hold(px, true);
  proxy_cut(px);
  wait_state(RSTATE_STATE_DISCONNECTED, 1);
}

static void release_and_reconnect(void) {
  proxy_hold(px, false);
  wait_state(RSTATE_STATE_CONNECTED, 2);
}

static void setup(void) {
  n_states = 0;
  serve(NULL);
  px = proxy_start(server_uri);
  cr_assert_not_null(px, "the test proxy did not start");
}

static void stop_stream(void);

static void teardown(void) {
  stop_stream();
  proxy_stop(px);
  rstate_server_stop(server);
  rstate_close(backing);
  backing = NULL;
}

TestSuite(remote, .init = setup, .fini = teardown, .timeout = 60);

/* ---- connecting ------------------------------------------------------------ */

Test(remote, open_of_an_unreachable_server_is_eio) {
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, "unix:/tmp/rstate-no-such-server.sock", NULL), RSTATE_EIO);
  cr_assert_null(c);
  cr_assert(strstr(rstate_last_error(), "rstate-no-such-server") != NULL, "the sentence names the address: %s",
            rstate_last_error());
  ASSERT_RC(rstate_open(&c, "tcp:127.0.0.1:1", NULL), RSTATE_EIO);
}

Test(remote, open_of_a_bad_uri_is_einval) {
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, "tcp:127.0.0.1", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_open(&c, "tcp:127.0.0.1:99999", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_open(&c, "unix:", NULL), RSTATE_EINVAL);
}

/* A socket that accepts connections (the kernel's backlog) but never answers. */
Test(remote, open_of_a_silent_server_times_out) {
  char path[108];
  snprintf(path, sizeof path, "/tmp/rstate-silent-%d.sock", (int)getpid());
  unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 8) == 0);
  char uri[128];
  snprintf(uri, sizeof uri, "unix:%s", path);
  rstate_options o = {.connect_timeout_ms = 200};
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_ETIMEDOUT);
  close(fd);
  unlink(path);
}

Test(remote, on_state_reports_connected_inside_open_and_closed_inside_close) {
  rstate_store *c = client(NULL);
  cr_assert_eq(count_state(RSTATE_STATE_CONNECTED), 1, "CONNECTED once, before rstate_open returned");
  rstate_close(c);
  pthread_mutex_lock(&st_lock);
  cr_assert_eq(n_states, 2);
  cr_assert_eq(states[1], RSTATE_STATE_CLOSED, "CLOSED, inside rstate_close");
  /* both on the connection thread, not on the caller's */
  cr_assert(!pthread_equal(state_threads[0], pthread_self()), "CONNECTED ran on the thread calling rstate_open");
  cr_assert(pthread_equal(state_threads[0], state_threads[1]), "CONNECTED and CLOSED ran on different threads");
  pthread_mutex_unlock(&st_lock);
}

/* ---- tokens ------------------------------------------------------------------ */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The connection thread waits in recv between heartbeats; closing the store
 * must end that wait at once, not at the next heartbeat (here a minute). */
Test(remote, close_does_not_wait_for_the_next_heartbeat) {
  serve_again((rstate_server_opts){.heartbeat_ms = 60000});
  rstate_store *c = client(NULL);
  h_define_ok(c, "hb.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL); /* the connection is up and idle */
  int64_t t0 = now_ms();
  rstate_close(c);
  int64_t took_ms = now_ms() - t0;
  cr_assert_lt(took_ms, 5000, "rstate_close took %lld ms with a 60 s heartbeat: it waited for the heartbeat",
               (long long)took_ms);
}

/* The threads of this process, by id (at most cap). */
static int task_ids(long *ids, int cap) {
  DIR *d = opendir("/proc/self/task");
  cr_assert_not_null(d, "cannot list /proc/self/task");
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < cap)
    if (e->d_name[0] != '.') ids[n++] = atol(e->d_name);
  closedir(d);
  return n;
}

/* Times thread tid of this process went to sleep (voluntary switches). */
static long sleeps_of(long tid) {
  char path[64], line[128];
  snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "cannot read %s", path);
  long n = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) break;
  fclose(f);
  return n;
}

/* On a Unix socket the kernel wakes a thread blocked in recv each time the
 * peer reads what the socket wrote: the connection thread of a store sending
 * requests woke twice per request, for nothing as the server read it, then
 * for the answer, taking a CPU from the threads carrying the change. While
 * its store sends requests it waits in poll, which wakes for incoming bytes
 * only. */
Test(remote, a_writing_stores_unix_connection_thread_wakes_once_per_answer) {
  long before[256], after[256];
  int nb = task_ids(before, 256);
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, server_uri, NULL), RSTATE_OK); /* no proxy: the server reads the socket */
  int na = task_ids(after, 256);
  long conn = -1;
  for (int i = 0; i < na; i++) {
    bool known = false;
    for (int j = 0; j < nb; j++) known |= after[i] == before[j];
    if (!known) conn = after[i];
  }
  cr_assert_neq(conn, -1, "the connection thread was not found in /proc/self/task");
  h_define_ok(c, "wake.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_value v = rstate_int(0);
  for (int i = 0; i < 20; i++) {
    v.u.i++;
    ASSERT_RC(rstate_set(c, "wake.x", &v, NULL), RSTATE_OK);
  }
  long s0 = sleeps_of(conn);
  int n = 200;
  for (int i = 0; i < n; i++) {
    v.u.i++;
    ASSERT_RC(rstate_set(c, "wake.x", &v, NULL), RSTATE_OK);
  }
  long slept = sleeps_of(conn) - s0;
  cr_assert_leq(slept, n * 3 / 2, "the connection thread went to sleep %ld times for %d requests: it wakes for "
                "more than the answers", slept, n);
  rstate_close(c);
}

Test(remote, a_wrong_or_missing_token_is_eperm) {
  rstate_server *guarded;
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-guarded-%d.sock", (int)getpid());
  rstate_server_opts so = {.token = "s3cret", .read_token = "peek"};
  ASSERT_RC(rstate_server_start(&guarded, backing, uri, &so), RSTATE_OK);
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, uri, NULL), RSTATE_EPERM);
  rstate_options o = {.token = "guess"};
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_EPERM);
  cr_assert(strstr(rstate_last_error(), "token") != NULL, "the sentence says why: %s", rstate_last_error());
  o.token = "s3cret";
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  ASSERT_RC(h_define(c, "t.x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL), RSTATE_OK);
  rstate_close(c);
  rstate_server_stop(guarded);
}

Test(remote, a_read_token_may_get_and_watch_but_not_write) {
  h_define_ok(backing, "ro.x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_server *guarded;
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-ro-%d.sock", (int)getpid());
  rstate_server_opts so = {.token = "s3cret", .read_token = "peek"};
  ASSERT_RC(rstate_server_start(&guarded, backing, uri, &so), RSTATE_OK);
  rstate_options o = {.token = "peek"};
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  cr_assert_eq(h_get_int(c, "ro.x"), 1);
  recorder r;
  rec_init(&r);
  rec_watch1(c, &r, "ro.x", NULL);
  ASSERT_RC(rstate_set_int(c, "ro.x", 2), RSTATE_EPERM);
  cr_assert(!strncmp(rstate_last_error(), "ro.x: ", 6), "the sentence names the variable: %s", rstate_last_error());
  ASSERT_RC(h_define(c, "ro.y", RSTATE_TYPE_INTEGER, rstate_int(1), NULL), RSTATE_EPERM);
  cr_assert(!strncmp(rstate_last_error(), "ro.y: ", 6), "the sentence names the variable: %s", rstate_last_error());
  ASSERT_RC(rstate_undefine(c, "ro.x"), RSTATE_EPERM);
  ASSERT_RC(rstate_set_int(backing, "ro.x", 3), RSTATE_OK);
  rec_wait(&r, 1);
  cr_assert_eq(r.ev[0].new_value.u.i, 3);
  rstate_close(c);
  rstate_server_stop(guarded);
  rec_free(&r);
}

/* A server with a read token and no other: a client must still present it,
 * and may then only read. */
Test(remote, a_read_token_alone_is_still_required_and_still_read_only) {
  h_define_ok(backing, "ro.x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_server *guarded;
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-ro-%d.sock", (int)getpid());
  rstate_server_opts so = {.read_token = "peek"};
  ASSERT_RC(rstate_server_start(&guarded, backing, uri, &so), RSTATE_OK);
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, uri, NULL), RSTATE_EPERM);
  cr_assert_null(c);
  rstate_options o = {.token = "peek"};
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  cr_assert_eq(h_get_int(c, "ro.x"), 1);
  ASSERT_RC(rstate_set_int(c, "ro.x", 2), RSTATE_EPERM);
  cr_assert_eq(h_get_int(backing, "ro.x"), 1, "nothing was applied");
  rstate_close(c);
  rstate_server_stop(guarded);
}

/* ---- losing the connection ---------------------------------------------------- */

static int count_listed(const char *name, rstate_type type, void *ud) {
  (void)name, (void)type;
  ++*(int *)ud;
  return 0;
}

/* Every call that needs the server. */
Test(remote, calls_fail_fast_with_eclosed_while_disconnected) {
  h_define_ok(backing, "d.x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_options o = {.no_reconnect = true};
  rstate_store *c = client(&o);
  recorder r;
  rec_init(&r);
  rstate_watch_id id = rec_watch1(c, &r, "d.x", NULL);
  proxy_cut(px);
  wait_state(RSTATE_STATE_DISCONNECTED, 1);
  rstate_value v;
  ASSERT_RC(rstate_get(c, "d.x", &v), RSTATE_ECLOSED);
  ASSERT_RC(rstate_set_int(c, "d.x", 2), RSTATE_ECLOSED);
  ASSERT_RC(h_define(c, "d.y", RSTATE_TYPE_INTEGER, rstate_int(1), NULL), RSTATE_ECLOSED);
  ASSERT_RC(rstate_undefine(c, "d.x"), RSTATE_ECLOSED);
  rstate_value two = rstate_int(2);
  ASSERT_RC(rstate_set_if(c, "d.x", &two, 1, NULL), RSTATE_ECLOSED);
  rstate_assign items[] = {{"d.x", rstate_int(2)}};
  size_t failed = 0;
  ASSERT_RC(rstate_set_many(c, items, 1, NULL, &failed), RSTATE_ECLOSED);
  cr_assert_eq(failed, SIZE_MAX, "no item is to blame for a lost connection: failed_index %zu", failed);
  const char *names[] = {"d.x"};
  ASSERT_RC(rstate_get_many(c, names, 1, &v, NULL), RSTATE_ECLOSED);
  rstate_var_info info;
  ASSERT_RC(rstate_info(c, "d.x", &info), RSTATE_ECLOSED);
  int listed = 0;
  ASSERT_RC(rstate_list(c, count_listed, &listed), RSTATE_ECLOSED);
  cr_assert_eq(listed, 0);
  recorder r2;
  rec_init(&r2);
  rstate_watch_id id2;
  ASSERT_RC(rstate_watch(c, names, 1, rec_cb, &r2, NULL, &id2), RSTATE_ECLOSED);
  rec_free(&r2);
  cr_assert_eq(rstate_revision(c), 0, "rstate_revision is 0 when it cannot ask");
  ASSERT_RC(rstate_unwatch(c, id), RSTATE_OK);
  cr_assert_eq(r.destroyed, 1);
  cr_assert_eq(h_get_int(backing, "d.x"), 1, "nothing was applied");
  cr_assert_eq(proxy_accepted(px), 1, "no_reconnect: no second connection");
  rstate_close(c);
  rec_free(&r);
}

/* A batch the server's max_frame cannot take is refused by the client: the
 * batch as a whole is to blame, no item of it. */
Test(remote, a_batch_over_the_servers_max_frame_blames_no_item) {
  h_define_ok(backing, "b.i", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(backing, "b.s", RSTATE_TYPE_STRING, rstate_string(""), NULL);
  rstate_store *c = client(NULL);
  size_t big = (size_t)2 << 20; /* the server's max_frame is 1 MiB */
  char *text = malloc(big);
  cr_assert_not_null(text);
  memset(text, 'a', big);
  rstate_assign items[] = {{"b.i", rstate_int(2)}, {"b.s", rstate_stringn(text, big)}};
  size_t failed = 7;
  ASSERT_RC(rstate_set_many(c, items, 2, NULL, &failed), RSTATE_ELIMIT);
  cr_assert_eq(failed, SIZE_MAX, "failed_index %zu, want SIZE_MAX", failed);
  cr_assert_eq(h_get_int(backing, "b.i"), 1, "nothing was applied");
  ASSERT_RC(rstate_set_int(c, "b.i", 3), RSTATE_OK); /* and the connection goes on */
  free(text);
  rstate_close(c);
}

/* A set made on a thread of its own, for tests that act while it waits. */
typedef struct bg_set {
  rstate_store *s;
  const char *name;
  int64_t v;
  atomic_int rc;
  pthread_t t;
} bg_set;

static void *bg_set_run(void *arg) {
  bg_set *b = arg;
  atomic_store(&b->rc, rstate_set_int(b->s, b->name, b->v));
  return NULL;
}

static void bg_set_start(bg_set *b) { cr_assert_eq(pthread_create(&b->t, NULL, bg_set_run, b), 0); }

static int bg_set_join(bg_set *b) {
  pthread_join(b->t, NULL);
  return atomic_load(&b->rc);
}

/* A request whose answer is cut off fails with ECLOSED; it is not retried. */
Test(remote, a_request_in_flight_when_the_connection_drops_fails_with_eclosed) {
  h_define_ok(backing, "f.x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_options o = {.request_timeout_ms = 10000, .no_reconnect = true};
  bg_set set = {.s = client(&o), .name = "f.x", .v = 2};
  proxy_hold(px, true); /* the request goes nowhere */
  bg_set_start(&set);
  proxy_cut(px);
  ASSERT_RC(bg_set_join(&set), RSTATE_ECLOSED);
  rstate_close(set.s);
}

Test(remote, a_request_without_answer_times_out) {
  h_define_ok(backing, "t.x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_options o = {.request_timeout_ms = 100, .no_reconnect = true};
  rstate_store *c = client(&o);
  proxy_hold(px, true);
  rstate_value v;
  ASSERT_RC(rstate_get(c, "t.x", &v), RSTATE_ETIMEDOUT);
  proxy_hold(px, false);
  rstate_close(c);
}

/* Inline callbacks that hold the connection thread until the test lets each go. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int64_t gate_entered, gate_open; /* the last value whose callback started / may end */
static int64_t gate_reached;            /* one more point a test waits for (each test says which) */

static void gate_wait_for(int64_t *what, int64_t v, const char *sentence) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&gate_lock);
  while (*what < v)
    if (pthread_cond_timedwait(&gate_cond, &gate_lock, &deadline)) {
      pthread_mutex_unlock(&gate_lock);
      cr_assert_fail("waited 10 s: %s", sentence);
    }
  pthread_mutex_unlock(&gate_lock);
}

static void gate_set(int64_t *what, int64_t v) {
  pthread_mutex_lock(&gate_lock);
  *what = v;
  pthread_cond_broadcast(&gate_cond);
  pthread_mutex_unlock(&gate_lock);
}

static int held_callback(const rstate_event *ev, void *ud) {
  (void)ud;
  if (ev->kind != RSTATE_EVENT_CHANGED) return RSTATE_CONTINUE;
  gate_set(&gate_entered, ev->new_value.u.i);
  gate_wait_for(&gate_open, ev->new_value.u.i, "the test never let a held callback end");
  return RSTATE_CONTINUE;
}

static int note_applied(const rstate_event *ev, void *ud) {
  (void)ud;
  if (ev->kind == RSTATE_EVENT_CHANGED) gate_set(&gate_reached, 1);
  return RSTATE_CONTINUE;
}

/* The answer to a write is read, but the write is released only after the
 * inline callbacks of the events read before it: when they outlast the
 * request timeout, the write still reports what the server answered. */
Test(remote, an_answer_read_before_the_timeout_counts_even_while_earlier_callbacks_run) {
  gate_entered = gate_open = gate_reached = 0;
  h_define_ok(backing, "late.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(backing, "late.y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id wy;
  ASSERT_RC(rstate_watch(backing, (const char *[]){"late.y"}, 1, note_applied, NULL, NULL, &wy), RSTATE_OK);
  rstate_options o = {.request_timeout_ms = 1000};
  rstate_store *late_store = client(&o);
  rstate_store *other = client(NULL);
  rstate_watch_id wx;
  ASSERT_RC(rstate_watch(late_store, (const char *[]){"late.x"}, 1, held_callback, NULL, NULL, &wx), RSTATE_OK);

  /* the connection thread is held in the callback of x = 1 while the
   * answer to a write, then the event of x = 2, wait in its socket */
  ASSERT_RC(rstate_set_int(backing, "late.x", 1), RSTATE_OK);
  gate_wait_for(&gate_entered, 1, "the callback of x = 1 never started");
  bg_set set = {.s = late_store, .name = "late.y", .v = 5};
  bg_set_start(&set);
  gate_wait_for(&gate_reached, 1, "the server never applied the write");
  rstate_value v;
  ASSERT_RC(rstate_get(other, "late.y", &v), RSTATE_OK); /* a later server turn: the answer was sent */
  ASSERT_RC(rstate_set_int(backing, "late.x", 2), RSTATE_OK);
  ASSERT_RC(rstate_get(other, "late.y", &v), RSTATE_OK); /* and so was the event */
  /* both are read at once: the answer is taken, then the callback of x = 2
   * holds the thread past the write's timeout */
  gate_set(&gate_open, 1);
  gate_wait_for(&gate_entered, 2, "the callback of x = 2 never started");
  ASSERT_RC(bg_set_join(&set), RSTATE_OK);
  gate_set(&gate_open, 2);
  ASSERT_RC(rstate_unwatch(late_store, wx), RSTATE_OK);
  ASSERT_RC(rstate_unwatch(backing, wy), RSTATE_OK);
  rstate_close(other);
  rstate_close(late_store);
}

static atomic_int destroyed[4];
static void destroyed_0(void *ud) {
  (void)ud;
  atomic_fetch_add(&destroyed[0], 1);
  gate_set(&gate_reached, 1); /* the first watch rstate_close ends */
}
static void destroyed_n(void *ud) { atomic_fetch_add(&destroyed[(intptr_t)ud], 1); }
static int quiet_callback(const rstate_event *ev, void *ud) {
  (void)ev;
  (void)ud;
  return RSTATE_CONTINUE;
}
static void *close_store(void *c) {
  rstate_close(c);
  return NULL;
}

/* rstate_close while the connection thread runs the callbacks of a change
 * for two watches (the first held): close waits for it and every watch ends
 * once. Close's list of watches to end and the connection thread's list of
 * watches to run do not share a link, so neither cuts the other short. */
Test(remote, closing_while_the_connection_thread_runs_callbacks_ends_each_watch_once) {
  gate_entered = gate_open = gate_reached = 0;
  for (int i = 0; i < 4; i++) atomic_store(&destroyed[i], 0);
  h_define_ok(backing, "close.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(backing, "close.y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_store *c = client(NULL);
  const char *x[] = {"close.x"}, *y[] = {"close.y"};
  ASSERT_RC(rstate_watch(c, y, 1, quiet_callback, NULL, &(rstate_watch_opts){.destroy = destroyed_0}, NULL),
            RSTATE_OK);
  ASSERT_RC(rstate_watch(c, x, 1, held_callback, (void *)1, &(rstate_watch_opts){.destroy = destroyed_n}, NULL),
            RSTATE_OK);
  ASSERT_RC(rstate_watch(c, x, 1, quiet_callback, (void *)2, &(rstate_watch_opts){.destroy = destroyed_n}, NULL),
            RSTATE_OK);
  ASSERT_RC(rstate_watch(c, y, 1, quiet_callback, (void *)3, &(rstate_watch_opts){.destroy = destroyed_n}, NULL),
            RSTATE_OK);
  ASSERT_RC(rstate_set_int(backing, "close.x", 1), RSTATE_OK);
  gate_wait_for(&gate_entered, 1, "the held callback never started");
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, close_store, c), 0);
  gate_wait_for(&gate_reached, 1, "rstate_close never began to end the watches");
  gate_set(&gate_open, 1);
  pthread_join(t, NULL);
  for (int i = 0; i < 4; i++) cr_assert_eq(atomic_load(&destroyed[i]), 1, "watch %d: destroy ran %d times", i,
                                           atomic_load(&destroyed[i]));
}

/* Holds the server's bytes until the client gives the connection up: it
 * must say why, and do so after three heartbeats (50 ms) plus the check's
 * tick, not after some longer timer. write_first: the connection thread
 * last woke for an answer (on a Unix socket it then waits in poll). */
static void silent_server(bool write_first) {
  serve_again((rstate_server_opts){.heartbeat_ms = 50});
  h_define_ok(backing, "silent.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_options o = {.heartbeat_ms = 50};
  rstate_store *c = client(&o);
  if (write_first) ASSERT_RC(rstate_set_int(c, "silent.x", 1), RSTATE_OK);
  int64_t t0 = now_ms();
  proxy_hold(px, true); /* no more PINGs reach the client */
  wait_state(RSTATE_STATE_DISCONNECTED, 1);
  int64_t took = now_ms() - t0;
  /* (a watchdog left on its idle tick of a second would take over 1000) */
  cr_assert_lt(took, 900, "the silence was noticed after %lld ms, with 50 ms heartbeats", (long long)took);
  rstate_value v;
  ASSERT_RC(rstate_get(c, "silent.x", &v), RSTATE_ECLOSED);
  cr_assert(strstr(rstate_last_error(), "the server stopped answering heartbeats"), "said: %s", rstate_last_error());
  proxy_hold(px, false);
  wait_state(RSTATE_STATE_CONNECTED, 2); /* and it comes back */
  rstate_close(c);
}

Test(remote, a_silent_server_is_declared_dead_after_three_heartbeats) { silent_server(false); }

Test(remote, a_silent_server_is_declared_dead_after_a_write_too) { silent_server(true); }

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FORK_WITHOUT_EXEC_UNSUPPORTED 1 /* ThreadSanitizer's children must exec */
#endif
#endif

/* The child of a process with a remote store open (so with the heartbeat
 * watchdog's thread running) opens and closes stores of its own: what it
 * inherited of the watchdog, without its thread, must not hang it. */
Test(remote, a_forked_child_opens_and_closes_remote_stores_of_its_own) {
#ifdef FORK_WITHOUT_EXEC_UNSUPPORTED
  cr_skip_test("fork without exec under ThreadSanitizer");
#else
  rstate_store *c = client(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    /* the answer is the program the child becomes: what it inherited of
     * the parent's heap is not its to free, and a leak check at its exit
     * (valgrind's) would count it */
    const char *answer = "true";
    for (int i = 0; i < 3; i++) {
      rstate_store *k = NULL;
      if (rstate_open(&k, server_uri, NULL) != RSTATE_OK) {
        answer = "false";
        break;
      }
      rstate_close(k);
    }
    execlp(answer, answer, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  pid_t got = 0;
  for (int i = 0; i < 3000 && (got = waitpid(pid, &status, WNOHANG)) == 0; i++) usleep(10000);
  if (got == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    cr_assert_fail("the forked child still had not opened and closed three stores after 30 s: it hung");
  }
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the forked child ended with status %d", status);
  rstate_close(c);
#endif
}

/* ---- reconnecting and resuming ----------------------------------------------------- */

/* Asserts the recorder holds exactly these CHANGED values of name, in order,
 * with increasing revisions. */
static void assert_changes(recorder *r, size_t from, const char *name, const int64_t *want, size_t n) {
  pthread_mutex_lock(&r->lock);
  cr_assert_eq(r->n - from, n, "%zu events, want %zu", r->n - from, n);
  for (size_t i = 0; i < n; i++) {
    rec_event *e = &r->ev[from + i];
    cr_assert_eq(e->kind, RSTATE_EVENT_CHANGED, "event %zu is kind %d", i, (int)e->kind);
    cr_assert_str_eq(e->name, name);
    cr_assert_eq(e->new_value.u.i, want[i], "event %zu: %lld, want %lld", i, (long long)e->new_value.u.i,
                 (long long)want[i]);
    cr_assert_eq(e->coalesced, 1);
    if (from + i > 0) cr_assert_gt(e->revision, r->ev[from + i - 1].revision);
  }
  pthread_mutex_unlock(&r->lock);
}

Test(remote, after_a_reconnect_every_missed_change_is_replayed_in_order) {
  h_define_ok(backing, "r.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_options o = {.connect_timeout_ms = 2000};
  rstate_store *c = client(&o);
  recorder r;
  rec_init(&r);
  rec_watch1(c, &r, "r.x", NULL);
  ASSERT_RC(rstate_set_int(backing, "r.x", 1), RSTATE_OK);
  rec_wait(&r, 1);
  disconnect_and_hold();
  for (int i = 2; i <= 6; i++) ASSERT_RC(rstate_set_int(backing, "r.x", i), RSTATE_OK);
  release_and_reconnect();
  rec_wait(&r, 6);
  int64_t want[] = {1, 2, 3, 4, 5, 6};
  assert_changes(&r, 0, "r.x", want, 6);
  cr_assert_eq(h_get_int(c, "r.x"), 6);
  rstate_close(c);
  rec_free(&r);
}

static rec_event *find_event(recorder *r, size_t from, const char *name) {
  for (size_t i = from; i < r->n; i++)
    if (!strcmp(r->ev[i].name, name)) return &r->ev[i];
  return NULL;
}

/* The changes made while disconnected no longer fit the history: the
 * client gets RESYNC, DELETED and DEFINED for exactly what differs, a
 * re-defined variable included, even one back at the same version and
 * value; a re-definition counts 1. */
Test(remote, a_gap_beyond_the_history_gives_resync_deleted_and_defined) {
  serve_again((rstate_server_opts){.history = 4});
  h_define_ok(backing, "g.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(backing, "g.y", RSTATE_TYPE_STRING, rstate_string("y"), NULL);
  h_define_ok(backing, "g.z", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL);
  h_define_ok(backing, "g.same", RSTATE_TYPE_INTEGER, rstate_int(5), NULL);
  h_define_ok(backing, "g.retyped", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_options o = {.connect_timeout_ms = 2000};
  rstate_store *c = client(&o);
  recorder r;
  rec_init(&r);
  rec_watch1(c, &r, "g.*", NULL);
  ASSERT_RC(rstate_set_int(backing, "g.x", 1), RSTATE_OK);
  rec_wait(&r, 1);
  disconnect_and_hold();
  for (int i = 2; i <= 11; i++) ASSERT_RC(rstate_set_int(backing, "g.x", i), RSTATE_OK);
  ASSERT_RC(rstate_undefine(backing, "g.y"), RSTATE_OK);
  h_define_ok(backing, "g.w", RSTATE_TYPE_FLOAT, rstate_float(0.5), NULL);
  ASSERT_RC(rstate_undefine(backing, "g.same"), RSTATE_OK); /* back as it was: version 1, value 5 */
  h_define_ok(backing, "g.same", RSTATE_TYPE_INTEGER, rstate_int(5), NULL);
  ASSERT_RC(rstate_undefine(backing, "g.retyped"), RSTATE_OK); /* a string now, at version 3 */
  h_define_ok(backing, "g.retyped", RSTATE_TYPE_STRING, rstate_string("a"), NULL);
  ASSERT_RC(rstate_set_string(backing, "g.retyped", "b"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(backing, "g.retyped", "c"), RSTATE_OK);
  uint64_t R = rstate_revision(backing);
  release_and_reconnect();
  rec_wait(&r, 6);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.n, 6, "x: CHANGED before, then RESYNC x, same, retyped, DELETED y, DEFINED w; got %zu events", r.n);
  rec_event *x = find_event(&r, 1, "g.x"), *y = find_event(&r, 1, "g.y"), *w = find_event(&r, 1, "g.w");
  rec_event *same = find_event(&r, 1, "g.same"), *retyped = find_event(&r, 1, "g.retyped");
  cr_assert(x && y && w && same && retyped, "events for g.x, g.y, g.w, g.same and g.retyped");
  cr_assert_eq(x->revision, R, "RESYNC carries the snapshot's revision");
  cr_assert_eq(same->kind, RSTATE_EVENT_RESYNC, "re-defined as it was: still a RESYNC");
  cr_assert_eq(same->old_value.u.i, 5);
  cr_assert_eq(same->new_value.u.i, 5);
  cr_assert_eq(same->coalesced, 1, "a re-definition counts 1");
  cr_assert_eq(retyped->kind, RSTATE_EVENT_RESYNC);
  cr_assert_eq(retyped->old_value.kind, RSTATE_INT);
  cr_assert_str_eq(retyped->new_value.u.s.ptr, "c");
  cr_assert_eq(retyped->type, RSTATE_TYPE_STRING);
  cr_assert_eq(retyped->coalesced, 1, "re-defined with another type: 1, not the version difference");
  cr_assert_null(find_event(&r, 1, "g.z"), "g.z did not change: no event");
  cr_assert_eq(x->kind, RSTATE_EVENT_RESYNC);
  cr_assert_eq(x->old_value.u.i, 1, "old = the last value the watch saw");
  cr_assert_eq(x->new_value.u.i, 11);
  cr_assert_eq(x->coalesced, 10, "the version difference it spans");
  cr_assert_eq(x->version, h_version(backing, "g.x"));
  cr_assert_eq(y->kind, RSTATE_EVENT_DELETED);
  cr_assert_str_eq(y->old_value.u.s.ptr, "y");
  cr_assert_eq(w->kind, RSTATE_EVENT_DEFINED);
  cr_assert_eq(w->new_value.u.f, 0.5);
  pthread_mutex_unlock(&r.lock);
  rstate_close(c);
  rec_free(&r);
}

static bool not_changed(const rstate_event *ev, void *ud) {
  (void)ud;
  return ev->kind != RSTATE_EVENT_CHANGED;
}

/* "The last value a watch saw" counts the events its filter dropped: after a
 * gap, RESYNC's old value is the filtered one. */
Test(remote, a_resync_starts_from_the_last_value_seen_even_if_filtered) {
  serve_again((rstate_server_opts){.history = 4});
  h_define_ok(backing, "f.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(backing, "f.pad", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_options o = {.connect_timeout_ms = 2000};
  rstate_store *c = client(&o);
  recorder r;
  rec_init(&r);
  rstate_watch_opts wo = {.filter = not_changed};
  rstate_watch_id id = rec_watch1(c, &r, "f.x", &wo);
  ASSERT_RC(rstate_set_int(backing, "f.x", 5), RSTATE_OK);
  rstate_watch_stats st = {0};
  int64_t deadline = now_ms() + 10000;
  while (st.filtered < 1) { /* the client has it, filtered */
    cr_assert_lt(now_ms(), deadline, "the change to f.x never reached the client");
    ASSERT_RC(rstate_get_watch_stats(c, id, &st), RSTATE_OK);
    sched_yield();
  }
  disconnect_and_hold();
  ASSERT_RC(rstate_set_int(backing, "f.x", 6), RSTATE_OK);
  for (int i = 1; i <= 10; i++) ASSERT_RC(rstate_set_int(backing, "f.pad", i), RSTATE_OK);
  release_and_reconnect();
  rec_wait(&r, 1);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_RESYNC);
  cr_assert_eq(r.ev[0].old_value.u.i, 5, "old = the filtered value 5, got %lld", (long long)r.ev[0].old_value.u.i);
  cr_assert_eq(r.ev[0].new_value.u.i, 6);
  cr_assert_eq(r.ev[0].coalesced, 1);
  pthread_mutex_unlock(&r.lock);
  rstate_close(c);
  rec_free(&r);
}

/* The server restarts (a new instance) on the same store and address. */
Test(remote, a_restarted_server_gives_resync) {
  h_define_ok(backing, "s.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_options o = {.connect_timeout_ms = 2000};
  rstate_store *c = NULL;
  o.on_state = on_state;
  ASSERT_RC(rstate_open(&c, server_uri, &o), RSTATE_OK);
  recorder r;
  rec_init(&r);
  rec_watch1(c, &r, "s.x", NULL);
  rstate_server_stop(server);
  wait_state(RSTATE_STATE_DISCONNECTED, 1);
  ASSERT_RC(rstate_set_int(backing, "s.x", 5), RSTATE_OK);
  ASSERT_RC(rstate_set_int(backing, "s.x", 7), RSTATE_OK);
  ASSERT_RC(rstate_server_start(&server, backing, server_uri, NULL), RSTATE_OK);
  wait_state(RSTATE_STATE_CONNECTED, 2);
  rec_wait(&r, 1);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_RESYNC);
  cr_assert_eq(r.ev[0].old_value.u.i, 0);
  cr_assert_eq(r.ev[0].new_value.u.i, 7);
  cr_assert_eq(r.ev[0].coalesced, 2);
  pthread_mutex_unlock(&r.lock);
  ASSERT_RC(rstate_set_int(backing, "s.x", 8), RSTATE_OK);
  rec_wait(&r, 2);
  cr_assert_eq(r.ev[1].kind, RSTATE_EVENT_CHANGED, "and then changes as before");
  rstate_close(c);
  rec_free(&r);
}

/* A remote store can be served again (a relay): the front end follows its
 * changes through a subscription of its own, so the relay's clients see the
 * changes made in the first server's store, and their writes reach it. */
Test(remote, a_remote_store_can_be_served_again) {
  rstate_store *c = client(NULL);
  h_define_ok(backing, "relay.x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-relay-%d.sock", (int)getpid());
  rstate_server *relay = NULL;
  int rc = rstate_server_start(&relay, c, uri, NULL);
  cr_assert_eq(rc, RSTATE_OK, "rstate_server_start: %s: %s", rstate_error_name(rc), rstate_last_error());
  rstate_store *d = NULL;
  ASSERT_RC(rstate_open(&d, uri, NULL), RSTATE_OK);
  recorder r;
  rec_init(&r);
  rstate_watch_opts o = {.include_initial = true};
  rec_watch1(d, &r, "relay.*", &o);
  rec_wait(&r, 1);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_INITIAL);
  cr_assert_eq(r.ev[0].new_value.u.i, 1);
  ASSERT_RC(rstate_set_int(backing, "relay.x", 2), RSTATE_OK);
  rec_wait(&r, 2);
  cr_assert_eq(r.ev[1].kind, RSTATE_EVENT_CHANGED);
  cr_assert_eq(r.ev[1].new_value.u.i, 2);
  cr_assert_eq(r.ev[1].revision, rstate_revision(backing), "the revisions are the first server's");
  ASSERT_RC(rstate_set_int(d, "relay.x", 3), RSTATE_OK);
  cr_assert_eq(h_get_int(backing, "relay.x"), 3, "the relay's client wrote into the first store");
  rec_wait(&r, 3);
  cr_assert_eq(r.ev[2].new_value.u.i, 3);
  rstate_close(d);
  rstate_server_stop(relay);
  struct stat st;
  cr_assert_neq(stat(uri + 5, &st), 0, "the socket file was left behind");
  rstate_close(c);
  rec_free(&r);
}

/* A backend that does not know when its variables last changed (the test
 * backend gives updated_ns 0 in its snapshots): after a gap, a variable that
 * changed gets its RESYNC and one that did not gets nothing. */
Test(remote, a_gap_over_a_backend_without_change_times_gives_resync_only_for_what_differs) {
  rstate_store *tb = NULL;
  ASSERT_RC(rstate_open_backend(&tb, &testbackend_ops, "test:", NULL), RSTATE_OK);
  h_define_ok(tb, "t.x", RSTATE_TYPE_FLOAT, rstate_float(1), NULL);
  h_define_ok(tb, "t.y", RSTATE_TYPE_FLOAT, rstate_float(1), NULL);
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-tb-%d.sock", (int)getpid());
  rstate_server *srv = NULL;
  ASSERT_RC(rstate_server_start(&srv, tb, uri, NULL), RSTATE_OK);
  rstate_options o = {.connect_timeout_ms = 2000, .on_state = on_state};
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  recorder r;
  rec_init(&r);
  rec_watch1(c, &r, "t.*", NULL);
  ASSERT_RC(rstate_set_float(tb, "t.x", 2), RSTATE_OK);
  rec_wait(&r, 1);
  rstate_server_stop(srv);
  wait_state(RSTATE_STATE_DISCONNECTED, 1);
  ASSERT_RC(rstate_set_float(tb, "t.y", 3), RSTATE_OK);
  ASSERT_RC(rstate_server_start(&srv, tb, uri, NULL), RSTATE_OK);
  wait_state(RSTATE_STATE_CONNECTED, 2);
  rec_wait(&r, 2);
  ASSERT_RC(rstate_set_float(tb, "t.x", 4), RSTATE_OK); /* what comes after the RESYNC */
  rec_wait(&r, 3);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.n, 3, "CHANGED x, RESYNC y, CHANGED x; got %zu events", r.n);
  cr_assert_eq(r.ev[1].kind, RSTATE_EVENT_RESYNC);
  cr_assert_str_eq(r.ev[1].name, "t.y", "a RESYNC for %s, which did not change", r.ev[1].name);
  cr_assert_eq(r.ev[2].kind, RSTATE_EVENT_CHANGED);
  cr_assert_eq(r.ev[2].new_value.u.f, 4);
  pthread_mutex_unlock(&r.lock);
  rstate_close(c);
  rstate_server_stop(srv);
  rstate_close(tb);
  rec_free(&r);
}

/* A watch whose WATCH frame is larger than a new server's max_frame cannot be
 * taken back there: the other watches go on, it is asked for again (every
 * heartbeat, and after every reconnect), and a server that can take it
 * gives it the RESYNC events of what it missed. (With 50 ms heartbeats the
 * client asks again, and fails to send, while it talks to the small server.) */
Test(remote, a_watch_too_large_for_a_new_server_waits_for_one_that_takes_it_and_the_others_go_on) {
  h_define_ok(backing, "s.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(backing, "s.y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_options o = {.connect_timeout_ms = 2000, .heartbeat_ms = 50, .on_state = on_state};
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, server_uri, &o), RSTATE_OK);
  /* "s.x" and 40 patterns of 120 bytes: a WATCH frame over 4096 bytes */
  enum { N_BIG = 41 };
  char big[N_BIG][128];
  const char *pats[N_BIG];
  snprintf(big[0], sizeof big[0], "s.x");
  for (int i = 1; i < N_BIG; i++) {
    snprintf(big[i], sizeof big[i], "other.%02d.", i);
    memset(big[i] + 9, 'q', 110);
    strcpy(big[i] + 119, "*");
    pats[i] = big[i];
  }
  pats[0] = big[0];
  recorder rx, ry;
  rec_init(&rx);
  rec_init(&ry);
  rec_watch(c, &rx, pats, N_BIG, NULL);
  rec_watch1(c, &ry, "s.y", NULL);

  rstate_server_stop(server);
  wait_state(RSTATE_STATE_DISCONNECTED, 1);
  ASSERT_RC(rstate_set_int(backing, "s.x", 5), RSTATE_OK);
  rstate_server_opts small = {.max_frame = 4096};
  ASSERT_RC(rstate_server_start(&server, backing, server_uri, &small), RSTATE_OK);
  wait_state(RSTATE_STATE_CONNECTED, 2);
  ASSERT_RC(rstate_set_int(c, "s.y", 1), RSTATE_OK);
  rec_wait(&ry, 1);
  cr_assert_eq(ry.ev[ry.n - 1].new_value.u.i, 1, "the watch the server took back goes on");
  pthread_mutex_lock(&rx.lock);
  cr_assert_eq(rx.n, 0, "no server took the big watch yet, so it has no event (got %zu)", rx.n);
  pthread_mutex_unlock(&rx.lock);

  rstate_server_stop(server);
  wait_state(RSTATE_STATE_DISCONNECTED, 2);
  ASSERT_RC(rstate_server_start(&server, backing, server_uri, NULL), RSTATE_OK);
  wait_state(RSTATE_STATE_CONNECTED, 3);
  rec_wait(&rx, 1);
  pthread_mutex_lock(&rx.lock);
  cr_assert_eq(rx.ev[0].kind, RSTATE_EVENT_RESYNC, "what it missed comes as RESYNC");
  cr_assert_str_eq(rx.ev[0].name, "s.x");
  cr_assert_eq(rx.ev[0].old_value.u.i, 0);
  cr_assert_eq(rx.ev[0].new_value.u.i, 5);
  pthread_mutex_unlock(&rx.lock);
  ASSERT_RC(rstate_set_int(c, "s.x", 6), RSTATE_OK);
  rec_wait(&rx, 2);
  cr_assert_eq(rx.ev[1].kind, RSTATE_EVENT_CHANGED, "and then changes as before");
  cr_assert_eq(rx.ev[1].new_value.u.i, 6);
  rstate_close(c);
  rec_free(&rx);
  rec_free(&ry);
}

/* ---- a scripted server ------------------------------------------------------------------ */

/* Plays a server that takes a watch, drops the connection, refuses the
 * watch once when the client comes back (as a server out of memory would),
 * and takes it when asked again on the same connection. Whatever goes wrong
 * is written to failure; the test asserts it is empty. */
typedef struct refusing {
  int lfd;
  char failure[160];
  int watches_after_refusal;
} refusing;

#define SCRIPT_FAIL(st, ...)                                     \
  do {                                                           \
    snprintf((st)->failure, sizeof (st)->failure, __VA_ARGS__); \
    goto done;                                                   \
  } while (0)

/* The next frame other than PING, PONG and UNWATCH, sending PING every
 * 20 ms meanwhile so the client does not declare the server dead. */
static int script_next(wc *c) {
  for (int waited = 0; waited < 10000; waited += 20) {
    int t = wc_next(c, 20);
    if (t == RSTATE__WIRE_UNWATCH) continue;
    if (t) return t;
    rstate__wire_put_ping(&c->out, RSTATE__WIRE_PING, 1);
    wc_flush(c);
  }
  return 0;
}

/* The client's HELLO: nothing is sent before it is answered (a PING before
 * the WELCOME is a protocol error to the client), however long it takes. */
static int script_hello(wc *c) {
  for (int waited = 0; waited < 10000; waited += 20) {
    int t = wc_next(c, 20);
    if (t) return t;
  }
  return 0;
}

/* A listening Unix socket for a scripted server: /tmp/rstate-TAG-PID.sock
 * in path, its URI in uri. */
static int script_listen(const char *tag, char path[108], char uri[120]) {
  snprintf(path, 108, "/tmp/rstate-%s-%d.sock", tag, (int)getpid());
  unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 4) == 0, "%s", strerror(errno));
  snprintf(uri, 120, "unix:%s", path);
  return fd;
}

static void script_welcome(wc *c, uint64_t revision) {
  rstate__wire_welcome w = {RSTATE__WIRE_VERSION, 7, 50, revision, RSTATE__WIRE_DEFAULT_MAX_FRAME,
                            RSTATE__WIRE_READ_WRITE};
  rstate__wire_put_welcome(&c->out, &w);
  wc_flush(c);
}

static void script_events(wc *c, uint64_t sub, uint64_t revision, rstate_event_kind kind, int64_t old, int64_t now) {
  rstate__wire_event ev = {kind, "s.x", RSTATE_TYPE_INTEGER, kind == RSTATE_EVENT_INITIAL ? (rstate_value){0} : rstate_int(old),
                           rstate_int(now), revision, 0, kind == RSTATE_EVENT_INITIAL ? 0 : 1};
  rstate__wire_events e = {sub, revision, 0, NULL, NULL, 0, &ev, 1};
  rstate__wire_put_events(&c->out, &e);
  wc_flush(c);
}

static void *refusing_server(void *arg) {
  refusing *st = arg;
  wc c = {.fd = -1};
  /* connection 1: the watch is taken at revision 1, x = 0 */
  if (wc_accept(&c, st->lfd)) SCRIPT_FAIL(st, "accept: %s", strerror(errno));
  if (script_hello(&c) != RSTATE__WIRE_HELLO) SCRIPT_FAIL(st, "connection 1: no HELLO");
  script_welcome(&c, 1);
  int t = script_next(&c);
  if (t == RSTATE__WIRE_INFO) { /* rstate_watch asks what the watched name is */
    rstate__wire_info_reply info = {c.m.u.name.req, {RSTATE_TYPE_INTEGER, 1, 1, 0}};
    rstate__wire_put_info_reply(&c.out, &info);
    wc_flush(&c);
    t = script_next(&c);
  }
  if (t != RSTATE__WIRE_WATCH) SCRIPT_FAIL(st, "connection 1: %s instead of WATCH", rstate__wire_type_name(t));
  rstate__wire_watch_reply r = {c.m.u.watch.req, c.m.u.watch.sub, RSTATE__WIRE_WATCH_NEW, 1, 1};
  uint64_t sub = r.sub;
  rstate__wire_put_watch_reply(&c.out, &r);
  script_events(&c, sub, 1, RSTATE_EVENT_INITIAL, 0, 0);
  wc_close(&c);

  /* connection 2: the same server; x became 5 at revision 2 meanwhile */
  if (wc_accept(&c, st->lfd)) SCRIPT_FAIL(st, "accept: %s", strerror(errno));
  if (script_hello(&c) != RSTATE__WIRE_HELLO) SCRIPT_FAIL(st, "connection 2: no HELLO");
  script_welcome(&c, 2);
  if (script_next(&c) != RSTATE__WIRE_WATCH) SCRIPT_FAIL(st, "connection 2: no WATCH");
  if (c.m.u.watch.sub != sub || c.m.u.watch.resume_after != 1)
    SCRIPT_FAIL(st, "connection 2: WATCH of sub %llu after %llu, want sub %llu after 1",
                (unsigned long long)c.m.u.watch.sub, (unsigned long long)c.m.u.watch.resume_after,
                (unsigned long long)sub);
  rstate__wire_error no = {c.m.u.watch.req, RSTATE_ENOMEM, "out of memory", RSTATE__WIRE_NO_INDEX};
  rstate__wire_put_error(&c.out, &no);
  wc_flush(&c);
  t = script_next(&c);
  if (t != RSTATE__WIRE_WATCH) SCRIPT_FAIL(st, "the refused watch was not asked for again (frame type %d)", t);
  st->watches_after_refusal++;
  if (c.m.u.watch.resume_after != 1)
    SCRIPT_FAIL(st, "asked again after %llu, want 1", (unsigned long long)c.m.u.watch.resume_after);
  r = (rstate__wire_watch_reply){c.m.u.watch.req, sub, RSTATE__WIRE_WATCH_RESUMED, 1, 0};
  rstate__wire_put_watch_reply(&c.out, &r);
  script_events(&c, sub, 2, RSTATE_EVENT_CHANGED, 0, 5);
  while (script_next(&c) > 0) { /* until the client closes */
  }
done:
  wc_close(&c);
  return NULL;
}

Test(remote, a_watch_the_server_refuses_to_take_back_is_asked_for_again) {
  refusing st = {0};
  char path[108], uri[120];
  st.lfd = script_listen("refusing", path, uri);
  pthread_t th;
  pthread_create(&th, NULL, refusing_server, &st);
  rstate_options o = {.connect_timeout_ms = 2000, .on_state = on_state};
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  recorder r;
  rec_init(&r);
  const char *name = "s.x";
  rstate_watch_id id;
  int rc = rstate_watch(c, &name, 1, rec_cb, &r, NULL, &id);
  cr_assert_eq(rc, RSTATE_OK, "rstate_watch: %s; the scripted server: %s", rstate_last_error(), st.failure);
  wait_state(RSTATE_STATE_CONNECTED, 2); /* the script dropped the first connection */
  rec_wait(&r, 1);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_CHANGED, "the change made while it was refused arrives");
  cr_assert_eq(r.ev[0].old_value.u.i, 0);
  cr_assert_eq(r.ev[0].new_value.u.i, 5);
  pthread_mutex_unlock(&r.lock);
  rstate_close(c);
  pthread_join(th, NULL);
  cr_assert(!st.failure[0], "the scripted server: %s", st.failure);
  cr_assert_eq(st.watches_after_refusal, 1);
  close(st.lfd);
  unlink(path);
  rec_free(&r);
}

/* ---- an older server: nothing of a later protocol version is sent to it ---------- */

typedef struct old_server {
  int lfd;
  char failure[160];
  int first_type; /* the first request after the handshake */
} old_server;

static void *version_1_server(void *arg) {
  old_server *st = arg;
  wc c = {.fd = -1};
  if (wc_accept(&c, st->lfd)) SCRIPT_FAIL(st, "accept: %s", strerror(errno));
  if (script_hello(&c) != RSTATE__WIRE_HELLO) SCRIPT_FAIL(st, "no HELLO");
  if (c.m.u.hello.version != RSTATE__WIRE_VERSION)
    SCRIPT_FAIL(st, "HELLO says version %u", (unsigned)c.m.u.hello.version);
  rstate__wire_welcome w = {1, 7, 50, 1, RSTATE__WIRE_DEFAULT_MAX_FRAME, RSTATE__WIRE_READ_WRITE};
  rstate__wire_put_welcome(&c.out, &w);
  wc_flush(&c);
  int t = script_next(&c);
  st->first_type = t;
  if (t == RSTATE__WIRE_REVISION) {
    rstate__wire_rev r = {c.m.u.req.req, 1};
    rstate__wire_put_rev(&c.out, RSTATE__WIRE_REVISION_REPLY, &r);
    wc_flush(&c);
  }
  while (script_next(&c) > 0) { /* until the client closes */
  }
done:
  wc_close(&c);
  return NULL;
}

Test(remote, history_against_a_version_1_server_is_enotsup_and_sends_nothing) {
  old_server st = {0};
  char path[108], uri[120];
  st.lfd = script_listen("v1", path, uri);
  pthread_t th;
  pthread_create(&th, NULL, version_1_server, &st);
  rstate_options o = {.connect_timeout_ms = 2000};
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  int rc = rstate_history(c, "x", 0, NULL, NULL);
  cr_assert_eq(rc, RSTATE_EINVAL, "fn NULL is checked first");
  rc = rstate_rollback(c, "x", 1, NULL);
  cr_assert_eq(rc, RSTATE_ENOTSUP, "rstate_rollback returned %s: %s", rstate_error_name(rc), rstate_last_error());
  cr_assert(strstr(rstate_last_error(), "protocol version 1") != NULL, "%s", rstate_last_error());
  cr_assert_eq(rstate_revision(c), 1, "the connection goes on");
  rstate_close(c);
  pthread_join(th, NULL);
  cr_assert(!st.failure[0], "the scripted server: %s", st.failure);
  cr_assert_eq(st.first_type, RSTATE__WIRE_REVISION, "the first request the server saw was %s, not REVISION",
               rstate__wire_type_name((uint8_t)st.first_type));
  close(st.lfd);
  unlink(path);
}

/* ---- two clients ---------------------------------------------------------------------- */

Test(remote, a_change_made_by_one_client_reaches_the_watch_of_another) {
  rstate_store *a = client(NULL), *b = client(NULL);
  h_define_ok(a, "two.x", RSTATE_TYPE_STRING, rstate_string("a"), NULL);
  recorder r;
  rec_init(&r);
  rec_watch1(b, &r, "two.x", &(rstate_watch_opts){.include_initial = true});
  rstate_meta m = {"k", "v"};
  rstate_set_opts so = {.source = "client-a", .meta = &m, .n_meta = 1};
  rstate_value v = rstate_string("b");
  ASSERT_RC(rstate_set(a, "two.x", &v, &so), RSTATE_OK);
  rec_wait(&r, 2);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_INITIAL);
  cr_assert_eq(r.ev[1].kind, RSTATE_EVENT_CHANGED);
  cr_assert_str_eq(r.ev[1].old_value.u.s.ptr, "a");
  cr_assert_str_eq(r.ev[1].new_value.u.s.ptr, "b");
  cr_assert_str_eq(r.ev[1].source, "client-a");
  cr_assert_str_eq(r.ev[1].meta0_key, "k");
  cr_assert_str_eq(r.ev[1].meta0_value, "v");
  cr_assert_eq(r.ev[1].store, b);
  pthread_mutex_unlock(&r.lock);
  rstate_close(a);
  rstate_close(b);
  rec_free(&r);
}

/* ---- the server's on_client hook ------------------------------------------------------ */

typedef struct client_log {
  pthread_mutex_t lock;
  char lines[8][160];
  int n;
} client_log;

static void log_client(rstate_server *srv, const char *peer, bool connected, const char *why, void *ud) {
  (void)srv;
  client_log *l = ud;
  pthread_mutex_lock(&l->lock);
  if (l->n < 8) snprintf(l->lines[l->n++], sizeof l->lines[0], "%s %s%s%s", connected ? "+" : "-", peer,
                         why ? ": " : "", why ? why : "");
  pthread_mutex_unlock(&l->lock);
}

static void check_on_client(const char *listen, const char *want_peer_prefix) {
  client_log l = {.lock = PTHREAD_MUTEX_INITIALIZER};
  rstate_server *srv;
  rstate_server_opts so = {.on_client = log_client, .client_userdata = &l};
  ASSERT_RC(rstate_server_start(&srv, backing, listen, &so), RSTATE_OK);
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, rstate_server_uri(srv), NULL), RSTATE_OK);
  pthread_mutex_lock(&l.lock);
  cr_assert_eq(l.n, 1, "one connect reported once the client is open (%d lines)", l.n);
  cr_assert(!strncmp(l.lines[0] + 2, want_peer_prefix, strlen(want_peer_prefix)), "peer: %s", l.lines[0]);
  pthread_mutex_unlock(&l.lock);
  rstate_close(c);
  rstate_server_stop(srv); /* its thread has handled the close by the time it stopped */
  cr_assert_eq(l.n, 2, "a disconnect reported (%d lines)", l.n);
  cr_assert_eq(l.lines[1][0], '-', "%s", l.lines[1]);
  cr_assert(strchr(l.lines[1], ':') != NULL, "with a reason: %s", l.lines[1]);
}

Test(remote, on_client_reports_each_client_that_connects_and_goes) {
  char listen[128], pid[32];
  snprintf(listen, sizeof listen, "unix:/tmp/rstate-onclient-%d.sock", (int)getpid());
  snprintf(pid, sizeof pid, "pid %d uid ", (int)getpid());
  check_on_client(listen, pid);
  check_on_client("tcp:127.0.0.1:0", "127.0.0.1:");
}

/* ---- killing the server mid-stream ------------------------------------------------------ */

static atomic_int stream_stop;
static int64_t stream_last;
static pthread_t stream_thread;
static bool stream_running;

static void *stream_setter(void *arg) {
  (void)arg;
  int64_t k = 0;
  while (!atomic_load(&stream_stop)) {
    if (rstate_set_int(backing, "m.x", ++k) != RSTATE_OK) return (void *)1;
    if (k % 64 == 0) sched_yield(); /* lets the server thread in under valgrind's one-thread-at-a-time */
  }
  stream_last = k;
  return NULL;
}

/* A failed assertion leaves the setter running: stop it before the store goes. */
static void stop_stream(void) {
  if (!stream_running) return;
  atomic_store(&stream_stop, 1);
  pthread_join(stream_thread, NULL);
  stream_running = false;
}

/* Changes keep coming while the server is stopped and started again (twice):
 * the watch sees a chain of events, each starting where the last ended, up
 * to the final value, and the changes they stand for add up to all of them. */
Test(remote, killing_and_restarting_the_server_mid_stream_loses_nothing_uncounted) {
  h_define_ok(backing, "m.x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_options o = {.connect_timeout_ms = 500, .on_state = on_state};
  rstate_store *c = NULL;
  ASSERT_RC(rstate_open(&c, server_uri, &o), RSTATE_OK);
  recorder r;
  rec_init(&r);
  rec_watch1(c, &r, "m.x", NULL);
  atomic_store(&stream_stop, 0);
  cr_assert_eq(pthread_create(&stream_thread, NULL, stream_setter, NULL), 0);
  stream_running = true;
  for (int round = 1; round <= 2; round++) {
    pthread_mutex_lock(&r.lock);
    size_t seen = r.n;
    pthread_mutex_unlock(&r.lock);
    rec_wait(&r, seen + 1); /* the stream is flowing to the client */
    rstate_server_stop(server);
    wait_state(RSTATE_STATE_DISCONNECTED, round);
    ASSERT_RC(rstate_server_start(&server, backing, server_uri, NULL), RSTATE_OK);
    wait_state(RSTATE_STATE_CONNECTED, round + 1);
  }
  pthread_mutex_lock(&r.lock);
  size_t seen = r.n;
  pthread_mutex_unlock(&r.lock);
  rec_wait(&r, seen + 1); /* flowing again after the last restart */
  atomic_store(&stream_stop, 1);
  void *failed;
  pthread_join(stream_thread, &failed);
  stream_running = false;
  cr_assert_null(failed, "the setter failed: %s", rstate_last_error());
  const int64_t final = stream_last;
  /* wait for the final value */
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&r.lock);
  while (!(r.n && r.ev[r.n - 1].new_value.u.i == final))
    if (pthread_cond_timedwait(&r.cond, &r.lock, &deadline)) break;
  cr_assert(r.n && r.ev[r.n - 1].new_value.u.i == final, "the watch reached the final value %lld", (long long)final);
  int64_t last = 0;
  uint64_t covered = 0;
  size_t resyncs = 0;
  for (size_t i = 0; i < r.n; i++) {
    rec_event *e = &r.ev[i];
    cr_assert(e->kind == RSTATE_EVENT_CHANGED || e->kind == RSTATE_EVENT_RESYNC, "event %zu is kind %d", i,
              (int)e->kind);
    cr_assert_eq(e->old_value.u.i, last, "event %zu starts at %lld, the last one ended at %lld", i,
                 (long long)e->old_value.u.i, (long long)last);
    cr_assert_gt(e->new_value.u.i, last);
    resyncs += e->kind == RSTATE_EVENT_RESYNC;
    covered += e->coalesced;
    last = e->new_value.u.i;
  }
  cr_assert_eq(covered, (uint64_t)final, "the events stand for %llu changes, want %lld", (unsigned long long)covered,
               (long long)final);
  pthread_mutex_unlock(&r.lock);
  cr_log_info("%lld changes, %zu events, %zu of them RESYNC", (long long)final, r.n, resyncs);
  rstate_close(c);
  rec_free(&r);
}

/* Over max_clients the server answers HELLO with its refusal and closes.
 * Its close may come before the client's HELLO is written, which then
 * fails (EPIPE): the client must still read the refusal the server sent
 * and report its sentence, never "Broken pipe". 40 clients at once, each
 * refused, twice over. */
typedef struct refused {
  const char *uri;
  int rc;
  char why[256];
} refused;

static void *open_refused(void *arg) {
  refused *r = arg;
  rstate_options o = {.no_reconnect = true};
  rstate_store *c = NULL;
  r->rc = rstate_open(&c, r->uri, &o);
  snprintf(r->why, sizeof r->why, "%s", rstate_last_error());
  if (c) rstate_close(c);
  return NULL;
}

Test(remote, a_client_over_max_clients_reads_the_refusal_not_a_broken_pipe) {
  rstate_server *full;
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-full-%d.sock", (int)getpid());
  rstate_server_opts so = {.max_clients = 1};
  ASSERT_RC(rstate_server_start(&full, backing, uri, &so), RSTATE_OK);
  rstate_store *first = NULL;
  ASSERT_RC(rstate_open(&first, uri, NULL), RSTATE_OK);
  for (int round = 0; round < 2; round++) {
    refused r[40];
    pthread_t t[40];
    for (int i = 0; i < 40; i++) {
      r[i].uri = uri;
      cr_assert_eq(pthread_create(&t[i], NULL, open_refused, &r[i]), 0);
    }
    int other = 0;
    for (int i = 0; i < 40; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 40; i++) {
      if (r[i].rc != RSTATE_ELIMIT || !strstr(r[i].why, "the server has reached its limit of 1 clients")) {
        if (!other++) cr_log_info("client %d: %s: %s", i, rstate_error_name(r[i].rc), r[i].why);
      }
    }
    cr_assert_eq(other, 0, "%d of 40 refused clients did not see the limit's sentence", other);
  }
  rstate_close(first);
  rstate_server_stop(full);
}

/* ---- whom a client talks to ------------------------------------------------ */

/* A server run by another user (uid 65534) in a child process: the client
 * refuses it before sending anything, unless peer_uid names that uid or is
 * -1. Needs root, to become that user. */
#define OTHER_UID 65534

TestSuite(peer, .timeout = 60);

typedef struct other {
  pid_t pid;
  int to_child;   /* closed: the child ends */
  int from_child; /* what the child reports */
} other;

static void wait_end(int end) {
  char c;
  while (read(end, &c, 1) > 0) {
  }
}

/* A real server, until the test ends it. */
static void other_server(const char *uri, int report, int end) {
  rstate_store *s = NULL;
  rstate_server *srv = NULL;
  char ok = rstate_open(&s, "mem:", NULL) == RSTATE_OK && rstate_server_start(&srv, s, uri, NULL) == RSTATE_OK ? 'y'
                                                                                                               : 'n';
  if (write(report, &ok, 1) != 1) _exit(1);
  wait_end(end);
  if (srv) rstate_server_stop(srv);
  if (s) rstate_close(s);
}

/* A bare socket that counts the bytes its one client sends before closing. */
static void other_listener(const char *uri, int report, int end) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", uri + 5);
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 4) != 0) _exit(1);
  char ok = 'y';
  if (write(report, &ok, 1) != 1) _exit(1);
  int c = accept(l, NULL, NULL);
  long total = 0;
  char buf[512];
  ssize_t k;
  while (c >= 0 && (k = read(c, buf, sizeof buf)) > 0) total += k;
  if (write(report, &total, sizeof total) != sizeof total) _exit(1);
  if (c >= 0) close(c);
  close(l);
  wait_end(end);
}

/* The other user's process is this test program run again, its role in
 * the environment and its pipes on fds 100 and 101, so that it starts
 * clean (a forked copy of a Criterion worker would leave Criterion's
 * memory behind for valgrind to report). It runs before Criterion does. */
#define PEER_REPORT_FD 100
#define PEER_END_FD 101

__attribute__((constructor)) static void peer_role(void) {
  const char *role = getenv("RSTATE_TEST_PEER_ROLE"), *uri = getenv("RSTATE_TEST_PEER_URI");
  if (!role || !uri) return;
  (strcmp(role, "server") == 0 ? other_server : other_listener)(uri, PEER_REPORT_FD, PEER_END_FD);
  close(PEER_REPORT_FD);
  close(PEER_END_FD);
  exit(0);
}

/* Starts the other user's process in role ("server" or "listener") on
 * uri; returns once it wrote its first byte ('y': ready). When this
 * program cannot be run again as that user (a directory it cannot enter),
 * the forked child plays the role itself. */
static other run_as_other(const char *role, const char *uri) {
  int up[2], down[2];
  cr_assert_eq(pipe(up), 0);
  cr_assert_eq(pipe(down), 0);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert(n > 0);
  self[n] = '\0';
  other o = {fork(), down[1], up[0]};
  cr_assert_neq(o.pid, -1);
  if (o.pid == 0) {
    if (dup2(up[1], PEER_REPORT_FD) < 0 || dup2(down[0], PEER_END_FD) < 0) _exit(1);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    if (setgid(OTHER_UID) != 0 || setuid(OTHER_UID) != 0) _exit(1);
    setenv("RSTATE_TEST_PEER_ROLE", role, 1);
    setenv("RSTATE_TEST_PEER_URI", uri, 1);
    char *argv[] = {self, NULL};
    execv(self, argv);
    peer_role();
    _exit(1);
  }
  close(up[1]);
  close(down[0]);
  char ok = 'n';
  cr_assert_eq(read(o.from_child, &ok, 1), 1);
  cr_assert_eq(ok, 'y', "the other user's process did not start");
  return o;
}

static void other_end(other *o) {
  close(o->to_child);
  int status;
  cr_assert_eq(waitpid(o->pid, &status, 0), o->pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the other user's process failed");
  close(o->from_child);
}

Test(peer, a_server_of_another_user_is_refused_unless_trusted) {
  if (geteuid() != 0) cr_skip_test("needs root, to run a server as another user");
  char dir[] = "/tmp/rstate-peer-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  cr_assert_eq(chown(dir, OTHER_UID, OTHER_UID), 0, "chown: %s", strerror(errno));
  char uri[128], raw[128];
  snprintf(uri, sizeof uri, "unix:%s/s.sock", dir);
  snprintf(raw, sizeof raw, "unix:%s/raw.sock", dir);

  /* nothing reaches a process of another user: not even the handshake */
  other lis = run_as_other("listener", raw);
  rstate_store *c = NULL;
  rstate_options o = {.token = "a secret", .no_reconnect = true};
  ASSERT_RC(rstate_open(&c, raw, &o), RSTATE_EPERM);
  char want[256];
  snprintf(want, sizeof want, "the server there runs as uid %d (pid %d), not as this process's uid 0 nor root",
           OTHER_UID, (int)lis.pid);
  cr_assert(strstr(rstate_last_error(), want), "%s", rstate_last_error());
  cr_assert(strstr(rstate_last_error(), "nothing was sent to it"), "%s", rstate_last_error());
  long got = -1;
  cr_assert_eq(read(lis.from_child, &got, sizeof got), (ssize_t)sizeof got);
  cr_assert_eq(got, 0, "the client sent %ld bytes to another user's socket", got);
  other_end(&lis);

  /* a real server of that user: refused, unless trusted by peer_uid */
  other srv = run_as_other("server", uri);
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_EPERM);
  o.peer_uid = OTHER_UID + 1;
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_EPERM);
  o.peer_uid = -2;
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_EINVAL);
  o.peer_uid = OTHER_UID; /* told otherwise: that user is trusted */
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  ASSERT_RC(h_define(c, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL), RSTATE_OK);
  rstate_close(c);
  o.peer_uid = -1; /* anyone */
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  rstate_close(c);
  other_end(&srv);
  unlink(raw + 5);
  rmdir(dir);
}
