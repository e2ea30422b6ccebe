/*
 * reactivestate.h — libreactivestate, a typed variable store that tells its
 * watchers of every change: in order, with old and new value, nothing missed,
 * whether the store lives in this process ("mem:") or in a server reached over
 * a socket stream ("unix:", "tcp:").
 *
 * This header is the reference manual. Conventions that hold everywhere:
 *
 *  - Every call that can fail returns int: RSTATE_OK (0) or a negative
 *    RSTATE_E* code. After a failure, rstate_last_error() holds a sentence on
 *    the calling thread that names the variable and the rule broken.
 *  - A failed call changes nothing: no value, version, revision or watch.
 *  - All functions are thread-safe on one store, except rstate_close, which
 *    must not race with other calls on that store.
 *  - A NULL options pointer, or an all-zero options struct, means defaults.
 *  - Strings and values passed in are borrowed for the duration of the call
 *    (the library copies what it keeps). Values the library hands out are
 *    owned by the caller and released with rstate_value_clear / rstate_free.
 *  - No exported call takes or returns a struct holding a union by value,
 *    except the static inline value constructors below, so FFIs (ctypes)
 *    can call every function.
 */
#ifndef REACTIVESTATE_H
#define REACTIVESTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RSTATE_BUILDING) && defined(__GNUC__)
#define RSTATE_API __attribute__((visibility("default")))
#else
#define RSTATE_API
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* X(name, value, sentence): the one list the enum, rstate_strerror and
 * rstate_error_name are generated from. Codes are never renumbered. */
#define RSTATE_ERRNO_MAP(X)                                                        \
  X(OK, 0, "success")                                                              \
  X(EINVAL, -1, "invalid argument")                                                \
  X(ENOMEM, -2, "out of memory")                                                   \
  X(ENOTFOUND, -3, "no such variable or watch")                                    \
  X(EEXIST, -4, "a different variable of that name exists")                        \
  X(ETYPE, -5, "value of the wrong kind for the variable's type")                  \
  X(ECONSTRAINT, -6, "value breaks the variable's constraints")                    \
  X(ECONFLICT, -7, "the variable's version differs from the expected one")         \
  X(EIO, -8, "transport failure")                                                  \
  X(ETIMEDOUT, -9, "timed out")                                                    \
  X(EPROTO, -10, "malformed or unexpected protocol data")                          \
  X(EPERM, -11, "not allowed")                                                     \
  X(ECLOSED, -12, "store closed or connection lost")                               \
  X(ELIMIT, -13, "a configured limit was reached")                                 \
  X(ENOTSUP, -14, "not supported by this store or backend")                       \
  X(EBUSY, -15, "held by another process or store")

enum {
#define RSTATE__ERRNO_ENUM(name, value, sentence) RSTATE_##name = value,
  RSTATE_ERRNO_MAP(RSTATE__ERRNO_ENUM)
#undef RSTATE__ERRNO_ENUM
};

/* A static sentence for a code ("value breaks the variable's constraints");
 * never NULL, "unknown error code" for codes outside the list. */
RSTATE_API const char *rstate_strerror(int code);
/* The code's name ("RSTATE_ECONSTRAINT"); never NULL, "RSTATE_E?" when unknown. */
RSTATE_API const char *rstate_error_name(int code);
/* The detail of the last failure of a library call on the calling thread,
 * e.g. "max_tokens: 5000 is above the maximum 4096"; "" if none yet. Valid
 * until the next library call on this thread. Successful calls leave it alone. */
RSTATE_API const char *rstate_last_error(void);

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

#define RSTATE_VERSION_MAJOR 0 /* the soname follows MAJOR: libreactivestate.so.0 */
#define RSTATE_VERSION_MINOR 1
#define RSTATE_VERSION_PATCH 0
/* The library's version as a string, the numbers above joined with dots
 * ("0.1.0" for 0, 1, 0); static, never NULL. */
RSTATE_API const char *rstate_version(void);

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum rstate_kind { RSTATE_NONE = 0, RSTATE_FLOAT, RSTATE_INT, RSTATE_BOOL, RSTATE_STRING } rstate_kind;

typedef struct rstate_value {
  rstate_kind kind;
  union {
    double f;
    int64_t i;
    bool b;
    struct {
      const char *ptr; /* UTF-8, no NUL bytes inside; ptr[len] is a NUL */
      size_t len;
    } s;
  } u;
} rstate_value;

/* Constructors: build a value that borrows its string (nothing to free). */
static inline rstate_value rstate_float(double f) {
  rstate_value v = {RSTATE_FLOAT, {.f = f}};
  return v;
}
static inline rstate_value rstate_int(int64_t i) {
  rstate_value v = {RSTATE_INT, {.i = i}};
  return v;
}
static inline rstate_value rstate_bool(bool b) {
  rstate_value v = {RSTATE_BOOL, {.b = b}};
  return v;
}
/* rstate_stringn: p need not be NUL-terminated for the library's checks, but
 * a value handed to rstate_set is read as exactly len bytes. */
static inline rstate_value rstate_stringn(const char *p, size_t len) {
  rstate_value v;
  v.kind = RSTATE_STRING;
  v.u.s.ptr = p;
  v.u.s.len = len;
  return v;
}
static inline rstate_value rstate_string(const char *nul_terminated) {
  size_t n = 0;
  if (nul_terminated)
    while (nul_terminated[n]) n++;
  return rstate_stringn(nul_terminated, n);
}

/* Deep copy of src into dst (dst is overwritten, not cleared first). Free the
 * copy with rstate_value_clear. Errors: RSTATE_EINVAL (NULL, bad kind, string
 * with NULL ptr), RSTATE_ENOMEM. On failure dst is set to kind RSTATE_NONE. */
RSTATE_API int rstate_value_copy(rstate_value *dst, const rstate_value *src);
/* Frees a string the library gave you (from rstate_get, rstate_get_many,
 * rstate_value_copy) and sets kind RSTATE_NONE. Safe on NULL, on zeroed and on
 * non-string values; never call it on a string value you built yourself. */
