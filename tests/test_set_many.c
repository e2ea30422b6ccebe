/*
 * test_set_many.c — rstate_set_many: all or nothing, one revision per batch,
 * the index of the item to blame, duplicates, and items equal to their
 * current value.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"

static rstate_store *s;

static void open_store(void) {
  s = h_open();
  rstate_constraints range = {.min = rstate_float(0), .max = rstate_float(2)};
  h_define_ok(s, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &range);
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(100), NULL);
  h_define_ok(s, "prompt", RSTATE_TYPE_STRING, rstate_string("hello"), NULL);
  h_define_ok(s, "stream", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL);
}
static void close_store(void) {
  rstate_close(s);
  s = NULL;
}

TestSuite(set_many, .init = open_store, .fini = close_store);

static const char *const all_names[] = {"temperature", "max_tokens", "prompt", "stream"};
#define N_VARS 4

/* Every value, version and revision of the four variables, and the store's. */
struct state {
  rstate_value values[N_VARS];
  rstate_var_info info[N_VARS];
  uint64_t revision;
};

static struct state capture(void) {
  struct state st;
  memset(&st, 0, sizeof st);
  ASSERT_RC(rstate_get_many(s, all_names, N_VARS, st.values, NULL), RSTATE_OK);
  for (size_t k = 0; k < N_VARS; k++) st.info[k] = h_info(s, all_names[k]);
  st.revision = rstate_revision(s);
  return st;
}

static void release(struct state *st) {
  for (size_t k = 0; k < N_VARS; k++) rstate_value_clear(&st->values[k]);
}

static void assert_nothing_changed(struct state *before) {
  struct state now = capture();
  int differs = -1;
  for (size_t k = 0; k < N_VARS; k++)
    if (!rstate_value_equal(&now.values[k], &before->values[k])) differs = (int)k;
  release(&now);
  release(before);
  cr_assert_eq(differs, -1, "a failed set_many changed %s", differs >= 0 ? all_names[differs] : "");
  for (size_t k = 0; k < N_VARS; k++) {
    cr_assert_eq(now.info[k].version, before->info[k].version, "a failed set_many changed %s's version",
                 all_names[k]);
    cr_assert_eq(now.info[k].revision, before->info[k].revision, "a failed set_many changed %s's revision",
                 all_names[k]);
  }
  cr_assert_eq(now.revision, before->revision, "a failed set_many changed the store revision");
}

/* Runs a batch that must fail with want at item index; checks nothing changed. */
static void expect_failure(const rstate_assign *items, size_t n, int want, size_t index, const char *blamed) {
  struct state before = capture();
  size_t failed = 12345;
  int rc = rstate_set_many(s, items, n, NULL, &failed);
  cr_assert_eq(rc, want, "set_many returned %s, want %s: %s", rstate_error_name(rc), rstate_error_name(want),
               rstate_last_error());
  cr_assert_eq(failed, index, "failed_index is %zu, want %zu", failed, index);
  if (blamed)
    cr_assert(strstr(rstate_last_error(), blamed) != NULL, "last error \"%s\" does not name %s", rstate_last_error(),
              blamed);
  assert_nothing_changed(&before);
}

Test(set_many, success_changes_all_with_one_revision) {
  uint64_t rev = rstate_revision(s);
  rstate_assign items[] = {
      {"temperature", rstate_float(1.5)},
      {"max_tokens", rstate_int(2048)},
      {"prompt", rstate_string("a new prompt")},
      {"stream", rstate_bool(true)},
  };
  size_t failed = 777;
  ASSERT_RC(rstate_set_many(s, items, 4, NULL, &failed), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), rev + 1, "the batch took %llu revisions",
               (unsigned long long)(rstate_revision(s) - rev));

  struct state now = capture();
  cr_assert_eq(now.values[0].u.f, 1.5);
  cr_assert_eq(now.values[1].u.i, 2048);
  int prompt_ok = now.values[2].kind == RSTATE_STRING && strcmp(now.values[2].u.s.ptr, "a new prompt") == 0;
  cr_assert(now.values[3].u.b);
  release(&now);
  cr_assert(prompt_ok, "prompt was not set");
  for (size_t k = 0; k < N_VARS; k++) {
    cr_assert_eq(now.info[k].version, 2, "%s has version %llu, want 2", all_names[k],
                 (unsigned long long)now.info[k].version);
    cr_assert_eq(now.info[k].revision, rev + 1, "%s did not take the batch's revision", all_names[k]);
  }
}

