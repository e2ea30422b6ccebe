/*
 * backend.c — the file: backend: a local backend (the variables, in memory,
 * with their history) whose every change is first appended to a journal.
 *
 * Why the local backend: reads, watches and checks are exactly mem:'s, and
 * only what reaches the disk is new. The local backend calls our journal
 * hook under its lock, in revision order, before it announces the change;
 * the hook encodes the change and appends it to the journal's shared
 * mapping (journal.c), so a change is in the page cache before any watcher
 * sees it. With RSTATE_SYNC_ALWAYS the call then waits, outside the lock,
 * for an fdatasync that covers it (group commit); RSTATE_SYNC_INTERVAL has
 * the background thread sync every sync_interval_ms; RSTATE_SYNC_NONE leaves
 * it to the operating system. A server defers the SYNC_ALWAYS waits of
 * one turn of its loop and waits once for them all (defer_durability: the
 * thread's waits, whatever file: store they are for). The store's thread
 * (syncs, prefaulting, compaction) is compact.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file.h"

#define KEEP_DEFAULT 100

typedef rstate__fstore fstore;

static fstore *F(rstate_backend *b) { return (fstore *)b; }

/* The journal a SYNC_ALWAYS change went to, for the call to wait on. */
static _Thread_local rstate__journal *wait_j;
static _Thread_local size_t wait_end;
/* The journal a change was taken back from (held), for the call to sync
 * the zeros over it. */
static _Thread_local rstate__journal *undone_j;

/* defer_durability: the journals this thread's writes went to since it
 * began deferring, and how far each must be on disk; the thread is
 * counted once among each one's waiters. Two: a turn of a server's loop
 * may see one compaction's swap of journals; a third waits at once. */
static _Thread_local bool deferring;
static _Thread_local struct {
  rstate__journal *j;
  size_t end;
} deferred[2];
static _Thread_local int deferred_rc;
static _Thread_local char deferred_why[256]; /* its sentence: later calls set their own */

static int deferred_slot(const rstate__journal *j) {
  for (int i = 0; i < 2; i++)
    if (deferred[i].j == j) return i;
  return -1;
}

/* Waits for every deferred write of this thread; the first error. */
static int settle_deferred(void) {
  int rc = deferred_rc;
  deferred_rc = RSTATE_OK;
  if (rc) rstate__err(rc, "%s", deferred_why);
  for (int i = 0; i < 2; i++) {
    if (!deferred[i].j) continue;
    int e = rstate__journal_wait(deferred[i].j, deferred[i].end);
    if (!rc) rc = e;
    deferred[i].j = NULL;
  }
  return rc;
}

/* ---- the journal hook (under the local backend's lock) ------------------ */

static void wake_bg(fstore *f) {
  pthread_mutex_lock(&f->bg_lock);
  pthread_cond_signal(&f->bg_cond);
  pthread_mutex_unlock(&f->bg_lock);
}

/* After an append: counts a SYNC_ALWAYS writer in, asks for prefaulting
 * and compaction when due. */
static void appended(fstore *f, rstate__journal *j) {
  if (f->sync == RSTATE_SYNC_ALWAYS) {
    if (!deferring || deferred_slot(j) < 0) { /* counted in once per wait */
      pthread_mutex_lock(&j->sync_lock);
      j->waiters++;
      if (j->waiters > j->peak) j->peak = j->waiters;
      if (j->gathering) pthread_cond_broadcast(&j->sync_cond);
      pthread_mutex_unlock(&j->sync_lock);
    }
    wait_j = j;
    wait_end = j->end;
  }
  if (j->end > atomic_load_explicit(&j->again, memory_order_relaxed) &&
      !atomic_exchange(&f->want_prefault, true))
    wake_bg(f);
  size_t forced = atomic_load_explicit(&rstate__file_compact_bytes, memory_order_relaxed);
  if (j->end >= (forced ? forced : f->compact_at) && !f->compact_asked) {
    f->compact_asked = true;
    pthread_mutex_lock(&f->bg_lock);
    f->want_compact = true;
    pthread_cond_signal(&f->bg_cond);
    pthread_mutex_unlock(&f->bg_lock);
  }
}

