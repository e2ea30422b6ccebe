/*
 * test_order.c — guarantees 1, 2, 4 and 6 under concurrency: per-watch
 * revision order with no gap and no duplicate while several threads set;
 * include_initial with no stale read (inline and queued watches registered
 * while a writer streams); a callback never runs concurrently
 * with itself; rstate_unwatch from another thread waits for a running call.
 * The first and the last again for queued watches, through the dispatch
 * thread and through two threads calling rstate_dispatch.
 */
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "recorder.h"

#define THREADS 4
#define SETS 3000

static rstate_store *s;

static void setup_vars(void) {
  for (int i = 0; i < THREADS; i++) {
    char name[16];
    snprintf(name, sizeof name, "v%d", i);
    h_define_ok(s, name, RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  }
  h_define_ok(s, "shared", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
}

static void setup(void) {
  s = h_open();
  setup_vars();
}

static void teardown(void) { rstate_close(s); }

TestSuite(order, .init = setup, .fini = teardown);

/* Criterion's assertions belong on the test's own thread: threads count
 * their failures here and keep the first sentence, the test asserts. */
static atomic_int thread_failures;
static char thread_failure[512];

static void thread_check(int rc, const char *what) {
  if (rc == RSTATE_OK) return;
  if (atomic_fetch_add(&thread_failures, 1) == 0)
    snprintf(thread_failure, sizeof thread_failure, "%s: %s: %s", what, rstate_error_name(rc), rstate_last_error());
}

static void assert_threads_ok(void) {
  cr_assert_eq(atomic_load(&thread_failures), 0, "%d calls failed on other threads; the first: %s",
               atomic_load(&thread_failures), thread_failure);
}

static void *setter(void *arg) {
  int t = (int)(intptr_t)arg;
  char name[16];
  snprintf(name, sizeof name, "v%d", t);
  for (int i = 1; i <= SETS; i++) {
    thread_check(rstate_set_int(s, name, i), name);
    /* every thread writes a distinct value into shared: always a change */
    thread_check(rstate_set_int(s, "shared", (int64_t)t * SETS + i), "shared");
  }
  return NULL;
}

static void run_setters(void) {
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, setter, (void *)(intptr_t)t);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  assert_threads_ok();
}

/* Checks one watch's record: strictly increasing revisions, and per variable
 * consecutive versions with each old value the previous new value. */
static void check_stream(recorder *r, size_t want) {
  cr_assert_eq(r->n, want, "watch received %zu events, want %zu", r->n, want);
  uint64_t last_rev = 0;
  for (size_t i = 0; i < r->n; i++) {
    rec_event *e = &r->ev[i];
    cr_assert_gt(e->revision, last_rev, "event %zu: revision %llu after %llu", i, (unsigned long long)e->revision,
                 (unsigned long long)last_rev);
    last_rev = e->revision;
    for (size_t k = i; k-- > 0;) {
      if (strcmp(r->ev[k].name, e->name)) continue;
      cr_assert_eq(e->version, r->ev[k].version + 1, "%s: version %llu follows %llu: a gap or a duplicate", e->name,
                   (unsigned long long)e->version, (unsigned long long)r->ev[k].version);
      cr_assert(rstate_value_equal(&e->old_value, &r->ev[k].new_value), "%s: old value is not the previous new one",
                e->name);
      break;
    }
  }
}

Test(order, concurrent_setters_every_watch_sees_every_change_in_order) {
  recorder all, one, shared;
  rec_init(&all);
  rec_init(&one);
  rec_init(&shared);
  rec_watch1(s, &all, "*", NULL);
  rec_watch1(s, &one, "v1", NULL);
  rec_watch1(s, &shared, "shared", NULL);
  run_setters();
  check_stream(&all, 2 * THREADS * SETS);
  check_stream(&one, SETS);
  check_stream(&shared, THREADS * SETS);
  cr_assert_eq(one.ev[one.n - 1].new_value.u.i, SETS);
  cr_assert_eq(shared.ev[shared.n - 1].new_value.u.i, h_get_int(s, "shared"), "the last event is the final value");
  cr_assert_eq(all.ev[all.n - 1].revision, rstate_revision(s));
  rstate_close(s); /* ends the watches before their recorders go */
  s = NULL;
  rec_free(&all);
  rec_free(&one);
  rec_free(&shared);
}

/* ---- no stale read ------------------------------------------------------- */

#define LATE_WATCHES 40
static atomic_bool registered;   /* every late watch is registered */
static atomic_int_fast64_t final_value; /* the writer's last value, once it stopped */

/* Counts "shared" up until every late watch is registered, then 1,000 more
 * (so every registration races the stream; at most 2,000,000 sets). */
static void *counter_writer(void *arg) {
  (void)arg;
  int64_t i = 0, stop = 2000000;
  while (++i <= stop) {
    thread_check(rstate_set_int(s, "shared", i), "shared");
    if (stop == 2000000 && atomic_load(&registered)) stop = i + 1000;
  }
  atomic_store(&final_value, i - 1);
  return NULL;
}

static void reopen(bool dispatch_thread);
static int64_t mono_ms(void);

/* Waits (10 s at most) until r's last event carries final. */
static void wait_final(recorder *r, int64_t final) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&r->lock);
  while (!r->n || r->ev[r->n - 1].new_value.u.i != final)
    if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline)) break;
  int64_t last = r->n ? r->ev[r->n - 1].new_value.u.i : -1;
  size_t n = r->n;
  pthread_mutex_unlock(&r->lock);
  cr_assert_eq(last, final, "waited 10 s for the final value %lld: %zu events, the last %lld", (long long)final, n,
               (long long)last);
}

