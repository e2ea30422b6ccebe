/*
 * test_dispatch.c — queued delivery on a "mem:" store: rstate_fd wakes a
 * host's poll loop, rstate_dispatch runs what is queued (and waits for it
 * with a timeout), the optional dispatch thread runs queued callbacks off the
 * setter's thread, a slow queued callback never blocks a setter, and
 * closing with events still queued ends each watch exactly once.
 *
 * Callbacks never call cr_assert (they may run on the dispatch thread): they
 * record what they saw under a mutex, and the test asserts on the record.
 * Waits for the dispatch thread are bounded (WAIT_MS) and fail with a message
 * saying how far delivery got.
 */
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "core/watch.h" /* rstate__dispatch_round_hook */
#include "leakcheck.h"  /* mem_now, ASSERT_MEM_CLEAN_SINCE */

#define WAIT_MS 10000 /* generous: valgrind runs these too */

/* ---- what the callbacks saw --------------------------------------------- */

typedef struct seen {
  rstate_event_kind kind;
  char name[64];
  rstate_value old_value, new_value; /* copies */
  uint64_t version, revision;
  uint32_t coalesced;
  pthread_t thread;
  int dispatch_rc; /* what rstate_dispatch returned from inside the callback, when tried */
} seen;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  seen *ev;
  size_t n, cap;
  unsigned destroyed;
  bool try_dispatch; /* callbacks call rstate_dispatch and record its code */
  /* the gate a slow callback blocks on */
  bool gate_enabled, gate_entered, gate_open;
  bool closed; /* close_store: rstate_close returned */
} rec;

static rstate_store *s;

static void record(const rstate_event *ev, int dispatch_rc) {
  pthread_mutex_lock(&rec.lock);
  if (rec.n == rec.cap) {
    size_t cap = rec.cap ? rec.cap * 2 : 64;
    seen *p = realloc(rec.ev, cap * sizeof *p);
    if (!p) abort(); /* a test helper out of memory: nothing sensible to do */
    rec.ev = p;
    rec.cap = cap;
  }
  seen *e = &rec.ev[rec.n];
  memset(e, 0, sizeof *e);
  e->kind = ev->kind;
  snprintf(e->name, sizeof e->name, "%s", ev->name);
  rstate_value_copy(&e->old_value, &ev->old_value);
  rstate_value_copy(&e->new_value, &ev->new_value);
  e->version = ev->version;
  e->revision = ev->revision;
  e->coalesced = ev->coalesced;
  e->thread = pthread_self();
  e->dispatch_rc = dispatch_rc;
  rec.n++;
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
}

static int record_cb(const rstate_event *ev, void *ud) {
  (void)ud;
  int rc = 1; /* not tried */
  pthread_mutex_lock(&rec.lock);
  bool try_dispatch = rec.try_dispatch;
  pthread_mutex_unlock(&rec.lock);
  if (try_dispatch) rc = rstate_dispatch(ev->store, 0);
  record(ev, rc);
  return RSTATE_CONTINUE;
}

/* Records the event, then (the first time, when the gate is enabled) blocks
 * until the test opens the gate. */
static int slow_cb(const rstate_event *ev, void *ud) {
  (void)ud;
  record(ev, 1);
  pthread_mutex_lock(&rec.lock);
  if (rec.gate_enabled && !rec.gate_entered) {
    rec.gate_entered = true;
    pthread_cond_broadcast(&rec.cond);
    while (!rec.gate_open) pthread_cond_wait(&rec.cond, &rec.lock);
  }
  pthread_mutex_unlock(&rec.lock);
  return RSTATE_CONTINUE;
}

static void count_destroy(void *ud) {
  (void)ud;
  pthread_mutex_lock(&rec.lock);
  rec.destroyed++;
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
}

static size_t rec_count(void) {
  pthread_mutex_lock(&rec.lock);
  size_t n = rec.n;
  pthread_mutex_unlock(&rec.lock);
  return n;
}

static unsigned rec_destroyed(void) {
  pthread_mutex_lock(&rec.lock);
  unsigned n = rec.destroyed;
  pthread_mutex_unlock(&rec.lock);
  return n;
}

