/*
 * fuzz_journal.c — libFuzzer target for the journal reader (src/file/): the
 * input, after a valid journal head, is journal 1 of a store without a
 * snapshot. Invariants: fuzz_file.h.
 *
 *   make fuzz   (or, by hand:)
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
 *     fuzz/fuzz_journal.c src/\*.c src/\*\/\*.c -o /tmp/fuzz_journal -pthread -lm
 *   /tmp/fuzz_journal -max_total_time=600 CORPUS_DIR fuzz/seeds/fuzz_journal
 */
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_clear();
  uint8_t *buf = malloc(size + RSTATE_JOURNAL_HEAD);
  if (!buf) return 0;
  memcpy(buf, "RSTJRNL1\1\0\0\0\0\0\0\0", RSTATE_JOURNAL_HEAD);
  if (size) memcpy(buf + RSTATE_JOURNAL_HEAD, data, size);
  if (size && (data[0] & 1)) fz_fix_crcs(buf, size + RSTATE_JOURNAL_HEAD, RSTATE_JOURNAL_HEAD);
  fz_write("journal.0000000000000001", buf, size + RSTATE_JOURNAL_HEAD);
  free(buf);
  fz_check("journal.0000000000000001");
  return 0;
}
