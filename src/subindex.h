/*
 * subindex.h — which subscriptions may cover a variable (subindex.c).
 *
 * The server asks, for each change, which of its subscriptions might want it,
 * so that a change costs work only for the clients it concerns rather than
 * for every connected client. A subscription's exact names go into a hash
 * table of name -> subscriptions; one with a prefix pattern ("motor.*", "*")
 * goes into the list of wide subscriptions, which every change is checked
 * against. Items are the caller's (opaque here); the patterns given to add
 * must be given again to remove, which takes time linear in the number of
 * items sharing the name (or in the wide list). Server thread only, no
 * locks.
 */
#ifndef RSTATE_SUBINDEX_H
#define RSTATE_SUBINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"

typedef struct rstate__subindex {
  rstate__map exact; /* name -> its bucket of items */
  void **wide;       /* items with a pattern ending in '*' */
  size_t n_wide, cap_wide;
} rstate__subindex;

void rstate__subindex_init(rstate__subindex *x);
/* Frees the index (the items are the caller's). */
void rstate__subindex_free(rstate__subindex *x);
/* Adds item under its patterns (a name given twice counts once); false on
 * ENOMEM, with nothing added. */
bool rstate__subindex_add(rstate__subindex *x, void *item, const char *const *patterns, size_t n);
/* Removes item, added with these patterns. */
void rstate__subindex_remove(rstate__subindex *x, void *item, const char *const *patterns, size_t n);
/* Calls fn for each item with the exact name name (hash: rstate__hash). */
void rstate__subindex_each_exact(const rstate__subindex *x, const char *name, size_t len, uint64_t hash,
                                 void (*fn)(void *item, void *ud), void *ud);

#endif
