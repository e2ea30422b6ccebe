/*
 * jsonin.c — the JSON bodies of rstated's HTTP API, decoded into values.
 * A recursive-descent reader over a byte span with a depth bound; strings
 * are decoded into one arena and pointed at once the parse is done. See
 * jsonin.h.
 */
#include "jsonin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
  const char *p, *end, *start;
  jin_doc *d;
  char *err;
  size_t errlen;
  int code;
} reader;

static int fail(reader *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(reader *r, int code, const char *fmt, ...) {
  if (r->code) return r->code;
  r->code = code;
  va_list ap;
  va_start(ap, fmt);
  if (r->errlen) vsnprintf(r->err, r->errlen, fmt, ap);
  va_end(ap);
  return code;
}

static size_t at(const reader *r) { return (size_t)(r->p - r->start); }

static void skip_ws(reader *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int arena_put(reader *r, const char *s, size_t n) {
  jin_doc *d = r->d;
  if (d->arena_len + n + 1 > d->arena_cap) {
    size_t cap = d->arena_cap ? d->arena_cap : 64;
    while (cap < d->arena_len + n + 1) cap *= 2;
    char *a = realloc(d->arena, cap);
    if (!a) return fail(r, JIN_NOMEM, "body: out of memory");
    d->arena = a;
    d->arena_cap = cap;
  }
  memcpy(d->arena + d->arena_len, s, n);
  d->arena_len += n;
  return 0;
}

static int put_utf8(reader *r, uint32_t c) {
  char b[4];
  size_t n;
  if (c < 0x80) {
    b[0] = (char)c;
    n = 1;
  } else if (c < 0x800) {
    b[0] = (char)(0xc0 | c >> 6);
    b[1] = (char)(0x80 | (c & 0x3f));
    n = 2;
  } else if (c < 0x10000) {
    b[0] = (char)(0xe0 | c >> 12);
    b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
    b[2] = (char)(0x80 | (c & 0x3f));
    n = 3;
  } else {
    b[0] = (char)(0xf0 | c >> 18);
    b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    b[3] = (char)(0x80 | (c & 0x3f));
    n = 4;
  }
  return arena_put(r, b, n);
}

static int hex4(reader *r, uint32_t *out) {
  if (r->end - r->p < 4) return fail(r, JIN_SYNTAX, "body: a \\u escape needs four hex digits at byte %zu", at(r));
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *r->p++;
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return fail(r, JIN_SYNTAX, "body: a \\u escape needs four hex digits at byte %zu", at(r) - 1);
  }
  *out = v;
  return 0;
}

/* A string at r->p (on the opening quote): decoded into the arena, NUL
 * ended; *off gets its offset, *len its length. Raw bytes are copied (the
 * library checks UTF-8 of values; names are checked as names). */
static int string(reader *r, size_t *off, size_t *len) {
  r->p++;
  *off = r->d->arena_len;
  for (;;) {
    const char *q = r->p;
    while (q < r->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
    if (q > r->p && arena_put(r, r->p, (size_t)(q - r->p))) return r->code;
    r->p = q;
    if (r->p >= r->end) return fail(r, JIN_SYNTAX, "body: a string is not closed (byte %zu)", at(r));
    char c = *r->p;
    if (c == '"') {
      r->p++;
      break;
    }
    if (c != '\\') return fail(r, JIN_SYNTAX, "body: a control character inside a string at byte %zu", at(r));
    if (++r->p >= r->end) return fail(r, JIN_SYNTAX, "body: a string is not closed (byte %zu)", at(r));
    c = *r->p++;
    const char *simple = NULL;
    switch (c) {
      case '"': simple = "\""; break;
      case '\\': simple = "\\"; break;
      case '/': simple = "/"; break;
      case 'b': simple = "\b"; break;
      case 'f': simple = "\f"; break;
      case 'n': simple = "\n"; break;
      case 'r': simple = "\r"; break;
      case 't': simple = "\t"; break;
      case 'u': {
        uint32_t cp;
        if (hex4(r, &cp)) return r->code;
        if (cp >= 0xdc00 && cp <= 0xdfff)
          return fail(r, JIN_SYNTAX, "body: a lone low surrogate \\u%04x at byte %zu", (unsigned)cp, at(r) - 6);
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t lo;
          if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
            return fail(r, JIN_SYNTAX, "body: a high surrogate without its pair at byte %zu", at(r) - 6);
          r->p += 2;
          if (hex4(r, &lo)) return r->code;
          if (lo < 0xdc00 || lo > 0xdfff)
            return fail(r, JIN_SYNTAX, "body: a high surrogate without its pair at byte %zu", at(r) - 12);
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0) return fail(r, JIN_KIND, "body: a string holds a NUL character (\\u0000), which no value may hold");
        if (put_utf8(r, cp)) return r->code;
        continue;
      }
      default: return fail(r, JIN_SYNTAX, "body: unknown escape \\%c at byte %zu", c, at(r) - 2);
    }
    if (arena_put(r, simple, 1)) return r->code;
  }
  *len = r->d->arena_len - *off;
  return arena_put(r, "", 1) ? r->code : 0; /* the NUL stays: the next string starts after it */
}

static bool digit(char c) { return c >= '0' && c <= '9'; }

/* A number per RFC 8259's grammar. */
static int number(reader *r, rstate_value *v) {
  const char *s = r->p, *q = r->p;
  bool integral = true;
  if (q < r->end && *q == '-') q++;
  if (q >= r->end || !digit(*q)) return fail(r, JIN_SYNTAX, "body: expected a value at byte %zu", at(r));
  if (*q == '0') q++;
  else while (q < r->end && digit(*q)) q++;
  if (q < r->end && *q == '.') {
    integral = false;
    q++;
    if (q >= r->end || !digit(*q)) return fail(r, JIN_SYNTAX, "body: a digit must follow '.' at byte %zu", (size_t)(q - r->start));
    while (q < r->end && digit(*q)) q++;
  }
  if (q < r->end && (*q == 'e' || *q == 'E')) {
    integral = false;
    q++;
    if (q < r->end && (*q == '+' || *q == '-')) q++;
    if (q >= r->end || !digit(*q)) return fail(r, JIN_SYNTAX, "body: an exponent needs digits at byte %zu", (size_t)(q - r->start));
    while (q < r->end && digit(*q)) q++;
  }
  char buf[400];
  size_t n = (size_t)(q - s);
  if (n >= sizeof buf) return fail(r, JIN_SYNTAX, "body: a number of %zu characters at byte %zu is too long", n, at(r));
  memcpy(buf, s, n);
  buf[n] = '\0';
  r->p = q;
  if (integral) {
    errno = 0;
    long long i = strtoll(buf, NULL, 10);
    if (errno != ERANGE) {
      v->kind = RSTATE_INT;
      v->u.i = (int64_t)i;
      return 0;
    }
  }
  v->kind = RSTATE_FLOAT;
  v->u.f = strtod(buf, NULL); /* an overflow gives ±HUGE_VAL, which the library refuses as non-finite */
  return 0;
}

static bool word(reader *r, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0) return false;
  r->p += n;
  return true;
}

