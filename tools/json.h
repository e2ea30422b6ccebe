/*
 * json.h — JSON text of strings and values (RFC 8259), for `rstate watch
 * --json`. Strings are valid UTF-8 already (the library guarantees it);
 * '"', '\\' and control characters are escaped, everything else is copied.
 */
#ifndef RSTATE_TOOLS_JSON_H
#define RSTATE_TOOLS_JSON_H

#include <stddef.h>
#include <stdio.h>

#include <reactivestate.h>

#include "strbuf.h"

/* A JSON string; NULL is written as null. Returns 0 or -1 (write error). */
int json_string(FILE *f, const char *s, size_t len);
/* A value: number, true/false, string; RSTATE_NONE is null. Floats are
 * written with tv_format_float, so they read back exactly and as floats. */
int json_value(FILE *f, const rstate_value *v);
/* The same, appended to a buffer. */
void json_string_sb(strbuf *b, const char *s, size_t len);
void json_value_sb(strbuf *b, const rstate_value *v);

#endif