/* A sync of the store's journals failed: the store takes no more changes.
 * Not until a later sync succeeds: when the kernel fails to write a page
 * back it may mark it clean, and the next sync then succeeds without it;
 * the journal on disk may lack changes whose calls returned, and only
 * reading it back (opening the store again) says what it holds. */
static int refuse(fstore *f, const char *name) {
  pthread_mutex_lock(&f->failure.lock);
  int e = atomic_load_explicit(&f->failure.err, memory_order_relaxed);
  uint64_t gen = f->failure.gen;
  pthread_mutex_unlock(&f->failure.lock);
  return rstate__err(RSTATE_EIO,
                     "%s: file:%s: a sync of journal.%016" PRIx64 " failed: %s; the store takes no more changes "
                     "until it is opened again (changes made before may not be on disk)",
                     name, f->dir, gen, strerror(e));
}

static int hook_write(void *ud, const rstate_change *c, size_t n, const rstate__spec *spec) {
  fstore *f = ud;
  if (atomic_load_explicit(&f->failure.err, memory_order_relaxed)) return refuse(f, c[0].name);
  if (c[0].kind == RSTATE_EVENT_CHANGED) { /* the hot path: encoded in place */
    rstate__set_lens lens;
    size_t size = rstate__set_frame_size(c, n, &lens);
    if (!size)
      return rstate__err(RSTATE_ELIMIT, "%s: the change takes more than the journal's %u bytes per record",
                         c[0].name, RSTATE_FRAME_MAX);
    rstate__journal *j = f->cur;
    uint8_t *at = rstate__journal_reserve(j, size);
    if (!at) return RSTATE_EIO;
    rstate__set_frame_write(at, size, &lens, c, n);
    rstate__journal_commit(j, size);
    appended(f, j);
    return RSTATE_OK;
  }
  rstate__buf *b = &f->scratch;
  b->len = 0;
  b->oom = false;
  size_t at = rstate__frame_begin(b);
  if (c[0].kind == RSTATE_EVENT_DEFINED)
    rstate__enc_define(b, c[0].revision, c[0].timestamp_ns, spec);
  else if (c[0].kind == RSTATE_EVENT_DELETED)
    rstate__enc_undefine(b, c[0].revision, c[0].timestamp_ns, c[0].name);
  else
    rstate__enc_set(b, c, n);
  if (!rstate__frame_end(b, at)) {
    if (b->oom) return rstate__err(RSTATE_ENOMEM, "%s: out of memory writing the change to the journal", c[0].name);
    return rstate__err(RSTATE_ELIMIT, "%s: the change takes more than the journal's %u bytes per record", c[0].name,
                       RSTATE_FRAME_MAX);
  }
  rstate__journal *j = f->cur;
  int rc = rstate__journal_append(j, b->p, b->len);
  if (rc) return rc;
  appended(f, j);
  return RSTATE_OK;
}

/* The change's record is zeroed; the call syncs the zeros before it
 * returns (settle), in every sync mode: a record of a change whose call
 * failed must not come back after a power loss. Held until then, so that
 * a compaction does not close the journal under the call. */
static void hook_undo(void *ud) {
  fstore *f = ud;
  rstate__journal_undo(f->cur);
  if (wait_j) wait_end = 0; /* nothing to wait for; the wait still counts the waiter out */
  if (!undone_j) {
    undone_j = f->cur;
    rstate__journal_hold(undone_j);
  }
}