/* Skips any JSON value (to report a kind error only once the body is known
 * to be well formed). */
static int skip_value(reader *r, int depth);

static int skip_container(reader *r, int depth, char close) {
  if (depth >= JIN_MAX_DEPTH) return fail(r, JIN_SYNTAX, "body: nested deeper than %d at byte %zu", JIN_MAX_DEPTH, at(r));
  r->p++;
  skip_ws(r);
  if (r->p < r->end && *r->p == close) {
    r->p++;
    return 0;
  }
  for (;;) {
    skip_ws(r);
    if (close == '}') {
      size_t off, len;
      if (r->p >= r->end || *r->p != '"') return fail(r, JIN_SYNTAX, "body: expected a member name at byte %zu", at(r));
      if (string(r, &off, &len)) return r->code;
      r->d->arena_len = off;
      skip_ws(r);
      if (r->p >= r->end || *r->p != ':') return fail(r, JIN_SYNTAX, "body: expected ':' at byte %zu", at(r));
      r->p++;
    }
    if (skip_value(r, depth + 1)) return r->code;
    skip_ws(r);
    if (r->p < r->end && *r->p == ',') {
      r->p++;
      continue;
    }
    if (r->p < r->end && *r->p == close) {
      r->p++;
      return 0;
    }
    return fail(r, JIN_SYNTAX, "body: expected ',' or '%c' at byte %zu", close, at(r));
  }
}

