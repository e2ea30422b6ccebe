/*
 * schema.c — schema files: an INI-style text that defines variables.
 *
 *     # models.ini
 *     [model]
 *     type = choice
 *     choices = gpt-4, claude-3, gemini
 *     default = gpt-4
 *     description = Which model answers
 *
 *     [temperature]
 *     type = float
 *     default = 0.7
 *     min = 0
 *     max = 2
 *
 * One [section] per variable, named after it; keys type (float, integer,
 * boolean, string, choice, module), default, description, min, max,
 * min_length, max_length, pattern, choices, namespace. rstate_load_schema
 * reads the file and hands the bytes to rstate__schema_load_buffer, which
 * knows nothing of files (so the fuzzer can feed it).
 *
 * All or nothing, in two passes over the text:
 *  1. parse every section, convert its values, build its rstate_var_def and
 *     validate it with the library's own check (rstate__spec_new, the one
 *     rstate_define runs) — nothing touches the store, so a bad file, even a
 *     bad last variable, changes nothing: no value, no revision, no event;
 *  2. parse again and rstate_define each variable in file order. What can
 *     still fail here is the store's: another definition of that name exists
 *     (RSTATE_EEXIST), out of memory, a remote store's own errors. Then the
 *     variables this call newly defined are undefined again, last first, and
 *     the failing code is returned. (Undoing them takes revisions, and
 *     watchers covering them see DEFINED then DELETED.) A variable is "newly
 *     defined" when rstate_info did not find it just before its define: an
 *     identical existing definition is left alone, so reloading a file is
 *     RSTATE_OK and changes nothing. Only another thread defining the same
 *     name between those two calls can fool this, and only on the failure
 *     path.
 * Pass 2 keeps nothing but the names it defined (as pointers into the text),
 * so memory stays small even for a 16 MiB file of tiny sections.
 *
 * Every failure's sentence starts with "file:line: ", the file being the path
 * as given. The line is the one at fault: the line of a syntax error, of a
 * repeated or unknown key, of a value that does not parse, of a key that does
 * not apply to the type; the [section] line for a missing type or default, a
 * repeated section, and whatever the library's check or rstate_define refuses
 * (its sentence follows the prefix: "models.ini:7: temperature: min 3 is
 * above max 2"). Errors come in file order, except that within one section
 * the line-level errors (syntax, unknown or repeated key) are found before
 * the checks of the section as a whole.
 *
 * Syntax decisions the contract leaves open:
 *  - Lines end at "\n"; a "\r" before it (CRLF) is stripped with the other
 *    whitespace. Whitespace (space, tab, CR, VT, FF) around keys, values and
 *    section names is trimmed. A UTF-8 byte-order mark at the start is
 *    skipped. Lines may be of any length; the last needs no "\n".
 *  - Blank lines are ignored; a line whose first non-blank character is '#'
 *    or ';' is a comment. There are no comments after a value: in
 *    "pattern = [#;]x" the '#' belongs to the value.
 *  - "[name]": the name (trimmed) must be a valid variable name. A section
 *    given twice is RSTATE_EINVAL, even with the same contents.
 *  - "key = value" splits at the first '='; a value may contain '='. Keys are
 *    lower case, exactly as listed; an unknown key, a key given twice in a
 *    section, a key before the first section, and a key that does not apply
 *    to the type (min on a string, pattern on an integer) are RSTATE_EINVAL.
 *  - A NUL byte anywhere in the text is RSTATE_EINVAL at its line: values
 *    become C strings.
 *  - type and default are required (RSTATE_EINVAL at the section line).
 *  - Values by type, each the whole trimmed text or RSTATE_EINVAL at its line:
 *      float    strtod in the C locale whatever the program's locale (so
 *               "0.7", "1e-3", "-2"; hex floats too), finite;
 *      integer  decimal strtoll ("+5", "-3"; not "0x10", not "1.0"), within
 *               int64_t;
 *      boolean  true/false, yes/no, on/off, 1/0, any ASCII case;
 *      string, choice, module   the text itself (see quoting).
 *    min and max are parsed like the type's values (floats for a float
 *    variable, integers for an integer one); min_length and max_length are
 *    decimal byte counts (max_length 0 means no limit, as in
 *    rstate_constraints).
 *  - Quoting: a text value — default of a string, choice or module
 *    variable, description, pattern, namespace — written in double quotes
 *    has them removed, so "  padded  " keeps its spaces and "" is the empty
 *    string. Nothing inside is special: no escapes; ""a"" is "a" with its
 *    quotes. A value that does not both start and end with '"' is taken as
 *    is. type, numbers, booleans and lengths are never quoted.
 *  - choices: split at commas outside double quotes; each item is trimmed
 *    and loses its surrounding quotes like a text value, so "a, b", "" is the
 *    two choices `a, b` and the empty string. An empty unquoted item
 *    ("a,,b", a trailing comma, or an empty value) is RSTATE_EINVAL.
 *  - An empty value of a text key is the empty string: "pattern =" and
 *    "namespace =" set no constraint, "description =" no description.
 *  - Bytes that are not UTF-8 are passed on as they are; the library refuses
 *    them (a default: RSTATE_ETYPE; a description, pattern or choice:
 *    RSTATE_EINVAL), with the section's line.
 *  - An empty file (or one of comments only) defines nothing and is
 *    RSTATE_OK. More than 16 MiB is RSTATE_ELIMIT.
 *  - On success rstate_last_error() is left as it was, as for every
 *    successful call.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "types.h"

#define SCHEMA_MAX_BYTES ((size_t)16 << 20)

/* ---- keys and types ------------------------------------------------------ */

