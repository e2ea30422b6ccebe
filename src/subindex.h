/*
 * subindex.h — which subscriptions cover a variable (subindex.c).
 *
 * The server asks, for each change, which of its subscriptions want it, so
 * that a change costs work only for the clients it concerns rather than for
 * every connected client. A subscription's exact names go into one hash
 * table of name -> subscriptions, its prefix patterns ("motor.*", "*") into
 * another, keyed by the prefix without its '*'; a lookup tries the name,
 * then each prefix length some pattern has. Items are the caller's (opaque
 * here); the patterns given to add must be given again to remove, which
 * takes time linear in the number of items sharing the name or prefix.
 * Server thread only, no locks.
 */
#ifndef RSTATE_SUBINDEX_H
#define RSTATE_SUBINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"

typedef struct rstate__prefix_len {
  size_t len;     /* a prefix length some pattern has */
  size_t buckets; /* how many prefixes of that length are in the table */
} rstate__prefix_len;

typedef struct rstate__subindex {
  rstate__map exact;          /* name -> its bucket of items */
  rstate__map prefix;         /* prefix (the pattern less its '*') -> its bucket */
  rstate__prefix_len *lens;   /* the prefix lengths in use, in increasing order */
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
/* Calls fn for each item with a pattern that covers name (hash:
 * rstate__hash of it): once per such pattern, so an item may come more
 * than once. */
void rstate__subindex_each(const rstate__subindex *x, const char *name, size_t len, uint64_t hash,
                           void (*fn)(void *item, void *ud), void *ud);

#endif
