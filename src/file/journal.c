/*
 * journal.c — a journal file of a file: store, appended through a shared
 * mapping.
 *
 * An append is a memcpy into a MAP_SHARED mapping of the file: once it is
 * done the bytes are in the page cache, so they survive the process being
 * killed exactly as a write(2) would, at the cost of a memory store. The
 * file is allocated ahead in growing chunks (fallocate, so a full disk is
 * an error here and not a SIGBUS later; where the file system cannot
 * allocate, a zero byte written into each new block past the end of the
 * file); the unused part is zeros, and a zero frame head marks the end.
 *
 * Durability is asked for by rstate__journal_wait (fdatasync, group commit:
 * one thread syncs for every thread waiting, the others wait for it) and by
 * the background thread, a compaction and a close (rstate__journal_sync:
 * the appended range alone, msync, so the pages prefaulted ahead stay
 * writable).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file.h"

_Atomic uint64_t rstate__file_syncs;
_Atomic uint64_t rstate__file_remaps;
_Atomic size_t rstate__file_map_window;
void (*rstate__file_synced_hook)(const rstate__journal *j, size_t synced);
int (*rstate__file_sync_fault)(const rstate__journal *j);

static int fault(const rstate__journal *j) { return rstate__file_sync_fault ? rstate__file_sync_fault(j) : 0; }

void (*rstate__file_sync_failed_hook)(const rstate__journal *j);

/* Under sync_lock: a sync failed with e. The first failure is kept (the
 * journal's later syncs fail with it) and told to the store. */
static void sync_failed(rstate__journal *j, int e) {
  if (j->sync_err) return;
  j->sync_err = e;
  rstate__sync_failure *f = j->failure;
  if (f) {
    pthread_mutex_lock(&f->lock);
    if (!atomic_load_explicit(&f->err, memory_order_relaxed)) {
      f->gen = j->gen;
      atomic_store_explicit(&f->err, e, memory_order_release);
    }
    pthread_mutex_unlock(&f->lock);
  }
  if (rstate__file_sync_failed_hook) rstate__file_sync_failed_hook(j);
}

#define CHUNK_MIN (1u << 20)
#define CHUNK_MAX (64u << 20)
/* The address space mapped at once (the file may be shorter: only what is
 * allocated is touched), so that the file grows under a mapping that stays
 * put and the prefaulting can run ahead of the writers without remapping
 * (rstate__file_map_window in tests); a longer journal is remapped (grow),
 * moved when no sync or prefault uses the mapping, else mapped anew beside
 * it (rstate__jmap). A remap maps room ahead as well, twice what was
 * mapped (map_ahead), so that a journal growing a step at a time (the
 * store's thread allocates 8 MiB ahead) is remapped about log2(its length
 * / WINDOW) times, not at every step. The mapping past the end of the file
 * is address space only: nothing writes, prefaults or syncs it (a SIGBUS
 * past the end of a shared mapping's file): the writers stay below
 * j->allocated, raised once the file is that long, and the prefault and
 * the syncs below it too. */
#define WINDOW (sizeof(size_t) >= 8 ? (size_t)1 << 30 : (size_t)CHUNK_MAX)

/* How much to map for a journal allocated up to size past a mapping of
 * mapped bytes: mapped doubled until it covers size, so at most twice
 * size (exactly size where doubling would overflow). */
static size_t map_ahead(size_t mapped, size_t size) {
  size_t to = mapped ? mapped : size;
  while (to < size) to = to <= SIZE_MAX / 2 ? 2 * to : size;
  return to;
}

/* A mapping of the journal and the threads using it outside the store's
 * lock; a mapping retired by a remap is unmapped by its last user. */
typedef struct rstate__jmap {
  uint8_t *p;
  size_t size;
  int users;
  bool retired;
} rstate__jmap;

static rstate__jmap *map_hold(rstate__journal *j) {
  pthread_mutex_lock(&j->map_lock);
  rstate__jmap *m = j->cur_map;
  m->users++;
  pthread_mutex_unlock(&j->map_lock);
  return m;
}

static void map_release(rstate__journal *j, rstate__jmap *m) {
  pthread_mutex_lock(&j->map_lock);
  bool gone = !--m->users && m->retired;
  pthread_mutex_unlock(&j->map_lock);
  if (gone) {
    munmap(m->p, m->size);
    free(m);
  }
}

char *rstate__journal_path(const char *dir, uint64_t gen) {
  size_t n = strlen(dir) + 32;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/journal.%016" PRIx64, dir, gen);
  return p;
}

