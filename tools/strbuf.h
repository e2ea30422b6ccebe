/*
 * strbuf.h — a growing text buffer, for text built often and fast (the SSE
 * records of every change): appends without stdio's locking and format
 * parsing. An append that cannot grow the buffer marks it failed; the
 * text is then incomplete, and the caller checks once, at the end.
 */
#ifndef RSTATE_TOOLS_STRBUF_H
#define RSTATE_TOOLS_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct strbuf {
  char *p; /* malloc'ed (or the caller's: borrowed), not NUL-terminated; NULL until the first append */
  size_t len, cap;
  bool failed;   /* out of memory: the text is incomplete */
  bool borrowed; /* p is the caller's (strbuf_on), not to be freed */
} strbuf;

/* A buffer whose text starts in the caller's n bytes at buf (on the stack,
 * say) and moves to the heap only once it outgrows them: text written
 * somewhere at once costs no allocation when short. strbuf_free after, as
 * for any other. */
static inline strbuf strbuf_on(char *buf, size_t n) { return (strbuf){buf, 0, n, false, true}; }

/* Room for `more` bytes after len; false (and failed) when out of memory. */
bool strbuf_reserve(strbuf *b, size_t more);
static inline void strbuf_put(strbuf *b, const char *s, size_t n) {
  if (!n || (b->len + n > b->cap && !strbuf_reserve(b, n))) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}
static inline void strbuf_puts(strbuf *b, const char *s) { strbuf_put(b, s, strlen(s)); }
static inline void strbuf_putc(strbuf *b, char c) {
  if (b->len + 1 > b->cap && !strbuf_reserve(b, 1)) return;
  b->p[b->len++] = c;
}
/* Decimal integers. */
void strbuf_u64(strbuf *b, uint64_t v);
void strbuf_i64(strbuf *b, int64_t v);
/* Writes the text to f; 0, or -1 when the buffer failed or the write did. */
int strbuf_write(const strbuf *b, FILE *f);
void strbuf_free(strbuf *b);

#endif