/* Keeps a write's wait for later (defer_durability). */
static void defer(rstate__journal *j, size_t end) {
  int i = deferred_slot(j);
  if (i >= 0) {
    if (end > deferred[i].end) deferred[i].end = end;
    return;
  }
  if (deferred[0].j && deferred[1].j) { /* a third journal: the oldest's wait now */
    int e = rstate__journal_wait(deferred[0].j, deferred[0].end);
    if (!deferred_rc && e) {
      deferred_rc = e;
      snprintf(deferred_why, sizeof deferred_why, "%s", rstate_last_error());
    }
    deferred[0] = deferred[1];
    deferred[1].j = NULL;
  }
  i = deferred[0].j ? 1 : 0;
  deferred[i].j = j;
  deferred[i].end = end;
}

/* After a change: with SYNC_ALWAYS, waits until it is on disk, or keeps
 * the wait for defer_durability's end. */
static int settle(int rc) {
  if (undone_j) { /* its own error says the change was not made; a failed sync is kept (refuse) */
    rstate__journal_sync(undone_j);
    rstate__journal_release(undone_j);
    undone_j = NULL;
  }
  rstate__journal *j = wait_j;
  if (!j) return rc;
  wait_j = NULL;
  if (deferring) {
    defer(j, wait_end);
    return rc;
  }
  int src = rstate__journal_wait(j, wait_end);
  return rc ? rc : src;
}

static int file_defer_durability(rstate_backend *b, bool on) {
  (void)b; /* the thread's: a server's callback may write to another file: store */
  deferring = on;
  return on ? RSTATE_OK : settle_deferred();
}

/* ---- open and close ------------------------------------------------------ */

static int take_lock(fstore *f) {
  size_t n = strlen(f->dir) + 8;
  char *path = malloc(n);
  if (!path) return rstate__err(RSTATE_ENOMEM, "file:%s: out of memory", f->dir);
  snprintf(path, n, "%s/lock", f->dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int rc = rstate__err(RSTATE_EIO, "file:%s: cannot open %s: %s", f->dir, path, strerror(errno));
    free(path);
    return rc;
  }
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(fd, F_OFD_SETLK, &fl)) {
    int e = errno;
    char buf[32] = {0};
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    free(path);
    long pid = r > 0 ? strtol(buf, NULL, 10) : 0;
    if (e != EAGAIN && e != EACCES) return rstate__err(RSTATE_EIO, "file:%s: cannot lock it: %s", f->dir, strerror(e));
    if (pid > 0)
      return rstate__err(RSTATE_EBUSY, "file:%s: the store is open in process %ld%s", f->dir, pid,
                         pid == (long)getpid() ? " (this process)" : "");
    return rstate__err(RSTATE_EBUSY, "file:%s: the store is open in another process (pid not yet written)", f->dir);
  }
  free(path);
  f->lock_fd = fd;
  return RSTATE_OK;
}

/* Writes our pid into the lock file, once the store opened well (a store
 * refused for damage leaves every file as it was). */
static int write_pid(fstore *f) {
  char buf[32];
  int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  if (ftruncate(f->lock_fd, 0) || pwrite(f->lock_fd, buf, (size_t)len, 0) != len)
    return rstate__err(RSTATE_EIO, "file:%s: cannot write the lock file: %s", f->dir, strerror(errno));
  return RSTATE_OK;
}

/* The store's identity (backend.h, version 4): the id file, 16 hex digits,
 * made with a random number the first time (written to id.tmp, synced,
 * renamed, the directory synced), so every opening of this directory gives
 * the same one and another directory another. */
