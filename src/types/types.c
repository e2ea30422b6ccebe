/*
 * types.c — the six variable types (float, integer, boolean, string, choice,
 * module), their constraints, and the check every value goes through.
 *
 * A definition (rstate_var_def) is validated once and compiled into an
 * immutable rstate__spec: owned copies of the name, description, choices,
 * namespace and pattern, the pattern compiled with regcomp, numeric bounds
 * converted to the type's kind, and the initial value coerced and checked.
 * After that, rstate__spec_check is what every set costs: for a number with
 * bounds, a kind test and two comparisons.
 *
 * Per-type behaviour lives in ONE table, types[], a row per type (Redis's
 * dictType): the kind of its values, the constraints that apply, a define
 * function that validates and copies them, a coerce function that accepts
 * the kinds the type takes and converts them to its own kind, and a check
 * function that applies the constraints. Nothing else in this file switches
 * on the type, and the schema reader (schema.c) asks this table through
 * rstate__type_named, _a_name, _kind and _takes rather than keeping its own.
 *
 * Decisions the contract leaves open:
 *  - A string value with a NULL pointer is RSTATE_EINVAL (a bad argument),
 *    whatever its length, not RSTATE_ETYPE.
 *  - Bounds are converted like values: a float bound must be finite (NaN and
 *    infinities are RSTATE_EINVAL); an integer's float bound must be whole and
 *    within int64_t. A bound of another kind is RSTATE_EINVAL.
 *  - An empty pattern or namespace ("") is the same as NULL: no constraint.
 *    A choices pointer with n_choices 0 (or NULL with n_choices > 0) is
 *    RSTATE_EINVAL for choice and module alike.
 *  - Description and pattern must be valid UTF-8 (RSTATE_EINVAL): they travel
 *    over the wire and into messages.
 *  - Patterns may use back-references \1..\8 (a GNU extension); \9 is
 *    RSTATE_EINVAL, because the whole-value anchoring adds a group in front.
 *  - Choices are matched byte for byte (module ones too); "" may be a choice.
 *  - An initial value of kind RSTATE_NONE is RSTATE_ETYPE: every variable
 *    starts with a value.
 *  - On failure rstate__spec_check sets *out to RSTATE_NONE.
 */
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "types.h"

/* REG_STARTEND (glibc, the BSDs, macOS) lets regexec read exactly len bytes
 * of a string that need not be NUL-terminated. The sanitizers' regexec
 * interceptor ignores it and runs strlen on the string, reading past the
 * value, so sanitizer builds (and C libraries without it) copy the value
 * into a NUL-terminated buffer instead. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSTATE__SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define RSTATE__SANITIZED 1
#endif
#endif
#if defined(REG_STARTEND) && !defined(RSTATE__SANITIZED) && !defined(RSTATE_NO_REG_STARTEND)
#define RSTATE__USE_STARTEND 1
#else
#define RSTATE__USE_STARTEND 0
#endif

typedef struct type_row type_row;

typedef struct choice {
  char *s;
  size_t len;
} choice;

struct rstate__spec {
  const type_row *row;
  char *name;
  char *description;     /* NULL when none or "" */
  rstate_value initial;  /* coerced to the type's kind; a string is owned */
  rstate_value min, max; /* coerced bounds as given; RSTATE_NONE: unbounded */
  union {                /* the bounds ready for the hot path, never NONE */
    struct {
      double lo, hi;
    } f;
    struct {
      int64_t lo, hi;
    } i;
  } range;
  size_t min_length, max_length;
  choice *choices; /* definition order */
  choice *sorted;  /* the same strings, sorted by bytes, for lookup */
  size_t n_choices;
  char *ns; /* module namespace, NULL when none */
  size_t ns_len;
  char *pattern; /* as given, NULL when none */
  bool has_re;
  regex_t re; /* "^(" pattern ")$" (see anchor_pattern), REG_EXTENDED | REG_NOSUB */
};

/* ---- the table ---------------------------------------------------------- */

/* Constraint fields, as bits of type_row.constraints. */
enum { C_MIN = 1, C_MAX = 2, C_MIN_LENGTH = 4, C_MAX_LENGTH = 8, C_CHOICES = 16, C_NAMESPACE = 32, C_PATTERN = 64 };

struct type_row {
  rstate_type type;
  rstate_kind kind;     /* the kind its values are coerced to */
  const char *name;     /* rstate_type_name */
  const char *a_name;   /* "a float", "an integer": for sentences */
  const char *takes;    /* the kinds it accepts, for sentences */
  unsigned constraints; /* C_* bits of the fields that apply */
  /* Validates the applicable constraints and copies them into spec:
   * RSTATE_EINVAL, RSTATE_ENOMEM. */
  int (*define)(rstate__spec *spec, const rstate_constraints *c);
  /* Accepts the kinds the type takes and converts to its own kind into
   * *out: RSTATE_ETYPE, RSTATE_EINVAL (string with a NULL pointer). */
  int (*coerce)(const rstate__spec *spec, const rstate_value *in, rstate_value *out);
  /* Applies the constraints to a coerced value: RSTATE_ECONSTRAINT,
   * RSTATE_ENOMEM (pattern matching ran out of memory). */
  int (*check)(const rstate__spec *spec, const rstate_value *v);
};

static int float_define(rstate__spec *spec, const rstate_constraints *c);
static int float_coerce(const rstate__spec *spec, const rstate_value *in, rstate_value *out);
static int float_check(const rstate__spec *spec, const rstate_value *v);
static int integer_define(rstate__spec *spec, const rstate_constraints *c);
static int integer_coerce(const rstate__spec *spec, const rstate_value *in, rstate_value *out);
static int integer_check(const rstate__spec *spec, const rstate_value *v);
static int none_define(rstate__spec *spec, const rstate_constraints *c);
static int boolean_coerce(const rstate__spec *spec, const rstate_value *in, rstate_value *out);
static int none_check(const rstate__spec *spec, const rstate_value *v);
static int string_define(rstate__spec *spec, const rstate_constraints *c);
static int string_coerce(const rstate__spec *spec, const rstate_value *in, rstate_value *out);
static int string_check(const rstate__spec *spec, const rstate_value *v);
static int choice_define(rstate__spec *spec, const rstate_constraints *c);
static int choice_check(const rstate__spec *spec, const rstate_value *v);
static int module_define(rstate__spec *spec, const rstate_constraints *c);
static int module_check(const rstate__spec *spec, const rstate_value *v);