RSTATE_API void rstate_value_clear(rstate_value *v);
/* Same kind and same contents (strings byte for byte; floats by ==, so
 * 0.0 equals -0.0). NULL equals only NULL. */
RSTATE_API bool rstate_value_equal(const rstate_value *a, const rstate_value *b);

/* ------------------------------------------------------------------------ */
/* Types and constraints                                                     */
/* ------------------------------------------------------------------------ */

typedef enum rstate_type {
  RSTATE_TYPE_FLOAT = 1,
  RSTATE_TYPE_INTEGER,
  RSTATE_TYPE_BOOLEAN,
  RSTATE_TYPE_STRING,
  RSTATE_TYPE_CHOICE,
  RSTATE_TYPE_MODULE
} rstate_type;
/* "float", "integer", "boolean", "string", "choice", "module"; "unknown"
 * for anything else. Static, never NULL. */
RSTATE_API const char *rstate_type_name(rstate_type t);

/*
 * Which kinds a type accepts (anything else is RSTATE_ETYPE):
 *   float    RSTATE_FLOAT, RSTATE_INT (converted); must be finite
 *   integer  RSTATE_INT, RSTATE_FLOAT when integral and within int64_t
 *   boolean  RSTATE_BOOL
 *   string, choice, module   RSTATE_STRING (valid UTF-8, no NUL byte)
 * Stored values keep the type's kind: a float variable always reads back as
 * RSTATE_FLOAT, an integer as RSTATE_INT.
 *
 * Which constraints apply (any other set field makes rstate_define fail with
 * RSTATE_EINVAL, as do constraints invalid in themselves):
 *   float, integer  min, max (inclusive; kind RSTATE_NONE = unbounded; given
 *                   as RSTATE_INT or RSTATE_FLOAT, converted like a value)
 *   string          min_length, max_length (bytes; max_length 0 = no limit),
 *                   pattern
 *   choice          choices (required, non-empty, no duplicates)
 *   module          choices (optional), module_namespace, pattern
 *   boolean         none
 * A pattern is a POSIX extended regular expression that must match the WHOLE
 * value; it is compiled once, at define time. Patterns whose compilation
 * could take unbounded memory are refused with RSTATE_EINVAL: longer than
 * 1024 bytes, a repetition stacked directly on another ("a**", "a{2}{3}",
 * and so the PCRE-style lazy "a*?"), a bound above 1000, groups nested more
 * than 32 deep, or more than 4000 atoms once every repetition is unrolled
 * ("(a{1,200}){1,200}", twenty nested "(...)+").
 *
 * A module value is a dotted identifier: "Name" or "A.B.Name", each part
 * [A-Za-z_][A-Za-z0-9_]*. With a namespace, the value must be
 * "<namespace>.<rest>" and, when choices are given, <rest> must be one of
 * them; with choices and no namespace the whole value must be one of them.
 * Namespace and choices must themselves be dotted identifiers.
 */
typedef struct rstate_constraints {
  rstate_value min, max;
  size_t min_length, max_length;
  const char *const *choices;
  size_t n_choices;
  const char *module_namespace;
  const char *pattern;
} rstate_constraints;

typedef struct rstate_var_def {
  const char *name;                       /* 1..255 bytes of [A-Za-z0-9_.:/-] */
  rstate_type type;
  rstate_value initial;                   /* must satisfy type and constraints */
  const rstate_constraints *constraints;  /* NULL: none (a choice needs choices) */
  const char *description;                /* optional; NULL and "" are the same */
} rstate_var_def;

/* ------------------------------------------------------------------------ */
/* Store                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct rstate_store rstate_store;

typedef enum rstate_conn_state {
  RSTATE_STATE_CONNECTED = 1,
  RSTATE_STATE_DISCONNECTED,
  RSTATE_STATE_CLOSED
} rstate_conn_state;

/* When a file: store's change reaches the disk. */
typedef enum rstate_sync {
  RSTATE_SYNC_INTERVAL = 0, /* default: the data reaches the disk every sync_interval_ms */
  RSTATE_SYNC_ALWAYS = 1,   /* a write returns once its change is on disk (fdatasync); concurrent
                               writers share one sync (group commit) */
  RSTATE_SYNC_NONE = 2      /* the operating system writes when it likes */
} rstate_sync;

typedef struct rstate_options {
  bool dispatch_thread;     /* queued and debounced callbacks run on a library thread */
  const char *token;        /* remote: secret sent in the handshake */
  int connect_timeout_ms;   /* remote: 0 = 2000 */
  int request_timeout_ms;   /* remote: 0 = 5000 */
  int heartbeat_ms;         /* remote: 0 = the server's interval; dead after 3 missed */
  bool no_reconnect;        /* remote: fail instead of reconnecting with backoff */
  void (*on_state)(rstate_store *s, rstate_conn_state state, void *userdata); /* remote */
  void *state_userdata;
  /* Added in the second round, at the end so older programs keep their layout: */
  rstate_sync sync;         /* file: when a change reaches the disk (below) */
  int sync_interval_ms;     /* file: RSTATE_SYNC_INTERVAL's period; 0 = 1000 */
  size_t keep_versions;     /* past versions kept per variable for rstate_history:
                               0 = the backend's default (mem: none, file: 100, redis: 100);
                               the current version is kept besides them */
  int replicas;             /* redis: a write waits until this many replicas hold it; 0 = none */
  int replica_timeout_ms;   /* redis: how long it waits for them; 0 = 1000 */
  int64_t peer_uid;         /* unix: a uid the server may run as besides the caller's and root's (below);
                               0 = none other; -1 = any uid, no check */
} rstate_options;

/* Opens a store. uri: "mem:" for an in-process store; "file:/dir" for one
 * kept in a directory (below); "unix:/path/to.sock" or "tcp:127.0.0.1:7411"
 * for a remote one; "redis:HOST:PORT/STORE" or
 * "redis-sentinel:H1:P1,H2:P2/MASTER/STORE" for one kept in Redis (below,
 * and docs/REDIS.md). On success *out is the store, to be released with
 * rstate_close. Errors: RSTATE_EINVAL (NULL out/uri, unknown scheme, bad
 * options, a malformed address or a host name that does not resolve),
 * RSTATE_ENOMEM, for file: stores RSTATE_EBUSY and RSTATE_EIO, and for
 * remote stores RSTATE_EIO, RSTATE_EPERM, RSTATE_ETIMEDOUT (see below). On
 * failure *out is NULL. */
