/*
 * server.c — serving a store over a Unix or TCP stream socket, speaking the
 * protocol of docs/PROTOCOL.md (the codec is wire.c, the history history.c).
 *
 * One thread per server runs an epoll loop over the listening socket, the
 * clients (non-blocking), an eventfd and a timerfd. Requests run on that
 * thread through the store's own calls, so the store does every check (this
 * file knows nothing of types). Changes reach the server through a tap
 * (tap.c): under the backend's lock, in revision order, each revision is
 * copied into one history entry and queued for the server thread, which is
 * woken through the eventfd (one write per batch, not per change). The
 * thread moves queued entries into its history, streams to each
 * subscription what it covers, and merges what a slow client cannot take.
 *
 * A change costs work only for the clients it concerns: the index of the
 * names subscriptions watch (subindex.c) finds them as the entry comes in,
 * and the loop pumps the active clients alone (activate). A subscription
 * that has had everything keeps no cursor of its own: it stands at
 * srv->synced, which moves to the history's tail at the end of each turn.
 *
 * Locks: the tap takes the server's mutex under the backend's lock; the
 * server thread takes the mutex only to move the queue and never calls the
 * store while holding it. Nothing else is shared: clients, subscriptions
 * and the history belong to the server thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "history.h"
#include "listener.h"
#include "core/core.h"
#include "types/types.h"
#include "util/util.h"
#include "wire/wire.h"

#define DEFAULT_HEARTBEAT_MS 1000
#define DEFAULT_HISTORY 65536
#define DEFAULT_MAX_CLIENTS 1024
#define DEFAULT_MAX_QUEUE (4u * 1024u * 1024u)
/* Events are encoded for a client while less than this is waiting to be
 * written to it (or max_queue_bytes, when smaller): enough to batch many
 * events per write, little enough that a slow client's backlog stays in
 * the history, where it can be coalesced. */
#define STREAM_THRESHOLD (256u * 1024u)
#define READ_CHUNK 65536u /* the largest read; a client starts at 4 KiB (rstate__wire_read_size) */
#define READ_ROUNDS 16 /* reads per wakeup per client, for fairness */
#define MAX_SUBS 4096  /* subscriptions per connection (RSTATE_ELIMIT above) */
/* A client being closed on purpose gets this long to take its last frames. */
#define CLOSE_LINGER_MS 1000
/* The decoding scratch is given back when a big frame made it larger. */
#define SCRATCH_KEEP (1024u * 1024u)

/* ---- clients and subscriptions --------------------------------------------- */

typedef struct sub {
  uint64_t id;
  struct client *owner;
  rstate__map exact; /* exact names, keys in text */
  const char **prefixes;
  size_t *prefix_lens;
  size_t n_prefixes;
  bool all;               /* a "*" pattern */
  rstate__hentry *cursor; /* the last entry it has had; NULL: srv->synced (see at()) */
  rstate__coalesced pend; /* merged events not sent yet (slow client) */
  const char **patterns;
  size_t n_patterns;
  char *text;
} sub;

typedef enum cstate { C_HELLO, C_READY, C_CLOSING } cstate;

typedef struct client {
  struct client *prev, *next;
  int fd;
  cstate state;
  bool doomed;  /* to be closed by the handler that found out */
  bool counted; /* counts against max_clients */
  bool more;    /* its subscriptions have more to send than its output holds */
  uint8_t access;
  uint32_t hb_ms;
  uint32_t events; /* epoll mask in force */
  int64_t last_rx, last_ping, deadline;
  rstate__wire_reader rd;
  size_t read_size; /* rstate__wire_read_size: grows up to READ_CHUNK with the traffic */
  rstate__wire_buf out;
  size_t out_off;
  sub **subs;
  size_t n_subs, cap_subs;
  bool announced; /* on_client was told it connected, not yet that it went */
  bool active;    /* in the server's active list (activate) */
  struct client *aprev, *anext;
  char peer[64];
} client;

struct rstate_server {
  rstate_store *store;
  void (*on_client)(rstate_server *srv, const char *peer, bool connected, const char *why, void *ud);
  void *client_ud;
  rstate__listener lis;
  bool accept_paused; /* accept failed for want of resources: retried at the next tick */
  int efd, tfd, ep;
  pthread_t thread;
  bool thread_started;
  atomic_bool stopping;
  const char *stop_why; /* what the clients are told; set before stopping */

  char *token, *read_token;
  uint32_t hb_ms;
  size_t max_clients;
  uint32_t max_frame;
  size_t max_queue;
  size_t threshold;
  uint64_t instance_id;

  rstate__tap tap;
  bool tap_added;
  /* shared with the tap */
  pthread_mutex_t mu;
  rstate__hentry *in_head, *in_tail;
  bool signalled;

  /* the server thread's */
  /* A change its own thread made is queued (not drained) since the last
   * drain: a callback of the loop's own (on_client) may set a variable after
   * the turn's drain, and the next epoll_wait must not block on it. */
  bool self_queued;
  rstate__history hist;
  /* The entry every subscription without a cursor of its own has had: the
   * history's tail at the end of the loop's last turn. */
  rstate__hentry *synced;
  rstate__subindex index; /* the subscriptions by the names they watch */
  client *active;         /* the clients the loop's turn pumps (activate) */
  client *clients;
  size_t n_open, n_ready, n_subs;
  uint32_t tick_ms;
  rstate__wire_buf scratch;
  rstate__wire_event *evs;
  size_t evs_cap;
  uint64_t ping_seq;
  int64_t started_ns;
  uint64_t events_sent, events_coalesced, frames_in, frames_out, bytes_in, bytes_out;
};

static int64_t now_ms(void) { return rstate__monotonic_ns() / 1000000; }

/* ---- the tap: runs on setters' threads, under the backend's lock ----------- */

static int tap_prepare(void *ud, const rstate_change *changes, size_t n, void **out) {
  (void)ud;
  *out = rstate__hentry_new(changes, n);
  return *out ? RSTATE_OK
              : rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the change for the server", changes[0].name);
}

static _Thread_local rstate_server *tls_serving; /* the server whose thread this is */

static void tap_publish(void *ud, void *prepared) {
  rstate_server *srv = ud;
  rstate__hentry *e = prepared;
  pthread_mutex_lock(&srv->mu);
  if (srv->in_tail)
    srv->in_tail->next = e;
  else
    srv->in_head = e;
  srv->in_tail = e;
  /* a change the server thread made itself (a client's write, an on_client
   * callback) is drained before its loop waits again: no wakeup needed */
  bool self = tls_serving == srv;
  if (self) srv->self_queued = true;
  bool wake = !srv->signalled && !self;
  if (wake) srv->signalled = true;
  pthread_mutex_unlock(&srv->mu);
  if (wake) {
    uint64_t one = 1;
    ssize_t w = write(srv->efd, &one, sizeof one);
    (void)w; /* cannot fail short of a counter overflow, which still wakes */
  }
}

