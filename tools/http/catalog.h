/*
 * catalog.h — what the HTTP side shows of each variable's definition
 * beyond its type: the description and the constraints (min, max,
 * choices, ...), as written in the schema files rstated loaded.
 *
 * The public API has no call that returns a definition, so these come from
 * the same files, read again as plain "key = value" text (no conversion,
 * no checking: the library did that when it loaded them and stays the only
 * judge of a value). A variable defined otherwise (a client's define, the
 * snapshot) has none; the page then offers a plain field.
 */
#ifndef RSTATE_TOOLS_HTTP_CATALOG_H
#define RSTATE_TOOLS_HTTP_CATALOG_H

#include <stddef.h>

typedef struct catalog catalog;

/* The keys kept, in this order: description, min, max, min_length,
 * max_length, pattern, choices, namespace. */
enum { CAT_DESCRIPTION, CAT_MIN, CAT_MAX, CAT_MIN_LENGTH, CAT_MAX_LENGTH, CAT_PATTERN, CAT_CHOICES, CAT_NAMESPACE, CAT_N };
extern const char *const catalog_keys[CAT_N];

/* Reads the files (unreadable ones are skipped). NULL only when out of memory. */
catalog *catalog_load(const char *const *paths, size_t n);
/* The text of key for variable name, or NULL. Later files win. */
const char *catalog_get(const catalog *c, const char *name, int key);
void catalog_free(catalog *c);

#endif