enum key {
  K_TYPE,
  K_DEFAULT,
  K_DESCRIPTION,
  K_MIN,
  K_MAX,
  K_MIN_LENGTH,
  K_MAX_LENGTH,
  K_PATTERN,
  K_CHOICES,
  K_NAMESPACE,
  K_COUNT
};

/* The keys after description are the constraint fields, named as the types'
 * table (types.c) names them: which apply to a type is asked of that table
 * (rstate__type_takes), as is what a type's values are (rstate__type_kind). */
static const char *const key_names[K_COUNT] = {"type",       "default",    "description", "min",     "max",
                                               "min_length", "max_length", "pattern",     "choices", "namespace"};

static bool key_applies(enum key k, rstate_type type) {
  return k == K_TYPE || k == K_DEFAULT || k == K_DESCRIPTION || rstate__type_takes(type, key_names[k]);
}

/* ---- the loader ---------------------------------------------------------- */

/* Bytes of the text (not NUL-terminated); p NULL: absent. */
typedef struct span {
  const char *p;
  size_t len;
  size_t line;
} span;

/* The section being read: its name (line: the header's) and its keys. */
typedef struct section {
  span name;
  span keys[K_COUNT];
} section;

typedef struct loader {
  rstate_store *s;
  const char *file; /* for messages */
  bool define;      /* pass 2: define; pass 1: validate only */
  locale_t c_numeric;
  /* pass 1: the section names seen so far (open addressing; p NULL: free) */
  span *names;
  size_t names_cap, names_n;
  /* per section: NUL-terminated copies of its values, and the choices */
  char *scratch;
  size_t scratch_cap;
  const char **choices;
  size_t choices_cap;
  /* pass 2: the variables this call newly defined, in order */
  span *made;
  size_t made_n, made_cap;
} loader;

/* ---- sentences ------------------------------------------------------------ */

#define SHOW 80

/* Sets "file:line: <message>" and returns code. */
__attribute__((format(printf, 4, 5))) static int fail(const loader *L, size_t line, int code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return rstate__err(code, "%s:%zu: %s", L->file, line, msg);
}

/* Prefixes the library's sentence (from the call that just failed) with
 * "file:line: " and returns code. */
static int fail_lib(const loader *L, size_t line, int code) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s", rstate_last_error());
  return rstate__err(code, "%s:%zu: %s", L->file, line, msg);
}

/* ---- small text helpers ----------------------------------------------------- */

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

static void trim(const char **p, size_t *len) {
  const char *s = *p;
  size_t n = *len;
  while (n && is_blank(s[0])) s++, n--;
  while (n && is_blank(s[n - 1])) n--;
  *p = s;
  *len = n;
}

/* Removes one pair of surrounding double quotes, if there is one. */
static void unquote(const char **p, size_t *len) {
  if (*len >= 2 && (*p)[0] == '"' && (*p)[*len - 1] == '"') {
    (*p)++;
    *len -= 2;
  }
}