/* Watches with include_initial registered while a writer streams changes:
 * INITIAL first, then every later change once, in order. Queued ones take
 * the setters' lock-free inbox, which holds their changes until the
 * snapshot is taken. */
static void late_watches_case(bool queued) {
  if (queued) reopen(true);
  pthread_t th;
  uint64_t rev0 = rstate_revision(s);
  atomic_store(&registered, false);
  pthread_create(&th, NULL, counter_writer, NULL);
  for (int64_t until = mono_ms() + 10000; rstate_revision(s) == rev0 && mono_ms() < until;) sched_yield();
  cr_assert_neq(rstate_revision(s), rev0, "the writer made no set in 10 s");
  static recorder r[LATE_WATCHES];
  rstate_watch_opts o = {.include_initial = true, .queued = queued};
  for (int i = 0; i < LATE_WATCHES; i++) {
    rec_init(&r[i]);
    rec_watch1(s, &r[i], "shared", &o);
  }
  atomic_store(&registered, true);
  pthread_join(th, NULL);
  assert_threads_ok();
  int64_t final = atomic_load(&final_value);
  for (int i = 0; i < LATE_WATCHES; i++) wait_final(&r[i], final);
  rstate_close(s); /* ends the watches before their recorders go */
  s = NULL;
  for (int i = 0; i < LATE_WATCHES; i++) {
    cr_assert_geq(r[i].n, 1);
    cr_assert_eq(r[i].ev[0].kind, RSTATE_EVENT_INITIAL, "watch %d: the first event is INITIAL", i);
    int64_t v = r[i].ev[0].new_value.u.i;
    uint64_t rev = r[i].ev[0].revision;
    for (size_t k = 1; k < r[i].n; k++) {
      rec_event *e = &r[i].ev[k];
      cr_assert_eq(e->kind, RSTATE_EVENT_CHANGED);
      cr_assert_eq(e->old_value.u.i, v, "watch %d event %zu: old %lld, last seen %lld (gap or stale)", i, k,
                   (long long)e->old_value.u.i, (long long)v);
      cr_assert_eq(e->new_value.u.i, v + 1, "watch %d event %zu: %lld after %lld", i, k, (long long)e->new_value.u.i,
                   (long long)v);
      cr_assert_gt(e->revision, rev);
      v = e->new_value.u.i;
      rev = e->revision;
    }
    cr_assert_eq(v, final, "watch %d ended at %lld, not the final value %lld", i, (long long)v, (long long)final);
    rec_free(&r[i]);
  }
}

Test(order, include_initial_has_no_gap_and_no_duplicate_under_concurrent_sets) { late_watches_case(false); }

Test(order, queued_include_initial_registered_while_setters_stream, .timeout = 120) { late_watches_case(true); }

/* ---- a callback never runs concurrently with itself --------------------- */

static atomic_int inside, overlaps, calls;

