/*
 * test_set.c — rstate_set, rstate_set_if and the scalar shortcuts on a "mem:"
 * store: kind coercion, constraint checks, versions and revisions, and that
 * a rejected set changes nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static rstate_store *s;

static void open_store(void) { s = h_open(); }
static void close_store(void) {
  rstate_close(s);
  s = NULL;
}

TestSuite(set, .init = open_store, .fini = close_store);

static const char *const models[] = {"gpt-4", "claude-3", "gemini"};
static const char *const strategies[] = {"Default", "Optimized"};

/* One variable of each type, unconstrained except the choice. */
static void define_all(void) {
  static const rstate_constraints choice_c = {.choices = models, .n_choices = 3};
  h_define_ok(s, "v_float", RSTATE_TYPE_FLOAT, rstate_float(0.5), NULL);
  h_define_ok(s, "v_int", RSTATE_TYPE_INTEGER, rstate_int(10), NULL);
  h_define_ok(s, "v_bool", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL);
  h_define_ok(s, "v_string", RSTATE_TYPE_STRING, rstate_string("hello"), NULL);
  h_define_ok(s, "v_choice", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &choice_c);
  h_define_ok(s, "v_module", RSTATE_TYPE_MODULE, rstate_string("Strategies.Default"), NULL);
}

/* Asserts that a rejected call left the variable exactly as it was. */
struct snap {
  rstate_value value;
  rstate_var_info info;
  uint64_t store_revision;
};

static struct snap take(const char *name) {
  struct snap sn;
  memset(&sn, 0, sizeof sn);
  ASSERT_RC(rstate_get(s, name, &sn.value), RSTATE_OK);
  sn.info = h_info(s, name);
  sn.store_revision = rstate_revision(s);
  return sn;
}

static void assert_same(const char *name, struct snap *before) {
  struct snap now = take(name);
  bool equal = rstate_value_equal(&now.value, &before->value);
  rstate_value_clear(&now.value);
  rstate_value_clear(&before->value);
  cr_assert(equal, "%s: a rejected call changed the value", name);
  cr_assert_eq(now.info.version, before->info.version, "%s: a rejected call changed the version", name);
  cr_assert_eq(now.info.revision, before->info.revision, "%s: a rejected call changed the revision", name);
  cr_assert_eq(now.info.updated_ns, before->info.updated_ns, "%s: a rejected call changed updated_ns", name);
  cr_assert_eq(now.store_revision, before->store_revision, "a rejected call changed the store revision");
}

/* Expects expr to fail with want, naming name, and change nothing. */
#define ASSERT_REJECTED(name, expr, want)             \
  do {                                                \
    struct snap before_ = take(name);                 \
    ASSERT_FAIL_NAMES(expr, want, name);              \
    assert_same(name, &before_);                      \
  } while (0)

/* ---- rstate_set and rstate_get on each type ------------------------------------- */

Test(set, set_each_type) {
  define_all();
  rstate_value v = rstate_float(1.25);
  ASSERT_RC(rstate_set(s, "v_float", &v, NULL), RSTATE_OK);
  v = rstate_int(-3);
  ASSERT_RC(rstate_set(s, "v_int", &v, NULL), RSTATE_OK);
  v = rstate_bool(true);
  ASSERT_RC(rstate_set(s, "v_bool", &v, NULL), RSTATE_OK);
  v = rstate_string("world");
  ASSERT_RC(rstate_set(s, "v_string", &v, NULL), RSTATE_OK);
  v = rstate_string("gemini");
  ASSERT_RC(rstate_set(s, "v_choice", &v, NULL), RSTATE_OK);
  v = rstate_string("Strategies.Optimized");
  ASSERT_RC(rstate_set(s, "v_module", &v, NULL), RSTATE_OK);

  rstate_value out;
  ASSERT_RC(rstate_get(s, "v_float", &out), RSTATE_OK);
  cr_assert_eq(out.kind, RSTATE_FLOAT);
  cr_assert_eq(out.u.f, 1.25);
  ASSERT_RC(rstate_get(s, "v_int", &out), RSTATE_OK);
  cr_assert_eq(out.kind, RSTATE_INT);
  cr_assert_eq(out.u.i, -3);
  ASSERT_RC(rstate_get(s, "v_bool", &out), RSTATE_OK);
  cr_assert_eq(out.kind, RSTATE_BOOL);
  cr_assert(out.u.b);
  h_assert_string(s, "v_string", "world");
  h_assert_string(s, "v_choice", "gemini");
  h_assert_string(s, "v_module", "Strategies.Optimized");
}