RSTATE_API int rstate_open(rstate_store **out, const char *uri, const rstate_options *opts);
/*
 * Durable stores ("file:PATH"): everything a mem: store does, kept in the
 * directory PATH (created with mode 0700 when missing) as a snapshot and a
 * journal of every accepted change after it (docs/FILE_FORMAT.md).
 *  - Definitions, values, versions, revision, change times and the kept
 *    history (keep_versions, default 100) survive rstate_close and the
 *    process being killed at any moment: a change whose call returned
 *    RSTATE_OK is there after reopening, in every sync mode, because it is
 *    in the journal (a shared mapping of the file: in the kernel's page
 *    cache) before the call returns and before any watcher sees it.
 *    RSTATE_SYNC_ALWAYS adds a crash of the machine: the call returns once
 *    an fdatasync covered the change; concurrent writers share one (group
 *    commit), and a watcher may see the change while that sync runs. A
 *    failed sync is RSTATE_EIO, and the change is then made but may not be
 *    on disk. RSTATE_SYNC_INTERVAL syncs every sync_interval_ms on a thread
 *    of the store's; RSTATE_SYNC_NONE leaves it to the operating system (and
 *    does not sync on close).
 *  - After any sync of its journal failed (a SYNC_ALWAYS wait's or the
 *    interval's), the store refuses every change (define, undefine, set,
 *    rollback) with RSTATE_EIO, changing nothing, and the sentence names
 *    the store, the journal and the error: "x: file:/d: a sync of
 *    journal.0000000000000001 failed: Input/output error; the store takes
 *    no more changes until it is opened again (changes made before may not
 *    be on disk)". Reads go on. It lasts until the store is closed and
 *    opened again, not until a later sync succeeds: after a failed
 *    write-back the kernel may mark the pages clean, and the next sync then
 *    succeeds without writing them; opening reads back what the disk holds.
 *    The library has no log: an interval sync's failure is told by the
 *    next change's call.
 *  - A call that fails after its change reached the journal (its
 *    announcement could not be made: RSTATE_ENOMEM) takes the record back
 *    and returns once the zeros over it are synced, in every sync mode, so
 *    that no power loss brings back a change whose call failed.
 *  - Revisions continue across reopening.
 *  - One holder: a second rstate_open of the directory, from this process
 *    or another, is RSTATE_EBUSY naming the holder's pid (an OFD lock on
 *    PATH/lock, released when the holder closes or dies).
 *  - A last record cut short by a crash is dropped when the store opens.
 *    Any other damage (a record failing its checksum with whole records
 *    after it, zeros with records after them, a damaged or unreadable
 *    snapshot) is RSTATE_EIO naming the file and the byte offset, and no
 *    file is changed. A power loss under SYNC_INTERVAL or SYNC_NONE can
 *    leave such damage when pages of the journal reached the disk out of
 *    order; SYNC_ALWAYS never does.
 *  - Compaction runs on the store's thread once the journal passes 16 MiB
 *    (or the last snapshot's size when larger): the journal is swapped for
 *    a new one under the store's lock (a pointer swap), and the old snapshot
 *    and journal are read back into a private copy (as much memory again as
 *    the variables take, for the time it runs), written as the new snapshot
 *    (a temporary file, synced, renamed, the directory synced), and the old
 *    journal removed. A set never waits for it.
 *  - The journal file grows in steps of 1 MiB up to 64 MiB at a time, made
 *    with fallocate: a full disk is RSTATE_EIO on the change that needs the
 *    room, and that change is not made (where the file system cannot
 *    allocate, a zero byte is written into each new block instead, with
 *    the same outcome). One record holds at most 256 MiB (RSTATE_ELIMIT
 *    beyond).
 */
