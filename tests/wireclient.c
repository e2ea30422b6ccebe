/*
 * wireclient.c — the raw protocol client of wireclient.h, for tests: blocking
 * writes, reads bounded by poll timeouts, frames decoded by the codec.
 */
#include "wireclient.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t wc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wc_init(wc *c) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->auto_pong = true;
  rstate__wire_reader_init(&c->rd, rstate__wire_client_limit(RSTATE__WIRE_DEFAULT_MAX_FRAME * 4));
  rstate__wire_buf_init(&c->out);
  rstate__wire_buf_init(&c->scratch);
}

int wc_accept(wc *c, int lfd) {
  wc_init(c);
  c->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  return c->fd < 0 ? -errno : 0;
}

int wc_connect(wc *c, const char *uri) {
  wc_init(c);
  if (strncmp(uri, "unix:", 5) == 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", uri + 5);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) return -errno;
    return 0;
  }
  if (strncmp(uri, "tcp:", 4) != 0) return -EINVAL;
  char host[256];
  snprintf(host, sizeof host, "%s", uri + 4);
  char *colon = strrchr(host, ':');
  if (!colon) return -EINVAL;
  *colon = '\0';
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) return -EINVAL;
  int err = -ECONNREFUSED;
  for (struct addrinfo *a = ai; a; a = a->ai_next) {
    c->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (c->fd >= 0 && connect(c->fd, a->ai_addr, a->ai_addrlen) == 0) {
      err = 0;
      break;
    }
    err = -errno;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
  }
  freeaddrinfo(ai);
  return err;
}

void wc_close(wc *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  rstate__wire_reader_free(&c->rd);
  rstate__wire_buf_free(&c->out);
  rstate__wire_buf_free(&c->scratch);
}

int wc_send_raw(wc *c, const void *p, size_t n) {
  const char *b = p;
  while (n) {
    ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

int wc_flush(wc *c) {
  int rc = wc_send_raw(c, c->out.data, c->out.len);
  c->out.len = 0;
  return rc;
}

int wc_next(wc *c, int timeout_ms) {
  int64_t deadline = wc_now_ms() + timeout_ms;
  for (;;) {
    rstate__wire_frame f;
    int rc = rstate__wire_reader_next(&c->rd, &f);
    if (rc < 0) return -2;
    if (rc == 1) {
      if (rstate__wire_decode_frame(&f, &c->scratch, &c->m) != RSTATE_OK) return -2;
      if (f.type == RSTATE__WIRE_PING) {
        c->pings++;
        if (c->auto_pong) {
          rstate__wire_put_ping(&c->out, RSTATE__WIRE_PONG, c->m.u.ping.payload);
          wc_flush(c);
        }
        continue;
      }
      if (f.type == RSTATE__WIRE_PONG) continue;
      return f.type;
    }
    int64_t left = deadline - wc_now_ms();
    if (left <= 0) return 0;
    struct pollfd pfd = {c->fd, POLLIN, 0};
    if (poll(&pfd, 1, (int)left) <= 0) continue;
    size_t room = 0;
    uint8_t *p = rstate__wire_reader_prepare(&c->rd, 65536, &room);
    if (!p) return -2;
    ssize_t r = recv(c->fd, p, room, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    rstate__wire_reader_commit(&c->rd, (size_t)r);
  }
}

int wc_hello(wc *c, const char *token, uint32_t heartbeat_ms, rstate__wire_welcome *w) {
  rstate__wire_hello h = {RSTATE__WIRE_VERSION, heartbeat_ms, token ? token : "", 0};
  rstate__wire_put_hello(&c->out, &h);
  if (wc_flush(c)) return RSTATE_EIO;
  int t = wc_next(c, 5000);
  if (t == RSTATE__WIRE_WELCOME) {
    if (w) *w = c->m.u.welcome;
    c->rd.max_frame = rstate__wire_client_limit(c->m.u.welcome.max_frame);
    return 0;
  }
  if (t == RSTATE__WIRE_ERROR) return c->m.u.error.code;
  return t == 0 ? RSTATE_ETIMEDOUT : RSTATE_ECLOSED;
}
