/*
 * loop.c — serving a store over a Unix or TCP stream socket, speaking the
 * protocol of docs/PROTOCOL.md: the server's thread, its heartbeats, and
 * starting and stopping it. The other parts are client.c (connections, the
 * handshake), request.c (the request table), subs.c (subscriptions, the
 * active clients), stream.c (changes in, events out), history.c and
 * listener.c; the codec is src/wire/.
 *
 * One thread per server runs an epoll loop over the listening socket, the
 * clients (non-blocking), an eventfd and a timerfd. Requests run on that
 * thread through the front end's calls (the public ones and those
 * core/core.h makes for serving), so the front end makes every check it
 * makes for any caller (the server checks no name or value itself).
 * Changes reach the server through a tap (core/tap.c): under the backend's
 * lock, in revision order, each revision is copied into one history entry
 * and queued for the server thread, which is woken through the eventfd (one
 * write per batch, not per change). The thread moves queued entries into
 * its history, streams to each subscription what it covers, and merges what
 * a slow client cannot take.
 *
 * A change costs work only for the clients it concerns: the index of the
 * names subscriptions watch (types/subindex.c) finds them as the entry
 * comes in, and the loop pumps the active clients alone (subs.c). A
 * subscription that has had everything keeps no cursor of its own: it
 * stands at srv->synced, which moves to the history's tail at the end of
 * each turn.
 *
 * Locks: the tap takes the server's mutex under the backend's lock; the
 * server thread takes the mutex only to move the queue and never calls the
 * store while holding it. Nothing else is shared: clients, subscriptions
 * and the history belong to the server thread, which copies its counters
 * under stats_mu at the end of each turn for rstate_server_get_stats.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

static void set_tick(rstate_server *srv, uint32_t tick) {
  srv->tick_ms = tick;
  struct itimerspec its = {{tick / 1000, (long)(tick % 1000) * 1000000L},
                           {tick / 1000, (long)(tick % 1000) * 1000000L}};
  timerfd_settime(srv->tfd, 0, &its, NULL);
}

static uint32_t tick_for(uint32_t hb_ms) { return hb_ms / 4 ? hb_ms / 4 : 1; }

/* The heartbeat tick: a quarter of the shortest interval in force. */
void rstate__srv_arm_timer(rstate_server *srv, uint32_t hb_ms) {
  uint32_t tick = tick_for(hb_ms);
  if (srv->tick_ms && tick >= srv->tick_ms) return;
  set_tick(srv, tick);
}

/* The tick follows the clients connected now: once the one that asked for
 * the shortest heartbeat has gone, it lengthens again. */
static void retick(rstate_server *srv) {
  uint32_t hb = srv->hb_ms;
  for (const client *c = srv->clients; c; c = c->next)
    if (c->state == C_READY && c->hb_ms < hb) hb = c->hb_ms;
  if (tick_for(hb) != srv->tick_ms) set_tick(srv, tick_for(hb));
}

static void on_tick(rstate_server *srv) {
  uint64_t ticks;
  ssize_t r = read(srv->tfd, &ticks, sizeof ticks);
  (void)r;
  int64_t now = now_ms();
  if (srv->accept_paused) {
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &srv->lis.fd};
    if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, srv->lis.fd, &e) == 0) srv->accept_paused = false;
  }
  rstate__srv_accept_resume(srv);
  for (client *c = srv->clients, *next; c; c = next) {
    next = c->next;
    if (c->state == C_CLOSING) {
      if (now >= c->deadline) c->doomed = true;
    } else if (c->state == C_HELLO) {
      /* the deadline counts from the accept: bytes received do not move it */
      if (now >= c->deadline) {
        rstate__srv_log(srv, LOG_HANDSHAKE_LATE, "closed %s: no handshake within %u ms of connecting", c->peer,
                        srv->handshake_ms);
        char msg[96];
        snprintf(msg, sizeof msg, "the handshake did not complete within %u ms", srv->handshake_ms);
        rstate__srv_fail(srv, c, RSTATE_ETIMEDOUT, msg);
      }
    } else if (now - c->last_rx > 3 * (int64_t)c->hb_ms) {
      char msg[96];
      snprintf(msg, sizeof msg, "nothing received for %u ms: three heartbeats missed", 3 * c->hb_ms);
      rstate__srv_fail(srv, c, RSTATE_ETIMEDOUT, msg);
      c->doomed = true; /* it is not listening: no linger */
    } else if (c->state == C_READY && now - c->last_ping >= (int64_t)c->hb_ms) {
      c->last_ping = now;
      rstate__srv_sent(srv, c, rstate__wire_put_ping(&c->out, RSTATE__WIRE_PING, ++srv->ping_seq), 1);
      rstate__srv_flush(srv, c);
    }
    rstate__srv_settle(srv, c);
  }
  retick(srv);
}

