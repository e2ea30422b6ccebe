/*
 * client.c — a server's connections: accepting, the handshake (HELLO,
 * tokens, access), reading frames, writing what is queued for a client
 * without blocking, and failing or closing a client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

static void set_events(rstate_server *srv, client *c) {
  uint32_t ev = EPOLLIN;
  /* stalled: the loop comes back (EPOLLOUT) to handle its waiting requests
   * once its output is under the bound, even when it sends nothing more */
  if (out_pending(c) || ((c->more || c->stalled) && c->state == C_READY)) ev |= EPOLLOUT;
  /* a client that sends requests but does not read its answers stops being
   * read until it does */
  if (c->state != C_CLOSING && (c->stalled || out_pending(c) > out_bound(srv))) ev &= ~(uint32_t)EPOLLIN;
  if (ev == c->events) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, c->fd, &e) == 0) c->events = ev;
}

/* Writes what it can without blocking. */
void rstate__srv_flush(rstate_server *srv, client *c) {
  if (c->doomed) return;
  if (srv->holding) { /* after the turn's wait for durability (loop.c) */
    c->flush_held = true;
    rstate__srv_activate(srv, c);
    return;
  }
  while (c->out_off < c->out.len) {
    ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      c->out_off += (size_t)w;
      srv->bytes_out += (uint64_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      c->doomed = true; /* the peer is gone */
      return;
    }
  }
  if (c->out_off == c->out.len) {
    c->out.len = c->out_off = 0;
    if (c->out.cap > 4 * STREAM_THRESHOLD) rstate__wire_buf_free(&c->out);
    if (c->state == C_CLOSING) {
      c->doomed = true;
      return;
    }
  } else if (c->out_off > STREAM_THRESHOLD && c->out_off * 2 > c->out.len) {
    rstate__wire_buf_consume(&c->out, c->out_off);
    c->out_off = 0;
  }
  set_events(srv, c);
}

/* Tells on_client that an admitted client goes (once). */
static void announce_gone(rstate_server *srv, client *c, const char *why) {
  if (!c->announced) return;
  c->announced = false;
  if (srv->on_client) srv->on_client(srv, c->peer, false, why, srv->client_ud);
}

/* Names the peer for on_client and the log: its process on a Unix socket,
 * its address over TCP. */
static void name_peer(rstate_server *srv, client *c) {
  if (!srv->lis.tcp) {
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
      snprintf(c->peer, sizeof c->peer, "pid %d uid %u", (int)cr.pid, (unsigned)cr.uid);
    else
      snprintf(c->peer, sizeof c->peer, "a local process");
    return;
  }
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (getpeername(c->fd, (struct sockaddr *)&a, &len) == 0) {
    if (a.ss_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, host, sizeof host);
      port = ntohs(((struct sockaddr_in *)&a)->sin_port);
    } else if (a.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a)->sin6_addr, host, sizeof host);
      port = ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    }
  }
  snprintf(c->peer, sizeof c->peer, a.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

/* The client failed at the connection level: an ERROR with request id 0,
 * then the connection closes once that is written (or after a short
 * linger). Nothing more is read from it or sent to it. */
void rstate__srv_fail(rstate_server *srv, client *c, int code, const char *sentence) {
  if (c->state == C_CLOSING || c->doomed) return;
  if (code != RSTATE_ECLOSED) count_refused(srv, code); /* ECLOSED: the server is stopping */
  announce_gone(srv, c, sentence ? sentence : rstate_strerror(code));
  rstate__wire_error e = {0, code, sentence ? sentence : "", RSTATE__WIRE_NO_INDEX};
  if (rstate__wire_put_error(&c->out, &e) == RSTATE_OK) frames_out(srv, 1);
  cstate was = c->state;
  if (was == C_READY) srv->n_ready--;
  if (was == C_HELLO) srv->n_hello--;
  c->state = C_CLOSING;
  c->stalled = false;
  if (was == C_HELLO) rstate__srv_accept_resume(srv);
  c->more = false; /* nothing more is sent: it may leave the active list */
  while (c->n_subs) rstate__srv_remove_sub(srv, c, &c->subs[c->n_subs - 1]); /* they would hold the history */
  c->deadline = now_ms() + CLOSE_LINGER_MS;
  rstate__srv_flush(srv, c);
}

static void client_close(rstate_server *srv, client *c) {
  announce_gone(srv, c, atomic_load(&srv->stopping) ? srv->stop_why : "the connection was closed");
  rstate__srv_deactivate(srv, c);
  epoll_ctl(srv->ep, EPOLL_CTL_DEL, c->fd, NULL);
  if (c->state == C_CLOSING) shutdown(c->fd, SHUT_WR); /* an orderly end after the ERROR */
  close(c->fd);
  while (c->n_subs) rstate__srv_remove_sub(srv, c, &c->subs[c->n_subs - 1]);
  free(c->subs);
  if (c->state == C_READY) srv->n_ready--;
  if (c->state == C_HELLO) {
    srv->n_hello--;
    rstate__srv_accept_resume(srv);
  }
  rstate__wire_reader_free(&c->rd);
  rstate__wire_buf_free(&c->out);
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->clients = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c);
}

