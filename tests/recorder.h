/*
 * recorder.h — a watch callback that records every event it receives (deep
 * copies, so the test can look at them after the callback returned), with a
 * lock so threaded tests can share it. Used by test_watch, test_order,
 * test_reentrancy, test_backend and test_debounce (which gives it its fake
 * clock, to see when each event was delivered). Header-only, static inline.
 */
#ifndef RSTATE_TEST_RECORDER_H
#define RSTATE_TEST_RECORDER_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

typedef struct rec_event {
  rstate_event_kind kind;
  char name[256];
  rstate_type type;
  rstate_value old_value, new_value; /* owned copies */
  uint64_t version, revision;
  int64_t timestamp_ns;
  char source[64];
  bool has_source;
  size_t n_meta;
  char meta0_key[32], meta0_value[32];
  uint32_t coalesced;
  rstate_watch_id watch;
  rstate_store *store;
  int64_t delivered_at; /* the recorder's clock() when the callback ran; 0 without one */
} rec_event;

typedef struct recorder {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  rec_event *ev;
  size_t n, cap;
  int destroyed;
  int ret;                /* what the callback returns */
  int64_t (*clock)(void); /* optional: stamps each event's delivered_at */
} recorder;

static inline void rec_init(recorder *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
}

static inline void rec_free(recorder *r) {
  for (size_t i = 0; i < r->n; i++) {
    rstate_value_clear(&r->ev[i].old_value);
    rstate_value_clear(&r->ev[i].new_value);
  }
  free(r->ev);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
}

static inline int rec_cb(const rstate_event *ev, void *ud) {
  recorder *r = ud;
  pthread_mutex_lock(&r->lock);
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
    if (!r->ev) abort(); /* callbacks may run on any thread: no Criterion assert here */
  }
  rec_event *e = &r->ev[r->n];
  memset(e, 0, sizeof *e);
  e->kind = ev->kind;
  snprintf(e->name, sizeof e->name, "%s", ev->name);
  e->type = ev->type;
  rstate_value_copy(&e->old_value, &ev->old_value);
  rstate_value_copy(&e->new_value, &ev->new_value);
  e->version = ev->version;
  e->revision = ev->revision;
  e->timestamp_ns = ev->timestamp_ns;
  if (ev->source) {
    e->has_source = true;
    snprintf(e->source, sizeof e->source, "%s", ev->source);
  }
  e->n_meta = ev->n_meta;
  if (ev->n_meta) {
    snprintf(e->meta0_key, sizeof e->meta0_key, "%s", ev->meta[0].key);
    snprintf(e->meta0_value, sizeof e->meta0_value, "%s", ev->meta[0].value);
  }
  e->coalesced = ev->coalesced;
  e->watch = ev->watch;
  e->store = ev->store;
  if (r->clock) e->delivered_at = r->clock();
  r->n++;
  pthread_cond_broadcast(&r->cond);
  int ret = r->ret;
  pthread_mutex_unlock(&r->lock);
  return ret;
}

static inline void rec_destroy(void *ud) {
  recorder *r = ud;
  pthread_mutex_lock(&r->lock);
  r->destroyed++;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

/* Waits until the recorder holds at least n events, at most 10 s. */
static inline void rec_wait(recorder *r, size_t n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&r->lock);
  while (r->n < n) {
    if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline)) break;
  }
  size_t got = r->n;
  pthread_mutex_unlock(&r->lock);
  cr_assert_geq(got, n, "waited 10 s for %zu events, got %zu", n, got);
}

/* Watches names with the recorder as callback and, unless opts names another
 * (which must then call rec_destroy itself), as destroy. */
static inline rstate_watch_id rec_watch(rstate_store *s, recorder *r, const char *const *names, size_t n,
                                        const rstate_watch_opts *opts) {
  rstate_watch_opts o;
  memset(&o, 0, sizeof o);
  if (opts) o = *opts;
  if (!o.destroy) o.destroy = rec_destroy;
  rstate_watch_id id = 0;
  ASSERT_RC(rstate_watch(s, names, n, rec_cb, r, &o, &id), RSTATE_OK);
  cr_assert_neq(id, 0, "rstate_watch gave watch id 0");
  return id;
}

static inline rstate_watch_id rec_watch1(rstate_store *s, recorder *r, const char *name,
                                         const rstate_watch_opts *opts) {
  const char *names[] = {name};
  return rec_watch(s, r, names, 1, opts);
}

#endif
