/*
 * local/local.h — the local backend's variables, for the backends built on them.
 *
 * "mem:" is the local backend alone. "file:" (src/file/) is the same
 * in-memory variables plus a journal: it opens a local backend with a
 * journal hook, which the local backend calls under its lock for every
 * accepted change, after the change passed its checks and before it is
 * announced; and it restores what it reads from disk with the restore calls
 * below, which announce nothing.
 */
#ifndef RSTATE_LOCAL_H
#define RSTATE_LOCAL_H

#include "types/types.h"
#include "util/util.h"

typedef struct rstate__local_journal {
  void *ud;
  /* Under the backend's lock, in revision order, before the change is
   * announced: n changes of one revision (spec: the new definition for a
   * DEFINED change, else NULL). Returns RSTATE_OK, or an error with its
   * sentence that abandons the change. */
  int (*write)(void *ud, const rstate_change *changes, size_t n, const rstate__spec *spec);
  /* The announcement failed after write succeeded: take the change back. */
  void (*undo)(void *ud);
} rstate__local_journal;

/* Opens a local backend: keep_versions past versions kept per variable
 * (0: no history), journal NULL or called as above. host may be NULL for a
 * store only restored and walked (compaction): nothing is announced then. */
int rstate__local_new(rstate_backend **out, rstate_host *host, size_t keep_versions,
                      const rstate__local_journal *journal);

/* ---- restoring (opening a file: store), no announcement, no journal ---- */

/* Defines a variable (takes spec, freed on failure) at version 1 with the
 * spec's initial value, at this revision and time. RSTATE_EEXIST when
 * defined. */
int rstate__local_restore_define(rstate_backend *b, rstate__spec *spec, uint64_t revision, int64_t updated_ns);
/* Sets one variable's value (checked only for its kind) as a change to
 * version at revision. RSTATE_ENOTFOUND when it is not defined, RSTATE_EPROTO
 * when the value is not of the type's kind or the version does not follow. */
int rstate__local_restore_set(rstate_backend *b, const char *name, const rstate_value *value, uint64_t version,
                              uint64_t revision, int64_t ts, const char *source, const rstate_meta *meta,
                              size_t n_meta);
/* Sets a variable's current value, version, revision and time as they
 * were (a snapshot), keeping no history; checks as rstate__local_restore_set
 * but for the version. */
int rstate__local_restore_state(rstate_backend *b, const char *name, const rstate_value *value, uint64_t version,
                                uint64_t revision, int64_t updated_ns);
/* Undefines a variable. RSTATE_ENOTFOUND when it is not defined. */
int rstate__local_restore_undefine(rstate_backend *b, const char *name, uint64_t revision);
/* Replaces the kept history of a defined variable with entries (oldest
 * first; the last one is the current value, version, revision and time). */
int rstate__local_restore_history(rstate_backend *b, const char *name, const rstate_history_entry *entries,
                                  size_t n);
/* Raises the store revision to at least revision. */
void rstate__local_restore_revision(rstate_backend *b, uint64_t revision);

/* ---- walking (writing a snapshot) --------------------------------------- */

typedef struct rstate__local_view {
  const rstate__spec *spec;
  const rstate_value *value;
  uint64_t version, revision;
  int64_t updated_ns;
  const rstate_history_entry *history; /* oldest first, the current one last; n_history 0: none kept */
  size_t n_history;
} rstate__local_view;

/* Calls fn for every variable under the backend's lock (so only for a
 * backend nobody else uses); *revision gets the store revision. fn returning
 * nonzero stops the walk with that code. */
int rstate__local_walk(rstate_backend *b, int (*fn)(const rstate__local_view *v, void *ud), void *ud,
                       uint64_t *revision);
size_t rstate__local_count(rstate_backend *b);
/* The backend's lock, for a journal that swaps its file between changes. */
void rstate__local_lock(rstate_backend *b);
void rstate__local_unlock(rstate_backend *b);

extern const rstate_backend_ops rstate__local_ops;

#endif