/* The counters rstate_server_get_stats reads, published once a turn. */
static void publish_stats(rstate_server *srv) {
  rstate_server_stats st = {.clients = srv->n_ready,
                            .events_sent = srv->events_sent,
                            .events_coalesced = srv->events_coalesced,
                            .history_events = srv->hist.events,
                            .history_bytes = rstate__history_bytes(&srv->hist)};
  memcpy(st.refused, srv->refused, sizeof st.refused);
  pthread_mutex_lock(&srv->stats_mu);
  srv->stats = st;
  pthread_mutex_unlock(&srv->stats_mu);
}

int rstate_server_get_stats(const rstate_server *srv, rstate_server_stats *out) {
  if (!srv || !out) return rstate__err(RSTATE_EINVAL, "rstate_server_get_stats: server and out must not be NULL");
  rstate_server *m = (rstate_server *)srv; /* the lock, not the counters, changes */
  pthread_mutex_lock(&m->stats_mu);
  *out = m->stats;
  pthread_mutex_unlock(&m->stats_mu);
  return RSTATE_OK;
}

/* A turn's writes are answered only once they are durable: the backend
 * defers each one's wait (a file: store with RSTATE_SYNC_ALWAYS: its
 * fdatasync) to the end of the turn's requests, where one wait covers
 * them all, the writes of many clients sharing one fdatasync. Until then
 * nothing is written to any client. When that wait fails, the writes are
 * made but may not be on disk: the clients that wrote in the turn are
 * closed unanswered, so that their calls fail with RSTATE_ECLOSED, which
 * says the change may have been applied. */
static void hold_answers(rstate_server *srv) {
  srv->holding = true;
  rstate__serve_defer_durability(srv->store, true); /* cannot fail */
}

static void release_answers(rstate_server *srv) {
  int rc = rstate__serve_defer_durability(srv->store, false);
  srv->holding = false;
  if (rc) {
    size_t n = 0;
    for (client *c = srv->clients; c; c = c->next)
      if (c->wrote_turn == srv->wakeups && !c->doomed) {
        c->doomed = true;
        n++;
      }
    rstate__srv_log(srv, LOG_NOT_DURABLE, "%s: closed %zu clients unanswered: their changes are made but may not be on disk",
                    rstate_last_error(), n);
  }
  for (client *c = srv->active, *next; c; c = next) {
    next = c->anext;
    if (c->flush_held) {
      c->flush_held = false;
      rstate__srv_flush(srv, c);
    }
    rstate__srv_settle(srv, c);
  }
}