static struct timespec deadline_in(int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

/* Waits (bounded) until at least want events were recorded; returns how many were. */
static size_t rec_wait(size_t want, int ms) {
  struct timespec until = deadline_in(ms);
  pthread_mutex_lock(&rec.lock);
  while (rec.n < want && pthread_cond_timedwait(&rec.cond, &rec.lock, &until) == 0) {
  }
  size_t n = rec.n;
  pthread_mutex_unlock(&rec.lock);
  return n;
}

/* Waits (bounded) until the slow callback is blocked at the gate. */
static bool gate_wait_entered(int ms) {
  struct timespec until = deadline_in(ms);
  pthread_mutex_lock(&rec.lock);
  while (!rec.gate_entered && pthread_cond_timedwait(&rec.cond, &rec.lock, &until) == 0) {
  }
  bool entered = rec.gate_entered;
  pthread_mutex_unlock(&rec.lock);
  return entered;
}

static void gate_open(void) {
  pthread_mutex_lock(&rec.lock);
  rec.gate_open = true;
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void) {
  memset(&rec, 0, sizeof rec);
  pthread_mutex_init(&rec.lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&rec.cond, &ca);
  pthread_condattr_destroy(&ca);
  s = NULL;
}

static void teardown(void) {
  gate_open(); /* a failed test may have left a callback at the gate */
  rstate_close(s);
  s = NULL;
  for (size_t i = 0; i < rec.n; i++) {
    rstate_value_clear(&rec.ev[i].old_value);
    rstate_value_clear(&rec.ev[i].new_value);
  }
  free(rec.ev);
  pthread_cond_destroy(&rec.cond);
  pthread_mutex_destroy(&rec.lock);
}

TestSuite(dispatch, .init = setup, .fini = teardown);

static rstate_store *open_with_thread(void) {
  rstate_options o;
  memset(&o, 0, sizeof o);
  o.dispatch_thread = true;
  return h_open_opts(&o);
}

static rstate_watch_id watch_one(const char *name, rstate_watch_fn fn, bool queued) {
  rstate_watch_opts o;
  memset(&o, 0, sizeof o);
  o.queued = queued;
  o.destroy = count_destroy;
  rstate_watch_id id = 0;
  const char *names[] = {name};
  ASSERT_RC(rstate_watch(s, names, 1, fn, NULL, &o, &id), RSTATE_OK);
  cr_assert_neq(id, 0, "rstate_watch returned RSTATE_OK but watch id 0");
  return id;
}

/* poll(rstate_fd(s), timeout 0): 1 when readable, 0 when not. */
static int fd_ready(void) {
  int fd = rstate_fd(s);
  cr_assert_geq(fd, 0, "rstate_fd returned %d", fd);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = poll(&p, 1, 0);
  cr_assert_geq(n, 0, "poll on rstate_fd failed");
  return n;
}

static void assert_int_event(size_t i, const char *name, int64_t old_v, int64_t new_v, uint64_t version,
                             uint64_t revision) {
  seen *e = &rec.ev[i];
  cr_assert_eq(e->kind, RSTATE_EVENT_CHANGED, "event %zu: kind %d, want CHANGED", i, (int)e->kind);
  cr_assert_str_eq(e->name, name, "event %zu: name %s, want %s", i, e->name, name);
  cr_assert(e->old_value.kind == RSTATE_INT && e->old_value.u.i == old_v,
            "event %zu (%s): old_value is kind %d / %lld, want int %lld", i, name, (int)e->old_value.kind,
            (long long)e->old_value.u.i, (long long)old_v);
  cr_assert(e->new_value.kind == RSTATE_INT && e->new_value.u.i == new_v,
            "event %zu (%s): new_value is kind %d / %lld, want int %lld", i, name, (int)e->new_value.kind,
            (long long)e->new_value.u.i, (long long)new_v);
  cr_assert_eq(e->version, version, "event %zu (%s): version %llu, want %llu", i, name,
               (unsigned long long)e->version, (unsigned long long)version);
  cr_assert_eq(e->revision, revision, "event %zu (%s): revision %llu, want %llu", i, name,
               (unsigned long long)e->revision, (unsigned long long)revision);
  cr_assert_eq(e->coalesced, 1, "event %zu (%s): coalesced %u, want 1 (mem: coalesces only through debounce)", i,
               name, e->coalesced);
}

/* ---- rstate_fd and rstate_dispatch ------------------------------------------- */

Test(dispatch, queued_callbacks_wait_for_dispatch_and_fd_tells_when) {
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);

  cr_assert_eq(fd_ready(), 0, "rstate_fd is readable before anything was set");
  ASSERT_RC(rstate_dispatch(s, 0), 0);

  uint64_t base = rstate_revision(s);
  for (int64_t v = 1; v <= 3; v++) {
    ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
    cr_assert_eq(rec_count(), 0, "a queued callback ran inside rstate_set (set #%lld)", (long long)v);
  }
  cr_assert_eq(fd_ready(), 1, "rstate_fd is not readable after 3 sets reached a queued watch");

  ASSERT_RC(rstate_dispatch(s, 0), 3);
  cr_assert_eq(rec_count(), 3, "rstate_dispatch returned 3 but %zu callbacks ran", rec_count());
  for (size_t i = 0; i < 3; i++)
    assert_int_event(i, "x", (int64_t)i, (int64_t)i + 1, (uint64_t)i + 2, base + i + 1);
  cr_assert(pthread_equal(rec.ev[0].thread, pthread_self()), "rstate_dispatch ran the callback on another thread");

  cr_assert_eq(fd_ready(), 0, "rstate_fd is still readable after rstate_dispatch ran everything");
  ASSERT_RC(rstate_dispatch(s, 0), 0);
  cr_assert_eq(rec_count(), 3, "a second rstate_dispatch delivered something again");

  /* and the next change wakes the loop again */
  ASSERT_RC(rstate_set_int(s, "x", 4), RSTATE_OK);
  cr_assert_eq(fd_ready(), 1, "rstate_fd is not readable after a set that followed a dispatch");
  ASSERT_RC(rstate_dispatch(s, 0), 1);
  cr_assert_eq(fd_ready(), 0, "rstate_fd is still readable after the second dispatch");
  assert_int_event(3, "x", 3, 4, 5, base + 4);
}

