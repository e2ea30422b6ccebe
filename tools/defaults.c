/*
 * defaults.c — the default socket both tools agree on (see defaults.h).
 */
#include "defaults.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

char *tool_default_uri(void) {
  const char *dir = getenv("XDG_RUNTIME_DIR");
  char *uri = NULL;
  int r = (dir && *dir) ? asprintf(&uri, "unix:%s/reactivestate.sock", dir)
                        : asprintf(&uri, "unix:/tmp/reactivestate-%u.sock", (unsigned)getuid());
  return r < 0 ? NULL : uri;
}