/* Closes c when a handler marked it; returns whether it still lives. */
bool rstate__srv_settle(rstate_server *srv, client *c) {
  if (!c->doomed) return true;
  client_close(srv, c);
  return false;
}

/* Stops watching the listening socket (events 0) or watches it again. */
static bool listen_for(rstate_server *srv, uint32_t events) {
  struct epoll_event e = {.events = events, .data.ptr = &srv->lis.fd};
  return srv->lis.fd >= 0 && epoll_ctl(srv->ep, EPOLL_CTL_MOD, srv->lis.fd, &e) == 0;
}

/* The connection in the handshake that has waited longest. */
static client *oldest_hello(rstate_server *srv) {
  client *old = NULL;
  for (client *c = srv->clients; c; c = c->next)
    /* the list is newest first: of those accepted in the same ms, the last is the oldest */
    if (c->state == C_HELLO && !c->doomed && (!old || c->accepted_ms <= old->accepted_ms)) old = c;
  return old;
}

void rstate__srv_accept_resume(rstate_server *srv) {
  if (!srv->accept_full) return;
  if (srv->n_hello >= srv->max_handshakes) {
    /* at a tick: once the oldest has had its grace, a newcomer may push it out */
    client *old = oldest_hello(srv);
    if (old && now_ms() - old->accepted_ms < HANDSHAKE_GRACE_MS) return;
  }
  srv->accept_full = false;
  if (!srv->accept_paused) listen_for(srv, EPOLLIN);
}

/* Whether one more connection may be accepted into the handshake: a slot
 * is free, or the one waiting longest has had its grace and can be pushed
 * out (make_room). When every slot is young (a burst of clients), accepting
 * stops until one frees or a tick finds the oldest past its grace. */
static bool may_accept(rstate_server *srv) {
  if (srv->n_hello < srv->max_handshakes) return true;
  client *old = oldest_hello(srv);
  if (old && now_ms() - old->accepted_ms >= HANDSHAKE_GRACE_MS) return true;
  rstate__srv_log(srv, LOG_HANDSHAKES_FULL, "all %zu handshake slots are taken: new connections wait to be accepted",
                  srv->max_handshakes);
  if (listen_for(srv, 0)) srv->accept_full = true;
  return !srv->accept_full; /* could not stop watching: accept anyway */
}

/* A connection was accepted with every slot taken: the oldest goes. */
static void make_room(rstate_server *srv) {
  client *old = oldest_hello(srv);
  if (srv->n_hello < srv->max_handshakes || !old) return;
  int64_t waited = now_ms() - old->accepted_ms;
  rstate__srv_log(srv, LOG_HANDSHAKE_PUSHED,
                  "closed %s: all %zu handshake slots were taken and it had waited longest (%lld ms)", old->peer,
                  srv->max_handshakes, (long long)waited);
  char msg[112];
  snprintf(msg, sizeof msg, "the server has %zu connections in the handshake, its limit, and this one waited longest",
           srv->max_handshakes);
  /* closed at the end of the turn (its flush waits for it: loop.c's
   * release_answers), not here: an event of it may still be in the turn's
   * batch, which must not find it freed */
  rstate__srv_fail(srv, old, RSTATE_ELIMIT, msg);
}

static void refuse_full(rstate_server *srv, client *c) {
  rstate__srv_log(srv, LOG_CLIENTS_FULL, "refused %s: the server has reached its limit of %zu clients", c->peer,
                  srv->max_clients);
  char msg[96];
  snprintf(msg, sizeof msg, "the server has reached its limit of %zu clients", srv->max_clients);
  rstate__srv_fail(srv, c, RSTATE_ELIMIT, msg);
}

