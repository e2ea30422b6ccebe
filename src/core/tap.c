/*
 * tap.c — a copy of every change for whoever serves the store (server/stream.c).
 *
 * A server keeps a history of the store's changes and streams them to its
 * clients. It cannot get them from a watch: a watch sees one event at a time
 * and cannot tell where a revision's batch ends, and its callback runs after
 * the change. A tap sees each revision whole, in revision order, under the
 * backend's lock, in the same all-or-nothing step as the watches: prepare
 * (may fail, and then the change is abandoned), then publish or discard.
 *
 * A backend that subscribes (backend.h, version 2: the remote and redis:
 * backends) never emits with rstate_host_emit: its changes reach the watches
 * it keeps. For it, the front end itself subscribes to "*" while a tap is
 * attached and passes that subscription's events to the taps, a revision
 * at a time, in the backend's order. Its snapshots are then not serialized
 * with the taps (the backend's reader may not yet have read what a snapshot
 * shows), so a server's snapshot first waits for the taps to have had every
 * change up to the snapshot's revision (rstate__tap_sync), bounded by the
 * request timeout. No backend is special-cased: any store can be served.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

/* ---- a backend that subscribes: the front end's "*" subscription -------- */

/* The thread that last passed a subscribing store's changes to its taps
 * (its backend's reader): it never waits for itself in rstate__tap_sync. */
static _Thread_local const rstate_store *feeding;

static void tap_moved_to(rstate_store *s, uint64_t rev) {
  pthread_mutex_lock(&s->tap_mu);
  if (rev > s->tap_rev) {
    s->tap_rev = rev;
    pthread_cond_broadcast(&s->tap_moved);
  }
  pthread_mutex_unlock(&s->tap_mu);
}

static int no_watches(rstate_store *s, const rstate_change *changes, size_t n) {
  (void)s, (void)changes, (void)n; /* the watches get their own events */
  return RSTATE_OK;
}

bool rstate__tap_is_sub(rstate_store *s, rstate_sub *sub) { return sub == (rstate_sub *)&s->tap_sub; }

/* rstate_host_emit_to for the taps' subscription: each revision whole, as
 * rstate_host_emit gives it. INITIAL events only say where the
 * subscription starts; RESYNC (a gap the backend closed) reaches the taps
 * as the change it amounts to. */
int rstate__tap_feed(rstate_store *s, const rstate_change *changes, size_t n) {
  if (changes[n - 1].kind != RSTATE_EVENT_INITIAL) feeding = s; /* INITIAL: on the subscribing thread */
  rstate_change one[16];
  rstate_change *c = n <= 16 ? one : malloc(n * sizeof *c);
  if (!c) return rstate__err(RSTATE_ENOMEM, "%s: out of memory passing the change to the server", changes[0].name);
  int rc = RSTATE_OK;
  size_t k = 0;
  uint64_t last = 0;
  for (size_t i = 0; i <= n; i++) {
    if (k && (i == n || changes[i].revision != c[0].revision)) { /* one revision */
      if (atomic_load_explicit(&s->n_taps, memory_order_relaxed)) {
        int e = rstate__tap_emit(s, c, k, no_watches);
        if (e && !rc) rc = e;
      }
      k = 0;
    }
    if (i == n) break;
    last = changes[i].revision > last ? changes[i].revision : last;
    if (changes[i].kind == RSTATE_EVENT_INITIAL) continue;
    c[k] = changes[i];
    if (c[k].kind == RSTATE_EVENT_RESYNC) c[k].kind = c[k].old_value ? RSTATE_EVENT_CHANGED : RSTATE_EVENT_DEFINED;
    c[k].source = changes[0].source; /* one call: changes[0]'s source and meta */
    c[k].meta = changes[0].meta;
    c[k].n_meta = changes[0].n_meta;
    k++;
  }
  if (c != one) free(c);
  tap_moved_to(s, last);
  return rc;
}

int rstate__tap_sync(rstate_store *s, uint64_t revision, const char *what) {
  if (!rstate__subscribes(s) || feeding == s) return RSTATE_OK;
  int ms = s->opts.request_timeout_ms > 0 ? s->opts.request_timeout_ms : 5000;
  int64_t deadline = rstate__realtime_ns() + (int64_t)ms * 1000000;
  struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
  pthread_mutex_lock(&s->tap_mu);
  while (s->tap_subscribed && s->tap_rev < revision)
    if (pthread_cond_timedwait(&s->tap_moved, &s->tap_mu, &ts)) break;
  uint64_t had = s->tap_rev;
  bool late = s->tap_subscribed && had < revision;
  pthread_mutex_unlock(&s->tap_mu);
  if (late) /* served as it is, the snapshot would not match the changes that follow it */
    return rstate__err(RSTATE_ETIMEDOUT,
                       "%s: the store is at revision %llu but its changes reached the server only up to %llu within "
                       "%d ms (request_timeout_ms): the store's reader is behind; try again",
                       what, (unsigned long long)revision, (unsigned long long)had, ms);
  return RSTATE_OK;
}

