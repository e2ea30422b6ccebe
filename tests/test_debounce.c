/*
 * test_debounce.c — debounced watches (Guarantee 7) driven by a fake clock.
 *
 * The library's debounce clock can be replaced through rstate__clock_hook
 * (src/util/util.h, tests only): each test sets it to a function returning a
 * time the test controls, and drives delivery with rstate_dispatch(s, 0), so
 * every deadline is checked to the millisecond without sleeping. Criterion
 * runs each test in its own process; the hook is reset in fini anyway.
 *
 * Checked: trailing-edge delivery after debounce_ms of quiet, with the first
 * old value, the last new value, and coalesced counting the changes merged;
 * the statistics; rstate_timeout; max_wait_ms capping the delay of a burst
 * that never goes quiet; one burst per variable; DEFINED, DELETED and
 * INITIAL events not delayed (and a variable's pending change delivered
 * before its DELETED); and that no change is ever lost: the coalesced counts
 * add up to the number of accepted sets.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "util/util.h"
#include "leakcheck.h" /* mem_now, ASSERT_MEM_CLEAN_SINCE: around the tests that end watches with bursts pending */
#include "recorder.h"

#define MS 1000000LL /* ns */

/* ---- the fake clock ------------------------------------------------------- */

static int64_t fake_now;

static int64_t fake_clock(void) { return fake_now; }

/* Moves the fake clock to ms after the test's origin. Time starts at an
 * arbitrary nonzero origin, as a monotonic clock would. */
#define ORIGIN_NS (1000LL * 1000 * MS)
static void at_ms(int64_t ms) { fake_now = ORIGIN_NS + ms * MS; }

/* ---- what the callbacks saw --------------------------------------------- */

static recorder rec; /* every event, stamped with the fake time of its delivery (ms_now) */

static rstate_store *s;

/* The fake time in ms after the origin: the recorder's clock. */
static int64_t ms_now(void) { return (fake_now - ORIGIN_NS) / MS; }

static void setup(void) {
  rec_init(&rec);
  rec.clock = ms_now;
  at_ms(0);
  rstate__clock_hook = fake_clock;
  s = h_open();
}

static void teardown(void) {
  rstate_close(s);
  s = NULL;
  rstate__clock_hook = NULL;
  rec_free(&rec);
}

TestSuite(debounce, .init = setup, .fini = teardown);

static rstate_watch_id watch_debounced(const char *pattern, uint32_t debounce_ms, uint32_t max_wait_ms,
                                       bool include_initial) {
  rstate_watch_opts o = {.debounce_ms = debounce_ms, .max_wait_ms = max_wait_ms, .include_initial = include_initial};
  return rec_watch1(s, &rec, pattern, &o);
}

static rstate_watch_stats stats(rstate_watch_id id) {
  rstate_watch_stats st;
  memset(&st, 0, sizeof st);
  ASSERT_RC(rstate_get_watch_stats(s, id, &st), RSTATE_OK);
  return st;
}

/* rstate_dispatch(s, 0) at fake time ms; returns how many callbacks ran. */
static int dispatch_at(int64_t ms) {
  at_ms(ms);
  int ran = rstate_dispatch(s, 0);
  cr_assert_geq(ran, 0, "rstate_dispatch(s, 0) at t=%lld ms returned %s: %s", (long long)ms, rstate_error_name(ran),
                rstate_last_error());
  return ran;
}

static void set_at(int64_t ms, const char *name, int64_t v) {
  at_ms(ms);
  int rc = rstate_set_int(s, name, v);
  cr_assert_eq(rc, RSTATE_OK, "rstate_set_int(%s, %lld) at t=%lld ms returned %s: %s", name, (long long)v,
               (long long)ms, rstate_error_name(rc), rstate_last_error());
}

static void assert_int(const rstate_value *v, int64_t want, const char *what, size_t i) {
  cr_assert(v->kind == RSTATE_INT && v->u.i == want, "event %zu (%s): %s is kind %d / %lld, want int %lld", i,
            rec.ev[i].name, what, (int)v->kind, (long long)v->u.i, (long long)want);
}

/* ---- one burst ----------------------------------------------------------------- */

