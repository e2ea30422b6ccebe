/*
 * types.h — values, names and patterns, the six types and their checks,
 * schema files: what the front end and the backends share about variables.
 * It includes the index of patterns (subindex.h).
 */
#ifndef RSTATE_TYPES_H
#define RSTATE_TYPES_H

#include "subindex.h"
#include "util/util.h"

#define RSTATE_NAME_MAX 255

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

/* What the table of types (types.c, a row per type) tells other files; the
 * schema reader (schema.c) asks it rather than keeping a table of its own. */
/* The type named by the len bytes at p ("float" ... "module"); 0 if none. */
rstate_type rstate__type_named(const char *p, size_t len);
/* The type's name with its article, for sentences: "a float", "an integer". */
const char *rstate__type_a_name(rstate_type type);
/* The kind the type's values are coerced to (RSTATE_INT for integer,
 * RSTATE_STRING for string, choice and module); RSTATE_NONE if no type. */
rstate_kind rstate__type_kind(rstate_type type);
/* True when the constraint field named field applies to the type; the names
 * are those of sentences and schema files: "min", "max", "min_length",
 * "max_length", "choices", "namespace", "pattern". Any other name: false. */
bool rstate__type_takes(rstate_type type, const char *field);

/* Checks a name: 1..255 bytes of [A-Za-z0-9_.:/-]. RSTATE_EINVAL with a
 * sentence that calls it "name" otherwise. */
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
/* NULL when they are the same, else the first part of b's definition that
 * differs from a's, for a sentence: "type", "initial value", "constraint
 * max" (min, max, min_length, max_length, choices, pattern,
 * module_namespace), "description". A static string. */
const char *rstate__spec_diff(const rstate__spec *a, const rstate__spec *b);
/* RSTATE_EEXIST with the sentence every backend gives for a define whose
 * name is defined otherwise: the types when they differ, else part (a
 * rstate__spec_diff string) differs. */
int rstate__defined_differently(const char *name, rstate_type had, rstate_type asked, const char *part);
const char *rstate__spec_name(const rstate__spec *spec);
rstate_type rstate__spec_type(const rstate__spec *spec);
/* The initial value, coerced to the type's kind; owned by the spec. */
const rstate_value *rstate__spec_initial(const rstate__spec *spec);

/* The definition a spec was made from, borrowing the spec's strings: def
 * points to c, and c->choices to choices, which has room for
 * rstate__spec_n_choices(spec) names. rstate__spec_new of it makes a spec
 * rstate__spec_same as this one. */
size_t rstate__spec_n_choices(const rstate__spec *spec);
void rstate__spec_def(const rstate__spec *spec, rstate_var_def *def, rstate_constraints *c, const char **choices);

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

/* Frees what a history entry owns when each of its strings (source, every
 * meta key and value) and its meta array were allocated on their own, as
 * the copies made from a wire frame, a Redis reply or a history walk are. */
void rstate__history_entry_free(rstate_history_entry *e);

/* ---- resync.c: a watch's view rebuilt after a gap ---------------------- */

/* A variable as a watch last saw it, or as it is now. */
typedef struct rstate__seen {
  rstate_type type;
  uint64_t version;
  int64_t updated_ns;         /* when it last changed; 0: unknown */
  const rstate_value *value;
  bool redefined;             /* now only: the backend knows it was re-defined since */
} rstate__seen;

/* What a watch that saw `was` (NULL: never) is told of `now` (NULL: gone):
 * 0 when nothing differs, RSTATE_EVENT_DEFINED, _DELETED, or _RESYNC with
 * *coalesced the versions it spans (1 when re-defined, as far as can be
 * known). */
rstate_event_kind rstate__resync_event(const rstate__seen *was, const rstate__seen *now, uint32_t *coalesced);

/* ---- schema.c ----------------------------------------------------------- */

/* rstate_load_schema on text already in memory: len bytes, any bytes (need
 * not be NUL-terminated); name_for_messages stands for the file in the
 * "name:line: " prefix of every sentence (NULL: "schema"). Same rules,
 * codes and all-or-nothing as rstate_load_schema; more than 16 MiB is
 * RSTATE_ELIMIT. */
int rstate__schema_load_buffer(rstate_store *s, const char *text, size_t len, const char *name_for_messages);

#endif /* RSTATE_TYPES_H */