Test(set_many, coerces_like_set) {
  rstate_assign items[] = {{"temperature", rstate_int(1)}, {"max_tokens", rstate_float(64.0)}};
  ASSERT_RC(rstate_set_many(s, items, 2, NULL, NULL), RSTATE_OK);
  rstate_value out[2];
  const char *const names[] = {"temperature", "max_tokens"};
  ASSERT_RC(rstate_get_many(s, names, 2, out, NULL), RSTATE_OK);
  cr_assert_eq(out[0].kind, RSTATE_FLOAT);
  cr_assert_eq(out[0].u.f, 1.0);
  cr_assert_eq(out[1].kind, RSTATE_INT);
  cr_assert_eq(out[1].u.i, 64);
}

Test(set_many, consecutive_batches_take_consecutive_revisions) {
  uint64_t rev = rstate_revision(s);
  for (int k = 1; k <= 3; k++) {
    rstate_assign items[] = {{"max_tokens", rstate_int(100 + k)}, {"temperature", rstate_float(k * 0.5)}};
    ASSERT_RC(rstate_set_many(s, items, 2, NULL, NULL), RSTATE_OK);
    cr_assert_eq(rstate_revision(s), rev + (uint64_t)k);
    cr_assert_eq(h_version(s, "max_tokens"), (uint64_t)(1 + k));
  }
}

Test(set_many, bad_type_blames_its_item) {
  rstate_assign items[] = {
      {"temperature", rstate_float(1.0)},
      {"max_tokens", rstate_int(5)},
      {"prompt", rstate_int(3)}, /* wrong kind */
      {"stream", rstate_bool(true)},
  };
  expect_failure(items, 4, RSTATE_ETYPE, 2, "prompt");
  rstate_assign odd[] = {{"temperature", rstate_float(1.0)}, {"max_tokens", {.kind = (rstate_kind)42}}};
  expect_failure(odd, 2, RSTATE_ETYPE, 1, "max_tokens"); /* a kind no variable takes */
}

Test(set_many, constraint_blames_its_item) {
  rstate_assign items[] = {
      {"max_tokens", rstate_int(5)},
      {"temperature", rstate_float(2.5)}, /* above max */
      {"prompt", rstate_string("changed")},
  };
  expect_failure(items, 3, RSTATE_ECONSTRAINT, 1, "temperature");
}

Test(set_many, unknown_name_blames_its_item) {
  rstate_assign first[] = {{"no_such_var", rstate_int(1)}, {"max_tokens", rstate_int(5)}};
  expect_failure(first, 2, RSTATE_ENOTFOUND, 0, "no_such_var");
  rstate_assign last[] = {{"max_tokens", rstate_int(5)}, {"prompt", rstate_string("x")}, {"not_defined", rstate_int(1)}};
  expect_failure(last, 3, RSTATE_ENOTFOUND, 2, "not_defined");
}

Test(set_many, bad_utf8_and_non_finite_blame_their_items) {
  rstate_assign utf8[] = {{"max_tokens", rstate_int(5)}, {"prompt", rstate_string("\xff")}};
  expect_failure(utf8, 2, RSTATE_ETYPE, 1, "prompt");
  rstate_assign inf[] = {{"temperature", rstate_float(INFINITY)}, {"max_tokens", rstate_int(5)}};
  expect_failure(inf, 2, RSTATE_ETYPE, 0, "temperature");
  rstate_assign frac[] = {{"prompt", rstate_string("ok")}, {"stream", rstate_bool(true)}, {"max_tokens", rstate_float(0.5)}};
  expect_failure(frac, 3, RSTATE_ETYPE, 2, "max_tokens");
}

Test(set_many, duplicate_name_is_einval_at_second_occurrence) {
  rstate_assign items[] = {
      {"max_tokens", rstate_int(5)},
      {"prompt", rstate_string("x")},
      {"max_tokens", rstate_int(6)},
  };
  expect_failure(items, 3, RSTATE_EINVAL, 2, "max_tokens");
  /* Even when both give the same value, or the value equals the current one. */
  rstate_assign same[] = {{"stream", rstate_bool(false)}, {"stream", rstate_bool(false)}};
  expect_failure(same, 2, RSTATE_EINVAL, 1, "stream");
}

Test(set_many, null_name_blames_its_item) {
  rstate_assign items[] = {{"max_tokens", rstate_int(5)}, {NULL, rstate_int(6)}};
  expect_failure(items, 2, RSTATE_EINVAL, 1, NULL);
}

Test(set_many, failed_index_may_be_null) {
  struct state before = capture();
  rstate_assign items[] = {{"max_tokens", rstate_int(5)}, {"temperature", rstate_float(9)}};
  ASSERT_FAIL_NAMES(rstate_set_many(s, items, 2, NULL, NULL), RSTATE_ECONSTRAINT, "temperature");
  assert_nothing_changed(&before);
}

