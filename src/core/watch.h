/*
 * watch.h — the watch object and the front end's watching internals, shared
 * by watch.c (registration, delivery), registry.c (the index of watches by
 * name) and dispatch.c (queued delivery, debounce timers).
 *
 * Lock order, outermost first: backend lock -> registry lock -> watch lock
 * (its stripe) -> dispatch lock (the timers). A queued watch's inbox and
 * the dispatch thread's ready list take no lock (compare-and-swap). No lock
 * is held while user code (callback, filter, destroy) runs.
 */
#ifndef RSTATE_WATCH_H
#define RSTATE_WATCH_H

#include <pthread.h>
#include <stdatomic.h>

#include "event.h"
#include "util/util.h"

/* A chain of callbacks setting variables that other callbacks watch ends
 * with RSTATE_ELIMIT after this many links. */
#define RSTATE_CASCADE_LIMIT 1000

typedef struct rstate__watch rstate__watch;

struct rstate__watch {
  rstate_store *store;
  rstate_watch_id id;
  atomic_int refs; /* the registry's and transient ones (a claim takes none: see orphaned) */

  /* what the user asked for; immutable after registration */
  rstate_watch_fn fn;
  void *userdata;
  rstate_filter_fn filter;
  void (*destroy)(void *userdata);
  char *ignore_source;
  uint32_t debounce_ms, max_wait_ms;
  bool queued; /* queued, or debounced */
  bool include_initial;
  /* not the user's, nor immutable: the setters' own count (they are
   * serialized per watch: the registry lock, or a subscribing backend's
   * serialized rstate_host_emit_to) of changes pushed into the inbox since
   * they last found it empty (see INBOX_RUN); here, where it costs no
   * padding */
  uint32_t in_pushed;
  char **patterns;
  size_t n_patterns;

  uint64_t mark;             /* registry: last emit/count that reached it (under the registry lock) */
  rstate__watch *drain_next; /* on a thread's drain list or the store's ready list */
  /* on the list of one pass over several watches: run_timers's watches with
   * a passed deadline, or rstate_close's watches to end (the dispatch thread
   * has stopped by then). Not drain_next: a thread may be draining it. */
  rstate__watch *pass_next;

  /* under the lock of its stripe (core.h; stripe below, among the flags,
   * where it costs no padding) */
  rstate__node *head, *tail; /* ready to deliver, in order */
  /* A queued watch without debounce: changes pushed by setters without the
   * lock, newest first (one compare-and-swap each); the drainer moves them
   * to head..tail, oldest first, under the lock. Only the drainer empties
   * it, always under the lock, so a walk under the lock (stats) is safe. */
  _Atomic(rstate__node *) inbox;
  rstate__node *pending; /* debounce: one node per variable with a burst in progress */
  /* an inline claim's first node, taken off the queue at claim time by a
   * thread outside callbacks: the drain then starts without a lock round
   * trip. With running set when it is the thread's first claim (delivered
   * before any other callback runs on it); else the drain sets running
   * when it comes to it, unless the watch was ended meanwhile. Only the
   * claiming thread changes it; the statistics count it as pending. */
  _Atomic(rstate__node *) taken;
  uint32_t n_ready, n_pending;
  /* registered, its snapshot not yet taken: hold events. Atomic: a setter
   * reads it without the lock before it uses the inbox. */
  atomic_bool initializing;
  bool published; /* rstate_watch succeeded: unwatch and stats may find it (registry lock) */
  /* a thread (or the dispatcher) will drain it. Set by atomic exchange:
   * under the lock, or by a setter that found the inbox empty. */
  atomic_bool claimed;
  /* a callback or filter is running (on the thread whose tls.current it
   * is), or is about to: set at claim time for a thread's first claim.
   * Atomic, as dead: a drain that took its node at claim time behind
   * other watches sets running and then looks at dead, rstate_unwatch sets
   * dead and then looks at running, so one of them sees the other (the
   * rest of the time both change under the lock). */
  atomic_bool running;
  atomic_bool dead;     /* unwatched: deliver nothing more */
  bool destroy_pending; /* unwatched from its own callback: destroy after it */
  /* ended by another thread while claimed: the registry's reference passed
   * to the claimer, which drops it when it releases the claim. So a claim
   * (one per delivery) costs no reference count of its own. */
  bool orphaned;
  uint8_t stripe; /* which lock (set at registration, then immutable) */
  rstate_watch_stats stats;
  _Atomic int64_t deadline; /* debounce: earliest due time (monotonic ns), INT64_MAX: none */
};

/* ---- registry.c: the index of watches ----------------------------------- */

typedef struct rstate__registry rstate__registry;