static bool span_is(const char *p, size_t len, const char *word) {
  size_t n = strlen(word);
  return len == n && memcmp(p, word, n) == 0;
}

/* ASCII-only case-insensitive equality (no locale: "I" is "i" in Turkish too). */
static bool ascii_caseeq(const char *a, const char *b) {
  for (;; a++, b++) {
    char x = *a, y = *b;
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
    if (x != y) return false;
    if (!x) return true;
  }
}

/* ---- values ------------------------------------------------------------------ */

/* Each returns NULL when v parses, else why not ("is not a number"). v is
 * NUL-terminated, trimmed, possibly empty. */

static const char *parse_float(const loader *L, const char *v, double *out) {
  char *end;
  locale_t old = uselocale(L->c_numeric);
  double d = strtod(v, &end);
  uselocale(old);
  if (end == v || *end) return "is not a number";
  if (!isfinite(d)) return "is not a finite number";
  *out = d;
  return NULL;
}

static const char *parse_int(const char *v, int64_t *out) {
  char *end;
  errno = 0;
  long long i = strtoll(v, &end, 10);
  if (end == v || *end) return "is not an integer";
  if (errno == ERANGE) return "is outside the 64-bit integer range";
  *out = (int64_t)i;
  return NULL;
}

static const char *parse_bool(const char *v, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (ascii_caseeq(v, yes[i])) {
      *out = true;
      return NULL;
    }
    if (ascii_caseeq(v, no[i])) {
      *out = false;
      return NULL;
    }
  }
  return "is not a boolean (true, false, yes, no, on, off, 1 or 0)";
}

static const char *parse_length(const char *v, size_t *out) {
  char *end;
  if (!(v[0] >= '0' && v[0] <= '9')) return "is not a length (a whole number of bytes)";
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (*end) return "is not a length (a whole number of bytes)";
  if (errno == ERANGE || n > SIZE_MAX) return "is too large";
  *out = (size_t)n;
  return NULL;
}

/* A value of the given kind (a default; min and max with RSTATE_FLOAT or
 * RSTATE_INT): numbers and booleans parsed, text taken as it is (len bytes). */
static const char *parse_value(const loader *L, rstate_kind kind, const char *v, size_t len, rstate_value *out) {
  const char *why = NULL;
  switch (kind) {
    case RSTATE_FLOAT: {
      double d = 0;
      why = parse_float(L, v, &d);
      *out = rstate_float(d);
      break;
    }
    case RSTATE_INT: {
      int64_t i = 0;
      why = parse_int(v, &i);
      *out = rstate_int(i);
      break;
    }
    case RSTATE_BOOL: {
      bool b = false;
      why = parse_bool(v, &b);
      *out = rstate_bool(b);
      break;
    }
    case RSTATE_STRING:
    case RSTATE_NONE:
      *out = rstate_stringn(v, len);
      break;
  }
  return why;
}

/* Splits the choices value (NUL-terminated in the scratch buffer, so it is
 * rewritten in place) into L->choices. Returns RSTATE_OK, or fails at line. */
static int split_choices(loader *L, const char *var, char *v, size_t len, size_t line, size_t *n_out) {
  size_t n = 1;
  bool quoted = false;
  for (size_t i = 0; i < len; i++) {
    if (v[i] == '"')
      quoted = !quoted;
    else if (v[i] == ',' && !quoted)
      n++;
  }
  if (!RSTATE__GROW(L->choices, L->choices_cap, n, 8))
    return fail(L, line, RSTATE_ENOMEM, "%s: out of memory for %zu choices", var, n);
  size_t k = 0, start = 0;
  quoted = false;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && v[i] == '"') quoted = !quoted;
    if (i < len && (v[i] != ',' || quoted)) continue;
    const char *item = v + start;
    size_t ilen = i - start;
    trim(&item, &ilen);
    if (ilen == 0)
      return fail(L, line, RSTATE_EINVAL, "%s: choice %zu is empty (write \"\" for an empty choice)", var, k + 1);
    unquote(&item, &ilen);
    ((char *)item)[ilen] = '\0'; /* at or before the comma, the closing quote or the end */
    L->choices[k++] = item;
    start = i + 1;
  }
  *n_out = k;
  return RSTATE_OK;
}

/* ---- sections -------------------------------------------------------------- */