/* Allocates the file past its end, where no writer writes: a zero byte at
 * the end of every block of [from, to), in order (so that a full disk
 * leaves the file extended by whole allocated blocks only), as glibc's
 * posix_fallocate emulation does, but never below from. */
static int fill(int fd, size_t from, size_t to, size_t block) {
  static const char zero = 0;
  while (from < to) {
    size_t at = (from / block + 1) * block;
    if (at > to) at = to;
    ssize_t n = pwrite(fd, &zero, 1, (off_t)(at - 1));
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return n < 0 ? errno : EIO;
    from = at;
  }
  return 0;
}

/* Makes the file at least size bytes, allocating from from on (what lies
 * below is allocated already). fallocate(2) itself, not posix_fallocate:
 * where the file system cannot allocate, glibc's posix_fallocate writes a
 * zero byte into every block of the range that reads as zero, and a writer
 * filling such a block through the mapping between that read and that
 * write loses a byte of a record. There (EOPNOTSUPP; ENOSYS where the call
 * is filtered out, EINVAL on some older file systems) the blocks past the
 * end of the file are written instead (fill), and those alone: a writer
 * writes below j->allocated only, which is raised once a reserve up to it
 * returned, so never past the end of the file, and the end is read and
 * moved under extend_lock (a writer's grow and the store's thread
 * allocating ahead may both get here). The file is never shortened: mapped
 * pages past its end would be a SIGBUS at the next append. A full disk is
 * ENOSPC here either way. fallocate fails with EINTR where a signal is
 * pending (tmpfs): it is called again. */
static int reserve(int fd, size_t from, size_t size) {
  static pthread_mutex_t extend_lock = PTHREAD_MUTEX_INITIALIZER;
  if (from >= size) return 0;
  int e;
  do
    e = fallocate(fd, 0, (off_t)from, (off_t)(size - from)) ? errno : 0;
  while (e == EINTR);
  if (e != EOPNOTSUPP && e != ENOSYS && e != EINVAL) return e;
  pthread_mutex_lock(&extend_lock);
  struct stat st;
  if (fstat(fd, &st)) {
    e = errno;
  } else {
    size_t block = st.st_blksize < 512 ? 512 : st.st_blksize > 4096 ? 4096 : (size_t)st.st_blksize;
    e = (size_t)st.st_size >= size ? 0 : fill(fd, (size_t)st.st_size, size, block);
  }
  pthread_mutex_unlock(&extend_lock);
  return e;
}

static int journal_map(rstate__journal **out, int fd, char *path, uint64_t gen, size_t end) {
  struct stat st;
  if (fstat(fd, &st)) {
    int e = errno;
    close(fd);
    int rc = rstate__err(RSTATE_EIO, "%s: %s", path, strerror(e));
    free(path);
    return rc;
  }
  size_t size = (size_t)st.st_size;
  if (size < end + CHUNK_MIN) {
    int e = reserve(fd, (size_t)st.st_size, end + CHUNK_MIN);
    size = end + CHUNK_MIN;
    if (e) {
      close(fd);
      int rc = rstate__err(RSTATE_EIO, "%s: cannot make room for the journal: %s", path, strerror(e));
      free(path);
      return rc;
    }
  }
  size_t window = atomic_load_explicit(&rstate__file_map_window, memory_order_relaxed);
  if (!window) window = WINDOW;
  if (window < size) window = size;
  void *map = mmap(NULL, window, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) map = mmap(NULL, window = size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  rstate__journal *j = map == MAP_FAILED ? NULL : calloc(1, sizeof *j);
  rstate__jmap *m = j ? calloc(1, sizeof *m) : NULL;
  if (!m) {
    int e = errno;
    free(j);
    if (map != MAP_FAILED) munmap(map, window);
    close(fd);
    int rc = map == MAP_FAILED ? rstate__err(RSTATE_EIO, "%s: cannot map the journal: %s", path, strerror(e))
                               : rstate__err(RSTATE_ENOMEM, "%s: out of memory", path);
    free(path);
    return rc;
  }
  j->fd = fd;
  j->path = path;
  j->gen = gen;
  j->map = map;
  j->size = window;
  *m = (rstate__jmap){map, window, 0, false};
  j->cur_map = m;
  j->end = j->undo_end = end;
  atomic_store(&j->published, end);
  j->synced = end;
  j->low = SIZE_MAX;
  pthread_mutex_init(&j->sync_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&j->sync_cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&j->map_lock, NULL);
  atomic_store(&j->prefaulted, end);
  atomic_store(&j->again, end);
  atomic_store(&j->allocated, size);
  *out = j;
  return RSTATE_OK;
}

/* fdatasync of the pages of [from, to) alone: msync(MS_SYNC) is the
 * kernel's fsync of a range (vfs_fsync_range, datasync): those pages
 * written and waited for, then what the file system needs to read them
 * back (the blocks' allocation), then a flush of the disk's cache. A whole
 * fdatasync would also write the prefaulted zero pages ahead of the
 * appends (dirty since prefaulted), and a page written back is
 * write-protected: the writer would fault on every one of them again.
 *
 * The pages behind the page the writer is in are unmapped first
 * (MADV_DONTNEED: on a shared mapping the page cache keeps them, dirty):
 * writing back a page still mapped write-protects it in every thread's
 * page tables, a TLB flush per page that interrupts the writer's CPU
 * (thousands a sync). Nothing reads the journal back through the
 * mapping; an undo that reaches into such a page faults it back in. */
static int sync_range(rstate__journal *j, size_t from, size_t to) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  from -= from % page;
  size_t behind = atomic_load_explicit(&j->published, memory_order_acquire);
  if (behind > to) behind = to;
  behind -= behind % page;
  rstate__jmap *m = map_hold(j); /* a writer remapping meanwhile does not wait for the msync */
  if (to > m->size) to = m->size;
  int e = fault(j);
  if (!e) {
    if (behind > from) madvise(m->p + from, behind - from, MADV_DONTNEED);
    e = msync(m->p + from, to - from, MS_SYNC) ? errno : 0;
  }
  map_release(j, m);
  return e;
}