static int skip_value(reader *r, int depth) {
  skip_ws(r);
  if (r->p >= r->end) return fail(r, JIN_SYNTAX, "body: expected a value at byte %zu", at(r));
  char c = *r->p;
  if (c == '{') return skip_container(r, depth, '}');
  if (c == '[') return skip_container(r, depth, ']');
  if (c == '"') {
    size_t off, len;
    if (string(r, &off, &len)) return r->code;
    r->d->arena_len = off;
    return 0;
  }
  if (word(r, "true") || word(r, "false") || word(r, "null")) return 0;
  rstate_value v;
  return number(r, &v);
}

/* One value where a variable's value belongs. *kind_err gets a sentence
 * (and the value is skipped) for null, arrays and objects. */
static int value(reader *r, rstate_value *v, size_t *str_off, const char **kind_err) {
  skip_ws(r);
  *str_off = SIZE_MAX;
  *kind_err = NULL;
  v->kind = RSTATE_NONE;
  if (r->p >= r->end) return fail(r, JIN_SYNTAX, "body: expected a value at byte %zu", at(r));
  char c = *r->p;
  if (c == '"') {
    size_t len;
    if (string(r, str_off, &len)) return r->code;
    v->kind = RSTATE_STRING;
    v->u.s.len = len;
    return 0;
  }
  bool t = word(r, "true");
  if (t || word(r, "false")) {
    v->kind = RSTATE_BOOL;
    v->u.b = t;
    return 0;
  }
  if (c == '{' || c == '[' || c == 'n') {
    *kind_err = c == '{' ? "an object is not a value" : c == '[' ? "an array is not a value" : "null is not a value";
    return skip_value(r, 0);
  }
  return number(r, v);
}

static int add_item(reader *r, size_t *cap) {
  jin_doc *d = r->d;
  if (d->n == *cap) {
    size_t nc = *cap ? *cap * 2 : 8;
    rstate_assign *it = realloc(d->items, nc * sizeof *it);
    if (!it) return fail(r, JIN_NOMEM, "body: out of memory");
    d->items = it;
    *cap = nc;
  }
  memset(&d->items[d->n], 0, sizeof d->items[0]);
  d->n++;
  return 0;
}

/* Offsets were kept while the arena moved; point into it now. */
static void fix_pointers(jin_doc *d, const size_t *name_off, const size_t *str_off) {
  for (size_t i = 0; i < d->n; i++) {
    d->items[i].name = name_off && name_off[i] != SIZE_MAX ? d->arena + name_off[i] : NULL;
    if (d->items[i].value.kind == RSTATE_STRING) d->items[i].value.u.s.ptr = d->arena + str_off[i];
  }
}

static void init(reader *r, jin_doc *d, const char *p, size_t n, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  d->failed = SIZE_MAX;
  *r = (reader){.p = p, .end = p + n, .start = p, .d = d, .err = err, .errlen = errlen};
  if (errlen) err[0] = '\0';
}

static int trailing(reader *r) {
  skip_ws(r);
  if (r->p != r->end) return fail(r, JIN_SYNTAX, "body: unexpected text after the JSON value at byte %zu", at(r));
  return 0;
}

