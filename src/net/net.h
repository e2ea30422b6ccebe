/*
 * net.h — stream socket addresses of store URIs ("unix:/path",
 * "tcp:host:port") and connecting to them with a deadline (sock.c).
 */
#ifndef RSTATE_NET_H
#define RSTATE_NET_H

#include <sys/socket.h>

#include "util/util.h"

typedef struct rstate__addr {
  struct sockaddr_storage sa;
  socklen_t len;
  int family; /* AF_UNIX or AF_INET / AF_INET6 */
} rstate__addr;

/* Splits the host and port of a "tcp:host:port" or "tcp:[v6]:port" URI: host
 * (cap bytes) gets the host without brackets, *port points into uri at a
 * number from 0 to 65535. RSTATE_EINVAL with a sentence; fn prefixes it. */
int rstate__hostport(const char *uri, char *host, size_t cap, const char **port, const char *fn);
/* Parses a "unix:" or "tcp:" URI (numeric or named host; "[::1]:7411" for
 * IPv6). RSTATE_EINVAL with a sentence naming what is wrong. fn prefixes
 * the sentence. */
int rstate__addr_parse(rstate__addr *out, const char *uri, const char *fn);
/* A connected, blocking, close-on-exec stream socket in *fd within
 * timeout_ms. RSTATE_EIO (refused, no such socket: the sentence has
 * strerror) or RSTATE_ETIMEDOUT. */
int rstate__addr_connect(const rstate__addr *a, int timeout_ms, int *fd, const char *uri);

/* For a Unix socket: RSTATE_EPERM (with a sentence) unless the process at
 * the other end of fd runs as this process's effective uid, as root, or
 * as peer_uid (> 0); peer_uid -1 accepts anyone. RSTATE_EIO when the
 * kernel cannot tell. Other sockets: RSTATE_OK. */
int rstate__peer_check(const rstate__addr *a, int fd, int64_t peer_uid, const char *uri);

#endif
