/*
 * test_watch.c — watching on a "mem:" store: events and their fields, exact
 * and prefix names, DEFINED/DELETED, filter and ignore_source, statistics,
 * unwatch and destroy. Concurrency is in test_order.c, callbacks calling
 * the store in test_reentrancy.c, queued delivery in test_dispatch.c.
 */
#include <math.h>
#include <time.h>

#include "recorder.h"

static rstate_store *s;
static recorder r;

static void setup(void) {
  s = h_open();
  rec_init(&r);
  h_define_ok(s, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), NULL);
  h_define_ok(s, "model.name", RSTATE_TYPE_STRING, rstate_string("gpt-4"), NULL);
  h_define_ok(s, "model.tokens", RSTATE_TYPE_INTEGER, rstate_int(100), NULL);
}

static void teardown(void) {
  rstate_close(s);
  rec_free(&r);
}

TestSuite(watch, .init = setup, .fini = teardown);

Test(watch, changed_event_carries_every_field) {
  rstate_watch_id id = rec_watch1(s, &r, "temperature", NULL);
  rstate_meta meta[] = {{"reason", "tuning"}};
  rstate_set_opts so = {.source = "optimizer", .meta = meta, .n_meta = 1};
  rstate_value v = rstate_float(0.9);
  struct timespec before;
  clock_gettime(CLOCK_REALTIME, &before);
  ASSERT_RC(rstate_set(s, "temperature", &v, &so), RSTATE_OK);
  cr_assert_eq(r.n, 1, "an inline callback has run when rstate_set returns; got %zu events", r.n);
  rec_event *e = &r.ev[0];
  cr_assert_eq(e->kind, RSTATE_EVENT_CHANGED);
  cr_assert_str_eq(e->name, "temperature");
  cr_assert_eq(e->type, RSTATE_TYPE_FLOAT);
  cr_assert_eq(e->old_value.kind, RSTATE_FLOAT);
  cr_assert_float_eq(e->old_value.u.f, 0.7, 1e-12);
  cr_assert_float_eq(e->new_value.u.f, 0.9, 1e-12);
  cr_assert_eq(e->version, 2);
  cr_assert_eq(e->revision, rstate_revision(s));
  cr_assert_eq(e->revision, h_info(s, "temperature").revision);
  int64_t t0 = (int64_t)before.tv_sec * 1000000000 + before.tv_nsec;
  cr_assert(e->timestamp_ns >= t0 - 1000000 && e->timestamp_ns <= t0 + 5000000000LL, "timestamp %lld not near now",
            (long long)e->timestamp_ns);
  cr_assert(e->has_source);
  cr_assert_str_eq(e->source, "optimizer");
  cr_assert_eq(e->n_meta, 1);
  cr_assert_str_eq(e->meta0_key, "reason");
  cr_assert_str_eq(e->meta0_value, "tuning");
  cr_assert_eq(e->coalesced, 1);
  cr_assert_eq(e->watch, id);
  cr_assert_eq(e->store, s);
}

Test(watch, no_source_is_null) {
  rec_watch1(s, &r, "temperature", NULL);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.0), RSTATE_OK);
  cr_assert_eq(r.n, 1);
  cr_assert(!r.ev[0].has_source, "source should be NULL when none was given");
  cr_assert_eq(r.ev[0].n_meta, 0);
}

