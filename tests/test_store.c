/*
 * test_store.c — a "mem:" store: open and close, define (validation,
 * idempotence, conflicts), undefine, get, get_many, info, list and the store
 * revision.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

static rstate_store *s;

static void open_store(void) { s = h_open(); }
static void close_store(void) {
  rstate_close(s);
  s = NULL;
}

TestSuite(store, .init = open_store, .fini = close_store);

static int64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *const models[] = {"gpt-4", "claude-3", "gemini"};
static const char *const strategies[] = {"Default", "Optimized"};

/* ---- open / close ------------------------------------------------------- */

Test(store, open_mem) {
  rstate_store *t = (rstate_store *)&t; /* garbage that must be overwritten */
  ASSERT_RC(rstate_open(&t, "mem:", NULL), RSTATE_OK);
  cr_assert_not_null(t);
  cr_assert_neq((void *)t, (void *)&t);
  cr_assert_eq(rstate_revision(t), 0, "a new store has revision 0");
  rstate_close(t);
}

Test(store, open_with_zeroed_options) {
  rstate_options opts;
  memset(&opts, 0, sizeof opts);
  rstate_store *t = NULL;
  ASSERT_RC(rstate_open(&t, "mem:", &opts), RSTATE_OK);
  cr_assert_not_null(t);
  rstate_close(t);
}

Test(store, open_null_out) { ASSERT_RC(rstate_open(NULL, "mem:", NULL), RSTATE_EINVAL); }

Test(store, open_null_uri) {
  rstate_store *t = (rstate_store *)&t;
  ASSERT_RC(rstate_open(&t, NULL, NULL), RSTATE_EINVAL);
  cr_assert_null(t, "on failure *out is NULL");
}

Test(store, open_unknown_scheme) {
  const char *uris[] = {"foo:", "foo:bar", ""};
  for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
    rstate_store *t = (rstate_store *)&t;
    int rc = rstate_open(&t, uris[i], NULL);
    if (rc == RSTATE_OK) rstate_close(t);
    cr_assert_eq(rc, RSTATE_EINVAL, "rstate_open(\"%s\") returned %s: %s", uris[i], rstate_error_name(rc),
                 rstate_last_error());
    cr_assert_null(t, "rstate_open(\"%s\"): on failure *out is NULL", uris[i]);
  }
}

Test(store, close_null_is_noop) {
  rstate_close(NULL);
  cr_assert(true, "rstate_close(NULL) returned");
}

Test(store, stores_are_independent) {
  rstate_store *t = h_open();
  h_define_ok(s, "only_in_s", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_value v;
  int rc = rstate_get(t, "only_in_s", &v);
  uint64_t rev_t = rstate_revision(t);
  rstate_close(t);
  cr_assert_eq(rc, RSTATE_ENOTFOUND, "a variable of one store showed up in another (%s)", rstate_error_name(rc));
  cr_assert_eq(rev_t, 0);
  cr_assert_eq(rstate_revision(s), 1);
}

/* ---- define ------------------------------------------------------------- */

Test(store, define_each_type) {
  rstate_constraints choice_c = {.choices = models, .n_choices = 3};
  h_define_ok(s, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), NULL);
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(4096), NULL);
  h_define_ok(s, "stream", RSTATE_TYPE_BOOLEAN, rstate_bool(true), NULL);
  h_define_ok(s, "prompt", RSTATE_TYPE_STRING, rstate_string("hello"), NULL);
  h_define_ok(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &choice_c);
  h_define_ok(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("Strategies.Default"), NULL);

  const struct {
    const char *name;
    rstate_type type;
  } want[] = {{"temperature", RSTATE_TYPE_FLOAT}, {"max_tokens", RSTATE_TYPE_INTEGER}, {"stream", RSTATE_TYPE_BOOLEAN},
              {"prompt", RSTATE_TYPE_STRING},     {"model", RSTATE_TYPE_CHOICE},       {"strategy", RSTATE_TYPE_MODULE}};
  for (size_t i = 0; i < 6; i++) {
    rstate_var_info info = h_info(s, want[i].name);
    cr_assert_eq(info.type, want[i].type, "%s has type %d", want[i].name, (int)info.type);
    cr_assert_eq(info.version, 1, "%s has version %llu after define", want[i].name, (unsigned long long)info.version);
    cr_assert_eq(info.revision, i + 1, "%s took revision %llu", want[i].name, (unsigned long long)info.revision);
  }
  cr_assert_eq(rstate_revision(s), 6);
}

Test(store, define_with_description) {
  rstate_var_def def = {.name = "temperature",
                        .type = RSTATE_TYPE_FLOAT,
                        .initial = rstate_float(0.7),
                        .description = "How random the answers are"};
  ASSERT_RC(rstate_define(s, &def), RSTATE_OK);
  cr_assert_eq(h_get_float(s, "temperature"), 0.7);
}

Test(store, define_null_arguments) {
  rstate_var_def def = {.name = "x", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(1)};
  ASSERT_RC(rstate_define(NULL, &def), RSTATE_EINVAL);
  ASSERT_RC(rstate_define(s, NULL), RSTATE_EINVAL);
  cr_assert_eq(rstate_revision(s), 0);
}

Test(store, define_bad_type) {
  ASSERT_FAIL_NAMES(h_define(s, "badtype0", (rstate_type)0, rstate_int(1), NULL), RSTATE_EINVAL, "badtype0");
  ASSERT_FAIL_NAMES(h_define(s, "badtype7", (rstate_type)7, rstate_int(1), NULL), RSTATE_EINVAL, "badtype7");
  cr_assert_eq(rstate_revision(s), 0);
}

