/*
 * test_backend.c — the front end over a backend of our own (testbackend.c,
 * written only against reactivestate/backend.h): rstate_open_backend checks
 * the operations table, and watching behaves exactly as on "mem:" — inline
 * CHANGED events, INITIAL events, DEFINED/DELETED for prefix watches, queued
 * delivery, filters, RSTATE_UNWATCH, one revision per rstate_set_many — so
 * the front end depends on nothing but the backend interface. A backend
 * whose rstate_host_emit fails abandons the change, and the caller sees the
 * error with nothing changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "recorder.h"
#include "testbackend.h"

/* ---- what the callbacks saw --------------------------------------------- */

static recorder rec;
static unsigned closes_at_destroy; /* testbackend_closes() when a destroy last ran */

static rstate_store *s;

/* The recorder's destroy, noting how many times the backend had been closed by then. */
static void count_destroy(void *ud) {
  closes_at_destroy = testbackend_closes();
  rec_destroy(ud);
}

static bool above_one(const rstate_event *ev, void *ud) {
  (void)ud;
  return ev->new_value.kind == RSTATE_FLOAT && ev->new_value.u.f > 1.0;
}

static rstate_store *open_test(void) {
  rstate_store *st = NULL;
  int rc = rstate_open_backend(&st, &testbackend_ops, "test:", NULL);
  cr_assert_eq(rc, RSTATE_OK, "rstate_open_backend(test:) returned %s: %s", rstate_error_name(rc),
               rstate_last_error());
  cr_assert_not_null(st);
  return st;
}

static void setup(void) {
  rec_init(&rec);
  closes_at_destroy = 0;
  testbackend_emit_hook = NULL;
  s = open_test();
}

static void teardown(void) {
  rstate_close(s);
  s = NULL;
  testbackend_emit_hook = NULL;
  rec_free(&rec);
}

TestSuite(backend, .init = setup, .fini = teardown);

static void define_float(rstate_store *st, const char *name, double initial) {
  h_define_ok(st, name, RSTATE_TYPE_FLOAT, rstate_float(initial), NULL);
}

static rstate_watch_id watch_with(rstate_store *st, const char *const *names, size_t n, const rstate_watch_opts *opts) {
  rstate_watch_opts o;
  memset(&o, 0, sizeof o);
  if (opts) o = *opts;
  o.destroy = count_destroy;
  return rec_watch(st, &rec, names, n, &o);
}

static rstate_watch_id watch_one(const char *name, const rstate_watch_opts *opts) {
  const char *names[] = {name};
  return watch_with(s, names, 1, opts);
}

static void assert_float(const rstate_value *v, double want, const char *what, size_t i) {
  cr_assert(v->kind == RSTATE_FLOAT && v->u.f == want, "event %zu (%s): %s is kind %d / %g, want float %g", i,
            rec.ev[i].name, what, (int)v->kind, v->u.f, want);
}

static void assert_event(size_t i, rstate_event_kind kind, const char *name, uint64_t version, uint64_t revision) {
  cr_assert_lt(i, rec.n, "event %zu expected, only %zu delivered", i, rec.n);
  rec_event *e = &rec.ev[i];
  cr_assert_eq(e->kind, kind, "event %zu (%s): kind %d, want %d", i, e->name, (int)e->kind, (int)kind);
  cr_assert_str_eq(e->name, name, "event %zu: name %s, want %s", i, e->name, name);
  cr_assert_eq(e->type, RSTATE_TYPE_FLOAT, "event %zu (%s): type %d", i, name, (int)e->type);
  cr_assert_eq(e->version, version, "event %zu (%s): version %llu, want %llu", i, name,
               (unsigned long long)e->version, (unsigned long long)version);
  cr_assert_eq(e->revision, revision, "event %zu (%s): revision %llu, want %llu", i, name,
               (unsigned long long)e->revision, (unsigned long long)revision);
  cr_assert_eq(e->store, s, "event %zu (%s): ev->store is not the store", i, name);
}

/* ---- rstate_open_backend checks the table ---------------------------------------- */

