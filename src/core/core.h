/*
 * core.h — the front end as the rest of the library sees it: the calls made
 * for serving a store (store.c, snapshot.c) and the tap through which a
 * server follows every change (tap.c). A server reaches a store through
 * these and the public calls only, so every check the front end makes is
 * made for its clients too. The store object and the watching internals are
 * the front end's own (store.h, watch.h, event.h).
 */
#ifndef RSTATE_CORE_H
#define RSTATE_CORE_H

#include "util/util.h"

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
 * when RSTATE_TAPS are in use. For a backend that keeps its watches itself
 * (subscribe), the first tap subscribes to "*" on the taps' behalf (its
 * errors are returned), the last one removed unsubscribes. */
int rstate__tap_add(rstate_store *s, const rstate__tap *tap);
/* Stops calling tap; returns once no call of it is in progress. */
void rstate__tap_remove(rstate_store *s, const rstate__tap *tap);
/* rstate_close: calls each tap's closing. */
void rstate__tap_close_all(rstate_store *s);
/* rstate_host_emit with taps: prepares every tap, runs emit, then publishes
 * or discards. */
int rstate__tap_emit(rstate_store *s, const rstate_change *changes, size_t n,
                     int (*emit)(rstate_store *s, const rstate_change *changes, size_t n));

/* rstate_host_emit_to: whether sub is the taps' own subscription, and
 * passing its events to the taps. */
bool rstate__tap_is_sub(rstate_store *s, rstate_sub *sub);
int rstate__tap_feed(rstate_store *s, const rstate_change *changes, size_t n);
/* Before a snapshot of revision `revision` is served: waits (bounded by the
 * request timeout) until the taps have had every change up to it; at once
 * unless the backend subscribes, or on the thread that feeds the taps.
 * RSTATE_ETIMEDOUT, with a sentence naming what (the request), when the
 * taps are still behind at the timeout. */
int rstate__tap_sync(rstate_store *s, uint64_t revision, const char *what);

/* ---- store.c: the front end's private calls for rstated's snapshot ------ */
/* (tools/private.h declares them again for the tools, which link the static
 * library; tests/test_tools.c includes both, so they cannot drift.) */

/* Calls fn for every variable of the store, in no particular order, from one
 * consistent snapshot (the backend's snapshot operation over "*") whose
 * revision goes to *revision (may be NULL). fn runs under the backend's
 * lock: it copies what it keeps and must not call the store. Errors:
 * RSTATE_EINVAL (NULL s or fn), the backend's, or what fn returns. */
int rstate__dump(rstate_store *s, rstate_snapshot_fn fn, void *ud, uint64_t *revision);
/* Puts n variables back with their values, versions and change times, and
 * the store revision at least at revision: the backend's restore operation
 * (backend.h, version 5), whose rules and errors apply; RSTATE_ENOTSUP when
 * the backend has none; RSTATE_EINVAL for a NULL argument or a version 0.
 * Watchers get CHANGED events for what changed, as for any set. */
int rstate__restore(rstate_store *s, const rstate_snapshot_var *vars, size_t n, uint64_t revision,
                    size_t *failed_index);

/* ---- store.c: calls made for serving ------------------------------------ */

/* rstate_get and rstate_info in one read (a GET frame): out and info may be
 * NULL. The errors of rstate_get. */
int rstate__serve_get(rstate_store *s, const char *name, rstate_value *out, rstate_var_info *info);
/* A set a client asked for (a SET_MANY frame), with every check of the call
 * it stands for and that call's sentences: rstate_set (one item, no
 * version expected), rstate_set_if (one item, a version expected) or
 * rstate_set_many. expected: NULL or n versions, 0 meaning any. failed_index as for
 * rstate_set_many. The inline watchers it reached run at
 * rstate__serve_deliver, which the server calls once it has answered. */
int rstate__serve_set(rstate_store *s, const rstate_assign *items, size_t n, const uint64_t *expected,
                      const rstate_set_opts *opts, size_t *failed_index);
/* Runs the inline watchers the calling thread's changes reached, as every
 * public call that changes the store does before returning. */
void rstate__serve_deliver(void);
/* The backend's defer_durability (backend.h, version 6), for a server that
 * answers the writes of one turn of its loop after one wait for their
 * durability: RSTATE_OK at once when the backend has none. */
int rstate__serve_defer_durability(rstate_store *s, bool on);
/* The store revision read under the backend's snapshot, which is
 * serialized with the changes (backend.h): every revision up to it has
 * been through the taps, none after it (rstate_revision promises no such
 * thing). n_vars, when not NULL, gets the number of variables. Then, as
 * for a snapshot, waits for the taps: RSTATE_ETIMEDOUT (with a sentence
 * naming what) when they are still behind it at the request timeout. */
int rstate__serve_revision(rstate_store *s, uint64_t *revision, uint64_t *n_vars, const char *what);
/* The backend's identity (backend.h, version 4), 0 when it has none. */
uint64_t rstate__serve_identity(rstate_store *s);
/* The backend's kept changes of revisions (after, up_to] (backend.h,
 * version 4): RSTATE_ENOTSUP when the backend has none to give. */
int rstate__serve_changes(rstate_store *s, uint64_t after, uint64_t up_to,
                          int (*fn)(const rstate_change *changes, size_t n, void *ud), void *ud);

/* ---- snapshot.c: one snapshot, copied out of the backend ---------------- */

typedef struct rstate__snap_var {
  const char *name; /* owned */
  rstate_type type;
  rstate_value value; /* owned; kind RSTATE_NONE without values */
  uint64_t version;
  int64_t updated_ns;
} rstate__snap_var;

typedef struct rstate__snap {
  rstate__snap_var *vars; /* in name order */
  size_t n, cap;
} rstate__snap;

/* Copies the variables matching patterns (checked as rstate_watch checks
 * them; exact names or prefixes ending in '*') from one consistent snapshot
 * of the backend, with their values when values is true, in name order; the
 * snapshot's revision goes to *revision (may be NULL). fn names the caller
 * in sentences. On failure *out is empty. The front end's one collector:
 * rstate_list, rstate_watch's INITIAL events and a server's LIST, SNAPSHOT
 * and WATCH use it. */
int rstate__snapshot_take(rstate_store *s, const char *const *patterns, size_t n, bool values, rstate__snap *out,
                          uint64_t *revision, const char *fn);
void rstate__snap_free(rstate__snap *sn);

#endif