Test(debounce, a_burst_is_one_event_after_the_quiet_period) {
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id id = watch_debounced("x", 100, 0, false);

  for (int64_t k = 0; k < 5; k++) {
    set_at(k * 10, "x", k + 1); /* t = 0, 10, 20, 30, 40 ms */
    cr_assert_eq(rec.n, 0, "a debounced callback ran inside rstate_set");
    cr_assert_eq(dispatch_at(k * 10), 0, "a debounced event was delivered at t=%lld ms, during the burst",
                 (long long)(k * 10));
  }
  uint64_t last_revision = rstate_revision(s);
  rstate_watch_stats st = stats(id);
  cr_assert_eq(st.pending, 1, "stats.pending is %llu while a 5-change burst waits, want 1",
               (unsigned long long)st.pending);
  cr_assert_eq(st.delivered, 0);

  for (int64_t t = 50; t <= 139; t++)
    cr_assert_eq(dispatch_at(t), 0, "delivered at t=%lld ms, before 100 ms of quiet after the last set at 40 ms",
                 (long long)t);
  cr_assert_eq(stats(id).pending, 1, "stats.pending changed before the deadline");

  cr_assert_eq(dispatch_at(140), 1, "nothing delivered at t=140 ms, 100 ms after the last set");
  cr_assert_eq(rec.n, 1);
  rec_event *e = &rec.ev[0];
  cr_assert_eq(e->kind, RSTATE_EVENT_CHANGED, "kind %d, want CHANGED", (int)e->kind);
  cr_assert_str_eq(e->name, "x");
  assert_int(&e->old_value, 0, "old_value (the value before the burst)", 0);
  assert_int(&e->new_value, 5, "new_value (the last one)", 0);
  cr_assert_eq(e->coalesced, 5, "coalesced %u, want 5", e->coalesced);
  cr_assert_eq(e->version, 6, "version %llu, want 6 (the last change's)", (unsigned long long)e->version);
  cr_assert_eq(e->revision, last_revision, "revision %llu, want %llu (the last change's)",
               (unsigned long long)e->revision, (unsigned long long)last_revision);

  st = stats(id);
  cr_assert_eq(st.delivered, 1, "stats.delivered %llu, want 1", (unsigned long long)st.delivered);
  cr_assert_eq(st.coalesced, 4, "stats.coalesced %llu, want 4", (unsigned long long)st.coalesced);
  cr_assert_eq(st.pending, 0, "stats.pending %llu after delivery, want 0", (unsigned long long)st.pending);
  cr_assert_eq(st.filtered, 0);

  cr_assert_eq(dispatch_at(1000), 0, "something was delivered twice");
}

Test(debounce, timeout_reports_the_ms_until_the_deadline) {
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_debounced("x", 100, 0, false);
  cr_assert_eq(rstate_timeout(s), -1, "rstate_timeout with nothing pending is %d", rstate_timeout(s));

  set_at(0, "x", 1);
  cr_assert_eq(rstate_timeout(s), 100, "rstate_timeout right after a set is %d, want 100", rstate_timeout(s));
  at_ms(30);
  cr_assert_eq(rstate_timeout(s), 70, "rstate_timeout 30 ms after a set is %d, want 70", rstate_timeout(s));
  set_at(30, "x", 2);
  cr_assert_eq(rstate_timeout(s), 100, "rstate_timeout right after a second set is %d, want 100 (the deadline moved)",
               rstate_timeout(s));
  fake_now = ORIGIN_NS + 129 * MS + MS / 2;
  cr_assert_eq(rstate_timeout(s), 1, "rstate_timeout 0.5 ms before the deadline is %d, want 1 (rounded up)",
               rstate_timeout(s));
  at_ms(130);
  cr_assert_eq(rstate_timeout(s), 0, "rstate_timeout at the deadline is %d, want 0", rstate_timeout(s));
  at_ms(500);
  cr_assert_eq(rstate_timeout(s), 0, "rstate_timeout past the deadline is %d, want 0", rstate_timeout(s));
  cr_assert_eq(dispatch_at(500), 1);
  cr_assert_eq(rstate_timeout(s), -1, "rstate_timeout after delivery is %d, want -1", rstate_timeout(s));
}