static const type_row types[] = {
    [RSTATE_TYPE_FLOAT] = {RSTATE_TYPE_FLOAT, RSTATE_FLOAT, "float", "a float", "a float or an integer", C_MIN | C_MAX,
                           float_define, float_coerce, float_check},
    [RSTATE_TYPE_INTEGER] = {RSTATE_TYPE_INTEGER, RSTATE_INT, "integer", "an integer", "an integer or a whole float",
                             C_MIN | C_MAX, integer_define, integer_coerce, integer_check},
    [RSTATE_TYPE_BOOLEAN] = {RSTATE_TYPE_BOOLEAN, RSTATE_BOOL, "boolean", "a boolean", "a boolean", 0, none_define,
                             boolean_coerce, none_check},
    [RSTATE_TYPE_STRING] = {RSTATE_TYPE_STRING, RSTATE_STRING, "string", "a string", "a string",
                            C_MIN_LENGTH | C_MAX_LENGTH | C_PATTERN, string_define, string_coerce, string_check},
    [RSTATE_TYPE_CHOICE] = {RSTATE_TYPE_CHOICE, RSTATE_STRING, "choice", "a choice", "a string", C_CHOICES,
                            choice_define, string_coerce, choice_check},
    [RSTATE_TYPE_MODULE] = {RSTATE_TYPE_MODULE, RSTATE_STRING, "module", "a module", "a string",
                            C_CHOICES | C_NAMESPACE | C_PATTERN, module_define, string_coerce, module_check},
};

/* The constraint fields by bit (C_MIN is bit 0), as sentences and schema
 * files name them. */
static const char *const constraint_names[] = {"min",     "max",       "min_length", "max_length",
                                               "choices", "namespace", "pattern"};

static const type_row *row_of(rstate_type t) {
  int i = (int)t;
  if (i < RSTATE_TYPE_FLOAT || i > RSTATE_TYPE_MODULE) return NULL;
  return &types[i];
}

const char *rstate_type_name(rstate_type t) {
  const type_row *row = row_of(t);
  return row ? row->name : "unknown";
}

rstate_type rstate__type_named(const char *p, size_t len) {
  for (int i = RSTATE_TYPE_FLOAT; i <= RSTATE_TYPE_MODULE; i++)
    if (strlen(types[i].name) == len && memcmp(types[i].name, p, len) == 0) return (rstate_type)i;
  return (rstate_type)0;
}

const char *rstate__type_a_name(rstate_type t) {
  const type_row *row = row_of(t);
  return row ? row->a_name : "an unknown";
}

rstate_kind rstate__type_kind(rstate_type t) {
  const type_row *row = row_of(t);
  return row ? row->kind : RSTATE_NONE;
}

bool rstate__type_takes(rstate_type t, const char *field) {
  const type_row *row = row_of(t);
  for (unsigned b = 0; row && b < sizeof constraint_names / sizeof constraint_names[0]; b++)
    if (strcmp(constraint_names[b], field) == 0) return (row->constraints & (1u << b)) != 0;
  return false;
}

/* ---- sentences ---------------------------------------------------------- */

#define VALBUF 96

static const char *kind_text(const rstate_value *v, char *buf, size_t size) {
  switch (v->kind) {
    case RSTATE_NONE:
      return "no value (RSTATE_NONE)";
    case RSTATE_FLOAT:
      return "a float";
    case RSTATE_INT:
      return "an integer";
    case RSTATE_BOOL:
      return "a boolean";
    case RSTATE_STRING:
      return "a string";
  }
  snprintf(buf, size, "a value of unknown kind %d", (int)v->kind);
  return buf;
}

/* Reasons a number does not convert; WRONG_KIND when it is not a number. */
static const char WRONG_KIND[] = "is not a number";

static int wrong_kind(const rstate__spec *spec, const rstate_value *in) {
  char kb[48];
  return rstate__err(RSTATE_ETYPE, "%s: %s variable takes %s, not %s", spec->name, spec->row->a_name, spec->row->takes,
                     kind_text(in, kb, sizeof kb));
}

static int bad_number(const rstate__spec *spec, const rstate_value *in, const char *why) {
  char vb[VALBUF];
  if (why == WRONG_KIND) return wrong_kind(spec, in);
  return rstate__err(RSTATE_ETYPE, "%s: %s %s", spec->name, rstate__value_format(in, vb, sizeof vb), why);
}

static int no_memory(const rstate__spec *spec, const char *what) {
  return rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the %s", spec->name, what);
}

/* The choices, in definition order, joined by ", "; ", ..." ends a list
 * that does not fit. */
static const char *choice_list(const rstate__spec *spec, char *buf, size_t size) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < spec->n_choices; i++) {
    int n = snprintf(buf + o, size - o, "%s%s", i ? ", " : "", spec->choices[i].s);
    if (n < 0 || (size_t)n >= size - o) {
      /* does not fit: end with ", ..." where there is room */
      size_t keep = o + 5 < size ? o : (size > 6 ? size - 6 : 0);
      snprintf(buf + keep, size - keep, ", ...");
      break;
    }
    o += (size_t)n;
  }
  return buf;
}

/* ---- numbers ------------------------------------------------------------ */

