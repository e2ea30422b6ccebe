/*
 * tap.c — a copy of every change for whoever serves the store (server/stream.c).
 *
 * A server keeps a history of the store's changes and streams them to its
 * clients. It cannot get them from a watch: a watch sees one event at a time
 * and cannot tell where a revision's batch ends, and its callback runs after
 * the change. A tap sees each revision whole, in revision order, under the
 * backend's lock, in the same all-or-nothing step as the watches: prepare
 * (may fail, and then the change is abandoned), then publish or discard.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

int rstate__tap_add(rstate_store *s, const rstate__tap *tap) {
  if (s->ops->subscribe) /* its changes reach only the watches it keeps itself */
    return rstate__err(RSTATE_EINVAL,
                       "a %s store cannot be served: its changes happen elsewhere and reach only its own watches "
                       "(serve the store it is connected to)",
                       s->ops->name);
  int rc = RSTATE_ELIMIT;
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
  if (rc) return rstate__err(rc, "a store can be served by at most %d servers at once", RSTATE_TAPS);
  return RSTATE_OK;
}

void rstate__tap_remove(rstate_store *s, const rstate__tap *tap) {
  pthread_rwlock_wrlock(&s->tap_lock); /* waits for an emit in progress */
  for (int i = 0; i < RSTATE_TAPS; i++) {
    if (s->taps[i] == tap) {
      s->taps[i] = NULL;
      atomic_fetch_sub(&s->n_taps, 1);
    }
  }
  pthread_rwlock_unlock(&s->tap_lock);
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