Test(set, scalar_shortcuts_each_type) {
  define_all();
  ASSERT_RC(rstate_set_float(s, "v_float", -7.5), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "v_int", INT64_MIN), RSTATE_OK);
  ASSERT_RC(rstate_set_bool(s, "v_bool", true), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "v_string", "via shortcut"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "v_choice", "claude-3"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "v_module", "Other.Name"), RSTATE_OK);

  double f = 0;
  ASSERT_RC(rstate_get_float(s, "v_float", &f), RSTATE_OK);
  cr_assert_eq(f, -7.5);
  int64_t i = 0;
  ASSERT_RC(rstate_get_int(s, "v_int", &i), RSTATE_OK);
  cr_assert_eq(i, INT64_MIN);
  bool b = false;
  ASSERT_RC(rstate_get_bool(s, "v_bool", &b), RSTATE_OK);
  cr_assert(b);

  const char *names[] = {"v_string", "v_choice", "v_module"};
  const char *want[] = {"via shortcut", "claude-3", "Other.Name"};
  for (size_t k = 0; k < 3; k++) {
    char *str = NULL;
    ASSERT_RC(rstate_get_string(s, names[k], &str), RSTATE_OK);
    cr_assert_not_null(str);
    int same = strcmp(str, want[k]) == 0;
    rstate_free(str);
    cr_assert(same, "rstate_get_string(%s) returned the wrong string", names[k]);
  }
}

Test(set, get_string_returns_an_owned_copy) {
  define_all();
  char *a = NULL, *b = NULL;
  ASSERT_RC(rstate_get_string(s, "v_string", &a), RSTATE_OK);
  ASSERT_RC(rstate_get_string(s, "v_string", &b), RSTATE_OK);
  cr_assert_neq(a, b, "two calls returned the same buffer");
  a[0] = 'J';
  int b_ok = strcmp(b, "hello") == 0;
  rstate_free(a);
  rstate_free(b);
  rstate_free(NULL);
  cr_assert(b_ok);
  h_assert_string(s, "v_string", "hello");
}

Test(set, get_float_reads_integer_variables) {
  define_all();
  ASSERT_RC(rstate_set_int(s, "v_int", 7), RSTATE_OK);
  cr_assert_eq(h_get_float(s, "v_int"), 7.0);
}

Test(set, getter_type_mismatches) {
  define_all();
  int64_t i = 0;
  bool b = false;
  double f = 0;
  char *str = NULL;
  ASSERT_FAIL_NAMES(rstate_get_int(s, "v_float", &i), RSTATE_ETYPE, "v_float");
  ASSERT_FAIL_NAMES(rstate_get_int(s, "v_bool", &i), RSTATE_ETYPE, "v_bool");
  ASSERT_FAIL_NAMES(rstate_get_bool(s, "v_string", &b), RSTATE_ETYPE, "v_string");
  ASSERT_FAIL_NAMES(rstate_get_bool(s, "v_int", &b), RSTATE_ETYPE, "v_int");
  ASSERT_FAIL_NAMES(rstate_get_float(s, "v_bool", &f), RSTATE_ETYPE, "v_bool");
  ASSERT_FAIL_NAMES(rstate_get_float(s, "v_string", &f), RSTATE_ETYPE, "v_string");
  ASSERT_FAIL_NAMES(rstate_get_string(s, "v_float", &str), RSTATE_ETYPE, "v_float");
  ASSERT_FAIL_NAMES(rstate_get_string(s, "v_bool", &str), RSTATE_ETYPE, "v_bool");
  ASSERT_FAIL_NAMES(rstate_get_int(s, "v_choice", &i), RSTATE_ETYPE, "v_choice");
}

