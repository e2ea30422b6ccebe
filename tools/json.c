/*
 * json.c — JSON text of strings and values, for `rstate watch --json`.
 */
#include "json.h"

#include <inttypes.h>

#include "textvalue.h"

int json_string(FILE *f, const char *s, size_t len) {
  if (!s) return fputs("null", f) < 0 ? -1 : 0;
  if (putc('"', f) == EOF) return -1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    int r;
    switch (c) {
      case '"': r = fputs("\\\"", f); break;
      case '\\': r = fputs("\\\\", f); break;
      case '\n': r = fputs("\\n", f); break;
      case '\r': r = fputs("\\r", f); break;
      case '\t': r = fputs("\\t", f); break;
      case '\b': r = fputs("\\b", f); break;
      case '\f': r = fputs("\\f", f); break;
      default: r = c < 0x20 ? fprintf(f, "\\u%04x", c) : putc(c, f); break;
    }
    if (r < 0) return -1;
  }
  return putc('"', f) == EOF ? -1 : 0;
}

int json_value(FILE *f, const rstate_value *v) {
  char buf[40];
  int r = -1;
  switch (v->kind) {
    case RSTATE_NONE: r = fputs("null", f); break;
    case RSTATE_FLOAT: tv_format_float(v->u.f, buf); r = fputs(buf, f); break;
    case RSTATE_INT: r = fprintf(f, "%" PRId64, v->u.i); break;
    case RSTATE_BOOL: r = fputs(v->u.b ? "true" : "false", f); break;
    case RSTATE_STRING: return json_string(f, v->u.s.ptr, v->u.s.len);
  }
  return r < 0 ? -1 : 0;
}
