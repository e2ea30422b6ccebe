/*
 * conn.c — one connection to Redis: connect, AUTH, send a command, read its
 * reply with a deadline, and call the store's Functions (loading the
 * library when the server lacks it). Blocking, one caller at a time: the
 * backend keeps one connection for callers and one for its reader thread.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redis.h"

void rstate__redis_conn_init(rstate__redis_conn *c) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->wake = -1;
  rstate__resp_reader_init(&c->rd, NULL);
}

void rstate__redis_conn_close(rstate__redis_conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  rstate__resp_reader_free(&c->rd);
  rstate__resp_reader_init(&c->rd, NULL);
  c->out.len = 0;
}

void rstate__redis_conn_free(rstate__redis_conn *c) {
  rstate__redis_conn_close(c);
  rstate__resp_reader_free(&c->rd);
  rstate__resp_buf_free(&c->out);
}

int rstate__redis_send(int fd, const char *p, size_t len, const char *uri) {
  size_t off = 0;
  while (off < len) {
    ssize_t k = send(fd, p + off, len - off, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return rstate__err(RSTATE_ECLOSED, "%s: the connection to Redis was lost (%s)", uri, strerror(errno));
    off += (size_t)k;
  }
  return RSTATE_OK;
}

int rstate__redis_recv(rstate__redis_conn *c, const char *uri, int timeout_ms, rstate__resp **reply) {
  *reply = NULL;
  int64_t deadline = rstate__monotonic_ns() + (int64_t)timeout_ms * 1000000;
  char buf[16384];
  for (;;) {
    int rc = rstate__resp_next(&c->rd, reply);
    if (rc == 1) return RSTATE_OK;
    if (rc < 0) {
      char why[200];
      snprintf(why, sizeof why, "%s", rstate_last_error());
      return rstate__err(rc, "%s: %s", uri, why);
    }
    int64_t left = deadline - rstate__monotonic_ns();
    if (left <= 0) return rstate__err(RSTATE_ETIMEDOUT, "%s: Redis did not answer within %d ms", uri, timeout_ms);
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = c->wake, .events = POLLIN}};
    int n = poll(p, c->wake >= 0 ? 2 : 1, (int)((left + 999999) / 1000000));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    if (c->wake >= 0 && (p[1].revents & POLLIN)) return rstate__err(RSTATE_ECLOSED, "%s: the store is closing", uri);
    ssize_t k = recv(c->fd, buf, sizeof buf, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0)
      return rstate__err(RSTATE_ECLOSED, "%s: the connection to Redis was lost (%s)", uri,
                         k == 0 ? "closed by the server" : strerror(errno));
    if ((rc = rstate__resp_feed(&c->rd, buf, (size_t)k))) return rc;
  }
}

int rstate__redis_roundtrip(rstate__redis_conn *c, const char *uri, int timeout_ms, rstate__resp **reply) {
  *reply = NULL;
  if (c->fd < 0) return rstate__err(RSTATE_ECLOSED, "%s: not connected to Redis", uri);
  int rc = rstate__redis_send(c->fd, c->out.p, c->out.len, uri);
  c->out.len = 0;
  if (!rc) rc = rstate__redis_recv(c, uri, timeout_ms, reply);
  if (rc) rstate__redis_conn_close(c);
  return rc;
}

int rstate__redis_command(rstate__redis_conn *c, const char *uri, int timeout_ms, rstate__resp **reply, int argc,
                          const char *const *argv, const size_t *lens) {
  *reply = NULL;
  c->out.len = 0;
  if (rstate__resp_command(&c->out, argc, argv, lens)) return RSTATE_ENOMEM;
  return rstate__redis_roundtrip(c, uri, timeout_ms, reply);
}

/* The code and sentence for an error reply. */
int rstate__redis_error(const rstate__resp *e, const char *uri) {
  const char *m = e->str;
  if (!strncmp(m, "WRONGPASS", 9) || !strncmp(m, "NOAUTH", 6) || !strncmp(m, "NOPERM", 6) ||
      /* a command inside a function, refused by the ACL: Redis 7.0's
       * words, then 7.2's and later (Valkey's too) */
      strstr(m, "The user executing the script can't") || strstr(m, "ACL failure in script"))
    return rstate__err(RSTATE_EPERM, "%s: Redis refused: %s", uri, m);
  if (!strncmp(m, "READONLY", 8) || !strncmp(m, "LOADING", 7) || !strncmp(m, "MASTERDOWN", 10))
    return rstate__err(RSTATE_ECLOSED, "%s: Redis is not the primary now: %s", uri, m);
  if (!strncmp(m, "OOM", 3)) return rstate__err(RSTATE_ELIMIT, "%s: Redis is out of memory: %s", uri, m);
  return rstate__err(RSTATE_EPROTO, "%s: Redis answered: %s", uri, m);
}

