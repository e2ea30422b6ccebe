/*
 * subindex.c — which subscribers cover a variable (see subindex.h).
 *
 * A bucket per exact name or prefix holds its own copy of the key and the
 * items under it, in the order they were added (a store delivers to its
 * watches in that order). The prefix lengths in use are counted, so that a
 * lookup tries only those.
 */
#include "subindex.h"

#include <stdlib.h>
#include <string.h>

typedef rstate__subindex_bucket bucket;

void rstate__subindex_init(rstate__subindex *x) {
  memset(x, 0, sizeof *x);
  rstate__map_init(&x->exact);
  rstate__map_init(&x->prefix);
}

static void free_buckets(rstate__map *m) {
  size_t it = 0;
  for (bucket *b; (b = rstate__map_next(m, &it));) {
    free(b->items);
    free(b);
  }
  rstate__map_free(m);
}

void rstate__subindex_free(rstate__subindex *x) {
  free_buckets(&x->exact);
  free_buckets(&x->prefix);
  free(x->lens);
  memset(x, 0, sizeof *x);
}

/* Where a pattern goes: its table, the length of its key (a prefix
 * pattern goes in by its prefix) and the key's hash. */
typedef struct place {
  rstate__map *m;
  size_t len;
  uint64_t h;
} place;

bool rstate__pattern_is_prefix(const char *pattern, size_t *len) {
  *len = strlen(pattern);
  if (*len && pattern[*len - 1] == '*') {
    --*len;
    return true;
  }
  return false;
}

static place place_of(rstate__subindex *x, const char *pattern) {
  place p;
  p.m = rstate__pattern_is_prefix(pattern, &p.len) ? &x->prefix : &x->exact;
  p.h = rstate__hash(pattern, p.len);
  return p;
}

/* One more (d = 1) or one fewer (d = -1) prefix of length len; false on
 * ENOMEM (nothing changed). */
static bool count_len(rstate__subindex *x, size_t len, int d) {
  size_t i = 0;
  while (i < x->n_lens && x->lens[i].len < len) i++;
  if (i < x->n_lens && x->lens[i].len == len) {
    x->lens[i].buckets += (size_t)d;
    if (!x->lens[i].buckets) memmove(&x->lens[i], &x->lens[i + 1], (--x->n_lens - i) * sizeof *x->lens);
    return true;
  }
  if (!RSTATE__GROW(x->lens, x->cap_lens, x->n_lens + 1, 4)) return false;
  memmove(&x->lens[i + 1], &x->lens[i], (x->n_lens - i) * sizeof *x->lens);
  x->lens[i] = (rstate__prefix_len){len, 1};
  x->n_lens++;
  return true;
}

/* Appends item to a bucket unless it is its last item already (the same
 * pattern twice in one add); false on ENOMEM. */
static bool push(bucket *b, void *item) {
  if (b->n && b->items[b->n - 1] == item) return true;
  if (!RSTATE__GROW(b->items, b->cap, b->n + 1, 2)) return false;
  b->items[b->n++] = item;
  return true;
}

static bool add_one(rstate__subindex *x, void *item, const char *pattern) {
  place p = place_of(x, pattern);
  bucket *b = rstate__map_get(p.m, pattern, p.len, p.h);
  if (b) return push(b, item);
  if (!rstate__map_reserve(p.m, 1) || !(b = calloc(1, sizeof *b + p.len + 1))) return false;
  memcpy(b->key, pattern, p.len);
  if (!push(b, item) || (p.m == &x->prefix && !count_len(x, p.len, 1))) {
    free(b->items);
    free(b);
    return false;
  }
  rstate__map_put(p.m, b->key, p.len, p.h, b);
  return true;
}

static void remove_one(rstate__subindex *x, void *item, const char *pattern) {
  place p = place_of(x, pattern);
  bucket *b = rstate__map_get(p.m, pattern, p.len, p.h);
  if (!b) return;
  /* the newest first: a closing client removes its subscriptions newest
   * first, so each is the last of its bucket unless others came after it */
  size_t i = b->n - 1;
  if (b->items[i] != item)
    for (i = 0; i < b->n && b->items[i] != item; i++) continue;
  if (i < b->n) memmove(&b->items[i], &b->items[i + 1], (--b->n - i) * sizeof *b->items); /* keep the order */
  if (b->n) return;
  rstate__map_del(p.m, pattern, p.len, p.h);
  if (p.m == &x->prefix) count_len(x, p.len, -1);
  free(b->items);
  free(b);
}

void rstate__subindex_remove(rstate__subindex *x, void *item, const char *const *patterns, size_t n) {
  for (size_t i = 0; i < n; i++) remove_one(x, item, patterns[i]);
}

bool rstate__subindex_add(rstate__subindex *x, void *item, const char *const *patterns, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!add_one(x, item, patterns[i])) {
      rstate__subindex_remove(x, item, patterns, i);
      return false;
    }
  return true;
}