Test(debounce, timeout_is_the_earliest_of_several_deadlines) {
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_debounced("a", 100, 0, false);
  watch_debounced("b", 30, 0, false);
  set_at(0, "a", 1);
  set_at(10, "b", 1);
  cr_assert_eq(rstate_timeout(s), 30, "rstate_timeout is %d, want 30 (b's deadline at 40 ms)", rstate_timeout(s));
  cr_assert_eq(dispatch_at(40), 1);
  cr_assert_str_eq(rec.ev[0].name, "b");
  cr_assert_eq(rstate_timeout(s), 60, "rstate_timeout is %d, want 60 (a's deadline at 100 ms)", rstate_timeout(s));
  cr_assert_eq(dispatch_at(100), 1);
  cr_assert_str_eq(rec.ev[1].name, "a");
}

/* ---- max_wait_ms ---------------------------------------------------------------- */

Test(debounce, max_wait_caps_the_delay_of_a_burst_that_never_goes_quiet) {
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_debounced("x", 100, 250, false);

  int64_t value = 0, sets = 0;
  int64_t burst_start = -1; /* first set not yet delivered */
  size_t seen_before = 0;
  for (int64_t t = 0; t <= 1500; t += 5) {
    dispatch_at(t);
    if (rec.n > seen_before) {
      cr_assert_eq(rec.n, seen_before + 1, "%zu events at once at t=%lld ms for one variable", rec.n - seen_before,
                   (long long)t);
      rec_event *e = &rec.ev[rec.n - 1];
      cr_assert_geq(burst_start, 0, "an event at t=%lld ms with no change pending", (long long)t);
      cr_assert_leq(t - burst_start, 250, "a burst that started at t=%lld ms was delivered at t=%lld ms, later than "
                    "max_wait_ms 250", (long long)burst_start, (long long)t);
      if (t <= 1000)
        cr_assert_geq(t - burst_start, 250, "a burst that never went quiet was delivered after %lld ms, before "
                      "max_wait_ms 250", (long long)(t - burst_start));
      assert_int(&e->new_value, value, "new_value (the latest value)", rec.n - 1);
      seen_before = rec.n;
      burst_start = -1;
    }
    if (t <= 1000 && t % 50 == 0) { /* a set every 50 ms: never 100 ms of quiet */
      set_at(t, "x", ++value);
      sets++;
      if (burst_start < 0) burst_start = t;
    }
  }
  cr_assert_geq(rec.n, 4, "only %zu events in 1 s of constant changes with max_wait_ms 250", rec.n);
  rec_event *last = &rec.ev[rec.n - 1];
  assert_int(&last->new_value, value, "new_value of the last event (the final value)", rec.n - 1);
  cr_assert_leq(last->delivered_at, 1100, "the final value came at t=%lld ms, more than debounce_ms after the last set",
                (long long)last->delivered_at);
  uint64_t sum = 0;
  for (size_t i = 0; i < rec.n; i++) sum += rec.ev[i].coalesced;
  cr_assert_eq(sum, (uint64_t)sets, "coalesced adds up to %llu over %zu events, but %lld changes were made",
               (unsigned long long)sum, rec.n, (long long)sets);
}

/* ---- several variables, DEFINED, DELETED, INITIAL -------------------------------- */