/* The first tap of a store whose backend subscribes: subscribe to "*",
 * with INITIAL events, whose revision says from where the taps have every
 * change. Under tap_sub_mu. */
static int tap_subscribe(rstate_store *s) {
  static const char *const every[] = {"*"};
  uint64_t before = s->ops->revision(s->backend); /* all of these came before the subscription */
  pthread_mutex_lock(&s->tap_mu);
  s->tap_rev = before;
  s->tap_subscribed = true;
  pthread_mutex_unlock(&s->tap_mu);
  int rc = s->ops->subscribe(s->backend, (rstate_sub *)&s->tap_sub, every, 1, true);
  if (rc) {
    pthread_mutex_lock(&s->tap_mu);
    s->tap_subscribed = false;
    pthread_mutex_unlock(&s->tap_mu);
  }
  return rc;
}

static void tap_unsubscribe(rstate_store *s) {
  s->ops->unsubscribe(s->backend, (rstate_sub *)&s->tap_sub);
  pthread_mutex_lock(&s->tap_mu);
  s->tap_subscribed = false;
  s->tap_rev = 0;
  pthread_cond_broadcast(&s->tap_moved);
  pthread_mutex_unlock(&s->tap_mu);
}

/* ---- adding and removing taps --------------------------------------------- */

int rstate__tap_add(rstate_store *s, const rstate__tap *tap) {
  int rc = RSTATE_ELIMIT;
  pthread_mutex_lock(&s->tap_sub_mu);
  pthread_rwlock_wrlock(&s->tap_lock);
  for (int i = 0; i < RSTATE_TAPS; i++) {
    if (!s->taps[i]) {
      s->taps[i] = tap;
      atomic_fetch_add(&s->n_taps, 1);
      rc = RSTATE_OK;
      break;
    }
  }
  pthread_rwlock_unlock(&s->tap_lock);
  if (rc) {
    pthread_mutex_unlock(&s->tap_sub_mu);
    return rstate__err(rc, "a store can be served by at most %d servers at once", RSTATE_TAPS);
  }
  /* outside tap_lock: the backend emits under its own lock, then takes it */
  if (rstate__subscribes(s) && !s->tap_subscribed && (rc = tap_subscribe(s))) {
    pthread_rwlock_wrlock(&s->tap_lock);
    for (int i = 0; i < RSTATE_TAPS; i++)
      if (s->taps[i] == tap) {
        s->taps[i] = NULL;
        atomic_fetch_sub(&s->n_taps, 1);
      }
    pthread_rwlock_unlock(&s->tap_lock);
  }
  pthread_mutex_unlock(&s->tap_sub_mu);
  return rc;
}

void rstate__tap_remove(rstate_store *s, const rstate__tap *tap) {
  pthread_mutex_lock(&s->tap_sub_mu);
  pthread_rwlock_wrlock(&s->tap_lock); /* waits for an emit in progress */
  for (int i = 0; i < RSTATE_TAPS; i++) {
    if (s->taps[i] == tap) {
      s->taps[i] = NULL;
      atomic_fetch_sub(&s->n_taps, 1);
    }
  }
  bool last = atomic_load(&s->n_taps) == 0;
  pthread_rwlock_unlock(&s->tap_lock);
  if (last && s->tap_subscribed) tap_unsubscribe(s);
  pthread_mutex_unlock(&s->tap_sub_mu);
}

void rstate__tap_close_all(rstate_store *s) {
  const rstate__tap *taps[RSTATE_TAPS];
  pthread_rwlock_rdlock(&s->tap_lock);
  memcpy(taps, s->taps, sizeof taps);
  pthread_rwlock_unlock(&s->tap_lock);
  for (int i = 0; i < RSTATE_TAPS; i++) /* each removes itself: no lock held */
    if (taps[i]) taps[i]->closing(taps[i]->ud);
}

int rstate__tap_emit(rstate_store *s, const rstate_change *changes, size_t n,
                     int (*emit)(rstate_store *s, const rstate_change *changes, size_t n)) {
  void *prepared[RSTATE_TAPS] = {0};
  int rc = RSTATE_OK;
  pthread_rwlock_rdlock(&s->tap_lock);
  int i = 0;
  for (; i < RSTATE_TAPS && !rc; i++)
    if (s->taps[i]) rc = s->taps[i]->prepare(s->taps[i]->ud, changes, n, &prepared[i]);
  if (!rc) rc = emit(s, changes, n);
  for (int j = 0; j < i; j++) {
    if (!s->taps[j] || !prepared[j]) continue;
    if (rc)
      s->taps[j]->discard(s->taps[j]->ud, prepared[j]);
    else
      s->taps[j]->publish(s->taps[j]->ud, prepared[j]);
  }
  pthread_rwlock_unlock(&s->tap_lock);
  return rc;
}
