/*
 * fuzz_resp.c — libFuzzer target for the RESP reader (src/redis/resp.c).
 *
 * Input: byte 0 picks small or default limits (bit 0) and seeds the chunk
 * sizes (1 to 64 bytes); the rest is the byte stream Redis would send.
 * The stream is fed once whole and once in chunks, and both readers must
 * give the same replies (compared by a walk over each tree) and end in the
 * same state.
 *
 * Every string of a reply also goes through the parsers of what a store
 * keeps in Redis (src/redis/codec.c: variable records, definitions, values,
 * packed items), which must return RSTATE_OK or RSTATE_EPROTO; a definition
 * that parses must be one rstate__spec_new can judge without crashing.
 *
 * Invariants checked (abort() on a breach): next returns 1, 0,
 * RSTATE_EPROTO or RSTATE_ELIMIT only; an error is sticky; every reply's
 * strings are NUL-terminated at their length and respect max_bulk (a
 * status or error line: 64 KiB);
 * aggregates respect max_elements. Memory errors and leaks are the
 * sanitizers' to find.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"

static void codec(const char *p, size_t n) {
  rstate__redis_rec rec;
  int rc = rstate__redis_get_rec(p, n, &rec);
  if (rc != RSTATE_OK && rc != RSTATE_EPROTO) abort();
  rstate_value v;
  rc = rstate__redis_get_value(p, n, &v);
  if (rc != RSTATE_OK && rc != RSTATE_EPROTO) abort();
  rstate__redis_def def;
  rc = rstate__redis_get_def(p, n, &def);
  if (rc != RSTATE_OK && rc != RSTATE_EPROTO && rc != RSTATE_ENOMEM) abort();
  if (rc == RSTATE_OK) {
    rstate__spec *spec = NULL;
    if (!rstate__spec_new(&spec, &def.def)) rstate__spec_free(spec);
    rstate__redis_def_free(&def);
  }
  const char *q = p, *s;
  size_t k;
  bool bad = false;
  while (rstate__redis_unpack(&q, p + n, &s, &k, &bad))
    if (s < p || s + k > p + n) abort();
}

static uint64_t walk(const rstate__resp *r, const rstate__resp_limits *lim, unsigned depth) {
  uint64_t h = (uint64_t)r->type * 1315423911u + depth;
  if (depth > lim->max_depth) abort();
  switch (r->type) {
  case RSTATE_RESP_STATUS:
  case RSTATE_RESP_ERROR:
  case RSTATE_RESP_STRING:
  case RSTATE_RESP_DOUBLE:
    if (r->str[r->len] != 0 || (r->len > lim->max_bulk && r->len > 65536)) abort(); /* lines: 64 KiB */
    if (r->type == RSTATE_RESP_STRING) codec(r->str, r->len);
    for (size_t i = 0; i < r->len; i++) h = h * 31 + (unsigned char)r->str[i];
    break;
  case RSTATE_RESP_INTEGER:
  case RSTATE_RESP_BOOL: h ^= (uint64_t)r->integer; break;
  case RSTATE_RESP_ARRAY:
  case RSTATE_RESP_MAP: {
    if (r->n > lim->max_elements) abort();
    size_t k = r->type == RSTATE_RESP_MAP ? 2 * r->n : r->n;
    for (size_t i = 0; i < k; i++) h = h * 7 + walk(&r->elem[i], lim, depth + 1);
    break;
  }
  default: break;
  }
  return h;
}

/* Runs a reader over data in chunks (chunk 0: all at once); returns a hash
 * of every reply and the final code. */
static uint64_t run(const uint8_t *data, size_t size, const rstate__resp_limits *lim, unsigned seed, int *last) {
  rstate__resp_reader rd;
  rstate__resp_reader_init(&rd, lim);
  uint64_t h = 0;
  int rc = 0;
  size_t off = 0;
  while (off < size && rc >= 0) {
    size_t n = seed ? 1 + (seed = seed * 1103515245u + 12345u) % 64 : size;
    if (n > size - off) n = size - off;
    if (rstate__resp_feed(&rd, data + off, n)) abort();
    off += n;
    for (;;) {
      rstate__resp *r = NULL;
      rc = rstate__resp_next(&rd, &r);
      if (rc != 1 && rc != 0 && rc != RSTATE_EPROTO && rc != RSTATE_ELIMIT) abort();
      if (rc != 1) break;
      h = h * 1000003u + walk(r, &rd.lim, 0);
      rstate__resp_free(r);
    }
    if (rc < 0) {
      rstate__resp *r = NULL;
      if (rstate__resp_next(&rd, &r) != rc || r) abort();
    }
  }
  rstate__resp_reader_free(&rd);
  *last = rc;
  return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!size) return 0;
  rstate__resp_limits small = {.max_bulk = 64, .max_elements = 8, .max_reply = 1024, .max_depth = 6};
  const rstate__resp_limits *lim = (data[0] & 1) ? &small : NULL;
  int a, b;
  uint64_t ha = run(data + 1, size - 1, lim, 0, &a);
  uint64_t hb = run(data + 1, size - 1, lim, data[0] | 1u, &b);
  /* whole or in chunks: the same replies; the chunked reader may stop at a
   * limit the whole one hits too, or wait where the whole one failed */
  if (a == 0 && b == 0 && ha != hb) abort();
  if (a == RSTATE_EPROTO && b == 0) abort();
  return 0;
}