static int exclusive_cb(const rstate_event *ev, void *ud) {
  (void)ev;
  (void)ud;
  if (atomic_fetch_add(&inside, 1) != 0) atomic_fetch_add(&overlaps, 1);
  for (volatile int i = 0; i < 200; i++) {
  }
  atomic_fetch_sub(&inside, 1);
  atomic_fetch_add(&calls, 1);
  return RSTATE_CONTINUE;
}

Test(order, callback_never_runs_concurrently_with_itself) {
  const char *names[] = {"*"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(s, names, 1, exclusive_cb, NULL, NULL, &id), RSTATE_OK);
  run_setters();
  cr_assert_eq(atomic_load(&overlaps), 0, "the callback ran concurrently with itself %d times", overlaps);
  cr_assert_eq(atomic_load(&calls), 2 * THREADS * SETS);
}

/* ---- unwatch from another thread waits for a running call --------------- */

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static bool entered, release, exited, unwatch_returned, exited_at_return;
static int destroyed_at_return, destroyed;
static rstate_watch_id blocking_id;

static int blocking_cb(const rstate_event *ev, void *ud) {
  (void)ev;
  (void)ud;
  pthread_mutex_lock(&m);
  entered = true;
  pthread_cond_broadcast(&c);
  while (!release) pthread_cond_wait(&c, &m);
  exited = true;
  pthread_mutex_unlock(&m);
  return RSTATE_CONTINUE;
}

static void count_destroy(void *ud) {
  (void)ud;
  pthread_mutex_lock(&m);
  destroyed++;
  pthread_mutex_unlock(&m);
}

static void *set_once(void *arg) {
  (void)arg;
  thread_check(rstate_set_int(s, "v0", 1), "v0");
  return NULL;
}

static void *unwatcher(void *arg) {
  (void)arg;
  thread_check(rstate_unwatch(s, blocking_id), "unwatch");
  pthread_mutex_lock(&m);
  unwatch_returned = true;
  exited_at_return = exited;
  destroyed_at_return = destroyed;
  pthread_cond_broadcast(&c);
  pthread_mutex_unlock(&m);
  return NULL;
}

Test(order, unwatch_from_another_thread_waits_for_the_running_callback) {
  const char *names[] = {"v0"};
  rstate_watch_opts o = {.destroy = count_destroy};
  ASSERT_RC(rstate_watch(s, names, 1, blocking_cb, NULL, &o, &blocking_id), RSTATE_OK);
  pthread_t setter_th, unwatch_th;
  pthread_create(&setter_th, NULL, set_once, NULL);
  pthread_mutex_lock(&m);
  while (!entered) pthread_cond_wait(&c, &m);
  pthread_mutex_unlock(&m);

  pthread_create(&unwatch_th, NULL, unwatcher, NULL);
  /* rstate_unwatch must not return while the callback runs: give it 200 ms
   * to (wrongly) return, then let the callback finish */
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_nsec += 200000000;
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&m);
  while (!unwatch_returned)
    if (pthread_cond_timedwait(&c, &m, &deadline)) break;
  bool early = unwatch_returned;
  release = true;
  pthread_cond_broadcast(&c);
  pthread_mutex_unlock(&m);
  pthread_join(unwatch_th, NULL);
  pthread_join(setter_th, NULL);
  assert_threads_ok();
  cr_assert(!early, "rstate_unwatch returned while the callback was still running");
  cr_assert(exited_at_return, "the callback had not finished when rstate_unwatch returned");
  cr_assert_eq(destroyed_at_return, 1, "destroy had not run when rstate_unwatch returned");
  ASSERT_RC(rstate_set_int(s, "v0", 2), RSTATE_OK);
  cr_assert_eq(destroyed, 1);
}

/* ---- queued watches: the same guarantees through the dispatcher ----------- */

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The store again, with a dispatch thread or without (then rstate_dispatch
 * runs the queued callbacks). */
static void reopen(bool dispatch_thread) {
  rstate_close(s);
  rstate_options o;
  memset(&o, 0, sizeof o);
  o.dispatch_thread = dispatch_thread;
  s = h_open_opts(&o);
  setup_vars();
}

static void *dispatcher(void *arg) {
  atomic_bool *stop = arg;
  while (!atomic_load(stop)) {
    int rc = rstate_dispatch(s, 5);
    if (rc < 0) thread_check(rc, "rstate_dispatch");
  }
  return NULL;
}

