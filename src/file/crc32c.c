/*
 * crc32c.c — CRC-32C (Castagnoli), the checksum of every file: record.
 *
 * The SSE 4.2 crc32 instruction when the CPU has it (8 bytes a cycle or so),
 * else a table, a byte at a time. Both give the same values (tested).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "file.h"

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
}

static uint32_t crc_soft(uint32_t crc, const uint8_t *p, size_t len) {
  pthread_once(&table_once, table_init);
  crc = ~crc;
  while (len--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc_hard(uint32_t crc, const uint8_t *p, size_t len) {
  uint64_t c = ~crc;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    len -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}

static _Atomic int have_hard = -1;

uint32_t rstate__crc32c(uint32_t crc, const void *data, size_t len) {
  int hard = atomic_load_explicit(&have_hard, memory_order_relaxed);
  if (hard < 0) {
    __builtin_cpu_init();
    hard = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    atomic_store_explicit(&have_hard, hard, memory_order_relaxed);
  }
  return hard ? crc_hard(crc, data, len) : crc_soft(crc, data, len);
}
#else
uint32_t rstate__crc32c(uint32_t crc, const void *data, size_t len) { return crc_soft(crc, data, len); }
#endif
