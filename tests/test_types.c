/*
 * test_types.c — the six variable types, their constraints and the value
 * check (src/types/types.c), through the internal interface: names, kinds and
 * coercions, every constraint and every error path with its exact code and a
 * sentence naming the variable, whole-value patterns, module names, the
 * idempotent-define comparison, out-of-memory paths, and concurrent checks.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failalloc.h" /* the out-of-memory tests: fail_in, live, injection_works() */
#include "types/types.h"

/* ---- helpers ------------------------------------------------------------ */

#define ASSERT_RC(expr, code, needle)                                                                           \
  do {                                                                                                          \
    int rc_ = (expr);                                                                                           \
    cr_assert_eq(rc_, (code), "%s: got %s, want %s (last error: %s)", #expr, rstate_error_name(rc_),          \
                 rstate_error_name(code), rstate_last_error());                                                 \
    cr_assert(strstr(rstate_last_error(), (needle)) != NULL, "%s: last error \"%s\" lacks \"%s\"", #expr,     \
              rstate_last_error(), (needle));                                                                   \
  } while (0)

#define ASSERT_OK(expr)                                                                                         \
  do {                                                                                                          \
    int rc_ = (expr);                                                                                           \
    cr_assert_eq(rc_, RSTATE_OK, "%s: got %s (last error: %s)", #expr, rstate_error_name(rc_),                \
                 rstate_last_error());                                                                          \
  } while (0)

#define CONS(...) (&(const rstate_constraints){__VA_ARGS__})

/* Defines and frees at once: the code of rstate__spec_new. */
static int define(rstate_var_def def) {
  rstate__spec *spec = (rstate__spec *)1;
  int rc = rstate__spec_new(&spec, &def);
  if (rc == RSTATE_OK) {
    cr_assert_not_null(spec);
    rstate__spec_free(spec);
  } else {
    cr_assert_null(spec, "a failed rstate__spec_new must leave *out NULL");
  }
  return rc;
}

static rstate__spec *spec_of(rstate_var_def def) {
  rstate__spec *spec = NULL;
  int rc = rstate__spec_new(&spec, &def);
  cr_assert_eq(rc, RSTATE_OK, "define %s: %s (%s)", def.name ? def.name : "(null)", rstate_error_name(rc),
               rstate_last_error());
  return spec;
}

static int check(const rstate__spec *spec, rstate_value v) {
  rstate_value out;
  memset(&out, 0xAB, sizeof out);
  int rc = rstate__spec_check(spec, &v, &out);
  if (rc != RSTATE_OK) cr_assert_eq(out.kind, RSTATE_NONE, "a failed check leaves out as RSTATE_NONE");
  return rc;
}

static rstate_value coerced(const rstate__spec *spec, rstate_value v) {
  rstate_value out;
  int rc = rstate__spec_check(spec, &v, &out);
  cr_assert_eq(rc, RSTATE_OK, "check: %s (%s)", rstate_error_name(rc), rstate_last_error());
  return out;
}

static rstate__spec *float_spec(const char *name, rstate_value min, rstate_value max) {
  return spec_of((rstate_var_def){.name = name,
                                  .type = RSTATE_TYPE_FLOAT,
                                  .initial = rstate_float(1),
                                  .constraints = CONS(.min = min, .max = max)});
}

static rstate__spec *int_spec(const char *name, rstate_value min, rstate_value max, rstate_value initial) {
  return spec_of((rstate_var_def){
      .name = name, .type = RSTATE_TYPE_INTEGER, .initial = initial, .constraints = CONS(.min = min, .max = max)});
}

static const rstate_value NONE_V = {RSTATE_NONE, {.i = 0}};

TestSuite(types);

/* ---- rstate_type_name --------------------------------------------------- */

Test(types, type_names) {
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_FLOAT), "float");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_INTEGER), "integer");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_BOOLEAN), "boolean");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_STRING), "string");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_CHOICE), "choice");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_MODULE), "module");
  cr_assert_str_eq(rstate_type_name((rstate_type)0), "unknown");
  cr_assert_str_eq(rstate_type_name((rstate_type)7), "unknown");
  cr_assert_str_eq(rstate_type_name((rstate_type)-1), "unknown");
}

/* ---- names -------------------------------------------------------------- */

Test(types, name_valid) {
  ASSERT_OK(rstate__name_check("a"));
  ASSERT_OK(rstate__name_check("max_tokens"));
  ASSERT_OK(rstate__name_check("A.b:c/d-e_F9"));
  ASSERT_OK(rstate__name_check("-._:/"));
  char name[256];
  memset(name, 'x', 255);
  name[255] = '\0';
  ASSERT_OK(rstate__name_check(name));
  ASSERT_OK(define((rstate_var_def){.name = name, .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true)}));
}

Test(types, name_null_empty_long) {
  ASSERT_RC(rstate__name_check(NULL), RSTATE_EINVAL, "name");
  ASSERT_RC(rstate__name_check(""), RSTATE_EINVAL, "empty");
  char name[300];
  memset(name, 'x', 256);
  name[256] = '\0';
  ASSERT_RC(rstate__name_check(name), RSTATE_EINVAL, "255");
  memset(name, 'y', 299);
  name[299] = '\0';
  ASSERT_RC(rstate__name_check(name), RSTATE_EINVAL, "longer than 255 bytes");
}

Test(types, name_bad_characters) {
  ASSERT_RC(rstate__name_check("a b"), RSTATE_EINVAL,
            "name \"a b\" has a character outside [A-Za-z0-9_.:/-] at byte 1");
  ASSERT_RC(rstate__name_check("ab*"), RSTATE_EINVAL, "at byte 2");
  ASSERT_RC(rstate__name_check("a,b"), RSTATE_EINVAL, "at byte 1");
  ASSERT_RC(rstate__name_check("caf\xc3\xa9"), RSTATE_EINVAL, "caf\\xc3\\xa9");
  ASSERT_RC(rstate__name_check("a\nb"), RSTATE_EINVAL, "a\\x0ab");
  ASSERT_RC(rstate__name_check("x\"y"), RSTATE_EINVAL, "at byte 1");
  ASSERT_RC(rstate__name_check("\\"), RSTATE_EINVAL, "at byte 0");
}

Test(types, define_checks_the_name) {
  ASSERT_RC(define((rstate_var_def){.name = "a b", .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true)}),
            RSTATE_EINVAL, "at byte 1");
  ASSERT_RC(define((rstate_var_def){.name = NULL, .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true)}),
            RSTATE_EINVAL, "name");
  ASSERT_RC(define((rstate_var_def){.name = "", .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true)}),
            RSTATE_EINVAL, "empty");
}

/* ---- definitions: arguments, type, order of checks ---------------------- */

Test(types, define_null_arguments) {
  rstate__spec *spec = (rstate__spec *)1;
  ASSERT_RC(rstate__spec_new(&spec, NULL), RSTATE_EINVAL, "NULL");
  cr_assert_null(spec);
  rstate_var_def def = {.name = "x", .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(false)};
  ASSERT_RC(rstate__spec_new(NULL, &def), RSTATE_EINVAL, "NULL");
  rstate__spec_free(NULL); /* a no-op */
}

Test(types, define_bad_type) {
  ASSERT_RC(define((rstate_var_def){.name = "mode", .type = (rstate_type)0, .initial = rstate_int(1)}), RSTATE_EINVAL,
            "mode: type 0");
  ASSERT_RC(define((rstate_var_def){.name = "mode", .type = (rstate_type)7, .initial = rstate_int(1)}), RSTATE_EINVAL,
            "mode: type 7");
  ASSERT_RC(define((rstate_var_def){.name = "mode", .type = (rstate_type)-3, .initial = rstate_int(1)}),
            RSTATE_EINVAL, "mode: type -3");
}

Test(types, define_order_of_checks) {
  /* name before type */
  ASSERT_RC(define((rstate_var_def){.name = "a b", .type = (rstate_type)99, .initial = rstate_int(1)}), RSTATE_EINVAL,
            "at byte 1");
  /* type before constraints */
  ASSERT_RC(define((rstate_var_def){.name = "t", .type = (rstate_type)99, .constraints = CONS(.pattern = "(")}),
            RSTATE_EINVAL, "t: type 99");
  /* constraints (EINVAL) before the initial's kind (ETYPE) */
  ASSERT_RC(define((rstate_var_def){.name = "t",
                                    .type = RSTATE_TYPE_FLOAT,
                                    .initial = rstate_string("x"),
                                    .constraints = CONS(.min = rstate_int(3), .max = rstate_int(2))}),
            RSTATE_EINVAL, "t: min 3 is above max 2");
  ASSERT_RC(define((rstate_var_def){.name = "t",
                                    .type = RSTATE_TYPE_INTEGER,
                                    .initial = rstate_string("x"),
                                    .constraints = CONS(.pattern = "x")}),
            RSTATE_EINVAL, "t: pattern does not apply to an integer variable");
  /* the initial's kind (ETYPE) before its constraints (ECONSTRAINT) */
  ASSERT_RC(define((rstate_var_def){.name = "t",
                                    .type = RSTATE_TYPE_FLOAT,
                                    .initial = rstate_bool(true),
                                    .constraints = CONS(.min = rstate_int(0), .max = rstate_int(1))}),
            RSTATE_ETYPE, "t:");
  /* then the constraints */
  ASSERT_RC(define((rstate_var_def){.name = "t",
                                    .type = RSTATE_TYPE_FLOAT,
                                    .initial = rstate_float(5),
                                    .constraints = CONS(.min = rstate_int(0), .max = rstate_int(1))}),
            RSTATE_ECONSTRAINT, "t: 5 is above the maximum 1");
}