/* A section's values, ready to convert: NUL-terminated copies (text values
 * unquoted) in the loader's scratch buffer, and the keys given in line
 * order, so that the first bad key is the one reported. */
typedef struct values {
  const char *name;
  char *val[K_COUNT];
  size_t len[K_COUNT];
  int order[K_COUNT];
  int n_keys;
} values;

static bool key_is_text(enum key k, rstate_type type) {
  if (k == K_DESCRIPTION || k == K_PATTERN || k == K_NAMESPACE) return true;
  return k == K_DEFAULT && rstate__type_kind(type) == RSTATE_STRING;
}

static int apply(loader *L, const rstate_var_def *def, size_t line, const span *name);

/* The section's type: type and default must be given, and type must name one
 * in the types' table. */
static int section_type(const loader *L, const section *sec, rstate_type *out) {
  const span *nm = &sec->name, *t = &sec->keys[K_TYPE];
  const int nl = (int)nm->len; /* a valid name: at most 255 bytes of printable ASCII */
  char qb[SHOW];
  if (!t->p)
    return fail(L, nm->line, RSTATE_EINVAL,
                "%.*s: no type (add \"type = \" and float, integer, boolean, string, choice or module)", nl, nm->p);
  if (!sec->keys[K_DEFAULT].p) return fail(L, nm->line, RSTATE_EINVAL, "%.*s: no default value", nl, nm->p);
  *out = rstate__type_named(t->p, t->len);
  if (!*out)
    return fail(L, t->line, RSTATE_EINVAL,
                "%.*s: type \"%s\" is not one of float, integer, boolean, string, choice, module", nl, nm->p,
                rstate__quote_bytes(qb, sizeof qb, t->p, t->len));
  return RSTATE_OK;
}

/* Copies the section's name and values into the scratch buffer (see values). */
static int section_values(loader *L, const section *sec, rstate_type type, values *out) {
  const span *nm = &sec->name;
  size_t need = nm->len + 1;
  for (int k = 0; k < K_COUNT; k++)
    if (sec->keys[k].p) need += sec->keys[k].len + 1;
  if (!RSTATE__GROW(L->scratch, L->scratch_cap, need, 256))
    return fail(L, nm->line, RSTATE_ENOMEM, "%.*s: out of memory reading the section", (int)nm->len, nm->p);
  char *o = L->scratch;
  memset(out, 0, sizeof *out);
  memcpy(o, nm->p, nm->len);
  o[nm->len] = '\0';
  out->name = o;
  o += nm->len + 1;
  for (int k = 0; k < K_COUNT; k++) {
    if (!sec->keys[k].p) continue;
    const char *p = sec->keys[k].p;
    size_t n = sec->keys[k].len;
    if (key_is_text((enum key)k, type)) unquote(&p, &n);
    memcpy(o, p, n);
    o[n] = '\0';
    out->val[k] = o;
    out->len[k] = n;
    o += n + 1;
    int j = out->n_keys++;
    while (j > 0 && sec->keys[out->order[j - 1]].line > sec->keys[k].line) {
      out->order[j] = out->order[j - 1];
      j--;
    }
    out->order[j] = k;
  }
  return RSTATE_OK;
}

/* Converts the values into the definition *def (and its constraints *c),
 * key by key in line order; fails at the line of the first key that does not
 * apply to the type or does not parse. */