/*
 * Stores kept in Redis 7 ("redis:HOST:PORT/STORE", or through Sentinel
 * "redis-sentinel:H1:P1,H2:P2/MASTER/STORE"; STORE: 1..200 bytes of
 * [A-Za-z0-9_.:-]): every process that opens the same STORE shares it, with
 * the calls, codes, sentences and guarantees of "mem:" and these additions:
 *  - Each write is one atomic Redis Function call (the library loads its
 *    Function library when the server lacks it); the revision is the id of
 *    the change in the store's log, a stream kept to about 100,000 entries.
 *  - rstate_open fails as a remote store's does: RSTATE_EIO (unreachable),
 *    RSTATE_EPERM (password refused), RSTATE_ETIMEDOUT. token is the
 *    password, "password" or "user:password".
 *  - A write the user's Redis ACL does not allow whole (every command it
 *    runs on every key it writes) fails with RSTATE_EPERM, naming the
 *    command refused, and writes nothing (docs/REDIS.md).
 *  - Watches are fed by one reader thread per store; inline callbacks run
 *    there, and a write returns after this store's callbacks for it ran.
 *    After a lost connection watches resume after the last revision seen;
 *    when the log no longer reaches back or no longer holds what was seen
 *    (a failover lost writes, the store was flushed and made again), they
 *    get RSTATE_EVENT_RESYNC / DEFINED / DELETED as remote stores do
 *    (coalesced: the versions spanned, 1 for a re-defined variable).
 *  - While Redis cannot be reached, calls fail with RSTATE_ECLOSED and are
 *    never retried; each call tries to connect again (redis-sentinel: asks
 *    the Sentinels for the primary), so calls work again once one is there.
 *  - replicas > 0: a write then waits (WAIT) until that many replicas hold
 *    it, at most replica_timeout_ms; fewer: RSTATE_ETIMEDOUT, the change
 *    applied on the primary only (an unknown outcome, not to be retried).
 *  - rstate_history and rstate_rollback read the store's log back: the
 *    versions it still holds (keep_versions bounds them, 0: 100 before
 *    the current one), the current one always (docs/REDIS.md).
 *  - rstate_server_start serves such a store like any other (rstated
 *    --store redis:...): non-C clients and untrusted writers go through it.
 *  - Values are checked by the writing client: anyone who writes the keys
 *    rs:{STORE}:* directly bypasses the checks. Untrusted writers go through
 *    rstated (serving a redis: store is not supported yet: RSTATE_EINVAL).
 *  - rstate_history and rstate_rollback: RSTATE_ENOTSUP for now.
 *
 * Remote stores ("unix:", "tcp:"): the store lives in a server process
 * (rstate_server_start, rstated) and every call works as on "mem:", with
 * these additions:
 *  - rstate_open connects once within connect_timeout_ms and fails if it
 *    cannot: RSTATE_EIO (unreachable), RSTATE_EPERM (token refused),
 *    RSTATE_ETIMEDOUT (no answer). One connection carries every request and
 *    every watch of the store; a connection thread reads it. One more
 *    thread per process, while any remote store is open, watches the
 *    heartbeats of them all.
 *  - A call may poll for its answer for a short, bounded time before it
 *    sleeps, so that a fast answer costs the caller no wakeup; this changes
 *    when a call returns and the CPU it uses meanwhile, never what it
 *    returns. How long, and when it does not poll at all, is tuning that may
 *    change between versions: docs/TUNING.md.
 *  - On a Unix socket, before sending anything (the token included), the
 *    client checks who listens there (SO_PEERCRED): the server must run as
 *    the calling process's effective uid, as root, or as peer_uid when
 *    that is above 0. Anyone else is refused with RSTATE_EPERM, at
 *    rstate_open and at every reconnect, with a sentence naming both uids:
 *    another user could have bound the socket first (in /tmp, say), and
 *    would otherwise receive the token and writes that it never stores.
 *    peer_uid -1 turns the check off; TCP has no such check (use tokens).
 *  - on_state runs on the connection thread: CONNECTED once before
 *    rstate_open returns and after each reconnect, DISCONNECTED on each
 *    loss, CLOSED inside rstate_close. It may call the store, except
 *    rstate_dispatch while another thread may be closing the store (that
 *    would race rstate_close, as any call from another thread would).
 *  - A lost connection is noticed at once (the socket closes) or after three
 *    heartbeat intervals of silence (checked every quarter interval, so
 *    within three and a quarter; counted from the last frame, or from the
 *    end of the inline callbacks it brought). Then every call that needs the server
 *    fails at once with RSTATE_ECLOSED, and so does a request in flight: a
 *    request is never sent twice behind the caller's back (it may have been
 *    applied). rstate_unwatch still succeeds; rstate_revision returns 0.
 *    A request with no answer within request_timeout_ms is RSTATE_ETIMEDOUT.
 *  - Unless no_reconnect, the connection thread reconnects: the first try
 *    after 25-50 ms, then each wait doubling up to 5 s, each drawn at random
 *    between half and all of it (jitter), for as long as the store is open.
 *  - After a reconnect every watch resumes after the last revision it
 *    received: the server replays what it missed from its history, or, for
 *    a durable store (file:, rstated --data) whose server restarted or whose
 *    history no longer reaches back, from the store's kept versions, as long
 *    as they hold every change since (keep_versions). When neither reaches
 *    back (or a server of a mem: store restarted), the watch gets
 *    RSTATE_EVENT_RESYNC for each covered variable whose value, version,
 *    type or time of last change differs from the last it saw (old_value:
 *    that value; coalesced: the versions it spans, 1 if it was re-defined,
 *    as the type changing or the version not growing shows), DEFINED for a
 *    variable new to it and DELETED for one gone; nothing for the unchanged
 *    ones. A variable re-defined back to the value and version the watch
 *    saw gets a RESYNC (old_value equal to new_value, coalesced 1).
 *  - Inline callbacks run on the connection thread (guarantee 4). A write
 *    (set, define, undefine) returns once this store's inline callbacks for
 *    its own change have run, as on "mem:", unless this client has fallen
 *    more than the server's max_queue_bytes behind. Callbacks may call the
 *    store: the call then reads the connection itself until its answer
 *    comes.
 *  - A watch the server does not take back after a reconnect (it refused,
 *    out of memory, or the watch does not fit in that server's max_frame)
 *    receives nothing until it does: the connection thread asks again every
 *    heartbeat interval and after every reconnect, and the watch then
 *    resumes as after any gap (the missed changes, or RESYNC). The store's
 *    other watches and calls go on meanwhile.
 *  - A client far behind gets coalesced events (coalesced > 1): whole values,
 *    first old value, latest new value, nothing lost without being counted.
 *  - Definitions are checked locally before they are sent (the same errors,
 *    no round trip); values are checked by the server, the authority, whose
 *    code and sentence come back unchanged. A value the protocol cannot
 *    carry (of an unknown kind, or a string holding a NUL byte) is
 *    RSTATE_ETYPE at once, whether or not the variable exists; a batch
 *    over the server's max_frame is RSTATE_ELIMIT with failed_index
 *    SIZE_MAX.
 */

/* Ends every watch (each destroy callback runs once), frees every resource.
 * A server serving the store stops serving it first (see
 * rstate_server_start): rstate_close waits for a request it is serving, and
 * its on_client runs for each client. NULL is a no-op. Must not race with
 * any other call on the store, rstate_server_stop of a server serving it
 * included, and must not be called from a callback of the store or of
 * such a server. */
RSTATE_API void rstate_close(rstate_store *s);

/* Defines a variable. Defining the same name again with an identical
 * definition (type, initial value, constraints, description) is RSTATE_OK and
 * changes nothing; a different definition is RSTATE_EEXIST. A new variable
 * starts at version 1 and takes the next store revision.
 * Errors: RSTATE_EINVAL (NULL, bad name, bad type, invalid or inapplicable
 * constraints), RSTATE_ETYPE (initial of the wrong kind, non-finite, bad
 * UTF-8), RSTATE_ECONSTRAINT (initial breaks the constraints), RSTATE_EEXIST,
 * RSTATE_ENOMEM. */