int rstate__redis_connect(rstate__redis_conn *c, const rstate__addr *addr, const char *uri, const char *user,
                          const char *pass, int timeout_ms) {
  rstate__redis_conn_close(c);
  int rc = rstate__addr_connect(addr, timeout_ms, &c->fd, uri);
  if (rc) return rc;
  rstate__resp *r = NULL;
  if (pass) {
    const char *argv[3] = {"AUTH", user ? user : pass, pass};
    rc = rstate__redis_command(c, uri, timeout_ms, &r, user ? 3 : 2, argv, NULL);
    if (!rc && r->type == RSTATE_RESP_ERROR) rc = rstate__redis_error(r, uri);
    if (rc == RSTATE_ECLOSED) rc = RSTATE_EIO;
    rstate__resp_free(r);
    if (rc) {
      rstate__redis_conn_close(c);
      return rc;
    }
  }
  return RSTATE_OK;
}

int rstate__redis_fcall(rstate__redis_conn *c, const char *uri, int timeout_ms, bool ro, const char *fn,
                        const char *const *keys, int argc, const char *const *argv, const size_t *lens,
                        rstate__resp **reply) {
  for (int attempt = 0;; attempt++) {
    c->out.len = 0;
    char name[64];
    snprintf(name, sizeof name, RSTATE_REDIS_LIB "_%s", fn);
    const char *head[] = {ro ? "FCALL_RO" : "FCALL", name, "4", keys[0], keys[1], keys[2], keys[3]};
    /* one array: the head, then the arguments */
    size_t total = 7 + (size_t)argc;
    const char **all = malloc(total * sizeof *all);
    size_t *alens = malloc(total * sizeof *alens);
    if (!all || !alens) {
      free(all);
      free(alens);
      return rstate__err(RSTATE_ENOMEM, "%s: out of memory for a command", uri);
    }
    for (size_t i = 0; i < 7; i++) all[i] = head[i], alens[i] = strlen(head[i]);
    for (int i = 0; i < argc; i++) all[7 + i] = argv[i], alens[7 + i] = lens ? lens[i] : strlen(argv[i]);
    int rc = rstate__resp_command(&c->out, (int)total, all, alens);
    free(all);
    free(alens);
    if (rc) return rc;
    if ((rc = rstate__redis_roundtrip(c, uri, timeout_ms, reply))) return rc;
    if ((*reply)->type != RSTATE_RESP_ERROR) return RSTATE_OK;
    if (attempt || !strstr((*reply)->str, "Function not found")) {
      rc = rstate__redis_error(*reply, uri);
      rstate__resp_free(*reply);
      *reply = NULL;
      return rc;
    }
    rstate__resp_free(*reply);
    *reply = NULL;
    /* the server lacks the library (new server, flushed functions): load it, once */
    rstate__resp_buf text = {0};
    for (size_t i = 0; !rc && rstate__redis_library[i]; i++)
      rc = rstate__resp_buf_put(&text, rstate__redis_library[i], strlen(rstate__redis_library[i]));
    if (rc) {
      rstate__resp_buf_free(&text);
      return rc;
    }
    const char *load[] = {"FUNCTION", "LOAD", "REPLACE", text.p};
    size_t load_lens[] = {8, 4, 7, text.len};
    rstate__resp *r = NULL;
    rc = rstate__redis_command(c, uri, timeout_ms, &r, 4, load, load_lens);
    rstate__resp_buf_free(&text);
    if (!rc && r->type == RSTATE_RESP_ERROR) rc = rstate__redis_error(r, uri);
    rstate__resp_free(r);
    if (rc) return rc;
  }
}