Test(dispatch, many_sets_need_one_wakeup_and_one_dispatch) {
  s = h_open();
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("a", record_cb, true);
  watch_one("b", record_cb, true);

  for (int64_t v = 1; v <= 10; v++) {
    ASSERT_RC(rstate_set_int(s, "a", v), RSTATE_OK);
    ASSERT_RC(rstate_set_int(s, "b", v), RSTATE_OK);
  }
  cr_assert_eq(fd_ready(), 1, "rstate_fd is not readable after 20 queued events");
  ASSERT_RC(rstate_dispatch(s, 0), 20);
  cr_assert_eq(fd_ready(), 0, "one rstate_dispatch ran all 20 events, yet rstate_fd is still readable");
  ASSERT_RC(rstate_dispatch(s, 0), 0);

  /* each watch saw its own variable in order */
  int64_t next_a = 1, next_b = 1;
  for (size_t i = 0; i < rec.n; i++) {
    int64_t *next = strcmp(rec.ev[i].name, "a") == 0 ? &next_a : &next_b;
    cr_assert_eq(rec.ev[i].new_value.u.i, *next, "event %zu (%s): value %lld out of order, want %lld", i,
                 rec.ev[i].name, (long long)rec.ev[i].new_value.u.i, (long long)*next);
    (*next)++;
  }
}

Test(dispatch, dispatch_with_nothing_to_do_and_timeout_zero_returns_at_once) {
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  int64_t t0 = mono_ms();
  ASSERT_RC(rstate_dispatch(s, 0), 0);
  int64_t took = mono_ms() - t0;
  cr_assert_lt(took, 1000, "rstate_dispatch(s, 0) with nothing to do took %lld ms", (long long)took);
}

/* A timeout below -1 is a mistake, not "for ever": EINVAL, nothing run. */
Test(dispatch, dispatch_with_a_timeout_below_minus_one_is_einval) {
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  ASSERT_RC(rstate_dispatch(s, -7), RSTATE_EINVAL);
  cr_assert(strstr(rstate_last_error(), "-7") != NULL, "the sentence names the timeout: %s", rstate_last_error());
  cr_assert_eq(rec.n, 0, "a callback ran");
  ASSERT_RC(rstate_dispatch(s, 0), 1); /* the event still waits for a proper call */
}

Test(dispatch, dispatch_waits_about_its_timeout_when_nothing_is_ready) {
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  int64_t t0 = mono_ms();
  ASSERT_RC(rstate_dispatch(s, 50), 0);
  int64_t took = mono_ms() - t0;
  cr_assert_geq(took, 49, "rstate_dispatch(s, 50) with nothing ready returned after only %lld ms", (long long)took);
  cr_assert_lt(took, 5000, "rstate_dispatch(s, 50) with nothing ready took %lld ms", (long long)took);
}

