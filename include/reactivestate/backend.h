/*
 * reactivestate/backend.h — for backend authors.
 *
 * A store is the front end (the public API, the watch registry, filters,
 * debounce, inline and queued delivery) over a backend that keeps the
 * variables: the local backend for "mem:", the remote backend for "unix:" and
 * "tcp:". A backend is a table of operations, like SQLite's sqlite3_vfs: the
 * table opens with the version it was written for, grows only at the end, and
 * the front end checks the version and each member for NULL before calling it.
 *
 * Rules every backend follows:
 *  - Each operation returns RSTATE_OK or a negative RSTATE_E* code, and on
 *    failure sets the sentence with rstate_set_last_error() and changes
 *    nothing.
 *  - Arguments reaching a backend are already checked for NULL by the front
 *    end; names, types and values are the backend's to check.
 *  - Every accepted change (define, undefine, set) is reported to the front
 *    end with rstate_host_emit(), one call per store revision, in revision
 *    order, BEFORE the change becomes visible to readers and while nothing
 *    else can change the store (typically under the backend's lock). If the
 *    call fails (RSTATE_ENOMEM) the backend abandons the change and returns
 *    that error: a change is either applied and announced, or neither.
 *    rstate_host_emit never runs user code; callbacks run later, after the
 *    backend's operation has returned.
 *
 * A backend whose changes happen elsewhere (the remote backend: a server
 * makes them, a connection thread of the backend reads them) needs, and
 * finds here, everything the remote backend of this library uses:
 *  - It emits from its own thread, under its own lock, in revision order;
 *    then, outside its locks, it calls rstate_host_deliver() on that
 *    thread, so that inline watchers run there (as they run on a setter's
 *    thread after a local change).
 *  - It may keep watches itself (version 2: subscribe, unsubscribe) and
 *    report each watch's events with rstate_host_emit_to().
 *  - The feedback limit (RSTATE_CASCADE_LIMIT) follows the thread: events
 *    emitted on a thread while one of the store's callbacks runs on it
 *    count as changes made by that callback. So a backend whose call made
 *    from a callback reads its connection on the calling thread until the
 *    answer comes (the remote backend does, when the callback runs on its
 *    connection thread) emits what it reads meanwhile as that callback's
 *    changes, with nothing to pass.
 *  - Callbacks of its own that the options name with a store
 *    (rstate_options.on_state) get the store from rstate_host_store().
 *  - A backend never calls the store's public calls from inside one of its
 *    operations or under its lock; it reaches the front end only through
 *    the rstate_host_* calls below.
 */
#ifndef REACTIVESTATE_BACKEND_H
#define REACTIVESTATE_BACKEND_H

#include "../reactivestate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The table's version, as SQLite versions sqlite3_vfs (iVersion): version 1
 * is the table and the structs below as released in 0.1.0; version 2 adds
 * subscribe and unsubscribe; version 3 adds history; version 4 adds
 * identity and changes (both optional); version 5 adds restore; version 6
 * adds defer_durability. A later
 * version adds members only at the end of the table and of the structs a
 * backend fills (rstate_change, rstate_snapshot_var), and the front end
 * reads them only from backends that declare that version: a backend built
 * for an older version keeps working unchanged (a version 2 table's store
 * keeps no history). The rstate_host_* functions belong to the library, not to the
 * table: the ones added after 0.1.0 say so. */
#define RSTATE_BACKEND_VERSION 6

typedef struct rstate_backend rstate_backend; /* the backend's own state */
typedef struct rstate_host rstate_host;       /* the front end, as a backend sees it */
typedef struct rstate_sub rstate_sub;         /* one watch, for backends that subscribe (version 2) */

/* One accepted change, as a backend reports it. Everything is borrowed for
 * the duration of rstate_host_emit. */
typedef struct rstate_change {
  rstate_event_kind kind;         /* RSTATE_EVENT_CHANGED, _DEFINED or _DELETED */
  const char *name;
  rstate_type type;
  const rstate_value *old_value;  /* NULL for DEFINED */
  const rstate_value *new_value;  /* NULL for DELETED */
  uint64_t version;               /* after the change (DELETED: the last version) */
  uint64_t revision;              /* the store revision the change took */
  int64_t timestamp_ns;           /* CLOCK_REALTIME when it was accepted */
  const char *source;
  const rstate_meta *meta;
  size_t n_meta;
  /* Optional, a saving on every change: strlen(name) and
   * rstate_name_hash(name, name_len), which a backend that keys its
   * variables by that hash has at hand. name_hash 0: not given. */
  size_t name_len;
  uint64_t name_hash;
} rstate_change;

/* One variable of a snapshot; borrowed for the duration of the callback. */
typedef struct rstate_snapshot_var {
  const char *name;
  rstate_type type;
  const rstate_value *value;
  uint64_t version;
  /* CLOCK_REALTIME of its last change, the very timestamp_ns that change
   * was emitted with (a remote client compares the two after a gap, to see
   * a variable re-defined back to the version and value it had); 0 if
   * unknown, and then such a re-definition goes unseen. */
  int64_t updated_ns;
} rstate_snapshot_var;