Test(types, define_initial_none_is_etype) {
  ASSERT_RC(define((rstate_var_def){.name = "f", .type = RSTATE_TYPE_FLOAT}), RSTATE_ETYPE, "f:");
  ASSERT_RC(define((rstate_var_def){.name = "s", .type = RSTATE_TYPE_STRING}), RSTATE_ETYPE, "s:");
  ASSERT_RC(define((rstate_var_def){.name = "b", .type = RSTATE_TYPE_BOOLEAN}), RSTATE_ETYPE, "RSTATE_NONE");
  rstate_value odd = {(rstate_kind)42, {.i = 0}};
  ASSERT_RC(define((rstate_var_def){.name = "b", .type = RSTATE_TYPE_BOOLEAN, .initial = odd}), RSTATE_ETYPE,
            "unknown kind 42");
}

Test(types, spec_accessors) {
  rstate__spec *spec = spec_of((rstate_var_def){.name = "temperature", .type = RSTATE_TYPE_FLOAT,
                                                .initial = rstate_int(1)});
  cr_assert_str_eq(rstate__spec_name(spec), "temperature");
  cr_assert_eq(rstate__spec_type(spec), RSTATE_TYPE_FLOAT);
  const rstate_value *init = rstate__spec_initial(spec);
  cr_assert_eq(init->kind, RSTATE_FLOAT);
  cr_assert_float_eq(init->u.f, 1.0, 0.0);
  rstate__spec_free(spec);
}

Test(types, check_null_value) {
  rstate__spec *spec = spec_of((rstate_var_def){.name = "flag", .type = RSTATE_TYPE_BOOLEAN,
                                                .initial = rstate_bool(false)});
  rstate_value out;
  ASSERT_RC(rstate__spec_check(spec, NULL, &out), RSTATE_EINVAL, "flag");
  rstate__spec_free(spec);
}

/* ---- float -------------------------------------------------------------- */

Test(types, float_accepts_float_and_int) {
  rstate__spec *spec = float_spec("temperature", NONE_V, NONE_V);
  rstate_value v = coerced(spec, rstate_float(0.7));
  cr_assert_eq(v.kind, RSTATE_FLOAT);
  cr_assert_eq(v.u.f, 0.7);
  v = coerced(spec, rstate_int(3));
  cr_assert_eq(v.kind, RSTATE_FLOAT, "an int becomes a float");
  cr_assert_eq(v.u.f, 3.0);
  v = coerced(spec, rstate_int(INT64_MAX));
  cr_assert_eq(v.kind, RSTATE_FLOAT);
  v = coerced(spec, rstate_float(-1e308));
  cr_assert_eq(v.u.f, -1e308);
  rstate__spec_free(spec);
}

Test(types, float_rejects_other_kinds) {
  rstate__spec *spec = float_spec("temperature", NONE_V, NONE_V);
  ASSERT_RC(check(spec, rstate_bool(true)), RSTATE_ETYPE, "temperature: a float variable takes");
  ASSERT_RC(check(spec, rstate_string("0.5")), RSTATE_ETYPE, "not a string");
  ASSERT_RC(check(spec, NONE_V), RSTATE_ETYPE, "temperature");
  rstate__spec_free(spec);
}

Test(types, float_rejects_non_finite) {
  rstate__spec *spec = float_spec("temperature", NONE_V, NONE_V);
  ASSERT_RC(check(spec, rstate_float(NAN)), RSTATE_ETYPE, "temperature: nan is not a finite number");
  ASSERT_RC(check(spec, rstate_float(INFINITY)), RSTATE_ETYPE, "temperature: inf");
  ASSERT_RC(check(spec, rstate_float(-INFINITY)), RSTATE_ETYPE, "temperature: -inf");
  ASSERT_RC(define((rstate_var_def){.name = "t", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(NAN)}),
            RSTATE_ETYPE, "t:");
  rstate__spec_free(spec);
}

Test(types, float_min_max_inclusive) {
  rstate__spec *spec = float_spec("temperature", rstate_int(0), rstate_int(2));
  ASSERT_OK(check(spec, rstate_float(0)));
  ASSERT_OK(check(spec, rstate_float(2)));
  ASSERT_OK(check(spec, rstate_int(2)));
  ASSERT_OK(check(spec, rstate_float(-0.0)));
  ASSERT_RC(check(spec, rstate_float(2.5)), RSTATE_ECONSTRAINT, "temperature: 2.5 is above the maximum 2");
  ASSERT_RC(check(spec, rstate_float(-0.1)), RSTATE_ECONSTRAINT, "temperature: -0.1 is below the minimum 0");
  ASSERT_RC(check(spec, rstate_int(3)), RSTATE_ECONSTRAINT, "temperature: 3 is above the maximum 2");
  /* the next double above 2 */
  ASSERT_RC(check(spec, rstate_float(0x1.0000000000001p1)), RSTATE_ECONSTRAINT, "above the maximum");
  rstate__spec_free(spec);
}

Test(types, float_one_sided_bounds) {
  rstate__spec *spec = float_spec("lo", rstate_float(-1.5), NONE_V);
  ASSERT_OK(check(spec, rstate_float(1e300)));
  ASSERT_RC(check(spec, rstate_float(-2)), RSTATE_ECONSTRAINT, "lo: -2 is below the minimum -1.5");
  rstate__spec_free(spec);
  spec = float_spec("hi", NONE_V, rstate_float(1.5));
  ASSERT_OK(check(spec, rstate_float(-1e300)));
  ASSERT_RC(check(spec, rstate_float(2)), RSTATE_ECONSTRAINT, "hi: 2 is above the maximum 1.5");
  rstate__spec_free(spec);
  spec = float_spec("eq", rstate_float(1), rstate_int(1)); /* min == max */
  ASSERT_OK(check(spec, rstate_int(1)));
  ASSERT_RC(check(spec, rstate_float(1.0000001)), RSTATE_ECONSTRAINT, "eq:");
  rstate__spec_free(spec);
}

Test(types, float_bad_bounds) {
  rstate_var_def def = {.name = "temperature", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(1)};
  def.constraints = CONS(.min = rstate_int(3), .max = rstate_int(2));
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: min 3 is above max 2");
  def.constraints = CONS(.min = rstate_float(2.5), .max = rstate_float(2.25));
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: min 2.5 is above max 2.25");
  def.constraints = CONS(.min = rstate_float(NAN));
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: min nan is not a finite number");
  def.constraints = CONS(.max = rstate_float(INFINITY));
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: max inf");
  def.constraints = CONS(.min = rstate_string("0"));
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: min must be given as a float or an integer, not a string");
  def.constraints = CONS(.max = rstate_bool(true));
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: max");
}

Test(types, float_initial_breaks_bounds) {
  ASSERT_RC(define((rstate_var_def){.name = "temperature",
                                    .type = RSTATE_TYPE_FLOAT,
                                    .initial = rstate_float(2.5),
                                    .constraints = CONS(.min = rstate_int(0), .max = rstate_int(2))}),
            RSTATE_ECONSTRAINT, "temperature: 2.5 is above the maximum 2");
}

