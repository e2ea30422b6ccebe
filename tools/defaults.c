/*
 * defaults.c — the default socket both tools agree on, and the fallback
 * directory rstated makes its own (see defaults.h).
 */
#include "defaults.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *tmp_base(void) {
  const char *t = getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

int tool_fallback_dir(char **dir) {
  *dir = NULL;
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) return 0;
  return asprintf(dir, "%s/reactivestate-%u", tmp_base(), (unsigned)getuid()) < 0 ? (*dir = NULL, -1) : 0;
}

char *tool_default_uri(void) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  char *uri = NULL;
  int r = (xdg && *xdg) ? asprintf(&uri, "unix:%s/reactivestate.sock", xdg)
                        : asprintf(&uri, "unix:%s/reactivestate-%u/reactivestate.sock", tmp_base(), (unsigned)getuid());
  return r < 0 ? NULL : uri;
}

#define ADVICE "set XDG_RUNTIME_DIR, or give --listen"

int tool_private_dir(const char *dir, char *err, size_t errlen) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "%s: cannot make the socket directory: %s (" ADVICE ")", dir, strerror(errno));
    return -1;
  }
  struct stat st;
  if (lstat(dir, &st) != 0) {
    snprintf(err, errlen, "%s: %s (" ADVICE ")", dir, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "%s: the socket directory is not a directory (a symbolic link?): refused (remove it, or " ADVICE ")",
             dir);
    return -1;
  }
  if (st.st_uid != geteuid()) {
    snprintf(err, errlen,
             "%s: the socket directory belongs to uid %u, not to this user (uid %u): refused, another user may "
             "listen there (" ADVICE ")",
             dir, (unsigned)st.st_uid, (unsigned)geteuid());
    return -1;
  }
  if (st.st_mode & 077) {
    snprintf(err, errlen,
             "%s: other users may enter the socket directory (mode %03o): refused (chmod 700 it, or " ADVICE ")", dir,
             (unsigned)(st.st_mode & 0777));
    return -1;
  }
  return 0;
}
