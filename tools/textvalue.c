/*
 * textvalue.c — values as text: read by the variable's type (the command
 * line's arguments), written back for people (get, list, watch). See
 * textvalue.h.
 */
#include "textvalue.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int tv_parse_type(const char *s, rstate_type *out) {
  for (int t = RSTATE_TYPE_FLOAT; t <= RSTATE_TYPE_MODULE; t++) {
    if (strcmp(s, rstate_type_name((rstate_type)t)) == 0) {
      *out = (rstate_type)t;
      return 0;
    }
  }
  return -1;
}

int tv_parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

/* strtod over the whole text, no leading blank; errno ERANGE on overflow is
 * let through (the value is then ±HUGE_VAL, which the library refuses with
 * its own sentence); underflow to a subnormal is a fine value. */
static int parse_double(const char *s, double *out) {
  if (!*s || *s == ' ' || *s == '\t' || *s == '\n') return -1;
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  if (end == s || *end) return -1;
  *out = d;
  return 0;
}

int tv_parse(rstate_type type, const char *name, const char *text, rstate_value *out, char *err, size_t errlen) {
  switch (type) {
    case RSTATE_TYPE_INTEGER: {
      const char *p = text;
      if (*p == '-' || *p == '+') p++;
      bool digits = *p != '\0';
      for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') digits = false;
      if (digits) {
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (errno == ERANGE) {
          snprintf(err, errlen, "%s: %s is outside the range of a 64-bit integer", name, text);
          return -1;
        }
        *out = rstate_int((int64_t)v);
        return 0;
      }
      double d;
      if (parse_double(text, &d) == 0) {
        *out = rstate_float(d);
        return 0;
      }
      snprintf(err, errlen, "%s: \"%s\" is not an integer", name, text);
      return -1;
    }
    case RSTATE_TYPE_FLOAT: {
      double d;
      if (parse_double(text, &d) == 0) {
        *out = rstate_float(d);
        return 0;
      }
      snprintf(err, errlen, "%s: \"%s\" is not a number", name, text);
      return -1;
    }
    case RSTATE_TYPE_BOOLEAN: {
      bool b;
      if (tv_parse_bool(text, &b) == 0) {
        *out = rstate_bool(b);
        return 0;
      }
      snprintf(err, errlen, "%s: \"%s\" is not a boolean (true/false, yes/no, on/off, 1/0)", name, text);
      return -1;
    }
    case RSTATE_TYPE_STRING:
    case RSTATE_TYPE_CHOICE:
    case RSTATE_TYPE_MODULE:
      *out = rstate_string(text);
      return 0;
  }
  snprintf(err, errlen, "%s: unknown type %d", name, (int)type);
  return -1;
}

void tv_format_float(double f, char buf[40]) {
  if (!isfinite(f)) {
    snprintf(buf, 40, "%s", isnan(f) ? "nan" : f > 0 ? "inf" : "-inf");
    return;
  }
  /* an integral value under 10^15 (counters, set-points): "%.15g" would
   * print its digits, which read back exactly (below 2^53), then ".0" */
  if (f > -1e15 && f < 1e15 && f == (double)(int64_t)f) {
    uint64_t u = (uint64_t)(int64_t)fabs(f);
    char digits[20];
    size_t n = 0;
    do {
      digits[n++] = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    char *p = buf;
    if (signbit(f)) *p++ = '-'; /* -0.0 too */
    while (n) *p++ = digits[--n];
    memcpy(p, ".0", 3);
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, 40, "%.*g", prec, f);
    if (strtod(buf, NULL) == f) break;
  }
  if (!strpbrk(buf, ".eE")) strcat(buf, ".0");
}

int tv_escape(FILE *f, const char *s, size_t len, bool quoted) {
  if (quoted && putc('"', f) == EOF) return -1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    int r;
    switch (c) {
      case '\\': r = fputs("\\\\", f); break;
      case '\n': r = fputs("\\n", f); break;
      case '\r': r = fputs("\\r", f); break;
      case '\t': r = fputs("\\t", f); break;
      default:
        if (c == '"' && quoted)
          r = fputs("\\\"", f);
        else
          r = (c < 0x20 || c == 0x7f) ? fprintf(f, "\\x%02x", c) : putc(c, f);
        break;
    }
    if (r < 0) return -1;
  }
  return quoted && putc('"', f) == EOF ? -1 : 0;
}

int tv_print(FILE *f, const rstate_value *v, tv_style style) {
  char buf[40];
  switch (v->kind) {
    case RSTATE_NONE: return fputs("-", f);
    case RSTATE_FLOAT: tv_format_float(v->u.f, buf); return fputs(buf, f);
    case RSTATE_INT: return fprintf(f, "%" PRId64, v->u.i);
    case RSTATE_BOOL: return fputs(v->u.b ? "true" : "false", f);
    case RSTATE_STRING:
      if (style == TV_QUOTED) return tv_escape(f, v->u.s.ptr, v->u.s.len, true);
      return fwrite(v->u.s.ptr, 1, v->u.s.len, f) == v->u.s.len ? 0 : -1;
  }
  return -1;
}

char *tv_to_string(const rstate_value *v, tv_style style) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  int r = tv_print(f, v, style);
  if (fclose(f) != 0 || r < 0) {
    free(buf);
    return NULL;
  }
  return buf;
}
