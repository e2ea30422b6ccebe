/* map.h — the string-keyed hash table of map.c (see there). */
#ifndef RSTATE_MAP_H
#define RSTATE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rstate__map_slot {
  uint64_t hash; /* 0: empty */
  const char *key;
  size_t len;
  void *value;
} rstate__map_slot;

typedef struct rstate__map {
  rstate__map_slot *slots;
  size_t cap; /* a power of two, or 0 */
  size_t count;
} rstate__map;

uint64_t rstate__hash(const char *s, size_t len);
void rstate__map_init(rstate__map *m);
void rstate__map_free(rstate__map *m);
/* NULL when absent. */
void *rstate__map_get(const rstate__map *m, const char *key, size_t len, uint64_t hash);
/* Makes room for `extra` more entries; false on ENOMEM (nothing changed). */
bool rstate__map_reserve(rstate__map *m, size_t extra);
/* Inserts a key known to be absent, into room made by rstate__map_reserve. */
void rstate__map_put(rstate__map *m, const char *key, size_t len, uint64_t hash, void *value);
/* Removes and returns the value, NULL when absent. */
void *rstate__map_del(rstate__map *m, const char *key, size_t len, uint64_t hash);
/* Iteration: start with *iter = 0; NULL at the end. No changes meanwhile. */
void *rstate__map_next(const rstate__map *m, size_t *iter);

#endif