static void tap_discard(void *ud, void *prepared) {
  (void)ud;
  rstate__hentry_unref(prepared);
}

static void activate_covered(rstate_server *srv, const rstate__hentry *e);

/* Moves the queued entries into the history. The eventfd is read before
 * (by the caller), so a publish after the queue was taken wakes us again. */
static void drain(rstate_server *srv) {
  pthread_mutex_lock(&srv->mu);
  rstate__hentry *e = srv->in_head;
  srv->in_head = srv->in_tail = NULL;
  srv->signalled = false;
  srv->self_queued = false;
  pthread_mutex_unlock(&srv->mu);
  while (e) {
    rstate__hentry *next = e->next;
    activate_covered(srv, e);
    rstate__history_push(&srv->hist, e);
    e = next;
  }
}

/* ---- output ----------------------------------------------------------------- */

static bool fill(rstate_server *srv, client *c, size_t limit);
static void events_first(rstate_server *srv, client *c);

static size_t out_pending(const client *c) { return c->out.len - c->out_off; }

static void set_events(rstate_server *srv, client *c) {
  uint32_t ev = EPOLLIN;
  if (out_pending(c) || (c->more && c->state == C_READY)) ev |= EPOLLOUT;
  /* a client that sends requests but does not read its answers stops being
   * read until it does */
  if (c->state != C_CLOSING && out_pending(c) > 2 * srv->max_queue + srv->threshold) ev &= ~(uint32_t)EPOLLIN;
  if (ev == c->events) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, c->fd, &e) == 0) c->events = ev;
}

/* Writes what it can without blocking. */
static void flush(rstate_server *srv, client *c) {
  if (c->doomed) return;
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

static void frames_out(rstate_server *srv, size_t n) { srv->frames_out += n; }

static void remove_sub(rstate_server *srv, client *c, struct sub **slot);

/* Tells on_client that an admitted client goes (once). */
static void announce_gone(rstate_server *srv, client *c, const char *why) {
  if (!c->announced) return;
  c->announced = false;
  if (srv->on_client) srv->on_client(srv, c->peer, false, why, srv->client_ud);
}

/* Names the peer for on_client: its process on a Unix socket, its address
 * over TCP. */
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
static void fail(rstate_server *srv, client *c, int code, const char *sentence) {
  if (c->state == C_CLOSING || c->doomed) return;
  announce_gone(srv, c, sentence ? sentence : rstate_strerror(code));
  rstate__wire_error e = {0, code, sentence ? sentence : "", RSTATE__WIRE_NO_INDEX};
  if (rstate__wire_put_error(&c->out, &e) == RSTATE_OK) frames_out(srv, 1);
  if (c->state == C_READY) srv->n_ready--;
  if (c->counted) srv->n_open--;
  c->counted = false;
  c->state = C_CLOSING;
  c->more = false; /* nothing more is sent: it may leave the active list */
  while (c->n_subs) remove_sub(srv, c, &c->subs[c->n_subs - 1]); /* they would hold the history */
  c->deadline = now_ms() + CLOSE_LINGER_MS;
  flush(srv, c);
}

/* ---- subscriptions ----------------------------------------------------------- */

static void sub_free(sub *s) {
  if (!s) return;
  rstate__cursor_set(&s->cursor, NULL);
  rstate__coalesced_free(&s->pend);
  rstate__map_free(&s->exact);
  free(s->prefixes);
  free(s->prefix_lens);
  free(s->patterns);
  free(s->text);
  free(s);
}

static bool covers(const sub *s, const rstate__hchange *h) {
  if (s->all) return true;
  if (s->exact.count && rstate__map_get(&s->exact, h->name, h->name_len, h->hash)) return true;
  for (size_t i = 0; i < s->n_prefixes; i++)
    if (h->name_len >= s->prefix_lens[i] && memcmp(h->name, s->prefixes[i], s->prefix_lens[i]) == 0) return true;
  return false;
}

static int patterns_check(const char *const *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = rstate__watch_pattern_check(p[i]);
    if (rc) return rc;
  }
  return RSTATE_OK;
}

/* A subscription over copies of the patterns (checked already). */
static sub *sub_new(uint64_t id, const char *const *patterns, size_t n) {
  sub *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->id = id;
  rstate__map_init(&s->exact);
  rstate__coalesced_init(&s->pend);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += strlen(patterns[i]) + 1;
  s->text = malloc(bytes);
  s->patterns = malloc(n * sizeof *s->patterns);
  s->prefixes = malloc(n * sizeof *s->prefixes);
  s->prefix_lens = malloc(n * sizeof *s->prefix_lens);
  if (!s->text || !s->patterns || !s->prefixes || !s->prefix_lens || !rstate__map_reserve(&s->exact, n)) {
    sub_free(s);
    return NULL;
  }
  char *p = s->text;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(patterns[i]), key;
    memcpy(p, patterns[i], len + 1);
    s->patterns[s->n_patterns++] = p;
    if (rstate__pattern_is_prefix(p, &key)) {
      if (!key) s->all = true;
      s->prefixes[s->n_prefixes] = p;
      s->prefix_lens[s->n_prefixes++] = key;
    } else {
      uint64_t h = rstate__hash(p, key);
      if (!rstate__map_get(&s->exact, p, key, h)) rstate__map_put(&s->exact, p, key, h, p);
    }
    p += len + 1;
  }
  return s;
}

static sub **find_sub(client *c, uint64_t id) {
  for (size_t i = 0; i < c->n_subs; i++)
    if (c->subs[i]->id == id) return &c->subs[i];
  return NULL;
}

static void remove_sub(rstate_server *srv, client *c, struct sub **slot) {
  rstate__subindex_remove(&srv->index, *slot, (*slot)->patterns, (*slot)->n_patterns);
  sub_free(*slot);
  *slot = c->subs[--c->n_subs];
  srv->n_subs--;
}

/* ---- which clients the loop pumps --------------------------------------------- */

/* A client is pumped at the end of the loop's turn while it is active: it
 * had a socket event, a change one of its subscriptions covers, a new
 * subscription, or it still has something to send (resync). The others
 * cost nothing per change. */
static void activate(rstate_server *srv, client *c) {
  if (c->active) return;
  c->active = true;
  c->aprev = NULL;
  c->anext = srv->active;
  if (srv->active) srv->active->aprev = c;
  srv->active = c;
}

