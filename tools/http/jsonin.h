/*
 * jsonin.h — reading the JSON bodies of rstated's HTTP API (RFC 8259):
 * one value (PUT /v1/vars/NAME) or one object of name → value
 * (POST /v1/set-many). Pure: bytes in, values out, no I/O, so the fuzzer
 * drives it directly (fuzz/fuzz_http.c).
 *
 * A JSON value becomes an rstate_value: a number without fraction or
 * exponent that fits in 64 bits is RSTATE_INT, any other number
 * RSTATE_FLOAT; true/false RSTATE_BOOL; a string RSTATE_STRING (escapes
 * decoded, surrogate pairs joined; "\u0000" and lone surrogates refused).
 * The library then checks the value against the variable's type, as for
 * every caller.
 *
 * Errors: JSON that does not parse is JIN_SYNTAX (HTTP 400); null, an array
 * or an object where a value belongs is JIN_KIND (HTTP 422, RSTATE_ETYPE);
 * a name given twice in an object is left to rstate_set_many, which refuses
 * it (RSTATE_EINVAL at its second occurrence). The sentence says what and
 * where ("body: expected a value at byte 7").
 */
#ifndef RSTATE_TOOLS_HTTP_JSONIN_H
#define RSTATE_TOOLS_HTTP_JSONIN_H

#include <stddef.h>

#include <reactivestate.h>

enum { JIN_OK = 0, JIN_SYNTAX = -1, JIN_KIND = -2, JIN_NOMEM = -3 };

/* Nesting deeper than this is refused (JIN_SYNTAX) before any recursion. */
#define JIN_MAX_DEPTH 32

/* A decoded body; names and strings point into its arena. */
typedef struct jin_doc {
  rstate_assign *items; /* set-many: one per member, in body order; value: one, name NULL */
  size_t n;
  char *arena;          /* decoded strings */
  size_t arena_len, arena_cap;
  size_t failed;        /* JIN_KIND: index of the item to blame (SIZE_MAX: none) */
} jin_doc;

/* The body is one JSON value. */
int jin_parse_value(const char *p, size_t n, jin_doc *out, char *err, size_t errlen);
/* The body is one JSON object whose members are values. */
int jin_parse_object(const char *p, size_t n, jin_doc *out, char *err, size_t errlen);
void jin_free(jin_doc *d);

#endif