void rstate__srv_on_accept(rstate_server *srv) {
  for (;;) {
    if (!may_accept(srv)) return;
    int fd = accept4(srv->lis.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        /* out of descriptors or memory: the listening socket would stay
         * readable and spin the loop; stop watching it until the next tick */
        rstate__srv_log(srv, LOG_ACCEPT_FAILED, "cannot accept a connection: %s; trying again at the next tick",
                        strerror(errno));
        struct epoll_event e = {.events = 0, .data.ptr = &srv->lis.fd};
        if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, srv->lis.fd, &e) == 0) srv->accept_paused = true;
      }
      return;
    }
    if (srv->lis.tcp) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    make_room(srv);
    client *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->state = C_HELLO;
    c->hb_ms = srv->hb_ms;
    c->last_rx = c->last_ping = c->accepted_ms = now_ms();
    c->deadline = c->accepted_ms + srv->handshake_ms;
    c->events = EPOLLIN;
    rstate__wire_reader_init(&c->rd, RSTATE__WIRE_HANDSHAKE_MAX);
    c->read_size = RSTATE__WIRE_READ_FIRST;
    rstate__wire_buf_init(&c->out);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
      rstate__wire_reader_free(&c->rd);
      close(fd);
      free(c);
      continue;
    }
    c->next = srv->clients;
    if (c->next) c->next->prev = c;
    srv->clients = c;
    srv->n_hello++;
    name_peer(srv, c);
    /* already full of clients past the handshake: no use going through it
     * (on_hello checks again, for those that fill it meanwhile) */
    if (srv->n_ready >= srv->max_clients) {
      refuse_full(srv, c);
      rstate__srv_settle(srv, c);
    }
  }
}

/* ERROR for request req with the thread's last sentence. */
void rstate__srv_reply_error(rstate_server *srv, client *c, uint32_t req, int code, size_t failed) {
  count_refused(srv, code);
  rstate__wire_error e = {req, code, rstate_last_error(), failed == SIZE_MAX ? RSTATE__WIRE_NO_INDEX : failed};
  if (rstate__wire_put_error(&c->out, &e) == RSTATE_OK)
    frames_out(srv, 1);
  else
    rstate__srv_fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
}

/* After an encoder: count the frames, or give up on the client. */
void rstate__srv_sent(rstate_server *srv, client *c, int rc, size_t frames) {
  if (rc == RSTATE_OK)
    frames_out(srv, frames);
  else
    rstate__srv_fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
}

/* Token comparison whose time does not depend on where the bytes differ. */
static bool same_secret(const char *given, const char *secret) {
  size_t lg = strlen(given), ls = strlen(secret);
  unsigned char d = lg != ls;
  for (size_t i = 0; i < ls; i++) d |= (unsigned char)((i < lg ? given[i] : 0) ^ secret[i]);
  return d == 0;
}