static inline const char *to_double(const rstate_value *in, double *out) {
  if (in->kind == RSTATE_FLOAT) {
    if (!isfinite(in->u.f)) return "is not a finite number";
    *out = in->u.f;
    return NULL;
  }
  if (in->kind == RSTATE_INT) {
    *out = (double)in->u.i;
    return NULL;
  }
  return WRONG_KIND;
}

static inline const char *to_int64(const rstate_value *in, int64_t *out) {
  if (in->kind == RSTATE_INT) {
    *out = in->u.i;
    return NULL;
  }
  if (in->kind != RSTATE_FLOAT) return WRONG_KIND;
  double d = in->u.f;
  if (!isfinite(d)) return "is not a finite number";
  if (!(d >= -0x1p63 && d < 0x1p63)) return "is outside the 64-bit integer range";
  int64_t i = (int64_t)d;
  if ((double)i != d) return "is not a whole number";
  *out = i;
  return NULL;
}

/* A number converted to the type's kind into *out, or why it cannot be. */
typedef const char *(*number_conv)(const rstate_value *in, rstate_value *out);

static const char *float_conv(const rstate_value *in, rstate_value *out) {
  double d = 0;
  const char *why = to_double(in, &d);
  out->kind = RSTATE_FLOAT;
  out->u.f = d;
  return why;
}

static const char *integer_conv(const rstate_value *in, rstate_value *out) {
  int64_t i = 0;
  const char *why = to_int64(in, &i);
  out->kind = RSTATE_INT;
  out->u.i = i;
  return why;
}

/* Converts a bound (which: "min" or "max") like a value: RSTATE_EINVAL. */
static int number_bound(const rstate__spec *spec, number_conv conv, const char *which, const rstate_value *bound,
                        rstate_value *out) {
  char vb[VALBUF], kb[48];
  out->kind = RSTATE_NONE;
  if (bound->kind == RSTATE_NONE) return RSTATE_OK;
  const char *why = conv(bound, out);
  if (!why) return RSTATE_OK;
  out->kind = RSTATE_NONE;
  if (why == WRONG_KIND)
    return rstate__err(RSTATE_EINVAL, "%s: %s must be given as a float or an integer, not %s", spec->name, which,
                       kind_text(bound, kb, sizeof kb));
  return rstate__err(RSTATE_EINVAL, "%s: %s %s %s for %s variable", spec->name, which,
                     rstate__value_format(bound, vb, sizeof vb), why, spec->row->a_name);
}

static int bounds_define(rstate__spec *spec, const rstate_constraints *c, number_conv conv) {
  int rc = number_bound(spec, conv, "min", &c->min, &spec->min);
  if (rc == RSTATE_OK) rc = number_bound(spec, conv, "max", &c->max, &spec->max);
  return rc;
}

static int min_above_max(const rstate__spec *spec) {
  char vb1[VALBUF], vb2[VALBUF];
  return rstate__err(RSTATE_EINVAL, "%s: min %s is above max %s", spec->name,
                     rstate__value_format(&spec->min, vb1, sizeof vb1),
                     rstate__value_format(&spec->max, vb2, sizeof vb2));
}

static int float_define(rstate__spec *spec, const rstate_constraints *c) {
  int rc = bounds_define(spec, c, float_conv);
  if (rc != RSTATE_OK) return rc;
  spec->range.f.lo = spec->min.kind == RSTATE_NONE ? -INFINITY : spec->min.u.f;
  spec->range.f.hi = spec->max.kind == RSTATE_NONE ? INFINITY : spec->max.u.f;
  return spec->range.f.lo > spec->range.f.hi ? min_above_max(spec) : RSTATE_OK;
}

static int integer_define(rstate__spec *spec, const rstate_constraints *c) {
  int rc = bounds_define(spec, c, integer_conv);
  if (rc != RSTATE_OK) return rc;
  spec->range.i.lo = spec->min.kind == RSTATE_NONE ? INT64_MIN : spec->min.u.i;
  spec->range.i.hi = spec->max.kind == RSTATE_NONE ? INT64_MAX : spec->max.u.i;
  return spec->range.i.lo > spec->range.i.hi ? min_above_max(spec) : RSTATE_OK;
}

static int float_coerce(const rstate__spec *spec, const rstate_value *in, rstate_value *out) {
  double d = 0;
  const char *why = to_double(in, &d);
  if (why) return bad_number(spec, in, why);
  out->kind = RSTATE_FLOAT;
  out->u.f = d;
  return RSTATE_OK;
}

static int integer_coerce(const rstate__spec *spec, const rstate_value *in, rstate_value *out) {
  int64_t i = 0;
  const char *why = to_int64(in, &i);
  if (why) return bad_number(spec, in, why);
  out->kind = RSTATE_INT;
  out->u.i = i;
  return RSTATE_OK;
}

static int out_of_range(const rstate__spec *spec, const rstate_value *v, bool below) {
  char vb[VALBUF], bb[VALBUF];
  const rstate_value *bound = below ? &spec->min : &spec->max;
  return rstate__err(RSTATE_ECONSTRAINT, "%s: %s is %s the %s %s", spec->name, rstate__value_format(v, vb, sizeof vb),
                     below ? "below" : "above", below ? "minimum" : "maximum",
                     rstate__value_format(bound, bb, sizeof bb));
}

static int float_check(const rstate__spec *spec, const rstate_value *v) {
  if (v->u.f < spec->range.f.lo) return out_of_range(spec, v, true);
  if (v->u.f > spec->range.f.hi) return out_of_range(spec, v, false);
  return RSTATE_OK;
}

static int integer_check(const rstate__spec *spec, const rstate_value *v) {
  if (v->u.i < spec->range.i.lo) return out_of_range(spec, v, true);
  if (v->u.i > spec->range.i.hi) return out_of_range(spec, v, false);
  return RSTATE_OK;
}

/* ---- boolean ------------------------------------------------------------ */