static int section_def(loader *L, const section *sec, rstate_type type, values *vs, rstate_var_def *def,
                       rstate_constraints *c) {
  const rstate_kind kind = rstate__type_kind(type);
  char qb[SHOW];
  memset(c, 0, sizeof *c);
  memset(def, 0, sizeof *def);
  def->name = vs->name;
  def->type = type;
  def->constraints = c;
  for (int i = 0; i < vs->n_keys; i++) {
    int k = vs->order[i];
    size_t line = sec->keys[k].line;
    const char *v = vs->val[k], *why = NULL;
    if (!key_applies((enum key)k, type))
      return fail(L, line, RSTATE_EINVAL, "%s: %s does not apply to %s variable", vs->name, key_names[k],
                  rstate__type_a_name(type));
    switch ((enum key)k) {
      case K_TYPE:
      case K_COUNT:
        break;
      case K_DEFAULT:
        why = parse_value(L, kind, v, vs->len[k], &def->initial);
        break;
      case K_MIN:
        why = parse_value(L, kind, v, vs->len[k], &c->min);
        break;
      case K_MAX:
        why = parse_value(L, kind, v, vs->len[k], &c->max);
        break;
      case K_MIN_LENGTH:
        why = parse_length(v, &c->min_length);
        break;
      case K_MAX_LENGTH:
        why = parse_length(v, &c->max_length);
        break;
      case K_PATTERN:
        c->pattern = v;
        break;
      case K_NAMESPACE:
        c->module_namespace = v;
        break;
      case K_DESCRIPTION:
        def->description = v;
        break;
      case K_CHOICES: {
        int rc = split_choices(L, vs->name, vs->val[k], vs->len[k], line, &c->n_choices);
        if (rc != RSTATE_OK) return rc;
        c->choices = L->choices;
        break;
      }
    }
    if (why)
      return fail(L, line, RSTATE_EINVAL, "%s: %s \"%s\" %s", vs->name, key_names[k],
                  rstate__quote_bytes(qb, sizeof qb, v, vs->len[k]), why);
  }
  return RSTATE_OK;
}

/* A whole section: its type, its values, its definition, then validated
 * (pass 1) or defined (pass 2). */
static int finish_section(loader *L, const section *sec) {
  rstate_type type;
  values vs;
  rstate_var_def def;
  rstate_constraints c;
  int rc = section_type(L, sec, &type);
  if (rc == RSTATE_OK) rc = section_values(L, sec, type, &vs);
  if (rc == RSTATE_OK) rc = section_def(L, sec, type, &vs, &def, &c);
  return rc == RSTATE_OK ? apply(L, &def, sec->name.line, &sec->name) : rc;
}

/* Pass 1: the library's own validation, with nothing defined. Pass 2:
 * rstate_define, remembering the variables that were new. */
static int apply(loader *L, const rstate_var_def *def, size_t line, const span *name) {
  if (!L->define) {
    rstate__spec *spec = NULL;
    int rc = rstate__spec_new(&spec, def);
    if (rc != RSTATE_OK) return fail_lib(L, line, rc);
    rstate__spec_free(spec);
    return RSTATE_OK;
  }
  /* room first: a defined variable is always tracked */
  if (!RSTATE__GROW(L->made, L->made_cap, L->made_n + 1, 16))
    return fail(L, line, RSTATE_ENOMEM, "%s: out of memory", def->name);
  rstate_var_info info;
  int rc = rstate_info(L->s, def->name, &info);
  if (rc != RSTATE_OK && rc != RSTATE_ENOTFOUND) return fail_lib(L, line, rc);
  bool existed = rc == RSTATE_OK;
  rc = rstate_define(L->s, def);
  if (rc != RSTATE_OK) return fail_lib(L, line, rc);
  if (!existed) L->made[L->made_n++] = *name;
  return RSTATE_OK;
}

/* Undefines, last first, the variables this call defined; keeps the
 * failure's sentence, noting any that could not be undone. */
static void undo(loader *L, int code) {
  char msg[512], buf[RSTATE_NAME_MAX + 1];
  size_t stuck = 0;
  snprintf(msg, sizeof msg, "%s", rstate_last_error());
  for (size_t i = L->made_n; i-- > 0;) {
    memcpy(buf, L->made[i].p, L->made[i].len);
    buf[L->made[i].len] = '\0';
    int rc = rstate_undefine(L->s, buf);
    if (rc != RSTATE_OK && rc != RSTATE_ENOTFOUND) stuck++;
  }
  L->made_n = 0;
  if (stuck)
    rstate__err(code, "%s (and %zu variable%s defined before it could not be undefined again)", msg, stuck,
                stuck == 1 ? "" : "s");
  else
    rstate__err(code, "%s", msg);
}

