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

/* A frame's checksum in one pass: the length's four bytes, the payload's
 * eight at a time, its tail in at most three steps. */
__attribute__((target("sse4.2"))) static uint32_t frame_hard(uint32_t len, const uint8_t *p) {
  uint64_t c = __builtin_ia32_crc32si(0xFFFFFFFFu, len);
  size_t n = len;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
  }
  uint32_t c32 = (uint32_t)c;
  if (n & 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    c32 = __builtin_ia32_crc32si(c32, w);
    p += 4;
  }
  if (n & 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    c32 = __builtin_ia32_crc32hi(c32, w);
    p += 2;
  }
  if (n & 1) c32 = __builtin_ia32_crc32qi(c32, *p);
  return ~c32;
}

static _Atomic int have_hard = -1;

bool rstate__crc32c_hard(void) {
  int hard = atomic_load_explicit(&have_hard, memory_order_relaxed);
  if (hard < 0) {
    __builtin_cpu_init();
    hard = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    atomic_store_explicit(&have_hard, hard, memory_order_relaxed);
  }
  return hard > 0;
}

uint32_t rstate__crc32c(uint32_t crc, const void *data, size_t len) {
  return rstate__crc32c_hard() ? crc_hard(crc, data, len) : crc_soft(crc, data, len);
}

uint32_t rstate__frame_crc(uint32_t len, const uint8_t *payload) {
  if (rstate__crc32c_hard()) return frame_hard(len, payload);
  uint8_t head[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
  return rstate__crc32c(rstate__crc32c(0, head, 4), payload, len);
}
#else
bool rstate__crc32c_hard(void) { return false; }

uint32_t rstate__crc32c(uint32_t crc, const void *data, size_t len) { return crc_soft(crc, data, len); }

uint32_t rstate__frame_crc(uint32_t len, const uint8_t *payload) {
  uint8_t head[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
  return crc_soft(crc_soft(0, head, 4), payload, len);
}
#endif
