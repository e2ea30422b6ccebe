/*
 * test_nomem.c — guarantee 8 when memory runs out: a call either returns
 * RSTATE_OK having done everything (every watch covering a changed variable
 * gets its event) or fails with RSTATE_ENOMEM and changes nothing — no
 * value, version, revision, watch or event — and leaks nothing.
 *
 * Each operation runs first to count the allocations it makes, then once
 * more for every k, on a fresh store, with allocation k made to fail
 * (failalloc.h; not available under sanitizers or valgrind, where the tests
 * say so and pass).
 */
#include <stdio.h>

#include "failalloc.h"
#include "file/file.h"
#include "helpers.h"

typedef struct fixture {
  rstate_store *s;
  int inline_events, queued_events, destroyed;
  rstate_watch_id queued;
} fixture;

static int count_inline(const rstate_event *ev, void *ud) {
  (void)ev;
  ((fixture *)ud)->inline_events++;
  return RSTATE_CONTINUE;
}

static int count_queued(const rstate_event *ev, void *ud) {
  (void)ev;
  ((fixture *)ud)->queued_events++;
  return RSTATE_CONTINUE;
}

static void count_destroy(void *ud) { ((fixture *)ud)->destroyed++; }

/* The options fixtures open their store with (tests set keep_versions). */
static rstate_options nomem_opts;

static void fixture_open(fixture *f) {
  memset(f, 0, sizeof *f);
  f->s = h_open_opts(&nomem_opts);
  h_define_ok(f->s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(f->s, "name", RSTATE_TYPE_STRING, rstate_string("first"), NULL);
  const char *all[] = {"*"}, *x[] = {"x"};
  rstate_watch_opts in = {.destroy = count_destroy}, q = {.queued = true, .destroy = count_destroy};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(f->s, all, 1, count_inline, f, &in, &id), RSTATE_OK);
  ASSERT_RC(rstate_watch(f->s, x, 1, count_queued, f, &q, &f->queued), RSTATE_OK);
}

/* What a failed call must leave as it was. */
typedef struct state {
  uint64_t revision, x_version, name_version;
  int64_t x;
  char name[32];
  size_t watchers;
  bool has_name;
} state;

static state state_of(fixture *f) {
  state st;
  memset(&st, 0, sizeof st);
  st.revision = rstate_revision(f->s);
  st.x = h_get_int(f->s, "x");
  st.x_version = h_version(f->s, "x");
  char *name = NULL;
  st.has_name = rstate_get_string(f->s, "name", &name) == RSTATE_OK;
  if (st.has_name) {
    snprintf(st.name, sizeof st.name, "%s", name);
    rstate_free(name);
    st.name_version = h_version(f->s, "name");
  }
  st.watchers = rstate_watcher_count(f->s, "x");
  return st;
}

typedef int (*operation)(fixture *f);

static int op_set_int(fixture *f) { return rstate_set_int(f->s, "x", 2); }
static int op_set_string(fixture *f) { return rstate_set_string(f->s, "name", "a longer second value"); }
static int op_set_many(fixture *f) {
  rstate_assign items[] = {{"x", rstate_int(3)}, {"name", rstate_string("third")}};
  return rstate_set_many(f->s, items, 2, NULL, NULL);
}
static int op_define(fixture *f) { return h_define(f->s, "zeta", RSTATE_TYPE_STRING, rstate_string("z"), NULL); }
static int op_undefine(fixture *f) { return rstate_undefine(f->s, "name"); }
static int op_watch(fixture *f) {
  const char *all[] = {"*"};
  rstate_watch_opts o = {.include_initial = true, .destroy = count_destroy};
  rstate_watch_id id;
  return rstate_watch(f->s, all, 1, count_inline, f, &o, &id);
}

/* Runs op with every allocation in turn failing. expect_inline and
 * expect_queued: the events a successful op delivers. */
