/*
 * internal.h — what the library's files share with each other and no one else.
 * Names are rstate__name (double underscore); none of them is exported.
 */
#ifndef RSTATE_INTERNAL_H
#define RSTATE_INTERNAL_H

#include <stdarg.h>

#include "reactivestate.h"
#include "reactivestate/backend.h"

#define RSTATE_NAME_MAX 255

/* ---- error.c: the thread-local last-error sentence ---------------------- */

/* Sets the sentence and returns code (printf format). */
int rstate__err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rstate__verr(int code, const char *fmt, va_list ap);

/* ---- clock.c ------------------------------------------------------------ */

int64_t rstate__realtime_ns(void);
int64_t rstate__monotonic_ns(void);
/* The debounce clock: monotonic ns, or what rstate__clock_hook returns when
 * set (tests only; set it before opening stores). */
int64_t rstate__now_ns(void);
extern int64_t (*rstate__clock_hook)(void);

/* ---- spin.c: looking before sleeping ------------------------------------ */

/* The CPUs the calling thread may run on (threads it starts inherit them),
 * at most the whole CPUs of the quota in /sys/fs/cgroup/cpu.max. */
int rstate__spin_cpus(void);
/* cpus, capped by the quota a cpu.max file gives ("QUOTA PERIOD": QUOTA /
 * PERIOD whole CPUs, at least 1); cpus when it is missing, "max" or not
 * understood. */
int rstate__spin_cpus_capped(int cpus, const char *cpu_max);
/* Whether the caller may look now: true, and counted until rstate__spin_end,
 * while fewer than cpus - 1 threads of the process look. */
bool rstate__spin_begin(int cpus);
void rstate__spin_end(void);
/* A pause between two looks: from a few to ~150 cycles, by CPU. */
void rstate__spin_pause(void);

/* ---- value.c: value helpers shared by every file ------------------------ */

/* Valid UTF-8 with no NUL byte inside the len bytes. */
bool rstate__utf8_valid(const char *p, size_t len);
/* Copies a NUL-terminated string; NULL stays NULL. Returns false on ENOMEM. */
bool rstate__strdup_opt(char **dst, const char *src);
/* Caller bytes for a sentence into buf: printable ASCII as is, other bytes
 * as \xNN, a backslash doubled, cut with "..." when long; returns buf. */
const char *rstate__quote_bytes(char *buf, size_t size, const char *p, size_t len);
/* Formats a value for messages into buf ("0.7", "42", "true", "\"gpt-4\"",
 * long strings shortened with "..."); returns buf. */
const char *rstate__value_format(const rstate_value *v, char *buf, size_t size);

/* ---- names and patterns ---------------------------------------------- */

/* A watch pattern covers a name when it is equal to it, or ends in '*' and
 * the name starts with the rest ("*" covers every name). */
static inline bool rstate__pattern_covers(const char *pattern, size_t plen, const char *name, size_t nlen) {
  if (plen && pattern[plen - 1] == '*') return nlen >= plen - 1 && __builtin_memcmp(pattern, name, plen - 1) == 0;
  return plen == nlen && __builtin_memcmp(pattern, name, nlen) == 0;
}

/* ---- types.c: the six types, their constraints and their checks --------- */

/* A compiled variable definition: name, type, owned copies of constraints
 * and description, the compiled pattern, and the initial value coerced to
 * the type's kind. Immutable once made, so it may be shared by readers. */
typedef struct rstate__spec rstate__spec;

/* Checks a name: 1..255 bytes of [A-Za-z0-9_.:/-]. RSTATE_EINVAL with a
 * sentence otherwise. what names the argument in the sentence ("name"). */
int rstate__name_check(const char *name);
/* Checks a watch pattern: a name, or a name's prefix followed by '*' ("*"
 * alone: every name). RSTATE_EINVAL with a sentence otherwise. */
int rstate__watch_pattern_check(const char *pattern);