Test(debounce, each_variable_of_a_prefix_watch_has_its_own_burst) {
  h_define_ok(s, "p.a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "p.b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id id = watch_debounced("p.*", 100, 0, false);
  set_at(0, "p.a", 1);
  set_at(20, "p.b", 2);
  set_at(40, "p.a", 3);
  cr_assert_eq(stats(id).pending, 2, "stats.pending %llu with two variables waiting, want 2",
               (unsigned long long)stats(id).pending);

  cr_assert_eq(dispatch_at(119), 0, "delivered before p.b's deadline (120 ms)");
  cr_assert_eq(dispatch_at(120), 1, "p.b was not delivered at its own deadline (120 ms)");
  cr_assert_str_eq(rec.ev[0].name, "p.b");
  assert_int(&rec.ev[0].new_value, 2, "new_value", 0);
  cr_assert_eq(rec.ev[0].coalesced, 1);
  cr_assert_eq(dispatch_at(139), 0, "p.a delivered before its deadline (140 ms)");
  cr_assert_eq(dispatch_at(140), 1, "p.a was not delivered at its deadline (140 ms)");
  cr_assert_str_eq(rec.ev[1].name, "p.a");
  assert_int(&rec.ev[1].old_value, 0, "old_value", 1);
  assert_int(&rec.ev[1].new_value, 3, "new_value", 1);
  cr_assert_eq(rec.ev[1].coalesced, 2, "p.a: coalesced %u, want 2", rec.ev[1].coalesced);
  cr_assert_eq(stats(id).coalesced, 1);
}

Test(debounce, defined_is_delivered_without_waiting) {
  h_define_ok(s, "p.a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_debounced("p.*", 100, 0, false);
  set_at(0, "p.a", 1);
  at_ms(10);
  h_define_ok(s, "p.new", RSTATE_TYPE_INTEGER, rstate_int(42), NULL);
  uint64_t def_revision = rstate_revision(s);
  cr_assert_eq(dispatch_at(10), 1, "the DEFINED event of a debounced watch waited for a deadline");
  rec_event *e = &rec.ev[0];
  cr_assert_eq(e->kind, RSTATE_EVENT_DEFINED, "kind %d, want DEFINED", (int)e->kind);
  cr_assert_str_eq(e->name, "p.new");
  assert_int(&e->new_value, 42, "new_value", 0);
  cr_assert_eq(e->old_value.kind, RSTATE_NONE, "DEFINED has an old_value");
  cr_assert_eq(e->version, 1);
  cr_assert_eq(e->revision, def_revision);

  /* p.a's burst is untouched by another variable's DEFINED */
  cr_assert_eq(dispatch_at(99), 0, "p.a's pending change came early");
  cr_assert_eq(dispatch_at(100), 1, "p.a's pending change did not come at its deadline");
  cr_assert_str_eq(rec.ev[1].name, "p.a");
}

Test(debounce, deleted_is_delivered_without_waiting_after_the_pending_change) {
  h_define_ok(s, "p.a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "p.b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id id = watch_debounced("p.*", 100, 0, false);
  set_at(0, "p.a", 1);
  set_at(5, "p.a", 2);
  set_at(10, "p.b", 7);
  uint64_t change_revision = rstate_revision(s) - 1; /* p.a's last */
  at_ms(20);
  ASSERT_RC(rstate_undefine(s, "p.a"), RSTATE_OK);
  uint64_t delete_revision = rstate_revision(s);

  cr_assert_eq(dispatch_at(20), 2, "at the undefine: %zu events, want p.a's pending change and its DELETED", rec.n);
  rec_event *c = &rec.ev[0], *d = &rec.ev[1];
  cr_assert_eq(c->kind, RSTATE_EVENT_CHANGED, "first event is kind %d, want p.a's pending CHANGED", (int)c->kind);
  cr_assert_str_eq(c->name, "p.a");
  assert_int(&c->old_value, 0, "old_value", 0);
  assert_int(&c->new_value, 2, "new_value", 0);
  cr_assert_eq(c->coalesced, 2);
  cr_assert_eq(c->revision, change_revision);
  cr_assert_eq(d->kind, RSTATE_EVENT_DELETED, "second event is kind %d, want DELETED", (int)d->kind);
  cr_assert_str_eq(d->name, "p.a");
  assert_int(&d->old_value, 2, "old_value of DELETED", 1);
  cr_assert_eq(d->new_value.kind, RSTATE_NONE, "DELETED has a new_value");
  cr_assert_eq(d->version, 3, "DELETED version %llu, want 3 (the last)", (unsigned long long)d->version);
  cr_assert_eq(d->revision, delete_revision);

  /* p.b keeps waiting for its own deadline */
  cr_assert_eq(stats(id).pending, 1, "p.b's burst is no longer pending");
  cr_assert_eq(dispatch_at(109), 0, "p.b came early");
  cr_assert_eq(dispatch_at(110), 1, "p.b did not come at its deadline");
  cr_assert_str_eq(rec.ev[2].name, "p.b");
}

Test(debounce, deleted_without_a_pending_change_comes_alone) {
  h_define_ok(s, "p.a", RSTATE_TYPE_INTEGER, rstate_int(3), NULL);
  watch_debounced("p.*", 100, 0, false);
  ASSERT_RC(rstate_undefine(s, "p.a"), RSTATE_OK);
  cr_assert_eq(dispatch_at(0), 1, "the DELETED event waited");
  cr_assert_eq(rec.ev[0].kind, RSTATE_EVENT_DELETED);
  assert_int(&rec.ev[0].old_value, 3, "old_value of DELETED", 0);
}

Test(debounce, initial_events_come_at_once) {
  h_define_ok(s, "p.b", RSTATE_TYPE_INTEGER, rstate_int(2), NULL);
  h_define_ok(s, "p.a", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  uint64_t snap = rstate_revision(s);
  watch_debounced("p.*", 100, 0, true);
  cr_assert_eq(rec.n, 0, "INITIAL events of a debounced (so queued) watch ran inside rstate_watch");
  cr_assert_eq(dispatch_at(0), 2, "the INITIAL events of a debounced watch were not delivered at once");
  for (size_t i = 0; i < 2; i++) {
    cr_assert_eq(rec.ev[i].kind, RSTATE_EVENT_INITIAL, "event %zu is kind %d, want INITIAL", i, (int)rec.ev[i].kind);
    cr_assert_eq(rec.ev[i].coalesced, 0, "INITIAL event %zu has coalesced %u, want 0", i, rec.ev[i].coalesced);
    cr_assert_eq(rec.ev[i].revision, snap, "INITIAL event %zu has revision %llu, want the snapshot's %llu", i,
                 (unsigned long long)rec.ev[i].revision, (unsigned long long)snap);
    cr_assert_eq(rec.ev[i].old_value.kind, RSTATE_NONE, "INITIAL has an old_value");
  }
  bool a_first = strcmp(rec.ev[0].name, "p.a") == 0;
  assert_int(&rec.ev[a_first ? 0 : 1].new_value, 1, "p.a INITIAL value", a_first ? 0 : 1);
  assert_int(&rec.ev[a_first ? 1 : 0].new_value, 2, "p.b INITIAL value", a_first ? 1 : 0);

  /* later changes are debounced as usual */
  set_at(10, "p.a", 5);
  cr_assert_eq(dispatch_at(10), 0, "a change after the INITIAL events was not debounced");
  cr_assert_eq(dispatch_at(110), 1);
  assert_int(&rec.ev[2].old_value, 1, "old_value after INITIAL", 2);
}

/* ---- nothing lost ------------------------------------------------------------------ */

#define N_VARS 3
#define N_SETS 600

Test(debounce, no_change_is_dropped) {
  static const char *const names[N_VARS] = {"n.a", "n.b", "n.c"};
  for (int i = 0; i < N_VARS; i++) h_define_ok(s, names[i], RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id id = watch_debounced("n.*", 40, 120, false);

  int64_t value[N_VARS] = {0};
  uint64_t accepted = 0;
  uint32_t seed = 12345; /* a fixed LCG: the same schedule every run */
  int64_t t = 0;
  for (int k = 0; k < N_SETS; k++) {
    seed = seed * 1103515245u + 12345u;
    t += (seed >> 16) % 35; /* 0..34 ms apart: some bursts go quiet, some hit max_wait */
    int v = (int)((seed >> 8) % N_VARS);
    dispatch_at(t);
    set_at(t, names[v], ++value[v]);
    accepted++;
    if ((seed >> 4) % 7 == 0) {
      /* a set of the same value: accepted by the API but no change, so not counted */
      set_at(t, names[v], value[v]);
    }
  }
  dispatch_at(t + 1000);
  cr_assert_eq(stats(id).pending, 0, "%llu events still pending 1 s after the last set",
               (unsigned long long)stats(id).pending);

  uint64_t sum = 0;
  uint64_t last_version[N_VARS] = {1, 1, 1};
  for (size_t i = 0; i < rec.n; i++) {
    rec_event *e = &rec.ev[i];
    int v = -1;
    for (int k = 0; k < N_VARS; k++)
      if (strcmp(e->name, names[k]) == 0) v = k;
    cr_assert_geq(v, 0, "event %zu for an unexpected variable %s", i, e->name);
    cr_assert_eq(e->version - last_version[v], e->coalesced,
                 "event %zu (%s): version went %llu -> %llu but coalesced is %u: a change was lost or double counted",
                 i, e->name, (unsigned long long)last_version[v], (unsigned long long)e->version, e->coalesced);
    assert_int(&e->old_value, (int64_t)last_version[v] - 1, "old_value (the value after the previous event)", i);
    last_version[v] = e->version;
    sum += e->coalesced;
  }
  cr_assert_eq(sum, accepted, "coalesced adds up to %llu over %zu events, but %llu changes were accepted",
               (unsigned long long)sum, rec.n, (unsigned long long)accepted);
  for (int k = 0; k < N_VARS; k++) {
    cr_assert_eq(last_version[k], (uint64_t)value[k] + 1, "%s: the last event has version %llu, want %llu", names[k],
                 (unsigned long long)last_version[k], (unsigned long long)value[k] + 1);
  }
  rstate_watch_stats st = stats(id);
  cr_assert_eq(st.delivered, rec.n);
  cr_assert_eq(st.coalesced, accepted - rec.n, "stats.coalesced %llu, want %llu (changes minus events)",
               (unsigned long long)st.coalesced, (unsigned long long)(accepted - rec.n));
}

/* ---- ending a debounced watch -------------------------------------------------------- */

Test(debounce, unwatch_drops_a_pending_burst_and_destroys_once) {
  mem_report mem_before = mem_now();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id id = watch_debounced("x", 100, 0, false);
  set_at(0, "x", 1);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  cr_assert_eq(rec.destroyed, 1, "destroy ran %d times by the time rstate_unwatch returned", rec.destroyed);
  cr_assert_eq(rstate_timeout(s), -1, "rstate_timeout is %d after the only debounced watch ended", rstate_timeout(s));
  cr_assert_eq(dispatch_at(1000), 0, "a burst of an ended watch was delivered");
  rstate_close(s);
  s = NULL;
  ASSERT_MEM_CLEAN_SINCE(mem_before);
  cr_assert_eq(rec.destroyed, 1, "destroy ran %d times", rec.destroyed);
}

Test(debounce, close_with_a_pending_burst_destroys_once) {
  mem_report mem_before = mem_now();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_debounced("x", 100, 0, false);
  watch_debounced("y", 100, 0, false);
  set_at(0, "x", 1);
  set_at(0, "y", 1);
  dispatch_at(100); /* x and y due and delivered ... */
  set_at(100, "x", 2); /* ... and new bursts started */
  set_at(150, "y", 2);
  dispatch_at(200); /* x due: moved to the ready queue and delivered; y still waiting */
  rstate_close(s);
  s = NULL;
  ASSERT_MEM_CLEAN_SINCE(mem_before);
  cr_assert_eq(rec.destroyed, 2, "destroy ran %d times for 2 watches", rec.destroyed);
  cr_assert_eq(rec.n, 3, "%zu events, want 3", rec.n);
}

Test(debounce, max_wait_without_debounce_is_einval) {
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_opts o = {.max_wait_ms = 100, .destroy = rec_destroy};
  const char *names[] = {"x"};
  rstate_watch_id id = 99;
  ASSERT_RC(rstate_watch(s, names, 1, rec_cb, &rec, &o, &id), RSTATE_EINVAL);
  cr_assert_eq(id, 0, "a failed rstate_watch left watch id %llu", (unsigned long long)id);
  cr_assert_eq(rec.destroyed, 0, "a failed rstate_watch called destroy");
  cr_assert_eq(rstate_watcher_count(s, "x"), 0);
}

/* ---- the real clock: rstate_fd wakes a poll loop at the deadline -------------------------- */

Test(debounce, fd_becomes_readable_when_a_deadline_passes_on_the_real_clock, .timeout = 60) {
  rstate_close(s); /* reopen on the real clock */
  rstate__clock_hook = NULL;
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_debounced("x", 200, 0, false);
  struct pollfd p = {.fd = rstate_fd(s), .events = POLLIN};
  cr_assert_eq(poll(&p, 1, 0), 0, "rstate_fd is readable before any change");

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  int timeout = rstate_timeout(s);
  cr_assert(timeout > 0 && timeout <= 200, "rstate_timeout right after the set is %d, want 1..200", timeout);
  /* readable now is wrong only if the deadline cannot have passed yet (a loaded machine may be slow) */
  int early = poll(&p, 1, 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int64_t waited = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  cr_assert(early == 0 || waited >= 199, "rstate_fd is readable %lld ms after the set, before the 200 ms deadline",
            (long long)waited);
  cr_assert_eq(poll(&p, 1, 10000), 1, "rstate_fd did not become readable within 10 s of a 200 ms debounce");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  waited = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  cr_assert_geq(waited, 199, "rstate_fd became readable after %lld ms, before the 200 ms deadline", (long long)waited);
  ASSERT_RC(rstate_dispatch(s, 0), 1);
  cr_assert_eq(rec.n, 1);
  cr_assert_eq(poll(&p, 1, 0), 0, "rstate_fd is still readable after the due event was dispatched");
}

Test(debounce, dispatch_waits_for_the_deadline_on_the_real_clock, .timeout = 60) {
  rstate_close(s);
  rstate__clock_hook = NULL;
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_debounced("x", 50, 0, false);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  int ran = rstate_dispatch(s, 10000);
  cr_assert_eq(ran, 1, "rstate_dispatch(s, 10000) returned %d (%s), want the debounced event", ran,
               rstate_error_name(ran));
  cr_assert_eq(rec.n, 1);
}

/* A debounce deadline that no longer exists must not leave the fd readable
 * (a host's poll loop would spin) nor make rstate_dispatch spin. */
static int64_t thread_cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(debounce, an_ended_watch_leaves_no_deadline_behind_on_the_real_clock, .timeout = 60) {
  rstate_close(s);
  rstate__clock_hook = NULL;
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id id = watch_debounced("x", 30, 0, false);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  cr_assert_eq(rstate_timeout(s), -1, "rstate_timeout is %d with no debounced watch left", rstate_timeout(s));
  struct pollfd p = {.fd = rstate_fd(s), .events = POLLIN};
  /* wait well past where the deadline was: the fd must stay quiet */
  int n = poll(&p, 1, 300);
  cr_expect_eq(n, 0, "rstate_fd became readable for the deadline of a watch that had ended (rstate_dispatch has "
                     "nothing to do: a host's poll loop would spin)");
  int64_t cpu0 = thread_cpu_ms();
  ASSERT_RC(rstate_dispatch(s, 200), 0);
  int64_t cpu = thread_cpu_ms() - cpu0;
  cr_assert_lt(cpu, 100, "rstate_dispatch(s, 200) with nothing to do used %lld ms of CPU: it spins", (long long)cpu);
}

/* A burst flushed early (its variable was undefined) and then the watch
 * ended: the timerfd armed for that burst must not stay readable. */
Test(debounce, a_flushed_burst_leaves_no_timer_behind_on_the_real_clock, .timeout = 60) {
  rstate_close(s);
  rstate__clock_hook = NULL;
  s = h_open();
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_watch_id id = watch_debounced("x", 30, 0, false);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  ASSERT_RC(rstate_undefine(s, "x"), RSTATE_OK); /* DELETED flushes the burst at once */
  cr_assert_eq(rstate_dispatch(s, 0), 2, "the flushed change and the DELETED");
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  struct pollfd p = {.fd = rstate_fd(s), .events = POLLIN};
  int n = poll(&p, 1, 200);
  cr_assert_eq(n, 0, "rstate_fd became readable with nothing to dispatch (a stale timer)");
}

Test(debounce, bursts_due_together_come_in_the_order_they_came_due) {
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  watch_debounced("*", 20, 0, false);
  set_at(0, "a", 1);
  set_at(2, "b", 1);
  cr_assert_eq(dispatch_at(100), 2);
  cr_assert_str_eq(rec.ev[0].name, "a", "a came due first (t=20) but %s was delivered first", rec.ev[0].name);
  cr_assert_str_eq(rec.ev[1].name, "b");
  cr_assert_lt(rec.ev[0].revision, rec.ev[1].revision);
}