int rstate__journal_create(rstate__journal **out, const char *dir, uint64_t gen) {
  char *path = rstate__journal_path(dir, gen);
  if (!path) return rstate__err(RSTATE_ENOMEM, "%s: out of memory", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int rc = rstate__err(RSTATE_EIO, "%s: cannot create the journal: %s", path, strerror(errno));
    free(path);
    return rc;
  }
  uint8_t head[RSTATE_JOURNAL_HEAD] = {'R', 'S', 'T', 'J', 'R', 'N', 'L', '1'};
  for (int i = 0; i < 8; i++) head[8 + i] = (uint8_t)(gen >> (8 * i));
  if (pwrite(fd, head, sizeof head, 0) != (ssize_t)sizeof head || fdatasync(fd)) {
    int rc = rstate__err(RSTATE_EIO, "%s: cannot write the journal: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    free(path);
    return rc;
  }
  int rc = journal_map(out, fd, path, gen, RSTATE_JOURNAL_HEAD);
  if (!rc) {
    /* the new file's name reaches the disk too */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
  }
  return rc;
}

int rstate__journal_open(rstate__journal **out, const char *path, uint64_t gen, size_t end) {
  char *p = strdup(path);
  if (!p) return rstate__err(RSTATE_ENOMEM, "%s: out of memory", path);
  int fd = open(p, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int rc = rstate__err(RSTATE_EIO, "%s: cannot open the journal: %s", p, strerror(errno));
    free(p);
    return rc;
  }
  int rc = journal_map(out, fd, p, gen, end);
  if (rc) return rc;
  rstate__journal *j = *out;
  /* a torn record, or a head cut short, is dropped: zeros after the end */
  if (end == RSTATE_JOURNAL_HEAD) {
    static const uint8_t magic[8] = {'R', 'S', 'T', 'J', 'R', 'N', 'L', '1'};
    memcpy(j->map, magic, 8);
    for (int i = 0; i < 8; i++) j->map[8 + i] = (uint8_t)(gen >> (8 * i));
  }
  size_t dirty = end;
  size_t fsize = atomic_load(&j->allocated);
  while (dirty < fsize && dirty < end + RSTATE_FRAME_MAX + 64) {
    size_t n = fsize - dirty < 4096 ? fsize - dirty : 4096;
    bool zero = true;
    for (size_t i = 0; i < n && zero; i++) zero = j->map[dirty + i] == 0;
    if (zero) break;
    memset(j->map + dirty, 0, n);
    dirty += n;
  }
  /* the zeros reach the disk before anything is appended: the syncs cover
   * the appends only, and a torn record left on disk behind them would
   * read as damage */
  int e = dirty > end ? sync_range(j, end, dirty) : 0;
  if (e) {
    rc = rstate__err(RSTATE_EIO, "%s: cannot clear the torn tail: %s", j->path, strerror(e));
    rstate__journal_close(j, false);
    *out = NULL;
    return rc;
  }
  return RSTATE_OK;
}

static void raise_allocated(rstate__journal *j, size_t to) {
  size_t cur = atomic_load(&j->allocated);
  while (cur < to && !atomic_compare_exchange_weak(&j->allocated, &cur, to)) {
  }
}

/* Under the store's lock: allocates more of the file unless the store's
 * thread already did (rstate__journal_allocate_ahead), and maps it, with
 * room ahead, when it runs past the mapping. */
static int grow(rstate__journal *j, size_t need) {
  size_t size = atomic_load(&j->allocated);
  if (size < need) {
    size_t from = size;
    size_t add = size < CHUNK_MAX ? size : CHUNK_MAX;
    if (add < CHUNK_MIN) add = CHUNK_MIN;
    size += add;
    while (size < need) size += add;
    int e = reserve(j->fd, from, size);
    if (e) return rstate__err(RSTATE_EIO, "%s: cannot grow the journal to %zu bytes: %s", j->path, size, strerror(e));
    raise_allocated(j, size);
  }
  if (size <= j->size) return RSTATE_OK;
  /* Past the mapping: mapped again with room ahead (map_ahead; where the
   * address space has no room for that, as far as the file is allocated).
   * With no sync or prefault on the mapping, it is moved (the page tables
   * go with it); under one, the file is mapped anew and the old mapping
   * left to its last user: the writer never waits for an msync (up to
   * 100 ms), only faults its pages in again. */
  pthread_mutex_lock(&j->map_lock);
  rstate__jmap *m = j->cur_map, *nm = NULL;
  size_t want = map_ahead(j->size, size);
  void *map;
  int e = 0;
  if (!m->users) {
    map = mremap(m->p, m->size, want, MREMAP_MAYMOVE);
    if (map == MAP_FAILED && want > size) map = mremap(m->p, m->size, want = size, MREMAP_MAYMOVE);
    if (map == MAP_FAILED) e = errno;
    else *m = (rstate__jmap){map, want, 0, false};
  } else if (!(nm = malloc(sizeof *nm))) {
    e = ENOMEM;
  } else {
    map = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
    if (map == MAP_FAILED && want > size) map = mmap(NULL, want = size, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
    if (map == MAP_FAILED) {
      e = errno;
      free(nm);
    } else {
      *nm = (rstate__jmap){map, want, 0, false};
      m->retired = true;
      j->cur_map = nm;
      /* nothing of the new mapping is prefaulted yet */
      atomic_store(&j->prefaulted, j->end);
      atomic_store_explicit(&j->again, j->end, memory_order_relaxed);
    }
  }
  if (!e) {
    j->map = j->cur_map->p;
    j->size = want;
    atomic_fetch_add_explicit(&rstate__file_remaps, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&j->map_lock);
  if (e) return rstate__err(RSTATE_EIO, "%s: cannot map %zu bytes of the journal: %s", j->path, size, strerror(e));
  return RSTATE_OK;
}

size_t rstate__journal_ahead(rstate__journal *j, size_t end) {
  size_t w = atomic_load_explicit(&j->window, memory_order_relaxed);
  size_t want = end < (512u << 10) ? 512u << 10 : end > (8u << 20) ? 8u << 20 : end;
  if (want > w) atomic_store_explicit(&j->window, w = want, memory_order_relaxed);
  return w;
}

void rstate__journal_allocate_ahead(rstate__journal *j) {
  size_t end = atomic_load_explicit(&j->published, memory_order_acquire);
  size_t have = atomic_load(&j->allocated);
  size_t ahead = 2 * rstate__journal_ahead(j, end);
  if (have >= end + ahead / 2) return;
  size_t to = (end + ahead + CHUNK_MIN - 1) / CHUNK_MIN * CHUNK_MIN;
  if (reserve(j->fd, have, to) == 0) raise_allocated(j, to); /* else the writer's grow says why */
}

uint8_t *rstate__journal_reserve(rstate__journal *j, size_t len) {
  size_t need = j->end + len;
  if ((need > atomic_load_explicit(&j->allocated, memory_order_relaxed) || need > j->size) && grow(j, need))
    return NULL;
  return j->map + j->end;
}

void rstate__journal_commit(rstate__journal *j, size_t len) {
  j->undo_end = j->end;
  j->end += len;
  j->n_appends++;
  atomic_store_explicit(&j->published, j->end, memory_order_release);
}

void rstate__journal_prefault(rstate__journal *j) {
#ifdef MADV_POPULATE_WRITE
  rstate__jmap *m = map_hold(j);
  size_t end = atomic_load_explicit(&j->published, memory_order_acquire);
  size_t done = atomic_load(&j->prefaulted);
  size_t from = done > end ? done : end;
  from &= ~(size_t)4095;
  size_t ahead = rstate__journal_ahead(j, end);
  size_t to = end + ahead;
  size_t have = atomic_load(&j->allocated);
  if (to > have) to = have;
  if (to > m->size) to = m->size;
  bool populated = to > from && madvise(m->p + from, to - from, MADV_POPULATE_WRITE) == 0;
  pthread_mutex_lock(&j->map_lock);
  if (!m->retired) { /* else the new mapping is not populated */
    if (populated) atomic_store(&j->prefaulted, to);
    atomic_store_explicit(&j->again, end + ahead / 4, memory_order_relaxed);
  }
  pthread_mutex_unlock(&j->map_lock);
  map_release(j, m);
#else
  atomic_store_explicit(&j->again, SIZE_MAX, memory_order_relaxed);
#endif
}

int rstate__journal_append(rstate__journal *j, const uint8_t *frames, size_t len) {
  if (j->end + len > atomic_load(&j->allocated) || j->end + len > j->size) {
    int rc = grow(j, j->end + len);
    if (rc) return rc;
  }
  /* the head last: a record cut short mid-copy most often looks like the end */
  memcpy(j->map + j->end + RSTATE_FRAME_HEAD, frames + RSTATE_FRAME_HEAD, len - RSTATE_FRAME_HEAD);
  atomic_signal_fence(memory_order_release);
  memcpy(j->map + j->end, frames, RSTATE_FRAME_HEAD);
  j->undo_end = j->end;
  j->end += len;
  j->n_appends++;
  atomic_store_explicit(&j->published, j->end, memory_order_release);
  return RSTATE_OK;
}

/* A sync may have covered the bytes taken back already: what is written
 * there next must be synced again, so synced moves back (and a sync that
 * runs meanwhile does not move it past here: low). And the bytes taken
 * back may be on disk (a sync of ours caught them, or the kernel wrote the
 * page back), a record of a change whose call failed, there after a power
 * loss: the zeros written over them must reach the disk too, though
 * nothing be appended after them (stale_to). */
void rstate__journal_undo(rstate__journal *j) {
  size_t was = j->end;
  memset(j->map + j->undo_end, 0, j->end - j->undo_end);
  j->end = j->undo_end;
  atomic_store_explicit(&j->published, j->end, memory_order_release);
  pthread_mutex_lock(&j->sync_lock);
  if (j->synced > j->end) j->synced = j->end;
  if (j->low > j->end) j->low = j->end;
  if (j->stale_to < was) j->stale_to = was;
  pthread_mutex_unlock(&j->sync_lock);
}

void rstate__journal_hold(rstate__journal *j) {
  pthread_mutex_lock(&j->sync_lock);
  j->waiters++;
  pthread_mutex_unlock(&j->sync_lock);
}

void rstate__journal_release(rstate__journal *j) {
  pthread_mutex_lock(&j->sync_lock);
  if (!--j->waiters) pthread_cond_broadcast(&j->sync_cond);
  pthread_mutex_unlock(&j->sync_lock);
}

/* Under sync_lock, when a sync of up to target (and stale_to) ended well. */
static void synced_to(rstate__journal *j, size_t target) {
  if (j->low == SIZE_MAX) j->stale_to = 0; /* else an undo during the sync may have zeroed after it */
  if (target > j->low) target = j->low;
  if (target > j->synced) j->synced = target;
  if (rstate__file_synced_hook) rstate__file_synced_hook(j, j->synced);
}

int rstate__journal_wait(rstate__journal *j, size_t end) {
  int rc = RSTATE_OK;
  pthread_mutex_lock(&j->sync_lock);
  while (j->synced < end) {
    if (j->sync_err) {
      rc = rstate__err(RSTATE_EIO, "a sync of %s failed: %s (the change is made but may not be on disk)", j->path,
                       strerror(j->sync_err));
      break;
    }
    if (j->syncing) {
      pthread_cond_wait(&j->sync_cond, &j->sync_lock);
      continue;
    }
    j->syncing = true;
    /* writers that just returned from the last sync are on their way with
     * their next change: wait for them a little (a twentieth of a sync, at
     * most 200 us) so that they share this sync instead of the next one.
     * peak is the most writers seen waiting at once; it decays when they
     * do not come. */
    if (j->waiters < j->peak && j->sync_ns > 0) {
      int64_t wait = j->sync_ns / 20 < 200000 ? j->sync_ns / 20 : 200000;
      struct timespec dl;
      clock_gettime(CLOCK_MONOTONIC, &dl);
      dl.tv_nsec += (long)wait;
      if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
      }
      j->gathering = true;
      int te = 0;
      while (j->waiters < j->peak && te != ETIMEDOUT) te = pthread_cond_timedwait(&j->sync_cond, &j->sync_lock, &dl);
      j->gathering = false;
      if (j->waiters < j->peak) j->peak--;
    }
    size_t target = atomic_load_explicit(&j->published, memory_order_acquire);
    j->low = SIZE_MAX;
    pthread_mutex_unlock(&j->sync_lock);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int e = fault(j);
    if (!e) e = fdatasync(j->fd) ? errno : 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_fetch_add_explicit(&rstate__file_syncs, 1, memory_order_relaxed);
    pthread_mutex_lock(&j->sync_lock);
    j->sync_ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    j->syncing = false;
    j->n_syncs++;
    pthread_cond_broadcast(&j->sync_cond);
    if (e) {
      sync_failed(j, e);
      continue; /* said above, to this caller and to those waiting with it */
    }
    synced_to(j, target);
  }
  j->waiters--;
  if (!j->waiters) pthread_cond_broadcast(&j->sync_cond);
  pthread_mutex_unlock(&j->sync_lock);
  return rc;
}

/* After a failed sync, the zeros of an undo are still written back: a
 * change that got past the store's refusal just before another thread's
 * sync failed, then was taken back, must not come back after a power
 * loss either. The sync still fails (the range is synced, not marked so:
 * what a failed write-back left clean is not on disk). */
int rstate__journal_sync(rstate__journal *j) {
  pthread_mutex_lock(&j->sync_lock);
  while (j->syncing) pthread_cond_wait(&j->sync_cond, &j->sync_lock);
  int failed = j->sync_err;
  size_t target = atomic_load_explicit(&j->published, memory_order_acquire);
  size_t to = target > j->stale_to ? target : j->stale_to;
  if (failed) to = j->stale_to;
  if (to <= j->synced) {
    pthread_mutex_unlock(&j->sync_lock);
    if (failed) return rstate__err(RSTATE_EIO, "a sync of %s failed: %s", j->path, strerror(failed));
    return RSTATE_OK;
  }
  size_t from = j->synced;
  j->low = SIZE_MAX;
  j->syncing = true;
  pthread_mutex_unlock(&j->sync_lock);
  int e = sync_range(j, from, to);
  atomic_fetch_add_explicit(&rstate__file_syncs, 1, memory_order_relaxed);
  pthread_mutex_lock(&j->sync_lock);
  j->syncing = false;
  j->n_syncs++;
  if (e)
    sync_failed(j, e);
  else if (!failed)
    synced_to(j, target);
  else if (j->low == SIZE_MAX)
    j->stale_to = 0; /* the zeros are on disk (no undo zeroed more meanwhile) */
  pthread_cond_broadcast(&j->sync_cond);
  pthread_mutex_unlock(&j->sync_lock);
  if (failed || e) return rstate__err(RSTATE_EIO, "a sync of %s failed: %s", j->path, strerror(failed ? failed : e));
  return RSTATE_OK;
}

void rstate__journal_close(rstate__journal *j, bool remove) {
  if (!j) return;
  pthread_mutex_lock(&j->sync_lock);
  while (j->waiters || j->syncing) pthread_cond_wait(&j->sync_cond, &j->sync_lock);
  pthread_mutex_unlock(&j->sync_lock);
  munmap(j->cur_map->p, j->cur_map->size); /* no one holds it now; a retired one went with its last user */
  free(j->cur_map);
  close(j->fd);
  if (remove) unlink(j->path);
  pthread_mutex_destroy(&j->sync_lock);
  pthread_cond_destroy(&j->sync_cond);
  pthread_mutex_destroy(&j->map_lock);
  free(j->path);
  free(j);
}
