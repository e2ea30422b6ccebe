/*
 * fuzz_snapshot.c — libFuzzer target for the snapshot reader (src/file/):
 * the input, after the snapshot's magic, is the snapshot of a store with
 * no journal. Invariants: fuzz_file.h.
 *
 *   make fuzz   (or, by hand:)
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
 *     fuzz/fuzz_snapshot.c src/\*.c src/\*\/\*.c -o /tmp/fuzz_snapshot -pthread -lm
 *   /tmp/fuzz_snapshot -max_total_time=600 CORPUS_DIR fuzz/seeds/fuzz_snapshot
 */
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_clear();
  uint8_t *buf = malloc(size + 8);
  if (!buf) return 0;
  memcpy(buf, "RSTSNAP1", 8);
  if (size) memcpy(buf + 8, data, size);
  if (size && (data[0] & 1)) fz_fix_crcs(buf, size + 8, 8);
  fz_write("snapshot", buf, size + 8);
  free(buf);
  fz_check("snapshot");
  return 0;
}