static int load_identity(fstore *f) {
  char path[4096], tmp[4096], buf[32] = {0};
  snprintf(path, sizeof path, "%s/id", f->dir);
  snprintf(tmp, sizeof tmp, "%s/id.tmp", f->dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    char *end = NULL;
    unsigned long long v = r == 17 ? strtoull(buf, &end, 16) : 0;
    if (!v || end != buf + 16 || *end != '\n')
      return rstate__err(RSTATE_EIO, "file:%s: %s does not hold a store identity (16 hex digits)", f->dir, path);
    f->identity = v;
    return RSTATE_OK;
  }
  if (errno != ENOENT) return rstate__err(RSTATE_EIO, "file:%s: cannot read %s: %s", f->dir, path, strerror(errno));
  uint64_t v = 0;
  while (!v)
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = (uint64_t)rstate__monotonic_ns() ^ ((uint64_t)getpid() << 32);
  int len = snprintf(buf, sizeof buf, "%016" PRIx64 "\n", v);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write(fd, buf, (size_t)len) == len && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  ok = ok && rename(tmp, path) == 0;
  int dfd = ok ? open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  ok = ok && dfd >= 0 && fsync(dfd) == 0;
  if (dfd >= 0) close(dfd);
  if (!ok) return rstate__err(RSTATE_EIO, "file:%s: cannot write %s: %s", f->dir, path, strerror(errno));
  f->identity = v;
  return RSTATE_OK;
}

static void fstore_free(fstore *f) {
  if (f->local) rstate__local_ops.close(f->local);
  if (f->lock_fd >= 0) close(f->lock_fd);
  pthread_mutex_destroy(&f->bg_lock);
  pthread_cond_destroy(&f->bg_cond);
  pthread_mutex_destroy(&f->failure.lock);
  rstate__buf_free(&f->scratch);
  free(f->dir);
  free(f);
}

