/*
 * listener.c — a server's listening socket from a store URI.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net.h"

static int listen_unix(rstate__listener *l, const char *uri, const char *fn) {
  rstate__addr a;
  int rc = rstate__addr_parse(&a, uri, fn);
  if (rc) return rc;
  const struct sockaddr_un *sa = (const struct sockaddr_un *)&a.sa;
  const char *path = sa->sun_path;
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return rstate__err(RSTATE_EIO, "%s: %s exists and is not a socket", fn, uri);
    /* a live server answers; a stale file from a dead one refuses */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) return rstate__err(RSTATE_EIO, "%s: socket: %s", fn, strerror(errno));
    int c = connect(probe, (const struct sockaddr *)sa, a.len);
    int err = errno;
    close(probe);
    if (c == 0 || err == EAGAIN || err == EINPROGRESS)
      return rstate__err(RSTATE_EIO, "%s: a server is already listening at %s", fn, uri);
    if (err != ECONNREFUSED && err != ENOENT) return rstate__err(RSTATE_EIO, "%s: %s: %s", fn, uri, strerror(err));
    if (unlink(path) != 0 && errno != ENOENT)
      return rstate__err(RSTATE_EIO, "%s: cannot remove the stale socket %s: %s", fn, uri, strerror(errno));
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return rstate__err(RSTATE_EIO, "%s: socket: %s", fn, strerror(errno));
  fchmod(fd, 0600); /* Linux creates the file with the socket's mode (less the umask) */
  if (bind(fd, (const struct sockaddr *)sa, a.len) != 0) {
    int err = errno;
    close(fd);
    return rstate__err(RSTATE_EIO, "%s: cannot bind %s: %s", fn, uri, strerror(err));
  }
  /* no one can connect before listen, so there is no window with a wider mode */
  if (chmod(path, 0600) != 0 || stat(path, &st) != 0 || listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    close(fd);
    unlink(path);
    return rstate__err(RSTATE_EIO, "%s: %s: %s", fn, uri, strerror(err));
  }
  if (!(l->uri = strdup(uri)) || !(l->unix_path = strdup(path))) {
    close(fd);
    unlink(path);
    free(l->uri);
    l->uri = NULL;
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory", fn);
  }
  l->dev = st.st_dev;
  l->ino = st.st_ino;
  l->fd = fd;
  return RSTATE_OK;
}

/* "tcp:ADDRESS:PORT" of a bound socket; a wildcard address is named by the
 * loopback address of its family, which is where a client of this machine
 * reaches it. NULL when out of memory. */
static char *bound_uri(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char num[INET6_ADDRSTRLEN] = "127.0.0.1";
  unsigned port = 0;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *in = (struct sockaddr_in *)&ss;
      port = ntohs(in->sin_port);
      if (in->sin_addr.s_addr != htonl(INADDR_ANY)) inet_ntop(AF_INET, &in->sin_addr, num, sizeof num);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
      port = ntohs(in6->sin6_port);
      if (memcmp(&in6->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0)
        strcpy(num, "::1");
      else
        inet_ntop(AF_INET6, &in6->sin6_addr, num, sizeof num);
    }
  }
  size_t n = strlen(num) + 16;
  char *uri = malloc(n);
  if (uri) snprintf(uri, n, strchr(num, ':') ? "tcp:[%s]:%u" : "tcp:%s:%u", num, port);
  return uri;
}

static int listen_tcp(rstate__listener *l, const char *uri, const char *fn) {
  char host[256];
  const char *port;
  int rc = rstate__hostport(uri, host, sizeof host, &port, fn);
  if (rc) return rc;
  struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  int g = getaddrinfo(host, port, &hints, &ai);
  if (g) return rstate__err(RSTATE_EINVAL, "%s: \"%s\": cannot resolve %s: %s", fn, uri, host, gai_strerror(g));
  int err = 0, fd = -1;
  /* IPv4 first when a name has both (localhost): the address most clients try first */
  for (int pass = 0; pass < 2 && fd < 0; pass++)
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
      if ((a->ai_family == AF_INET) != (pass == 0)) continue;
      fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) {
        err = errno;
        continue;
      }
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        err = errno;
        close(fd);
        fd = -1;
      }
    }
  freeaddrinfo(ai);
  if (fd < 0) return rstate__err(RSTATE_EIO, "%s: cannot listen on %s: %s", fn, uri, strerror(err));
  if (!(l->uri = bound_uri(fd))) {
    close(fd);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory", fn);
  }
  l->fd = fd;
  l->tcp = true;
  return RSTATE_OK;
}

int rstate__listener_open(rstate__listener *l, const char *uri, const char *fn) {
  *l = (rstate__listener){.fd = -1};
  if (!strncmp(uri, "unix:", 5)) return listen_unix(l, uri, fn);
  if (!strncmp(uri, "tcp:", 4)) return listen_tcp(l, uri, fn);
  return rstate__err(RSTATE_EINVAL, "%s: \"%s\" is neither unix:/path nor tcp:host:port", fn, uri);
}

void rstate__listener_shut(rstate__listener *l) {
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
  if (l->unix_path) {
    struct stat st; /* remove the file only if it is still ours */
    if (lstat(l->unix_path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) unlink(l->unix_path);
  }
  free(l->unix_path);
  l->unix_path = NULL;
}

void rstate__listener_close(rstate__listener *l) {
  rstate__listener_shut(l);
  free(l->uri);
  *l = (rstate__listener){.fd = -1};
}
