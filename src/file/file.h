/*
 * file/file.h — the file: backend's private header (src/file/).
 *
 * A file: store is the local backend's variables in memory (src/local/local.h)
 * plus a directory on disk:
 *
 *   lock                  held with an OFD lock while the store is open; the holder's pid
 *   snapshot              every variable at some revision (written whole, then renamed)
 *   journal.<gen>         every accepted change after that, appended (16 hex digits)
 *
 * Records (snapshot and journal alike) are frames: u32 length, u32 CRC32C
 * of the length and the payload, the payload, zeros up to a multiple of 8.
 * Numbers are little-endian. The formats are in docs/FILE_FORMAT.md.
 *
 * record.c  encodes and decodes the payloads (pure; fuzzed)
 * crc32c.c  the checksum
 * journal.c the journal files: a shared mapping appended to by memory stores
 * snapshot.c reading a directory into a local backend, writing a snapshot
 * backend.c the backend table, the journal hook, opening and closing,
 *           deferred durability for a server
 * compact.c the store's thread: the interval's syncs, prefaulting,
 *           compaction and the fold's thread
 */
#ifndef RSTATE_FILE_H
#define RSTATE_FILE_H

#include <pthread.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the file: backend's hot path writes little-endian numbers in place"
#endif
#include <stdatomic.h>
#include <stdint.h>

#include "local/local.h"
#include "types/types.h"
#include "util/util.h"

/* ---- crc32c.c ----------------------------------------------------------- */

uint32_t rstate__crc32c(uint32_t crc, const void *data, size_t len);
/* A frame's checksum: rstate__crc32c over len's four little-endian bytes,
 * then over the len bytes of the payload, in one pass. */
uint32_t rstate__frame_crc(uint32_t len, const uint8_t *payload);
/* Whether the CPU has the CRC32 instruction (SSE 4.2) and it is used. */
bool rstate__crc32c_hard(void);

/* ---- record.c ----------------------------------------------------------- */

enum {
  RSTATE_REC_DEFINE = 1,
  RSTATE_REC_UNDEFINE = 2,
  RSTATE_REC_SET = 3,
  RSTATE_REC_SNAP_HEAD = 4,
  RSTATE_REC_SNAP_VAR = 5,
  RSTATE_REC_SNAP_END = 6,
};

#define RSTATE_FRAME_HEAD 8
#define RSTATE_FRAME_MAX (256u << 20) /* a payload's largest length */

/* A growing byte buffer; oom set once an allocation failed. */
typedef struct rstate__buf {
  uint8_t *p;
  size_t len, cap;
  bool oom;
} rstate__buf;

void rstate__buf_free(rstate__buf *b);
/* Starts a frame at the end of b (room for its head). */
size_t rstate__frame_begin(rstate__buf *b);
/* Pads the frame begun at start, fills its head. false: b->oom or too long. */
bool rstate__frame_end(rstate__buf *b, size_t start);

/* Payload encoders: append to b (check b->oom after). */
void rstate__enc_define(rstate__buf *b, uint64_t revision, int64_t ts, const rstate__spec *spec);
void rstate__enc_undefine(rstate__buf *b, uint64_t revision, int64_t ts, const char *name);
void rstate__enc_set(rstate__buf *b, const rstate_change *c, size_t n);
/* A SET frame written in place (the journal's hot path): its size (0: more
 * than a record may hold) and the lengths it measured on the way, then the
 * frame itself into size bytes with those lengths. */
typedef struct rstate__set_lens {
  size_t payload; /* the payload's bytes (without head and padding) */
  size_t source;  /* strlen of the source (0 when none) */
} rstate__set_lens;
size_t rstate__set_frame_size(const rstate_change *c, size_t n, rstate__set_lens *lens);
/* With the CRC instruction the checksum is taken as the fields are written
 * (no read back); else, and in the portable version (tests compare the
 * two), after. */
void rstate__set_frame_write(uint8_t *frame, size_t size, const rstate__set_lens *lens, const rstate_change *c,
                             size_t n);
void rstate__set_frame_write_portable(uint8_t *frame, size_t size, const rstate__set_lens *lens,
                                      const rstate_change *c, size_t n);