static void deactivate(rstate_server *srv, client *c) {
  if (!c->active) return;
  c->active = false;
  if (c->aprev)
    c->aprev->anext = c->anext;
  else
    srv->active = c->anext;
  if (c->anext) c->anext->aprev = c->aprev;
}

static bool activate_owner(void *item, void *ud) {
  activate(ud, ((sub *)item)->owner);
  return true;
}

/* Activates the clients with a subscription that covers a change of e. */
static void activate_covered(rstate_server *srv, const rstate__hentry *e) {
  for (size_t i = 0; i < e->n; i++) {
    const rstate__hchange *h = &e->changes[i];
    rstate__subindex_each(&srv->index, h->name, h->name_len, h->hash, activate_owner, srv);
  }
}

/* The last entry s has had. */
static rstate__hentry *at(const rstate_server *srv, const sub *s) { return s->cursor ? s->cursor : srv->synced; }

/* Adds s to c at entry e (its cursor); false on ENOMEM. */
static bool attach(rstate_server *srv, client *c, sub *s, rstate__hentry *e) {
  s->owner = c;
  if (!rstate__subindex_add(&srv->index, s, s->patterns, s->n_patterns)) return false;
  rstate__cursor_set(&s->cursor, e);
  c->subs[c->n_subs++] = s;
  srv->n_subs++;
  activate(srv, c);
  return true;
}

/* At the end of the loop's turn, once srv->synced is the tail: the
 * subscriptions that have had everything give up their own cursors; true
 * when c has nothing left to send and can leave the active list. */
static bool resync(rstate_server *srv, client *c) {
  bool idle = !c->more;
  for (size_t i = 0; i < c->n_subs; i++) {
    sub *s = c->subs[i];
    if (s->cursor == srv->synced && !s->pend.live) rstate__cursor_set(&s->cursor, NULL);
    if (s->cursor || s->pend.live) idle = false;
  }
  return idle;
}

/* ---- clients ----------------------------------------------------------------- */

static void client_close(rstate_server *srv, client *c) {
  announce_gone(srv, c, atomic_load(&srv->stopping) ? srv->stop_why : "the connection was closed");
  deactivate(srv, c);
  epoll_ctl(srv->ep, EPOLL_CTL_DEL, c->fd, NULL);
  if (c->state == C_CLOSING) shutdown(c->fd, SHUT_WR); /* an orderly end after the ERROR */
  close(c->fd);
  while (c->n_subs) remove_sub(srv, c, &c->subs[c->n_subs - 1]);
  free(c->subs);
  if (c->state == C_READY) srv->n_ready--;
  if (c->counted) srv->n_open--;
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
static bool settle(rstate_server *srv, client *c) {
  if (!c->doomed) return true;
  client_close(srv, c);
  return false;
}

/* The heartbeat tick: a quarter of the shortest interval in force. */
static void arm_timer(rstate_server *srv, uint32_t hb_ms) {
  uint32_t tick = hb_ms / 4 ? hb_ms / 4 : 1;
  if (srv->tick_ms && tick >= srv->tick_ms) return;
  srv->tick_ms = tick;
  struct itimerspec its = {{tick / 1000, (long)(tick % 1000) * 1000000L},
                           {tick / 1000, (long)(tick % 1000) * 1000000L}};
  timerfd_settime(srv->tfd, 0, &its, NULL);
}

static void on_accept(rstate_server *srv) {
  for (;;) {
    int fd = accept4(srv->lis.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        /* out of descriptors or memory: the listening socket would stay
         * readable and spin the loop; stop watching it until the next tick */
        struct epoll_event e = {.events = 0, .data.ptr = &srv->lis.fd};
        if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, srv->lis.fd, &e) == 0) srv->accept_paused = true;
      }
      return;
    }
    if (srv->lis.tcp) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    client *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->state = C_HELLO;
    c->hb_ms = srv->hb_ms;
    c->last_rx = c->last_ping = now_ms();
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
    c->counted = true;
    srv->n_open++;
    if (srv->n_open > srv->max_clients) {
      char msg[96];
      snprintf(msg, sizeof msg, "the server has reached its limit of %zu clients", srv->max_clients);
      fail(srv, c, RSTATE_ELIMIT, msg);
      settle(srv, c);
    }
  }
}

/* ---- replies ----------------------------------------------------------------- */

/* ERROR for request req with the thread's last sentence. */
static void reply_error(rstate_server *srv, client *c, uint32_t req, int code, size_t failed) {
  rstate__wire_error e = {req, code, rstate_last_error(), failed == SIZE_MAX ? RSTATE__WIRE_NO_INDEX : failed};
  if (rstate__wire_put_error(&c->out, &e) == RSTATE_OK)
    frames_out(srv, 1);
  else
    fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
}

/* After an encoder: count the frames, or give up on the client. */
static void sent(rstate_server *srv, client *c, int rc, size_t frames) {
  if (rc == RSTATE_OK)
    frames_out(srv, frames);
  else
    fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
}

static bool ensure_evs(rstate_server *srv, size_t n) {
  if (n <= srv->evs_cap) return true;
  size_t cap = srv->evs_cap ? srv->evs_cap : 64;
  while (cap < n) cap *= 2;
  rstate__wire_event *evs = realloc(srv->evs, cap * sizeof *evs);
  if (!evs) return false;
  srv->evs = evs;
  srv->evs_cap = cap;
  return true;
}

static const char *const every[] = {"*"};

/* The wire's view of a snapshot's variables (borrowed from it). NULL on
 * ENOMEM, with a sentence. */
static rstate__wire_var *wire_vars(const rstate__snap *sn, const char *what) {
  rstate__wire_var *vars = malloc((sn->n ? sn->n : 1) * sizeof *vars);
  if (!vars) {
    rstate__err(RSTATE_ENOMEM, "%s: the server ran out of memory", what);
    return NULL;
  }
  for (size_t i = 0; i < sn->n; i++) {
    const rstate__snap_var *v = &sn->vars[i];
    vars[i] = (rstate__wire_var){v->name, v->type, v->value, v->version, v->updated_ns};
  }
  return vars;
}