Test(watch, equal_and_rejected_sets_send_nothing) {
  rec_watch1(s, &r, "temperature", NULL);
  ASSERT_RC(rstate_set_float(s, "temperature", 0.7), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", NAN), RSTATE_ETYPE);
  ASSERT_RC(rstate_set_string(s, "temperature", "hot"), RSTATE_ETYPE);
  cr_assert_eq(r.n, 0, "equal or rejected sets delivered %zu events", r.n);
}

Test(watch, unknown_exact_name_registers_nothing) {
  const char *names[] = {"temperature", "missing"};
  rstate_watch_opts o = {.destroy = rec_destroy};
  rstate_watch_id id = 99;
  ASSERT_FAIL_NAMES(rstate_watch(s, names, 2, rec_cb, &r, &o, &id), RSTATE_ENOTFOUND, "missing");
  cr_assert_eq(id, 0);
  cr_assert_eq(rstate_watcher_count(s, "temperature"), 0);
  cr_assert_eq(r.destroyed, 0, "a failed rstate_watch must not call destroy");
  ASSERT_RC(rstate_set_float(s, "temperature", 1.0), RSTATE_OK);
  cr_assert_eq(r.n, 0);
}

Test(watch, bad_arguments) {
  const char *names[] = {"temperature"};
  const char *bad[] = {"bad name"};
  const char *mid[] = {"a*b"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(NULL, names, 1, rec_cb, &r, NULL, &id), RSTATE_EINVAL);
  ASSERT_RC(rstate_watch(s, names, 1, NULL, &r, NULL, &id), RSTATE_EINVAL);
  ASSERT_RC(rstate_watch(s, NULL, 1, rec_cb, &r, NULL, &id), RSTATE_EINVAL);
  ASSERT_RC(rstate_watch(s, names, 0, rec_cb, &r, NULL, &id), RSTATE_EINVAL);
  ASSERT_RC(rstate_watch(s, bad, 1, rec_cb, &r, NULL, &id), RSTATE_EINVAL);
  ASSERT_RC(rstate_watch(s, mid, 1, rec_cb, &r, NULL, &id), RSTATE_EINVAL);
  rstate_watch_opts o = {.max_wait_ms = 10};
  ASSERT_RC(rstate_watch(s, names, 1, rec_cb, &r, &o, &id), RSTATE_EINVAL);
  ASSERT_RC(rstate_unwatch(s, 12345), RSTATE_ENOTFOUND);
  ASSERT_RC(rstate_unwatch(NULL, 1), RSTATE_EINVAL);
  rstate_watch_stats st;
  ASSERT_RC(rstate_get_watch_stats(s, 12345, &st), RSTATE_ENOTFOUND);
  cr_assert_eq(rstate_watcher_count(s, "temperature"), 0);
}

Test(watch, include_initial_sends_current_values_first) {
  ASSERT_RC(rstate_set_int(s, "model.tokens", 200), RSTATE_OK);
  uint64_t rev = rstate_revision(s);
  rstate_watch_opts o = {.include_initial = true};
  const char *names[] = {"model.*", "temperature"};
  rec_watch(s, &r, names, 2, &o);
  cr_assert_eq(r.n, 3);
  const char *want[] = {"model.name", "model.tokens", "temperature"};
  for (size_t i = 0; i < 3; i++) {
    cr_assert_eq(r.ev[i].kind, RSTATE_EVENT_INITIAL);
    cr_assert_str_eq(r.ev[i].name, want[i]);
    cr_assert_eq(r.ev[i].old_value.kind, RSTATE_NONE);
    cr_assert_eq(r.ev[i].coalesced, 0);
    cr_assert_eq(r.ev[i].revision, rev, "INITIAL revision is the snapshot's");
  }
  cr_assert_eq(r.ev[1].new_value.u.i, 200);
  cr_assert_eq(r.ev[1].version, 2);
  ASSERT_RC(rstate_set_int(s, "model.tokens", 300), RSTATE_OK);
  cr_assert_eq(r.n, 4);
  cr_assert_eq(r.ev[3].kind, RSTATE_EVENT_CHANGED);
  cr_assert_eq(r.ev[3].old_value.u.i, 200);
  cr_assert_eq(r.ev[3].revision, rev + 1);
}

Test(watch, prefix_covers_later_definitions_and_deletions) {
  rec_watch1(s, &r, "model.*", NULL);
  h_define_ok(s, "model.top_p", RSTATE_TYPE_FLOAT, rstate_float(0.9), NULL);
  h_define_ok(s, "other", RSTATE_TYPE_FLOAT, rstate_float(0.9), NULL);
  ASSERT_RC(rstate_set_float(s, "model.top_p", 0.5), RSTATE_OK);
  ASSERT_RC(rstate_undefine(s, "model.top_p"), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", 0.1), RSTATE_OK);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_DEFINED);
  cr_assert_eq(r.ev[0].old_value.kind, RSTATE_NONE);
  cr_assert_float_eq(r.ev[0].new_value.u.f, 0.9, 1e-12);
  cr_assert_eq(r.ev[0].version, 1);
  cr_assert_eq(r.ev[1].kind, RSTATE_EVENT_CHANGED);
  cr_assert_eq(r.ev[2].kind, RSTATE_EVENT_DELETED);
  cr_assert_float_eq(r.ev[2].old_value.u.f, 0.5, 1e-12);
  cr_assert_eq(r.ev[2].new_value.kind, RSTATE_NONE);
  cr_assert_eq(r.ev[2].version, 2);
  cr_assert(r.ev[0].revision < r.ev[1].revision && r.ev[1].revision < r.ev[2].revision);
}

Test(watch, star_alone_covers_everything) {
  rec_watch1(s, &r, "*", NULL);
  ASSERT_RC(rstate_set_float(s, "temperature", 0.1), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "model.tokens", 1), RSTATE_OK);
  cr_assert_eq(r.n, 2);
  cr_assert_eq(rstate_watcher_count(s, "temperature"), 1);
}

Test(watch, exact_watch_sees_redefinition) {
  rec_watch1(s, &r, "temperature", NULL);
  ASSERT_RC(rstate_undefine(s, "temperature"), RSTATE_OK);
  h_define_ok(s, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.2), NULL);
  cr_assert_eq(r.n, 2);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_DELETED);
  cr_assert_eq(r.ev[1].kind, RSTATE_EVENT_DEFINED);
  cr_assert_eq(r.ev[1].version, 1);
}