void rstate__enc_snap_head(rstate__buf *b, uint64_t revision, uint64_t gen, uint64_t n_vars);
void rstate__enc_snap_var(rstate__buf *b, const rstate__local_view *v);
void rstate__enc_snap_end(rstate__buf *b, uint64_t n_vars);

typedef struct rstate__rec_item {
  const char *name;
  uint64_t version;
  rstate_value value;
} rstate__rec_item;

/* One decoded payload; strings and arrays live in the arena given to
 * rstate__rec_decode and are NUL-terminated. */
typedef struct rstate__rec {
  int kind;
  uint64_t revision;
  int64_t ts;
  /* DEFINE, SNAP_VAR */
  rstate_var_def def;
  rstate_constraints c;
  /* UNDEFINE */
  const char *name;
  /* SET */
  const char *source;
  rstate_meta *meta;
  size_t n_meta;
  rstate__rec_item *items;
  size_t n_items;
  /* SNAP_HEAD, SNAP_END */
  uint64_t gen, n_vars;
  /* SNAP_VAR: revision and ts above are the variable's last change */
  uint64_t version;
  rstate_value value;
  rstate_history_entry *hist;
  size_t n_hist;
} rstate__rec;

typedef struct rstate__arena {
  uint8_t *p;
  size_t cap, used;
} rstate__arena;

/* Decodes a payload of len bytes. Returns true, or false with a reason in
 * *why (static text) for a payload that is not well formed. The arena is
 * grown to what any payload of len bytes can need (false, why "out of
 * memory", when it cannot). */
bool rstate__rec_decode(const uint8_t *p, size_t len, rstate__rec *out, rstate__arena *arena, const char **why);
void rstate__arena_free(rstate__arena *a);

/* What lies at off in buf[0..n). */
typedef enum rstate__frame_state {
  RSTATE_FRAME_OK,    /* a whole frame with a good checksum */
  RSTATE_FRAME_END,   /* zeros where a head would be, or nothing left */
  RSTATE_FRAME_TORN,  /* a frame that runs past the end */
  RSTATE_FRAME_BAD    /* a frame whose checksum or length is wrong */
} rstate__frame_state;
rstate__frame_state rstate__frame_at(const uint8_t *buf, size_t n, size_t off, const uint8_t **payload,
                                     size_t *len, size_t *next);
/* Whether a whole good frame starts anywhere (8-byte aligned) in [from, n). */
bool rstate__frame_any(const uint8_t *buf, size_t n, size_t from);

/* ---- journal.c ---------------------------------------------------------- */

#define RSTATE_JOURNAL_HEAD 16 /* "RSTJRNL1", u64 generation */

/* The first sync of one of a store's journals that failed (err 0: none
 * yet): the store takes no change after it (backend.c). Set once, under
 * lock; err is read without it on every change. */
typedef struct rstate__sync_failure {
  pthread_mutex_t lock;
  _Atomic int err; /* its errno */
  uint64_t gen;    /* the journal's generation */
} rstate__sync_failure;

