/*
 * compact.c — a file: store's own thread: the interval's syncs, allocating
 * and prefaulting the journal ahead of the writers, and compaction.
 *
 * Compaction never holds the store's lock but to swap the journal for a
 * fresh one (on the store's thread): a thread of its own then reads the
 * old snapshot and the old journals back from disk into a private local
 * backend (a fold, which costs memory for a second copy of the variables
 * but no time of the writers), writes that as the new snapshot and removes
 * the old journals, while the store's thread goes on prefaulting and
 * syncing the new journal.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "file.h"

typedef rstate__fstore fstore;

_Atomic size_t rstate__file_compact_bytes;
#define COMPACT_DEFAULT (16u << 20)

size_t rstate__file_compact_threshold(size_t snap_size) {
  size_t t = atomic_load(&rstate__file_compact_bytes);
  if (!t) t = COMPACT_DEFAULT > snap_size ? COMPACT_DEFAULT : snap_size;
  return t;
}

/* The fold of a compaction: the snapshot and the journals up to old's
 * generation read back into a private local backend and written as the new
 * snapshot; then old and the journals before it go. On its own thread, so
 * that the store's thread keeps prefaulting and syncing the new journal
 * meanwhile. */
static void fold(fstore *f, rstate__journal *old) {
  /* the interval's promise covers old's tail too: a fold of a large store
   * can take longer than the interval before the snapshot holds it. Here
   * and not on the store's thread, which meanwhile prefaults the new
   * journal for the writers (a sync of 16 MB can take 100 ms). */
  if (f->sync == RSTATE_SYNC_INTERVAL) rstate__journal_sync(old);
  /* a journal whose sync failed may hold less on disk than in the page
   * cache: it stays as it is, for the next open to read back */
  pthread_mutex_lock(&old->sync_lock);
  int rc = old->sync_err ? RSTATE_EIO : RSTATE_OK;
  pthread_mutex_unlock(&old->sync_lock);
  rstate_backend *fb;
  rstate__dirstate st = {0};
  size_t size = 0;
  if (!rc) rc = rstate__local_new(&fb, NULL, f->keep, NULL);
  if (!rc) {
    rc = rstate__dir_load(fb, f->dir, old->gen, &st);
    if (!rc) rc = rstate__snapshot_write(fb, f->dir, old->gen + 1, &size);
    rstate__local_ops.close(fb);
  }
  if (!rc) {
    f->snap_gen = old->gen + 1;
    rstate__journal_close(old, true);
    for (size_t i = 0; i < st.n_gens; i++) {
      if (st.gens[i] >= f->snap_gen) continue;
      char *p = rstate__journal_path(f->dir, st.gens[i]);
      if (p) unlink(p);
      free(p);
    }
  } else {
    if (f->sync != RSTATE_SYNC_NONE) rstate__journal_sync(old); /* its changes stay, read at the next open */
    rstate__journal_close(old, false);
  }
  rstate__dirstate_free(&st);
  rstate__local_lock(f->local);
  f->compact_at = rstate__file_compact_threshold(size);
  if (rc) f->compact_at *= 2;
  f->compact_asked = false;
  rstate__local_unlock(f->local);
}

typedef struct fold_arg {
  fstore *f;
  rstate__journal *old;
} fold_arg;

static void *fold_main(void *arg) {
  fold_arg *a = arg;
  fold(a->f, a->old);
  pthread_mutex_lock(&a->f->bg_lock);
  a->f->fold_done = true;
  pthread_cond_signal(&a->f->bg_cond);
  pthread_mutex_unlock(&a->f->bg_lock);
  free(a);
  return NULL;
}

/* The store's thread: swaps the journal for a fresh one (only this thread
 * swaps cur), then folds the old one, on a thread of its own when it can. */
static void compact(fstore *f) {
  rstate__journal *next, *old;
  if (rstate__journal_create(&next, f->dir, f->cur->gen + 1)) {
    rstate__local_lock(f->local);
    f->compact_at *= 2; /* try again later */
    f->compact_asked = false;
    rstate__local_unlock(f->local);
    return;
  }
  next->failure = &f->failure;
  atomic_store(&next->window, atomic_load(&f->cur->window)); /* the store's pace goes on */
  rstate__journal_allocate_ahead(next);
  rstate__journal_prefault(next);
  rstate__local_lock(f->local);
  old = f->cur;
  f->cur = next;
  rstate__local_unlock(f->local);
  fold_arg *a = malloc(sizeof *a);
  if (a) {
    *a = (fold_arg){f, old};
    f->fold_done = false;
    if (pthread_create(&f->folder, NULL, fold_main, a) == 0) {
      f->folding = true;
      return;
    }
    free(a);
  }
  fold(f, old);
}

static void add_ms(struct timespec *ts, int ms) {
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static bool reached(const struct timespec *due) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > due->tv_sec || (now.tv_sec == due->tv_sec && now.tv_nsec >= due->tv_nsec);
}

/* The store's thread. With SYNC_INTERVAL the syncs keep their own clock:
 * one starts interval_ms after the last one started, whatever else woke
 * the thread meanwhile (a writer going flat out asks for prefaulting every
 * few milliseconds, and a deadline taken afresh at each wakeup never came). */
void *rstate__file_bg_main(void *arg) {
  fstore *f = arg;
  struct timespec due;
  clock_gettime(CLOCK_MONOTONIC, &due);
  add_ms(&due, f->interval_ms);
  pthread_mutex_lock(&f->bg_lock);
  while (!f->stop) {
    if (f->folding && f->fold_done) {
      pthread_join(f->folder, NULL);
      f->folding = false;
    }
    /* first: a writer asking for prefaulting at its pace must not put it off */
    bool interval = f->sync == RSTATE_SYNC_INTERVAL;
    if (interval && reached(&due)) {
      pthread_mutex_unlock(&f->bg_lock);
      clock_gettime(CLOCK_MONOTONIC, &due);
      add_ms(&due, f->interval_ms);
      rstate__journal_sync(f->cur); /* only this thread swaps cur */
      pthread_mutex_lock(&f->bg_lock);
      continue;
    }
    if (atomic_load(&f->want_prefault)) {
      pthread_mutex_unlock(&f->bg_lock);
      rstate__journal_allocate_ahead(f->cur); /* only this thread swaps cur */
      rstate__journal_prefault(f->cur);
      atomic_store(&f->want_prefault, false);
      pthread_mutex_lock(&f->bg_lock);
      continue;
    }
    if (f->want_compact && !f->folding) {
      f->want_compact = false;
      pthread_mutex_unlock(&f->bg_lock);
      compact(f);
      pthread_mutex_lock(&f->bg_lock);
      continue;
    }
    int e = 0;
    while (!f->stop && !(f->want_compact && !f->folding) && !atomic_load(&f->want_prefault) &&
           !(f->folding && f->fold_done) && e != ETIMEDOUT)
      e = interval ? pthread_cond_timedwait(&f->bg_cond, &f->bg_lock, &due)
                   : pthread_cond_wait(&f->bg_cond, &f->bg_lock);
  }
  bool folding = f->folding;
  f->folding = false;
  pthread_mutex_unlock(&f->bg_lock);
  if (folding) pthread_join(f->folder, NULL);
  return NULL;
}