RSTATE_API int rstate_define(rstate_store *s, const rstate_var_def *def);
/* Removes a variable; takes a store revision. Errors: RSTATE_EINVAL,
 * RSTATE_ENOTFOUND. Defining it again later starts it at version 1. */
RSTATE_API int rstate_undefine(rstate_store *s, const char *name);

/* Copies the current value into *out (caller frees with rstate_value_clear).
 * Errors: RSTATE_EINVAL, RSTATE_ENOTFOUND, RSTATE_ENOMEM (string copy);
 * on failure *out is kind RSTATE_NONE. */
RSTATE_API int rstate_get(rstate_store *s, const char *name, rstate_value *out);
/* Reads n variables as one consistent snapshot into out[0..n-1] (each freed
 * with rstate_value_clear); *revision (may be NULL) is the store revision the
 * snapshot reflects. All or nothing: on failure every out[i] is RSTATE_NONE.
 * Errors: RSTATE_EINVAL, RSTATE_ENOTFOUND (names the variable), RSTATE_ENOMEM. */
RSTATE_API int rstate_get_many(rstate_store *s, const char *const *names, size_t n, rstate_value *out,
                               uint64_t *revision);

typedef struct rstate_var_info {
  rstate_type type;
  uint64_t version;     /* 1 at define, +1 per accepted change */
  uint64_t revision;    /* store revision of the last change (or the define) */
  int64_t updated_ns;   /* CLOCK_REALTIME of that change */
} rstate_var_info;
/* Errors: RSTATE_EINVAL, RSTATE_ENOTFOUND. */
RSTATE_API int rstate_info(rstate_store *s, const char *name, rstate_var_info *out);
/* Calls fn(name, type, ud) for every variable, in name order, from one
 * consistent snapshot taken before the first call (fn may call the store).
 * fn returning nonzero stops the walk. The name is valid during the call.
 * Errors: RSTATE_EINVAL, RSTATE_ENOMEM. */
RSTATE_API int rstate_list(rstate_store *s, int (*fn)(const char *name, rstate_type type, void *ud), void *ud);
/* The store revision: the count of accepted changes (defines, undefines,
 * sets; one per rstate_set_many). 0 for NULL or when it cannot be asked. */
RSTATE_API uint64_t rstate_revision(rstate_store *s);

typedef struct rstate_meta {
  const char *key;
  const char *value;
} rstate_meta;
typedef struct rstate_set_opts {
  const char *source;       /* who changed it: "python", "optimizer", ...; NULL = none */
  const rstate_meta *meta;  /* extra pairs delivered with the events; keys and values, like
                               source, valid UTF-8 (else RSTATE_EINVAL) */
  size_t n_meta;
} rstate_set_opts;

/* Sets a variable. The value is coerced to the type's kind (see above) and
 * checked against the constraints. A value equal to the current one returns
 * RSTATE_OK and changes nothing (no version, no revision, no event).
 * Errors: RSTATE_EINVAL (NULL, bad opts), RSTATE_ENOTFOUND, RSTATE_ETYPE,
 * RSTATE_ECONSTRAINT, RSTATE_ENOMEM. */
RSTATE_API int rstate_set(rstate_store *s, const char *name, const rstate_value *v, const rstate_set_opts *opts);
/* As rstate_set, but RSTATE_ECONFLICT unless the variable's version equals
 * expected_version (checked before the value, so equal values conflict too). */
RSTATE_API int rstate_set_if(rstate_store *s, const char *name, const rstate_value *v, uint64_t expected_version,
                             const rstate_set_opts *opts);

/* Scalar shortcuts: no struct crosses the call. Same errors as rstate_set /
 * rstate_get. get_float reads float and integer variables; get_int integer;
 * get_bool boolean; get_string string, choice and module; any other pairing
 * is RSTATE_ETYPE. set_string takes a NUL-terminated string. */
RSTATE_API int rstate_set_float(rstate_store *s, const char *name, double v);
RSTATE_API int rstate_set_int(rstate_store *s, const char *name, int64_t v);
RSTATE_API int rstate_set_bool(rstate_store *s, const char *name, bool v);
RSTATE_API int rstate_set_string(rstate_store *s, const char *name, const char *v);
RSTATE_API int rstate_get_float(rstate_store *s, const char *name, double *out);
RSTATE_API int rstate_get_int(rstate_store *s, const char *name, int64_t *out);
RSTATE_API int rstate_get_bool(rstate_store *s, const char *name, bool *out);
/* *out is a NUL-terminated copy; free it with rstate_free. */
RSTATE_API int rstate_get_string(rstate_store *s, const char *name, char **out);
/* Frees memory the library handed out as a plain pointer. NULL is a no-op. */
RSTATE_API void rstate_free(void *p);

typedef struct rstate_assign {
  const char *name;
  rstate_value value;
} rstate_assign;
/* Sets several variables at once, all or nothing: on failure nothing changed
 * and *failed_index (may be NULL) names the item to blame (SIZE_MAX when no
 * single item is). A name given twice is RSTATE_EINVAL at its second
 * occurrence. Items equal to their current value are skipped; the others
 * take ONE store revision together, and watchers get their events with that
 * revision. n == 0 is RSTATE_OK. Errors: as rstate_set. */
RSTATE_API int rstate_set_many(rstate_store *s, const rstate_assign *items, size_t n, const rstate_set_opts *opts,
                               size_t *failed_index);

/* ------------------------------------------------------------------------ */
/* History and rollback                                                      */
/* ------------------------------------------------------------------------ */

typedef struct rstate_history_entry {
  uint64_t version;         /* the variable's version this entry records */
  uint64_t revision;        /* the store revision of that change */
  int64_t timestamp_ns;     /* CLOCK_REALTIME when it was accepted */
  rstate_value value;       /* the value it took at that version (borrowed during the callback) */
  const char *source;       /* NULL if none */
  const rstate_meta *meta;
  size_t n_meta;
} rstate_history_entry;