typedef struct rstate__journal {
  int fd;
  char *path;
  uint64_t gen;
  uint8_t *map;
  size_t size;              /* of the mapping (the file may be shorter: allocated) */
  size_t end;               /* bytes in use (under the store's lock) */
  size_t undo_end;          /* end before the last append */
  _Atomic size_t published; /* end, for the syncing threads */
  /* group commit */
  pthread_mutex_t sync_lock;
  pthread_cond_t sync_cond;
  size_t synced; /* on disk up to here */
  size_t low;    /* the lowest offset an undo rewound to while a sync ran (SIZE_MAX: none) */
  size_t stale_to; /* the end of the bytes undos zeroed that the disk may still hold (a sync's,
                    * or the kernel's write-back): the next sync covers up to here too (0: none) */
  bool syncing;
  int waiters;   /* threads that appended and wait for a sync; counted under the store's lock */
  int sync_err;  /* errno of the first failed sync: every later sync and
                  * wait fails with it, unmade (a write-back that failed
                  * may leave its pages clean, unwritten: a later sync
                  * would succeed without them) */
  rstate__sync_failure *failure; /* the owning store's, told of it (NULL: none) */
  /* gathering writers for one sync (group commit) */
  int peak;          /* most waiters seen lately */
  bool gathering;    /* a leader waits for the writers on their way */
  int64_t sync_ns;   /* how long the last fdatasync took */
  /* the mapping as the threads outside the store's lock use it: a sync or
   * a prefault holds it (counted in under map_lock) while it works, and a
   * remap under a user maps anew and leaves the old mapping to its last
   * user to unmap, so that a writer never waits for an msync */
  pthread_mutex_t map_lock;
  struct rstate__jmap *cur_map; /* map and size (under map_lock) */
  /* prefaulting ahead of the appends */
  _Atomic size_t prefaulted; /* populated up to here */
  _Atomic size_t again;      /* a writer past here asks for more */
  _Atomic size_t window;     /* how far ahead (rstate__journal_ahead) */
  _Atomic size_t allocated;  /* the file's size (allocated; appends stay below it) */
  uint64_t n_syncs, n_appends;
} rstate__journal;

/* Creates journal gen in dir (a fresh file with its head, synced). */
int rstate__journal_create(rstate__journal **out, const char *dir, uint64_t gen);
/* Opens an existing journal for appending at end (bytes known good; what
 * lies after is zeroed). */
int rstate__journal_open(rstate__journal **out, const char *path, uint64_t gen, size_t end);
/* Appends one or more whole frames (len bytes). Under the store's lock. */
int rstate__journal_append(rstate__journal *j, const uint8_t *frames, size_t len);
/* Or in two steps: room for len bytes at the end (NULL, with the sentence,
 * when the file cannot grow), written by the caller, then committed. */
uint8_t *rstate__journal_reserve(rstate__journal *j, size_t len);
void rstate__journal_commit(rstate__journal *j, size_t len);
/* Makes the pages after the end writable in the page tables ahead of the
 * appends (MADV_POPULATE_WRITE, rstate__journal_ahead bytes), so appends do
 * not fault; asked for again (j->again) once the end has moved a quarter of
 * that. Any thread. */
void rstate__journal_prefault(rstate__journal *j);
/* How far ahead of end the journal is prefaulted: as far as a journal of
 * the store has grown (j->window, handed on to the next journal by a
 * compaction), from 512 KiB to 8 MiB: a store written slowly, or compacted
 * often, keeps little ahead; one written flat out, enough for the store's
 * thread to wait milliseconds for a CPU. Twice that is allocated ahead. */
size_t rstate__journal_ahead(rstate__journal *j, size_t end);
/* Allocates the file ahead of the appends (fallocate, not under the
 * store's lock), so that a writer that needs more room only maps it. The
 * store's thread. */
void rstate__journal_allocate_ahead(rstate__journal *j);
/* Takes back the last append: zeros over it, and the next sync covers
 * them (j->stale_to). The store's lock. */
void rstate__journal_undo(rstate__journal *j);
/* Counts a thread in among j's waiters (so that j is not closed under it)
 * and out again (the store's lock not needed). */
void rstate__journal_hold(rstate__journal *j);
void rstate__journal_release(rstate__journal *j);
/* Returns once the journal is on disk up to end (group commit), and
 * counts the caller out of j->waiters. */
int rstate__journal_wait(rstate__journal *j, size_t end);
/* Syncs what is published past what is synced, if anything, and the
 * zeros of undos up to j->stale_to: the pages of that range alone (msync,
 * MS_SYNC), so the prefaulted pages ahead stay writable. After a failed
 * sync, the zeros alone, and RSTATE_EIO still. The store's thread
 * (SYNC_INTERVAL), a compaction, a close, a change taken back. */
int rstate__journal_sync(rstate__journal *j);
/* Unmaps and closes (waits for no waiters first); remove: unlink the file. */
void rstate__journal_close(rstate__journal *j, bool remove);
char *rstate__journal_path(const char *dir, uint64_t gen);
/* Tests: the address space a journal maps at once (0: the default, 1 GiB;
 * 64 MiB on 32-bit machines). Read when a journal is created or opened. */