Test(set, getters_bad_arguments) {
  define_all();
  double f;
  int64_t i;
  bool b;
  char *str;
  ASSERT_RC(rstate_get_float(s, "v_float", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_get_int(s, "v_int", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_get_bool(s, "v_bool", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_get_string(s, "v_string", NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_get_float(NULL, "v_float", &f), RSTATE_EINVAL);
  ASSERT_RC(rstate_get_int(s, NULL, &i), RSTATE_EINVAL);
  ASSERT_FAIL_NAMES(rstate_get_float(s, "nope_f", &f), RSTATE_ENOTFOUND, "nope_f");
  ASSERT_FAIL_NAMES(rstate_get_int(s, "nope_i", &i), RSTATE_ENOTFOUND, "nope_i");
  ASSERT_FAIL_NAMES(rstate_get_bool(s, "nope_b", &b), RSTATE_ENOTFOUND, "nope_b");
  ASSERT_FAIL_NAMES(rstate_get_string(s, "nope_s", &str), RSTATE_ENOTFOUND, "nope_s");
}

/* ---- coercion ------------------------------------------------------------- */

Test(set, int_to_float_variable) {
  define_all();
  ASSERT_RC(rstate_set_int(s, "v_float", 3), RSTATE_OK);
  rstate_value out;
  ASSERT_RC(rstate_get(s, "v_float", &out), RSTATE_OK);
  cr_assert_eq(out.kind, RSTATE_FLOAT, "a float variable set with an int reads back as kind %d", (int)out.kind);
  cr_assert_eq(out.u.f, 3.0);
  rstate_value big = rstate_int(INT64_MAX);
  ASSERT_RC(rstate_set(s, "v_float", &big, NULL), RSTATE_OK);
  cr_assert_eq(h_get_float(s, "v_float"), (double)INT64_MAX);
}

Test(set, integral_float_to_integer_variable) {
  define_all();
  ASSERT_RC(rstate_set_float(s, "v_int", 3.0), RSTATE_OK);
  rstate_value out;
  ASSERT_RC(rstate_get(s, "v_int", &out), RSTATE_OK);
  cr_assert_eq(out.kind, RSTATE_INT, "an integer variable set with 3.0 reads back as kind %d", (int)out.kind);
  cr_assert_eq(out.u.i, 3);
  ASSERT_RC(rstate_set_float(s, "v_int", -0.0), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "v_int"), 0);
  ASSERT_RC(rstate_set_float(s, "v_int", -9223372036854775808.0), RSTATE_OK); /* exactly INT64_MIN */
  cr_assert_eq(h_get_int(s, "v_int"), INT64_MIN);
}

Test(set, fractional_or_huge_float_to_integer_is_etype) {
  define_all();
  ASSERT_REJECTED("v_int", rstate_set_float(s, "v_int", 3.5), RSTATE_ETYPE);
  ASSERT_REJECTED("v_int", rstate_set_float(s, "v_int", 9223372036854775808.0), RSTATE_ETYPE); /* 2^63 */
  ASSERT_REJECTED("v_int", rstate_set_float(s, "v_int", 1e300), RSTATE_ETYPE);
  ASSERT_REJECTED("v_int", rstate_set_float(s, "v_int", -1e19), RSTATE_ETYPE);
  ASSERT_REJECTED("v_int", rstate_set_float(s, "v_int", NAN), RSTATE_ETYPE);
  ASSERT_REJECTED("v_int", rstate_set_float(s, "v_int", INFINITY), RSTATE_ETYPE);
}

Test(set, non_finite_float_is_etype) {
  define_all();
  ASSERT_REJECTED("v_float", rstate_set_float(s, "v_float", NAN), RSTATE_ETYPE);
  ASSERT_REJECTED("v_float", rstate_set_float(s, "v_float", INFINITY), RSTATE_ETYPE);
  ASSERT_REJECTED("v_float", rstate_set_float(s, "v_float", -INFINITY), RSTATE_ETYPE);
  rstate_value v = rstate_float(NAN);
  ASSERT_REJECTED("v_float", rstate_set(s, "v_float", &v, NULL), RSTATE_ETYPE);
}

Test(set, wrong_kinds_are_etype) {
  define_all();
  ASSERT_REJECTED("v_int", rstate_set_bool(s, "v_int", true), RSTATE_ETYPE);
  ASSERT_REJECTED("v_int", rstate_set_string(s, "v_int", "3"), RSTATE_ETYPE);
  ASSERT_REJECTED("v_float", rstate_set_bool(s, "v_float", false), RSTATE_ETYPE);
  ASSERT_REJECTED("v_float", rstate_set_string(s, "v_float", "0.5"), RSTATE_ETYPE);
  ASSERT_REJECTED("v_bool", rstate_set_int(s, "v_bool", 1), RSTATE_ETYPE);
  ASSERT_REJECTED("v_bool", rstate_set_float(s, "v_bool", 0.0), RSTATE_ETYPE);
  ASSERT_REJECTED("v_bool", rstate_set_string(s, "v_bool", "true"), RSTATE_ETYPE);
  ASSERT_REJECTED("v_string", rstate_set_int(s, "v_string", 1), RSTATE_ETYPE);
  ASSERT_REJECTED("v_choice", rstate_set_int(s, "v_choice", 0), RSTATE_ETYPE);
  ASSERT_REJECTED("v_module", rstate_set_bool(s, "v_module", true), RSTATE_ETYPE);
  rstate_value none;
  memset(&none, 0, sizeof none);
  ASSERT_REJECTED("v_int", rstate_set(s, "v_int", &none, NULL), RSTATE_ETYPE);
  ASSERT_REJECTED("v_string", rstate_set(s, "v_string", &none, NULL), RSTATE_ETYPE);
  rstate_value odd = {.kind = (rstate_kind)42};
  ASSERT_REJECTED("v_int", rstate_set(s, "v_int", &odd, NULL), RSTATE_ETYPE);
  ASSERT_REJECTED("v_string", rstate_set_if(s, "v_string", &odd, 1, NULL), RSTATE_ETYPE);
}

Test(set, invalid_utf8_is_etype) {
  define_all();
  ASSERT_REJECTED("v_string", rstate_set_string(s, "v_string", "\xff"), RSTATE_ETYPE);
  ASSERT_REJECTED("v_string", rstate_set_string(s, "v_string", "ab\xc0\x80"), RSTATE_ETYPE);       /* overlong NUL */
  ASSERT_REJECTED("v_string", rstate_set_string(s, "v_string", "\xe0\x80\xaf"), RSTATE_ETYPE);     /* overlong '/' */
  ASSERT_REJECTED("v_string", rstate_set_string(s, "v_string", "\xf0\x80\x80\xaf"), RSTATE_ETYPE); /* overlong '/' */
  ASSERT_REJECTED("v_string", rstate_set_string(s, "v_string", "\x80" "abc"), RSTATE_ETYPE);         /* stray continuation */
  ASSERT_REJECTED("v_string", rstate_set_string(s, "v_string", "trunc\xe2\x82"), RSTATE_ETYPE);    /* cut short */
  ASSERT_REJECTED("v_string", rstate_set_string(s, "v_string", "\xed\xa0\x80"), RSTATE_ETYPE);     /* surrogate */
  ASSERT_REJECTED("v_string", rstate_set_string(s, "v_string", "\xf4\x90\x80\x80"), RSTATE_ETYPE); /* > U+10FFFF */
  rstate_value cut = rstate_stringn("\xc3\xa9", 1);                                      /* half of é */
  ASSERT_REJECTED("v_string", rstate_set(s, "v_string", &cut, NULL), RSTATE_ETYPE);
  ASSERT_REJECTED("v_choice", rstate_set_string(s, "v_choice", "gpt-4\xff"), RSTATE_ETYPE);
}

Test(set, valid_utf8_round_trips) {
  define_all();
  const char *text = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"; /* héllo € 😀 */
  ASSERT_RC(rstate_set_string(s, "v_string", text), RSTATE_OK);
  h_assert_string(s, "v_string", text);
  ASSERT_RC(rstate_set_string(s, "v_string", ""), RSTATE_OK);
  h_assert_string(s, "v_string", "");
}

Test(set, embedded_nul_is_etype) {
  define_all();
  rstate_value v = rstate_stringn("ab\0cd", 5);
  ASSERT_REJECTED("v_string", rstate_set(s, "v_string", &v, NULL), RSTATE_ETYPE);
  rstate_value tail = rstate_stringn("abc\0", 4);
  ASSERT_REJECTED("v_string", rstate_set(s, "v_string", &tail, NULL), RSTATE_ETYPE);
}

Test(set, stringn_is_read_as_exactly_len_bytes) {
  define_all();
  rstate_value v = rstate_stringn("abcdef", 3);
  ASSERT_RC(rstate_set(s, "v_string", &v, NULL), RSTATE_OK);
  h_assert_string(s, "v_string", "abc");
  rstate_value c = rstate_stringn("gemini and more", 6);
  ASSERT_RC(rstate_set(s, "v_choice", &c, NULL), RSTATE_OK);
  h_assert_string(s, "v_choice", "gemini");
}

Test(set, value_is_copied) {
  define_all();
  char buf[] = "mutable";
  ASSERT_RC(rstate_set_string(s, "v_string", buf), RSTATE_OK);
  memcpy(buf, "changed", 7);
  h_assert_string(s, "v_string", "mutable");
}

/* ---- constraints ---------------------------------------------------------- */

Test(set, float_bounds_are_inclusive) {
  rstate_constraints c = {.min = rstate_float(0), .max = rstate_float(2)};
  h_define_ok(s, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &c);
  ASSERT_RC(rstate_set_float(s, "temperature", 0.0), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "temperature", 2.0), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "temperature", 1), RSTATE_OK);
  ASSERT_REJECTED("temperature", rstate_set_float(s, "temperature", -0.001), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("temperature", rstate_set_float(s, "temperature", 2.001), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("temperature", rstate_set_float(s, "temperature", nextafter(2.0, 3.0)), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("temperature", rstate_set_int(s, "temperature", 3), RSTATE_ECONSTRAINT);
  cr_assert_eq(h_get_float(s, "temperature"), 1.0);
}

Test(set, integer_bounds_are_inclusive) {
  rstate_constraints c = {.min = rstate_int(1), .max = rstate_int(4096)};
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(100), &c);
  ASSERT_RC(rstate_set_int(s, "max_tokens", 1), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "max_tokens", 4096), RSTATE_OK);
  ASSERT_REJECTED("max_tokens", rstate_set_int(s, "max_tokens", 0), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("max_tokens", rstate_set_int(s, "max_tokens", 4097), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("max_tokens", rstate_set_int(s, "max_tokens", 5000), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("max_tokens", rstate_set_float(s, "max_tokens", 5000.0), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("max_tokens", rstate_set_int(s, "max_tokens", INT64_MIN), RSTATE_ECONSTRAINT);
  cr_assert_eq(h_get_int(s, "max_tokens"), 4096);
}

Test(set, constraint_error_states_the_rule) {
  rstate_constraints c = {.min = rstate_int(1), .max = rstate_int(4096)};
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(100), &c);
  ASSERT_FAIL_NAMES(rstate_set_int(s, "max_tokens", 5000), RSTATE_ECONSTRAINT, "max_tokens");
  cr_assert(strstr(rstate_last_error(), "4096") != NULL, "the sentence \"%s\" does not state the maximum",
            rstate_last_error());
}

Test(set, one_sided_bounds) {
  rstate_constraints lo = {.min = rstate_float(0)};
  h_define_ok(s, "positive", RSTATE_TYPE_FLOAT, rstate_float(1), &lo);
  ASSERT_RC(rstate_set_float(s, "positive", 1e300), RSTATE_OK);
  ASSERT_REJECTED("positive", rstate_set_float(s, "positive", -1e-300), RSTATE_ECONSTRAINT);
  rstate_constraints hi = {.max = rstate_int(0)};
  h_define_ok(s, "nonpositive", RSTATE_TYPE_INTEGER, rstate_int(-1), &hi);
  ASSERT_RC(rstate_set_int(s, "nonpositive", INT64_MIN), RSTATE_OK);
  ASSERT_REJECTED("nonpositive", rstate_set_int(s, "nonpositive", 1), RSTATE_ECONSTRAINT);
}

Test(set, string_length_bounds) {
  rstate_constraints c = {.min_length = 2, .max_length = 4};
  h_define_ok(s, "country_code", RSTATE_TYPE_STRING, rstate_string("abc"), &c);
  ASSERT_RC(rstate_set_string(s, "country_code", "ab"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "country_code", "abcd"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "country_code", "\xc3\xa9"), RSTATE_OK); /* é: 1 character, 2 bytes */
  ASSERT_REJECTED("country_code", rstate_set_string(s, "country_code", "a"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("country_code", rstate_set_string(s, "country_code", ""), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("country_code", rstate_set_string(s, "country_code", "abcde"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("country_code", rstate_set_string(s, "country_code", "\xc3\xa9\xc3\xa9\xc3\xa9"), RSTATE_ECONSTRAINT); /* 6 bytes */
}

Test(set, string_max_length_zero_is_no_limit) {
  rstate_constraints c = {.min_length = 1, .max_length = 0};
  h_define_ok(s, "text", RSTATE_TYPE_STRING, rstate_string("x"), &c);
  char *big = malloc(100001);
  cr_assert_not_null(big);
  memset(big, 'y', 100000);
  big[100000] = '\0';
  int rc = rstate_set_string(s, "text", big);
  free(big);
  ASSERT_RC(rc, RSTATE_OK);
  rstate_value out;
  ASSERT_RC(rstate_get(s, "text", &out), RSTATE_OK);
  size_t len = out.u.s.len;
  rstate_value_clear(&out);
  cr_assert_eq(len, 100000);
}

Test(set, pattern_matches_whole_value) {
  rstate_constraints c = {.pattern = "[a-z]+"};
  h_define_ok(s, "word", RSTATE_TYPE_STRING, rstate_string("abc"), &c);
  ASSERT_RC(rstate_set_string(s, "word", "xyz"), RSTATE_OK);
  ASSERT_REJECTED("word", rstate_set_string(s, "word", "abc1"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("word", rstate_set_string(s, "word", "1abc"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("word", rstate_set_string(s, "word", "ab cd"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("word", rstate_set_string(s, "word", ""), RSTATE_ECONSTRAINT);
  h_assert_string(s, "word", "xyz");
}

Test(set, pattern_alternation_is_anchored_as_a_whole) {
  /* "^a|b$" style mistakes: a pattern with alternation must still match the WHOLE value. */
  rstate_constraints c = {.pattern = "cat|dog"};
  h_define_ok(s, "pet_kind", RSTATE_TYPE_STRING, rstate_string("cat"), &c);
  ASSERT_RC(rstate_set_string(s, "pet_kind", "dog"), RSTATE_OK);
  ASSERT_REJECTED("pet_kind", rstate_set_string(s, "pet_kind", "catfish"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("pet_kind", rstate_set_string(s, "pet_kind", "hotdog"), RSTATE_ECONSTRAINT);
}

Test(set, choice) {
  rstate_constraints c = {.choices = models, .n_choices = 3};
  h_define_ok(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &c);
  ASSERT_RC(rstate_set_string(s, "model", "claude-3"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "model", "gemini"), RSTATE_OK);
  ASSERT_REJECTED("model", rstate_set_string(s, "model", "gpt-5"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("model", rstate_set_string(s, "model", "gpt"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("model", rstate_set_string(s, "model", "gpt-4 "), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("model", rstate_set_string(s, "model", "GEMINI"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("model", rstate_set_string(s, "model", ""), RSTATE_ECONSTRAINT);
  h_assert_string(s, "model", "gemini");
}

Test(set, choices_are_copied_at_define) {
  char *c0 = strdup("red"), *c1 = strdup("green");
  cr_assert(c0 && c1);
  const char *list[2] = {c0, c1};
  rstate_constraints c = {.choices = list, .n_choices = 2};
  int rc = h_define(s, "color", RSTATE_TYPE_CHOICE, rstate_string("red"), &c);
  memcpy(c1, "GREEN", 5); /* the caller's strings change after define */
  list[0] = "blue";
  int rc_green = rstate_set_string(s, "color", "green");
  free(c0);
  free(c1);
  ASSERT_RC(rc, RSTATE_OK);
  ASSERT_RC(rc_green, RSTATE_OK);
  ASSERT_REJECTED("color", rstate_set_string(s, "color", "blue"), RSTATE_ECONSTRAINT);
}

Test(set, module_namespace_and_choices) {
  rstate_constraints c = {.module_namespace = "Strategies", .choices = strategies, .n_choices = 2};
  h_define_ok(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("Strategies.Default"), &c);
  ASSERT_RC(rstate_set_string(s, "strategy", "Strategies.Optimized"), RSTATE_OK);
  h_assert_string(s, "strategy", "Strategies.Optimized");
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Other.Optimized"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Strategies.Custom"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Optimized"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Strategies"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "StrategiesX.Optimized"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "StrategiesXOptimized"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "StrategiesOptimized"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "X.Strategies.Optimized"), RSTATE_ECONSTRAINT);
}

Test(set, module_namespace_without_choices) {
  rstate_constraints c = {.module_namespace = "Strategies"};
  h_define_ok(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("Strategies.Default"), &c);
  ASSERT_RC(rstate_set_string(s, "strategy", "Strategies.Anything_1"), RSTATE_OK);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Other.Anything_1"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Strategies"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Strategies."), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "StrategiesX.Anything"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "StrategiesXAnything"), RSTATE_ECONSTRAINT);
}

Test(set, module_choices_without_namespace) {
  rstate_constraints c = {.choices = strategies, .n_choices = 2};
  h_define_ok(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("Default"), &c);
  ASSERT_RC(rstate_set_string(s, "strategy", "Optimized"), RSTATE_OK);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Strategies.Optimized"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("strategy", rstate_set_string(s, "strategy", "Custom"), RSTATE_ECONSTRAINT);
  h_assert_string(s, "strategy", "Optimized");
}

Test(set, module_value_is_a_dotted_identifier) {
  h_define_ok(s, "v_module", RSTATE_TYPE_MODULE, rstate_string("Name"), NULL);
  ASSERT_RC(rstate_set_string(s, "v_module", "A.B.Name"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "v_module", "_private.x9"), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "v_module", "Single"), RSTATE_OK);
  const char *bad[] = {"not-an.identifier!", "1abc", "a..b", ".a", "a.", "", "a b", "a.9b", "a-b"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    struct snap before = take("v_module");
    int rc = rstate_set_string(s, "v_module", bad[k]);
    cr_assert_eq(rc, RSTATE_ECONSTRAINT, "module value \"%s\": %s: %s", bad[k], rstate_error_name(rc),
                 rstate_last_error());
    cr_assert(strstr(rstate_last_error(), "v_module") != NULL);
    assert_same("v_module", &before);
  }
  h_assert_string(s, "v_module", "Single");
}

Test(set, module_pattern) {
  rstate_constraints c = {.pattern = "[A-Z][a-z]+(\\.[A-Z][a-z]+)*"};
  h_define_ok(s, "v_module", RSTATE_TYPE_MODULE, rstate_string("Default"), &c);
  ASSERT_RC(rstate_set_string(s, "v_module", "Strategies.Fast"), RSTATE_OK);
  ASSERT_REJECTED("v_module", rstate_set_string(s, "v_module", "default"), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("v_module", rstate_set_string(s, "v_module", "Strategies.fast"), RSTATE_ECONSTRAINT);
}

/* ---- versions and revisions ----------------------------------------------- */

Test(set, accepted_set_takes_version_and_revision) {
  define_all();
  uint64_t rev = rstate_revision(s);
  for (int k = 1; k <= 5; k++) {
    ASSERT_RC(rstate_set_int(s, "v_int", 100 + k), RSTATE_OK);
    rstate_var_info info = h_info(s, "v_int");
    cr_assert_eq(info.version, (uint64_t)(1 + k), "after %d sets the version is %llu", k,
                 (unsigned long long)info.version);
    cr_assert_eq(rstate_revision(s), rev + (uint64_t)k);
    cr_assert_eq(info.revision, rstate_revision(s), "the variable's revision is not the store's latest");
  }
  ASSERT_RC(rstate_set_string(s, "v_string", "x"), RSTATE_OK);
  cr_assert_eq(h_info(s, "v_string").revision, rev + 6);
  cr_assert_eq(h_info(s, "v_int").revision, rev + 5, "setting another variable changed this one's revision");
  cr_assert_eq(h_version(s, "v_string"), 2);
}

Test(set, equal_value_changes_nothing) {
  define_all();
  struct {
    const char *name;
    rstate_value v;
  } same[] = {
      {"v_float", rstate_float(0.5)},  {"v_int", rstate_int(10)},  {"v_int", rstate_float(10.0)},
      {"v_bool", rstate_bool(false)}, {"v_string", rstate_string("hello")}, {"v_choice", rstate_string("gpt-4")},
      {"v_module", rstate_string("Strategies.Default")},
  };
  for (size_t k = 0; k < sizeof same / sizeof same[0]; k++) {
    struct snap before = take(same[k].name);
    int rc = rstate_set(s, same[k].name, &same[k].v, NULL);
    cr_assert_eq(rc, RSTATE_OK, "setting %s to its current value: %s: %s", same[k].name, rstate_error_name(rc),
                 rstate_last_error());
    assert_same(same[k].name, &before);
  }
}

Test(set, float_zero_signs_are_equal) {
  h_define_ok(s, "v_zero", RSTATE_TYPE_FLOAT, rstate_float(0.0), NULL);
  struct snap before = take("v_zero");
  ASSERT_RC(rstate_set_float(s, "v_zero", -0.0), RSTATE_OK);
  assert_same("v_zero", &before);
}

Test(set, int_to_float_equal_after_coercion) {
  h_define_ok(s, "v_float", RSTATE_TYPE_FLOAT, rstate_float(3.0), NULL);
  struct snap before = take("v_float");
  ASSERT_RC(rstate_set_int(s, "v_float", 3), RSTATE_OK);
  assert_same("v_float", &before);
}

/* ---- set_if --------------------------------------------------------------- */

Test(set, set_if_checks_the_version) {
  define_all();
  rstate_value v = rstate_int(11);
  ASSERT_REJECTED("v_int", rstate_set_if(s, "v_int", &v, 2, NULL), RSTATE_ECONFLICT);
  ASSERT_REJECTED("v_int", rstate_set_if(s, "v_int", &v, 0, NULL), RSTATE_ECONFLICT);
  ASSERT_RC(rstate_set_if(s, "v_int", &v, 1, NULL), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "v_int"), 11);
  cr_assert_eq(h_version(s, "v_int"), 2);
  ASSERT_REJECTED("v_int", rstate_set_if(s, "v_int", &v, 1, NULL), RSTATE_ECONFLICT); /* stale version */
  v = rstate_int(12);
  ASSERT_RC(rstate_set_if(s, "v_int", &v, 2, NULL), RSTATE_OK);
  cr_assert_eq(h_version(s, "v_int"), 3);
  cr_assert_eq(h_info(s, "v_int").revision, rstate_revision(s));
}

Test(set, set_if_conflict_precedes_equal_value) {
  define_all();
  rstate_value same = rstate_int(10);
  ASSERT_REJECTED("v_int", rstate_set_if(s, "v_int", &same, 5, NULL), RSTATE_ECONFLICT);
  struct snap before = take("v_int");
  ASSERT_RC(rstate_set_if(s, "v_int", &same, 1, NULL), RSTATE_OK);
  assert_same("v_int", &before);
}

Test(set, set_if_still_checks_the_value) {
  rstate_constraints c = {.min = rstate_int(0), .max = rstate_int(10)};
  h_define_ok(s, "bounded_n", RSTATE_TYPE_INTEGER, rstate_int(5), &c);
  rstate_value big = rstate_int(11), wrong = rstate_bool(true);
  ASSERT_REJECTED("bounded_n", rstate_set_if(s, "bounded_n", &big, 1, NULL), RSTATE_ECONSTRAINT);
  ASSERT_REJECTED("bounded_n", rstate_set_if(s, "bounded_n", &wrong, 1, NULL), RSTATE_ETYPE);
}

Test(set, set_if_bad_arguments) {
  define_all();
  rstate_value v = rstate_int(1);
  ASSERT_FAIL_NAMES(rstate_set_if(s, "ghost_var", &v, 1, NULL), RSTATE_ENOTFOUND, "ghost_var");
  ASSERT_RC(rstate_set_if(NULL, "v_int", &v, 1, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_set_if(s, NULL, &v, 1, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_set_if(s, "v_int", NULL, 1, NULL), RSTATE_EINVAL);
  cr_assert_eq(h_version(s, "v_int"), 1);
}

/* ---- bad arguments and options ------------------------------------------- */

Test(set, set_unknown_variable) {
  define_all();
  uint64_t rev = rstate_revision(s);
  rstate_value v = rstate_int(1);
  ASSERT_FAIL_NAMES(rstate_set(s, "ghost_var", &v, NULL), RSTATE_ENOTFOUND, "ghost_var");
  ASSERT_FAIL_NAMES(rstate_set_float(s, "ghost_f", 1), RSTATE_ENOTFOUND, "ghost_f");
  ASSERT_FAIL_NAMES(rstate_set_int(s, "ghost_i", 1), RSTATE_ENOTFOUND, "ghost_i");
  ASSERT_FAIL_NAMES(rstate_set_bool(s, "ghost_b", true), RSTATE_ENOTFOUND, "ghost_b");
  ASSERT_FAIL_NAMES(rstate_set_string(s, "ghost_s", "x"), RSTATE_ENOTFOUND, "ghost_s");
  cr_assert_eq(rstate_revision(s), rev);
}

Test(set, set_null_arguments) {
  define_all();
  rstate_value v = rstate_int(1);
  ASSERT_RC(rstate_set(NULL, "v_int", &v, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_set(s, NULL, &v, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_set(s, "v_int", NULL, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_set_int(NULL, "v_int", 1), RSTATE_EINVAL);
  ASSERT_RC(rstate_set_int(s, NULL, 1), RSTATE_EINVAL);
  ASSERT_RC(rstate_set_string(s, "v_string", NULL), RSTATE_EINVAL);
  cr_assert_eq(h_version(s, "v_int"), 1);
  h_assert_string(s, "v_string", "hello");
}

Test(set, source_and_meta_are_accepted) {
  define_all();
  rstate_meta meta[] = {{"reason", "tuning"}, {"run", "42"}};
  rstate_set_opts opts = {.source = "optimizer", .meta = meta, .n_meta = 2};
  rstate_value v = rstate_float(0.9);
  ASSERT_RC(rstate_set(s, "v_float", &v, &opts), RSTATE_OK);
  cr_assert_eq(h_get_float(s, "v_float"), 0.9);
  v = rstate_int(11);
  ASSERT_RC(rstate_set_if(s, "v_int", &v, 1, &opts), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "v_int"), 11);

  rstate_set_opts zero;
  memset(&zero, 0, sizeof zero);
  v = rstate_float(1.1);
  ASSERT_RC(rstate_set(s, "v_float", &v, &zero), RSTATE_OK);
  cr_assert_eq(h_get_float(s, "v_float"), 1.1);
  rstate_set_opts source_only = {.source = "python"};
  v = rstate_float(1.2);
  ASSERT_RC(rstate_set(s, "v_float", &v, &source_only), RSTATE_OK);
  cr_assert_eq(h_get_float(s, "v_float"), 1.2);
}

Test(set, meta_count_without_array_is_einval) {
  define_all();
  rstate_set_opts opts = {.source = "x", .meta = NULL, .n_meta = 2};
  rstate_value v = rstate_float(0.9);
  struct snap before = take("v_float");
  ASSERT_RC(rstate_set(s, "v_float", &v, &opts), RSTATE_EINVAL);
  assert_same("v_float", &before);
}

/* Source and meta travel with the events, over the wire and into JSON:
 * UTF-8 only, as names and descriptions. */
Test(set, source_or_meta_not_utf8_is_einval) {
  define_all();
  rstate_value v = rstate_float(0.9);
  rstate_meta bad_key[] = {{"ok", "fine"}, {"k\xff", "v"}}, bad_value[] = {{"why", "\xc3"}};
  rstate_set_opts opts[] = {{.source = "opt\xffimizer"},
                            {.source = "x", .meta = bad_key, .n_meta = 2},
                            {.meta = bad_value, .n_meta = 1}};
  const char *blamed[] = {"source", "meta[1]", "meta[0]"};
  for (size_t i = 0; i < 3; i++) {
    struct snap before = take("v_float");
    ASSERT_RC(rstate_set(s, "v_float", &v, &opts[i]), RSTATE_EINVAL);
    cr_assert(strstr(rstate_last_error(), "v_float: ") && strstr(rstate_last_error(), blamed[i]) &&
                  strstr(rstate_last_error(), "UTF-8"),
              "the sentence names the variable, %s and the rule: %s", blamed[i], rstate_last_error());
    ASSERT_RC(rstate_set_if(s, "v_float", &v, before.info.version, &opts[i]), RSTATE_EINVAL);
    rstate_assign item = {"v_float", v};
    size_t failed = 0;
    ASSERT_RC(rstate_set_many(s, &item, 1, &opts[i], &failed), RSTATE_EINVAL);
    cr_assert_eq(failed, SIZE_MAX, "no item is to blame for the options: failed_index %zu", failed);
    assert_same("v_float", &before);
    ASSERT_RC(rstate_set_many(s, &item, 1, NULL, &failed), RSTATE_OK); /* the same batch without them */
  }
}