static void assert_open_rejected(const rstate_backend_ops *ops, const char *what) {
  unsigned opens = testbackend_opens();
  static char sentinel;
  rstate_store *st = (rstate_store *)(void *)&sentinel; /* anything but NULL */
  int rc = rstate_open_backend(&st, ops, "test:", NULL);
  cr_assert_eq(rc, RSTATE_EINVAL, "rstate_open_backend with %s returned %s, want RSTATE_EINVAL", what,
               rstate_error_name(rc));
  cr_assert_null(st, "rstate_open_backend with %s failed but left *out set", what);
  cr_assert_neq(strlen(rstate_last_error()), 0, "rstate_open_backend with %s: no sentence in rstate_last_error()",
                what);
  cr_assert_eq(testbackend_opens(), opens, "rstate_open_backend with %s called the table's open", what);
  if (rc == RSTATE_OK) rstate_close(st);
}

Test(backend, open_rejects_an_unknown_table_version) {
  rstate_backend_ops ops = testbackend_ops;
  ops.version = 0;
  assert_open_rejected(&ops, "version 0");
  ops.version = 99;
  assert_open_rejected(&ops, "version 99");
  ops.version = RSTATE_BACKEND_VERSION + 1;
  assert_open_rejected(&ops, "a version newer than the library's");
}