/* Called under the backend's snapshot; must not call the store. Returns
 * RSTATE_OK to go on, or an error code that ends the snapshot with it. */
typedef int (*rstate_snapshot_fn)(const rstate_snapshot_var *var, void *ud);

typedef struct rstate_backend_ops {
  uint32_t version;   /* RSTATE_BACKEND_VERSION */
  const char *name;   /* "local", "remote", ... for messages */

  /* Opens the backend for uri; host is the front end to report changes to,
   * valid until close returns. */
  int (*open)(rstate_backend **out, const char *uri, const rstate_options *opts, rstate_host *host);
  /* Frees everything. Called once, after every watch has ended. */
  void (*close)(rstate_backend *b);

  int (*define)(rstate_backend *b, const rstate_var_def *def);
  int (*undefine)(rstate_backend *b, const char *name);
  /* out gets an owned copy (freed with rstate_value_clear); out or info may
   * be NULL (rstate_info passes out NULL). */
  int (*get)(rstate_backend *b, const char *name, rstate_value *out, rstate_var_info *info);
  /* One consistent snapshot; all or nothing. */
  int (*get_many)(rstate_backend *b, const char *const *names, size_t n, rstate_value *out, uint64_t *revision);
  /* Calls fn for every variable matching one of the patterns (exact names,
   * or prefixes ending in '*'; "*" is everything), each variable once, from
   * one consistent snapshot whose revision goes to *revision. The snapshot
   * must be serialized with the changes (the same lock): every change
   * emitted before it is in it, none emitted after. The front end relies on
   * this for include_initial: it registers a watch, then takes the snapshot,
   * and drops the queued changes the snapshot already shows. */
  int (*snapshot)(rstate_backend *b, const char *const *patterns, size_t n, rstate_snapshot_fn fn, void *ud,
                  uint64_t *revision);
  /* All or nothing, one revision for every item that changes. expected is
   * NULL or an array of n versions (0: any). */
  int (*set_many)(rstate_backend *b, const rstate_assign *items, size_t n, const uint64_t *expected,
                  const rstate_set_opts *opts, size_t *failed_index);
  /* The store revision; 0 when it cannot be asked. */
  uint64_t (*revision)(rstate_backend *b);

  /* ---- version 2 ---- */

  /* For backends whose changes happen elsewhere and that keep watches
   * themselves (the remote store: the server sends each subscription only
   * what it covers). Both NULL: the front end matches every change emitted
   * with rstate_host_emit against its watches, as for version 1. Both set:
   * the front end calls subscribe for every new watch instead of taking a
   * snapshot, and the backend reports that watch's events with
   * rstate_host_emit_to, never with rstate_host_emit.
   *
   * subscribe: patterns as for snapshot (exact names the front end has
   * checked exist). With include_initial, the INITIAL events (kind
   * RSTATE_EVENT_INITIAL, one per covered variable, revision R) are emitted
   * to sub before subscribe returns, and then every change above R. On
   * failure nothing is emitted to sub, then or later.
   * unsubscribe: after it returns, nothing is emitted to sub; it cannot
   * fail (a backend that cannot tell its server forgets the subscription). */
  int (*subscribe)(rstate_backend *b, rstate_sub *sub, const char *const *patterns, size_t n, bool include_initial);
  void (*unsubscribe)(rstate_backend *b, rstate_sub *sub);

  /* ---- version 3 ---- */

  /* Optional; NULL: the store keeps no history (rstate_history and
   * rstate_rollback fail with RSTATE_ENOTSUP). Calls fn for every kept
   * version of name above after_version, oldest first, the current one
   * last, with none of the backend's locks held (copy what you keep first);
   * fn returning nonzero stops the walk, and history returns RSTATE_OK.
   * Errors: RSTATE_ENOTSUP (this store was opened to keep no history,
   * whatever the name), RSTATE_ENOTFOUND (unknown variable), RSTATE_ENOMEM. rstate_rollback is built
   * on it by the front end: it finds the version here and sets its value. */
  int (*history)(rstate_backend *b, const char *name, uint64_t after_version,
                 int (*fn)(const rstate_history_entry *e, void *ud), void *ud);

  /* ---- version 4 ---- */

  /* Both optional (NULL: none), for a server whose clients outlive it: a
   * client watching through rstated --data that was killed and started
   * again on the same data resumes with the changes it missed, not RESYNC.
   *
   * identity: a nonzero number that is the same every time this store is
   * opened and differs between stores (a file: store keeps a random one in
   * its directory); 0: none. A server announces it as its instance_id, so
   * its clients' resume points stay valid across its restarts.
   *
   * changes: the changes of every store revision in (after_revision, up_to]
   * as the store still keeps them (its history): fn once per revision, in
   * order, with that revision's changes (CHANGED with old and new values,
   * or DEFINED; source and meta as emitted). All or nothing: when the store
   * no longer keeps every one of those revisions whole (an undefine among
   * them, a version dropped past keep_versions), RSTATE_ENOTFOUND and fn is
   * never called. fn runs with none of the backend's locks held; nonzero
   * stops the walk (RSTATE_OK). Errors: RSTATE_ENOTFOUND, RSTATE_ENOTSUP (no
   * history kept), RSTATE_ENOMEM. A server calls it, through the front end,
   * when a resume reaches back before its own memory of the changes. */
  uint64_t (*identity)(rstate_backend *b);
  int (*changes)(rstate_backend *b, uint64_t after_revision, uint64_t up_to,
                 int (*fn)(const rstate_change *changes, size_t n, void *ud), void *ud);

  /* ---- version 5 ---- */

  /* Optional (NULL: the store cannot be restored, RSTATE_ENOTSUP). Puts
   * variables back as a snapshot recorded them, so that a restarted
   * program (rstated and its snapshot file) continues their versions and
   * the store revision instead of starting them again. vars are records
   * as the snapshot operation reports them: each names a defined variable
   * of that type (RSTATE_ENOTFOUND, RSTATE_ETYPE), gives a value checked
   * against its definition as a set would be, a version no lower than its
   * current one (RSTATE_ECONFLICT) and updated_ns (0: now). All or nothing,
   * like set_many, with *failed_index the item to blame (SIZE_MAX: none).
   * The variables whose value or version differ from the record change in
   * one store revision, max(current + 1, revision), emitted as CHANGED
   * with the record's version and updated_ns as timestamp_ns (the version
   * may stay the same, or jump); each takes that revision. A variable
   * whose value and version are the record's takes only its updated_ns (if
   * not 0), with no event. With nothing to change, the store revision
   * still becomes at least revision. Revisions skipped over are never
   * emitted: no change holds them. */
  int (*restore)(rstate_backend *b, const rstate_snapshot_var *vars, size_t n, uint64_t revision,
                 size_t *failed_index);

  /* ---- version 6 ---- */

  /* Optional (NULL: a write is as durable as the store promises when it
   * returns, always). For a server answering many clients from one
   * thread: after defer_durability(b, true) on a thread, that thread's
   * writes may return before they are as durable as the store promises
   * (a file: store with RSTATE_SYNC_ALWAYS: before their fdatasync),
   * each change otherwise made, ordered and emitted as usual; then
   * defer_durability(b, false) on the same thread waits until every one
   * of them is, with one wait for them all (a file: store shares one
   * fdatasync among them), and returns RSTATE_OK or the error of that
   * wait (the changes are made but may not be durable). A server
   * answers those writes only after it. The deferral is the thread's: a
   * backend may defer and settle its other stores' writes of that thread
   * too (the file: backend does). */
  int (*defer_durability)(rstate_backend *b, bool on);
} rstate_backend_ops;