/* The name rules: 1..255 bytes of [A-Za-z0-9_.:/-]. */
Test(store, define_bad_names) {
  char long_name[257];
  memset(long_name, 'a', 256);
  long_name[256] = '\0';
  const char *bad[] = {"", long_name, "has space", "tab\there", "semi;colon", "star*", "caf\xc3\xa9", "new\nline"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = h_define(s, bad[i], RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
    cr_assert_eq(rc, RSTATE_EINVAL, "name #%zu (\"%.20s\"): %s: %s", i, bad[i], rstate_error_name(rc),
                 rstate_last_error());
  }
  ASSERT_RC(h_define(s, NULL, RSTATE_TYPE_INTEGER, rstate_int(1), NULL), RSTATE_EINVAL);
  cr_assert_eq(rstate_revision(s), 0, "failed defines took a revision");
}

Test(store, define_name_limits) {
  char name255[256];
  memset(name255, 'b', 255);
  name255[255] = '\0';
  h_define_ok(s, name255, RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(s, "All-the_chars.0:9/Z", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  cr_assert_eq(h_get_int(s, name255), 1);
  cr_assert_eq(h_get_int(s, "All-the_chars.0:9/Z"), 1);
  cr_assert_eq(rstate_revision(s), 3);
}

/* Constraints that do not apply to the type. */
Test(store, define_inapplicable_constraints) {
  const char *pat = "[0-9]+";
  struct {
    const char *name;
    rstate_type type;
    rstate_value initial;
    rstate_constraints c;
  } cases[] = {
      {"int_with_pattern", RSTATE_TYPE_INTEGER, rstate_int(1), {.pattern = pat}},
      {"float_with_pattern", RSTATE_TYPE_FLOAT, rstate_float(1), {.pattern = pat}},
      {"string_with_min", RSTATE_TYPE_STRING, rstate_string("a"), {.min = {RSTATE_INT, {.i = 0}}}},
      {"string_with_max", RSTATE_TYPE_STRING, rstate_string("a"), {.max = {RSTATE_INT, {.i = 9}}}},
      {"float_with_choices", RSTATE_TYPE_FLOAT, rstate_float(1), {.choices = models, .n_choices = 3}},
      {"int_with_min_length", RSTATE_TYPE_INTEGER, rstate_int(1), {.min_length = 1}},
      {"float_with_max_length", RSTATE_TYPE_FLOAT, rstate_float(1), {.max_length = 4}},
      {"string_with_namespace", RSTATE_TYPE_STRING, rstate_string("a"), {.module_namespace = "Ns"}},
      {"string_with_choices", RSTATE_TYPE_STRING, rstate_string("gpt-4"), {.choices = models, .n_choices = 3}},
      {"bool_with_min", RSTATE_TYPE_BOOLEAN, rstate_bool(true), {.min = {RSTATE_INT, {.i = 0}}}},
      {"bool_with_pattern", RSTATE_TYPE_BOOLEAN, rstate_bool(true), {.pattern = pat}},
      {"choice_with_max_length", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"),
       {.choices = models, .n_choices = 3, .max_length = 10}},
      {"choice_with_min", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"),
       {.choices = models, .n_choices = 3, .min = {RSTATE_INT, {.i = 0}}}},
      {"module_with_min_length", RSTATE_TYPE_MODULE, rstate_string("A.B"), {.min_length = 1}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = h_define(s, cases[i].name, cases[i].type, cases[i].initial, &cases[i].c);
    cr_assert_eq(rc, RSTATE_EINVAL, "%s: %s: %s", cases[i].name, rstate_error_name(rc), rstate_last_error());
    cr_assert(strstr(rstate_last_error(), cases[i].name), "%s: last error \"%s\" does not name it", cases[i].name,
              rstate_last_error());
  }
  cr_assert_eq(rstate_revision(s), 0);
}

/* Constraints invalid in themselves. */
Test(store, define_invalid_constraints) {
  rstate_constraints minmax = {.min = rstate_float(2), .max = rstate_float(1)};
  ASSERT_FAIL_NAMES(h_define(s, "min_above_max", RSTATE_TYPE_FLOAT, rstate_float(1.5), &minmax), RSTATE_EINVAL,
                    "min_above_max");
  rstate_constraints iminmax = {.min = rstate_int(10), .max = rstate_int(1)};
  ASSERT_FAIL_NAMES(h_define(s, "imin_above_max", RSTATE_TYPE_INTEGER, rstate_int(5), &iminmax), RSTATE_EINVAL,
                    "imin_above_max");
  rstate_constraints lens = {.min_length = 5, .max_length = 2};
  ASSERT_FAIL_NAMES(h_define(s, "minlen_above_maxlen", RSTATE_TYPE_STRING, rstate_string("abc"), &lens),
                    RSTATE_EINVAL, "minlen_above_maxlen");
  rstate_constraints nan_min = {.min = rstate_float(NAN)};
  ASSERT_FAIL_NAMES(h_define(s, "nan_min", RSTATE_TYPE_FLOAT, rstate_float(1), &nan_min), RSTATE_EINVAL, "nan_min");
  cr_assert_eq(rstate_revision(s), 0);
}

Test(store, define_initial_wrong_kind) {
  ASSERT_FAIL_NAMES(h_define(s, "f_from_string", RSTATE_TYPE_FLOAT, rstate_string("0.5"), NULL), RSTATE_ETYPE,
                    "f_from_string");
  ASSERT_FAIL_NAMES(h_define(s, "f_from_bool", RSTATE_TYPE_FLOAT, rstate_bool(true), NULL), RSTATE_ETYPE,
                    "f_from_bool");
  ASSERT_FAIL_NAMES(h_define(s, "i_from_fraction", RSTATE_TYPE_INTEGER, rstate_float(3.5), NULL), RSTATE_ETYPE,
                    "i_from_fraction");
  ASSERT_FAIL_NAMES(h_define(s, "b_from_int", RSTATE_TYPE_BOOLEAN, rstate_int(1), NULL), RSTATE_ETYPE, "b_from_int");
  ASSERT_FAIL_NAMES(h_define(s, "s_from_int", RSTATE_TYPE_STRING, rstate_int(1), NULL), RSTATE_ETYPE, "s_from_int");
  rstate_constraints c = {.choices = models, .n_choices = 3};
  ASSERT_FAIL_NAMES(h_define(s, "c_from_int", RSTATE_TYPE_CHOICE, rstate_int(0), &c), RSTATE_ETYPE, "c_from_int");
  ASSERT_FAIL_NAMES(h_define(s, "m_from_bool", RSTATE_TYPE_MODULE, rstate_bool(false), NULL), RSTATE_ETYPE,
                    "m_from_bool");
  rstate_value none;
  memset(&none, 0, sizeof none);
  ASSERT_FAIL_NAMES(h_define(s, "f_from_none", RSTATE_TYPE_FLOAT, none, NULL), RSTATE_ETYPE, "f_from_none");
  ASSERT_FAIL_NAMES(h_define(s, "f_from_inf", RSTATE_TYPE_FLOAT, rstate_float(INFINITY), NULL), RSTATE_ETYPE,
                    "f_from_inf");
  ASSERT_FAIL_NAMES(h_define(s, "s_bad_utf8", RSTATE_TYPE_STRING, rstate_string("\xff\xfe"), NULL), RSTATE_ETYPE,
                    "s_bad_utf8");
  cr_assert_eq(rstate_revision(s), 0);
}

Test(store, define_initial_breaks_constraints) {
  rstate_constraints range = {.min = rstate_float(0), .max = rstate_float(2)};
  ASSERT_FAIL_NAMES(h_define(s, "temperature", RSTATE_TYPE_FLOAT, rstate_float(2.5), &range), RSTATE_ECONSTRAINT,
                    "temperature");
  rstate_constraints len = {.max_length = 3};
  ASSERT_FAIL_NAMES(h_define(s, "short_text", RSTATE_TYPE_STRING, rstate_string("abcd"), &len), RSTATE_ECONSTRAINT,
                    "short_text");
  rstate_constraints choice = {.choices = models, .n_choices = 3};
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-5"), &choice), RSTATE_ECONSTRAINT,
                    "model");
  ASSERT_FAIL_NAMES(h_define(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("not-an.identifier!"), NULL),
                    RSTATE_ECONSTRAINT, "strategy");
  cr_assert_eq(rstate_revision(s), 0);
  rstate_value v;
  ASSERT_RC(rstate_get(s, "temperature", &v), RSTATE_ENOTFOUND);
}

Test(store, define_choice_without_choices) {
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), NULL), RSTATE_EINVAL, "model");
  rstate_constraints empty = {.choices = models, .n_choices = 0};
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &empty), RSTATE_EINVAL, "model");
  rstate_constraints null_list = {.choices = NULL, .n_choices = 2};
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &null_list), RSTATE_EINVAL,
                    "model");
  cr_assert_eq(rstate_revision(s), 0);
}