Test(watch, overlapping_patterns_deliver_once) {
  const char *names[] = {"model.*", "model.name", "*", "model.name"};
  rec_watch(s, &r, names, 4, NULL);
  ASSERT_RC(rstate_set_string(s, "model.name", "claude-3"), RSTATE_OK);
  cr_assert_eq(r.n, 1, "a variable covered by several patterns of one watch gets one event, got %zu", r.n);
  cr_assert_eq(rstate_watcher_count(s, "model.name"), 1);
}

Test(watch, batch_events_share_one_revision) {
  const char *names[] = {"*"};
  rec_watch(s, &r, names, 1, NULL);
  rstate_assign items[] = {{"temperature", rstate_float(1.5)}, {"model.tokens", rstate_int(7)}};
  ASSERT_RC(rstate_set_many(s, items, 2, NULL, NULL), RSTATE_OK);
  cr_assert_eq(r.n, 2);
  cr_assert_eq(r.ev[0].revision, r.ev[1].revision);
  cr_assert_eq(r.ev[0].revision, rstate_revision(s));
  rstate_assign bad[] = {{"temperature", rstate_float(2.5)}, {"model.tokens", rstate_string("x")}};
  ASSERT_RC(rstate_set_many(s, bad, 2, NULL, NULL), RSTATE_ETYPE);
  cr_assert_eq(r.n, 2, "a rejected batch delivered events");
}

static bool only_big(const rstate_event *ev, void *ud) {
  (void)ud;
  return ev->new_value.kind == RSTATE_FLOAT && ev->new_value.u.f > 1.0;
}

Test(watch, filter_and_stats) {
  rstate_watch_opts o = {.filter = only_big};
  rstate_watch_id id = rec_watch1(s, &r, "temperature", &o);
  ASSERT_RC(rstate_set_float(s, "temperature", 0.5), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.5), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", 0.2), RSTATE_OK);
  cr_assert_eq(r.n, 1);
  cr_assert_float_eq(r.ev[0].new_value.u.f, 1.5, 1e-12);
  cr_assert_float_eq(r.ev[0].old_value.u.f, 0.5, 1e-12, "old value is the value before this change, filtered or not");
  rstate_watch_stats st;
  ASSERT_RC(rstate_get_watch_stats(s, id, &st), RSTATE_OK);
  cr_assert_eq(st.delivered, 1);
  cr_assert_eq(st.filtered, 2);
  cr_assert_eq(st.coalesced, 0);
  cr_assert_eq(st.pending, 0);
}