/* Opens a store over a backend of your own; ops must outlive the store.
 * Errors: RSTATE_EINVAL (NULL, a version newer than this library knows, a
 * required member missing), whatever ops->open returns. */
RSTATE_API int rstate_open_backend(rstate_store **out, const rstate_backend_ops *ops, const char *uri,
                                   const rstate_options *opts);

/* Reports one store revision's changes (n >= 1, all with the same
 * revision). Returns RSTATE_OK, or RSTATE_ENOMEM having queued nothing. */
RSTATE_API int rstate_host_emit(rstate_host *h, const rstate_change *changes, size_t n);
/* Version 2: reports n events to one subscribed watch, in its order
 * (revisions never decrease). Kinds: any of rstate_event_kind, including
 * INITIAL and RESYNC. coalesced: NULL (each event stands for one change),
 * or per event the count it stands for (rstate_event.coalesced; 0 for
 * INITIAL). Every change of one call shares changes[0]'s source and meta.
 * The calls for one sub are serialized by the backend (one at a time, as
 * the order above already asks; the library's backends make them under
 * their lock). Returns RSTATE_OK, or RSTATE_ENOMEM having queued nothing. */
RSTATE_API int rstate_host_emit_to(rstate_host *h, rstate_sub *sub, const rstate_change *changes,
                                   const uint32_t *coalesced, size_t n);
/* Runs the inline callbacks due on this thread; call it outside any lock
 * after emitting from a thread the front end did not call you on. */
RSTATE_API void rstate_host_deliver(rstate_host *h);
/* The store this host reports to, for the callbacks a backend makes itself
 * with a store argument (rstate_options.on_state); the store is valid
 * until the backend's close returns. NULL for NULL. Added after 0.1.0. */
RSTATE_API rstate_store *rstate_host_store(rstate_host *h);

/* The hash the front end indexes names by (never 0), for rstate_change. */
RSTATE_API uint64_t rstate_name_hash(const char *name, size_t len);

/* Sets the calling thread's rstate_last_error() sentence (printf format) and
 * returns code, so a backend can write `return rstate_set_last_error(...)`. */
RSTATE_API int rstate_set_last_error(int code, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* REACTIVESTATE_BACKEND_H */