Test(store, define_duplicate_choices) {
  const char *const dup[] = {"gpt-4", "claude-3", "gpt-4"};
  rstate_constraints c = {.choices = dup, .n_choices = 3};
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("claude-3"), &c), RSTATE_EINVAL, "model");
  const char *const dup_mod[] = {"Default", "Default"};
  rstate_constraints m = {.choices = dup_mod, .n_choices = 2};
  ASSERT_FAIL_NAMES(h_define(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("Default"), &m), RSTATE_EINVAL,
                    "strategy");
  cr_assert_eq(rstate_revision(s), 0);
}

Test(store, define_null_choice_entry) {
  const char *const with_null[] = {"gpt-4", NULL};
  rstate_constraints c = {.choices = with_null, .n_choices = 2};
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &c), RSTATE_EINVAL, "model");
}

Test(store, define_bad_pattern) {
  rstate_constraints c = {.pattern = "[a-"};
  ASSERT_FAIL_NAMES(h_define(s, "word", RSTATE_TYPE_STRING, rstate_string("abc"), &c), RSTATE_EINVAL, "word");
  rstate_constraints c2 = {.pattern = "(ab"};
  ASSERT_FAIL_NAMES(h_define(s, "module_var", RSTATE_TYPE_MODULE, rstate_string("ab"), &c2), RSTATE_EINVAL,
                    "module_var");
  cr_assert_eq(rstate_revision(s), 0);
}

Test(store, define_bad_module_namespace) {
  rstate_constraints c = {.module_namespace = "not a namespace!"};
  ASSERT_FAIL_NAMES(h_define(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("X.Y"), &c), RSTATE_EINVAL, "strategy");
}

/* ---- idempotent define and conflicts ----------------------------------- */