/* A thread that sets x once the main thread says it is about to wait. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool waiting;
  int rc;
} handoff = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 1};

static void *set_when_waiting(void *arg) {
  (void)arg;
  pthread_mutex_lock(&handoff.lock);
  while (!handoff.waiting) pthread_cond_wait(&handoff.cond, &handoff.lock);
  pthread_mutex_unlock(&handoff.lock);
  int rc = rstate_set_int(s, "x", 7);
  pthread_mutex_lock(&handoff.lock);
  handoff.rc = rc;
  pthread_mutex_unlock(&handoff.lock);
  return NULL;
}

Test(dispatch, dispatch_minus_one_returns_when_another_thread_sets, .timeout = 60) {
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, set_when_waiting, NULL), 0);
  pthread_mutex_lock(&handoff.lock);
  handoff.waiting = true;
  pthread_cond_signal(&handoff.cond);
  pthread_mutex_unlock(&handoff.lock);
  int ran = rstate_dispatch(s, -1); /* the criterion .timeout fails the test if this never returns */
  pthread_join(t, NULL);
  cr_assert_eq(handoff.rc, RSTATE_OK, "the setter thread's rstate_set_int returned %s", rstate_error_name(handoff.rc));
  cr_assert_eq(ran, 1, "rstate_dispatch(s, -1) returned %d (%s), want 1 callback", ran, rstate_error_name(ran));
  cr_assert_eq(rec_count(), 1);
  assert_int_event(0, "x", 0, 7, 2, rstate_revision(s));
  cr_assert(pthread_equal(rec.ev[0].thread, pthread_self()),
            "a queued callback ran on the setter's thread, not in rstate_dispatch");
}

Test(dispatch, dispatch_from_a_queued_callback_is_einval) {
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  rec.try_dispatch = true;
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  ASSERT_RC(rstate_dispatch(s, 0), 1);
  cr_assert_eq(rec.ev[0].dispatch_rc, RSTATE_EINVAL, "rstate_dispatch inside a queued callback returned %s",
               rstate_error_name(rec.ev[0].dispatch_rc));
}

Test(dispatch, dispatch_from_an_inline_callback_is_einval) {
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, false);
  rec.try_dispatch = true;
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_eq(rec_count(), 1, "the inline callback did not run inside rstate_set");
  cr_assert_eq(rec.ev[0].dispatch_rc, RSTATE_EINVAL, "rstate_dispatch inside an inline callback returned %s",
               rstate_error_name(rec.ev[0].dispatch_rc));
}

Test(dispatch, dispatch_on_a_store_with_a_dispatch_thread_is_einval, .timeout = 60) {
  s = open_with_thread();
  ASSERT_RC(rstate_dispatch(s, 0), RSTATE_EINVAL);
  cr_assert_neq(strlen(rstate_last_error()), 0, "RSTATE_EINVAL without a sentence in rstate_last_error()");
  ASSERT_RC(rstate_dispatch(s, -1), RSTATE_EINVAL); /* must not wait */
  ASSERT_RC(rstate_dispatch(s, 50), RSTATE_EINVAL);
}

/* ---- the dispatch thread -------------------------------------------------- */

#define N_THREADED 200

Test(dispatch, dispatch_thread_runs_queued_callbacks_elsewhere_in_order, .timeout = 60) {
  s = open_with_thread();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  uint64_t base = rstate_revision(s);
  for (int64_t v = 1; v <= N_THREADED; v++) ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
  size_t got = rec_wait(N_THREADED, WAIT_MS);
  cr_assert_eq(got, N_THREADED, "dispatch thread delivered only %zu of %d events in %d s", got, N_THREADED,
               WAIT_MS / 1000);
  /* every event is in: the dispatch thread records no more (rec_wait took the lock after it wrote) */
  for (size_t i = 0; i < N_THREADED; i++) {
    cr_assert(!pthread_equal(rec.ev[i].thread, pthread_self()), "event %zu ran on the setter's thread", i);
    cr_assert(pthread_equal(rec.ev[i].thread, rec.ev[0].thread), "event %zu ran on a different thread than event 0",
              i);
    assert_int_event(i, "x", (int64_t)i, (int64_t)i + 1, (uint64_t)i + 2, base + i + 1);
  }
}

/* Sum of coalesced over the recorded events (under the lock). */
static uint64_t rec_coalesced_sum(void) {
  pthread_mutex_lock(&rec.lock);
  uint64_t sum = 0;
  for (size_t i = 0; i < rec.n; i++) sum += rec.ev[i].coalesced;
  pthread_mutex_unlock(&rec.lock);
  return sum;
}