static void every_allocation_fails(const char *what, operation op, int expect_inline, int expect_queued) {
  if (!injection_works()) { /* not cr_skip_test: under valgrind it leaks Criterion's own state */
    cr_log_info("%s: allocation failure injection is not available in this build", what);
    return;
  }
  fixture f;
  fixture_open(&f);
  long first = allocs;
  ASSERT_RC(op(&f), RSTATE_OK);
  long total = allocs - first;
  rstate_close(f.s);

  int failures = 0;
  for (long k = 0; k <= total + 2; k++) {
    long before = live;
    fixture_open(&f);
    state st = state_of(&f);
    fail_in = k;
    int rc = op(&f);
    fail_in = -1;
    int ran = rstate_dispatch(f.s, 0);
    if (rc == RSTATE_OK) {
      cr_assert_eq(f.inline_events, expect_inline, "%s, allocation %ld failing: OK but %d inline events, want %d", what,
                   k, f.inline_events, expect_inline);
      cr_assert_eq(ran, expect_queued, "%s, allocation %ld failing: OK but %d queued events, want %d", what, k, ran,
                   expect_queued);
    } else {
      failures++;
      cr_assert_eq(rc, RSTATE_ENOMEM, "%s, allocation %ld failing: %s (%s)", what, k, rstate_error_name(rc),
                   rstate_last_error());
      cr_assert_neq(rstate_last_error()[0], '\0', "%s: ENOMEM without a sentence", what);
      state now = state_of(&f);
      cr_assert_eq(now.revision, st.revision, "%s, allocation %ld failing: the revision moved", what, k);
      cr_assert_eq(now.x, st.x, "%s, allocation %ld failing: x changed", what, k);
      cr_assert_eq(now.x_version, st.x_version);
      cr_assert_eq(now.has_name, st.has_name, "%s, allocation %ld failing: name (un)defined", what, k);
      cr_assert_str_eq(now.name, st.name, "%s, allocation %ld failing: name changed", what, k);
      cr_assert_eq(now.name_version, st.name_version);
      cr_assert_eq(now.watchers, st.watchers, "%s, allocation %ld failing: watchers changed", what, k);
      cr_assert_eq(f.inline_events, 0, "%s, allocation %ld failing: an event was delivered", what, k);
      cr_assert_eq(ran, 0, "%s, allocation %ld failing: a queued event was delivered", what, k);
      cr_assert_eq(f.destroyed, 0, "%s, allocation %ld failing: destroy ran", what, k);
    }
    rstate_close(f.s);
    cr_assert_eq(f.destroyed, op == op_watch && rc == RSTATE_OK ? 3 : 2, "%s: destroy ran %d times at close", what,
                 f.destroyed);
    cr_assert_geq(live, 0, "too many live blocks to track");
    cr_assert_eq(live, before, "%s, allocation %ld failing leaks %ld blocks", what, k, live - before);
  }
  cr_assert_gt(failures, 0, "%s: no allocation failure was refused", what);
  cr_log_info("%s: %ld allocations; %d failures refused", what, total, failures);
}

TestSuite(nomem);

Test(nomem, set_of_an_integer) { every_allocation_fails("set int", op_set_int, 1, 1); }
Test(nomem, set_of_a_string) { every_allocation_fails("set string", op_set_string, 1, 0); }
Test(nomem, set_many) { every_allocation_fails("set_many", op_set_many, 2, 1); }
Test(nomem, define) { every_allocation_fails("define", op_define, 1, 0); }
Test(nomem, undefine) { every_allocation_fails("undefine", op_undefine, 1, 0); }
Test(nomem, watch_with_initial_events) { every_allocation_fails("watch", op_watch, 2, 0); }

/* History kept: a change's history entry is made before it is announced. */
Test(nomem, set_with_history) {
  nomem_opts.keep_versions = 2;
  every_allocation_fails("set string, history kept", op_set_string, 1, 0);
  every_allocation_fails("set_many, history kept", op_set_many, 2, 1);
  every_allocation_fails("define, history kept", op_define, 1, 0);
}

/* A file: store: a change whose announcement fails is taken back from the
 * journal too (each test runs in a process of its own). */
Test(nomem, file_store) {
  setenv("RSTATE_TEST_TRANSPORT", "file", 1);
  every_allocation_fails("file: set string", op_set_string, 1, 0);
  every_allocation_fails("file: set_many", op_set_many, 2, 1);
  every_allocation_fails("file: define", op_define, 1, 0);
  every_allocation_fails("file: undefine", op_undefine, 1, 0);
}

/* A file: store with SYNC_NONE, which syncs nothing of its own: a change
 * taken back after its record was written (its announcement failed) is
 * returned only after the zeros over that record were synced, so that a
 * record of a failed call is not read back after a power loss. */
Test(nomem, file_store_syncs_the_zeros_over_a_change_taken_back) {
  if (!injection_works()) {
    cr_log_info("allocation failure injection is not available in this build");
    return;
  }
  setenv("RSTATE_TEST_TRANSPORT", "file", 1);
  nomem_opts.sync = RSTATE_SYNC_NONE;
  int failures = 0, synced = 0;
  for (long k = 0; k < 64; k++) {
    fixture f;
    fixture_open(&f);
    uint64_t before = atomic_load(&rstate__file_syncs);
    fail_in = k;
    int rc = op_set_string(&f);
    fail_in = -1;
    uint64_t syncs = atomic_load(&rstate__file_syncs) - before;
    if (rc) {
      failures++;
      if (syncs) synced++;
    } else {
      cr_assert_eq(syncs, 0, "allocation %ld failing: OK, and %llu syncs with SYNC_NONE", k, (unsigned long long)syncs);
    }
    rstate_dispatch(f.s, 0);
    rstate_close(f.s);
  }
  cr_assert_gt(failures, 0);
  cr_assert_gt(synced, 0, "of %d failed sets, none synced the zeros over its record", failures);
  cr_log_info("%d failed sets, %d of them taken back from the journal and synced", failures, synced);
}