Test(backend, open_rejects_a_table_missing_a_required_member) {
#define WITHOUT(member)                            \
  do {                                             \
    rstate_backend_ops ops = testbackend_ops;      \
    ops.member = NULL;                             \
    assert_open_rejected(&ops, "no " #member);     \
  } while (0)
  WITHOUT(open);
  WITHOUT(close);
  WITHOUT(define);
  WITHOUT(undefine);
  WITHOUT(get);
  WITHOUT(get_many);
  WITHOUT(snapshot);
  WITHOUT(set_many);
  WITHOUT(revision);
#undef WITHOUT
}

Test(backend, open_rejects_null_arguments) {
  rstate_store *st = NULL;
  ASSERT_RC(rstate_open_backend(&st, NULL, "test:", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_open_backend(NULL, &testbackend_ops, "test:", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_open_backend(&st, &testbackend_ops, NULL, NULL), RSTATE_EINVAL);
  cr_assert_null(st);
}

Test(backend, open_passes_the_uri_and_returns_the_backends_error) {
  static char sentinel;
  rstate_store *st = (rstate_store *)(void *)&sentinel;
  ASSERT_RC(rstate_open_backend(&st, &testbackend_ops, "nottest:", NULL), RSTATE_EINVAL);
  cr_assert_null(st, "a failed open left *out set");
  cr_assert(strstr(rstate_last_error(), "nottest:") != NULL, "last error \"%s\" is not the backend's sentence",
            rstate_last_error());
}

Test(backend, close_ends_every_watch_before_closing_the_backend) {
  define_float(s, "x", 0);
  watch_one("x", NULL);
  rstate_watch_opts q = {.queued = true};
  watch_one("x", &q);
  ASSERT_RC(rstate_set_float(s, "x", 1), RSTATE_OK); /* leaves an event queued */
  unsigned closes = testbackend_closes();
  rstate_close(s);
  s = NULL;
  cr_assert_eq(testbackend_closes(), closes + 1, "rstate_close called the backend's close %u times",
               testbackend_closes() - closes);
  cr_assert_eq(rec.destroyed, 2, "destroy ran %d times for 2 watches", rec.destroyed);
  cr_assert_eq(closes_at_destroy, closes, "a destroy ran after the backend was closed");
}

/* ---- the backend's own rules reach the caller -------------------------------------- */

Test(backend, variables_round_trip_through_the_front_end) {
  define_float(s, "a", 0.5);
  define_float(s, "b", 1.5);
  cr_assert_eq(rstate_revision(s), 2);
  ASSERT_RC(h_define(s, "a", RSTATE_TYPE_FLOAT, rstate_float(0.5), NULL), RSTATE_OK); /* idempotent */
  ASSERT_RC(h_define(s, "a", RSTATE_TYPE_FLOAT, rstate_float(0.7), NULL), RSTATE_EEXIST);
  cr_assert_eq(rstate_revision(s), 2, "an idempotent or refused define took a revision");
  ASSERT_FAIL_NAMES(h_define(s, "i", RSTATE_TYPE_INTEGER, rstate_int(1), NULL), RSTATE_ENOTSUP, "i");
  ASSERT_FAIL_NAMES(h_define(s, "str", RSTATE_TYPE_STRING, rstate_string("x"), NULL), RSTATE_ENOTSUP, "str");
  ASSERT_RC(h_define(s, "bad name", RSTATE_TYPE_FLOAT, rstate_float(0), NULL), RSTATE_EINVAL);

  cr_assert_eq(h_get_float(s, "a"), 0.5);
  ASSERT_RC(rstate_set_float(s, "a", 2.5), RSTATE_OK);
  cr_assert_eq(h_get_float(s, "a"), 2.5);
  rstate_var_info info = h_info(s, "a");
  cr_assert_eq(info.version, 2);
  cr_assert_eq(info.revision, 3);
  cr_assert_eq(info.type, RSTATE_TYPE_FLOAT);

  const char *names[] = {"a", "b"};
  rstate_value out[2];
  uint64_t rev = 0;
  ASSERT_RC(rstate_get_many(s, names, 2, out, &rev), RSTATE_OK);
  cr_assert(out[0].u.f == 2.5 && out[1].u.f == 1.5);
  cr_assert_eq(rev, 3);
  const char *missing[] = {"a", "nope"};
  ASSERT_FAIL_NAMES(rstate_get_many(s, missing, 2, out, NULL), RSTATE_ENOTFOUND, "nope");
  cr_assert(out[0].kind == RSTATE_NONE && out[1].kind == RSTATE_NONE, "a failed rstate_get_many left values in out");

  rstate_value str = rstate_string("no");
  ASSERT_FAIL_NAMES(rstate_set(s, "a", &str, NULL), RSTATE_ETYPE, "a");
  rstate_value nine = rstate_float(9);
  ASSERT_RC(rstate_set_if(s, "a", &nine, 1, NULL), RSTATE_ECONFLICT);
  ASSERT_RC(rstate_set_if(s, "a", &nine, 2, NULL), RSTATE_OK);
  ASSERT_RC(rstate_undefine(s, "b"), RSTATE_OK);
  ASSERT_RC(rstate_undefine(s, "b"), RSTATE_ENOTFOUND);
  cr_assert_eq(rstate_revision(s), 5);
}

static int count_names(const char *name, rstate_type type, void *ud) {
  (void)name;
  (void)type;
  (*(int *)ud)++;
  return 0;
}

Test(backend, list_walks_the_backends_snapshot) {
  define_float(s, "z", 0);
  define_float(s, "y", 0);
  int n = 0;
  ASSERT_RC(rstate_list(s, count_names, &n), RSTATE_OK);
  cr_assert_eq(n, 2, "rstate_list saw %d variables, want 2", n);
}

/* ---- watching, as on mem: ------------------------------------------------------------ */

Test(backend, inline_changed_events_carry_old_new_version_revision) {
  define_float(s, "x", 0.5);
  watch_one("x", NULL);
  rstate_set_opts so = {.source = "tester"};
  rstate_value v = rstate_float(1.5);
  ASSERT_RC(rstate_set(s, "x", &v, &so), RSTATE_OK);
  cr_assert_eq(rec.n, 1, "the inline callback had not run when rstate_set returned");
  assert_event(0, RSTATE_EVENT_CHANGED, "x", 2, rstate_revision(s));
  assert_float(&rec.ev[0].old_value, 0.5, "old_value", 0);
  assert_float(&rec.ev[0].new_value, 1.5, "new_value", 0);
  cr_assert_eq(rec.ev[0].coalesced, 1);
  cr_assert_str_eq(rec.ev[0].source, "tester");

  ASSERT_RC(rstate_set_int(s, "x", 3), RSTATE_OK); /* converted by the backend */
  cr_assert_eq(rec.n, 2);
  assert_event(1, RSTATE_EVENT_CHANGED, "x", 3, rstate_revision(s));
  assert_float(&rec.ev[1].old_value, 1.5, "old_value", 1);
  assert_float(&rec.ev[1].new_value, 3.0, "new_value", 1);

  ASSERT_RC(rstate_set_float(s, "x", 3.0), RSTATE_OK); /* equal: no change, no event */
  ASSERT_RC(rstate_set_bool(s, "x", true), RSTATE_ETYPE); /* rejected: no event */
  cr_assert_eq(rec.n, 2, "an unchanged or rejected set sent an event");
}

Test(backend, include_initial_delivers_the_current_values_first) {
  define_float(s, "a", 1.0);
  define_float(s, "b", 2.0);
  ASSERT_RC(rstate_set_float(s, "a", 1.25), RSTATE_OK);
  uint64_t snap = rstate_revision(s);
  const char *names[] = {"b", "a"};
  rstate_watch_opts o = {.include_initial = true};
  watch_with(s, names, 2, &o);
  cr_assert_eq(rec.n, 2, "%zu INITIAL events by the time rstate_watch returned, want 2", rec.n);
  for (size_t i = 0; i < 2; i++) {
    cr_assert_eq(rec.ev[i].kind, RSTATE_EVENT_INITIAL);
    cr_assert_eq(rec.ev[i].revision, snap, "INITIAL revision %llu, want the snapshot's %llu",
                 (unsigned long long)rec.ev[i].revision, (unsigned long long)snap);
    cr_assert_eq(rec.ev[i].coalesced, 0);
    cr_assert_eq(rec.ev[i].old_value.kind, RSTATE_NONE);
  }
  size_t ia = strcmp(rec.ev[0].name, "a") == 0 ? 0 : 1;
  assert_event(ia, RSTATE_EVENT_INITIAL, "a", 2, snap);
  assert_float(&rec.ev[ia].new_value, 1.25, "INITIAL value", ia);
  assert_event(1 - ia, RSTATE_EVENT_INITIAL, "b", 1, snap);
  assert_float(&rec.ev[1 - ia].new_value, 2.0, "INITIAL value", 1 - ia);

  ASSERT_RC(rstate_set_float(s, "b", 4.0), RSTATE_OK);
  assert_event(2, RSTATE_EVENT_CHANGED, "b", 2, snap + 1);
}

Test(backend, an_exact_name_not_defined_registers_nothing) {
  define_float(s, "x", 0);
  const char *names[] = {"x", "nope"};
  rstate_watch_opts o = {.destroy = count_destroy};
  rstate_watch_id id = 7;
  ASSERT_RC(rstate_watch(s, names, 2, rec_cb, &rec, &o, &id), RSTATE_ENOTFOUND);
  cr_assert_eq(id, 0);
  cr_assert_eq(rstate_watcher_count(s, "x"), 0, "a failed rstate_watch left a watcher");
  cr_assert_eq(rec.destroyed, 0, "a failed rstate_watch called destroy");
  ASSERT_RC(rstate_set_float(s, "x", 1), RSTATE_OK);
  cr_assert_eq(rec.n, 0);
}

Test(backend, prefix_watch_sees_defined_changed_deleted) {
  define_float(s, "m.old", 1.0);
  watch_one("m.*", NULL);
  define_float(s, "m.x", 0.25);
  assert_event(0, RSTATE_EVENT_DEFINED, "m.x", 1, rstate_revision(s));
  cr_assert_eq(rec.ev[0].old_value.kind, RSTATE_NONE, "DEFINED has an old_value");
  assert_float(&rec.ev[0].new_value, 0.25, "DEFINED new_value", 0);
  cr_assert_eq(rstate_watcher_count(s, "m.x"), 1);

  ASSERT_RC(rstate_set_float(s, "m.x", 0.75), RSTATE_OK);
  assert_event(1, RSTATE_EVENT_CHANGED, "m.x", 2, rstate_revision(s));

  ASSERT_RC(rstate_undefine(s, "m.x"), RSTATE_OK);
  assert_event(2, RSTATE_EVENT_DELETED, "m.x", 2, rstate_revision(s));
  assert_float(&rec.ev[2].old_value, 0.75, "DELETED old_value", 2);
  cr_assert_eq(rec.ev[2].new_value.kind, RSTATE_NONE, "DELETED has a new_value");

  define_float(s, "other", 0);
  ASSERT_RC(rstate_set_float(s, "other", 1), RSTATE_OK);
  cr_assert_eq(rec.n, 3, "a prefix watch on m.* saw a change of \"other\"");

  define_float(s, "m.x", 9.0); /* defined again: version 1 */
  assert_event(3, RSTATE_EVENT_DEFINED, "m.x", 1, rstate_revision(s));
}

Test(backend, queued_events_wait_for_dispatch) {
  define_float(s, "x", 0);
  rstate_watch_opts o = {.queued = true};
  watch_one("x", &o);
  uint64_t base = rstate_revision(s);
  for (int k = 1; k <= 3; k++) ASSERT_RC(rstate_set_float(s, "x", k), RSTATE_OK);
  cr_assert_eq(rec.n, 0, "a queued callback ran inside rstate_set");
  ASSERT_RC(rstate_dispatch(s, 0), 3);
  for (size_t i = 0; i < 3; i++) {
    assert_event(i, RSTATE_EVENT_CHANGED, "x", i + 2, base + i + 1);
    assert_float(&rec.ev[i].old_value, (double)i, "old_value", i);
    assert_float(&rec.ev[i].new_value, (double)i + 1, "new_value", i);
  }
  ASSERT_RC(rstate_dispatch(s, 0), 0);
}

Test(backend, a_filter_drops_events_and_counts_them) {
  define_float(s, "x", 0);
  rstate_watch_opts o = {.filter = above_one};
  rstate_watch_id id = watch_one("x", &o);
  ASSERT_RC(rstate_set_float(s, "x", 0.5), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "x", 2.0), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "x", 1.0), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "x", 3.0), RSTATE_OK);
  cr_assert_eq(rec.n, 2, "%zu events passed a filter that lets 2 through", rec.n);
  assert_float(&rec.ev[0].new_value, 2.0, "new_value", 0);
  assert_float(&rec.ev[1].new_value, 3.0, "new_value", 1);
  assert_float(&rec.ev[1].old_value, 1.0, "old_value (the filtered change's value)", 1);
  rstate_watch_stats st;
  ASSERT_RC(rstate_get_watch_stats(s, id, &st), RSTATE_OK);
  cr_assert_eq(st.delivered, 2);
  cr_assert_eq(st.filtered, 2, "stats.filtered %llu, want 2", (unsigned long long)st.filtered);
}