static void do_list(rstate_server *srv, client *c, const rstate__wire_names *m, bool values) {
  const char *const *p = m->n ? m->names : every;
  size_t n = m->n ? m->n : 1;
  const char *what = values ? "SNAPSHOT" : "LIST";
  rstate__snap sn;
  uint64_t rev = values ? 0 : rstate_revision(srv->store); /* LIST: read just before the snapshot */
  uint64_t srev = 0;
  int rc = rstate__snapshot_take(srv->store, p, n, values, &sn, &srev, what);
  if (rc) {
    reply_error(srv, c, m->req, rc, SIZE_MAX);
    return;
  }
  if (values) {
    rstate__wire_var *vars = wire_vars(&sn, what);
    rstate__wire_snapshot_part part = {m->req, 0, srev, vars, sn.n};
    size_t frames = 0;
    if (!vars)
      reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
    else
      sent(srv, c, rstate__wire_put_snapshot_parts(&c->out, &part, srv->max_frame, &frames), frames);
    free(vars);
  } else {
    rstate__wire_list_item *items = sn.n ? malloc(sn.n * sizeof *items) : NULL;
    if (sn.n && !items) {
      rstate__err(RSTATE_ENOMEM, "LIST: the server ran out of memory");
      reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
    } else {
      for (size_t i = 0; i < sn.n; i++) items[i] = (rstate__wire_list_item){sn.vars[i].name, sn.vars[i].type};
      rstate__wire_list_part part = {m->req, 0, rev, items, sn.n};
      size_t frames = 0;
      rc = rstate__wire_put_list_parts(&c->out, &part, srv->max_frame, &frames);
      sent(srv, c, rc, frames);
    }
    free(items);
  }
  rstate__snap_free(&sn);
}

static void do_get_many(rstate_server *srv, client *c, const rstate__wire_names *m) {
  rstate_value *vals = m->n ? calloc(m->n, sizeof *vals) : NULL;
  if (m->n && !vals) {
    rstate__err(RSTATE_ENOMEM, "GET_MANY: the server ran out of memory");
    reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
    return;
  }
  uint64_t rev = 0;
  int rc = m->n ? rstate_get_many(srv->store, m->names, m->n, vals, &rev) : RSTATE_OK;
  if (!m->n) rev = rstate_revision(srv->store);
  if (rc) {
    reply_error(srv, c, m->req, rc, SIZE_MAX);
  } else {
    rstate__wire_values_part part = {m->req, 0, rev, vals, m->n};
    size_t frames = 0;
    rc = rstate__wire_put_values_parts(&c->out, &part, srv->max_frame, &frames);
    sent(srv, c, rc, frames);
  }
  for (size_t i = 0; i < m->n; i++) rstate_value_clear(&vals[i]);
  free(vals);
}

static void do_set_many(rstate_server *srv, client *c, const rstate__wire_set_many *m) {
  size_t failed = SIZE_MAX;
  int rc = m->n ? rstate__serve_set(srv->store, m->items, m->n, m->expected, &m->opts, &failed) : RSTATE_OK;
  if (rc) {
    reply_error(srv, c, m->req, rc, failed);
  } else {
    rstate__wire_rev r = {m->req, rstate_revision(srv->store)};
    events_first(srv, c);
    sent(srv, c, rstate__wire_put_rev(&c->out, RSTATE__WIRE_SET_MANY_REPLY, &r), 1);
  }
  /* the served store's inline watchers run here, as on any setter's thread */
  rstate__serve_deliver();
}

static void do_stats(rstate_server *srv, client *c, uint32_t req) {
  uint64_t vars = 0;
  uint64_t rev = rstate__serve_revision(srv->store, &vars);
  uint64_t oldest = srv->hist.events ? srv->hist.head->revision : 0;
  rstate__wire_stat st[] = {
      {"revision", rev},
      {"variables", vars},
      {"clients", srv->n_ready},
      {"subscriptions", srv->n_subs},
      {"history_events", srv->hist.events},
      {"history_oldest", oldest},
      {"events_sent", srv->events_sent},
      {"events_coalesced", srv->events_coalesced},
      {"frames_in", srv->frames_in},
      {"frames_out", srv->frames_out},
      {"bytes_in", srv->bytes_in},
      {"bytes_out", srv->bytes_out},
      {"uptime_ms", (uint64_t)((rstate__monotonic_ns() - srv->started_ns) / 1000000)},
  };
  rstate__wire_stats_reply r = {req, st, sizeof st / sizeof st[0]};
  sent(srv, c, rstate__wire_put_stats_reply(&c->out, &r), 1);
}

/* WATCH: NEW or GAP take a snapshot at R (serialized with the changes, so
 * every history entry above R comes after it) and start the cursor there;
 * RESUMED starts it at resume_after when the history holds every revision
 * above it. */
static void do_watch(rstate_server *srv, client *c, const rstate__wire_watch *m) {
  int rc = RSTATE_OK;
  if (m->sub == 0)
    rc = rstate__err(RSTATE_EINVAL, "WATCH: subscription id 0 is not allowed");
  else if (find_sub(c, m->sub))
    rc = rstate__err(RSTATE_EINVAL, "WATCH: subscription %llu is already in use on this connection",
                     (unsigned long long)m->sub);
  else if (m->n == 0)
    rc = rstate__err(RSTATE_EINVAL, "WATCH: subscription %llu has no pattern", (unsigned long long)m->sub);
  else if (c->n_subs >= MAX_SUBS)
    rc = rstate__err(RSTATE_ELIMIT, "WATCH: a connection may have at most %d subscriptions", MAX_SUBS);
  if (!rc) rc = patterns_check(m->patterns, m->n);
  if (rc) {
    reply_error(srv, c, m->req, rc, SIZE_MAX);
    return;
  }
  if (c->n_subs == c->cap_subs) {
    size_t cap = c->cap_subs ? c->cap_subs * 2 : 4;
    sub **subs = realloc(c->subs, cap * sizeof *subs);
    if (!subs) {
      rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
      reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
      return;
    }
    c->subs = subs;
    c->cap_subs = cap;
  }
  sub *sb = sub_new(m->sub, m->patterns, m->n);
  if (!sb) {
    rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
    reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
    return;
  }
  uint8_t status = RSTATE__WIRE_WATCH_NEW;
  if (m->resume_after) {
    uint64_t cur = rstate__serve_revision(srv->store, NULL);
    drain(srv); /* every revision up to cur is now in the history */
    if (m->resume_after >= srv->hist.head->revision && m->resume_after <= cur) {
      if (!attach(srv, c, sb, rstate__history_find(&srv->hist, NULL, m->resume_after))) {
        sub_free(sb);
        rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
        reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
        return;
      }
      rstate__wire_watch_reply r = {m->req, m->sub, RSTATE__WIRE_WATCH_RESUMED, m->resume_after, 0};
      sent(srv, c, rstate__wire_put_watch_reply(&c->out, &r), 1);
      return;
    }
    status = RSTATE__WIRE_WATCH_GAP;
  }
  bool initial = status == RSTATE__WIRE_WATCH_GAP || (m->flags & RSTATE__WIRE_WATCH_INITIAL);
  rstate__hentry *before = srv->hist.tail; /* published before the snapshot: revision <= R */
  rstate__snap sn = {0};
  uint64_t R = 0;
  if (initial)
    rc = rstate__snapshot_take(srv->store, m->patterns, m->n, true, &sn, &R, "WATCH");
  else
    R = rstate__serve_revision(srv->store, NULL);
  if (!rc && !ensure_evs(srv, sn.n)) rc = rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
  if (!rc) {
    drain(srv);
    if (!attach(srv, c, sb, rstate__history_find(&srv->hist, before, R)))
      rc = rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
  }
  if (rc) {
    rstate__snap_free(&sn);
    sub_free(sb);
    reply_error(srv, c, m->req, rc, SIZE_MAX);
    return;
  }
  rstate__wire_watch_reply r = {m->req, m->sub, status, R, sn.n};
  sent(srv, c, rstate__wire_put_watch_reply(&c->out, &r), 1);
  if (sn.n && c->state == C_READY) { /* in name order, as a mem: store gives them */
    for (size_t i = 0; i < sn.n; i++) {
      const rstate__snap_var *v = &sn.vars[i];
      srv->evs[i] = (rstate__wire_event){RSTATE_EVENT_INITIAL, v->name,       v->type, {.kind = RSTATE_NONE}, v->value,
                                         v->version,           v->updated_ns, 0};
    }
    rstate__wire_events ev = {m->sub, R, 0, NULL, NULL, 0, srv->evs, sn.n};
    size_t frames = 0;
    rc = rstate__wire_put_events_split(&c->out, &ev, srv->max_frame, &frames);
    sent(srv, c, rc, frames);
    srv->events_sent += sn.n;
  }
  rstate__snap_free(&sn);
}

