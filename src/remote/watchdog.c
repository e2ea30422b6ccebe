/*
 * watchdog.c — one thread per process that notices a silent server for
 * every open remote store.
 *
 * A connection thread waits for bytes with no timeout: a receive timeout
 * arms and cancels a kernel timer at every wait, about half a microsecond
 * on each wakeup of each watching client (bench/notes.md,
 * remote.fanout100.x), and a live server sends PING every heartbeat
 * interval anyway, which wakes the thread. Only a server that has gone
 * silent needs a clock: this thread looks at each connected store every
 * quarter of the shortest heartbeat interval among them and, when one has
 * waited three of its intervals since its last frame, shuts its socket
 * down, which ends the connection thread's wait; that thread then drops
 * the connection as one whose server stopped answering heartbeats
 * (rstate__remote_silent). A store whose lock is busy is skipped for that
 * look: one stuck in a send never holds up the others.
 *
 * The thread starts with the first open store and ends with the last one
 * closed. Locks: `life`, then `mu` (the list), then a store's own lock
 * (tried, never waited for); rstate__watchdog_* are never called under a
 * store's lock.
 */
#include <stdlib.h>
#include <time.h>

#include "remote.h"

/* How long the thread waits when no store is connected. */
#define IDLE_TICK_NS 1000000000LL

static struct {
  pthread_mutex_t life; /* starting and joining the thread */
  pthread_mutex_t mu;   /* below */
  pthread_cond_t cv;    /* the list changed, or the thread should end */
  remote *head;
  bool running, stop;
  pthread_t thread;
} wd = {.life = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t wd_once = PTHREAD_ONCE_INIT;

/* A fork's child has no watchdog thread, and its copies of the parent's
 * stores are not its own: it starts with an empty list. */
static void fork_prepare(void) {
  pthread_mutex_lock(&wd.life);
  pthread_mutex_lock(&wd.mu);
}
static void fork_parent(void) {
  pthread_mutex_unlock(&wd.mu);
  pthread_mutex_unlock(&wd.life);
}
static void cv_init(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&wd.cv, &ca);
  pthread_condattr_destroy(&ca);
}

/* The child's copies are made anew, not unlocked: the parent's watchdog
 * was waiting on cv, and the copy would still count that waiter. */
static void fork_child(void) {
  wd.head = NULL;
  wd.running = wd.stop = false;
  pthread_mutex_init(&wd.life, NULL);
  pthread_mutex_init(&wd.mu, NULL);
  cv_init();
}

static void wd_init(void) {
  cv_init();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void *watch_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&wd.mu);
  while (!wd.stop) {
    int64_t now = rstate__monotonic_ns(), tick = IDLE_TICK_NS;
    for (remote *r = wd.head; r; r = r->wd_next) {
      int64_t t = rstate__remote_silent(r, now);
      if (t > 0 && t < tick) tick = t;
    }
    struct timespec ts;
    int64_t until = rstate__monotonic_ns() + tick;
    ts.tv_sec = until / 1000000000;
    ts.tv_nsec = until % 1000000000;
    pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
  }
  pthread_mutex_unlock(&wd.mu);
  return NULL;
}

int rstate__watchdog_add(remote *r) {
  pthread_once(&wd_once, wd_init);
  pthread_mutex_lock(&wd.life);
  pthread_mutex_lock(&wd.mu);
  int rc = RSTATE_OK;
  if (!wd.running) {
    wd.stop = false;
    if (pthread_create(&wd.thread, NULL, watch_main, NULL))
      rc = rstate__err(RSTATE_ENOMEM, "rstate_open: %s: cannot start the thread that watches heartbeats", r->uri);
    else
      wd.running = true;
  }
  if (!rc) {
    r->wd_prev = NULL;
    r->wd_next = wd.head;
    if (wd.head) wd.head->wd_prev = r;
    wd.head = r;
  }
  pthread_mutex_unlock(&wd.mu);
  pthread_mutex_unlock(&wd.life);
  return rc;
}

void rstate__watchdog_remove(remote *r) {
  pthread_mutex_lock(&wd.life); /* (cv is used only once add ran wd_init) */
  pthread_mutex_lock(&wd.mu);
  if (r->wd_prev)
    r->wd_prev->wd_next = r->wd_next;
  else if (wd.head == r)
    wd.head = r->wd_next;
  if (r->wd_next) r->wd_next->wd_prev = r->wd_prev;
  r->wd_next = r->wd_prev = NULL;
  bool last = wd.running && !wd.head;
  if (last) {
    wd.stop = true;
    pthread_cond_signal(&wd.cv);
  }
  pthread_mutex_unlock(&wd.mu);
  if (last) {
    pthread_join(wd.thread, NULL);
    wd.running = false; /* only ever changed under life */
  }
  pthread_mutex_unlock(&wd.life);
}

void rstate__watchdog_poke(void) {
  pthread_mutex_lock(&wd.mu);
  pthread_cond_signal(&wd.cv); /* (after an add: initialised) */
  pthread_mutex_unlock(&wd.mu);
}
