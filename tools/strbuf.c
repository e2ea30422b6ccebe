/*
 * strbuf.c — the growing text buffer (strbuf.h).
 */
#include "strbuf.h"

#include <stdlib.h>

bool strbuf_reserve(strbuf *b, size_t more) {
  if (b->failed) return false;
  if (b->len + more <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more) cap *= 2;
  char *p = b->borrowed ? malloc(cap) : realloc(b->p, cap);
  if (!p) {
    b->failed = true;
    return false;
  }
  if (b->borrowed && b->len) memcpy(p, b->p, b->len);
  b->borrowed = false;
  b->p = p;
  b->cap = cap;
  return true;
}

void strbuf_u64(strbuf *b, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  strbuf_put(b, tmp + sizeof tmp - n, n);
}

void strbuf_i64(strbuf *b, int64_t v) {
  if (v < 0) {
    strbuf_putc(b, '-');
    strbuf_u64(b, 0 - (uint64_t)v); /* INT64_MIN too */
    return;
  }
  strbuf_u64(b, (uint64_t)v);
}

int strbuf_write(const strbuf *b, FILE *f) {
  if (b->failed) return -1;
  return b->len && fwrite(b->p, 1, b->len, f) != b->len ? -1 : 0;
}

void strbuf_free(strbuf *b) {
  if (!b->borrowed) free(b->p);
  *b = (strbuf){0};
}