rstate__registry *rstate__registry_new(void);
void rstate__registry_free(rstate__registry *r);
/* Adds w under every pattern and gives it an id; RSTATE_ENOMEM having added nothing. */
int rstate__registry_add(rstate__registry *r, rstate__watch *w);
/* Removes w; false when it was not there (already removed). */
bool rstate__registry_remove(rstate__registry *r, rstate__watch *w);
/* Makes a registered watch findable by id, once rstate_watch succeeds. */
void rstate__registry_publish(rstate__registry *r, rstate__watch *w);
/* The published watch with that id, with a reference taken; NULL if none. */
rstate__watch *rstate__registry_find(rstate__registry *r, rstate_watch_id id);
/* Removes every watch and returns them as a list through pass_next (the
 * registry's references pass to the caller). */
rstate__watch *rstate__registry_take_all(rstate__registry *r);
/* Published watches covering name. */
size_t rstate__registry_count(rstate__registry *r, const char *name);
/* Whether any watch is registered (a lock-free peek for the no-watcher path). */
bool rstate__registry_live(rstate__registry *r);
/* Queues the changes of one revision on every watch covering them. */
int rstate__registry_emit(rstate__registry *r, const rstate_change *changes, size_t n, uint32_t depth);

/* ---- watch.c ------------------------------------------------------------- */

void rstate__watch_ref(rstate__watch *w);
void rstate__watch_unref(rstate__watch *w);
/* Queues node on w (under the registry lock); never fails. */
void rstate__watch_push(rstate__watch *w, rstate__node *node);
/* The same for a watch without an inbox (inline, or debounced), under the
 * lock of its stripe, which the caller holds: a caller queuing one change
 * on many watches takes each stripe once for a run of them. Returns node
 * when w had no use for it (ended, or its source ignored): the caller
 * releases it once it let go of the lock. */
rstate__node *rstate__watch_push_locked(rstate__watch *w, rstate__node *node);
/* Whether w takes its changes through its lock-free inbox (queued, no
 * debounce): rstate__watch_push only, then. Immutable. */
static inline bool rstate__watch_uses_inbox(const rstate__watch *w) { return w->queued && !w->debounce_ms; }
/* The lock w's queue and state are under: rstate__watch_stripe (store.h). */
/* Delivers everything ready on w, which the caller has claimed; returns how
 * many callbacks ran. Releases the claim. */
int rstate__watch_drain(rstate__watch *w);
/* Releases a claim without delivering (a dispatcher that stops). */
void rstate__watch_unclaim(rstate__watch *w);
/* Debounce: moves bursts due at `now` to the ready queue (under its stripe lock);
 * returns true if any moved. Updates w->deadline. */
bool rstate__watch_flush_due(rstate__watch *w, int64_t now, bool all);
/* Runs the inline deliveries this thread claimed, unless it is inside a
 * callback (then the outer delivery loop runs them). */
void rstate__deliver_claimed(void);
/* RSTATE_ELIMIT (with a sentence) when a change made now would extend a
 * feedback chain past RSTATE_CASCADE_LIMIT; RSTATE_OK otherwise. */
int rstate__cascade_check(const char *fn, const char *name);
/* The feedback depth of a change made now on this thread (0 outside
 * callbacks): rstate_host_emit and rstate_host_emit_to tag events with it. */
uint32_t rstate__emit_depth(void);
/* True while a callback or filter runs on this thread. */
bool rstate__in_callback(void);
/* Ends every watch of a store that is closing. */
void rstate__watch_close_all(rstate_store *s);

/* ---- dispatch.c: queued delivery ---------------------------------------- */

typedef struct rstate__dispatch rstate__dispatch;

int rstate__dispatch_new(rstate__dispatch **out, rstate_store *s, bool thread);
/* Stops the dispatch thread, if any (before the watches are ended). */
void rstate__dispatch_stop(rstate__dispatch *d);
void rstate__dispatch_free(rstate__dispatch *d);
/* Puts a claimed watch on the ready list (a lock-free push, by whichever
 * thread claimed it) and wakes the dispatcher if it said it would sleep. */
void rstate__dispatch_ready(rstate__dispatch *d, rstate__watch *w);
/* Tells the dispatcher a debounce deadline may be earlier than it thought. */
void rstate__dispatch_deadline(rstate__dispatch *d, int64_t deadline);
/* Debounced watches are kept on a list so their deadlines can be checked. */
int rstate__dispatch_add_timer(rstate__dispatch *d, rstate__watch *w);
void rstate__dispatch_remove_timer(rstate__dispatch *d, rstate__watch *w);
/* For tests: the dispatch thread calls it, when set, at the start of each
 * round, with the fd it sleeps on. */
extern void (*rstate__dispatch_round_hook)(int fd);

#endif