Test(set_many, zero_items_is_ok) {
  struct state before = capture();
  rstate_assign items[] = {{"max_tokens", rstate_int(5)}};
  ASSERT_RC(rstate_set_many(s, items, 0, NULL, NULL), RSTATE_OK);
  ASSERT_RC(rstate_set_many(s, NULL, 0, NULL, NULL), RSTATE_OK);
  assert_nothing_changed(&before);
}

Test(set_many, bad_arguments) {
  struct state before = capture();
  rstate_assign items[] = {{"max_tokens", rstate_int(5)}};
  ASSERT_RC(rstate_set_many(NULL, items, 1, NULL, NULL), RSTATE_EINVAL);
  size_t failed = 0;
  ASSERT_RC(rstate_set_many(s, NULL, 2, NULL, &failed), RSTATE_EINVAL);
  cr_assert_eq(failed, SIZE_MAX, "no single item is to blame for a NULL array: failed_index %zu", failed);
  assert_nothing_changed(&before);
}

Test(set_many, equal_items_are_skipped) {
  uint64_t rev = rstate_revision(s);
  rstate_assign items[] = {
      {"temperature", rstate_float(0.7)}, /* equal */
      {"max_tokens", rstate_int(200)},
      {"prompt", rstate_string("hello")}, /* equal */
      {"stream", rstate_bool(true)},
  };
  ASSERT_RC(rstate_set_many(s, items, 4, NULL, NULL), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), rev + 1);
  rstate_var_info t = h_info(s, "temperature"), m = h_info(s, "max_tokens"), p = h_info(s, "prompt"),
                  st = h_info(s, "stream");
  cr_assert_eq(t.version, 1, "an equal item changed temperature's version");
  cr_assert_eq(p.version, 1, "an equal item changed prompt's version");
  cr_assert_eq(t.revision, 1, "an equal item changed temperature's revision");
  cr_assert_eq(m.version, 2);
  cr_assert_eq(st.version, 2);
  cr_assert_eq(m.revision, rev + 1);
  cr_assert_eq(st.revision, rev + 1);
  cr_assert_eq(h_get_int(s, "max_tokens"), 200);
}

Test(set_many, equal_after_coercion_is_skipped) {
  rstate_assign items[] = {{"temperature", rstate_float(1.0)}, {"max_tokens", rstate_float(100.0)}};
  ASSERT_RC(rstate_set_many(s, items, 2, NULL, NULL), RSTATE_OK);
  cr_assert_eq(h_version(s, "max_tokens"), 1, "100.0 equals the integer 100: no change");
  cr_assert_eq(h_version(s, "temperature"), 2);
}

Test(set_many, all_equal_takes_no_revision) {
  struct state before = capture();
  rstate_assign items[] = {
      {"temperature", rstate_float(0.7)},
      {"max_tokens", rstate_int(100)},
      {"prompt", rstate_string("hello")},
      {"stream", rstate_bool(false)},
  };
  ASSERT_RC(rstate_set_many(s, items, 4, NULL, NULL), RSTATE_OK);
  assert_nothing_changed(&before);
}

Test(set_many, source_and_meta_are_accepted) {
  rstate_meta meta[] = {{"batch", "1"}};
  rstate_set_opts opts = {.source = "optimizer", .meta = meta, .n_meta = 1};
  rstate_assign items[] = {{"max_tokens", rstate_int(1)}, {"stream", rstate_bool(true)}};
  ASSERT_RC(rstate_set_many(s, items, 2, &opts, NULL), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "max_tokens"), 1);
}

Test(set_many, get_many_sees_the_whole_batch) {
  rstate_assign items[] = {{"max_tokens", rstate_int(7)}, {"prompt", rstate_string("seven")}};
  ASSERT_RC(rstate_set_many(s, items, 2, NULL, NULL), RSTATE_OK);
  const char *const names[] = {"max_tokens", "prompt"};
  rstate_value out[2];
  uint64_t rev = 0;
  ASSERT_RC(rstate_get_many(s, names, 2, out, &rev), RSTATE_OK);
  int ok = out[0].u.i == 7 && out[1].kind == RSTATE_STRING && strcmp(out[1].u.s.ptr, "seven") == 0;
  rstate_value_clear(&out[0]);
  rstate_value_clear(&out[1]);
  cr_assert(ok);
  cr_assert_eq(rev, rstate_revision(s));
  cr_assert_eq(h_info(s, "prompt").revision, rev);
}
