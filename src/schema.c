/*
 * schema.c — schema files. Not available in this build yet: loading fails
 * with RSTATE_ENOTSUP and a sentence.
 */
#include "internal.h"

int rstate_load_schema(rstate_store *s, const char *path) {
  (void)s;
  return rstate__err(RSTATE_ENOTSUP, "rstate_load_schema: %s: schema files are not available in this build",
                     path ? path : "(null)");
}