/* Calls fn for every kept version of NAME above after_version, oldest first,
 * the current one last; fn returning nonzero stops the walk (RSTATE_OK). The
 * entry and what it points to are valid during the call only. A store with
 * keep_versions K keeps the current version and the K before it (the
 * definition, version 1, included, with the initial value and no source).
 * fn runs with no lock held, on the calling thread, and may call the store;
 * the entries are copied first. History starts again when a variable is
 * re-defined. A remote store answers from the store it is served (its
 * rollback is this history read, then a set). Errors: RSTATE_ENOTSUP when
 * the store keeps no history (a mem: store opened with keep_versions 0; a
 * remote store serving such a store, or connected to a server older than
 * protocol version 2),
 * whatever the name; else RSTATE_ENOTFOUND for an unknown variable;
 * RSTATE_ENOMEM. */
RSTATE_API int rstate_history(rstate_store *s, const char *name, uint64_t after_version,
                              int (*fn)(const rstate_history_entry *e, void *ud), void *ud);
/* Sets NAME to the value it had at VERSION, as a new change: its version and
 * the store revision grow and watchers get CHANGED, with opts' source and
 * meta. Checked against the current definition like any set, and like any
 * set a value equal to the current one changes nothing (rolling back to the
 * current version is RSTATE_OK and no change). Errors: RSTATE_ENOTFOUND when
 * that version is not kept (version 0 never is); RSTATE_ECONFLICT for a
 * version above the current one; RSTATE_ENOTSUP as rstate_history; and
 * those of rstate_set. */
RSTATE_API int rstate_rollback(rstate_store *s, const char *name, uint64_t version, const rstate_set_opts *opts);

/* ------------------------------------------------------------------------ */
/* Watching                                                                  */
/* ------------------------------------------------------------------------ */

typedef uint64_t rstate_watch_id;
enum { RSTATE_CONTINUE = 0, RSTATE_UNWATCH = 1 };

typedef enum rstate_event_kind {
  RSTATE_EVENT_INITIAL = 1, /* current value at registration (include_initial) */
  RSTATE_EVENT_CHANGED,     /* a change */
  RSTATE_EVENT_DEFINED,     /* a variable the watch covers was defined */
  RSTATE_EVENT_DELETED,     /* ... was undefined */
  RSTATE_EVENT_RESYNC       /* after a gap that could not be replayed (remote) */
} rstate_event_kind;

typedef struct rstate_event {
  rstate_event_kind kind;
  rstate_store *store;      /* the store the watch belongs to */
  rstate_watch_id watch;
  const char *name;
  rstate_type type;
  rstate_value old_value;   /* before the first change this event covers; NONE for INITIAL/DEFINED */
  rstate_value new_value;   /* NONE for DELETED */
  uint64_t version;         /* the variable's version after this event */
  uint64_t revision;        /* store revision of this event */
  int64_t timestamp_ns;     /* CLOCK_REALTIME when the change was accepted */
  const char *source;       /* rstate_set_opts.source, or NULL */
  const rstate_meta *meta;
  size_t n_meta;
  uint32_t coalesced;       /* changes this event stands for (see API docs); 0 for INITIAL */
} rstate_event;
/* Lifetime: the event a callback (fn or filter) receives, and everything it
 * points to (name, the strings of old_value and new_value, source, meta and
 * their strings), belong to the library and are valid during that call
 * only. Copy what you need to keep: rstate_value_copy for a value, your own
 * copy of a string. ev->store outlives the call: it is valid until
 * rstate_close. */

typedef int (*rstate_watch_fn)(const rstate_event *ev, void *userdata);
typedef bool (*rstate_filter_fn)(const rstate_event *ev, void *userdata);

typedef struct rstate_watch_opts {
  bool include_initial;     /* first an INITIAL event per covered variable, then every later change */
  rstate_filter_fn filter;  /* NULL: deliver everything */
  uint32_t debounce_ms;     /* 0: none; else trailing edge, implies queued */
  uint32_t max_wait_ms;     /* with debounce: deliver at least this often; 0: no cap */
  bool queued;              /* deliver through rstate_dispatch or the dispatch thread */
  const char *ignore_source;/* changes whose source equals this are not delivered */
  void (*destroy)(void *userdata); /* called exactly once when the watch ends */
} rstate_watch_opts;

/*
 * Watches n names; a name ending in '*' covers every variable whose name
 * starts with the rest, including ones defined later ("*" alone: all). A
 * variable covered by several names of one watch gets one event per change.
 * On success *out (may be NULL) is the watch id, never 0.
 *
 * Delivery. An inline watch (the default) runs fn on the thread whose call
 * changed a covered variable, after the store's locks are released and before
 * that call returns — unless that thread is inside a callback already, in
 * which case the event is delivered after that callback returns (no
 * recursion). A queued or debounced watch runs fn from rstate_dispatch or
 * the dispatch thread; queued watches take turns there, at most 256 events
 * of one before the others ready get theirs, so a watch whose setters never
 * pause holds up no other. A watch's fn and filter never run concurrently with
 * themselves, and every watch receives its events in increasing revision
 * order. fn and filter may call any function on the store except rstate_close
 * and rstate_dispatch; a chain of more than 1000 callbacks each changing a
 * variable another watch covers is cut: the change that would extend it
 * fails with RSTATE_ELIMIT.
 *
 * include_initial: one INITIAL event per covered variable (in name order, all
 * with the revision of one snapshot), then every change after that snapshot,
 * with no gap and no duplicate even while other threads set. Without it, the
 * watch gets every change accepted after rstate_watch returns (and possibly
 * some accepted while it ran).
 *
 * An exact-name watch stays registered when its variable is undefined (it
 * gets DELETED) and gets DEFINED if the name is defined again.
 *
 * filter runs at delivery, on the delivering thread; ignore_source drops
 * CHANGED events whose source equals it before they are queued. Both count in
 * stats.filtered.
 *
 * Debounce (debounce_ms > 0, implies queued): per variable, changes merge
 * until the variable was quiet for debounce_ms, or max_wait_ms passed since
 * the first change of the burst; the event then has old_value from before the
 * first change, everything else from the last, and coalesced = the number of
 * changes. INITIAL, DEFINED and DELETED are delivered without delay, after
 * that variable's pending change. Bursts of different variables are
 * delivered in the order they come due. max_wait_ms without debounce_ms is
 * RSTATE_EINVAL.
 *
 * destroy(userdata) runs exactly once when the watch ends — rstate_unwatch,
 * returning RSTATE_UNWATCH, or rstate_close — and never when rstate_watch
 * fails.
 *
 * Errors: RSTATE_EINVAL (NULL store or fn, no names, a bad name or pattern,
 * bad options), RSTATE_ENOTFOUND (an exact name not defined; nothing is
 * registered), RSTATE_ENOMEM.
 */