/* ---- frames from a client ---------------------------------------------------- */

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
    fail(srv, c, RSTATE_EPROTO, msg);
    return;
  }
  if (f->len < RSTATE__WIRE_MAGIC_LEN || memcmp(f->body, RSTATE__WIRE_MAGIC, RSTATE__WIRE_MAGIC_LEN) != 0) {
    c->doomed = true; /* not our protocol: no answer */
    return;
  }
  rstate__wire_hello h;
  int rc = rstate__wire_decode_hello(f->body, f->len, &srv->scratch, &h);
  if (rc) {
    fail(srv, c, rc, rstate_last_error());
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
      fail(srv, c, RSTATE_EPERM, "the token was refused");
      return;
    }
  }
  uint32_t hb = srv->hb_ms;
  if (h.heartbeat_ms && h.heartbeat_ms < hb) hb = h.heartbeat_ms;
  rstate__wire_welcome w = {RSTATE__WIRE_VERSION,        srv->instance_id, hb,
                            rstate_revision(srv->store), srv->max_frame,   access};
  rc = rstate__wire_put_welcome(&c->out, &w);
  if (rc) {
    fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
    return;
  }
  frames_out(srv, 1);
  c->access = access;
  c->hb_ms = hb;
  c->last_ping = now_ms();
  c->rd.max_frame = srv->max_frame;
  c->state = C_READY;
  srv->n_ready++;
  arm_timer(srv, hb);
  if (srv->on_client) {
    name_peer(srv, c);
    c->announced = true;
    srv->on_client(srv, c->peer, true, NULL, srv->client_ud);
  }
}

/* name: the variable the request would change first. */
static bool refuse_read_only(rstate_server *srv, client *c, uint32_t req, const char *name) {
  if (c->access != RSTATE__WIRE_READ_ONLY) return false;
  rstate__err(RSTATE_EPERM, "%s: not changed: this connection gave the read token, which may read and watch only",
              name);
  reply_error(srv, c, req, RSTATE_EPERM, SIZE_MAX);
  return true;
}

static void on_request(rstate_server *srv, client *c, const rstate__wire_frame *f) {
  if (f->type == RSTATE__WIRE_HELLO || !rstate__wire_type_known(f->type) || !rstate__wire_type_to_server(f->type)) {
    char msg[96];
    snprintf(msg, sizeof msg, "a client may not send a frame of type 0x%02x (%s)%s", f->type,
             rstate__wire_type_name(f->type), f->type == RSTATE__WIRE_HELLO ? " after the handshake" : "");
    fail(srv, c, RSTATE_EPROTO, msg);
    return;
  }
  rstate__wire_msg m;
  int rc = rstate__wire_decode_frame(f, &srv->scratch, &m);
  if (rc) {
    fail(srv, c, rc, rstate_last_error());
    return;
  }
  rstate_store *s = srv->store;
  switch (f->type) {
    case RSTATE__WIRE_PING:
      sent(srv, c, rstate__wire_put_ping(&c->out, RSTATE__WIRE_PONG, m.u.ping.payload), 1);
      break;
    case RSTATE__WIRE_PONG:
      break;
    case RSTATE__WIRE_DEFINE:
      if (refuse_read_only(srv, c, m.u.define.req, m.u.define.def.name)) break;
      rc = rstate_define(s, &m.u.define.def);
      if (rc) {
        reply_error(srv, c, m.u.define.req, rc, SIZE_MAX);
      } else {
        events_first(srv, c);
        sent(srv, c, rstate__wire_put_req(&c->out, RSTATE__WIRE_OK, m.u.define.req), 1);
      }
      break;
    case RSTATE__WIRE_UNDEFINE:
      if (refuse_read_only(srv, c, m.u.name.req, m.u.name.name)) break;
      rc = rstate_undefine(s, m.u.name.name);
      if (rc) {
        reply_error(srv, c, m.u.name.req, rc, SIZE_MAX);
      } else {
        events_first(srv, c);
        sent(srv, c, rstate__wire_put_req(&c->out, RSTATE__WIRE_OK, m.u.name.req), 1);
      }
      break;
    case RSTATE__WIRE_GET: {
      rstate__wire_get_reply r = {.req = m.u.name.req};
      rstate_var_info info;
      rc = rstate__serve_get(s, m.u.name.name, &r.value, &info);
      if (rc) {
        reply_error(srv, c, m.u.name.req, rc, SIZE_MAX);
        break;
      }
      r.type = info.type;
      r.version = info.version;
      r.revision = info.revision;
      r.updated_ns = info.updated_ns;
      sent(srv, c, rstate__wire_put_get_reply(&c->out, &r), 1);
      rstate_value_clear(&r.value);
      break;
    }
    case RSTATE__WIRE_INFO: {
      rstate__wire_info_reply r = {.req = m.u.name.req};
      rc = rstate_info(s, m.u.name.name, &r.info);
      if (rc)
        reply_error(srv, c, m.u.name.req, rc, SIZE_MAX);
      else
        sent(srv, c, rstate__wire_put_info_reply(&c->out, &r), 1);
      break;
    }
    case RSTATE__WIRE_GET_MANY:
      do_get_many(srv, c, &m.u.names);
      break;
    case RSTATE__WIRE_SET_MANY:
      if (refuse_read_only(srv, c, m.u.set_many.req, m.u.set_many.n ? m.u.set_many.items[0].name : "SET_MANY")) break;
      do_set_many(srv, c, &m.u.set_many);
      break;
    case RSTATE__WIRE_LIST:
      do_list(srv, c, &m.u.names, false);
      break;
    case RSTATE__WIRE_SNAPSHOT:
      do_list(srv, c, &m.u.names, true);
      break;
    case RSTATE__WIRE_WATCH:
      do_watch(srv, c, &m.u.watch);
      break;
    case RSTATE__WIRE_UNWATCH: {
      sub **slot = find_sub(c, m.u.unwatch.sub);
      if (!slot) {
        rstate__err(RSTATE_ENOTFOUND, "UNWATCH: no subscription %llu on this connection",
                    (unsigned long long)m.u.unwatch.sub);
        reply_error(srv, c, m.u.unwatch.req, RSTATE_ENOTFOUND, SIZE_MAX);
        break;
      }
      remove_sub(srv, c, slot);
      sent(srv, c, rstate__wire_put_req(&c->out, RSTATE__WIRE_OK, m.u.unwatch.req), 1);
      break;
    }
    case RSTATE__WIRE_STATS:
      do_stats(srv, c, m.u.req.req);
      break;
    case RSTATE__WIRE_REVISION: {
      rstate__wire_rev r = {m.u.req.req, rstate_revision(s)};
      sent(srv, c, rstate__wire_put_rev(&c->out, RSTATE__WIRE_REVISION_REPLY, &r), 1);
      break;
    }
    default:
      break;
  }
}

