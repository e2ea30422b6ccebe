/* version.c — the library's version string, built from the header's numbers. */
#include "util/util.h"

#define RSTATE__STR2(x) #x
#define RSTATE__STR(x) RSTATE__STR2(x)

const char *rstate_version(void) {
  return RSTATE__STR(RSTATE_VERSION_MAJOR) "." RSTATE__STR(RSTATE_VERSION_MINOR) "." RSTATE__STR(RSTATE_VERSION_PATCH);
}