static int file_open(rstate_backend **out, const char *uri, const rstate_options *opts, rstate_host *host) {
  const char *dir = uri + 5;
  if (strncmp(uri, "file:", 5) != 0 || !*dir)
    return rstate__err(RSTATE_EINVAL, "rstate_open: \"%s\" names no directory (file:PATH)", uri);
  fstore *f = calloc(1, sizeof *f);
  if (!f || !(f->dir = strdup(dir))) {
    free(f);
    return rstate__err(RSTATE_ENOMEM, "file:%s: out of memory", dir);
  }
  size_t dl = strlen(f->dir);
  while (dl > 1 && f->dir[dl - 1] == '/') f->dir[--dl] = '\0';
  f->lock_fd = -1;
  f->sync = opts->sync;
  f->interval_ms = opts->sync_interval_ms ? opts->sync_interval_ms : 1000;
  f->keep = opts->keep_versions ? opts->keep_versions : KEEP_DEFAULT;
  pthread_mutex_init(&f->bg_lock, NULL);
  pthread_mutex_init(&f->failure.lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->bg_cond, &ca);
  pthread_condattr_destroy(&ca);

  int rc = RSTATE_OK;
  if (mkdir(f->dir, 0700) && errno != EEXIST)
    rc = rstate__err(RSTATE_EIO, "file:%s: cannot create the directory: %s", f->dir, strerror(errno));
  if (!rc) rc = take_lock(f);
  rstate__local_journal hooks = {f, hook_write, hook_undo};
  if (!rc) rc = rstate__local_new(&f->local, host, f->keep, &hooks);
  rstate__dirstate st = {0};
  if (!rc) rc = rstate__dir_load(f->local, f->dir, UINT64_MAX, &st);
  /* from here on files change: the torn tail goes, stale files go */
  if (!rc) rc = write_pid(f);
  if (!rc) rc = load_identity(f);
  if (!rc) {
    f->snap_gen = st.snap_gen;
    uint64_t last = st.n_gens ? st.gens[st.n_gens - 1] : 0;
    if (last >= st.snap_gen) {
      char *p = rstate__journal_path(f->dir, last);
      rc = p ? rstate__journal_open(&f->cur, p, last, st.last_end) : rstate__err(RSTATE_ENOMEM, "out of memory");
      free(p);
    } else {
      rc = rstate__journal_create(&f->cur, f->dir, st.snap_gen);
    }
  }
  if (!rc) {
    for (size_t i = 0; i < st.n_gens; i++) {
      if (st.gens[i] >= st.snap_gen) continue;
      char *p = rstate__journal_path(f->dir, st.gens[i]);
      if (p) unlink(p);
      free(p);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/snapshot.tmp", f->dir);
    unlink(tmp);
    f->compact_at = rstate__file_compact_threshold(st.snap_size);
  }
  rstate__dirstate_free(&st);
  if (!rc) f->cur->failure = &f->failure;
  if (!rc) rstate__journal_prefault(f->cur);
  if (!rc) {
    if (pthread_create(&f->bg, NULL, rstate__file_bg_main, f)) rc = rstate__err(RSTATE_ENOMEM, "file:%s: cannot start a thread", f->dir);
    else f->bg_running = true;
  }
  if (rc) {
    if (f->cur) rstate__journal_close(f->cur, false);
    fstore_free(f);
    return rc;
  }
  *out = (rstate_backend *)f;
  return RSTATE_OK;
}

static void file_close(rstate_backend *b) {
  fstore *f = F(b);
  /* this thread's deferred waits first: the journal closes once no one waits */
  if (deferred[0].j || deferred[1].j) {
    deferred_rc = settle_deferred();
    if (deferred_rc) snprintf(deferred_why, sizeof deferred_why, "%s", rstate_last_error());
  }
  if (f->bg_running) {
    pthread_mutex_lock(&f->bg_lock);
    f->stop = true;
    pthread_cond_signal(&f->bg_cond);
    pthread_mutex_unlock(&f->bg_lock);
    pthread_join(f->bg, NULL);
  }
  if (f->sync != RSTATE_SYNC_NONE) rstate__journal_sync(f->cur);
  rstate__journal_close(f->cur, false);
  fstore_free(f);
}

/* ---- the operations ------------------------------------------------------- */

static int file_define(rstate_backend *b, const rstate_var_def *def) {
  return settle(rstate__local_ops.define(F(b)->local, def));
}

static int file_undefine(rstate_backend *b, const char *name) {
  return settle(rstate__local_ops.undefine(F(b)->local, name));
}

static int file_get(rstate_backend *b, const char *name, rstate_value *out, rstate_var_info *info) {
  return rstate__local_ops.get(F(b)->local, name, out, info);
}

static int file_get_many(rstate_backend *b, const char *const *names, size_t n, rstate_value *out,
                         uint64_t *revision) {
  return rstate__local_ops.get_many(F(b)->local, names, n, out, revision);
}

static int file_snapshot(rstate_backend *b, const char *const *patterns, size_t n, rstate_snapshot_fn fn, void *ud,
                         uint64_t *revision) {
  return rstate__local_ops.snapshot(F(b)->local, patterns, n, fn, ud, revision);
}

static int file_set_many(rstate_backend *b, const rstate_assign *items, size_t n, const uint64_t *expected,
                         const rstate_set_opts *opts, size_t *failed_index) {
  return settle(rstate__local_ops.set_many(F(b)->local, items, n, expected, opts, failed_index));
}

static uint64_t file_revision(rstate_backend *b) { return rstate__local_ops.revision(F(b)->local); }

static int file_history(rstate_backend *b, const char *name, uint64_t after_version,
                        int (*fn)(const rstate_history_entry *e, void *ud), void *ud) {
  return rstate__local_ops.history(F(b)->local, name, after_version, fn, ud);
}

static uint64_t file_identity(rstate_backend *b) { return F(b)->identity; }

static int file_changes(rstate_backend *b, uint64_t after, uint64_t up_to,
                        int (*fn)(const rstate_change *c, size_t n, void *ud), void *ud) {
  return rstate__local_ops.changes(F(b)->local, after, up_to, fn, ud);
}

const rstate_backend_ops rstate__file_ops = {
    .version = RSTATE_BACKEND_VERSION,
    .name = "file",
    .open = file_open,
    .close = file_close,
    .define = file_define,
    .undefine = file_undefine,
    .get = file_get,
    .get_many = file_get_many,
    .snapshot = file_snapshot,
    .set_many = file_set_many,
    .revision = file_revision,
    .history = file_history,
    .identity = file_identity,
    .changes = file_changes,
    .defer_durability = file_defer_durability,
};