static int none_define(rstate__spec *spec, const rstate_constraints *c) {
  (void)spec;
  (void)c;
  return RSTATE_OK;
}

static int boolean_coerce(const rstate__spec *spec, const rstate_value *in, rstate_value *out) {
  if (in->kind != RSTATE_BOOL) return wrong_kind(spec, in);
  out->kind = RSTATE_BOOL;
  out->u.b = in->u.b;
  return RSTATE_OK;
}

static int none_check(const rstate__spec *spec, const rstate_value *v) {
  (void)spec;
  (void)v;
  return RSTATE_OK;
}

/* ---- strings, patterns, choices ----------------------------------------- */

static int string_coerce(const rstate__spec *spec, const rstate_value *in, rstate_value *out) {
  if (in->kind != RSTATE_STRING) return wrong_kind(spec, in);
  const char *p = in->u.s.ptr;
  size_t len = in->u.s.len;
  if (!p) return rstate__err(RSTATE_EINVAL, "%s: the string value has a NULL pointer", spec->name);
  if (!rstate__utf8_valid(p, len)) {
    const char *nul = memchr(p, '\0', len);
    if (nul)
      return rstate__err(RSTATE_ETYPE, "%s: the string holds a NUL byte at byte %zu", spec->name, (size_t)(nul - p));
    return rstate__err(RSTATE_ETYPE, "%s: the string is not valid UTF-8", spec->name);
  }
  *out = *in;
  return RSTATE_OK;
}

/* Rewrites pattern for the anchored "^(" pattern ")$" form without changing
 * what it means: a ')' that closes nothing (a literal in ERE) becomes "\)",
 * so it cannot close the added group, and back-references \1..\8 move up by
 * one, past the added group. Returns NULL with *why set when it cannot
 * (\9), or with *why NULL on ENOMEM. */
static char *anchor_pattern(const char *pat, const char **why) {
  size_t len = strlen(pat);
  char *out = malloc(2 * len + 5); /* each byte at most doubles, plus "^(" ")$" NUL */
  size_t o = 0;
  int depth = 0;
  *why = NULL;
  if (!out) return NULL;
  out[o++] = '^';
  out[o++] = '(';
  for (size_t i = 0; i < len; i++) {
    char c = pat[i];
    if (c == '\\' && i + 1 < len) {
      char n = pat[++i];
      if (n >= '1' && n <= '9') {
        if (n == '9') {
          *why = "uses the back-reference \\9; at most \\8 is supported";
          free(out);
          return NULL;
        }
        n++;
      }
      out[o++] = '\\';
      out[o++] = n;
    } else if (c == '[') {
      /* a bracket expression: copied as is; ( ) \ are ordinary inside */
      size_t j = i + 1;
      if (j < len && pat[j] == '^') j++;
      if (j < len && pat[j] == ']') j++;
      while (j < len && pat[j] != ']') {
        if (pat[j] == '[' && j + 1 < len && (pat[j + 1] == ':' || pat[j + 1] == '.' || pat[j + 1] == '=')) {
          char term = pat[j + 1];
          const char *end = NULL;
          for (size_t k = j + 2; k + 1 < len; k++)
            if (pat[k] == term && pat[k + 1] == ']') {
              end = pat + k;
              break;
            }
          if (end) {
            j = (size_t)(end - pat) + 2;
            continue;
          }
        }
        j++;
      }
      if (j >= len) j = len - 1; /* unterminated: regcomp has accepted it, copy the rest */
      memcpy(out + o, pat + i, j - i + 1);
      o += j - i + 1;
      i = j;
    } else if (c == '(') {
      depth++;
      out[o++] = c;
    } else if (c == ')') {
      if (depth == 0)
        out[o++] = '\\';
      else
        depth--;
      out[o++] = c;
    } else {
      out[o++] = c;
    }
  }
  out[o++] = ')';
  out[o++] = '$';
  out[o] = '\0';
  return out;
}

/* Compiles pattern (given: non-empty) into spec: RSTATE_EINVAL with
 * regerror's text, RSTATE_ENOMEM. */
/* glibc's regcomp expands repetition into copies of what is repeated ("x+"
 * becomes "xx*", "x{2,5}" five copies), copies of copies when repetition
 * nests, and its memory grows faster than the copies. So a short pattern
 * from an untrusted schema could exhaust memory ("f++++++++++++++++++++++"
 * takes gigabytes). Patterns are refused when they are longer than
 * PATTERN_MAX_LEN bytes, stack a repetition directly on another, bound a
 * repetition above PATTERN_MAX_BOUND, nest groups deeper than
 * PATTERN_MAX_DEPTH, or when the atoms after expansion — every atom of
 * every alternative counted, times what repeats it — exceed
 * PATTERN_MAX_ATOMS. Returns why, or NULL when acceptable; syntax errors are
 * left to regcomp. */
#define PATTERN_MAX_LEN 1024
#define PATTERN_MAX_BOUND 1000UL
#define PATTERN_MAX_ATOMS 4000UL
#define PATTERN_MAX_DEPTH 32