extern _Atomic size_t rstate__file_map_window;
/* Remaps of journals grown past their mapping (moved, or mapped anew
 * beside a mapping in use), by every file: store of the process. */
extern _Atomic uint64_t rstate__file_remaps;

/* ---- snapshot.c --------------------------------------------------------- */

typedef struct rstate__dirstate {
  uint64_t snap_gen;   /* journals from this generation on follow the snapshot (1: none) */
  size_t snap_size;    /* bytes of the snapshot file (0: none) */
  uint64_t *gens;      /* journal generations found, sorted */
  size_t n_gens;
  size_t last_end;     /* good bytes of the last journal (its torn tail beyond) */
  bool last_headless;  /* the last journal has no whole head (cut at creation) */
  uint64_t records;    /* journal records replayed */
} rstate__dirstate;

/* Reads dir's snapshot and journals (generations up to max_gen; UINT64_MAX:
 * all) into b, writing nothing. RSTATE_EIO with the file and the offset
 * for damage, RSTATE_ENOMEM. */
int rstate__dir_load(rstate_backend *b, const char *dir, uint64_t max_gen, rstate__dirstate *st);
void rstate__dirstate_free(rstate__dirstate *st);
/* Writes b as the snapshot of dir (temporary file, fsync, rename, fsync of
 * the directory), saying journals from gen on follow it. *size: its bytes. */
int rstate__snapshot_write(rstate_backend *b, const char *dir, uint64_t gen, size_t *size);

/* ---- backend.c ---------------------------------------------------------- */

extern const rstate_backend_ops rstate__file_ops;

/* An open file: store (the backend's object, shared with compact.c). */
typedef struct rstate__fstore {
  rstate_backend *local;
  char *dir;
  int lock_fd;
  rstate_sync sync;
  int interval_ms;
  size_t keep;
  /* under the local backend's lock */
  rstate__journal *cur; /* swapped only by the background thread */
  rstate__buf scratch;
  bool compact_asked;
  size_t compact_at;
  /* the background thread */
  pthread_t bg;
  bool bg_running;
  pthread_mutex_t bg_lock;
  pthread_cond_t bg_cond;
  bool stop, want_compact;
  pthread_t folder; /* the thread folding the last journal into a snapshot */
  bool folding, fold_done;
  atomic_bool want_prefault; /* set by a writer, cleared by the thread */
  uint64_t snap_gen;
  uint64_t identity; /* the store's, from its id file */
  rstate__sync_failure failure; /* its journals point here */
} rstate__fstore;

/* ---- compact.c ------------------------------------------------------------ */

/* The store's thread (started by the open, given the store): the
 * interval's syncs, allocating and prefaulting ahead (want_prefault),
 * compaction (want_compact), until stop. */
void *rstate__file_bg_main(void *arg);
/* The journal size that starts a compaction after a snapshot of snap_size
 * bytes. */
size_t rstate__file_compact_threshold(size_t snap_size);
/* Tests and benchmarks: the journal size that starts a compaction (0: the
 * default, 16 MiB or the snapshot's size when larger). */
extern _Atomic size_t rstate__file_compact_bytes;
/* Syncs made on journals (fdatasync, or msync of a range), by every file:
 * store of the process. */
extern _Atomic uint64_t rstate__file_syncs;
/* Tests: called after every sync of a journal that succeeded, with the
 * bytes of j now on disk (set before a store opens; NULL: none). */
extern void (*rstate__file_synced_hook)(const rstate__journal *j, size_t synced);
/* Tests: called before every sync of a journal (the fdatasync of a wait;
 * an msync of a range, holding the mapping as the msync would); an errno
 * returned makes that sync fail with it, unmade (0: made as usual). Set before a store opens (NULL:
 * none). */
extern int (*rstate__file_sync_fault)(const rstate__journal *j);
/* Tests: called once a journal's first failed sync is kept, and the store
 * told (it refuses changes from then on). Set before a store opens (NULL:
 * none). */
extern void (*rstate__file_sync_failed_hook)(const rstate__journal *j);

#endif