Test(dispatch, dispatch_thread_delivers_debounced_bursts, .timeout = 60) {
  s = open_with_thread();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_opts o;
  memset(&o, 0, sizeof o);
  o.debounce_ms = 30;
  o.destroy = count_destroy;
  const char *names[] = {"x"};
  ASSERT_RC(rstate_watch(s, names, 1, record_cb, NULL, &o, NULL), RSTATE_OK);
  for (int64_t v = 1; v <= 5; v++) ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
  /* the sets are normally one burst, but a slow machine may split it: wait
   * until the coalesced counts cover all 5 changes */
  struct timespec until = deadline_in(WAIT_MS);
  pthread_mutex_lock(&rec.lock);
  for (;;) {
    uint64_t sum = 0;
    for (size_t i = 0; i < rec.n; i++) sum += rec.ev[i].coalesced;
    if (sum >= 5 || pthread_cond_timedwait(&rec.cond, &rec.lock, &until) != 0) break;
  }
  pthread_mutex_unlock(&rec.lock);
  uint64_t sum = rec_coalesced_sum();
  cr_assert_eq(sum, 5, "the dispatch thread delivered debounced events covering %llu of 5 changes in %d s",
               (unsigned long long)sum, WAIT_MS / 1000);
  size_t n = rec_count();
  cr_assert(!pthread_equal(rec.ev[n - 1].thread, pthread_self()), "a debounced callback ran on the setter's thread");
  cr_assert_eq(rec.ev[n - 1].new_value.u.i, 5, "the last debounced event carries %lld, want the final value 5",
               (long long)rec.ev[n - 1].new_value.u.i);
}

#define N_SLOW 1000

/* ---- a long backlog on one watch, and the others ------------------------ */

#define N_BACKLOG 2000

/* slow_cb (records, holds the first call at the gate), then 20 us of work:
 * a backlog of N_BACKLOG changes takes the dispatcher 40 ms or more. */
static int slow_busy_cb(const rstate_event *ev, void *ud) {
  slow_cb(ev, ud);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do clock_gettime(CLOCK_MONOTONIC, &t);
  while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 20000);
  return RSTATE_CONTINUE;
}

/* Index of the first recorded event of name, or SIZE_MAX. */
static size_t rec_index(const char *name) {
  pthread_mutex_lock(&rec.lock);
  size_t i = 0;
  while (i < rec.n && strcmp(rec.ev[i].name, name) != 0) i++;
  size_t at = i < rec.n ? i : SIZE_MAX;
  pthread_mutex_unlock(&rec.lock);
  return at;
}

/* Queues N_BACKLOG changes of "a" on a queued watch whose first callback
 * the gate holds, then changes `other` (watched by the caller) once, then
 * lets the dispatcher go, and waits until everything was delivered. */
static void backlog_then(const char *other) {
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rec.gate_enabled = true;
  watch_one("a", slow_busy_cb, true);
  ASSERT_RC(rstate_set_int(s, "a", 1), RSTATE_OK);
  cr_assert(gate_wait_entered(WAIT_MS), "the dispatch thread did not start the first callback in %d s",
            WAIT_MS / 1000);
  for (int64_t v = 2; v <= N_BACKLOG; v++) ASSERT_RC(rstate_set_int(s, "a", v), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, other, 1), RSTATE_OK);
  gate_open();
  size_t got = rec_wait(N_BACKLOG + 1, 2 * WAIT_MS);
  cr_assert_eq(got, N_BACKLOG + 1, "the dispatch thread delivered %zu of %d events in %d s", got, N_BACKLOG + 1,
               2 * WAIT_MS / 1000);
}

/* The dispatch thread takes a bounded run of one queued watch's changes,
 * then turns to the other ready watches: a backlog (or a setter that never
 * pauses) on one watch holds up no other. */
Test(dispatch, a_backlog_on_one_queued_watch_does_not_hold_up_another, .timeout = 60) {
  s = open_with_thread();
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("b", record_cb, true);
  backlog_then("b");
  size_t at = rec_index("b");
  cr_assert(at <= N_BACKLOG / 2, "the other queued watch got its event after %zu of the %d queued before it", at,
            N_BACKLOG);
}

/* The same for a debounced watch whose burst comes due while the backlog
 * is drained: its deadline is looked at between the runs. */