Test(store, define_identical_is_idempotent) {
  /* Separate copies of every string, so identity is by contents. */
  const char *const models2[] = {"gpt-4", "claude-3", "gemini"};
  char pat1[] = "[a-z ]*", pat2[] = "[a-z ]*";
  char desc1[] = "a description", desc2[] = "a description";
  rstate_constraints fr1 = {.min = rstate_float(0), .max = rstate_float(2)};
  rstate_constraints fr2 = {.min = rstate_float(0), .max = rstate_float(2)};
  rstate_constraints st1 = {.min_length = 1, .max_length = 40, .pattern = pat1};
  rstate_constraints st2 = {.min_length = 1, .max_length = 40, .pattern = pat2};
  rstate_constraints ch1 = {.choices = models, .n_choices = 3};
  rstate_constraints ch2 = {.choices = models2, .n_choices = 3};
  rstate_constraints md1 = {.module_namespace = "Strategies", .choices = strategies, .n_choices = 2};
  rstate_constraints md2 = {.module_namespace = "Strategies", .choices = strategies, .n_choices = 2};

  rstate_var_def defs1[] = {
      {"temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &fr1, desc1},
      {"max_tokens", RSTATE_TYPE_INTEGER, rstate_int(4096), NULL, NULL},
      {"stream", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL, NULL},
      {"prompt", RSTATE_TYPE_STRING, rstate_string("hello there"), &st1, NULL},
      {"model", RSTATE_TYPE_CHOICE, rstate_string("gemini"), &ch1, NULL},
      {"strategy", RSTATE_TYPE_MODULE, rstate_string("Strategies.Default"), &md1, NULL},
  };
  char hello2[] = "hello there", gemini2[] = "gemini", strat2[] = "Strategies.Default";
  rstate_var_def defs2[] = {
      {"temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &fr2, desc2},
      {"max_tokens", RSTATE_TYPE_INTEGER, rstate_int(4096), NULL, NULL},
      {"stream", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL, NULL},
      {"prompt", RSTATE_TYPE_STRING, rstate_string(hello2), &st2, NULL},
      {"model", RSTATE_TYPE_CHOICE, rstate_string(gemini2), &ch2, NULL},
      {"strategy", RSTATE_TYPE_MODULE, rstate_string(strat2), &md2, NULL},
  };
  for (size_t i = 0; i < 6; i++) ASSERT_RC(rstate_define(s, &defs1[i]), RSTATE_OK);
  uint64_t rev = rstate_revision(s);
  cr_assert_eq(rev, 6);
  for (size_t i = 0; i < 6; i++) {
    int rc = rstate_define(s, &defs2[i]);
    cr_assert_eq(rc, RSTATE_OK, "re-defining %s identically: %s: %s", defs2[i].name, rstate_error_name(rc),
                 rstate_last_error());
    rstate_var_info info = h_info(s, defs2[i].name);
    cr_assert_eq(info.version, 1, "%s: idempotent define changed the version", defs2[i].name);
    cr_assert_eq(info.revision, i + 1, "%s: idempotent define changed the variable's revision", defs2[i].name);
  }
  cr_assert_eq(rstate_revision(s), rev, "idempotent defines took revisions");
}

Test(store, define_identical_keeps_current_value) {
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(100), NULL);
  ASSERT_RC(rstate_set_int(s, "max_tokens", 200), RSTATE_OK);
  uint64_t rev = rstate_revision(s);
  ASSERT_RC(h_define(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(100), NULL), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "max_tokens"), 200, "an idempotent define reset the value");
  cr_assert_eq(h_version(s, "max_tokens"), 2);
  cr_assert_eq(rstate_revision(s), rev);
}

Test(store, define_description_null_equals_empty) {
  rstate_var_def a = {.name = "d", .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true), .description = NULL};
  rstate_var_def b = a;
  b.description = "";
  ASSERT_RC(rstate_define(s, &a), RSTATE_OK);
  ASSERT_RC(rstate_define(s, &b), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), 1);
}

static void assert_unchanged_float(const char *name, double value, uint64_t version, uint64_t revision,
                                   uint64_t store_revision) {
  rstate_var_info info = h_info(s, name);
  cr_assert_eq(info.type, RSTATE_TYPE_FLOAT, "%s: type changed to %s", name, rstate_type_name(info.type));
  cr_assert_eq(info.version, version, "%s: version changed", name);
  cr_assert_eq(info.revision, revision, "%s: revision changed", name);
  cr_assert_eq(h_get_float(s, name), value, "%s: value changed", name);
  cr_assert_eq(rstate_revision(s), store_revision, "store revision changed");
}

/* The sentence says which part of the definition differs. */
#define ASSERT_DIFFERS(sentence) \
  cr_assert_str_eq(rstate_last_error(), (sentence), "last error \"%s\"", rstate_last_error())

