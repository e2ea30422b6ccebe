/*
 * subindex.c — which subscriptions may cover a variable (see subindex.h).
 *
 * A bucket per exact name holds its own copy of the name (the table's key)
 * and the items watching it, unordered; removal swaps the last item in.
 */
#include "subindex.h"

#include <stdlib.h>
#include <string.h>

typedef struct bucket {
  void **items;
  size_t n, cap;
  size_t len;
  char name[]; /* the table's key */
} bucket;

static bool is_wide(const char *pattern, size_t len) { return len && pattern[len - 1] == '*'; }

void rstate__subindex_init(rstate__subindex *x) {
  memset(x, 0, sizeof *x);
  rstate__map_init(&x->exact);
}

void rstate__subindex_free(rstate__subindex *x) {
  size_t it = 0;
  for (bucket *b; (b = rstate__map_next(&x->exact, &it));) {
    free(b->items);
    free(b);
  }
  rstate__map_free(&x->exact);
  free(x->wide);
  memset(x, 0, sizeof *x);
}

/* Appends item to a list unless it is its last element already; false on
 * ENOMEM. */
static bool push(void ***items, size_t *n, size_t *cap, void *item) {
  if (*n && (*items)[*n - 1] == item) return true;
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 2;
    void **p = realloc(*items, c * sizeof *p);
    if (!p) return false;
    *items = p;
    *cap = c;
  }
  (*items)[(*n)++] = item;
  return true;
}

/* Takes item out of a list, if there. */
static void drop(void **items, size_t *n, void *item) {
  for (size_t i = 0; i < *n; i++)
    if (items[i] == item) {
      items[i] = items[--*n];
      return;
    }
}

static bool add_exact(rstate__subindex *x, void *item, const char *name, size_t len) {
  uint64_t h = rstate__hash(name, len);
  bucket *b = rstate__map_get(&x->exact, name, len, h);
  if (b) return push(&b->items, &b->n, &b->cap, item);
  if (!rstate__map_reserve(&x->exact, 1) || !(b = calloc(1, sizeof *b + len + 1))) return false;
  memcpy(b->name, name, len);
  b->len = len;
  if (!push(&b->items, &b->n, &b->cap, item)) {
    free(b);
    return false;
  }
  rstate__map_put(&x->exact, b->name, len, h, b);
  return true;
}

static void remove_exact(rstate__subindex *x, void *item, const char *name, size_t len) {
  uint64_t h = rstate__hash(name, len);
  bucket *b = rstate__map_get(&x->exact, name, len, h);
  if (!b) return;
  drop(b->items, &b->n, item);
  if (b->n) return;
  rstate__map_del(&x->exact, name, len, h);
  free(b->items);
  free(b);
}

void rstate__subindex_remove(rstate__subindex *x, void *item, const char *const *patterns, size_t n) {
  bool wide = false;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(patterns[i]);
    if (is_wide(patterns[i], len))
      wide = true;
    else
      remove_exact(x, item, patterns[i], len);
  }
  if (wide) drop(x->wide, &x->n_wide, item);
}

bool rstate__subindex_add(rstate__subindex *x, void *item, const char *const *patterns, size_t n) {
  bool wide = false;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(patterns[i]);
    if (is_wide(patterns[i], len)) {
      wide = true;
    } else if (!add_exact(x, item, patterns[i], len)) {
      rstate__subindex_remove(x, item, patterns, i);
      return false;
    }
  }
  if (wide && !push(&x->wide, &x->n_wide, &x->cap_wide, item)) {
    rstate__subindex_remove(x, item, patterns, n);
    return false;
  }
  return true;
}

void rstate__subindex_each_exact(const rstate__subindex *x, const char *name, size_t len, uint64_t hash,
                                 void (*fn)(void *item, void *ud), void *ud) {
  const bucket *b = rstate__map_get(&x->exact, name, len, hash);
  if (b)
    for (size_t i = 0; i < b->n; i++) fn(b->items[i], ud);
}
