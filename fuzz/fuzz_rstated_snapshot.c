/*
 * fuzz_rstated_snapshot.c — libFuzzer target for rstated's snapshot reader
 * (tools/snapshot.c): arbitrary bytes as a snapshot file, restored into a
 * mem: store that a schema-like definition already holds.
 *
 * The checksum would stop nearly every input at the end record, so the
 * first byte chooses: odd, the input is the whole file as given; even, the
 * rest is taken as header and variable lines, and the target appends the
 * end record they deserve (count and CRC-32), so that the line parser and
 * the restore behind it are reached.
 *
 * Invariants checked on every input (abort() on a breach):
 *  - failure: the sentence starts with the file's name, and the store is
 *    as it was (revision 1: the one definition);
 *  - success: every variable the store lists reads back with the kind of
 *    its type, and the revision is at least the one before.
 * Memory errors and leaks are the sanitizers' to find.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
 *     fuzz/fuzz_rstated_snapshot.c $(find src -name '*.c') -o /tmp/fuzz_rstated_snapshot -pthread -lm
 *   /tmp/fuzz_rstated_snapshot -max_total_time=600 CORPUS_DIR fuzz/seeds/fuzz_rstated_snapshot
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the tool's sources, as rstated builds them */
#include "../tools/eventfmt.c"
#include "../tools/json.c"
#include "../tools/snapshot.c"
#include "../tools/textvalue.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void remove_file(void) { unlink(path); }

static rstate_kind kind_of(rstate_type t) {
  switch (t) {
    case RSTATE_TYPE_FLOAT: return RSTATE_FLOAT;
    case RSTATE_TYPE_INTEGER: return RSTATE_INT;
    case RSTATE_TYPE_BOOLEAN: return RSTATE_BOOL;
    default: return RSTATE_STRING;
  }
}

static int check_one(const char *name, rstate_type type, void *ud) {
  rstate_store *s = ud;
  rstate_value v;
  if (rstate_get(s, name, &v) != RSTATE_OK || v.kind != kind_of(type)) abort();
  rstate_value_clear(&v);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!size) return 0;
  if (!*path) {
    snprintf(path, sizeof path, "/tmp/fuzz-rstated-snapshot-%d.snap", (int)getpid());
    atexit(remove_file);
  }
  FILE *f = fopen(path, "w");
  if (!f) abort();
  fwrite(data + 1, 1, size - 1, f);
  if (!(data[0] & 1)) { /* the end record these lines deserve */
    size_t lines = 0;
    for (size_t i = 1; i < size; i++) lines += data[i] == '\n';
    fprintf(f, "# end: %zu variables, crc32 %08x\n", lines >= 2 ? lines - 2 : 0,
            (unsigned)snapshot_crc32(0, data + 1, size - 1));
  }
  fclose(f);
  rstate_store *s = NULL;
  if (rstate_open(&s, "mem:", NULL) != RSTATE_OK) abort();
  rstate_var_def def = {.name = "temperature", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(0.7)};
  if (rstate_define(s, &def) != RSTATE_OK) abort();
  char err[1024];
  size_t set = 0, defined = 0;
  int r = snapshot_restore(s, path, NULL, NULL, &set, &defined, err, sizeof err);
  if (r < 0) {
    if (strncmp(err, path, strlen(path)) != 0 || rstate_revision(s) != 1 || set + defined) abort();
  } else {
    if (rstate_revision(s) < 1) abort();
    rstate_list(s, check_one, s);
  }
  rstate_close(s);
  return 0;
}