Test(store, define_different_is_eexist) {
  rstate_constraints range = {.min = rstate_float(0), .max = rstate_float(2)};
  rstate_var_def def = {"temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &range, "randomness"};
  ASSERT_RC(rstate_define(s, &def), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.5), RSTATE_OK);
  rstate_var_info before = h_info(s, "temperature");
  uint64_t rev = rstate_revision(s);

  rstate_var_def d = def;
  d.initial = rstate_float(0.8);
  ASSERT_FAIL_NAMES(rstate_define(s, &d), RSTATE_EEXIST, "temperature");
  ASSERT_DIFFERS("temperature: already defined differently: its initial value differs");
  assert_unchanged_float("temperature", 1.5, before.version, before.revision, rev);

  rstate_constraints range2 = {.min = rstate_float(0), .max = rstate_float(3)};
  d = def;
  d.constraints = &range2;
  ASSERT_FAIL_NAMES(rstate_define(s, &d), RSTATE_EEXIST, "temperature");
  ASSERT_DIFFERS("temperature: already defined differently: its constraint max differs");
  assert_unchanged_float("temperature", 1.5, before.version, before.revision, rev);

  d = def;
  d.constraints = NULL;
  ASSERT_FAIL_NAMES(rstate_define(s, &d), RSTATE_EEXIST, "temperature");
  ASSERT_DIFFERS("temperature: already defined differently: its constraint min differs");
  assert_unchanged_float("temperature", 1.5, before.version, before.revision, rev);

  d = def;
  d.description = "something else";
  ASSERT_FAIL_NAMES(rstate_define(s, &d), RSTATE_EEXIST, "temperature");
  ASSERT_DIFFERS("temperature: already defined differently: its description differs");
  assert_unchanged_float("temperature", 1.5, before.version, before.revision, rev);

  d = def;
  d.description = NULL;
  ASSERT_FAIL_NAMES(rstate_define(s, &d), RSTATE_EEXIST, "temperature");
  assert_unchanged_float("temperature", 1.5, before.version, before.revision, rev);

  rstate_var_def other_type = {"temperature", RSTATE_TYPE_INTEGER, rstate_int(1), NULL, "randomness"};
  ASSERT_FAIL_NAMES(rstate_define(s, &other_type), RSTATE_EEXIST, "temperature");
  ASSERT_DIFFERS("temperature: already defined differently: its type is float, not integer");
  assert_unchanged_float("temperature", 1.5, before.version, before.revision, rev);
}

Test(store, define_different_choices_is_eexist) {
  rstate_constraints c = {.choices = models, .n_choices = 3};
  h_define_ok(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &c);
  const char *const other[] = {"gpt-4", "claude-3", "llama"};
  rstate_constraints c2 = {.choices = other, .n_choices = 3};
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &c2), RSTATE_EEXIST, "model");
  ASSERT_DIFFERS("model: already defined differently: its constraint choices differs");
  rstate_constraints c3 = {.choices = models, .n_choices = 2};
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &c3), RSTATE_EEXIST, "model");
  const char *const more[] = {"gpt-4", "claude-3", "gemini", "llama"};
  rstate_constraints c4 = {.choices = more, .n_choices = 4};
  ASSERT_FAIL_NAMES(h_define(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &c4), RSTATE_EEXIST, "model");
  rstate_constraints p = {.pattern = "[a-z]+"};
  h_define_ok(s, "word", RSTATE_TYPE_STRING, rstate_string("abc"), &p);
  rstate_constraints p2 = {.pattern = "[a-z]*"};
  ASSERT_FAIL_NAMES(h_define(s, "word", RSTATE_TYPE_STRING, rstate_string("abc"), &p2), RSTATE_EEXIST, "word");
  ASSERT_DIFFERS("word: already defined differently: its constraint pattern differs");
  ASSERT_FAIL_NAMES(h_define(s, "word", RSTATE_TYPE_MODULE, rstate_string("abc"), NULL), RSTATE_EEXIST, "word");
  ASSERT_DIFFERS("word: already defined differently: its type is string, not module");
  cr_assert_eq(rstate_revision(s), 2);
  h_assert_string(s, "model", "gpt-4");
}

/* ---- undefine ----------------------------------------------------------- */

Test(store, undefine_missing) {
  ASSERT_FAIL_NAMES(rstate_undefine(s, "ghost"), RSTATE_ENOTFOUND, "ghost");
  ASSERT_RC(rstate_undefine(s, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_undefine(NULL, "ghost"), RSTATE_EINVAL);
  cr_assert_eq(rstate_revision(s), 0);
}

Test(store, undefine_then_redefine) {
  h_define_ok(s, "counter", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "other", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  ASSERT_RC(rstate_set_int(s, "counter", 1), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "counter", 2), RSTATE_OK);
  cr_assert_eq(h_version(s, "counter"), 3);
  cr_assert_eq(rstate_revision(s), 4);

  ASSERT_RC(rstate_undefine(s, "counter"), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), 5, "undefine takes a revision");

  rstate_value v = rstate_int(99);
  ASSERT_FAIL_NAMES(rstate_get(s, "counter", &v), RSTATE_ENOTFOUND, "counter");
  cr_assert_eq(v.kind, RSTATE_NONE, "on failure *out is RSTATE_NONE");
  rstate_var_info info;
  ASSERT_FAIL_NAMES(rstate_info(s, "counter", &info), RSTATE_ENOTFOUND, "counter");
  ASSERT_FAIL_NAMES(rstate_set_int(s, "counter", 3), RSTATE_ENOTFOUND, "counter");
  ASSERT_FAIL_NAMES(rstate_undefine(s, "counter"), RSTATE_ENOTFOUND, "counter");
  cr_assert_eq(h_get_int(s, "other"), 0, "undefine touched another variable");

  /* A different definition is fine once the old one is gone. */
  h_define_ok(s, "counter", RSTATE_TYPE_STRING, rstate_string("again"), NULL);
  info = h_info(s, "counter");
  cr_assert_eq(info.version, 1, "a re-defined variable starts at version 1, not %llu", (unsigned long long)info.version);
  cr_assert_eq(info.type, RSTATE_TYPE_STRING);
  cr_assert_eq(info.revision, 6);
  cr_assert_eq(rstate_revision(s), 6);
  h_assert_string(s, "counter", "again");
}