Test(backend, ignore_source_skips_own_writes) {
  define_float(s, "x", 0);
  rstate_watch_opts o = {.ignore_source = "me"};
  watch_one("x", &o);
  rstate_set_opts mine = {.source = "me"}, theirs = {.source = "them"};
  rstate_value v = rstate_float(1);
  ASSERT_RC(rstate_set(s, "x", &v, &mine), RSTATE_OK);
  v = rstate_float(2);
  ASSERT_RC(rstate_set(s, "x", &v, &theirs), RSTATE_OK);
  cr_assert_eq(rec.n, 1);
  cr_assert_str_eq(rec.ev[0].source, "them");
}

Test(backend, returning_unwatch_ends_the_watch_and_destroys_once) {
  define_float(s, "x", 0);
  rstate_watch_id id = watch_one("x", NULL);
  ASSERT_RC(rstate_set_float(s, "x", 1), RSTATE_OK);
  cr_assert_eq(rec.destroyed, 0);
  rec.ret = RSTATE_UNWATCH; /* so the callback returns it at the second event */
  ASSERT_RC(rstate_set_float(s, "x", 2), RSTATE_OK);
  cr_assert_eq(rec.n, 2);
  cr_assert_eq(rec.destroyed, 1, "destroy ran %d times after the callback returned RSTATE_UNWATCH", rec.destroyed);
  ASSERT_RC(rstate_set_float(s, "x", 3), RSTATE_OK);
  cr_assert_eq(rec.n, 2, "the callback ran again after returning RSTATE_UNWATCH");
  cr_assert_eq(rstate_watcher_count(s, "x"), 0);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_ENOTFOUND);
  rstate_close(s);
  s = NULL;
  cr_assert_eq(rec.destroyed, 1, "destroy ran %d times in all", rec.destroyed);
}