static const char *pattern_too_costly(const char *p) {
  if (strlen(p) > PATTERN_MAX_LEN) return "is longer than 1024 bytes";
  unsigned long size[PATTERN_MAX_DEPTH + 1] = {0}; /* atoms after expansion in each open group */
  int depth = 0;
  unsigned long last = 0; /* size of the last atom; 0: nothing a repetition could apply to */
  bool repeated = false;
  for (size_t i = 0; p[i]; i++) {
    char c = p[i];
    if (c == '*' || c == '+' || c == '?' || c == '{') {
      if (repeated) return "stacks one repetition directly on another";
      repeated = true;
      unsigned long copies = c == '+' ? 2 : 1;
      if (c == '{') {
        unsigned long lo = 0, hi;
        size_t k = i + 1;
        while (p[k] >= '0' && p[k] <= '9' && lo <= PATTERN_MAX_BOUND) lo = lo * 10 + (unsigned long)(p[k++] - '0');
        while (p[k] >= '0' && p[k] <= '9') k++; /* digits past the limit */
        hi = lo;
        if (p[k] == ',') {
          k++;
          hi = lo + 1; /* "{n,}": n copies and a starred one */
          if (p[k] >= '0' && p[k] <= '9') hi = 0;
          while (p[k] >= '0' && p[k] <= '9' && hi <= PATTERN_MAX_BOUND) hi = hi * 10 + (unsigned long)(p[k++] - '0');
          while (p[k] >= '0' && p[k] <= '9') k++;
        }
        if (p[k] != '}') continue; /* not a bound: regcomp decides */
        i = k;
        if (lo > PATTERN_MAX_BOUND || hi > PATTERN_MAX_BOUND) return "bounds a repetition above 1000";
        copies = hi ? hi : 1;
      }
      size[depth] += last * (copies - 1);
      last *= copies;
      if (size[depth] > PATTERN_MAX_ATOMS) return "expands to more than 4000 atoms once repetition is unrolled";
      continue;
    }
    repeated = false;
    if (c == '(') {
      if (depth == PATTERN_MAX_DEPTH) return "nests groups more than 32 deep";
      size[++depth] = 0;
      last = 0;
      continue;
    }
    if (c == ')' && depth > 0) {
      last = size[depth--];
      size[depth] += last;
      if (size[depth] > PATTERN_MAX_ATOMS) return "expands to more than 4000 atoms once repetition is unrolled";
      continue;
    }
    if (c == '|') { /* alternatives are all compiled: their atoms add up */
      last = 0;
      continue;
    }
    if (c == '\\' && p[i + 1]) {
      i++;
    } else if (c == '[') { /* a bracket expression is one atom */
      size_t k = i + 1;
      if (p[k] == '^') k++;
      if (p[k] == ']') k++;
      while (p[k] && p[k] != ']') {
        if (p[k] == '[' && (p[k + 1] == ':' || p[k + 1] == '=' || p[k + 1] == '.')) {
          char close = p[k + 1];
          k += 2;
          while (p[k] && !(p[k] == close && p[k + 1] == ']')) k++;
          if (p[k]) k++;
        }
        if (p[k]) k++;
      }
      if (!p[k]) return NULL; /* unterminated: regcomp reports it */
      i = k;
    }
    last = 1;
    if (++size[depth] > PATTERN_MAX_ATOMS) return "expands to more than 4000 atoms once repetition is unrolled";
  }
  return NULL;
}

static int pattern_define(rstate__spec *spec, const char *pattern) {
  char qb[VALBUF], eb[160];
  regex_t re;
  size_t len = strlen(pattern);
  if (!rstate__utf8_valid(pattern, len))
    return rstate__err(RSTATE_EINVAL, "%s: the pattern is not valid UTF-8", spec->name);
  const char *costly = pattern_too_costly(pattern);
  if (costly)
    return rstate__err(RSTATE_EINVAL, "%s: pattern \"%s\" %s (refused: compiling it could take unbounded memory)",
                       spec->name, rstate__quote_bytes(qb, sizeof qb, pattern, len), costly);
  /* Compiled alone first, so its own error, not one the anchoring made,
   * is what the caller reads. */
  int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
  if (rc == REG_ESPACE) return no_memory(spec, "pattern");
  if (rc != 0) {
    regerror(rc, &re, eb, sizeof eb);
    return rstate__err(RSTATE_EINVAL, "%s: pattern \"%s\" does not compile: %s", spec->name,
                       rstate__quote_bytes(qb, sizeof qb, pattern, len), eb);
  }
  regfree(&re);
  const char *why;
  char *anchored = anchor_pattern(pattern, &why);
  if (!anchored) {
    if (!why) return no_memory(spec, "pattern");
    return rstate__err(RSTATE_EINVAL, "%s: pattern \"%s\" %s", spec->name,
                       rstate__quote_bytes(qb, sizeof qb, pattern, len), why);
  }
  rc = regcomp(&spec->re, anchored, REG_EXTENDED | REG_NOSUB);
  free(anchored);
  if (rc == REG_ESPACE) return no_memory(spec, "pattern");
  if (rc != 0) {
    regerror(rc, &spec->re, eb, sizeof eb);
    return rstate__err(RSTATE_EINVAL, "%s: pattern \"%s\" does not compile anchored: %s", spec->name,
                       rstate__quote_bytes(qb, sizeof qb, pattern, len), eb);
  }
  spec->has_re = true;
  if (!rstate__strdup_opt(&spec->pattern, pattern)) return no_memory(spec, "pattern");
  return RSTATE_OK;
}

/* Whether the pattern matches the whole of p[0..len) (p need not be
 * NUL-terminated): RSTATE_OK, RSTATE_ECONSTRAINT, RSTATE_ENOMEM. */
static int pattern_check(const rstate__spec *spec, const rstate_value *v) {
  if (!spec->has_re) return RSTATE_OK;
  const char *p = v->u.s.ptr;
  size_t len = v->u.s.len;
  int rc;
  if (len > (size_t)INT_MAX) /* beyond what regoff_t is sure to hold */
    return rstate__err(RSTATE_ECONSTRAINT, "%s: the value is too long (%zu bytes) to match the pattern", spec->name,
                       len);
#if RSTATE__USE_STARTEND
  /* The bounds come in pmatch[0]: no copy, no NUL needed. */
  regmatch_t pm[1];
  pm[0].rm_so = 0;
  pm[0].rm_eo = (regoff_t)len;
  rc = regexec(&spec->re, p, 1, pm, REG_STARTEND);
#else
  /* Elsewhere regexec needs a NUL-terminated string: copy it. */
  char stackbuf[256];
  char *buf = len < sizeof stackbuf ? stackbuf : malloc(len + 1);
  if (!buf) return no_memory(spec, "value to match it");
  memcpy(buf, p, len);
  buf[len] = '\0';
  rc = regexec(&spec->re, buf, 0, NULL, 0);
  if (buf != stackbuf) free(buf);
#endif
  if (rc == 0) return RSTATE_OK;
  if (rc == REG_ESPACE) return rstate__err(RSTATE_ENOMEM, "%s: out of memory matching the pattern", spec->name);
  char vb[VALBUF], qb[VALBUF];
  return rstate__err(RSTATE_ECONSTRAINT, "%s: %s does not match the pattern %s", spec->name,
                     rstate__value_format(v, vb, sizeof vb),
                     rstate__quote_bytes(qb, sizeof qb, spec->pattern, strlen(spec->pattern)));
}