/* ---- get ---------------------------------------------------------------- */

Test(store, get_returns_the_types_kind) {
  rstate_constraints c = {.choices = models, .n_choices = 3};
  h_define_ok(s, "f", RSTATE_TYPE_FLOAT, rstate_int(3), NULL);
  h_define_ok(s, "i", RSTATE_TYPE_INTEGER, rstate_float(4.0), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_BOOLEAN, rstate_bool(true), NULL);
  h_define_ok(s, "str", RSTATE_TYPE_STRING, rstate_string("text"), NULL);
  h_define_ok(s, "ch", RSTATE_TYPE_CHOICE, rstate_string("claude-3"), &c);
  h_define_ok(s, "mod", RSTATE_TYPE_MODULE, rstate_string("A.B.Name"), NULL);

  rstate_value v;
  ASSERT_RC(rstate_get(s, "f", &v), RSTATE_OK);
  cr_assert_eq(v.kind, RSTATE_FLOAT, "a float variable defined with rstate_int(3) reads back as kind %d", (int)v.kind);
  cr_assert_eq(v.u.f, 3.0);
  ASSERT_RC(rstate_get(s, "i", &v), RSTATE_OK);
  cr_assert_eq(v.kind, RSTATE_INT, "an integer variable defined with 4.0 reads back as kind %d", (int)v.kind);
  cr_assert_eq(v.u.i, 4);
  ASSERT_RC(rstate_get(s, "b", &v), RSTATE_OK);
  cr_assert_eq(v.kind, RSTATE_BOOL);
  cr_assert(v.u.b);
  h_assert_string(s, "str", "text");
  h_assert_string(s, "ch", "claude-3");
  h_assert_string(s, "mod", "A.B.Name");
}

Test(store, get_returns_an_owned_copy) {
  char initial[] = "some text";
  h_define_ok(s, "str", RSTATE_TYPE_STRING, rstate_string(initial), NULL);
  initial[0] = 'X'; /* the store copied it at define time */

  rstate_value a, b;
  ASSERT_RC(rstate_get(s, "str", &a), RSTATE_OK);
  ASSERT_RC(rstate_get(s, "str", &b), RSTATE_OK);
  cr_assert_eq(a.kind, RSTATE_STRING);
  cr_assert_neq(a.u.s.ptr, initial);
  cr_assert_neq(a.u.s.ptr, b.u.s.ptr, "two gets returned the same buffer");
  cr_assert_eq(a.u.s.len, 9);
  cr_assert_str_eq(a.u.s.ptr, "some text", "ptr is NUL-terminated at len");
  ((char *)a.u.s.ptr)[0] = 'Z'; /* ours to scribble on */
  rstate_value_clear(&a);
  cr_assert_str_eq(b.u.s.ptr, "some text");
  rstate_value_clear(&b);
  h_assert_string(s, "str", "some text");
}

Test(store, get_bad_arguments) {
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_value v = rstate_int(5);
  ASSERT_RC(rstate_get(NULL, "x", &v), RSTATE_EINVAL);
  ASSERT_RC(rstate_get(s, NULL, &v), RSTATE_EINVAL);
  ASSERT_RC(rstate_get(s, "x", NULL), RSTATE_EINVAL);
  ASSERT_FAIL_NAMES(rstate_get(s, "missing_var", &v), RSTATE_ENOTFOUND, "missing_var");
  cr_assert_eq(v.kind, RSTATE_NONE);
}

/* ---- get_many ----------------------------------------------------------- */

Test(store, get_many_snapshot) {
  h_define_ok(s, "f", RSTATE_TYPE_FLOAT, rstate_float(0.5), NULL);
  h_define_ok(s, "i", RSTATE_TYPE_INTEGER, rstate_int(7), NULL);
  h_define_ok(s, "str", RSTATE_TYPE_STRING, rstate_string("hello"), NULL);
  ASSERT_RC(rstate_set_int(s, "i", 8), RSTATE_OK);

  const char *const names[] = {"str", "f", "i"};
  rstate_value out[3];
  uint64_t rev = 0;
  ASSERT_RC(rstate_get_many(s, names, 3, out, &rev), RSTATE_OK);
  cr_assert_eq(rev, rstate_revision(s));
  cr_assert_eq(rev, 4);
  cr_assert_eq(out[0].kind, RSTATE_STRING);
  cr_assert_eq(out[0].u.s.len, 5);
  cr_assert_str_eq(out[0].u.s.ptr, "hello");
  cr_assert_eq(out[1].kind, RSTATE_FLOAT);
  cr_assert_eq(out[1].u.f, 0.5);
  cr_assert_eq(out[2].kind, RSTATE_INT);
  cr_assert_eq(out[2].u.i, 8);
  for (size_t i = 0; i < 3; i++) rstate_value_clear(&out[i]);

  /* revision may be NULL */
  ASSERT_RC(rstate_get_many(s, names, 3, out, NULL), RSTATE_OK);
  cr_assert_eq(out[2].u.i, 8);
  for (size_t i = 0; i < 3; i++) rstate_value_clear(&out[i]);
}