static void on_readable(rstate_server *srv, client *c) {
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
      fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
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
    rstate__wire_frame f;
    int rc = 0;
    while (c->state != C_CLOSING && !c->doomed && (rc = rstate__wire_reader_next(&c->rd, &f)) == 1) {
      srv->frames_in++;
      if (c->state == C_HELLO)
        on_hello(srv, c, &f);
      else
        on_request(srv, c, &f);
    }
    if (c->state != C_CLOSING && !c->doomed && rc < 0) {
      fail(srv, c, rc, rstate_last_error());
      return;
    }
    if ((size_t)r < room) return; /* the socket is empty: epoll tells when more comes */
    /* answers are piling up: stop reading until they are written */
    if (out_pending(c) > 2 * srv->max_queue + srv->threshold) return;
  }
}

/* ---- streaming ---------------------------------------------------------------- */

/* Encodes the covered changes of one entry for a subscription. */
static int put_entry(rstate_server *srv, client *c, const sub *s, const rstate__hentry *e, uint8_t flags,
                     size_t *events) {
  size_t k = 0;
  if (!ensure_evs(srv, e->n)) return RSTATE_ENOMEM;
  for (size_t i = 0; i < e->n; i++) {
    const rstate__hchange *h = &e->changes[i];
    if (!covers(s, h)) continue;
    srv->evs[k++] =
        (rstate__wire_event){h->kind, h->name, h->type, h->old_value, h->new_value, h->version, h->timestamp_ns, 1};
  }
  *events = k;
  if (!k) return RSTATE_OK;
  rstate__wire_events ev = {s->id, e->revision, flags, e->source, e->meta, e->n_meta, srv->evs, k};
  size_t frames = 0;
  int rc = rstate__wire_put_events_split(&c->out, &ev, srv->max_frame, &frames);
  if (!rc) {
    frames_out(srv, frames);
    srv->events_sent += k;
  }
  return rc;
}

/* Sends a subscription's coalesced events as one group. */
static int put_coalesced(rstate_server *srv, client *c, sub *s) {
  rstate__coalesced *p = &s->pend;
  size_t last = p->n;
  while (last > 0 && p->ev[last - 1].dead) last--;
  if (!ensure_evs(srv, p->live)) return RSTATE_ENOMEM;
  size_t i = 0;
  while (i < last) {
    if (p->ev[i].dead) {
      i++;
      continue;
    }
    const rstate__hentry *e = p->ev[i].e;
    size_t k = 0, j = i;
    for (; j < last && (p->ev[j].dead || p->ev[j].e == e); j++) {
      const rstate__cevent *ce = &p->ev[j];
      if (ce->dead) continue;
      const rstate__hchange *h = &e->changes[ce->idx];
      srv->evs[k++] =
          (rstate__wire_event){h->kind,      h->name,    h->type,         ce->first->changes[ce->first_idx].old_value,
                               h->new_value, h->version, h->timestamp_ns, ce->coalesced};
    }
    rstate__wire_events ev = {
        s->id, e->revision, j < last ? RSTATE__WIRE_MORE : 0, e->source, e->meta, e->n_meta, srv->evs, k};
    size_t frames = 0;
    int rc = rstate__wire_put_events_split(&c->out, &ev, srv->max_frame, &frames);
    if (rc) return rc;
    frames_out(srv, frames);
    srv->events_sent += k;
    i = j;
  }
  rstate__coalesced_clear(p);
  return RSTATE_OK;
}

/* Bytes waiting for this client: its output, and the history after its
 * oldest cursor (running byte totals make this a subtraction). */
static uint64_t backlog(const rstate_server *srv, const client *c) {
  uint64_t q = out_pending(c);
  uint64_t oldest = UINT64_MAX;
  for (size_t i = 0; i < c->n_subs; i++)
    if (at(srv, c->subs[i])->cum_bytes < oldest) oldest = at(srv, c->subs[i])->cum_bytes;
  if (oldest != UINT64_MAX) q += srv->hist.total_bytes - oldest;
  return q;
}

/* Folds everything a slow client's subscriptions have not had into their
 * coalesced lists, so the history can let go of it. */