int jin_parse_value(const char *p, size_t n, jin_doc *out, char *err, size_t errlen) {
  reader r;
  init(&r, out, p, n, err, errlen);
  size_t cap = 0, off;
  const char *kind_err;
  if (add_item(&r, &cap) || value(&r, &out->items[0].value, &off, &kind_err) || trailing(&r)) goto bad;
  if (kind_err) {
    fail(&r, JIN_KIND, "body: %s", kind_err);
    out->failed = 0;
    goto bad;
  }
  fix_pointers(out, NULL, &off);
  return JIN_OK;
bad:
  return r.code;
}

int jin_parse_object(const char *p, size_t n, jin_doc *out, char *err, size_t errlen) {
  reader r;
  init(&r, out, p, n, err, errlen);
  size_t cap = 0, offcap = 0;
  size_t *name_off = NULL, *str_off = NULL;
  const char *first_kind_err = NULL;
  size_t kind_at = SIZE_MAX;
  skip_ws(&r);
  if (r.p >= r.end || *r.p != '{') {
    if (r.p < r.end && (*r.p == '[' || *r.p == '"' || *r.p == 't' || *r.p == 'f' || *r.p == 'n' || *r.p == '-' || digit(*r.p))) {
      if (skip_value(&r, 0) || trailing(&r)) goto bad;
      fail(&r, JIN_KIND, "body: expected an object of name: value pairs");
      goto bad;
    }
    fail(&r, JIN_SYNTAX, "body: expected an object at byte %zu", at(&r));
    goto bad;
  }
  r.p++;
  skip_ws(&r);
  if (r.p < r.end && *r.p == '}') r.p++;
  else
    for (;;) {
      skip_ws(&r);
      if (r.p >= r.end || *r.p != '"') {
        fail(&r, JIN_SYNTAX, "body: expected a member name at byte %zu", at(&r));
        goto bad;
      }
      if (add_item(&r, &cap)) goto bad;
      if (out->n > offcap) {
        size_t nc = offcap ? offcap * 2 : 8;
        size_t *a = realloc(name_off, nc * sizeof *a), *b = a ? realloc(str_off, nc * sizeof *b) : NULL;
        if (a) name_off = a;
        if (!b) {
          fail(&r, JIN_NOMEM, "body: out of memory");
          goto bad;
        }
        str_off = b;
        offcap = nc;
      }
      size_t i = out->n - 1, len;
      if (string(&r, &name_off[i], &len)) goto bad;
      if (strlen(out->arena + name_off[i]) != len && !first_kind_err) {
        first_kind_err = "a name holds a NUL character";
        kind_at = i;
      }
      skip_ws(&r);
      if (r.p >= r.end || *r.p != ':') {
        fail(&r, JIN_SYNTAX, "body: expected ':' at byte %zu", at(&r));
        goto bad;
      }
      r.p++;
      const char *kind_err;
      if (value(&r, &out->items[i].value, &str_off[i], &kind_err)) goto bad;
      if (kind_err && !first_kind_err) {
        first_kind_err = kind_err;
        kind_at = i;
      }
      skip_ws(&r);
      if (r.p < r.end && *r.p == ',') {
        r.p++;
        continue;
      }
      if (r.p < r.end && *r.p == '}') {
        r.p++;
        break;
      }
      fail(&r, JIN_SYNTAX, "body: expected ',' or '}' at byte %zu", at(&r));
      goto bad;
    }
  if (trailing(&r)) goto bad;
  fix_pointers(out, name_off, str_off);
  if (first_kind_err) {
    out->failed = kind_at;
    fail(&r, JIN_KIND, "%s: %s", out->items[kind_at].name, first_kind_err);
    goto bad;
  }
  free(name_off);
  free(str_off);
  return JIN_OK;
bad:
  free(name_off);
  free(str_off);
  return r.code;
}

void jin_free(jin_doc *d) {
  free(d->items);
  free(d->arena);
  memset(d, 0, sizeof *d);
  d->failed = SIZE_MAX;
}
