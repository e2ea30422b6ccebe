/*
 * subindex.h — which subscribers cover a variable (subindex.c): a store's
 * watches (registry.c) and a server's subscriptions (server/subs.c).
 *
 * For each change the owner asks which of its subscribers want it, so that
 * a change costs a lookup of its name plus one per prefix length in use,
 * then O(subscribers covering it), never O(all subscribers). A
 * subscriber's exact names go into one hash table of name -> subscribers,
 * its prefix patterns ("motor.*", "*") into another, keyed by the prefix
 * without its '*'. Items are the caller's (opaque here), kept in the order
 * they were added; the patterns given to add must be given again to remove,
 * which takes constant time for the newest item of a name or prefix (a
 * closing client removes its subscriptions newest first) and time linear
 * in the items sharing it for any other. No locks: the owner serializes.
 */
#ifndef RSTATE_SUBINDEX_H
#define RSTATE_SUBINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct rstate__prefix_len {
  size_t len;     /* a prefix length some pattern has */
  size_t buckets; /* how many prefixes of that length are in the table */
} rstate__prefix_len;

typedef struct rstate__subindex {
  rstate__map exact;        /* name -> its bucket of items */
  rstate__map prefix;       /* prefix (the pattern less its '*') -> its bucket */
  rstate__prefix_len *lens; /* the prefix lengths in use, in increasing order */
  size_t n_lens, cap_lens;
} rstate__subindex;

void rstate__subindex_init(rstate__subindex *x);
/* Frees the index (the items are the caller's). */
void rstate__subindex_free(rstate__subindex *x);
/* Adds item under its patterns (a pattern given twice counts once); false
 * on ENOMEM, with nothing added. */
bool rstate__subindex_add(rstate__subindex *x, void *item, const char *const *patterns, size_t n);
/* Removes item, added with these patterns. */
void rstate__subindex_remove(rstate__subindex *x, void *item, const char *const *patterns, size_t n);
/* The items under one name or prefix. */
typedef struct rstate__subindex_bucket {
  void **items; /* in the order added */
  size_t n, cap;
  char key[]; /* the table's key */
} rstate__subindex_bucket;

static inline bool rstate__subindex_each_in(const rstate__subindex_bucket *b, bool (*fn)(void *item, void *ud),
                                            void *ud) {
  for (size_t i = 0; b && i < b->n; i++)
    if (!fn(b->items[i], ud)) return false;
  return true;
}

/* Calls fn for each item with a pattern that covers name (hash:
 * rstate__hash of it): the exact name's items first, then each prefix's,
 * shortest prefix first, each in the order added; once per such pattern, so
 * an item may come more than once. Stops, returning false, when fn does.
 * Inline: it sits on every change a store's watches may see, and fn, known
 * at the call, is inlined with it. */
static inline bool rstate__subindex_each(const rstate__subindex *x, const char *name, size_t len, uint64_t hash,
                                         bool (*fn)(void *item, void *ud), void *ud) {
  if (x->exact.count && !rstate__subindex_each_in(rstate__map_get(&x->exact, name, len, hash), fn, ud)) return false;
  for (size_t i = 0; i < x->n_lens && x->lens[i].len <= len; i++) {
    size_t pl = x->lens[i].len;
    if (!rstate__subindex_each_in(rstate__map_get(&x->prefix, name, pl, pl == len ? hash : rstate__hash(name, pl)), fn,
                                  ud))
      return false;
  }
  return true;
}
/* Whether pattern is a prefix pattern ("motor.*", "*"); *len gets the
 * length of its key: the prefix without the '*', or the whole name. */
bool rstate__pattern_is_prefix(const char *pattern, size_t *len);

#endif