static void coalesce(rstate_server *srv, client *c) {
  uint32_t idx_small[64];
  for (size_t i = 0; i < c->n_subs; i++) {
    sub *s = c->subs[i];
    rstate__hentry *e = at(srv, s);
    while (e->next) {
      rstate__hentry *n = e->next;
      uint32_t *idx = n->n <= 64 ? idx_small : malloc(n->n * sizeof *idx);
      if (!idx) break;
      size_t k = 0;
      for (size_t j = 0; j < n->n; j++)
        if (covers(s, &n->changes[j])) idx[k++] = (uint32_t)j;
      size_t merged = 0;
      bool ok = !k || rstate__coalesced_add(&s->pend, n, idx, k, &merged);
      if (idx != idx_small) free(idx);
      if (!ok) break; /* out of memory: stream from here later */
      srv->events_coalesced += merged;
      e = n;
    }
    if (e != s->cursor) rstate__cursor_set(&s->cursor, e);
  }
}

/* Whether a subscription has anything left to send. */
static bool has_more(const rstate_server *srv, const client *c) {
  for (size_t i = 0; i < c->n_subs; i++)
    if (c->subs[i]->pend.live || at(srv, c->subs[i])->next) return true;
  return false;
}

/* Moves what the subscriptions have not had into the client's output, up
 * to the threshold, and notes whether more is left; false when the client
 * is being failed. */
static bool fill(rstate_server *srv, client *c, size_t limit) {
  if (c->state != C_READY || c->doomed) return false;
  activate(srv, c); /* its cursors move: resync at the end of the turn */
  /* A client that takes what it is sent is not coalesced while the server
   * itself is catching up, unless its backlog grows past four times the
   * bound; one that stops reading (its output full) is, past the bound. */
  uint64_t b = backlog(srv, c);
  if (b > srv->max_queue && (out_pending(c) >= srv->threshold || b > 4 * (uint64_t)srv->max_queue)) coalesce(srv, c);
  size_t i = 0;
  for (; i < c->n_subs && out_pending(c) < limit; i++) {
    sub *s = c->subs[i];
    int rc = RSTATE_OK;
    if (s->pend.live) rc = put_coalesced(srv, c, s);
    rstate__hentry *e = at(srv, s);
    while (!rc && e->next && out_pending(c) < limit) {
      e = e->next;
      size_t k;
      rc = put_entry(srv, c, s, e, 0, &k);
    }
    if (e != s->cursor) rstate__cursor_set(&s->cursor, e);
    if (rc) {
      fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
      return false;
    }
  }
  /* the ones not reached keep their place when srv->synced moves on */
  for (; i < c->n_subs; i++)
    if (!c->subs[i]->cursor) rstate__cursor_set(&c->subs[i]->cursor, srv->synced);
  c->more = has_more(srv, c);
  return true;
}

/* Fills the client's output and writes, a few rounds at most (other
 * clients wait meanwhile). When more is left, EPOLLOUT stays on even with
 * the output empty, so the loop comes back for it. */
static void pump(rstate_server *srv, client *c) {
  for (int round = 0; round < 4; round++) {
    if (!fill(srv, c, srv->threshold)) return;
    flush(srv, c);
    if (c->doomed || !c->more || out_pending(c) >= srv->threshold) return;
  }
}

/* Before the answer to a write: the events up to that write go out first,
 * so that a client whose own watches cover what it wrote has had their
 * events when its write returns (unless it is too far behind). Past the
 * streaming threshold, up to max_queue_bytes: what is behind the output
 * must not slip behind the answer. */
static void events_first(rstate_server *srv, client *c) {
  drain(srv);
  fill(srv, c, srv->max_queue > srv->threshold ? srv->max_queue : srv->threshold);
}

/* ---- heartbeats ---------------------------------------------------------------- */

static void on_tick(rstate_server *srv) {
  uint64_t ticks;
  ssize_t r = read(srv->tfd, &ticks, sizeof ticks);
  (void)r;
  int64_t now = now_ms();
  if (srv->accept_paused) {
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &srv->lis.fd};
    if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, srv->lis.fd, &e) == 0) srv->accept_paused = false;
  }
  for (client *c = srv->clients, *next; c; c = next) {
    next = c->next;
    if (c->state == C_CLOSING) {
      if (now >= c->deadline) c->doomed = true;
    } else if (now - c->last_rx > 3 * (int64_t)c->hb_ms) {
      char msg[96];
      snprintf(msg, sizeof msg, "nothing received for %u ms: three heartbeats missed", 3 * c->hb_ms);
      fail(srv, c, RSTATE_ETIMEDOUT, msg);
      c->doomed = true; /* it is not listening: no linger */
    } else if (c->state == C_READY && now - c->last_ping >= (int64_t)c->hb_ms) {
      c->last_ping = now;
      sent(srv, c, rstate__wire_put_ping(&c->out, RSTATE__WIRE_PING, ++srv->ping_seq), 1);
      flush(srv, c);
    }
    settle(srv, c);
  }
}

/* ---- the thread ---------------------------------------------------------------- */

static void *server_main(void *arg) {
  tls_serving = (rstate_server *)arg;
  rstate_server *srv = arg;
  bool tick = false;
  struct epoll_event evs[64];
  while (!atomic_load(&srv->stopping)) {
    int n = epoll_wait(srv->ep, evs, 64, srv->self_queued ? 0 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &srv->lis.fd) {
        on_accept(srv);
      } else if (p == &srv->efd) {
        uint64_t v;
        ssize_t r = read(srv->efd, &v, sizeof v);
        (void)r; /* read before drain(): a later publish wakes us again */
      } else if (p == &srv->tfd) {
        tick = true;
      } else {
        client *c = p;
        activate(srv, c); /* what it asked for is flushed at the end of the turn */
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(srv, c);
        if (srv->scratch.cap > SCRATCH_KEEP) rstate__wire_buf_free(&srv->scratch); /* after a big frame */
        if (!c->doomed && (evs[i].events & EPOLLOUT)) flush(srv, c);
        settle(srv, c);
      }
    }
    drain(srv);
    if (tick) on_tick(srv);
    tick = false;
    /* the active clients only: the others' subscriptions cover none of the
     * changes since the last turn, and move on with srv->synced */
    for (client *c = srv->active, *next; c; c = next) {
      next = c->anext;
      pump(srv, c);
      settle(srv, c);
    }
    rstate__cursor_set(&srv->synced, srv->hist.tail);
    for (client *c = srv->active, *next; c; c = next) {
      next = c->anext;
      if (resync(srv, c)) deactivate(srv, c);
    }
    rstate__history_trim(&srv->hist);
  }
  /* stopping: tell every client, when its socket takes it, and close */
  for (client *c = srv->clients, *next; c; c = next) {
    next = c->next;
    fail(srv, c, RSTATE_ECLOSED, srv->stop_why);
    c->doomed = true;
    settle(srv, c);
  }
  return NULL;
}

/* ---- start and stop ------------------------------------------------------------ */

