/*
 * store.h — the front end's store object, shared by the files that make up
 * the front end (store.c, snapshot.c, tap.c and the watching files). No
 * other folder sees it: they use core.h.
 */
#ifndef RSTATE_STORE_H
#define RSTATE_STORE_H

#include <stdatomic.h>

#include "core.h"
#include "types/types.h"
#include "watch.h"

/* ---- store.c: the store ------------------------------------------------- */

struct rstate_host {
  rstate_store *store;
};

/* Watches share their locks: a watch uses stripe (given by its id at
 * registration, the same for runs of watches registered one after another:
 * registry.c) for its queue and state, and waits for a running callback on
 * that stripe's condition. No code holds two watch locks at once, so
 * sharing is safe, and a watch stays small. */
#define RSTATE_STRIPES 64

typedef struct rstate__stripe {
  /* whole cache lines: a dispatch thread takes one stripe's lock per event
   * while a setter reads the store's fields and takes another stripe's */
  _Alignas(RSTATE__CACHE_LINE) pthread_mutex_t lock;
  pthread_cond_t idle; /* a callback returned (broadcast only when waiters) */
  int waiters;
} rstate__stripe;

struct rstate_store {
  void *block;      /* what was allocated: the store is aligned in it (store.c) */
  rstate_host host; /* what the backend reports changes to */
  const rstate_backend_ops *ops;
  rstate_backend *backend;
  rstate_options opts; /* a copy; strings owned below */
  char *token;
  rstate__registry *registry;
  rstate__dispatch *dispatch;
  rstate__stripe stripes[RSTATE_STRIPES];
  /* tap.c: servers serving this store */
  pthread_rwlock_t tap_lock;
  const rstate__tap *taps[RSTATE_TAPS];
  atomic_int n_taps;
  /* tap.c, for a backend that subscribes (its changes are never emitted
   * with rstate_host_emit): while a tap is attached, the front end holds a
   * "*" subscription on the taps' behalf (tap_sub is its handle) and passes
   * its events to them; tap_rev is the revision up to which they have had
   * everything, waited for (tap_moved) before a snapshot is served. */
  pthread_mutex_t tap_sub_mu; /* serializes subscribing and unsubscribing */
  bool tap_subscribed;
  char tap_sub;
  pthread_mutex_t tap_mu;
  pthread_cond_t tap_moved;
  uint64_t tap_rev;
};

/* The lock w's queue and state are under (watch.h). */
static inline rstate__stripe *rstate__watch_stripe(rstate__watch *w) { return &w->store->stripes[w->stripe]; }

/* Whether the store's backend keeps watches itself (backend.h, version 2). */
static inline bool rstate__subscribes(const rstate_store *s) { return s->ops->version >= 2 && s->ops->subscribe; }

#endif