Test(types, float_inapplicable_constraints) {
  rstate_var_def def = {.name = "temperature", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(1)};
  const char *ch[] = {"a"};
  def.constraints = CONS(.pattern = "[0-9]+");
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: pattern does not apply to a float variable");
  def.constraints = CONS(.min_length = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: min_length does not apply");
  def.constraints = CONS(.max_length = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: max_length does not apply");
  def.constraints = CONS(.choices = ch, .n_choices = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: choices does not apply");
  def.constraints = CONS(.module_namespace = "A");
  ASSERT_RC(define(def), RSTATE_EINVAL, "temperature: namespace does not apply");
  /* empty strings are no constraint */
  def.constraints = CONS(.pattern = "", .module_namespace = "");
  ASSERT_OK(define(def));
}

/* ---- integer ------------------------------------------------------------ */

Test(types, integer_accepts_int_and_whole_floats) {
  rstate__spec *spec = int_spec("count", NONE_V, NONE_V, rstate_int(0));
  rstate_value v = coerced(spec, rstate_int(-7));
  cr_assert_eq(v.kind, RSTATE_INT);
  cr_assert_eq(v.u.i, -7);
  v = coerced(spec, rstate_float(3.0));
  cr_assert_eq(v.kind, RSTATE_INT, "3.0 becomes an int");
  cr_assert_eq(v.u.i, 3);
  v = coerced(spec, rstate_float(-0.0));
  cr_assert_eq(v.kind, RSTATE_INT);
  cr_assert_eq(v.u.i, 0);
  v = coerced(spec, rstate_float(-0x1p63));
  cr_assert_eq(v.u.i, INT64_MIN);
  v = coerced(spec, rstate_float(0x1p62));
  cr_assert_eq(v.u.i, (int64_t)1 << 62);
  v = coerced(spec, rstate_int(INT64_MAX));
  cr_assert_eq(v.u.i, INT64_MAX);
  v = coerced(spec, rstate_int(INT64_MIN));
  cr_assert_eq(v.u.i, INT64_MIN);
  rstate__spec_free(spec);
}

Test(types, integer_rejects_fractions_and_out_of_range) {
  rstate__spec *spec = int_spec("count", NONE_V, NONE_V, rstate_int(0));
  ASSERT_RC(check(spec, rstate_float(3.5)), RSTATE_ETYPE, "count: 3.5 is not a whole number");
  ASSERT_RC(check(spec, rstate_float(-0.25)), RSTATE_ETYPE, "count: -0.25 is not a whole number");
  ASSERT_RC(check(spec, rstate_float(1e300)), RSTATE_ETYPE, "count: 1e+300 is outside the 64-bit integer range");
  ASSERT_RC(check(spec, rstate_float(0x1p63)), RSTATE_ETYPE, "outside the 64-bit integer range");
  ASSERT_RC(check(spec, rstate_float(-1e19)), RSTATE_ETYPE, "outside the 64-bit integer range");
  ASSERT_RC(check(spec, rstate_float(NAN)), RSTATE_ETYPE, "count: nan is not a finite number");
  ASSERT_RC(check(spec, rstate_float(INFINITY)), RSTATE_ETYPE, "not a finite number");
  ASSERT_RC(check(spec, rstate_float(-INFINITY)), RSTATE_ETYPE, "not a finite number");
  ASSERT_RC(check(spec, rstate_bool(false)), RSTATE_ETYPE, "count: an integer variable takes");
  ASSERT_RC(check(spec, rstate_string("3")), RSTATE_ETYPE, "not a string");
  ASSERT_RC(define((rstate_var_def){.name = "n", .type = RSTATE_TYPE_INTEGER, .initial = rstate_float(0.5)}),
            RSTATE_ETYPE, "n: 0.5 is not a whole number");
  rstate__spec_free(spec);
}

Test(types, integer_min_max) {
  rstate__spec *spec = int_spec("max_tokens", rstate_int(1), rstate_int(4096), rstate_int(1024));
  ASSERT_OK(check(spec, rstate_int(1)));
  ASSERT_OK(check(spec, rstate_int(4096)));
  ASSERT_OK(check(spec, rstate_float(4096.0)));
  ASSERT_RC(check(spec, rstate_int(5000)), RSTATE_ECONSTRAINT, "max_tokens: 5000 is above the maximum 4096");
  ASSERT_RC(check(spec, rstate_int(0)), RSTATE_ECONSTRAINT, "max_tokens: 0 is below the minimum 1");
  ASSERT_RC(check(spec, rstate_int(INT64_MIN)), RSTATE_ECONSTRAINT, "below the minimum 1");
  ASSERT_RC(check(spec, rstate_float(4097.0)), RSTATE_ECONSTRAINT, "max_tokens: 4097 is above the maximum 4096");
  rstate__spec_free(spec);
  /* whole float bounds are converted; extreme bounds work */
  spec = int_spec("n", rstate_float(-2.0), rstate_int(INT64_MAX), rstate_int(0));
  ASSERT_OK(check(spec, rstate_int(INT64_MAX)));
  ASSERT_RC(check(spec, rstate_int(-3)), RSTATE_ECONSTRAINT, "n: -3 is below the minimum -2");
  rstate__spec_free(spec);
}

Test(types, integer_bad_bounds) {
  rstate_var_def def = {.name = "max_tokens", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(1)};
  def.constraints = CONS(.min = rstate_float(2.5));
  ASSERT_RC(define(def), RSTATE_EINVAL, "max_tokens: min 2.5 is not a whole number");
  def.constraints = CONS(.max = rstate_float(1e300));
  ASSERT_RC(define(def), RSTATE_EINVAL, "max_tokens: max 1e+300 is outside the 64-bit integer range");
  def.constraints = CONS(.max = rstate_float(NAN));
  ASSERT_RC(define(def), RSTATE_EINVAL, "max_tokens: max nan");
  def.constraints = CONS(.min = rstate_int(10), .max = rstate_int(5));
  ASSERT_RC(define(def), RSTATE_EINVAL, "max_tokens: min 10 is above max 5");
  def.constraints = CONS(.min = rstate_string("1"));
  ASSERT_RC(define(def), RSTATE_EINVAL, "max_tokens: min must be given");
  def.constraints = CONS(.min = rstate_int(5));
  ASSERT_RC(define(def), RSTATE_ECONSTRAINT, "max_tokens: 1 is below the minimum 5");
}

Test(types, integer_inapplicable_constraints) {
  rstate_var_def def = {.name = "count", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(1)};
  const char *ch[] = {"a"};
  def.constraints = CONS(.pattern = "[0-9]+");
  ASSERT_RC(define(def), RSTATE_EINVAL, "count: pattern does not apply to an integer variable");
  def.constraints = CONS(.min_length = 2);
  ASSERT_RC(define(def), RSTATE_EINVAL, "count: min_length does not apply");
  def.constraints = CONS(.max_length = 2);
  ASSERT_RC(define(def), RSTATE_EINVAL, "count: max_length does not apply");
  def.constraints = CONS(.choices = ch, .n_choices = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "count: choices does not apply");
  def.constraints = CONS(.module_namespace = "N");
  ASSERT_RC(define(def), RSTATE_EINVAL, "count: namespace does not apply");
}

/* ---- boolean ------------------------------------------------------------ */

Test(types, boolean_kinds) {
  rstate__spec *spec = spec_of((rstate_var_def){.name = "enabled", .type = RSTATE_TYPE_BOOLEAN,
                                                .initial = rstate_bool(true)});
  rstate_value v = coerced(spec, rstate_bool(false));
  cr_assert_eq(v.kind, RSTATE_BOOL);
  cr_assert_eq(v.u.b, false);
  ASSERT_RC(check(spec, rstate_int(1)), RSTATE_ETYPE, "enabled: a boolean variable takes a boolean, not an integer");
  ASSERT_RC(check(spec, rstate_float(0)), RSTATE_ETYPE, "enabled:");
  ASSERT_RC(check(spec, rstate_string("true")), RSTATE_ETYPE, "enabled:");
  ASSERT_RC(define((rstate_var_def){.name = "b", .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_int(0)}),
            RSTATE_ETYPE, "b:");
  rstate__spec_free(spec);
}

Test(types, boolean_takes_no_constraints) {
  rstate_var_def def = {.name = "enabled", .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true)};
  const char *ch[] = {"a"};
  def.constraints = CONS(.min = rstate_int(0));
  ASSERT_RC(define(def), RSTATE_EINVAL, "enabled: min does not apply to a boolean variable");
  def.constraints = CONS(.max = rstate_int(1));
  ASSERT_RC(define(def), RSTATE_EINVAL, "enabled: max does not apply");
  def.constraints = CONS(.min_length = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "enabled: min_length does not apply");
  def.constraints = CONS(.max_length = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "enabled: max_length does not apply");
  def.constraints = CONS(.choices = ch, .n_choices = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "enabled: choices does not apply");
  def.constraints = CONS(.pattern = "true");
  ASSERT_RC(define(def), RSTATE_EINVAL, "enabled: pattern does not apply");
  def.constraints = CONS(.module_namespace = "X");
  ASSERT_RC(define(def), RSTATE_EINVAL, "enabled: namespace does not apply");
  def.constraints = CONS(.min = NONE_V); /* all zero: none */
  ASSERT_OK(define(def));
}

/* ---- strings ------------------------------------------------------------ */

static rstate__spec *string_spec(const char *name, const rstate_constraints *c, const char *initial) {
  return spec_of(
      (rstate_var_def){.name = name, .type = RSTATE_TYPE_STRING, .initial = rstate_string(initial), .constraints = c});
}

Test(types, string_kinds_and_borrowing) {
  rstate__spec *spec = string_spec("prompt", NULL, "");
  const char *text = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e"; /* é, €, U+1D11E */
  rstate_value in = rstate_string(text);
  rstate_value v = coerced(spec, in);
  cr_assert_eq(v.kind, RSTATE_STRING);
  cr_assert_eq(v.u.s.ptr, text, "the checked string is borrowed, not copied");
  cr_assert_eq(v.u.s.len, strlen(text));
  ASSERT_RC(check(spec, rstate_int(1)), RSTATE_ETYPE, "prompt: a string variable takes a string, not an integer");
  ASSERT_RC(check(spec, rstate_bool(true)), RSTATE_ETYPE, "prompt:");
  ASSERT_RC(check(spec, rstate_float(1)), RSTATE_ETYPE, "prompt:");
  rstate__spec_free(spec);
}

Test(types, string_null_pointer_is_einval) {
  rstate__spec *spec = string_spec("prompt", NULL, "x");
  ASSERT_RC(check(spec, rstate_stringn(NULL, 0)), RSTATE_EINVAL, "prompt: the string value has a NULL pointer");
  ASSERT_RC(check(spec, rstate_stringn(NULL, 5)), RSTATE_EINVAL, "prompt:");
  ASSERT_RC(define((rstate_var_def){.name = "p", .type = RSTATE_TYPE_STRING, .initial = rstate_string(NULL)}),
            RSTATE_EINVAL, "p: the string value has a NULL pointer");
  rstate__spec_free(spec);
}

Test(types, string_invalid_utf8_is_etype) {
  rstate__spec *spec = string_spec("prompt", NULL, "x");
  ASSERT_RC(check(spec, rstate_string("\xc0\x80")), RSTATE_ETYPE, "prompt: the string is not valid UTF-8");
  ASSERT_RC(check(spec, rstate_string("\xe0\x80\xaf")), RSTATE_ETYPE, "not valid UTF-8");     /* overlong '/' */
  ASSERT_RC(check(spec, rstate_string("\xf0\x82\x82\xac")), RSTATE_ETYPE, "not valid UTF-8"); /* overlong € */
  ASSERT_RC(check(spec, rstate_string("a\xed\xa0\x80z")), RSTATE_ETYPE, "not valid UTF-8");   /* surrogate */
  ASSERT_RC(check(spec, rstate_string("\xed\xbf\xbf")), RSTATE_ETYPE, "not valid UTF-8");     /* surrogate */
  ASSERT_RC(check(spec, rstate_string("ab\xe2\x82")), RSTATE_ETYPE, "not valid UTF-8");       /* truncated */
  ASSERT_RC(check(spec, rstate_string("\xc3")), RSTATE_ETYPE, "not valid UTF-8");             /* truncated */
  ASSERT_RC(check(spec, rstate_string("\x80")), RSTATE_ETYPE, "not valid UTF-8");             /* lone continuation */
  ASSERT_RC(check(spec, rstate_string("\xf4\x90\x80\x80")), RSTATE_ETYPE, "not valid UTF-8"); /* above U+10FFFF */
  ASSERT_RC(check(spec, rstate_string("\xff")), RSTATE_ETYPE, "not valid UTF-8");
  ASSERT_RC(check(spec, rstate_stringn("a\0b", 3)), RSTATE_ETYPE, "prompt: the string holds a NUL byte at byte 1");
  /* a truncated sequence cut by len, though the bytes after it are valid */
  ASSERT_RC(check(spec, rstate_stringn("\xe2\x82\xac", 2)), RSTATE_ETYPE, "not valid UTF-8");
  ASSERT_OK(check(spec, rstate_string("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
  ASSERT_OK(check(spec, rstate_string("\xee\x80\x80")));     /* U+E000 */
  ASSERT_RC(define((rstate_var_def){.name = "p", .type = RSTATE_TYPE_STRING, .initial = rstate_string("\xc0\xaf")}),
            RSTATE_ETYPE, "p: the string is not valid UTF-8");
  rstate__spec_free(spec);
}

Test(types, string_lengths_in_bytes) {
  rstate__spec *spec = string_spec("code", CONS(.min_length = 2, .max_length = 4), "ab");
  ASSERT_OK(check(spec, rstate_string("ab")));
  ASSERT_OK(check(spec, rstate_string("abcd")));
  ASSERT_OK(check(spec, rstate_string("\xc3\xa9"))); /* é: 1 character, 2 bytes */
  ASSERT_RC(check(spec, rstate_string("a")), RSTATE_ECONSTRAINT,
            "code: \"a\" is 1 byte long, below the minimum length 2");
  ASSERT_RC(check(spec, rstate_string("")), RSTATE_ECONSTRAINT, "below the minimum length 2");
  ASSERT_RC(check(spec, rstate_string("abcde")), RSTATE_ECONSTRAINT,
            "code: \"abcde\" is 5 bytes long, above the maximum length 4");
  ASSERT_RC(check(spec, rstate_string("\xe2\x82\xac\xe2\x82\xac")), RSTATE_ECONSTRAINT, "6 bytes long"); /* €€ */
  rstate__spec_free(spec);
  /* max_length 0: no limit */
  spec = string_spec("text", CONS(.min_length = 3), "abc");
  char big[5000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ASSERT_OK(check(spec, rstate_string(big)));
  ASSERT_RC(check(spec, rstate_string("ab")), RSTATE_ECONSTRAINT, "text:");
  rstate__spec_free(spec);
  spec = string_spec("short", CONS(.max_length = 1), "");
  ASSERT_OK(check(spec, rstate_string("")));
  ASSERT_RC(check(spec, rstate_string("ab")), RSTATE_ECONSTRAINT, "short:");
  rstate__spec_free(spec);
}

Test(types, string_bad_lengths) {
  rstate_var_def def = {.name = "code", .type = RSTATE_TYPE_STRING, .initial = rstate_string("abc")};
  def.constraints = CONS(.min_length = 5, .max_length = 3);
  ASSERT_RC(define(def), RSTATE_EINVAL, "code: min_length 5 is above max_length 3");
  def.constraints = CONS(.min_length = 3, .max_length = 3);
  ASSERT_OK(define(def));
  def.constraints = CONS(.min_length = 4);
  ASSERT_RC(define(def), RSTATE_ECONSTRAINT, "code: \"abc\" is 3 bytes long, below the minimum length 4");
  def.constraints = CONS(.max_length = 2);
  ASSERT_RC(define(def), RSTATE_ECONSTRAINT, "code: \"abc\" is 3 bytes long, above the maximum length 2");
}

Test(types, string_inapplicable_constraints) {
  rstate_var_def def = {.name = "prompt", .type = RSTATE_TYPE_STRING, .initial = rstate_string("x")};
  const char *ch[] = {"x"};
  def.constraints = CONS(.min = rstate_int(0));
  ASSERT_RC(define(def), RSTATE_EINVAL, "prompt: min does not apply to a string variable");
  def.constraints = CONS(.max = rstate_float(1));
  ASSERT_RC(define(def), RSTATE_EINVAL, "prompt: max does not apply");
  def.constraints = CONS(.choices = ch, .n_choices = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "prompt: choices does not apply");
  def.constraints = CONS(.choices = ch, .n_choices = 0);
  ASSERT_RC(define(def), RSTATE_EINVAL, "prompt: choices does not apply");
  def.constraints = CONS(.module_namespace = "A.B");
  ASSERT_RC(define(def), RSTATE_EINVAL, "prompt: namespace does not apply");
}

Test(types, pattern_matches_the_whole_value) {
  rstate__spec *spec = string_spec("slug", CONS(.pattern = "[a-z]+"), "abc");
  ASSERT_OK(check(spec, rstate_string("abc")));
  ASSERT_OK(check(spec, rstate_string("z")));
  ASSERT_RC(check(spec, rstate_string("abc1")), RSTATE_ECONSTRAINT, "slug: \"abc1\" does not match the pattern [a-z]+");
  ASSERT_RC(check(spec, rstate_string("1abc")), RSTATE_ECONSTRAINT, "slug: \"1abc\" does not match the pattern");
  ASSERT_RC(check(spec, rstate_string("")), RSTATE_ECONSTRAINT, "slug:");
  ASSERT_RC(check(spec, rstate_string("ab\ncd")), RSTATE_ECONSTRAINT, "slug:");
  rstate__spec_free(spec);
  /* alternation stays inside the anchors */
  spec = string_spec("alt", CONS(.pattern = "abc|x"), "x");
  ASSERT_OK(check(spec, rstate_string("abc")));
  ASSERT_RC(check(spec, rstate_string("abcx")), RSTATE_ECONSTRAINT, "alt:");
  ASSERT_RC(check(spec, rstate_string("zx")), RSTATE_ECONSTRAINT, "alt:");
  rstate__spec_free(spec);
  /* anchors given by the user are harmless */
  spec = string_spec("anch", CONS(.pattern = "^a.c$"), "abc");
  ASSERT_OK(check(spec, rstate_string("a-c")));
  ASSERT_RC(check(spec, rstate_string("a-cd")), RSTATE_ECONSTRAINT, "anch:");
  rstate__spec_free(spec);
}

Test(types, pattern_keeps_its_meaning_when_anchored) {
  /* a ')' that closes nothing is a literal: it must not close the anchoring group */
  rstate__spec *spec = string_spec("paren", CONS(.pattern = "a)b"), "a)b");
  ASSERT_OK(check(spec, rstate_string("a)b")));
  ASSERT_RC(check(spec, rstate_string("ab)")), RSTATE_ECONSTRAINT, "paren:");
  ASSERT_RC(check(spec, rstate_string("ab")), RSTATE_ECONSTRAINT, "paren:");
  rstate__spec_free(spec);
  spec = string_spec("paren2", CONS(.pattern = "x)|y"), "x)");
  ASSERT_OK(check(spec, rstate_string("y")));
  ASSERT_RC(check(spec, rstate_string("x)zzz")), RSTATE_ECONSTRAINT, "paren2:");
  ASSERT_RC(check(spec, rstate_string("x")), RSTATE_ECONSTRAINT, "paren2:");
  ASSERT_RC(check(spec, rstate_string("y)")), RSTATE_ECONSTRAINT, "paren2:");
  rstate__spec_free(spec);
  /* brackets: ( ) \ are ordinary inside them */
  spec = string_spec("br", CONS(.pattern = "[()]+"), "()(");
  ASSERT_RC(check(spec, rstate_string("()x")), RSTATE_ECONSTRAINT, "br:");
  rstate__spec_free(spec);
  spec = string_spec("br2", CONS(.pattern = "[])]+|q"), "])");
  ASSERT_OK(check(spec, rstate_string("q")));
  ASSERT_RC(check(spec, rstate_string("])q")), RSTATE_ECONSTRAINT, "br2:");
  rstate__spec_free(spec);
  spec = string_spec("br3", CONS(.pattern = "[^])]x"), "ax");
  ASSERT_RC(check(spec, rstate_string(")x")), RSTATE_ECONSTRAINT, "br3:");
  rstate__spec_free(spec);
  spec = string_spec("cls", CONS(.pattern = "[[:alpha:])]+"), "a)b");
  ASSERT_RC(check(spec, rstate_string("a1")), RSTATE_ECONSTRAINT, "cls:");
  rstate__spec_free(spec);
  /* escaped parentheses */
  spec = string_spec("esc", CONS(.pattern = "\\(a\\)"), "(a)");
  ASSERT_RC(check(spec, rstate_string("a")), RSTATE_ECONSTRAINT, "esc:");
  rstate__spec_free(spec);
  /* back-references still name the user's groups */
  spec = string_spec("bref", CONS(.pattern = "(a|b)\\1"), "aa");
  ASSERT_OK(check(spec, rstate_string("bb")));
  ASSERT_RC(check(spec, rstate_string("ab")), RSTATE_ECONSTRAINT, "bref:");
  ASSERT_RC(check(spec, rstate_string("a")), RSTATE_ECONSTRAINT, "bref:");
  rstate__spec_free(spec);
  ASSERT_RC(define((rstate_var_def){.name = "b9",
                                    .type = RSTATE_TYPE_STRING,
                                    .initial = rstate_string("a"),
                                    .constraints = CONS(.pattern = "(a)(b)(c)(d)(e)(f)(g)(h)(i)\\9")}),
            RSTATE_EINVAL, "b9: pattern");
}

Test(types, pattern_that_does_not_compile) {
  rstate_var_def def = {.name = "slug", .type = RSTATE_TYPE_STRING, .initial = rstate_string("a")};
  def.constraints = CONS(.pattern = "(");
  ASSERT_RC(define(def), RSTATE_EINVAL, "slug: pattern \"(\" does not compile: ");
  def.constraints = CONS(.pattern = "a{2");
  ASSERT_RC(define(def), RSTATE_EINVAL, "does not compile");
  def.constraints = CONS(.pattern = "[a-");
  ASSERT_RC(define(def), RSTATE_EINVAL, "does not compile");
  def.constraints = CONS(.pattern = "abc\\");
  ASSERT_RC(define(def), RSTATE_EINVAL, "does not compile");
  def.constraints = CONS(.pattern = "*a");
  ASSERT_RC(define(def), RSTATE_EINVAL, "slug: pattern");
  def.constraints = CONS(.pattern = "a\xff");
  ASSERT_RC(define(def), RSTATE_EINVAL, "slug: the pattern is not valid UTF-8");
  /* the sentence carries regerror's text */
  regex_t re;
  char eb[128];
  int rc = regcomp(&re, "(", REG_EXTENDED | REG_NOSUB);
  regerror(rc, &re, eb, sizeof eb);
  def.constraints = CONS(.pattern = "(");
  ASSERT_RC(define(def), RSTATE_EINVAL, eb);
}

Test(types, pattern_initial_must_match) {
  ASSERT_RC(define((rstate_var_def){.name = "slug",
                                    .type = RSTATE_TYPE_STRING,
                                    .initial = rstate_string("Abc"),
                                    .constraints = CONS(.pattern = "[a-z]+")}),
            RSTATE_ECONSTRAINT, "slug: \"Abc\" does not match the pattern [a-z]+");
}

Test(types, pattern_empty_is_no_pattern) {
  rstate__spec *spec = string_spec("any", CONS(.pattern = ""), "");
  ASSERT_OK(check(spec, rstate_string("anything at all")));
  rstate__spec_free(spec);
}

/* A string in a heap block of exactly len bytes: no NUL after it, so any
 * read past len is caught by AddressSanitizer and valgrind. */
static char *unterminated(const char *s, size_t len) {
  char *p = malloc(len);
  cr_assert_not_null(p);
  memcpy(p, s, len);
  return p;
}

Test(types, stringn_without_nul) {
  rstate__spec *spec = string_spec("slug", CONS(.pattern = "[a-z]+", .max_length = 600), "abc");
  char *p = unterminated("abcd1", 5);
  ASSERT_OK(check(spec, rstate_stringn(p, 4)));      /* "abcd" */
  ASSERT_OK(check(spec, rstate_stringn(p + 1, 2)));  /* "bc" */
  ASSERT_RC(check(spec, rstate_stringn(p, 5)), RSTATE_ECONSTRAINT, "slug: \"abcd1\" does not match");
  free(p);
  /* long ones too (past any stack buffer) */
  char *big = malloc(500);
  cr_assert_not_null(big);
  memset(big, 'q', 500);
  ASSERT_OK(check(spec, rstate_stringn(big, 500)));
  big[499] = '7';
  ASSERT_RC(check(spec, rstate_stringn(big, 500)), RSTATE_ECONSTRAINT, "slug:");
  ASSERT_OK(check(spec, rstate_stringn(big, 499)));
  free(big);
  rstate__spec_free(spec);

  /* as the initial value: the spec keeps a NUL-terminated copy */
  p = unterminated("hello", 5);
  spec = spec_of((rstate_var_def){.name = "greet", .type = RSTATE_TYPE_STRING, .initial = rstate_stringn(p, 3),
                                  .constraints = CONS(.pattern = "h.l")});
  free(p);
  const rstate_value *init = rstate__spec_initial(spec);
  cr_assert_eq(init->kind, RSTATE_STRING);
  cr_assert_eq(init->u.s.len, 3);
  cr_assert_str_eq(init->u.s.ptr, "hel");
  rstate__spec_free(spec);

  /* choice and module values */
  const char *ch[] = {"gpt-4", "gemini"};
  spec = spec_of((rstate_var_def){.name = "model", .type = RSTATE_TYPE_CHOICE, .initial = rstate_string("gpt-4"),
                                  .constraints = CONS(.choices = ch, .n_choices = 2)});
  p = unterminated("gpt-4o", 6);
  ASSERT_OK(check(spec, rstate_stringn(p, 5)));
  ASSERT_RC(check(spec, rstate_stringn(p, 6)), RSTATE_ECONSTRAINT, "model:");
  ASSERT_RC(check(spec, rstate_stringn(p, 3)), RSTATE_ECONSTRAINT, "model:");
  free(p);
  rstate__spec_free(spec);
  spec = spec_of((rstate_var_def){.name = "strategy", .type = RSTATE_TYPE_MODULE,
                                  .initial = rstate_string("S.A"),
                                  .constraints = CONS(.module_namespace = "S", .pattern = "S\\.[A-Z]+")});
  p = unterminated("S.AB.C", 6);
  ASSERT_OK(check(spec, rstate_stringn(p, 4)));
  ASSERT_RC(check(spec, rstate_stringn(p, 6)), RSTATE_ECONSTRAINT, "strategy:");
  free(p);
  rstate__spec_free(spec);
}

/* ---- choice ------------------------------------------------------------- */

static const char *const MODELS[] = {"gpt-4", "claude-3", "gemini"};

static rstate__spec *model_spec(void) {
  return spec_of((rstate_var_def){.name = "model",
                                  .type = RSTATE_TYPE_CHOICE,
                                  .initial = rstate_string("gpt-4"),
                                  .constraints = CONS(.choices = MODELS, .n_choices = 3),
                                  .description = "Which model answers"});
}

Test(types, choice_values) {
  rstate__spec *spec = model_spec();
  ASSERT_OK(check(spec, rstate_string("gpt-4")));
  ASSERT_OK(check(spec, rstate_string("claude-3")));
  ASSERT_OK(check(spec, rstate_string("gemini")));
  ASSERT_RC(check(spec, rstate_string("gpt-5")), RSTATE_ECONSTRAINT,
            "model: \"gpt-5\" is not one of the choices gpt-4, claude-3, gemini");
  ASSERT_RC(check(spec, rstate_string("gpt")), RSTATE_ECONSTRAINT, "model:");
  ASSERT_RC(check(spec, rstate_string("GPT-4")), RSTATE_ECONSTRAINT, "model:");
  ASSERT_RC(check(spec, rstate_string("")), RSTATE_ECONSTRAINT, "model:");
  ASSERT_RC(check(spec, rstate_string("gemini ")), RSTATE_ECONSTRAINT, "model:");
  ASSERT_RC(check(spec, rstate_int(1)), RSTATE_ETYPE, "model: a choice variable takes a string, not an integer");
  ASSERT_RC(check(spec, rstate_string("\xc3")), RSTATE_ETYPE, "model:");
  rstate__spec_free(spec);
}

Test(types, choice_initial_must_be_a_choice) {
  ASSERT_RC(define((rstate_var_def){.name = "model",
                                    .type = RSTATE_TYPE_CHOICE,
                                    .initial = rstate_string("gpt-5"),
                                    .constraints = CONS(.choices = MODELS, .n_choices = 3)}),
            RSTATE_ECONSTRAINT, "model: \"gpt-5\" is not one of the choices gpt-4, claude-3, gemini");
  ASSERT_RC(define((rstate_var_def){.name = "model",
                                    .type = RSTATE_TYPE_CHOICE,
                                    .initial = rstate_bool(true),
                                    .constraints = CONS(.choices = MODELS, .n_choices = 3)}),
            RSTATE_ETYPE, "model:");
}

Test(types, choice_needs_valid_choices) {
  rstate_var_def def = {.name = "model", .type = RSTATE_TYPE_CHOICE, .initial = rstate_string("a")};
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: a choice variable needs choices");
  def.constraints = CONS(.min_length = 0);
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: a choice variable needs choices");
  const char *one[] = {"a"};
  def.constraints = CONS(.choices = one, .n_choices = 0);
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: choices is an empty list");
  def.constraints = CONS(.choices = NULL, .n_choices = 2);
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: choices is NULL but n_choices is 2");
  const char *with_null[] = {"a", NULL};
  def.constraints = CONS(.choices = with_null, .n_choices = 2);
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: choice 1 is NULL");
  const char *dup[] = {"a", "b", "a"};
  def.constraints = CONS(.choices = dup, .n_choices = 3);
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: choice \"a\" is given twice");
  const char *bad[] = {"a", "\xe0\x80\x80"};
  def.constraints = CONS(.choices = bad, .n_choices = 2);
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: choice 1 is not valid UTF-8");
}

Test(types, choice_inapplicable_constraints) {
  rstate_var_def def = {.name = "model", .type = RSTATE_TYPE_CHOICE, .initial = rstate_string("gpt-4")};
  def.constraints = CONS(.choices = MODELS, .n_choices = 3, .module_namespace = "Models");
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: namespace does not apply to a choice variable");
  def.constraints = CONS(.choices = MODELS, .n_choices = 3, .pattern = "g.*");
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: pattern does not apply");
  def.constraints = CONS(.choices = MODELS, .n_choices = 3, .min_length = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: min_length does not apply");
  def.constraints = CONS(.choices = MODELS, .n_choices = 3, .max_length = 9);
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: max_length does not apply");
  def.constraints = CONS(.choices = MODELS, .n_choices = 3, .min = rstate_int(0));
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: min does not apply");
  def.constraints = CONS(.choices = MODELS, .n_choices = 3, .max = rstate_int(0));
  ASSERT_RC(define(def), RSTATE_EINVAL, "model: max does not apply");
}

Test(types, choice_any_utf8_text) {
  const char *ch[] = {"", "caf\xc3\xa9", "a, b", "x y"};
  rstate__spec *spec = spec_of((rstate_var_def){.name = "c", .type = RSTATE_TYPE_CHOICE, .initial = rstate_string(""),
                                                .constraints = CONS(.choices = ch, .n_choices = 4)});
  ASSERT_OK(check(spec, rstate_string("caf\xc3\xa9")));
  ASSERT_OK(check(spec, rstate_string("a, b")));
  ASSERT_OK(check(spec, rstate_string("")));
  ASSERT_RC(check(spec, rstate_string("cafe")), RSTATE_ECONSTRAINT, "c:");
  rstate__spec_free(spec);
}

Test(types, choice_many) {
  enum { N = 300 };
  static char buf[N][16];
  const char *ch[N];
  for (int i = 0; i < N; i++) {
    snprintf(buf[i], sizeof buf[i], "opt-%d", (i * 7919) % N);
    ch[i] = buf[i];
  }
  rstate__spec *spec = spec_of((rstate_var_def){.name = "big", .type = RSTATE_TYPE_CHOICE,
                                                .initial = rstate_string("opt-0"),
                                                .constraints = CONS(.choices = ch, .n_choices = N)});
  for (int i = 0; i < N; i++) {
    char v[16];
    snprintf(v, sizeof v, "opt-%d", i);
    ASSERT_OK(check(spec, rstate_string(v)));
  }
  ASSERT_RC(check(spec, rstate_string("opt-300")), RSTATE_ECONSTRAINT, "big: \"opt-300\" is not one of the choices");
  ASSERT_RC(check(spec, rstate_string("opt-")), RSTATE_ECONSTRAINT, ", ..."); /* a long list is shortened */
  cr_assert(strlen(rstate_last_error()) < 511);
  rstate__spec_free(spec);
  ch[N - 1] = "opt-5"; /* a duplicate far from its twin */
  strcpy(buf[N - 1], "x");
  ASSERT_RC(define((rstate_var_def){.name = "big", .type = RSTATE_TYPE_CHOICE, .initial = rstate_string("opt-0"),
                                    .constraints = CONS(.choices = ch, .n_choices = N)}),
            RSTATE_EINVAL, "big: choice \"opt-5\" is given twice");
}

/* ---- module ------------------------------------------------------------- */

static rstate__spec *module_spec(const rstate_constraints *c, const char *initial) {
  return spec_of((rstate_var_def){
      .name = "strategy", .type = RSTATE_TYPE_MODULE, .initial = rstate_string(initial), .constraints = c});
}

Test(types, module_dotted_identifier) {
  rstate__spec *spec = module_spec(NULL, "Name");
  ASSERT_OK(check(spec, rstate_string("Name")));
  ASSERT_OK(check(spec, rstate_string("A.B.Name")));
  ASSERT_OK(check(spec, rstate_string("_x.y9._")));
  ASSERT_OK(check(spec, rstate_string("a1_b2")));
  const char *bad[] = {"", "1abc", "A..B", ".A", "A.", "A-B", "A B", "caf\xc3\xa9", "A.1b", "."};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ASSERT_RC(check(spec, rstate_string(bad[i])), RSTATE_ECONSTRAINT, "strategy: ");
  ASSERT_RC(check(spec, rstate_string("A-B")), RSTATE_ECONSTRAINT,
            "strategy: \"A-B\" is not a module name (a dotted identifier");
  ASSERT_RC(check(spec, rstate_int(1)), RSTATE_ETYPE, "strategy: a module variable takes a string, not an integer");
  ASSERT_RC(check(spec, rstate_string("\xed\xa0\x80")), RSTATE_ETYPE, "strategy:");
  rstate__spec_free(spec);
  ASSERT_RC(define((rstate_var_def){.name = "m", .type = RSTATE_TYPE_MODULE, .initial = rstate_string("no good")}),
            RSTATE_ECONSTRAINT, "m: \"no good\" is not a module name");
}

Test(types, module_namespace_and_choices) {
  const char *ch[] = {"Default", "Optimized"};
  rstate__spec *spec = module_spec(CONS(.module_namespace = "Strategies", .choices = ch, .n_choices = 2),
                                   "Strategies.Default");
  ASSERT_OK(check(spec, rstate_string("Strategies.Optimized")));
  ASSERT_OK(check(spec, rstate_string("Strategies.Default")));
  ASSERT_RC(check(spec, rstate_string("Other.Optimized")), RSTATE_ECONSTRAINT,
            "strategy: \"Other.Optimized\" is not in the namespace Strategies");
  ASSERT_RC(check(spec, rstate_string("Strategies.Custom")), RSTATE_ECONSTRAINT,
            "strategy: \"Strategies.Custom\" is not one of the choices Default, Optimized in the namespace Strategies");
  ASSERT_RC(check(spec, rstate_string("Optimized")), RSTATE_ECONSTRAINT, "not in the namespace Strategies");
  ASSERT_RC(check(spec, rstate_string("Strategies")), RSTATE_ECONSTRAINT, "not in the namespace Strategies");
  ASSERT_RC(check(spec, rstate_string("StrategiesX.Optimized")), RSTATE_ECONSTRAINT, "not in the namespace");
  ASSERT_RC(check(spec, rstate_string("Strategies.Optimized.More")), RSTATE_ECONSTRAINT, "not one of the choices");
  ASSERT_RC(check(spec, rstate_string("X.Strategies.Optimized")), RSTATE_ECONSTRAINT, "not in the namespace");
  rstate__spec_free(spec);
  ASSERT_RC(define((rstate_var_def){.name = "strategy",
                                    .type = RSTATE_TYPE_MODULE,
                                    .initial = rstate_string("Strategies.Custom"),
                                    .constraints = CONS(.module_namespace = "Strategies", .choices = ch,
                                                        .n_choices = 2)}),
            RSTATE_ECONSTRAINT, "strategy: \"Strategies.Custom\" is not one of the choices");
}

Test(types, module_namespace_only) {
  rstate__spec *spec = module_spec(CONS(.module_namespace = "Strategies"), "Strategies.X");
  ASSERT_OK(check(spec, rstate_string("Strategies.Anything")));
  ASSERT_OK(check(spec, rstate_string("Strategies.Deep.Name")));
  ASSERT_RC(check(spec, rstate_string("Strategies")), RSTATE_ECONSTRAINT, "strategy:");
  ASSERT_RC(check(spec, rstate_string("Other.X")), RSTATE_ECONSTRAINT, "strategy: \"Other.X\" is not in the namespace");
  ASSERT_RC(check(spec, rstate_string("Strategies.")), RSTATE_ECONSTRAINT, "not a module name");
  rstate__spec_free(spec);
  /* a dotted namespace */
  spec = module_spec(CONS(.module_namespace = "app.strategies"), "app.strategies.Fast");
  ASSERT_OK(check(spec, rstate_string("app.strategies.Slow")));
  ASSERT_RC(check(spec, rstate_string("app.Slow")), RSTATE_ECONSTRAINT, "not in the namespace app.strategies");
  rstate__spec_free(spec);
}

Test(types, module_choices_without_namespace) {
  const char *ch[] = {"Default", "pkg.Optimized"};
  rstate__spec *spec = module_spec(CONS(.choices = ch, .n_choices = 2), "Default");
  ASSERT_OK(check(spec, rstate_string("pkg.Optimized")));
  ASSERT_RC(check(spec, rstate_string("Optimized")), RSTATE_ECONSTRAINT,
            "strategy: \"Optimized\" is not one of the choices Default, pkg.Optimized");
  ASSERT_RC(check(spec, rstate_string("x.Default")), RSTATE_ECONSTRAINT, "not one of the choices");
  rstate__spec_free(spec);
}

Test(types, module_dotted_choices_in_namespace) {
  const char *ch[] = {"fast.V1", "Slow"};
  rstate__spec *spec = module_spec(CONS(.module_namespace = "S", .choices = ch, .n_choices = 2), "S.fast.V1");
  ASSERT_OK(check(spec, rstate_string("S.Slow")));
  ASSERT_RC(check(spec, rstate_string("S.fast")), RSTATE_ECONSTRAINT, "strategy:");
  ASSERT_RC(check(spec, rstate_string("fast.V1")), RSTATE_ECONSTRAINT, "not in the namespace S");
  rstate__spec_free(spec);
}

Test(types, module_pattern) {
  rstate__spec *spec = module_spec(CONS(.pattern = "[A-Z][a-z]+"), "Fast");
  ASSERT_OK(check(spec, rstate_string("Slow")));
  ASSERT_RC(check(spec, rstate_string("SlowX")), RSTATE_ECONSTRAINT, "strategy: \"SlowX\" does not match the pattern");
  ASSERT_RC(check(spec, rstate_string("xSlow")), RSTATE_ECONSTRAINT, "does not match");
  rstate__spec_free(spec);
  /* with a namespace the pattern still sees the whole value */
  spec = module_spec(CONS(.module_namespace = "S", .pattern = "S\\.[A-Z]+"), "S.A");
  ASSERT_OK(check(spec, rstate_string("S.BC")));
  ASSERT_RC(check(spec, rstate_string("S.Bc")), RSTATE_ECONSTRAINT, "does not match");
  rstate__spec_free(spec);
  ASSERT_RC(define((rstate_var_def){.name = "m",
                                    .type = RSTATE_TYPE_MODULE,
                                    .initial = rstate_string("a"),
                                    .constraints = CONS(.pattern = "[")}),
            RSTATE_EINVAL, "m: pattern \"[\" does not compile");
  ASSERT_RC(define((rstate_var_def){.name = "m",
                                    .type = RSTATE_TYPE_MODULE,
                                    .initial = rstate_string("a"),
                                    .constraints = CONS(.pattern = "[A-Z]+")}),
            RSTATE_ECONSTRAINT, "m: \"a\" does not match the pattern [A-Z]+");
}

Test(types, module_bad_constraints) {
  rstate_var_def def = {.name = "strategy", .type = RSTATE_TYPE_MODULE, .initial = rstate_string("A.B")};
  const char *bad_names[] = {"1x", "a..b", "a b", "a-b", ".a", "a."};
  for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
    def.constraints = CONS(.module_namespace = bad_names[i]);
    ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: namespace \"");
    const char *ch[] = {"Ok", bad_names[i]};
    def.constraints = CONS(.choices = ch, .n_choices = 2);
    ASSERT_RC(define(def), RSTATE_EINVAL, "is not a dotted identifier");
  }
  const char *dup[] = {"A", "B", "A"};
  def.constraints = CONS(.choices = dup, .n_choices = 3);
  ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: choice \"A\" is given twice");
  const char *one[] = {"A"};
  def.constraints = CONS(.choices = one, .n_choices = 0);
  ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: choices is an empty list");
  def.constraints = CONS(.choices = NULL, .n_choices = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: choices is NULL");
  const char *with_null[] = {NULL};
  def.constraints = CONS(.choices = with_null, .n_choices = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: choice 0 is NULL");
  def.constraints = CONS(.min = rstate_int(1));
  ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: min does not apply to a module variable");
  def.constraints = CONS(.max = rstate_int(1));
  ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: max does not apply");
  def.constraints = CONS(.min_length = 1);
  ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: min_length does not apply");
  def.constraints = CONS(.max_length = 10);
  ASSERT_RC(define(def), RSTATE_EINVAL, "strategy: max_length does not apply");
}

/* ---- descriptions and ownership ----------------------------------------- */

Test(types, description_must_be_utf8) {
  ASSERT_RC(define((rstate_var_def){.name = "d", .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true),
                                    .description = "bad \xff"}),
            RSTATE_EINVAL, "d: the description is not valid UTF-8");
  ASSERT_OK(define((rstate_var_def){.name = "d", .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true),
                                    .description = "caf\xc3\xa9"}));
}

Test(types, spec_owns_copies) {
  char name[] = "strategy";
  char ns[] = "Strategies";
  char c0[] = "Default", c1[] = "Optimized";
  const char *ch[] = {c0, c1};
  char pattern[] = "[A-Za-z.]+";
  char desc[] = "how to search";
  char initial[] = "Strategies.Default";
  rstate_constraints c = {.choices = ch, .n_choices = 2, .module_namespace = ns, .pattern = pattern};
  rstate_var_def def = {.name = name, .type = RSTATE_TYPE_MODULE, .initial = rstate_string(initial),
                        .constraints = &c, .description = desc};
  rstate__spec *spec = spec_of(def);
  rstate__spec *twin = spec_of(def);
  /* scribble over everything the definition pointed to */
  memset(name, 'x', sizeof name - 1);
  memset(ns, 'x', sizeof ns - 1);
  memset(c0, 'x', sizeof c0 - 1);
  memset(c1, 'x', sizeof c1 - 1);
  memset(pattern, 'x', sizeof pattern - 1);
  memset(desc, 'x', sizeof desc - 1);
  memset(initial, 'x', sizeof initial - 1);
  ch[0] = NULL;
  c.n_choices = 0;
  cr_assert_str_eq(rstate__spec_name(spec), "strategy");
  const rstate_value *init = rstate__spec_initial(spec);
  cr_assert_neq(init->u.s.ptr, initial);
  cr_assert_str_eq(init->u.s.ptr, "Strategies.Default");
  cr_assert_eq(init->u.s.len, strlen("Strategies.Default"));
  ASSERT_OK(check(spec, rstate_string("Strategies.Optimized")));
  ASSERT_RC(check(spec, rstate_string("Strategies.Custom")), RSTATE_ECONSTRAINT, "Default, Optimized");
  cr_assert(rstate__spec_same(spec, twin));
  rstate__spec_free(spec);
  rstate__spec_free(twin);
}

/* ---- rstate__spec_same -------------------------------------------------- */

static bool same(rstate_var_def a, rstate_var_def b) {
  rstate__spec *x = spec_of(a), *y = spec_of(b);
  bool r = rstate__spec_same(x, y);
  cr_assert_eq(rstate__spec_same(y, x), r, "spec_same is symmetric");
  cr_assert(rstate__spec_same(x, x));
  rstate__spec_free(x);
  rstate__spec_free(y);
  return r;
}

Test(types, spec_same_identical) {
  char n1[] = "model", n2[] = "model";
  char d1[] = "Which model", d2[] = "Which model";
  const char *ch1[] = {"gpt-4", "claude-3"};
  char a[] = "gpt-4", b[] = "claude-3";
  const char *ch2[] = {a, b};
  rstate_var_def x = {.name = n1, .type = RSTATE_TYPE_CHOICE, .initial = rstate_string("gpt-4"),
                      .constraints = CONS(.choices = ch1, .n_choices = 2), .description = d1};
  rstate_var_def y = {.name = n2, .type = RSTATE_TYPE_CHOICE, .initial = rstate_string(a),
                      .constraints = CONS(.choices = ch2, .n_choices = 2), .description = d2};
  cr_assert(same(x, y));
  /* NULL and "" descriptions are the same */
  x.description = NULL;
  y.description = "";
  cr_assert(same(x, y));
  /* the initial is compared after coercion; bounds too */
  cr_assert(same((rstate_var_def){.name = "t", .type = RSTATE_TYPE_FLOAT, .initial = rstate_int(2),
                                  .constraints = CONS(.min = rstate_int(0), .max = rstate_float(5))},
                 (rstate_var_def){.name = "t", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(2.0),
                                  .constraints = CONS(.min = rstate_float(0), .max = rstate_int(5))}));
  cr_assert(same((rstate_var_def){.name = "n", .type = RSTATE_TYPE_INTEGER, .initial = rstate_float(3)},
                 (rstate_var_def){.name = "n", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(3)}));
  /* NULL constraints and all-zero constraints are the same; "" pattern is none */
  cr_assert(same((rstate_var_def){.name = "s", .type = RSTATE_TYPE_STRING, .initial = rstate_string("")},
                 (rstate_var_def){.name = "s", .type = RSTATE_TYPE_STRING, .initial = rstate_string(""),
                                  .constraints = CONS(.pattern = "")}));
  rstate__spec *s = spec_of(x);
  cr_assert_not(rstate__spec_same(s, NULL));
  cr_assert_not(rstate__spec_same(NULL, s));
  cr_assert(rstate__spec_same(NULL, NULL));
  rstate__spec_free(s);
}

Test(types, spec_same_differences) {
  const char *ch[] = {"gpt-4", "claude-3"};
  const char *rev[] = {"claude-3", "gpt-4"};
  const char *other[] = {"gpt-4", "claude-2"};
  const char *more[] = {"gpt-4", "claude-3", "gemini"};
  rstate_var_def base = {.name = "model", .type = RSTATE_TYPE_CHOICE, .initial = rstate_string("gpt-4"),
                         .constraints = CONS(.choices = ch, .n_choices = 2), .description = "d"};
  rstate_var_def d = base;
  d.name = "model2";
  cr_assert_not(same(base, d), "name");
  d = base;
  d.initial = rstate_string("claude-3");
  cr_assert_not(same(base, d), "initial");
  d = base;
  d.constraints = CONS(.choices = rev, .n_choices = 2);
  cr_assert_not(same(base, d), "choice order");
  d.constraints = CONS(.choices = other, .n_choices = 2);
  cr_assert_not(same(base, d), "choice text");
  d.constraints = CONS(.choices = more, .n_choices = 3);
  cr_assert_not(same(base, d), "choice count");
  d = base;
  d.description = "e";
  cr_assert_not(same(base, d), "description");
  d.description = NULL;
  cr_assert_not(same(base, d), "description vs none");

  /* type */
  cr_assert_not(same((rstate_var_def){.name = "v", .type = RSTATE_TYPE_FLOAT, .initial = rstate_int(1)},
                     (rstate_var_def){.name = "v", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(1)}));
  cr_assert_not(same((rstate_var_def){.name = "v", .type = RSTATE_TYPE_STRING, .initial = rstate_string("a")},
                     (rstate_var_def){.name = "v", .type = RSTATE_TYPE_MODULE, .initial = rstate_string("a")}));
  /* bounds */
  rstate_var_def f = {.name = "t", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(1),
                      .constraints = CONS(.min = rstate_int(0), .max = rstate_int(2))};
  rstate_var_def g = f;
  g.constraints = CONS(.min = rstate_int(0), .max = rstate_int(3));
  cr_assert_not(same(f, g), "max");
  g.constraints = CONS(.min = rstate_float(0.5), .max = rstate_int(2));
  cr_assert_not(same(f, g), "min");
  g.constraints = CONS(.max = rstate_int(2));
  cr_assert_not(same(f, g), "bounded vs unbounded");
  g.constraints = NULL;
  cr_assert_not(same(f, g), "no constraints");
  g = f;
  g.initial = rstate_float(1.5);
  cr_assert_not(same(f, g), "initial");
  /* string constraints */
  rstate_var_def s = {.name = "s", .type = RSTATE_TYPE_STRING, .initial = rstate_string("abc"),
                      .constraints = CONS(.min_length = 1, .max_length = 5, .pattern = "[a-z]+")};
  rstate_var_def t = s;
  t.constraints = CONS(.min_length = 2, .max_length = 5, .pattern = "[a-z]+");
  cr_assert_not(same(s, t), "min_length");
  t.constraints = CONS(.min_length = 1, .max_length = 6, .pattern = "[a-z]+");
  cr_assert_not(same(s, t), "max_length");
  t.constraints = CONS(.min_length = 1, .max_length = 5, .pattern = "[a-z]*");
  cr_assert_not(same(s, t), "pattern");
  t.constraints = CONS(.min_length = 1, .max_length = 5);
  cr_assert_not(same(s, t), "pattern vs none");
  /* module */
  rstate_var_def m = {.name = "m", .type = RSTATE_TYPE_MODULE, .initial = rstate_string("A.X"),
                      .constraints = CONS(.module_namespace = "A")};
  rstate_var_def n = m;
  n.constraints = NULL;
  cr_assert_not(same(m, n), "namespace vs none");
  n.initial = rstate_string("A.X");
  n.constraints = CONS(.pattern = "A\\.X");
  cr_assert_not(same(m, n), "namespace vs pattern");
}

/* ---- out of memory ------------------------------------------------------ */

/* Allocation failure injection and leak counting come from failalloc.h. */

/* Runs def with the k-th allocation failing, for every k until it succeeds:
 * each failure must be RSTATE_ENOMEM (with a sentence naming the variable),
 * leave *out NULL and leak nothing. Returns how many failures it saw. */
static int fail_each_allocation(rstate_var_def def) {
  int failures = 0;
  for (long k = 0; k < 10000; k++) {
    rstate__spec *spec = NULL;
    long before = live;
    fail_in = k;
    int rc = rstate__spec_new(&spec, &def);
    fail_in = -1;
    if (rc == RSTATE_OK) {
      rstate__spec_free(spec);
      cr_assert_eq(live, before, "a freed spec leaks %ld allocations", live - before);
      return failures;
    }
    cr_assert_eq(rc, RSTATE_ENOMEM, "allocation %ld failing gives %s (%s)", k, rstate_error_name(rc),
                 rstate_last_error());
    cr_assert(strstr(rstate_last_error(), def.name) != NULL, "\"%s\" names %s", rstate_last_error(), def.name);
    cr_assert_null(spec);
    cr_assert_eq(live, before, "failing allocation %ld leaks %ld allocations", k, live - before);
    cr_assert_geq(live, 0, "too many live blocks to track");
    failures++;
  }
  cr_assert_fail("rstate__spec_new never succeeded");
  return failures;
}

Test(types, out_of_memory) {
  if (!injection_works()) { /* not cr_skip_test: under valgrind it leaks Criterion's own state */
    cr_log_info("out_of_memory: allocation failure injection is not available in this build");
    return;
  }
  const char *ch[] = {"Default", "Optimized", "Fast.V2"};
  int n = fail_each_allocation((rstate_var_def){
      .name = "strategy", .type = RSTATE_TYPE_MODULE, .initial = rstate_string("Strategies.Default"),
      .constraints = CONS(.choices = ch, .n_choices = 3, .module_namespace = "Strategies",
                          .pattern = "(Strategies)\\.[A-Za-z.0-9]+"),
      .description = "how to search"});
  cr_assert_geq(n, 8, "only %d allocations were tried", n);
  n = fail_each_allocation((rstate_var_def){.name = "slug", .type = RSTATE_TYPE_STRING,
                                            .initial = rstate_string("abc"),
                                            .constraints = CONS(.pattern = "[a-z]+", .max_length = 9)});
  cr_assert_geq(n, 3);
  n = fail_each_allocation((rstate_var_def){.name = "model", .type = RSTATE_TYPE_CHOICE,
                                            .initial = rstate_string("gpt-4"),
                                            .constraints = CONS(.choices = MODELS, .n_choices = 3)});
  cr_assert_geq(n, 6);
  n = fail_each_allocation((rstate_var_def){.name = "t", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(1)});
  cr_assert_eq(n, 2); /* the spec and its name */
}

Test(types, check_does_not_allocate) {
  if (!injection_works()) {
    cr_log_info("check_does_not_allocate: allocation counting is not available in this build");
    return;
  }
  rstate__spec *f = float_spec("temperature", rstate_int(0), rstate_int(2));
  rstate__spec *s = string_spec("slug", CONS(.pattern = "[a-z]+"), "abc");
  char *p = unterminated("abcdef", 6);
  long before = allocs;
  ASSERT_OK(check(f, rstate_float(1.5)));
  ASSERT_OK(check(f, rstate_int(2)));
  ASSERT_RC(check(f, rstate_float(2.5)), RSTATE_ECONSTRAINT, "temperature:");
  ASSERT_RC(check(f, rstate_string("x")), RSTATE_ETYPE, "temperature:");
  cr_assert_eq(allocs, before, "a number check allocated %ld times", allocs - before);
  /* a string is matched in place, not copied (regexec itself may allocate
   * inside the C library; an ENOMEM there is reported as RSTATE_ENOMEM) */
  ASSERT_OK(check(s, rstate_stringn(p, 6)));
  ASSERT_RC(check(s, rstate_stringn(p, 0)), RSTATE_ECONSTRAINT, "slug:");
  free(p);
  rstate__spec_free(f);
  rstate__spec_free(s);
}

/* ---- concurrent checks -------------------------------------------------- */

struct worker {
  const rstate__spec *pattern, *range;
  int id;
  int errors;
};

static void *worker_run(void *arg) {
  struct worker *w = arg;
  char buf[32];
  for (int i = 0; i < 5000; i++) {
    bool good = (i + w->id) % 2 == 0;
    snprintf(buf, sizeof buf, good ? "abc%c" : "abc%c1", 'a' + i % 26);
    rstate_value v = rstate_string(buf), out;
    int rc = rstate__spec_check(w->pattern, &v, &out);
    if (rc != (good ? RSTATE_OK : RSTATE_ECONSTRAINT)) w->errors++;
    if (!good && !strstr(rstate_last_error(), buf)) w->errors++; /* the sentence is per thread */
    v = rstate_int(i % 200 - 100);
    rc = rstate__spec_check(w->range, &v, &out);
    if (rc != (i % 200 - 100 <= 50 ? RSTATE_OK : RSTATE_ECONSTRAINT)) w->errors++;
  }
  return NULL;
}

Test(types, concurrent_checks) {
  rstate__spec *pat = string_spec("slug", CONS(.pattern = "[a-z]+"), "abc");
  rstate__spec *range = float_spec("level", NONE_V, rstate_int(50));
  enum { T = 4 };
  pthread_t th[T];
  struct worker w[T];
  for (int i = 0; i < T; i++) {
    w[i] = (struct worker){pat, range, i, 0};
    cr_assert_eq(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
  }
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(w[i].errors, 0, "thread %d saw %d wrong results", i, w[i].errors);
  }
  rstate__spec_free(pat);
  rstate__spec_free(range);
}

/* ---- patterns whose compilation could exhaust memory ---------------------- */

Test(types, patterns_that_could_exhaust_memory_are_refused) {
  static char nested[128], sequence[1100];
  nested[0] = sequence[0] = '\0';
  for (int i = 0; i < 22; i++) strcat(nested, "(");
  strcat(nested, "f");
  for (int i = 0; i < 22; i++) strcat(nested, ")+"); /* each level doubles what glibc builds */
  strcat(sequence, "(");
  for (int i = 0; i < 100; i++) strcat(sequence, "a{1,99}");
  strcat(sequence, ")");
  const char *bad[] = {"f++++++++++++++++++++++", "a**", "a{2}{3}", "(a{1,200}){1,200}", "a{20000}", "a{0,10000}",
                       nested, sequence, "((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rstate_constraints c = {.pattern = bad[i]};
    rstate_var_def d = {"code", RSTATE_TYPE_STRING, rstate_string(""), &c, NULL};
    rstate__spec *spec = NULL;
    int rc = rstate__spec_new(&spec, &d);
    cr_assert_eq(rc, RSTATE_EINVAL, "pattern %s: %s", bad[i], rstate_last_error());
    cr_assert(strstr(rstate_last_error(), "code: pattern") != NULL, "%s", rstate_last_error());
  }
  char longp[1100];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  rstate_constraints c = {.pattern = longp};
  rstate_var_def d = {"code", RSTATE_TYPE_STRING, rstate_string(""), &c, NULL};
  rstate__spec *spec = NULL;
  cr_assert_eq(rstate__spec_new(&spec, &d), RSTATE_EINVAL, "a 1099-byte pattern: %s", rstate_last_error());
}

Test(types, ordinary_repetition_is_accepted) {
  const char *good[] = {"[a-z]{1,255}", "a{1,100}b{1,100}", "(a*)*", "[[:alpha:]]+[0-9]{2}", "(x|y){2,3}",
                        "[+*?]+", "a\\++", "a{1,1000}", "(foo|bar|baz)+", "^[A-Za-z_][A-Za-z0-9_]*$"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    rstate_constraints c = {.pattern = good[i], .max_length = 0};
    rstate_var_def d = {"code", RSTATE_TYPE_STRING, rstate_string(""), &c, NULL};
    d.constraints = &c;
    rstate__spec *spec = NULL;
    int rc = rstate__spec_new(&spec, &d);
    cr_assert(rc == RSTATE_OK || rc == RSTATE_ECONSTRAINT, "pattern %s: %s: %s", good[i], rstate_error_name(rc),
              rstate_last_error());
    rstate__spec_free(spec);
  }
}
