/*
 * fuzz_schema.c — libFuzzer target for the schema parser (src/types/schema.c),
 * fed through rstate__schema_load_buffer: arbitrary bytes, NULs, no final
 * newline, CRLF, bad UTF-8.
 *
 * Invariants checked on every input (abort() on a breach):
 *  - failure: the code is one the parser may return, the sentence is set and
 *    starts with "fuzz.ini:", and nothing was defined (rstate_revision is 0,
 *    rstate_list finds nothing) — all or nothing;
 *  - success: one revision per variable, every listed variable reads back
 *    with the kind of its type, and loading the same text again is RSTATE_OK
 *    and changes nothing (idempotent).
 * Memory errors and leaks are the sanitizers' to find.
 *
 * Patterns whose compilation could take unbounded memory (glibc's regcomp
 * unrolls repetition: "f+++...", nested bounds) are refused by the library
 * (pattern_too_costly in src/types/types.c); libFuzzer's RSS limit checks that the
 * refusal holds.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
 *     fuzz/fuzz_schema.c $(find src -name '*.c') -o /tmp/fuzz_schema -pthread -lm
 *   /tmp/fuzz_schema -max_total_time=600 CORPUS_DIR tests/schemas
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "types/types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct walk {
  rstate_store *s;
  size_t n;
} walk;

static rstate_kind kind_of(rstate_type t) {
  switch (t) {
    case RSTATE_TYPE_FLOAT:
      return RSTATE_FLOAT;
    case RSTATE_TYPE_INTEGER:
      return RSTATE_INT;
    case RSTATE_TYPE_BOOLEAN:
      return RSTATE_BOOL;
    case RSTATE_TYPE_STRING:
    case RSTATE_TYPE_CHOICE:
    case RSTATE_TYPE_MODULE:
      return RSTATE_STRING;
  }
  abort();
}

static int visit(const char *name, rstate_type type, void *ud) {
  walk *w = ud;
  rstate_value v;
  memset(&v, 0, sizeof v);
  if (rstate_get(w->s, name, &v) != RSTATE_OK) abort();
  if (v.kind != kind_of(type)) abort();
  if (v.kind == RSTATE_STRING && (!v.u.s.ptr || !rstate__utf8_valid(v.u.s.ptr, v.u.s.len))) abort();
  rstate_value_clear(&v);
  w->n++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rstate_store *s = NULL;
  if (rstate_open(&s, "mem:", NULL) != RSTATE_OK) abort();
  rstate__err(RSTATE_OK, "%s", "");
  int rc = rstate__schema_load_buffer(s, (const char *)data, size, "fuzz.ini");
  walk w = {s, 0};
  if (rstate_list(s, visit, &w) != RSTATE_OK) abort();
  if (rc != RSTATE_OK) {
    if (rc != RSTATE_EINVAL && rc != RSTATE_ETYPE && rc != RSTATE_ECONSTRAINT && rc != RSTATE_ENOMEM &&
        rc != RSTATE_ELIMIT)
      abort();
    if (rstate_revision(s) != 0 || w.n != 0) abort();
    if (strncmp(rstate_last_error(), "fuzz.ini:", 9) != 0) abort();
  } else {
    uint64_t rev = rstate_revision(s);
    if (rev != w.n) abort();
    if (rstate__schema_load_buffer(s, (const char *)data, size, "fuzz.ini") != RSTATE_OK) abort();
    if (rstate_revision(s) != rev) abort();
  }
  rstate_close(s);
  return 0;
}
