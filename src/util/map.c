/*
 * map.c — a string-keyed hash table (open addressing, linear probing,
 * backward-shift deletion, no tombstones).
 *
 * Keys are borrowed: each entry's key usually lives inside its value (the
 * variable's own name), so the table owns nothing but its slot array.
 * rstate__map_reserve makes room ahead of time, so that an insert that must
 * not fail (the commit step of a change) never allocates.
 */
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "map.h"

/* Eight bytes at a time, multiply and rotate (in the manner of FxHash),
 * with a final mix so the low bits used for the slot index depend on every
 * byte: names are short, and this sits on every get and set. */
uint64_t rstate__hash(const char *s, size_t len) {
  const uint64_t k = 0x9E3779B97F4A7C15ULL;
  uint64_t h = len * k;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = ((h << 5 | h >> 59) ^ w) * k;
    s += 8;
    len -= 8;
  }
  if (len) { /* the 1..7 byte tail as two overlapping loads, not a byte loop */
    uint64_t w;
    if (len >= 4) {
      uint32_t a, b;
      memcpy(&a, s, 4);
      memcpy(&b, s + len - 4, 4);
      w = (uint64_t)a << 32 | b;
    } else {
      w = (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[len / 2] << 8 | (unsigned char)s[len - 1];
    }
    h = ((h << 5 | h >> 59) ^ w) * k;
  }
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ULL;
  h ^= h >> 32;
  return h | 1; /* 0 marks an empty slot */
}

uint64_t rstate_name_hash(const char *name, size_t len) { return rstate__hash(name, len); }

void rstate__map_init(rstate__map *m) { memset(m, 0, sizeof *m); }

void rstate__map_free(rstate__map *m) {
  free(m->slots);
  memset(m, 0, sizeof *m);
}

static rstate__map_slot *find(const rstate__map *m, const char *key, size_t len, uint64_t h) {
  if (!m->cap) return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    rstate__map_slot *s = &m->slots[i];
    if (!s->hash) return NULL;
    if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s;
  }
}

void *rstate__map_get(const rstate__map *m, const char *key, size_t len, uint64_t hash) {
  rstate__map_slot *s = find(m, key, len, hash);
  return s ? s->value : NULL;
}

static void place(rstate__map_slot *slots, size_t cap, rstate__map_slot e) {
  size_t mask = cap - 1;
  size_t i = e.hash & mask;
  while (slots[i].hash) i = (i + 1) & mask;
  slots[i] = e;
}

bool rstate__map_reserve(rstate__map *m, size_t extra) {
  size_t need = m->count + extra;
  if (need * 4 < m->cap * 3) return true; /* load factor stays under 3/4 */
  size_t cap = m->cap ? m->cap : 16;
  while (need * 4 >= cap * 3) cap *= 2;
  rstate__map_slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return false;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].hash) place(slots, cap, m->slots[i]);
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return true;
}

void rstate__map_put(rstate__map *m, const char *key, size_t len, uint64_t hash, void *value) {
  rstate__map_slot e = {hash, key, len, value};
  place(m->slots, m->cap, e);
  m->count++;
}

void *rstate__map_del(rstate__map *m, const char *key, size_t len, uint64_t hash) {
  rstate__map_slot *s = find(m, key, len, hash);
  if (!s) return NULL;
  void *value = s->value;
  size_t mask = m->cap - 1;
  size_t hole = (size_t)(s - m->slots);
  /* backward shift: pull later entries of the probe run into the hole */
  for (size_t i = (hole + 1) & mask; m->slots[i].hash; i = (i + 1) & mask) {
    size_t home = m->slots[i].hash & mask;
    size_t dist_i = (i - home) & mask, dist_hole = (hole - home) & mask;
    if (dist_hole < dist_i || home == hole) {
      m->slots[hole] = m->slots[i];
      hole = i;
    }
  }
  memset(&m->slots[hole], 0, sizeof m->slots[hole]);
  m->count--;
  return value;
}

void *rstate__map_next(const rstate__map *m, size_t *iter) {
  while (*iter < m->cap) {
    rstate__map_slot *s = &m->slots[(*iter)++];
    if (s->hash) return s->value;
  }
  return NULL;
}