static void *server_main(void *arg) {
  rstate__srv_serving = (rstate_server *)arg;
  rstate_server *srv = arg;
  bool tick = false;
  struct epoll_event evs[64];
  while (!atomic_load(&srv->stopping)) {
    int n = epoll_wait(srv->ep, evs, 64, srv->self_queued ? 0 : -1);
    srv->wakeups++;
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    hold_answers(srv);
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &srv->lis.fd) {
        rstate__srv_on_accept(srv);
      } else if (p == &srv->efd) {
        uint64_t v;
        ssize_t r = read(srv->efd, &v, sizeof v);
        (void)r; /* read before drain(): a later publish wakes us again */
      } else if (p == &srv->tfd) {
        tick = true;
      } else {
        client *c = p;
        rstate__srv_activate(srv, c); /* what it asked for is flushed at the end of the turn */
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) rstate__srv_on_readable(srv, c);
        if (srv->scratch.cap > SCRATCH_KEEP) rstate__wire_buf_free(&srv->scratch); /* after a big frame */
        if (!c->doomed && (evs[i].events & EPOLLOUT)) rstate__srv_flush(srv, c);
        /* its answers were read: the requests that waited for that go on */
        if (!c->doomed && c->stalled && out_pending(c) <= out_bound(srv)) rstate__srv_on_readable(srv, c);
        rstate__srv_settle(srv, c);
      }
    }
    release_answers(srv);
    rstate__srv_drain(srv);
    if (tick) on_tick(srv);
    tick = false;
    /* the active clients only: the others' subscriptions cover none of the
     * changes since the last turn, and move on with srv->synced. Every
     * client's events are encoded before the first is written: each write
     * wakes a client's thread, which on a small machine takes the CPU from
     * this one, and the writes that follow should be only writes. */
    for (client *c = srv->active; c; c = c->anext) rstate__srv_fill(srv, c);
    for (client *c = srv->active, *next; c; c = next) {
      next = c->anext;
      rstate__srv_pump(srv, c);
      rstate__srv_settle(srv, c);
    }
    rstate__cursor_set(&srv->synced, srv->hist.tail);
    for (client *c = srv->active, *next; c; c = next) {
      next = c->anext;
      if (rstate__srv_resync(srv, c)) rstate__srv_deactivate(srv, c);
    }
    size_t forgot = rstate__history_trim(&srv->hist);
    if (forgot)
      rstate__srv_log(srv, LOG_HISTORY_BYTES,
                      "history: forgot %zu changes to stay within history_bytes (%llu); a client resuming from "
                      "before revision %llu gets a snapshot",
                      forgot, (unsigned long long)srv->hist.max_bytes, (unsigned long long)srv->hist.head->revision);
    publish_stats(srv);
  }
  /* stopping: tell every client, when its socket takes it, and close */
  for (client *c = srv->clients, *next; c; c = next) {
    next = c->next;
    rstate__srv_fail(srv, c, RSTATE_ECLOSED, srv->stop_why);
    c->doomed = true;
    rstate__srv_settle(srv, c);
  }
  return NULL;
}

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
  pthread_mutex_destroy(&srv->stats_mu);
  rstate__wire_buf_free(&srv->scratch);
  free(srv->evs);
  free(srv->token);
  free(srv->read_token);
  free(srv);
}

static int check_opts(const rstate_server_opts *o) {
  if (o->heartbeat_ms < 0)
    return rstate__err(RSTATE_EINVAL, "rstate_server_start: heartbeat_ms %d is negative", o->heartbeat_ms);
  if (o->handshake_ms < 0)
    return rstate__err(RSTATE_EINVAL, "rstate_server_start: handshake_ms %d is negative", o->handshake_ms);
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
  pthread_mutex_init(&srv->stats_mu, NULL);
  rstate__wire_buf_init(&srv->scratch);
  rstate__subindex_init(&srv->index);
  srv->store = store;
  srv->stop_why = "the server is stopping";
  srv->hb_ms = o.heartbeat_ms ? (uint32_t)o.heartbeat_ms : DEFAULT_HEARTBEAT_MS;
  srv->max_clients = o.max_clients ? o.max_clients : DEFAULT_MAX_CLIENTS;
  srv->max_handshakes = o.max_handshakes ? o.max_handshakes : DEFAULT_MAX_HANDSHAKES;
  srv->handshake_ms = o.handshake_ms ? (uint32_t)o.handshake_ms : DEFAULT_HANDSHAKE_MS;
  srv->on_log = o.on_log;
  srv->log_ud = o.log_userdata;
  srv->max_frame = o.max_frame ? (uint32_t)o.max_frame : RSTATE__WIRE_DEFAULT_MAX_FRAME;
  srv->max_queue = o.max_queue_bytes ? o.max_queue_bytes : DEFAULT_MAX_QUEUE;
  srv->threshold = srv->max_queue < STREAM_THRESHOLD ? srv->max_queue : STREAM_THRESHOLD;
  srv->on_client = o.on_client;
  srv->client_ud = o.client_userdata;
  /* a durable store's own identity: its clients resume across restarts */
  srv->instance_id = rstate__serve_identity(store);
  if (!srv->instance_id) srv->instance_id = random_id();
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
    rstate__srv_arm_timer(srv, srv->hb_ms);
    srv->tap =
        (rstate__tap){rstate__srv_tap_prepare, rstate__srv_tap_publish, rstate__srv_tap_discard, tap_closing, srv};
    rc = rstate__tap_add(store, &srv->tap);
    srv->tap_added = rc == RSTATE_OK;
  }
  /* the revision read after the tap is in: every later change reaches the history */
  if (!rc)
    rc = rstate__history_init(&srv->hist, o.history ? o.history : DEFAULT_HISTORY,
                              o.history_bytes ? o.history_bytes : DEFAULT_HISTORY_BYTES, rstate_revision(store));
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
