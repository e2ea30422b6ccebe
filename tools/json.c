/*
 * json.c — JSON text of strings and values, for `rstate watch --json`.
 */
#include "json.h"

#include "textvalue.h"

void json_string_sb(strbuf *b, const char *s, size_t len) {
  if (!s) {
    strbuf_put(b, "null", 4);
    return;
  }
  strbuf_putc(b, '"');
  size_t run = 0; /* bytes copied as they are, written in one piece */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    strbuf_put(b, s + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': strbuf_put(b, "\\\"", 2); break;
      case '\\': strbuf_put(b, "\\\\", 2); break;
      case '\n': strbuf_put(b, "\\n", 2); break;
      case '\r': strbuf_put(b, "\\r", 2); break;
      case '\t': strbuf_put(b, "\\t", 2); break;
      case '\b': strbuf_put(b, "\\b", 2); break;
      case '\f': strbuf_put(b, "\\f", 2); break;
      default: {
        static const char hex[] = "0123456789abcdef";
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        strbuf_put(b, u, sizeof u);
      }
    }
  }
  strbuf_put(b, s + run, len - run);
  strbuf_putc(b, '"');
}

void json_value_sb(strbuf *b, const rstate_value *v) {
  char buf[40];
  switch (v->kind) {
    case RSTATE_NONE: strbuf_put(b, "null", 4); break;
    case RSTATE_FLOAT: tv_format_float(v->u.f, buf); strbuf_puts(b, buf); break;
    case RSTATE_INT: strbuf_i64(b, v->u.i); break;
    case RSTATE_BOOL: strbuf_puts(b, v->u.b ? "true" : "false"); break;
    case RSTATE_STRING: json_string_sb(b, v->u.s.ptr, v->u.s.len); break;
  }
}

/* Written to f from a buffer on the stack (the heap only for a text
 * longer than it): these are called for every field of every event of
 * `rstate watch --json` and the HTTP API. */
enum { JSON_STACK = 512 };

int json_string(FILE *f, const char *s, size_t len) {
  char buf[JSON_STACK];
  strbuf b = strbuf_on(buf, sizeof buf);
  json_string_sb(&b, s, len);
  int r = strbuf_write(&b, f);
  strbuf_free(&b);
  return r;
}

int json_value(FILE *f, const rstate_value *v) {
  char buf[JSON_STACK];
  strbuf b = strbuf_on(buf, sizeof buf);
  json_value_sb(&b, v);
  int r = strbuf_write(&b, f);
  strbuf_free(&b);
  return r;
}