Test(backend, unwatch_destroys_once) {
  define_float(s, "x", 0);
  rstate_watch_id id = watch_one("x", NULL);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  cr_assert_eq(rec.destroyed, 1);
  ASSERT_RC(rstate_set_float(s, "x", 1), RSTATE_OK);
  cr_assert_eq(rec.n, 0);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_ENOTFOUND);
  cr_assert_eq(rec.destroyed, 1);
}

Test(backend, set_many_events_share_one_revision) {
  define_float(s, "a", 0);
  define_float(s, "b", 5);
  define_float(s, "c", 0);
  watch_one("*", NULL);
  rstate_assign items[] = {{"a", rstate_float(1)}, {"b", rstate_float(5)}, {"c", rstate_float(2)}};
  size_t failed = 99;
  uint64_t before = rstate_revision(s);
  ASSERT_RC(rstate_set_many(s, items, 3, NULL, &failed), RSTATE_OK);
  cr_assert_eq(failed, SIZE_MAX);
  cr_assert_eq(rstate_revision(s), before + 1, "rstate_set_many took %llu revisions, want 1",
               (unsigned long long)(rstate_revision(s) - before));
  cr_assert_eq(rec.n, 2, "%zu events for a batch changing 2 variables (b is unchanged)", rec.n);
  assert_event(0, RSTATE_EVENT_CHANGED, "a", 2, before + 1);
  assert_event(1, RSTATE_EVENT_CHANGED, "c", 2, before + 1);

  /* all or nothing */
  rstate_assign bad[] = {{"a", rstate_float(7)}, {"c", rstate_bool(true)}};
  ASSERT_RC(rstate_set_many(s, bad, 2, NULL, &failed), RSTATE_ETYPE);
  cr_assert_eq(failed, 1, "failed_index %zu, want 1", failed);
  cr_assert_eq(h_get_float(s, "a"), 1.0, "a failed batch changed a");
  rstate_assign twice[] = {{"a", rstate_float(7)}, {"a", rstate_float(8)}};
  ASSERT_RC(rstate_set_many(s, twice, 2, NULL, &failed), RSTATE_EINVAL);
  cr_assert_eq(failed, 1);
  cr_assert_eq(rstate_revision(s), before + 1, "a failed batch took a revision");
  cr_assert_eq(rec.n, 2, "a failed batch sent events");
}