static int string_define(rstate__spec *spec, const rstate_constraints *c) {
  if (c->max_length && c->min_length > c->max_length)
    return rstate__err(RSTATE_EINVAL, "%s: min_length %zu is above max_length %zu", spec->name, c->min_length,
                       c->max_length);
  spec->min_length = c->min_length;
  spec->max_length = c->max_length;
  if (c->pattern && c->pattern[0]) return pattern_define(spec, c->pattern);
  return RSTATE_OK;
}

static int string_check(const rstate__spec *spec, const rstate_value *v) {
  char vb[VALBUF];
  size_t len = v->u.s.len;
  if (len < spec->min_length)
    return rstate__err(RSTATE_ECONSTRAINT, "%s: %s is %zu byte%s long, below the minimum length %zu", spec->name,
                       rstate__value_format(v, vb, sizeof vb), len, len == 1 ? "" : "s", spec->min_length);
  if (spec->max_length && len > spec->max_length)
    return rstate__err(RSTATE_ECONSTRAINT, "%s: %s is %zu bytes long, above the maximum length %zu", spec->name,
                       rstate__value_format(v, vb, sizeof vb), len, spec->max_length);
  return pattern_check(spec, v);
}

/* "Name" or "A.B.Name", each part [A-Za-z_][A-Za-z0-9_]*. */
static bool dotted_identifier(const char *p, size_t len) {
  bool start = true;
  if (len == 0) return false;
  for (size_t i = 0; i < len; i++) {
    char c = p[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (start) {
      if (!alpha) return false;
      start = false;
    } else if (c == '.') {
      start = true;
    } else if (!alpha && !(c >= '0' && c <= '9')) {
      return false;
    }
  }
  return !start;
}

static int choice_cmp(const void *a, const void *b) {
  const choice *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int r = n ? memcmp(x->s, y->s, n) : 0;
  if (r) return r;
  return (x->len > y->len) - (x->len < y->len);
}

static bool choice_find(const rstate__spec *spec, const char *p, size_t len) {
  choice key = {(char *)p, len};
  return bsearch(&key, spec->sorted, spec->n_choices, sizeof key, choice_cmp) != NULL;
}

/* Validates and copies the choices (given: pointer or count set). dotted:
 * each must be a dotted identifier (module) rather than any UTF-8 text. */
static int choices_define(rstate__spec *spec, const rstate_constraints *c, bool dotted) {
  char qb[VALBUF];
  size_t n = c->n_choices;
  if (n == 0) return rstate__err(RSTATE_EINVAL, "%s: choices is an empty list", spec->name);
  if (!c->choices) return rstate__err(RSTATE_EINVAL, "%s: choices is NULL but n_choices is %zu", spec->name, n);
  for (size_t i = 0; i < n; i++) {
    const char *s = c->choices[i];
    if (!s) return rstate__err(RSTATE_EINVAL, "%s: choice %zu is NULL", spec->name, i);
    size_t len = strlen(s);
    if (!rstate__utf8_valid(s, len))
      return rstate__err(RSTATE_EINVAL, "%s: choice %zu is not valid UTF-8", spec->name, i);
    if (dotted && !dotted_identifier(s, len))
      return rstate__err(RSTATE_EINVAL, "%s: choice \"%s\" is not a dotted identifier (Name or A.B.Name)", spec->name,
                         rstate__quote_bytes(qb, sizeof qb, s, len));
  }
  spec->choices = calloc(n, sizeof *spec->choices);
  spec->sorted = calloc(n, sizeof *spec->sorted);
  if (!spec->choices || !spec->sorted) return no_memory(spec, "choices");
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(c->choices[i]);
    char *s = malloc(len + 1);
    if (!s) return no_memory(spec, "choices");
    memcpy(s, c->choices[i], len + 1);
    spec->choices[i].s = s;
    spec->choices[i].len = len;
    spec->n_choices = i + 1; /* what spec_free releases */
  }
  memcpy(spec->sorted, spec->choices, n * sizeof *spec->sorted);
  qsort(spec->sorted, n, sizeof *spec->sorted, choice_cmp);
  for (size_t i = 1; i < n; i++)
    if (choice_cmp(&spec->sorted[i - 1], &spec->sorted[i]) == 0)
      return rstate__err(RSTATE_EINVAL, "%s: choice \"%s\" is given twice", spec->name,
                         rstate__quote_bytes(qb, sizeof qb, spec->sorted[i].s, spec->sorted[i].len));
  return RSTATE_OK;
}

static int choice_define(rstate__spec *spec, const rstate_constraints *c) {
  if (!c->choices && c->n_choices == 0)
    return rstate__err(RSTATE_EINVAL, "%s: a choice variable needs choices", spec->name);
  return choices_define(spec, c, false);
}

static int choice_check(const rstate__spec *spec, const rstate_value *v) {
  if (choice_find(spec, v->u.s.ptr, v->u.s.len)) return RSTATE_OK;
  char vb[VALBUF], lb[256];
  return rstate__err(RSTATE_ECONSTRAINT, "%s: %s is not one of the choices %s", spec->name,
                     rstate__value_format(v, vb, sizeof vb), choice_list(spec, lb, sizeof lb));
}