Test(watch, ignore_source_skips_own_writes) {
  rstate_watch_opts o = {.ignore_source = "me"};
  rstate_watch_id id = rec_watch1(s, &r, "temperature", &o);
  rstate_set_opts mine = {.source = "me"}, theirs = {.source = "them"};
  rstate_value a = rstate_float(0.1), b = rstate_float(0.2), c = rstate_float(0.3);
  ASSERT_RC(rstate_set(s, "temperature", &a, &mine), RSTATE_OK);
  ASSERT_RC(rstate_set(s, "temperature", &b, &theirs), RSTATE_OK);
  ASSERT_RC(rstate_set(s, "temperature", &c, NULL), RSTATE_OK);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.ev[0].source, "them");
  cr_assert(!r.ev[1].has_source);
  rstate_watch_stats st;
  ASSERT_RC(rstate_get_watch_stats(s, id, &st), RSTATE_OK);
  cr_assert_eq(st.filtered, 1);
  cr_assert_eq(st.delivered, 2);
}

Test(watch, watcher_count_counts_live_watches) {
  recorder r2;
  rec_init(&r2);
  cr_assert_eq(rstate_watcher_count(s, "model.name"), 0);
  rstate_watch_id a = rec_watch1(s, &r, "model.name", NULL);
  rstate_watch_id b = rec_watch1(s, &r2, "model.*", NULL);
  cr_assert_eq(rstate_watcher_count(s, "model.name"), 2);
  cr_assert_eq(rstate_watcher_count(s, "model.tokens"), 1);
  cr_assert_eq(rstate_watcher_count(s, "temperature"), 0);
  cr_assert_eq(rstate_watcher_count(s, "model.later"), 1, "a prefix covers names not defined yet");
  ASSERT_RC(rstate_unwatch(s, a), RSTATE_OK);
  cr_assert_eq(rstate_watcher_count(s, "model.name"), 1);
  ASSERT_RC(rstate_unwatch(s, b), RSTATE_OK);
  cr_assert_eq(rstate_watcher_count(s, "model.name"), 0);
  cr_assert_eq(rstate_watcher_count(NULL, "x"), 0);
  rec_free(&r2);
}

Test(watch, unwatch_stops_delivery_and_destroys_once) {
  rstate_watch_id id = rec_watch1(s, &r, "temperature", NULL);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.0), RSTATE_OK);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  cr_assert_eq(r.destroyed, 1, "destroy has run when rstate_unwatch returns");
  ASSERT_RC(rstate_set_float(s, "temperature", 2.0), RSTATE_OK);
  cr_assert_eq(r.n, 1);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_ENOTFOUND);
  cr_assert_eq(r.destroyed, 1);
}

Test(watch, returning_unwatch_ends_the_watch) {
  r.ret = RSTATE_UNWATCH;
  rstate_watch_id id = rec_watch1(s, &r, "temperature", NULL);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.0), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.5), RSTATE_OK);
  cr_assert_eq(r.n, 1);
  cr_assert_eq(r.destroyed, 1);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_ENOTFOUND);
  cr_assert_eq(rstate_watcher_count(s, "temperature"), 0);
}

Test(watch, close_destroys_every_watch_once) {
  recorder r2;
  rec_init(&r2);
  rec_watch1(s, &r, "temperature", NULL);
  rstate_watch_opts q = {.queued = true};
  rec_watch1(s, &r2, "*", &q);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.0), RSTATE_OK); /* leaves a queued event pending */
  rstate_close(s);
  s = h_open(); /* teardown closes this one */
  cr_assert_eq(r.destroyed, 1);
  cr_assert_eq(r2.destroyed, 1);
  cr_assert_eq(r2.n, 0);
  rec_free(&r2);
}

Test(watch, string_values_are_valid_during_the_callback) {
  rec_watch1(s, &r, "model.name", NULL);
  ASSERT_RC(rstate_set_string(s, "model.name", "claude-3"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "model.name", "gemini"), RSTATE_OK);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.ev[0].old_value.u.s.ptr, "gpt-4");
  cr_assert_str_eq(r.ev[0].new_value.u.s.ptr, "claude-3");
  cr_assert_str_eq(r.ev[1].old_value.u.s.ptr, "claude-3");
  cr_assert_str_eq(r.ev[1].new_value.u.s.ptr, "gemini");
}