/* The same scenario on "mem:" and on the test backend gives the same events. */
static void scenario(rstate_store *st) {
  define_float(st, "k.a", 0);
  define_float(st, "k.b", 1);
  const char *names[] = {"k.*"};
  rstate_watch_opts o = {.include_initial = true};
  watch_with(st, names, 1, &o);
  ASSERT_RC(rstate_set_float(st, "k.a", 0.5), RSTATE_OK);
  rstate_assign items[] = {{"k.a", rstate_float(1)}, {"k.b", rstate_float(2)}};
  ASSERT_RC(rstate_set_many(st, items, 2, NULL, NULL), RSTATE_OK);
  define_float(st, "k.c", 3);
  ASSERT_RC(rstate_undefine(st, "k.a"), RSTATE_OK);
  ASSERT_RC(rstate_set_float(st, "k.b", 2), RSTATE_OK); /* no change */
}

Test(backend, the_same_scenario_gives_the_same_events_as_mem) {
  scenario(s);
  size_t n_test = rec.n;
  rstate_store *mem = h_open();
  scenario(mem);
  cr_assert_eq(rec.n, 2 * n_test, "mem: delivered %zu events, the test backend %zu", rec.n - n_test, n_test);
  cr_assert_geq(n_test, 7, "only %zu events in the scenario", n_test);
  for (size_t i = 0; i < n_test; i++) {
    rec_event *a = &rec.ev[i], *b = &rec.ev[n_test + i];
    cr_assert(a->kind == b->kind && strcmp(a->name, b->name) == 0 && a->version == b->version &&
                  a->revision == b->revision && a->coalesced == b->coalesced &&
                  rstate_value_equal(&a->old_value, &b->old_value) && rstate_value_equal(&a->new_value, &b->new_value),
              "event %zu differs: test backend (kind %d, %s, v%llu, r%llu), mem: (kind %d, %s, v%llu, r%llu)", i,
              (int)a->kind, a->name, (unsigned long long)a->version, (unsigned long long)a->revision, (int)b->kind,
              b->name, (unsigned long long)b->version, (unsigned long long)b->revision);
  }
  rstate_close(mem);
  cr_assert_eq(rec.destroyed, 1, "closing mem: ran %d destroys, want 1", rec.destroyed);
}

/* ---- a failed rstate_host_emit abandons the change ------------------------------------ */

static int failing_emit(rstate_host *h, const rstate_change *changes, size_t n) {
  (void)h;
  (void)n;
  return rstate_set_last_error(RSTATE_ENOMEM, "%s: out of memory queuing the change (injected)", changes[0].name);
}

