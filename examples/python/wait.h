/*
 * wait.h — for the Python/C example pairs: wait, with a deadline, until a
 * variable of a store (local or remote) holds a value a test accepts.
 *
 * A waiter is a watch with include_initial whose callback copies the
 * variable's latest value under a mutex and signals a condition variable;
 * the main thread waits on it. Callbacks do nothing else, so they never
 * block the thread that delivers them (a remote store's connection thread).
 * open_waiting connects to the other half, waiting (bounded) until it
 * serves. Header-only: each example is one .c file.
 */
#ifndef EXAMPLES_PYTHON_WAIT_H
#define EXAMPLES_PYTHON_WAIT_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime; include this header first */
#endif
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <reactivestate.h>

#define WAIT_MS 10000 /* every wait of the examples gives up after this */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rstate_value value; /* the latest value (a copy), kind NONE before any */
  rstate_watch_id id;
} waiter;

static inline int waiter_fn(const rstate_event *ev, void *ud) {
  waiter *w = ud;
  pthread_mutex_lock(&w->mu);
  rstate_value_clear(&w->value);
  if (ev->new_value.kind != RSTATE_NONE && rstate_value_copy(&w->value, &ev->new_value) != RSTATE_OK)
    w->value.kind = RSTATE_NONE;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return RSTATE_CONTINUE;
}

/* Starts watching name; 0 or the library's error (printed). */
static inline int waiter_start(waiter *w, rstate_store *s, const char *name) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  rstate_watch_opts o = {.include_initial = true};
  int rc = rstate_watch(s, &name, 1, waiter_fn, w, &o, &w->id);
  if (rc != RSTATE_OK) fprintf(stderr, "watch %s: %s\n", name, rstate_last_error());
  return rc;
}

static inline void waiter_stop(waiter *w, rstate_store *s) {
  rstate_unwatch(s, w->id); /* waits for a running callback */
  rstate_value_clear(&w->value);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
}

/* Waits until accept(value, arg) is true; false (with a message naming
 * what) after WAIT_MS. */
static inline bool waiter_wait(waiter *w, bool (*accept)(const rstate_value *v, const void *arg), const void *arg,
                        const char *what) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += WAIT_MS / 1000;
  pthread_mutex_lock(&w->mu);
  bool ok;
  while (!(ok = accept(&w->value, arg)))
    if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT) {
      ok = accept(&w->value, arg);
      break;
    }
  pthread_mutex_unlock(&w->mu);
  if (!ok) fprintf(stderr, "timed out after %d ms waiting for %s\n", WAIT_MS, what);
  return ok;
}

static inline bool is_true(const rstate_value *v, const void *arg) {
  (void)arg;
  return v->kind == RSTATE_BOOL && v->u.b;
}

static inline bool int_at_least(const rstate_value *v, const void *arg) {
  return v->kind == RSTATE_INT && v->u.i >= *(const int64_t *)arg;
}

static inline bool string_is(const rstate_value *v, const void *arg) {
  return v->kind == RSTATE_STRING && strcmp(v->u.s.ptr, arg) == 0;
}

/* Prints the failed call's sentence and exits 1. */
static inline void check(int rc, const char *what) {
  if (rc == RSTATE_OK) return;
  fprintf(stderr, "%s: %s (%s)\n", what, rstate_last_error(), rstate_error_name(rc));
  exit(1);
}

/* "unix:" + path, in a static buffer. */
static inline const char *unix_uri(const char *path) {
  static char uri[512];
  snprintf(uri, sizeof uri, "unix:%s", path);
  return uri;
}

/* Opens the store served at unix:PATH, waiting up to WAIT_MS for the other
 * half of the pair to serve it: either half may start first. While nobody
 * listens there yet (no socket file, or a refused connection) it tries
 * again every 20 ms, and says once on stdout that it waits ("waiting for a
 * server at unix:PATH"). Any other failure, or none listening after WAIT_MS,
 * prints why (naming `other`, the command that serves it) and exits 1. */
static inline rstate_store *open_waiting(const char *path, const rstate_options *o, const char *other) {
  const char *uri = unix_uri(path);
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (bool said = false;; said = true) {
    rstate_store *s;
    int rc = rstate_open(&s, uri, o);
    if (rc == RSTATE_OK) return s;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long waited_ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (rc != RSTATE_EIO || waited_ms >= WAIT_MS) {
      fprintf(stderr, "%s: %s (%s)\n", rc == RSTATE_EIO ? "gave up waiting for a server" : "connect",
              rstate_last_error(), rstate_error_name(rc));
      if (rc == RSTATE_EIO)
        fprintf(stderr, "nothing served %s within %d ms: start %s\n", uri, WAIT_MS, other);
      exit(1);
    }
    if (!said) {
      printf("waiting for a server at %s\n", uri);
      fflush(stdout);
    }
    struct timespec pause = {0, 20 * 1000000L};
    nanosleep(&pause, NULL);
  }
}

#endif