Test(store, get_many_all_or_nothing) {
  h_define_ok(s, "a", RSTATE_TYPE_STRING, rstate_string("first"), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(2), NULL);
  const char *const names[] = {"a", "b", "nope_missing"};
  rstate_value out[3] = {rstate_int(1), rstate_int(2), rstate_int(3)};
  uint64_t rev = 12345;
  ASSERT_FAIL_NAMES(rstate_get_many(s, names, 3, out, &rev), RSTATE_ENOTFOUND, "nope_missing");
  for (size_t i = 0; i < 3; i++)
    cr_assert_eq(out[i].kind, RSTATE_NONE, "out[%zu] has kind %d after a failed get_many", i, (int)out[i].kind);

  const char *const first_missing[] = {"nope_first", "a"};
  rstate_value out2[2] = {rstate_int(1), rstate_int(2)};
  ASSERT_FAIL_NAMES(rstate_get_many(s, first_missing, 2, out2, NULL), RSTATE_ENOTFOUND, "nope_first");
  cr_assert_eq(out2[0].kind, RSTATE_NONE);
  cr_assert_eq(out2[1].kind, RSTATE_NONE);
}

Test(store, get_many_bad_arguments) {
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  const char *const names[] = {"a"};
  const char *const null_name[] = {"a", NULL};
  rstate_value out[2];
  ASSERT_RC(rstate_get_many(NULL, names, 1, out, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_get_many(s, NULL, 1, out, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_get_many(s, names, 1, NULL, NULL), RSTATE_EINVAL);
  out[0] = rstate_int(9);
  ASSERT_RC(rstate_get_many(s, null_name, 2, out, NULL), RSTATE_EINVAL);
  cr_assert_eq(out[0].kind, RSTATE_NONE);
}

/* ---- info ---------------------------------------------------------------- */

Test(store, info_after_define_and_set) {
  h_define_ok(s, "first", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL);
  int64_t before = realtime_ns();
  h_define_ok(s, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), NULL);
  int64_t after = realtime_ns();
  rstate_var_info info = h_info(s, "temperature");
  cr_assert_eq(info.type, RSTATE_TYPE_FLOAT);
  cr_assert_eq(info.version, 1);
  cr_assert_eq(info.revision, 2);
  cr_assert_eq(info.revision, rstate_revision(s));
  const int64_t slack = 2000000000; /* 2 s: clocks differ a little, never by more */
  cr_assert(info.updated_ns >= before - slack && info.updated_ns <= after + slack,
            "updated_ns %lld is not CLOCK_REALTIME now (%lld)", (long long)info.updated_ns, (long long)before);

  ASSERT_RC(rstate_set_float(s, "temperature", 1.0), RSTATE_OK);
  rstate_var_info info2 = h_info(s, "temperature");
  cr_assert_eq(info2.version, 2);
  cr_assert_eq(info2.revision, 3);
  cr_assert_eq(info2.type, RSTATE_TYPE_FLOAT);
  cr_assert(info2.updated_ns >= info.updated_ns, "updated_ns went backwards");
  cr_assert(info2.updated_ns <= realtime_ns() + slack);

  rstate_var_info first = h_info(s, "first");
  cr_assert_eq(first.revision, 1, "a set of another variable changed this one's revision");
  cr_assert_eq(first.version, 1);
}

Test(store, info_bad_arguments) {
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_var_info info;
  ASSERT_FAIL_NAMES(rstate_info(s, "missing_var", &info), RSTATE_ENOTFOUND, "missing_var");
  ASSERT_RC(rstate_info(NULL, "a", &info), RSTATE_EINVAL);
  ASSERT_RC(rstate_info(s, NULL, &info), RSTATE_EINVAL);
  ASSERT_RC(rstate_info(s, "a", NULL), RSTATE_EINVAL);
}

/* ---- list ----------------------------------------------------------------- */

struct walk {
  char names[16][64];
  rstate_type types[16];
  size_t n;
  size_t stop_after; /* 0: never stop */
  rstate_store *store;
  int get_failures;
};

static int collect(const char *name, rstate_type type, void *ud) {
  struct walk *w = ud;
  if (w->n < 16) {
    snprintf(w->names[w->n], sizeof w->names[w->n], "%s", name);
    w->types[w->n] = type;
  }
  w->n++;
  return w->stop_after && w->n >= w->stop_after;
}

Test(store, list_visits_every_variable_in_name_order) {
  rstate_constraints c = {.choices = models, .n_choices = 3};
  h_define_ok(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &c);
  h_define_ok(s, "a.temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), NULL);
  h_define_ok(s, "zeta", RSTATE_TYPE_BOOLEAN, rstate_bool(true), NULL);
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(s, "B", RSTATE_TYPE_STRING, rstate_string(""), NULL);
  h_define_ok(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("X.Y"), NULL);

  struct walk w;
  memset(&w, 0, sizeof w);
  ASSERT_RC(rstate_list(s, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 6, "visited %zu variables, want 6", w.n);
  const char *want[] = {"B", "a.temperature", "max_tokens", "model", "strategy", "zeta"};
  const rstate_type want_types[] = {RSTATE_TYPE_STRING,  RSTATE_TYPE_FLOAT,  RSTATE_TYPE_INTEGER,
                                    RSTATE_TYPE_CHOICE,  RSTATE_TYPE_MODULE, RSTATE_TYPE_BOOLEAN};
  for (size_t i = 0; i < 6; i++) {
    cr_assert_str_eq(w.names[i], want[i], "visit #%zu", i);
    cr_assert_eq(w.types[i], want_types[i], "%s has type %s", want[i], rstate_type_name(w.types[i]));
  }
}

Test(store, list_empty_store) {
  struct walk w;
  memset(&w, 0, sizeof w);
  ASSERT_RC(rstate_list(s, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 0);
}

Test(store, list_stops_when_fn_returns_nonzero) {
  h_define_ok(s, "c", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  struct walk w;
  memset(&w, 0, sizeof w);
  w.stop_after = 2;
  rstate_list(s, collect, &w);
  cr_assert_eq(w.n, 2, "the walk went on after fn returned nonzero (%zu calls)", w.n);
  cr_assert_str_eq(w.names[0], "a");
  cr_assert_str_eq(w.names[1], "b");
}

static int get_each(const char *name, rstate_type type, void *ud) {
  struct walk *w = ud;
  rstate_value v;
  if (rstate_get(w->store, name, &v) != RSTATE_OK) {
    w->get_failures++;
  } else {
    rstate_var_info info;
    if (rstate_info(w->store, name, &info) != RSTATE_OK || info.type != type) w->get_failures++;
    rstate_value_clear(&v);
  }
  return collect(name, type, ud);
}

Test(store, list_fn_may_call_the_store) {
  h_define_ok(s, "one", RSTATE_TYPE_STRING, rstate_string("1"), NULL);
  h_define_ok(s, "two", RSTATE_TYPE_INTEGER, rstate_int(2), NULL);
  struct walk w;
  memset(&w, 0, sizeof w);
  w.store = s;
  ASSERT_RC(rstate_list(s, get_each, &w), RSTATE_OK);
  cr_assert_eq(w.n, 2);
  cr_assert_eq(w.get_failures, 0, "rstate_get/rstate_info failed inside the list callback");
}

static int define_during_walk(const char *name, rstate_type type, void *ud) {
  struct walk *w = ud;
  if (w->n == 0) {
    rstate_var_def def = {.name = "b_new", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(1)};
    if (rstate_define(w->store, &def) != RSTATE_OK) w->get_failures++;
    if (rstate_set_int(w->store, "c", 5) != RSTATE_OK) w->get_failures++;
  }
  return collect(name, type, ud);
}

Test(store, list_walks_a_snapshot) {
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(s, "c", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  struct walk w;
  memset(&w, 0, sizeof w);
  w.store = s;
  ASSERT_RC(rstate_list(s, define_during_walk, &w), RSTATE_OK);
  cr_assert_eq(w.get_failures, 0, "define/set inside the list callback failed");
  cr_assert_eq(w.n, 2, "the walk saw %zu variables; the snapshot had 2", w.n);
  cr_assert_str_eq(w.names[0], "a");
  cr_assert_str_eq(w.names[1], "c");
  cr_assert_eq(h_get_int(s, "b_new"), 1);
  cr_assert_eq(h_get_int(s, "c"), 5);
}

Test(store, list_bad_arguments) {
  struct walk w;
  memset(&w, 0, sizeof w);
  ASSERT_RC(rstate_list(NULL, collect, &w), RSTATE_EINVAL);
  ASSERT_RC(rstate_list(s, NULL, &w), RSTATE_EINVAL);
}

/* ---- the store revision ------------------------------------------------- */

Test(store, revision_counts_accepted_changes) {
  cr_assert_eq(rstate_revision(s), 0);
  cr_assert_eq(rstate_revision(NULL), 0);
  rstate_constraints range = {.min = rstate_int(0), .max = rstate_int(10)};
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(1), &range);
  cr_assert_eq(rstate_revision(s), 1, "define +1");
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  cr_assert_eq(rstate_revision(s), 2, "define +1");
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(1), &range);
  cr_assert_eq(rstate_revision(s), 2, "idempotent define +0");
  ASSERT_RC(h_define(s, "a", RSTATE_TYPE_INTEGER, rstate_int(2), &range), RSTATE_EEXIST);
  cr_assert_eq(rstate_revision(s), 2, "conflicting define +0");
  ASSERT_RC(rstate_set_int(s, "a", 5), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), 3, "set +1");
  ASSERT_RC(rstate_set_int(s, "a", 5), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), 3, "equal set +0");
  ASSERT_RC(rstate_set_int(s, "a", 11), RSTATE_ECONSTRAINT);
  cr_assert_eq(rstate_revision(s), 3, "rejected set +0");
  ASSERT_RC(rstate_set_bool(s, "a", true), RSTATE_ETYPE);
  cr_assert_eq(rstate_revision(s), 3, "rejected set +0");
  ASSERT_RC(rstate_set_int(s, "missing", 1), RSTATE_ENOTFOUND);
  cr_assert_eq(rstate_revision(s), 3, "set of a missing variable +0");
  rstate_assign items[] = {{"a", rstate_int(6)}, {"b", rstate_int(7)}};
  ASSERT_RC(rstate_set_many(s, items, 2, NULL, NULL), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), 4, "set_many +1 in total");
  ASSERT_RC(rstate_undefine(s, "b"), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), 5, "undefine +1");
  ASSERT_RC(rstate_undefine(s, "b"), RSTATE_ENOTFOUND);
  cr_assert_eq(rstate_revision(s), 5, "failed undefine +0");
  ASSERT_RC(h_define(s, "bad name", RSTATE_TYPE_INTEGER, rstate_int(1), NULL), RSTATE_EINVAL);
  cr_assert_eq(rstate_revision(s), 5, "failed define +0");
}