Test(backend, a_failed_emit_changes_nothing) {
  define_float(s, "x", 1.0);
  define_float(s, "y", 2.0);
  watch_one("*", NULL);
  uint64_t rev = rstate_revision(s);
  testbackend_emit_hook = failing_emit;

  ASSERT_FAIL_NAMES(rstate_set_float(s, "x", 5.0), RSTATE_ENOMEM, "x");
  rstate_assign items[] = {{"x", rstate_float(6)}, {"y", rstate_float(7)}};
  size_t failed = 0;
  ASSERT_RC(rstate_set_many(s, items, 2, NULL, &failed), RSTATE_ENOMEM);
  cr_assert_eq(failed, SIZE_MAX, "failed_index %zu for a batch no single item is to blame for", failed);
  ASSERT_RC(h_define(s, "z", RSTATE_TYPE_FLOAT, rstate_float(0), NULL), RSTATE_ENOMEM);
  ASSERT_RC(rstate_undefine(s, "y"), RSTATE_ENOMEM);

  testbackend_emit_hook = NULL;
  cr_assert_eq(rstate_revision(s), rev, "a change whose emit failed took a revision");
  cr_assert_eq(h_get_float(s, "x"), 1.0, "a set whose emit failed changed the value");
  cr_assert_eq(h_version(s, "x"), 1, "a set whose emit failed changed the version");
  cr_assert_eq(h_get_float(s, "y"), 2.0, "an undefine whose emit failed removed the variable");
  rstate_var_info info;
  ASSERT_RC(rstate_info(s, "z", &info), RSTATE_ENOTFOUND);
  cr_assert_eq(rec.n, 0, "%zu events for changes that were abandoned", rec.n);

  ASSERT_RC(rstate_set_float(s, "x", 5.0), RSTATE_OK); /* and the store works on */
  assert_event(0, RSTATE_EVENT_CHANGED, "x", 2, rev + 1);
}

/* ---- a backend's own code ends a watch between its emit and the delivery ---------- */

/* The setting thread claims an idle inline watch while it emits, and may
 * take the change off its queue there and then (it will deliver it before
 * any callback runs on it). A backend that runs code of its own before
 * rstate_host_deliver (the remote backend's on_state) may end that watch on
 * the same thread: that must not wait for the delivery (it would wait for
 * itself), destroy must run once, and the change must not reach the watch. */
static rstate_watch_id unwatch_in_emit;
static int unwatch_in_emit_rc = -1;
static int ended_calls, ended_destroyed; /* one thread: the setter's */

static int emit_then_unwatch(rstate_host *h, const rstate_change *changes, size_t n) {
  int rc = rstate_host_emit(h, changes, n);
  if (!rc && unwatch_in_emit && changes[0].kind == RSTATE_EVENT_CHANGED) {
    unwatch_in_emit_rc = rstate_unwatch(rstate_host_store(h), unwatch_in_emit);
    unwatch_in_emit = 0;
  }
  return rc;
}

static int count_ended_call(const rstate_event *ev, void *ud) {
  (void)ev, (void)ud;
  ended_calls++;
  return RSTATE_OK;
}

static void count_ended_destroy(void *ud) {
  (void)ud;
  ended_destroyed++;
}

Test(backend, a_watch_ended_on_the_emitting_thread_before_delivery, .timeout = 20) {
  define_float(s, "x", 1.0);
  const char *x = "x";
  rstate_watch_opts o = {.destroy = count_ended_destroy};
  ASSERT_RC(rstate_watch(s, &x, 1, count_ended_call, NULL, &o, &unwatch_in_emit), RSTATE_OK);
  testbackend_emit_hook = emit_then_unwatch;
  ASSERT_RC(rstate_set_float(s, "x", 2.0), RSTATE_OK);
  cr_assert_eq(unwatch_in_emit_rc, RSTATE_OK, "rstate_unwatch from the emitting thread returned %s",
               rstate_error_name(unwatch_in_emit_rc));
  cr_assert_eq(ended_destroyed, 1, "destroy ran %d times", ended_destroyed);
  cr_assert_eq(ended_calls, 0, "the ended watch got %d events", ended_calls);
}
