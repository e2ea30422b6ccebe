/*
 * defaults.h — where rstated listens and rstate connects when not told:
 * the Unix socket $XDG_RUNTIME_DIR/reactivestate.sock, or, when
 * XDG_RUNTIME_DIR is unset or empty, reactivestate.sock in the fallback
 * directory $TMPDIR/reactivestate-UID (TMPDIR: /tmp when unset or empty),
 * which rstated creates (mode 0700) and refuses to use unless it is a
 * directory of its own that nobody else may enter: in a directory anyone
 * may write, another user could otherwise have put a socket of their own
 * there first.
 */
#ifndef RSTATE_TOOLS_DEFAULTS_H
#define RSTATE_TOOLS_DEFAULTS_H

#include <stddef.h>

/* "unix:/run/user/1000/reactivestate.sock"; malloc'ed, NULL when out of memory. */
char *tool_default_uri(void);

/* The fallback directory ("/tmp/reactivestate-1000") in *dir (malloc'ed),
 * or NULL there when XDG_RUNTIME_DIR is set. Returns 0, -1 out of memory. */
int tool_fallback_dir(char **dir);

/* Makes dir, mode 0700, if missing; then checks it is a directory (not a
 * symbolic link) owned by the effective uid, that no other user may enter
 * or write (mode 0700 or stricter). Returns 0, or -1 with a sentence in err
 * that says what to do. */
int tool_private_dir(const char *dir, char *err, size_t errlen);

#endif