Test(dispatch, a_backlog_on_one_queued_watch_does_not_hold_up_a_debounce_deadline, .timeout = 60) {
  s = open_with_thread();
  h_define_ok(s, "c", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_opts o;
  memset(&o, 0, sizeof o);
  o.debounce_ms = 5;
  const char *names[] = {"c"};
  ASSERT_RC(rstate_watch(s, names, 1, record_cb, NULL, &o, NULL), RSTATE_OK);
  backlog_then("c");
  size_t at = rec_index("c");
  cr_assert(at <= N_BACKLOG / 2, "the debounced watch got its event after %zu of the %d queued before it", at,
            N_BACKLOG);
}

Test(dispatch, a_slow_queued_callback_never_blocks_a_setter, .timeout = 60) {
  s = open_with_thread();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rec.gate_enabled = true;
  rstate_watch_id id = watch_one("x", slow_cb, true);

  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert(gate_wait_entered(WAIT_MS), "the dispatch thread did not start the first callback in %d s",
            WAIT_MS / 1000);
  /* the callback is now blocked; the sets below would hang if they waited for it
   * (the criterion .timeout turns a hang into a failure) */
  for (int64_t v = 2; v <= N_SLOW + 1; v++) ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
  cr_assert_eq(rec_count(), 1, "callbacks ran while the first one was still blocked");
  rstate_watch_stats st;
  ASSERT_RC(rstate_get_watch_stats(s, id, &st), RSTATE_OK);
  cr_assert_eq(st.pending, N_SLOW, "stats.pending is %llu while the callback is blocked, want %d",
               (unsigned long long)st.pending, N_SLOW);

  gate_open();
  size_t got = rec_wait(N_SLOW + 1, WAIT_MS);
  cr_assert_eq(got, N_SLOW + 1, "dispatch thread delivered only %zu of %d events in %d s after the release", got,
               N_SLOW + 1, WAIT_MS / 1000);
  for (size_t i = 0; i < N_SLOW + 1; i++)
    cr_assert_eq(rec.ev[i].new_value.u.i, (int64_t)i + 1, "event %zu carries %lld, want %zu", i,
                 (long long)rec.ev[i].new_value.u.i, i + 1);
  cr_assert_eq(h_get_int(s, "x"), N_SLOW + 1, "final value");
}

/* ---- inline delivery ------------------------------------------------------- */

static void *set_x_to_5(void *arg) {
  int *rc = arg;
  *rc = rstate_set_int(s, "x", 5);
  return NULL;
}

Test(dispatch, inline_callback_runs_on_the_setting_thread_before_set_returns) {
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, false);
  ASSERT_RC(rstate_set_int(s, "x", 4), RSTATE_OK);
  cr_assert_eq(rec_count(), 1, "the inline callback had not run when rstate_set returned");
  /* guarantee 4: a remote store's inline callbacks run on its connection thread */
  if (!h_remote()) cr_assert(pthread_equal(rec.ev[0].thread, pthread_self()), "the inline callback ran on another thread");
  assert_int_event(0, "x", 0, 4, 2, rstate_revision(s));
  cr_assert_eq(fd_ready(), 0, "an inline watch made rstate_fd readable");
  ASSERT_RC(rstate_dispatch(s, 0), 0);

  pthread_t t;
  int rc = 1;
  cr_assert_eq(pthread_create(&t, NULL, set_x_to_5, &rc), 0);
  pthread_join(t, NULL);
  ASSERT_RC(rc, RSTATE_OK);
  cr_assert_eq(rec_count(), 2, "the inline callback had not run when the other thread's rstate_set returned");
  if (!h_remote()) cr_assert(pthread_equal(rec.ev[1].thread, t), "the inline callback did not run on the thread that set");
}

Test(dispatch, inline_callback_on_a_dispatch_thread_store_still_runs_inline, .timeout = 60) {
  s = open_with_thread();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, false);
  ASSERT_RC(rstate_set_int(s, "x", 4), RSTATE_OK);
  cr_assert_eq(rec_count(), 1, "the inline callback had not run when rstate_set returned");
  if (!h_remote()) cr_assert(pthread_equal(rec.ev[0].thread, pthread_self()), "the inline callback ran on another thread");
}

/* ---- rstate_timeout -------------------------------------------------------- */

Test(dispatch, timeout_is_minus_one_without_a_debounce_deadline) {
  s = h_open();
  cr_assert_eq(rstate_timeout(s), -1, "rstate_timeout on a new store is %d", rstate_timeout(s));
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, false);
  rstate_watch_opts o;
  memset(&o, 0, sizeof o);
  o.debounce_ms = 100;
  const char *names[] = {"x"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(s, names, 1, record_cb, NULL, &o, &id), RSTATE_OK);
  cr_assert_eq(rstate_timeout(s), -1, "rstate_timeout is %d with a debounced watch but nothing pending",
               rstate_timeout(s));
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_neq(rstate_timeout(s), -1, "rstate_timeout is -1 while a debounced change is pending");
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  cr_assert_eq(rstate_timeout(s), -1, "rstate_timeout is %d after the debounced watch ended", rstate_timeout(s));
  ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_OK);
  cr_assert_eq(rstate_timeout(s), -1, "rstate_timeout is %d with only an inline watch", rstate_timeout(s));
}

/* ---- ending watches with events queued ---------------------------------------- */