static int module_define(rstate__spec *spec, const rstate_constraints *c) {
  char qb[VALBUF];
  int rc;
  const char *ns = c->module_namespace;
  if (ns && ns[0]) {
    size_t len = strlen(ns);
    if (!dotted_identifier(ns, len))
      return rstate__err(RSTATE_EINVAL, "%s: namespace \"%s\" is not a dotted identifier (Name or A.B.Name)",
                         spec->name, rstate__quote_bytes(qb, sizeof qb, ns, len));
  }
  if (c->choices || c->n_choices) {
    rc = choices_define(spec, c, true);
    if (rc != RSTATE_OK) return rc;
  }
  if (c->pattern && c->pattern[0]) {
    rc = pattern_define(spec, c->pattern);
    if (rc != RSTATE_OK) return rc;
  }
  if (ns && ns[0]) {
    if (!rstate__strdup_opt(&spec->ns, ns)) return no_memory(spec, "namespace");
    spec->ns_len = strlen(ns);
  }
  return RSTATE_OK;
}

static int module_check(const rstate__spec *spec, const rstate_value *v) {
  char vb[VALBUF], lb[256];
  const char *p = v->u.s.ptr;
  size_t len = v->u.s.len;
  if (!dotted_identifier(p, len))
    return rstate__err(RSTATE_ECONSTRAINT, "%s: %s is not a module name (a dotted identifier: Name or A.B.Name)",
                       spec->name, rstate__value_format(v, vb, sizeof vb));
  if (spec->ns) {
    size_t n = spec->ns_len;
    if (len <= n + 1 || memcmp(p, spec->ns, n) != 0 || p[n] != '.')
      return rstate__err(RSTATE_ECONSTRAINT, "%s: %s is not in the namespace %s (expected %s.<name>)", spec->name,
                         rstate__value_format(v, vb, sizeof vb), spec->ns, spec->ns);
    p += n + 1;
    len -= n + 1;
  }
  if (spec->n_choices && !choice_find(spec, p, len)) {
    if (spec->ns)
      return rstate__err(RSTATE_ECONSTRAINT, "%s: %s is not one of the choices %s in the namespace %s", spec->name,
                         rstate__value_format(v, vb, sizeof vb), choice_list(spec, lb, sizeof lb), spec->ns);
    return rstate__err(RSTATE_ECONSTRAINT, "%s: %s is not one of the choices %s", spec->name,
                       rstate__value_format(v, vb, sizeof vb), choice_list(spec, lb, sizeof lb));
  }
  return pattern_check(spec, v);
}

/* ---- names -------------------------------------------------------------- */

int rstate__name_check(const char *name) {
  char qb[VALBUF];
  if (!name) return rstate__err(RSTATE_EINVAL, "name is NULL");
  size_t len = strnlen(name, RSTATE_NAME_MAX + 1);
  if (len == 0) return rstate__err(RSTATE_EINVAL, "name is empty");
  if (len > RSTATE_NAME_MAX)
    return rstate__err(RSTATE_EINVAL, "name \"%s\" is longer than %d bytes", rstate__quote_bytes(qb, 40, name, len),
                       RSTATE_NAME_MAX);
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
        c == ':' || c == '/' || c == '-')
      continue;
    return rstate__err(RSTATE_EINVAL, "name \"%s\" has a character outside [A-Za-z0-9_.:/-] at byte %zu",
                       rstate__quote_bytes(qb, sizeof qb, name, len), i);
  }
  return RSTATE_OK;
}

int rstate__watch_pattern_check(const char *p) {
  if (!p) return rstate__err(RSTATE_EINVAL, "a name or pattern is NULL");
  size_t len = strlen(p);
  if (len && p[len - 1] == '*') {
    if (len == 1) return RSTATE_OK;
    char prefix[RSTATE_NAME_MAX + 1];
    if (len - 1 > RSTATE_NAME_MAX)
      return rstate__err(RSTATE_EINVAL, "pattern \"%.40s...\" is longer than %d bytes", p, RSTATE_NAME_MAX);
    memcpy(prefix, p, len - 1);
    prefix[len - 1] = '\0';
    return rstate__name_check(prefix);
  }
  return rstate__name_check(p);
}

/* ---- specs -------------------------------------------------------------- */

/* The C_* bits of the constraints c sets. */
static unsigned constraints_given(const rstate_constraints *c) {
  unsigned g = 0;
  if (c->min.kind != RSTATE_NONE) g |= C_MIN;
  if (c->max.kind != RSTATE_NONE) g |= C_MAX;
  if (c->min_length) g |= C_MIN_LENGTH;
  if (c->max_length) g |= C_MAX_LENGTH;
  if (c->choices || c->n_choices) g |= C_CHOICES;
  if (c->module_namespace && c->module_namespace[0]) g |= C_NAMESPACE;
  if (c->pattern && c->pattern[0]) g |= C_PATTERN;
  return g;
}

void rstate__spec_free(rstate__spec *spec) {
  if (!spec) return;
  free(spec->name);
  free(spec->description);
  if (spec->initial.kind == RSTATE_STRING) free((char *)spec->initial.u.s.ptr);
  for (size_t i = 0; i < spec->n_choices; i++) free(spec->choices[i].s);
  free(spec->choices);
  free(spec->sorted);
  free(spec->ns);
  free(spec->pattern);
  if (spec->has_re) regfree(&spec->re);
  free(spec);
}