/* ---- lines -------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *p, size_t n) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211u;
  return h;
}

/* Pass 1: a section name seen before is RSTATE_EINVAL. */
static int name_add(loader *L, const span *name) {
  if ((L->names_n + 1) * 2 > L->names_cap) {
    size_t cap = L->names_cap ? L->names_cap * 2 : 64;
    span *t = calloc(cap, sizeof *t);
    if (!t) return fail(L, name->line, RSTATE_ENOMEM, "out of memory reading the section names");
    for (size_t i = 0; i < L->names_cap; i++) {
      if (!L->names[i].p) continue;
      size_t j = (size_t)hash_bytes(L->names[i].p, L->names[i].len) & (cap - 1);
      while (t[j].p) j = (j + 1) & (cap - 1);
      t[j] = L->names[i];
    }
    free(L->names);
    L->names = t;
    L->names_cap = cap;
  }
  size_t mask = L->names_cap - 1, j = (size_t)hash_bytes(name->p, name->len) & mask;
  for (; L->names[j].p; j = (j + 1) & mask) {
    const span *o = &L->names[j];
    if (o->len == name->len && memcmp(o->p, name->p, name->len) == 0)
      return fail(L, name->line, RSTATE_EINVAL, "section [%.*s] is given twice (first at line %zu)", (int)name->len,
                  name->p, o->line);
  }
  L->names[j] = *name;
  L->names_n++;
  return RSTATE_OK;
}

/* A "[name]" line (p, n trimmed, p[0] == '['). */
static int header_line(loader *L, section *sec, bool *in, const char *p, size_t n, size_t line) {
  char qb[SHOW], nb[RSTATE_NAME_MAX + 1];
  int rc;
  if (*in) {
    rc = finish_section(L, sec);
    if (rc != RSTATE_OK) return rc;
    *in = false;
  }
  if (n < 2 || p[n - 1] != ']')
    return fail(L, line, RSTATE_EINVAL, "section header \"%s\" does not end with ']'",
                rstate__quote_bytes(qb, sizeof qb, p, n));
  const char *name = p + 1;
  size_t len = n - 2;
  trim(&name, &len);
  if (len == 0) return fail(L, line, RSTATE_EINVAL, "section header \"[]\" names no variable");
  if (len > RSTATE_NAME_MAX)
    return fail(L, line, RSTATE_EINVAL, "section name \"%s\" is longer than %d bytes",
                rstate__quote_bytes(qb, 40, name, len), RSTATE_NAME_MAX);
  memcpy(nb, name, len);
  nb[len] = '\0';
  rc = rstate__name_check(nb);
  if (rc != RSTATE_OK) return fail_lib(L, line, rc);
  memset(sec, 0, sizeof *sec);
  sec->name = (span){name, len, line};
  if (!L->define) {
    rc = name_add(L, &sec->name);
    if (rc != RSTATE_OK) return rc;
  }
  *in = true;
  return RSTATE_OK;
}

/* One line: p[0..n) without its "\n". */
static int do_line(loader *L, section *sec, bool *in, const char *p, size_t n, size_t line) {
  char qb[SHOW];
  const char *nul = memchr(p, '\0', n);
  if (nul) return fail(L, line, RSTATE_EINVAL, "the line holds a NUL byte (column %zu)", (size_t)(nul - p) + 1);
  trim(&p, &n);
  if (n == 0 || p[0] == '#' || p[0] == ';') return RSTATE_OK;
  if (p[0] == '[') return header_line(L, sec, in, p, n, line);
  const char *eq = memchr(p, '=', n);
  if (!eq) return fail(L, line, RSTATE_EINVAL, "line is neither [section], key = value, nor a comment");
  const char *key = p, *v = eq + 1;
  size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
  trim(&key, &klen);
  trim(&v, &vlen);
  if (klen == 0) return fail(L, line, RSTATE_EINVAL, "no key before '='");
  if (!*in)
    return fail(L, line, RSTATE_EINVAL, "key \"%s\" comes before the first [section]",
                rstate__quote_bytes(qb, sizeof qb, key, klen));
  int k = 0;
  while (k < K_COUNT && !span_is(key, klen, key_names[k])) k++;
  if (k == K_COUNT)
    return fail(L, line, RSTATE_EINVAL, "unknown key \"%s\" in [%.*s]", rstate__quote_bytes(qb, sizeof qb, key, klen),
                (int)sec->name.len, sec->name.p);
  if (sec->keys[k].p)
    return fail(L, line, RSTATE_EINVAL, "%.*s: %s is given twice (first at line %zu)", (int)sec->name.len, sec->name.p,
                key_names[k], sec->keys[k].line);
  sec->keys[k] = (span){v, vlen, line};
  return RSTATE_OK;
}