Test(dispatch, unwatch_with_queued_events_destroys_once_and_delivers_nothing_more) {
  mem_report mem_before = mem_now();
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id id = watch_one("x", record_cb, true);
  for (int64_t v = 1; v <= 5; v++) ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  cr_assert_eq(rec_destroyed(), 1, "destroy ran %u times by the time rstate_unwatch returned", rec_destroyed());
  ASSERT_RC(rstate_dispatch(s, 0), 0);
  cr_assert_eq(rec_count(), 0, "%zu callbacks ran after rstate_unwatch", rec_count());
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_ENOTFOUND);
  rstate_close(s);
  s = NULL;
  ASSERT_MEM_CLEAN_SINCE(mem_before);
  cr_assert_eq(rec_destroyed(), 1, "destroy ran %u times", rec_destroyed());
}

Test(dispatch, close_with_queued_events_pending_destroys_once) {
  mem_report mem_before = mem_now();
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  for (int64_t v = 1; v <= 5; v++) ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
  rstate_close(s);
  s = NULL;
  ASSERT_MEM_CLEAN_SINCE(mem_before);
  cr_assert_eq(rec_destroyed(), 1, "destroy ran %u times in rstate_close", rec_destroyed());
  cr_assert_eq(rec_count(), 0, "rstate_close ran %zu queued callbacks", rec_count());
}

/* The first-registered watch has events queued, a later one has none. */
Test(dispatch, close_with_one_of_two_watches_pending_destroys_each_once) {
  mem_report mem_before = mem_now();
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  watch_one("y", record_cb, true);
  for (int64_t v = 1; v <= 5; v++) ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
  rstate_close(s);
  s = NULL;
  ASSERT_MEM_CLEAN_SINCE(mem_before);
  cr_assert_eq(rec_destroyed(), 2, "destroy ran %u times in rstate_close for 2 watches", rec_destroyed());
  cr_assert_eq(rec_count(), 0, "rstate_close ran %zu queued callbacks", rec_count());
}

/* Both watches have events queued, the later-registered one first in line. */
Test(dispatch, close_with_two_watches_pending_in_reverse_order_destroys_each_once) {
  mem_report mem_before = mem_now();
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_one("x", record_cb, true);
  watch_one("y", record_cb, true);
  ASSERT_RC(rstate_set_int(s, "y", 1), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  rstate_close(s);
  s = NULL;
  ASSERT_MEM_CLEAN_SINCE(mem_before);
  cr_assert_eq(rec_destroyed(), 2, "destroy ran %u times in rstate_close for 2 watches", rec_destroyed());
}

Test(dispatch, close_with_a_dispatch_thread_and_events_pending_destroys_once, .timeout = 60) {
  mem_report mem_before = mem_now();
  s = open_with_thread();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rec.gate_enabled = true;
  watch_one("x", slow_cb, true);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert(gate_wait_entered(WAIT_MS), "the dispatch thread did not start the first callback in %d s",
            WAIT_MS / 1000);
  for (int64_t v = 2; v <= 50; v++) ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
  gate_open(); /* rstate_close must not race with a running callback's store calls; this one makes none */
  rstate_close(s);
  s = NULL;
  ASSERT_MEM_CLEAN_SINCE(mem_before);
  cr_assert_eq(rec_destroyed(), 1, "destroy ran %u times in rstate_close", rec_destroyed());
  size_t n = rec_count();
  cr_assert(n >= 1 && n <= 50, "%zu callbacks ran for 50 changes", n);
}

/* The dispatch thread's way to sleep, held at its start by the round hook
 * until rstate_close has asked it to stop and woken it: close_store runs
 * rstate_close on its own thread, so a close that never returns is a
 * failure with a message, not the test's timeout. */
static atomic_bool hold_round;

static void hold_until_woken(int fd) {
  if (!atomic_exchange(&hold_round, false)) return;
  pthread_mutex_lock(&rec.lock);
  rec.gate_entered = true;
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  poll(&p, 1, WAIT_MS); /* the close's wakeup */
}

static void *close_store(void *arg) {
  rstate_close(arg);
  pthread_mutex_lock(&rec.lock);
  rec.closed = true;
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
  return NULL;
}

/* The thread looks at its stop flag, then (finding nothing to do) clears
 * its wakeup and sleeps: a close between the two must still stop it, though
 * the wakeup it clears is the close's. */
Test(dispatch, close_between_a_round_and_its_sleep_stops_the_dispatch_thread, .timeout = 60) {
  atomic_store(&hold_round, true);
  rstate__dispatch_round_hook = hold_until_woken;
  rstate_store *st = open_with_thread();
  pthread_mutex_lock(&rec.lock);
  struct timespec until = deadline_in(WAIT_MS);
  while (!rec.gate_entered && pthread_cond_timedwait(&rec.cond, &rec.lock, &until) == 0) {
  }
  bool held = rec.gate_entered;
  pthread_mutex_unlock(&rec.lock);
  cr_assert(held, "the dispatch thread did not start a round in %d s", WAIT_MS / 1000);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, close_store, st), 0, "cannot start the closing thread");
  until = deadline_in(2 * WAIT_MS);
  pthread_mutex_lock(&rec.lock);
  while (!rec.closed && pthread_cond_timedwait(&rec.cond, &rec.lock, &until) == 0) {
  }
  bool closed = rec.closed;
  pthread_mutex_unlock(&rec.lock);
  cr_assert(closed, "rstate_close did not return in %d s: the dispatch thread slept through its stop",
            2 * WAIT_MS / 1000);
  pthread_join(t, NULL);
  rstate__dispatch_round_hook = NULL;
}