static void on_hello(rstate_server *srv, client *c, const rstate__wire_frame *f) {
  if (f->type != RSTATE__WIRE_HELLO) {
    char msg[96];
    snprintf(msg, sizeof msg, "the first frame must be HELLO, not %s", rstate__wire_type_name(f->type));
    rstate__srv_fail(srv, c, RSTATE_EPROTO, msg);
    return;
  }
  if (f->len < RSTATE__WIRE_MAGIC_LEN || memcmp(f->body, RSTATE__WIRE_MAGIC, RSTATE__WIRE_MAGIC_LEN) != 0) {
    c->doomed = true; /* not our protocol: no answer */
    return;
  }
  rstate__wire_hello h;
  int rc = rstate__wire_decode_hello(f->body, f->len, &srv->scratch, &h);
  if (rc) {
    rstate__srv_fail(srv, c, rc, rstate_last_error());
    return;
  }
  uint8_t access = RSTATE__WIRE_READ_WRITE;
  if (srv->token || srv->read_token) {
    bool rw = srv->token && same_secret(h.token, srv->token);
    bool ro = srv->read_token && same_secret(h.token, srv->read_token);
    if (rw)
      access = RSTATE__WIRE_READ_WRITE;
    else if (ro)
      access = RSTATE__WIRE_READ_ONLY;
    else {
      rstate__srv_log(srv, LOG_TOKEN_REFUSED, "refused %s: %s", c->peer,
                      *h.token ? "its token matches neither token" : "it gave no token");
      rstate__srv_fail(srv, c, RSTATE_EPERM, "the token was refused");
      return;
    }
  }
  if (srv->n_ready >= srv->max_clients) {
    refuse_full(srv, c);
    return;
  }
  uint32_t hb = srv->hb_ms, asked = h.heartbeat_ms;
  if (asked && asked < MIN_HEARTBEAT_MS) {
    rstate__srv_log(srv, LOG_HEARTBEAT_FLOOR, "%s asked for a %u ms heartbeat: it gets the floor, %u ms", c->peer,
                    asked, MIN_HEARTBEAT_MS);
    asked = MIN_HEARTBEAT_MS;
  }
  if (asked && asked < hb) hb = asked;
  /* the highest version both sides speak (PROTOCOL.md, 4.1) */
  uint16_t version = h.version < RSTATE__WIRE_VERSION ? h.version : RSTATE__WIRE_VERSION;
  rstate__wire_welcome w = {version, srv->instance_id, hb, rstate_revision(srv->store), srv->max_frame, access};
  rc = rstate__wire_put_welcome(&c->out, &w);
  if (rc) {
    rstate__srv_fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
    return;
  }
  frames_out(srv, 1);
  c->access = access;
  c->version = version;
  c->hb_ms = hb;
  c->last_ping = now_ms();
  c->rd.max_frame = srv->max_frame;
  c->state = C_READY;
  srv->n_hello--;
  srv->n_ready++;
  rstate__srv_accept_resume(srv);
  rstate__srv_arm_timer(srv, hb);
  if (srv->on_client) {
    c->announced = true;
    srv->on_client(srv, c->peer, true, NULL, srv->client_ud);
  }
}

/* Handles the whole frames the reader holds, HELLO first (the handshake),
 * then requests, while the client's unread answers stay under the bound:
 * past it the rest wait in the reader (c->stalled), and nothing more is
 * read, until the client has read enough (the loop comes back for them). */
static void handle_frames(rstate_server *srv, client *c) {
  bool was = c->stalled;
  c->stalled = false;
  rstate__wire_frame f;
  int rc = 0;
  while (c->state != C_CLOSING && !c->doomed) {
    if (out_pending(c) > out_bound(srv)) {
      c->stalled = true;
      if (!was)
        rstate__srv_log(srv, LOG_STALLED, "stopped reading %s: %zu bytes of answers unread, over the bound of %zu",
                        c->peer, out_pending(c), out_bound(srv));
      return;
    }
    if ((rc = rstate__wire_reader_next(&c->rd, &f)) != 1) break;
    srv->frames_in++;
    if (c->state == C_HELLO)
      on_hello(srv, c, &f);
    else
      rstate__srv_on_request(srv, c, &f);
  }
  if (c->state != C_CLOSING && !c->doomed && rc < 0) rstate__srv_fail(srv, c, rc, rstate_last_error());
}

void rstate__srv_on_readable(rstate_server *srv, client *c) {
  if (c->state != C_CLOSING) {
    handle_frames(srv, c); /* those that waited for the client to read */
    if (c->stalled) return;
  }
  for (int round = 0; round < READ_ROUNDS && !c->doomed; round++) {
    if (c->state == C_CLOSING) { /* read and drop, so the close is orderly */
      uint8_t junk[4096];
      ssize_t r = recv(c->fd, junk, sizeof junk, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) c->doomed = true;
      if (r <= 0) return;
      continue;
    }
    size_t room = 0;
    uint8_t *p = rstate__wire_reader_prepare(&c->rd, c->read_size, &room);
    if (!p) {
      rstate__srv_fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
      return;
    }
    ssize_t r = recv(c->fd, p, room, MSG_DONTWAIT);
    if (r == 0) {
      c->doomed = true; /* the client went away */
      return;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) c->doomed = true;
      return;
    }
    srv->bytes_in += (uint64_t)r;
    c->read_size = rstate__wire_read_size(c->read_size, (size_t)r, room, READ_CHUNK);
    c->last_rx = now_ms();
    rstate__wire_reader_commit(&c->rd, (size_t)r);
    handle_frames(srv, c);
    if (c->stalled || c->state == C_CLOSING || c->doomed) return;
    if ((size_t)r < room) return; /* the socket is empty: epoll tells when more comes */
  }
}
