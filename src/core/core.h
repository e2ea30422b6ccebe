/*
 * core.h — the front end's header: its store object, shared by the files
 * that make up the front end (store.c, and the watching files), and the tap
 * through which a server follows every change (tap.c).
 */
#ifndef RSTATE_CORE_H
#define RSTATE_CORE_H

#include <stdatomic.h>

#include "types/types.h"
#include "util/util.h"
#include "watch.h"

/* ---- tap.c: every change, whole revisions, for a server ----------------- */

/* Under the backend's lock, in revision order, for every emitted revision:
 * prepare copies what publish will need into *out (RSTATE_ENOMEM with a
 * sentence: the change is then abandoned, as when a watch cannot queue it);
 * then exactly one of publish (the change is accepted) or discard (it was
 * abandoned) gets that copy. None of them may call the store. closing runs
 * first thing in rstate_close, outside every lock: the tap must remove
 * itself and stop using the store before it returns. */
typedef struct rstate__tap {
  int (*prepare)(void *ud, const rstate_change *changes, size_t n, void **out);
  void (*publish)(void *ud, void *prepared);
  void (*discard)(void *ud, void *prepared);
  void (*closing)(void *ud);
  void *ud;
} rstate__tap;

#define RSTATE_TAPS 4
/* Starts calling tap (which must stay valid until removed); RSTATE_ELIMIT
 * when RSTATE_TAPS are in use, RSTATE_EINVAL for a backend that keeps its
 * watches itself (subscribe): its changes are never emitted here. */
int rstate__tap_add(rstate_store *s, const rstate__tap *tap);
/* Stops calling tap; returns once no call of it is in progress. */
void rstate__tap_remove(rstate_store *s, const rstate__tap *tap);
/* rstate_close: calls each tap's closing. */
void rstate__tap_close_all(rstate_store *s);
/* rstate_host_emit with taps: prepares every tap, runs emit, then publishes
 * or discards. */
int rstate__tap_emit(rstate_store *s, const rstate_change *changes, size_t n,
                     int (*emit)(rstate_store *s, const rstate_change *changes, size_t n));

/* ---- store.c: the store ------------------------------------------------- */

struct rstate_host {
  rstate_store *store;
};

/* Watches share their locks: a watch uses stripe (its address hashed) for
 * its queue and state, and waits for a running callback on that stripe's
 * condition. No code holds two watch locks at once, so sharing is safe, and
 * a watch stays small. */
#define RSTATE_STRIPES 64

typedef struct rstate__stripe {
  pthread_mutex_t lock;
  pthread_cond_t idle; /* a callback returned (broadcast only when waiters) */
  int waiters;
} rstate__stripe;

struct rstate_store {
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
};

/* Whether the store's backend keeps watches itself (backend.h, version 2). */
static inline bool rstate__subscribes(const rstate_store *s) { return s->ops->version >= 2 && s->ops->subscribe; }

#endif
