/*
 * sock.c — store URIs as socket addresses, and connecting with a deadline.
 */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

int rstate__hostport(const char *uri, char *host, size_t cap, const char **port, const char *fn) {
  const char *hp = uri + 4, *colon;
  if (*hp == '[') { /* [v6]:port */
    const char *end = strchr(hp, ']');
    if (!end || end[1] != ':' || (size_t)(end - hp - 1) >= cap)
      return rstate__err(RSTATE_EINVAL, "%s: \"%s\": expected tcp:[address]:port", fn, uri);
    memcpy(host, hp + 1, (size_t)(end - hp - 1));
    host[end - hp - 1] = '\0';
    colon = end + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon || colon == hp || (size_t)(colon - hp) >= cap)
      return rstate__err(RSTATE_EINVAL, "%s: \"%s\": expected tcp:host:port", fn, uri);
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
  }
  *port = colon + 1;
  size_t digits = strspn(*port, "0123456789");
  if (!digits || digits > 5 || (*port)[digits] || atol(*port) > 65535)
    return rstate__err(RSTATE_EINVAL, "%s: \"%s\": the port must be a number from 0 to 65535", fn, uri);
  return RSTATE_OK;
}

int rstate__addr_parse(rstate__addr *out, const char *uri, const char *fn) {
  memset(out, 0, sizeof *out);
  if (!strncmp(uri, "unix:", 5)) {
    const char *path = uri + 5;
    struct sockaddr_un *un = (struct sockaddr_un *)&out->sa;
    if (!*path) return rstate__err(RSTATE_EINVAL, "%s: \"%s\": the socket path is empty", fn, uri);
    if (strlen(path) >= sizeof un->sun_path)
      return rstate__err(RSTATE_EINVAL, "%s: \"%.60s...\": a socket path is at most %zu bytes", fn, uri,
                         sizeof un->sun_path - 1);
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, path);
    out->len = (socklen_t)sizeof *un;
    out->family = AF_UNIX;
    return RSTATE_OK;
  }
  if (strncmp(uri, "tcp:", 4))
    return rstate__err(RSTATE_EINVAL, "%s: \"%s\" is neither unix:/path nor tcp:host:port", fn, uri);
  char host[256];
  const char *port;
  int rc = rstate__hostport(uri, host, sizeof host, &port, fn);
  if (rc) return rc;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai || !ai)
    return rstate__err(RSTATE_EINVAL, "%s: \"%s\": cannot resolve %s: %s", fn, uri, host, gai_strerror(gai));
  memcpy(&out->sa, ai->ai_addr, ai->ai_addrlen);
  out->len = ai->ai_addrlen;
  out->family = ai->ai_family;
  freeaddrinfo(ai);
  return RSTATE_OK;
}

int rstate__addr_connect(const rstate__addr *a, int timeout_ms, int *fd, const char *uri) {
  *fd = -1;
  int s = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return rstate__err(RSTATE_EIO, "%s: cannot make a socket: %s", uri, strerror(errno));
  if (connect(s, (const struct sockaddr *)&a->sa, a->len) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      int e = errno;
      close(s);
      return rstate__err(RSTATE_EIO, "%s: cannot connect: %s", uri, strerror(e));
    }
    struct pollfd p = {.fd = s, .events = POLLOUT};
    int n;
    do n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0) {
      close(s);
      return rstate__err(RSTATE_ETIMEDOUT, "%s: no connection within %d ms", uri, timeout_ms);
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (n < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
      int e = err ? err : errno;
      close(s);
      return rstate__err(RSTATE_EIO, "%s: cannot connect: %s", uri, strerror(e));
    }
  }
  int flags = fcntl(s, F_GETFL);
  fcntl(s, F_SETFL, flags & ~O_NONBLOCK);
  if (a->family != AF_UNIX) {
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  *fd = s;
  return RSTATE_OK;
}

int rstate__peer_check(const rstate__addr *a, int fd, int64_t peer_uid, const char *uri) {
  if (a->family != AF_UNIX || peer_uid == -1) return RSTATE_OK;
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
    return rstate__err(RSTATE_EIO, "%s: cannot tell who the server is (SO_PEERCRED): %s", uri, strerror(errno));
  uid_t me = geteuid();
  if (cr.uid == me || cr.uid == 0 || (peer_uid > 0 && (int64_t)cr.uid == peer_uid)) return RSTATE_OK;
  return rstate__err(RSTATE_EPERM,
                     "%s: the server there runs as uid %u (pid %d), not as this process's uid %u nor root: nothing "
                     "was sent to it (rstate_options.peer_uid names another uid to trust)",
                     uri, (unsigned)cr.uid, (int)cr.pid, (unsigned)me);
}