static int spec_build(rstate__spec *spec, const rstate_var_def *def) {
  static const rstate_constraints none;
  const type_row *row = spec->row;
  const rstate_constraints *c = def->constraints ? def->constraints : &none;
  unsigned extra = constraints_given(c) & ~row->constraints;
  int rc;

  for (unsigned b = 0; extra; b++)
    if (extra & (1u << b))
      return rstate__err(RSTATE_EINVAL, "%s: %s does not apply to %s variable", spec->name, constraint_names[b],
                         row->a_name);
  if (def->description && !rstate__utf8_valid(def->description, strlen(def->description)))
    return rstate__err(RSTATE_EINVAL, "%s: the description is not valid UTF-8", spec->name);
  rc = row->define(spec, c);
  if (rc != RSTATE_OK) return rc;

  rstate_value v;
  rc = row->coerce(spec, &def->initial, &v);
  if (rc != RSTATE_OK) return rc;
  rc = row->check(spec, &v);
  if (rc != RSTATE_OK) return rc;

  if (def->description && def->description[0] && !rstate__strdup_opt(&spec->description, def->description))
    return no_memory(spec, "description");
  if (v.kind == RSTATE_STRING) {
    char *s = malloc(v.u.s.len + 1);
    if (!s) return no_memory(spec, "initial value");
    memcpy(s, v.u.s.ptr, v.u.s.len);
    s[v.u.s.len] = '\0';
    spec->initial.kind = RSTATE_STRING;
    spec->initial.u.s.ptr = s;
    spec->initial.u.s.len = v.u.s.len;
  } else {
    spec->initial = v;
  }
  return RSTATE_OK;
}

int rstate__spec_new(rstate__spec **out, const rstate_var_def *def) {
  if (!out) return rstate__err(RSTATE_EINVAL, "rstate__spec_new: out is NULL");
  *out = NULL;
  if (!def) return rstate__err(RSTATE_EINVAL, "the variable definition is NULL");
  int rc = rstate__name_check(def->name);
  if (rc != RSTATE_OK) return rc;
  const type_row *row = row_of(def->type);
  if (!row)
    return rstate__err(RSTATE_EINVAL, "%s: type %d is not one of float, integer, boolean, string, choice, module",
                       def->name, (int)def->type);
  rstate__spec *spec = calloc(1, sizeof *spec);
  if (!spec) return rstate__err(RSTATE_ENOMEM, "%s: out of memory for its definition", def->name);
  spec->row = row;
  if (!rstate__strdup_opt(&spec->name, def->name)) {
    free(spec);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the name", def->name);
  }
  rc = spec_build(spec, def);
  if (rc != RSTATE_OK) {
    rstate__spec_free(spec);
    return rc;
  }
  *out = spec;
  return RSTATE_OK;
}

static bool str_same(const char *a, const char *b) {
  if (!a || !b) return a == b;
  return strcmp(a, b) == 0;
}

const char *rstate__spec_diff(const rstate__spec *a, const rstate__spec *b) {
  if (a == b) return NULL;
  if (!a || !b) return "the definition";
  if (a->row != b->row) return "type";
  if (strcmp(a->name, b->name) != 0) return "name";
  if (!rstate_value_equal(&a->initial, &b->initial)) return "initial value";
  if (!rstate_value_equal(&a->min, &b->min)) return "constraint min";
  if (!rstate_value_equal(&a->max, &b->max)) return "constraint max";
  if (a->min_length != b->min_length) return "constraint min_length";
  if (a->max_length != b->max_length) return "constraint max_length";
  if (a->n_choices != b->n_choices) return "constraint choices";
  for (size_t i = 0; i < a->n_choices; i++)
    if (a->choices[i].len != b->choices[i].len || memcmp(a->choices[i].s, b->choices[i].s, a->choices[i].len) != 0)
      return "constraint choices";
  if (!str_same(a->pattern, b->pattern)) return "constraint pattern";
  if (!str_same(a->ns, b->ns)) return "constraint module_namespace";
  if (!str_same(a->description, b->description)) return "description";
  return NULL;
}

bool rstate__spec_same(const rstate__spec *a, const rstate__spec *b) { return rstate__spec_diff(a, b) == NULL; }

int rstate__defined_differently(const char *name, rstate_type had, rstate_type asked, const char *part) {
  if (had != asked)
    return rstate__err(RSTATE_EEXIST, "%s: already defined differently: its type is %s, not %s", name,
                       rstate_type_name(had), rstate_type_name(asked));
  return rstate__err(RSTATE_EEXIST, "%s: already defined differently: its %s differs", name, part);
}

const char *rstate__spec_name(const rstate__spec *spec) { return spec->name; }
rstate_type rstate__spec_type(const rstate__spec *spec) { return spec->row->type; }
const rstate_value *rstate__spec_initial(const rstate__spec *spec) { return &spec->initial; }
size_t rstate__spec_n_choices(const rstate__spec *spec) { return spec->n_choices; }

void rstate__spec_def(const rstate__spec *spec, rstate_var_def *def, rstate_constraints *c, const char **choices) {
  memset(def, 0, sizeof *def);
  memset(c, 0, sizeof *c);
  def->name = spec->name;
  def->type = spec->row->type;
  def->initial = spec->initial;
  def->description = spec->description;
  def->constraints = c;
  c->min = spec->min;
  c->max = spec->max;
  c->min_length = spec->min_length;
  c->max_length = spec->max_length;
  for (size_t i = 0; i < spec->n_choices; i++) choices[i] = spec->choices[i].s;
  c->choices = spec->n_choices ? choices : NULL;
  c->n_choices = spec->n_choices;
  c->module_namespace = spec->ns;
  c->pattern = spec->pattern;
}

int rstate__spec_check(const rstate__spec *spec, const rstate_value *in, rstate_value *out) {
  if (!spec) return rstate__err(RSTATE_EINVAL, "rstate__spec_check: spec is NULL");
  if (!in || !out) return rstate__err(RSTATE_EINVAL, "%s: the value is NULL", spec->name);
  const type_row *row = spec->row;
  int rc = row->coerce(spec, in, out);
  if (rc == RSTATE_OK) rc = row->check(spec, out);
  if (rc != RSTATE_OK) out->kind = RSTATE_NONE;
  return rc;
}