RSTATE_API int rstate_watch(rstate_store *s, const char *const *names, size_t n, rstate_watch_fn fn, void *userdata,
                            const rstate_watch_opts *opts, rstate_watch_id *out);
/* Ends a watch: no call of its fn starts after this returns. From another
 * thread it waits for a running call to finish and destroy has run when it
 * returns; from inside the watch's own fn or filter it returns at once and
 * destroy runs right after that call returns. Events still queued for the
 * watch are dropped. Because it waits, two callbacks running on two threads
 * that each unwatch the other's watch wait for each other for ever: end
 * such pairs from outside their callbacks, or by returning RSTATE_UNWATCH.
 * Errors: RSTATE_EINVAL, RSTATE_ENOTFOUND (no such watch, or already
 * ended). */
RSTATE_API int rstate_unwatch(rstate_store *s, rstate_watch_id id);

typedef struct rstate_watch_stats {
  uint64_t delivered;  /* callbacks run, INITIAL included */
  uint64_t filtered;   /* events not delivered because of filter or ignore_source */
  uint64_t coalesced;  /* changes merged into another event: the sum of (coalesced - 1) */
  uint64_t pending;    /* events queued or waiting in debounce */
} rstate_watch_stats;
/* Errors: RSTATE_EINVAL, RSTATE_ENOTFOUND. */
RSTATE_API int rstate_get_watch_stats(rstate_store *s, rstate_watch_id id, rstate_watch_stats *out);
/* Live watches covering this name, defined or not (0 on NULL arguments). */
RSTATE_API size_t rstate_watcher_count(rstate_store *s, const char *name);

/* Event-loop integration for queued and debounced watches (like libcurl's
 * multi_socket or hiredis adapters): poll rstate_fd() for reading with
 * rstate_timeout() as the timeout, then call rstate_dispatch(s, 0). */
/* A pollable fd (an epoll set), readable when rstate_dispatch has work now,
 * including a debounce deadline that has passed. Owned by the store: do not
 * close or read it. Errors: RSTATE_EINVAL. */
RSTATE_API int rstate_fd(rstate_store *s);
/* Milliseconds until the next debounce deadline (rounded up), 0 when work
 * is ready now, -1 when nothing is pending. */
RSTATE_API int rstate_timeout(rstate_store *s);
/* Runs every queued and due callback; with none ready, waits up to timeout_ms
 * (0: don't wait, -1: until one is) and runs the first batch. Returns how many
 * callbacks ran (events a filter dropped do not count), or an error:
 * RSTATE_EINVAL when the store has a dispatch thread, when called from a
 * callback, or for a timeout_ms below -1. Any thread may call it; calls are
 * serialized per watch. */
RSTATE_API int rstate_dispatch(rstate_store *s, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Server                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A server makes a store reachable by other processes: clients open it with
 * rstate_open("unix:/path" or "tcp:HOST:PORT") and get the same API over the
 * protocol of docs/PROTOCOL.md. The served store stays an ordinary store:
 * the program keeps using it directly, and every change, local or remote,
 * reaches every watcher, local or remote.
 *
 * Threads: each server runs one thread of its own. Clients' requests run on
 * it through the store's public calls, so inline callbacks of the served
 * store's watches may run on that thread when a client writes (keep them
 * short: clients wait meanwhile). Setters never wait for clients: a change
 * costs them one copy into the server's history, whatever the clients do.
 * Several servers may serve one store (up to 4).
 *
 * Slow clients: a client that falls more than max_queue_bytes behind has
 * its pending changes merged per variable (the events then have
 * coalesced > 1); memory stays bounded and nothing is lost uncounted.
 */
typedef struct rstate_server rstate_server;
typedef struct rstate_server_opts {
  const char *token;        /* required for read-write access; NULL or "": none needed */
  const char *read_token;   /* grants get/watch only; NULL or "": none. When either token is set,
                               a client must present one of them. Both are copied. */
  int heartbeat_ms;         /* 0 = 1000; a client may ask for a shorter one, down to a floor of
                               100 ms (a HELLO asking for less gets 100, or this value when it is
                               lower); a client silent for 3 intervals is closed. The server wakes
                               4 times per the shortest interval of the clients connected now.
                               Negative: RSTATE_EINVAL */
  size_t history;           /* events kept so reconnecting clients can resume; 0 = 65536 (see
                               history_bytes too) */
  size_t max_clients;       /* clients past the handshake; 0 = 1024; a client whose handshake
                               completes over the limit is refused (RSTATE_ELIMIT). Connections
                               still in the handshake do not count (see max_handshakes) */
  size_t max_frame;         /* bytes; 0 = 1 MiB; at least 4096 (else RSTATE_EINVAL); a client
                               sending a larger frame is disconnected */
  size_t max_queue_bytes;   /* per client, before its events are coalesced; 0 = 4 MiB */
  /* NULL, or called on the server thread when a client has shaken hands
   * (connected true, why NULL) and when such a client goes (false, why: a
   * sentence, such as "the client closed the connection"). peer names the
   * client: "pid 4242 uid 1000" on a Unix socket, "127.0.0.1:54321" over
   * TCP; valid during the call. It must not call rstate_server_stop. */
  void (*on_client)(rstate_server *srv, const char *peer, bool connected, const char *why, void *userdata);
  void *client_userdata;
  /* Fields below were added later; a zeroed struct gets every default. */
  size_t history_bytes;     /* bytes the history (above) may hold, counting each change's name,
                               old and new values, source and meta; 0 = 64 MiB. The oldest
                               changes are forgotten first; a client resuming from before what is
                               kept gets a snapshot (RESYNC) instead. The newest change is always
                               kept, however large */
  size_t max_handshakes;    /* connections accepted but not yet through the handshake; 0 = 64.
                               They never count against max_clients, so they cannot lock
                               authenticated clients out. When all are taken, a new connection
                               closes the one waiting longest (RSTATE_ELIMIT) if it has waited
                               250 ms; otherwise (a burst of clients connecting) the server
                               accepts no more until one completes, and the newcomers wait in
                               the listening socket's backlog */
  int handshake_ms;         /* a connection that has not completed its handshake this long after
                               it was accepted is closed (RSTATE_ETIMEDOUT), however many bytes it
                               sends meanwhile; 0 = 3000. Negative: RSTATE_EINVAL */
  /* NULL, or called on the server thread with one line (no newline) when a
   * limit bites or something is refused: a refused token or connection
   * (naming the peer as on_client does), a connection that could not be
   * accepted (out of descriptors), a handshake too slow, a client
   * whose unread answers stopped its reading, history forgotten for want
   * of room (history_bytes). Each kind is said at most once a second (the
   * history: once a minute); the next line says how many were left
   * unsaid. line is valid during the call. It must not call
   * rstate_server_stop. */
  void (*on_log)(rstate_server *srv, const char *line, void *userdata);
  void *log_userdata;
} rstate_server_opts;