/* Setters push a queued watch's changes without its lock and the
 * dispatcher takes them as a list: per watch every change once, in order,
 * never two callbacks of one watch at a time, whoever dispatches. */
static void queued_case(bool dispatch_thread, int host_dispatchers) {
  reopen(dispatch_thread);
  rstate_watch_opts q = {.queued = true};
  recorder all, one, shared;
  rec_init(&all);
  rec_init(&one);
  rec_init(&shared);
  rec_watch1(s, &all, "*", &q);
  rec_watch1(s, &one, "v1", &q);
  rec_watch1(s, &shared, "shared", &q);
  const char *names[] = {"*"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(s, names, 1, exclusive_cb, NULL, &q, &id), RSTATE_OK);
  atomic_bool stop = false;
  pthread_t d[2];
  for (int i = 0; i < host_dispatchers; i++) pthread_create(&d[i], NULL, dispatcher, &stop);
  run_setters();
  rec_wait(&all, 2 * THREADS * SETS);
  rec_wait(&one, SETS);
  rec_wait(&shared, THREADS * SETS);
  /* exclusive_cb counts after its callback: wait for the last one */
  for (int64_t until = mono_ms() + 10000; atomic_load(&calls) < 2 * THREADS * SETS && mono_ms() < until;)
    sched_yield();
  atomic_store(&stop, true);
  for (int i = 0; i < host_dispatchers; i++) pthread_join(d[i], NULL);
  assert_threads_ok();
  check_stream(&all, 2 * THREADS * SETS);
  check_stream(&one, SETS);
  check_stream(&shared, THREADS * SETS);
  cr_assert_eq(shared.ev[shared.n - 1].new_value.u.i, h_get_int(s, "shared"), "the last event is the final value");
  cr_assert_eq(all.ev[all.n - 1].revision, rstate_revision(s));
  cr_assert_eq(atomic_load(&overlaps), 0, "a queued callback ran concurrently with itself %d times", overlaps);
  cr_assert_eq(atomic_load(&calls), 2 * THREADS * SETS);
  rstate_close(s);
  s = NULL;
  rec_free(&all);
  rec_free(&one);
  rec_free(&shared);
}

Test(order, queued_watches_on_the_dispatch_thread_see_every_change_in_order, .timeout = 120) { queued_case(true, 0); }

Test(order, queued_watches_dispatched_by_two_threads_see_every_change_in_order, .timeout = 120) {
  queued_case(false, 2);
}

/* rstate_unwatch of a queued watch while setters stream into it: no call
 * starts after it returns, destroy has run once by then. */
static atomic_int streamed_calls;

static int count_streamed(const rstate_event *ev, void *ud) {
  (void)ev;
  (void)ud;
  atomic_fetch_add(&streamed_calls, 1);
  return RSTATE_CONTINUE;
}

Test(order, unwatch_of_a_queued_watch_while_setters_stream, .timeout = 120) {
  reopen(true);
  const char *names[] = {"shared"};
  rstate_watch_opts q = {.queued = true, .destroy = count_destroy};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(s, names, 1, count_streamed, NULL, &q, &id), RSTATE_OK);
  recorder last;
  rec_init(&last);
  rstate_watch_opts lq = {.queued = true};
  rec_watch1(s, &last, "v0", &lq);
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, setter, (void *)(intptr_t)t);
  for (int64_t until = mono_ms() + 10000; atomic_load(&streamed_calls) < 100 && mono_ms() < until;) sched_yield();
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  int at_return = atomic_load(&streamed_calls);
  pthread_mutex_lock(&m);
  int destroyed_then = destroyed;
  pthread_mutex_unlock(&m);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  assert_threads_ok();
  rec_wait(&last, SETS); /* the dispatcher has gone through what the setters queued */
  cr_assert_gt(at_return, 0, "no event reached the watch before rstate_unwatch");
  cr_assert_eq(destroyed_then, 1, "destroy had run %d times when rstate_unwatch returned", destroyed_then);
  cr_assert_eq(atomic_load(&streamed_calls), at_return, "%d callbacks started after rstate_unwatch returned",
               atomic_load(&streamed_calls) - at_return);
  rstate_close(s);
  s = NULL;
  pthread_mutex_lock(&m);
  cr_assert_eq(destroyed, 1, "destroy ran %d times", destroyed);
  pthread_mutex_unlock(&m);
  rec_free(&last);
}