/* One pass over the whole text. */
static int run(loader *L, const char *text, size_t len) {
  section sec;
  bool in = false;
  size_t pos = 0, line = 0;
  memset(&sec, 0, sizeof sec);
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3;
  while (pos < len) {
    const char *p = text + pos, *nl = memchr(p, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - p) : len - pos;
    pos += n + (nl ? 1 : 0);
    int rc = do_line(L, &sec, &in, p, n, ++line);
    if (rc != RSTATE_OK) return rc;
  }
  return in ? finish_section(L, &sec) : RSTATE_OK;
}

int rstate__schema_load_buffer(rstate_store *s, const char *text, size_t len, const char *name_for_messages) {
  const char *file = name_for_messages ? name_for_messages : "schema";
  if (!s) return rstate__err(RSTATE_EINVAL, "rstate_load_schema: store is NULL");
  if (!text && len) return rstate__err(RSTATE_EINVAL, "rstate_load_schema: %s: text is NULL", file);
  if (len > SCHEMA_MAX_BYTES)
    return rstate__err(RSTATE_ELIMIT, "%s: the schema is %zu bytes, above the limit of %zu bytes (16 MiB)", file, len,
                       SCHEMA_MAX_BYTES);
  char saved[512];
  snprintf(saved, sizeof saved, "%s", rstate_last_error());

  loader L;
  memset(&L, 0, sizeof L);
  L.s = s;
  L.file = file;
  L.c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (!L.c_numeric) return rstate__err(RSTATE_ENOMEM, "%s: out of memory (the C locale for numbers)", file);
  int rc = run(&L, text ? text : "", len);
  if (rc == RSTATE_OK) {
    L.define = true;
    rc = run(&L, text ? text : "", len);
    if (rc != RSTATE_OK) undo(&L, rc);
  }
  freelocale(L.c_numeric);
  free(L.names);
  free(L.scratch);
  free(L.choices);
  free(L.made);
  if (rc == RSTATE_OK) rstate__err(RSTATE_OK, "%s", saved);
  return rc;
}

/* ---- files -------------------------------------------------------------------- */

/* Reads the whole file into *out (malloc'd, *len bytes): RSTATE_EIO,
 * RSTATE_ELIMIT (over 16 MiB), RSTATE_ENOMEM. */
static int read_file(const char *path, char **out, size_t *out_len) {
  int fd, rc = RSTATE_OK;
  *out = NULL;
  *out_len = 0;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return rstate__err(RSTATE_EIO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 64 * 1024, len = 0;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if ((unsigned long long)st.st_size > SCHEMA_MAX_BYTES) {
      close(fd);
      return rstate__err(RSTATE_ELIMIT, "%s: the file is %lld bytes, above the limit of %zu bytes (16 MiB)", path,
                         (long long)st.st_size, SCHEMA_MAX_BYTES);
    }
    cap = (size_t)st.st_size + 1; /* + 1: the read that sees the end needs room */
  }
  char *buf = malloc(cap);
  if (!buf) {
    close(fd);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory reading the file", path);
  }
  for (;;) {
    if (len == cap) {
      if (cap > SCHEMA_MAX_BYTES) {
        rc = rstate__err(RSTATE_ELIMIT, "%s: the file is more than %zu bytes (16 MiB), the limit", path,
                         SCHEMA_MAX_BYTES);
        break;
      }
      size_t ncap = cap * 2 > SCHEMA_MAX_BYTES + 1 ? SCHEMA_MAX_BYTES + 1 : cap * 2;
      char *b = realloc(buf, ncap);
      if (!b) {
        rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory reading the file", path);
        break;
      }
      buf = b;
      cap = ncap;
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = rstate__err(RSTATE_EIO, "%s: cannot read: %s", path, strerror(errno));
      break;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  if (rc != RSTATE_OK) {
    free(buf);
    return rc;
  }
  *out = buf;
  *out_len = len;
  return RSTATE_OK;
}

int rstate_load_schema(rstate_store *s, const char *path) {
  if (!s) return rstate__err(RSTATE_EINVAL, "rstate_load_schema: store is NULL");
  if (!path) return rstate__err(RSTATE_EINVAL, "rstate_load_schema: path is NULL");
  char *text;
  size_t len;
  int rc = read_file(path, &text, &len);
  if (rc != RSTATE_OK) return rc;
  rc = rstate__schema_load_buffer(s, text, len, path);
  free(text);
  return rc;
}