/* Serves store on a thread of its own at listen_uri:
 *   "unix:/path"      a Unix socket created with mode 0600. A stale socket
 *                     file (no one listening) is replaced; a live server
 *                     there is RSTATE_EIO, and so is a path that exists and
 *                     is not a socket.
 *   "tcp:HOST:PORT"   HOST a name or address ("[::1]" for IPv6), PORT 0 to
 *                     65535, 0: any free port (rstate_server_uri tells which).
 * opts may be NULL (every default). *out gets the server, NULL on failure.
 * Errors: RSTATE_EINVAL (NULL argument, a URI of another form, a host name
 * that does not resolve, a bad port or option), RSTATE_EIO (cannot listen
 * there), RSTATE_ENOMEM, RSTATE_ELIMIT (the store already has 4 servers).
 * Any store can be served: mem:, file:, redis: (its changes made elsewhere,
 * by other clients of Redis, reach the server's clients too), even a remote
 * store (a relay); for a store whose changes happen elsewhere the store
 * follows them with a watch of every variable while it is served, and
 * also the errors of rstate_watch on it (RSTATE_ECLOSED, RSTATE_ETIMEDOUT
 * when its server or Redis cannot be reached).
 * rstate_close of the store stops the serving at once, as
 * rstate_server_stop does, but each client is told "the store was closed";
 * the server must still be stopped, to free it. Any thread may call it. */
RSTATE_API int rstate_server_start(rstate_server **out, rstate_store *store, const char *listen_uri,
                                   const rstate_server_opts *opts);
/* The bound address, as a URI rstate_open accepts: "unix:/path", or
 * "tcp:ADDRESS:PORT" with the real port (a wildcard address such as 0.0.0.0
 * is given as 127.0.0.1, [::] as [::1]). Owned by the server, valid until
 * rstate_server_stop. "" for NULL. */
RSTATE_API const char *rstate_server_uri(const rstate_server *srv);
/* Stops serving: each client is told (an ERROR RSTATE_ECLOSED, when its
 * socket takes it) and disconnected, the thread is joined, the Unix socket
 * file is removed (if it is still this server's), and everything is freed.
 * The store stays open, with its variables and local watches. Waits for a
 * request being served to finish; must not be called from a callback that
 * runs on the server's own thread, nor race with rstate_close of the store.
 * After that rstate_close it only frees. NULL: no-op. */
RSTATE_API void rstate_server_stop(rstate_server *srv);

/* A server's counters, for monitoring (rstated's /metrics). The server
 * thread publishes them at the end of each turn of its loop, so they may
 * lag a reply by that turn; each field is exact, the set is one turn's. */
typedef struct rstate_server_stats {
  uint64_t clients;          /* clients connected now (handshake done) */
  uint64_t events_sent;      /* events sent to clients, INITIAL and RESYNC included */
  uint64_t events_coalesced; /* changes merged into another event for slow clients: sum of (coalesced - 1) */
  uint64_t history_events;   /* events held for resuming clients */
  uint64_t history_bytes;    /* bytes those events hold */
  uint64_t refused[32];      /* requests answered with an error (a refused token included), by
                                -code: refused[-RSTATE_ECONSTRAINT]; codes past 31 in refused[0] */
} rstate_server_stats;

/* Copies the counters into *out. RSTATE_EINVAL for NULL. Any thread, until
 * rstate_server_stop. */
RSTATE_API int rstate_server_get_stats(const rstate_server *srv, rstate_server_stats *out);

/* ------------------------------------------------------------------------ */
/* Schema files                                                              */
/* ------------------------------------------------------------------------ */

/* Defines every variable of an INI-style schema file, all or nothing. One
 * [section] per variable; keys type (required), default (required),
 * description, min, max, min_length, max_length, pattern, choices, namespace;
 * whole-line comments start with '#' or ';'; CRLF accepted. Values are parsed
 * by type (floats in the C locale; decimal integers; booleans
 * true/false/yes/no/on/off/1/0); text values may be "double-quoted" to keep
 * spaces; choices are comma-separated. The file is checked completely before
 * anything is defined; if a define still fails (RSTATE_EEXIST, ...), the
 * variables this call defined are undefined again. Identical existing
 * definitions are left alone, so reloading is RSTATE_OK and changes nothing.
 * Errors, each with "path:line: " in rstate_last_error(): RSTATE_EINVAL (NULL
 * arguments, syntax, unknown/duplicate/inapplicable key, missing type or
 * default, bad value), RSTATE_EIO (open/read, with strerror), RSTATE_ELIMIT
 * (over 16 MiB), RSTATE_ENOMEM, or rstate_define's code (ETYPE, ECONSTRAINT,
 * EINVAL, EEXIST). */
RSTATE_API int rstate_load_schema(rstate_store *s, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* REACTIVESTATE_H */