/* Validates a definition and compiles it. Errors (each with a sentence that
 * names the variable): RSTATE_EINVAL (bad name, bad type, constraints
 * invalid in themselves or not applicable to the type), RSTATE_ETYPE
 * (initial of the wrong kind), RSTATE_ECONSTRAINT (initial breaks the
 * constraints), RSTATE_ENOMEM. */
int rstate__spec_new(rstate__spec **out, const rstate_var_def *def);
void rstate__spec_free(rstate__spec *spec);
/* True when two specs come from identical definitions (idempotent define). */
bool rstate__spec_same(const rstate__spec *a, const rstate__spec *b);
const char *rstate__spec_name(const rstate__spec *spec);
rstate_type rstate__spec_type(const rstate__spec *spec);
/* The initial value, coerced to the type's kind; owned by the spec. */
const rstate_value *rstate__spec_initial(const rstate__spec *spec);

/* Checks a value for the variable: coerces its kind into *out (a string is
 * borrowed from in, not copied) and checks the constraints; on failure *out
 * is RSTATE_NONE. Errors: RSTATE_EINVAL (in is NULL, or a string with a NULL
 * pointer), RSTATE_ETYPE, RSTATE_ECONSTRAINT, each with a sentence naming
 * the variable and the rule. No allocation for numbers, booleans and
 * choices; a pattern is matched in place, except that builds without
 * REG_STARTEND (or with a sanitizer) copy a value of 256 bytes or more, and
 * regexec may allocate inside the C library: RSTATE_ENOMEM when either
 * fails. Any thread may call it: a spec is immutable. */
int rstate__spec_check(const rstate__spec *spec, const rstate_value *in, rstate_value *out);

/* ---- tap.c: every change, whole revisions, for a server ----------------- */

/* Under the backend's lock, in revision order, for every emitted revision:
 * prepare copies what publish will need into *out (RSTATE_ENOMEM with a
 * sentence: the change is then abandoned, as when a watch cannot queue it);
 * then exactly one of publish (the change is accepted) or discard (it was
 * abandoned) gets that copy. None of them may call the store. closing runs
 * first thing in rstate_close, outside every lock: the tap must remove
 * itself and stop using the store before it returns. */
typedef struct rstate__tap {
  int (*prepare)(void *ud, const rstate_change *changes, size_t n, void **out);
  void (*publish)(void *ud, void *prepared);
  void (*discard)(void *ud, void *prepared);
  void (*closing)(void *ud);
  void *ud;
} rstate__tap;

#define RSTATE_TAPS 4
/* Starts calling tap (which must stay valid until removed); RSTATE_ELIMIT
 * when RSTATE_TAPS are in use, RSTATE_EINVAL for a backend that keeps its
 * watches itself (subscribe): its changes are never emitted here. */
int rstate__tap_add(rstate_store *s, const rstate__tap *tap);
/* Stops calling tap; returns once no call of it is in progress. */
void rstate__tap_remove(rstate_store *s, const rstate__tap *tap);
/* rstate_close: calls each tap's closing. */
void rstate__tap_close_all(rstate_store *s);
/* rstate_host_emit with taps: prepares every tap, runs emit, then publishes
 * or discards. */
int rstate__tap_emit(rstate_store *s, const rstate_change *changes, size_t n,
                     int (*emit)(rstate_store *s, const rstate_change *changes, size_t n));

/* ---- schema.c ----------------------------------------------------------- */

/* rstate_load_schema on text already in memory: len bytes, any bytes (need
 * not be NUL-terminated); name_for_messages stands for the file in the
 * "name:line: " prefix of every sentence (NULL: "schema"). Same rules,
 * codes and all-or-nothing as rstate_load_schema; more than 16 MiB is
 * RSTATE_ELIMIT. */
int rstate__schema_load_buffer(rstate_store *s, const char *text, size_t len, const char *name_for_messages);

#endif /* RSTATE_INTERNAL_H */