/* ---- regressions --------------------------------------------------------- */

static rstate_watch_id filter_self_id;
static bool unwatch_in_filter(const rstate_event *ev, void *ud) {
  (void)ud;
  cr_assert_eq(rstate_unwatch(ev->store, filter_self_id), RSTATE_OK);
  return true;
}

Test(watch, unwatch_from_the_filter_means_fn_does_not_run) {
  rstate_watch_opts o = {.filter = unwatch_in_filter, .destroy = rec_destroy};
  const char *names[] = {"temperature"};
  ASSERT_RC(rstate_watch(s, names, 1, rec_cb, &r, &o, &filter_self_id), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.0), RSTATE_OK);
  cr_assert_eq(r.n, 0, "fn ran after its watch was unwatched by its own filter");
  cr_assert_eq(r.destroyed, 1);
}

Test(watch, watcher_count_of_an_overlong_name_is_zero) {
  rec_watch1(s, &r, "*", NULL);
  char longname[600];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cr_assert_eq(rstate_watcher_count(s, longname), 0);
}

Test(watch, initial_events_carry_the_time_of_the_last_change) {
  rstate_var_info info = h_info(s, "temperature");
  rstate_watch_opts o = {.include_initial = true};
  rec_watch1(s, &r, "temperature", &o);
  cr_assert_eq(r.n, 1);
  cr_assert_eq(r.ev[0].timestamp_ns, info.updated_ns);
  cr_assert_neq(r.ev[0].timestamp_ns, 0);
}

static void destroy_sets(void *ud) {
  rstate_store *st = ud;
  cr_assert_eq(rstate_set_float(st, "temperature", 42.0), RSTATE_OK);
}

static int noop_cb(const rstate_event *ev, void *ud) {
  (void)ev, (void)ud;
  return RSTATE_CONTINUE;
}

Test(watch, a_change_made_by_destroy_is_delivered_when_unwatch_returns) {
  rec_watch1(s, &r, "temperature", NULL);
  const char *names[] = {"model.name"};
  rstate_watch_opts o = {.destroy = destroy_sets};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(s, names, 1, noop_cb, s, &o, &id), RSTATE_OK);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  cr_assert_eq(r.n, 1, "the change made inside destroy reached the other watch");
  cr_assert_float_eq(r.ev[0].new_value.u.f, 42.0, 1e-12);
}

static int count_cb(const rstate_event *ev, void *ud) {
  (void)ev;
  (*(int *)ud)++;
  return RSTATE_CONTINUE;
}

/* The registry looks at a per-name-hash count before taking its lock: after
 * many watches come and go, every remaining watch must still get its events. */
Test(watch, every_remaining_watch_is_reached_after_many_come_and_go) {
  enum { N = 1500 };
  static int hits[N];
  static rstate_watch_id ids[N];
  char name[32];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "var.%d", i);
    h_define_ok(s, name, RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
    const char *names[] = {name};
    ASSERT_RC(rstate_watch(s, names, 1, count_cb, &hits[i], NULL, &ids[i]), RSTATE_OK);
  }
  for (int i = 0; i < N; i += 2) ASSERT_RC(rstate_unwatch(s, ids[i]), RSTATE_OK);
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "var.%d", i);
    ASSERT_RC(rstate_set_int(s, name, 1), RSTATE_OK);
    cr_assert_eq(hits[i], i % 2, "var.%d: %d events, want %d", i, hits[i], i % 2);
  }
}

static int filter_calls;
static bool count_filter(const rstate_event *ev, void *ud) {
  (void)ev, (void)ud;
  filter_calls++;
  return true;
}

/* Guarantee 4: a filter runs at delivery, not when the change is made. */
Test(watch, a_queued_watch_runs_its_filter_at_delivery) {
  rstate_watch_opts o = {.queued = true, .filter = count_filter};
  rec_watch1(s, &r, "temperature", &o);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.0), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", 2.0), RSTATE_OK);
  cr_assert_eq(filter_calls, 0, "the filter ran inside rstate_set, before delivery");
  cr_assert_eq(rstate_dispatch(s, 0), 2);
  cr_assert_eq(filter_calls, 2);
  cr_assert_eq(r.n, 2);
}
