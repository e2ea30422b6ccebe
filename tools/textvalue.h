/*
 * textvalue.h — values as text, for the command line and the snapshot
 * file: a value read by its variable's type, and a value written back.
 *
 * Floats are written in the shortest form that reads back to the same
 * double ("0.7", not "0.69999999999999996"), with ".0" added when that form
 * looks like an integer ("1.0"), so the text says it is a float.
 */
#ifndef RSTATE_TOOLS_TEXTVALUE_H
#define RSTATE_TOOLS_TEXTVALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <reactivestate.h>

/* "float", "integer", ... (rstate_type_name's names) to a type; -1 if none. */
int tv_parse_type(const char *s, rstate_type *out);

/* Boolean words: true/false, yes/no, on/off, 1/0, any ASCII case. */
int tv_parse_bool(const char *s, bool *out);

/*
 * Reads text as a value for a variable of this type:
 *   integer  a decimal integer; else a number strtod reads (so "1e3" is
 *            1000.0, which the library takes when integral)
 *   float    a number strtod reads in the C locale
 *   boolean  tv_parse_bool's words
 *   string, choice, module  the text as given (borrowed: *out points at it)
 * Returns 0, or -1 with a sentence in err naming the variable
 * ("max_tokens: \"abc\" is not an integer"). The library checks the rest.
 */
int tv_parse(rstate_type type, const char *name, const char *text, rstate_value *out, char *err, size_t errlen);

/* Shortest round-trip text of a double, ".0" added when integral-looking. */
void tv_format_float(double f, char buf[40]);

typedef enum tv_style {
  TV_RAW,    /* strings as they are */
  TV_QUOTED  /* strings in double quotes, with \" \\ \n \r \t and \xHH for other control bytes */
} tv_style;

/* Writes len bytes escaped: "\\" for a backslash, "\n", "\r", "\t", and
 * "\xHH" (two lowercase hex digits) for every other byte below 0x20 and for
 * 0x7f. quoted: inside double quotes, a '"' written "\"" (TV_QUOTED);
 * otherwise nothing else is escaped (the snapshot file, snapshot.h).
 * Returns 0 or -1 (write error). */
int tv_escape(FILE *f, const char *s, size_t len, bool quoted);

/* Writes a value; RSTATE_NONE is "-". Returns what fprintf returns, or -1. */
int tv_print(FILE *f, const rstate_value *v, tv_style style);

/* tv_print into a malloc'ed string (NULL when out of memory). */
char *tv_to_string(const rstate_value *v, tv_style style);

#endif
