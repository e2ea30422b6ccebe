/*
 * defaults.h — where rstated listens and rstate connects when not told:
 * the Unix socket $XDG_RUNTIME_DIR/reactivestate.sock, or
 * /tmp/reactivestate-UID.sock when XDG_RUNTIME_DIR is unset or empty.
 */
#ifndef RSTATE_TOOLS_DEFAULTS_H
#define RSTATE_TOOLS_DEFAULTS_H

/* "unix:/run/user/1000/reactivestate.sock"; malloc'ed, NULL when out of memory. */
char *tool_default_uri(void);

#endif