static uint64_t random_id(void) {
  uint64_t id = 0;
  if (getrandom(&id, sizeof id, GRND_NONBLOCK) == (ssize_t)sizeof id && id) return id;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r = read(fd, &id, sizeof id);
    close(fd);
    if (r == (ssize_t)sizeof id && id) return id;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  id = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
  return id ? id : 1;
}

/* Ends the serving: no change reaches the server any more, its thread
 * tells each client why and ends, the listening socket closes (its file
 * removed). What rstate_server_uri gives is kept. A second call does
 * nothing. */
static void shut(rstate_server *srv, const char *why) {
  if (srv->tap_added) rstate__tap_remove(srv->store, &srv->tap);
  srv->tap_added = false;
  if (srv->thread_started) {
    srv->stop_why = why;
    atomic_store(&srv->stopping, true);
    uint64_t one = 1;
    ssize_t w = write(srv->efd, &one, sizeof one);
    (void)w;
    pthread_join(srv->thread, NULL);
    srv->thread_started = false;
  }
  rstate__listener_shut(&srv->lis);
}

/* rstate_close of the served store: its server stops serving it at once;
 * rstate_server_stop frees the rest. */
static void tap_closing(void *ud) { shut(ud, "the store was closed"); }

static void server_free(rstate_server *srv) {
  shut(srv, "the server is stopping");
  for (rstate__hentry *e = srv->in_head, *next; e; e = next) {
    next = e->next;
    rstate__hentry_unref(e);
  }
  rstate__cursor_set(&srv->synced, NULL);
  if (srv->hist.head) rstate__history_free(&srv->hist);
  rstate__subindex_free(&srv->index);
  rstate__listener_close(&srv->lis);
  if (srv->ep >= 0) close(srv->ep);
  if (srv->efd >= 0) close(srv->efd);
  if (srv->tfd >= 0) close(srv->tfd);
  pthread_mutex_destroy(&srv->mu);
  rstate__wire_buf_free(&srv->scratch);
  free(srv->evs);
  free(srv->token);
  free(srv->read_token);
  free(srv);
}

static int check_opts(const rstate_server_opts *o) {
  if (o->heartbeat_ms < 0)
    return rstate__err(RSTATE_EINVAL, "rstate_server_start: heartbeat_ms %d is negative", o->heartbeat_ms);
  if (o->max_frame && (o->max_frame < RSTATE__WIRE_MIN_MAX_FRAME || o->max_frame > UINT32_MAX / 4))
    return rstate__err(RSTATE_EINVAL, "rstate_server_start: max_frame %zu is not between %u and %u", o->max_frame,
                       RSTATE__WIRE_MIN_MAX_FRAME, UINT32_MAX / 4);
  return RSTATE_OK;
}

int rstate_server_start(rstate_server **out, rstate_store *store, const char *listen_uri,
                        const rstate_server_opts *opts) {
  if (out) *out = NULL;
  if (!out || !store || !listen_uri)
    return rstate__err(RSTATE_EINVAL, "rstate_server_start: out, store and listen_uri must not be NULL");
  rstate_server_opts o = {0};
  if (opts) o = *opts;
  int rc = check_opts(&o);
  if (rc) return rc;

  rstate_server *srv = calloc(1, sizeof *srv);
  if (!srv) return rstate__err(RSTATE_ENOMEM, "rstate_server_start: out of memory");
  srv->lis.fd = srv->efd = srv->tfd = srv->ep = -1;
  pthread_mutex_init(&srv->mu, NULL);
  rstate__wire_buf_init(&srv->scratch);
  rstate__subindex_init(&srv->index);
  srv->store = store;
  srv->stop_why = "the server is stopping";
  srv->hb_ms = o.heartbeat_ms ? (uint32_t)o.heartbeat_ms : DEFAULT_HEARTBEAT_MS;
  srv->max_clients = o.max_clients ? o.max_clients : DEFAULT_MAX_CLIENTS;
  srv->max_frame = o.max_frame ? (uint32_t)o.max_frame : RSTATE__WIRE_DEFAULT_MAX_FRAME;
  srv->max_queue = o.max_queue_bytes ? o.max_queue_bytes : DEFAULT_MAX_QUEUE;
  srv->threshold = srv->max_queue < STREAM_THRESHOLD ? srv->max_queue : STREAM_THRESHOLD;
  srv->on_client = o.on_client;
  srv->client_ud = o.client_userdata;
  srv->instance_id = random_id();
  srv->started_ns = rstate__monotonic_ns();
  /* an empty token is no token */
  if ((o.token && *o.token && !(srv->token = strdup(o.token))) ||
      (o.read_token && *o.read_token && !(srv->read_token = strdup(o.read_token)))) {
    server_free(srv);
    return rstate__err(RSTATE_ENOMEM, "rstate_server_start: out of memory");
  }

  rc = rstate__listener_open(&srv->lis, listen_uri, "rstate_server_start");
  if (!rc) {
    srv->ep = epoll_create1(EPOLL_CLOEXEC);
    srv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &srv->lis.fd};
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &srv->efd};
    struct epoll_event et = {.events = EPOLLIN, .data.ptr = &srv->tfd};
    if (srv->ep < 0 || srv->efd < 0 || srv->tfd < 0 || epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->lis.fd, &el) ||
        epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->efd, &ee) || epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->tfd, &et))
      rc = rstate__err(RSTATE_EIO, "rstate_server_start: %s", strerror(errno));
  }
  if (!rc) {
    arm_timer(srv, srv->hb_ms);
    srv->tap = (rstate__tap){tap_prepare, tap_publish, tap_discard, tap_closing, srv};
    rc = rstate__tap_add(store, &srv->tap);
    srv->tap_added = rc == RSTATE_OK;
  }
  /* the revision read after the tap is in: every later change reaches the history */
  if (!rc) rc = rstate__history_init(&srv->hist, o.history ? o.history : DEFAULT_HISTORY, rstate_revision(store));
  if (!rc) rstate__cursor_set(&srv->synced, srv->hist.head);
  if (!rc) {
    int e = pthread_create(&srv->thread, NULL, server_main, srv);
    if (e) rc = rstate__err(RSTATE_ENOMEM, "rstate_server_start: cannot start the server thread: %s", strerror(e));
    srv->thread_started = e == 0;
  }
  if (rc) {
    server_free(srv);
    return rc;
  }
  *out = srv;
  return RSTATE_OK;
}

const char *rstate_server_uri(const rstate_server *srv) { return srv && srv->lis.uri ? srv->lis.uri : ""; }

void rstate_server_stop(rstate_server *srv) {
  if (srv) server_free(srv);
}
