/*
 * parse.h — the small texts of a request rstated reads itself (libmicrohttpd
 * reads the rest): revision and version numbers (Last-Event-ID, ?after=,
 * If-Match) and the ?names= list. Pure functions, fuzzed with the JSON
 * reader by fuzz/fuzz_http.c.
 */
#ifndef RSTATE_TOOLS_HTTP_PARSE_H
#define RSTATE_TOOLS_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Decimal digits only, no sign or blank, at most UINT64_MAX. 0 or -1. */
int http_parse_u64(const char *s, uint64_t *out);
/* If-Match: "VERSION" (quotes optional, a weak W/ prefix allowed). 0 or -1. */
int http_parse_if_match(const char *h, uint64_t *out);
/* Splits list in place on commas, skipping blanks and empty items; stores
 * at most max pointers into out and returns how many. A list of n bytes
 * has at most n/2 + 1 items. */
size_t http_split_names(char *list, const char **out, size_t max);

#endif
