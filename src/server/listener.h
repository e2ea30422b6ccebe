/*
 * listener.h — the listening socket of a server, made from a "unix:/path" or
 * "tcp:host:port" URI (listener.c). Addresses are parsed as sock.c parses
 * them for connecting.
 */
#ifndef RSTATE_LISTENER_H
#define RSTATE_LISTENER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct rstate__listener {
  int fd;          /* non-blocking, close-on-exec, listening; -1 when closed */
  bool tcp;        /* TCP (else a Unix socket) */
  char *uri;       /* the bound address: "unix:/path" or "tcp:127.0.0.1:41234" (port 0 resolved) */
  char *unix_path; /* the socket file, removed at close when it is still ours */
  dev_t dev;
  ino_t ino;
} rstate__listener;

/* Listens on uri. A Unix socket gets mode 0600 before anyone can connect; a
 * stale socket file (no server answers on it) is replaced, a live one is
 * RSTATE_EIO. TCP binds the first address of the host, IPv4 first. On
 * failure *l holds nothing to close. fn prefixes the sentence. */
int rstate__listener_open(rstate__listener *l, const char *uri, const char *fn);
/* Closes the socket and removes the socket file if it is still ours; keeps
 * uri. A second call does nothing. */
void rstate__listener_shut(rstate__listener *l);
/* rstate__listener_shut, then frees uri. */
void rstate__listener_close(rstate__listener *l);

#endif