/* ---- several dispatchers, and a watch that ends on its first event ------ */

static atomic_int concurrent_events, dispatch_errors;
static atomic_bool stop_dispatchers;

static int count_event(const rstate_event *ev, void *ud) {
  (void)ev, (void)ud;
  atomic_fetch_add(&concurrent_events, 1);
  return RSTATE_CONTINUE;
}

static void *dispatcher(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_dispatchers))
    if (rstate_dispatch(s, 1) < 0) atomic_fetch_add(&dispatch_errors, 1);
  return NULL;
}

/* rstate_dispatch may be called from any thread, at the same time too: two
 * threads dispatch debounced watches whose deadlines keep coming due. */
Test(dispatch, two_threads_may_dispatch_debounced_watches_at_once, .timeout = 60) {
  s = h_open();
  char name[8][8];
  for (int i = 0; i < 8; i++) {
    snprintf(name[i], sizeof name[i], "d%d", i);
    h_define_ok(s, name[i], RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
    rstate_watch_opts o = {.debounce_ms = 1};
    const char *names[] = {name[i]};
    rstate_watch_id id;
    ASSERT_RC(rstate_watch(s, names, 1, count_event, NULL, &o, &id), RSTATE_OK);
  }
  pthread_t th[2];
  for (int t = 0; t < 2; t++) pthread_create(&th[t], NULL, dispatcher, NULL);
  int sets = 0;
  for (int k = 1; k <= 3000; k++, sets++) ASSERT_RC(rstate_set_int(s, name[k % 8], k), RSTATE_OK);
  /* every burst ends within a few ms of the last set */
  int64_t until = mono_ms() + 10000;
  rstate_watch_stats st;
  bool idle = false;
  while (!idle && mono_ms() < until) {
    idle = true;
    for (rstate_watch_id id = 1; id <= 8; id++) {
      ASSERT_RC(rstate_get_watch_stats(s, id, &st), RSTATE_OK);
      if (st.pending) idle = false;
    }
    /* lets the dispatchers in: valgrind runs one thread at a time, and a
     * thread that never blocks can keep the others out */
    sched_yield();
  }
  atomic_store(&stop_dispatchers, true);
  for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
  cr_assert(idle, "debounced events still pending 10 s after the last set");
  cr_assert_eq(atomic_load(&dispatch_errors), 0);
  cr_assert_gt(atomic_load(&concurrent_events), 0);
}

static int unwatch_at_once(const rstate_event *ev, void *ud) {
  (void)ev, (void)ud;
  atomic_fetch_add(&concurrent_events, 1);
  return RSTATE_UNWATCH;
}

/* The dispatch thread may end a watch on its first INITIAL event while
 * rstate_watch is still returning: rstate_watch must not touch it after. */
Test(dispatch, a_watch_may_end_on_the_dispatch_thread_before_rstate_watch_returns, .timeout = 60) {
  s = open_with_thread();
  for (int i = 0; i < 2000; i++) {
    char name[16];
    snprintf(name, sizeof name, "v%d", i);
    h_define_ok(s, name, RSTATE_TYPE_INTEGER, rstate_int(i), NULL);
  }
  for (int round = 0; round < 20; round++) {
    rstate_watch_opts o = {.include_initial = true, .queued = true, .destroy = count_destroy};
    const char *names[] = {"*"};
    rstate_watch_id id = 0;
    ASSERT_RC(rstate_watch(s, names, 1, unwatch_at_once, NULL, &o, &id), RSTATE_OK);
    cr_assert_neq(id, 0);
  }
  struct timespec until = deadline_in(10000);
  pthread_mutex_lock(&rec.lock);
  while (rec.destroyed < 20 && pthread_cond_timedwait(&rec.cond, &rec.lock, &until) == 0) {
  }
  pthread_mutex_unlock(&rec.lock);
  cr_assert_eq(rec_destroyed(), 20, "only %u of 20 watches ended within 10 s", rec_destroyed());
  cr_assert_eq(atomic_load(&concurrent_events), 20, "each watch saw exactly one event");
}
