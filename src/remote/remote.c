/*
 * remote.c — the remote backend: a store that lives in a server process,
 * reached over a Unix or TCP stream ("unix:/path", "tcp:host:port").
 *
 * One connection per store carries every request and every watch
 * (docs/PROTOCOL.md). Callers encode a request, send it, and wait for its
 * answer; a connection thread reads every frame, answers heartbeats, hands
 * replies to the waiting callers and events to the watches (subscription.c),
 * runs inline callbacks, and reconnects with exponential backoff and jitter
 * when the connection is lost. A request in flight when the connection
 * drops fails with RSTATE_ECLOSED: it is never sent again behind the
 * caller's back, since it may have been applied.
 *
 * A callback on the connection thread may call the store: its request then
 * reads the socket itself until its answer arrives (the thread that would
 * otherwise read is the one waiting), queuing the events it meets for
 * delivery after the callback returns.
 */
#include "remote.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define R(b) ((remote *)(b))
#define BACKOFF_FIRST_MS 50
#define BACKOFF_CAP_MS 5000
/* The most bytes read before the events in them are delivered: small enough
 * that the event batches alive at once stay under malloc's trim threshold
 * (128 KiB), which would otherwise give memory back and fault it in again
 * per read. A connection starts with 4 KiB reads (rstate__wire_read_size). */
#define READ_CHUNK 16384

static _Thread_local remote *tls_conn; /* the remote whose connection thread this is */

/* ---- time ---------------------------------------------------------------- */

static int ms_until(int64_t deadline_ns) {
  int64_t left = deadline_ns - rstate__monotonic_ns();
  if (left <= 0) return 0;
  return (int)((left + 999999) / 1000000);
}

static void deadline_ts(struct timespec *ts, int64_t deadline_ns) {
  /* cond waits use CLOCK_MONOTONIC (see remote_open) */
  ts->tv_sec = deadline_ns / 1000000000;
  ts->tv_nsec = deadline_ns % 1000000000;
}

/* The interval the server announced, at most a day (a larger one would
 * overflow the arithmetic of the silence check; no server offers one). */
#define HEARTBEAT_MAX_MS 86400000u
static int heartbeat_ms(const remote *r) {
  uint32_t ms = r->welcome.heartbeat_ms;
  return ms ? (int)(ms < HEARTBEAT_MAX_MS ? ms : HEARTBEAT_MAX_MS) : 1000;
}

/* ---- sending --------------------------------------------------------------- */

static bool send_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += k;
    n -= (size_t)k;
  }
  return true;
}

int rstate__remote_send(remote *r, uint64_t gen, int (*encode)(rstate__wire_buf *b, const void *arg), const void *arg) {
  pthread_mutex_lock(&r->wlock);
  int rc = RSTATE_OK;
  if (r->fd < 0 || r->gen != gen) {
    rc = rstate__err(RSTATE_ECLOSED, "%s: the connection was lost", r->uri);
  } else if ((rc = encode(&r->out, arg)) == RSTATE_OK) {
    if (!send_all(r->fd, r->out.data, r->out.len)) {
      /* the connection thread sees the loss on its next read */
      shutdown(r->fd, SHUT_RDWR);
      rc = rstate__err(RSTATE_ECLOSED, "%s: the connection was lost: %s", r->uri, strerror(errno));
    }
    r->out.len = 0;
  }
  pthread_mutex_unlock(&r->wlock);
  return rc;
}

/* ---- requests ---------------------------------------------------------------- */

uint32_t rstate__remote_next_req(remote *r) {
  if (++r->next_req == 0) r->next_req = 1; /* 0 is for the connection */
  return r->next_req;
}

void rstate__remote_add_waiter(remote *r, waiter *w) {
  w->req = rstate__remote_next_req(r);
  w->next = r->waiters;
  r->waiters = w;
}

static void remove_waiter(remote *r, waiter *w) {
  for (waiter **p = &r->waiters; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      return;
    }
}

void rstate__remote_finish(remote *r, waiter *w, int rc) {
  w->rc = rc;
  remove_waiter(r, w);
  w->done_ns = rstate__monotonic_ns();
  w->done = true; /* last: a caller looking for it takes the lock before it reads the rest */
  pthread_cond_broadcast(&r->cond);
}

/* An answer read by the connection thread outside a callback: its caller is
 * released once the inline callbacks of the events that came before it have
 * run (release_answered), so that in a program where one thread writes and
 * watches, the callbacks of its write have run when the write returns, as
 * on a mem: store. */
static void answer(remote *r, waiter *w, int rc) {
  r->answers++; /* serve: the next wait is a writer's (wait_and_read) */
  if (w == r->pumping) { /* the callback reading for its own answer */
    rstate__remote_finish(r, w, rc);
    return;
  }
  w->rc = rc;
  remove_waiter(r, w);
  w->next = r->answered;
  r->answered = w;
}

static void release_answered(remote *r) {
  while (r->answered) {
    waiter *w = r->answered;
    r->answered = w->next;
    w->done_ns = rstate__monotonic_ns();
    w->done = true;
  }
  pthread_cond_broadcast(&r->cond);
}

static void process_frames(remote *r);

/* Reads what the socket has, up to the connection's read size, into the
 * reader: the bytes taken, 0 when the server closed, -1 with errno. flags:
 * MSG_DONTWAIT, or 0 to wait for bytes. */
static ssize_t read_some(remote *r, int fd, int flags) {
  size_t room;
  uint8_t *buf = rstate__wire_reader_prepare(&r->reader, r->read_size, &room);
  if (!buf) {
    errno = ENOMEM;
    return -1;
  }
  size_t want = room < r->read_size ? room : r->read_size;
  ssize_t k = recv(fd, buf, want, flags);
  if (k > 0) {
    r->read_size = rstate__wire_read_size(r->read_size, (size_t)k, want, READ_CHUNK);
    rstate__wire_reader_commit(&r->reader, (size_t)k);
  }
  return k;
}

/* The connection thread waiting for its own request (from a callback):
 * read until the answer is in. */
static void pump(remote *r, waiter *w, int64_t deadline) {
  /* what arrives now may be caused by the write this callback waits for:
   * emitted on this thread, inside the callback, it counts as one more link
   * of a feedback chain (backend.h) */
  r->pumping = w;
  while (!w->done && r->state == CONN_CONNECTED) {
    int fd = r->fd;
    pthread_mutex_unlock(&r->lock);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, ms_until(deadline));
    pthread_mutex_lock(&r->lock);
    if (r->closing) rstate__remote_drop(r, "the store is closing"); /* (its shutdown woke the poll) */
    if (n == 0) break; /* timed out */
    if (n < 0) continue;
    ssize_t k = read_some(r, fd, MSG_DONTWAIT);
    if (k > 0) {
      process_frames(r);
    } else if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
      rstate__remote_drop(r, k == 0 ? "the server closed the connection" : strerror(errno));
    }
  }
  r->pumping = NULL;
}

/* A caller first looks for its answer (spin.c), for about as long as
 * answers have been taking, before it sleeps on r->cond: an answer that
 * comes meanwhile costs no wakeup of the caller, a third of the hops of a
 * set's round trip. Only the store's one waiting caller looks, and only
 * while a CPU is left for the threads that make the answer (where callers
 * overlap, each wakeup serves several answers anyway), and not when answers
 * take longer than SPIN_MAX_NS. Between looks it yields: when other work
 * holds the other CPUs, the server's thread or this store's connection
 * thread waits in the looker's run queue, and runs at once instead of after
 * the look. */
#define SPIN_MAX_NS 100000

/* How long a caller looks: twice the usual wait for an answer, at most
 * SPIN_MAX_NS; 0 when answers are slower than that or other callers wait
 * (under lock). */
static int64_t spin_budget(const remote *r) {
  if (r->n_waiting > 1 || r->answer_ns > SPIN_MAX_NS) return 0;
  return 2 * r->answer_ns < SPIN_MAX_NS ? 2 * r->answer_ns : SPIN_MAX_NS;
}

static void spin_for_answer(waiter *w, int64_t until) {
  while (!atomic_load_explicit(&w->done, memory_order_acquire) && rstate__monotonic_ns() < until)
    rstate__spin_yield();
}

int rstate__remote_wait(remote *r, waiter *w) {
  int64_t start = rstate__monotonic_ns(), deadline = start + (int64_t)r->request_timeout_ms * 1000000;
  pthread_mutex_lock(&r->lock);
  if (tls_conn == r) {
    pump(r, w, deadline);
  } else {
    r->n_waiting++;
    int64_t budget = spin_budget(r);
    if (budget && !w->done && rstate__spin_begin(r->cpus)) {
      pthread_mutex_unlock(&r->lock);
      spin_for_answer(w, start + budget);
      rstate__spin_end();
      pthread_mutex_lock(&r->lock);
    }
    struct timespec ts;
    deadline_ts(&ts, deadline);
    while (!w->done)
      if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT) break;
    /* when the answer came, not when this thread woke: a caller that slept
     * must not make the next one sleep too; and one slow answer (a big
     * snapshot, a lost connection) counts as merely slow */
    if (w->done) {
      int64_t took = w->done_ns - start < 2 * SPIN_MAX_NS ? w->done_ns - start : 2 * SPIN_MAX_NS;
      r->answer_ns += (took - r->answer_ns) / 8;
    }
    r->n_waiting--;
  }
  if (!w->done) {
    remove_waiter(r, w);
    bool answered = false; /* the answer came; callbacks before it are still running */
    for (waiter **p = &r->answered; *p; p = &(*p)->next)
      if (*p == w) {
        *p = w->next;
        answered = true;
        break;
      }
    if (!answered) w->rc = RSTATE_ETIMEDOUT;
  }
  pthread_mutex_unlock(&r->lock);
  int rc = w->rc;
  if (rc == RSTATE_ETIMEDOUT && !w->sentence)
    rstate__err(rc, "%s: no answer within %d ms", r->uri, r->request_timeout_ms);
  else if (rc == RSTATE_ECLOSED && !w->sentence)
    rstate__err(rc, "%s: the connection to the server was lost before the answer came", r->uri);
  else if (rc)
    rstate__err(rc, "%s", w->sentence ? w->sentence : rstate_strerror(rc));
  free(w->sentence);
  w->sentence = NULL;
  return rc;
}

/* One request: registers w, sends what encode makes of arg (its request id
 * set by set_req), waits for the answer. */
typedef struct request {
  void (*set_req)(void *arg, uint32_t req);
  int (*encode)(rstate__wire_buf *b, const void *arg);
  void *arg;
  uint16_t since; /* the protocol version that brought the frame; 0: version 1 */
  const char *what; /* since: the call, for the sentence against an older server */
} request;

static int call(remote *r, waiter *w, const request *q) {
  pthread_mutex_lock(&r->lock);
  if (r->state != CONN_CONNECTED) {
    int rc = rstate__err(RSTATE_ECLOSED, "%s: not connected to the server (%s)", r->uri, r->why);
    pthread_mutex_unlock(&r->lock);
    return rc;
  }
  if (q->since > r->welcome.version) { /* never a frame the server does not know */
    int rc = rstate__err(RSTATE_ENOTSUP, "%s: %s: the server speaks protocol version %u, which has no %s (it came with version %u)",
                         r->uri, q->what, (unsigned)r->welcome.version, q->what, (unsigned)q->since);
    pthread_mutex_unlock(&r->lock);
    return rc;
  }
  rstate__remote_add_waiter(r, w);
  uint64_t gen = r->gen;
  q->set_req(q->arg, w->req);
  pthread_mutex_unlock(&r->lock);
  int rc = rstate__remote_send(r, gen, q->encode, q->arg);
  if (rc) { /* the connection may have failed w meanwhile, with a sentence */
    pthread_mutex_lock(&r->lock);
    remove_waiter(r, w);
    pthread_mutex_unlock(&r->lock);
    free(w->sentence);
    w->sentence = NULL;
    return rc;
  }
  return rstate__remote_wait(r, w);
}

/* ---- frames from the server ------------------------------------------------ */

static waiter *find_waiter(remote *r, uint32_t req) {
  for (waiter *w = r->waiters; w; w = w->next)
    if (w->req == req) return w;
  return NULL;
}

static void pong(remote *r, uint64_t payload);

static void on_reply(remote *r, uint32_t req, const rstate__wire_msg *m) {
  waiter *w = find_waiter(r, req);
  if (!w) return; /* its caller gave up waiting */
  if (m->type == RSTATE__WIRE_ERROR) {
    w->sentence = strdup(m->u.error.sentence);
    w->failed_index = m->u.error.failed_index;
    answer(r, w, m->u.error.code);
    return;
  }
  if (m->type != w->reply_type) {
    rstate__remote_drop(r, "the server answered a request with a frame of the wrong type");
    return;
  }
  if (!w->on_reply || w->on_reply(w, m)) answer(r, w, RSTATE_OK);
}

static uint32_t reply_req(const rstate__wire_msg *m) {
  switch (m->type) {
    case RSTATE__WIRE_OK: return m->u.req.req;
    case RSTATE__WIRE_ERROR: return m->u.error.req;
    case RSTATE__WIRE_GET_REPLY: return m->u.get_reply.req;
    case RSTATE__WIRE_GET_MANY_PART: return m->u.values.req;
    case RSTATE__WIRE_SET_MANY_REPLY:
    case RSTATE__WIRE_REVISION_REPLY: return m->u.rev.req;
    case RSTATE__WIRE_INFO_REPLY: return m->u.info_reply.req;
    case RSTATE__WIRE_LIST_PART: return m->u.list.req;
    case RSTATE__WIRE_SNAPSHOT_PART: return m->u.snapshot.req;
    case RSTATE__WIRE_HISTORY_PART: return m->u.hist.req;
    case RSTATE__WIRE_ROLLBACK_REPLY: return m->u.rev.req;
    case RSTATE__WIRE_STATS_REPLY: return m->u.stats.req;
    default: return 0;
  }
}

/* Handles every whole frame in the reader (connection thread, under lock). */
static void process_frames(remote *r) {
  rstate__wire_frame f;
  int k;
  while (r->state == CONN_CONNECTED && (k = rstate__wire_reader_next(&r->reader, &f)) == 1) {
    r->last_rx_ns = rstate__monotonic_ns();
    rstate__wire_msg m;
    if (!rstate__wire_type_to_client(f.type) || rstate__wire_decode_frame(&f, &r->scratch, &m) != RSTATE_OK) {
      rstate__remote_drop(r, "the server sent a malformed frame");
      return;
    }
    switch (m.type) {
      case RSTATE__WIRE_PING: pong(r, m.u.ping.payload); break;
      case RSTATE__WIRE_PONG: break;
      case RSTATE__WIRE_WATCH_REPLY:
      case RSTATE__WIRE_EVENT:
        /* deliver each group as it comes (outside the lock): its event batch
         * is then freed before the next one is made, and reused */
        if (rstate__sub_frame(r, &m, &f) && r->in_serve) {
          pthread_mutex_unlock(&r->lock);
          rstate_host_deliver(r->host);
          pthread_mutex_lock(&r->lock);
        }
        break;
      case RSTATE__WIRE_WELCOME: rstate__remote_drop(r, "the server sent a second WELCOME"); return;
      default:
        if (m.type == RSTATE__WIRE_ERROR && m.u.error.req == 0) {
          rstate__remote_drop(r, m.u.error.sentence);
          return;
        }
        if (m.type == RSTATE__WIRE_ERROR && !find_waiter(r, m.u.error.req))
          rstate__sub_error(r, &m.u.error);
        else
          on_reply(r, reply_req(&m), &m);
    }
  }
  if (r->state == CONN_CONNECTED && k < 0) rstate__remote_drop(r, rstate_last_error());
}

static int encode_pong(rstate__wire_buf *b, const void *arg) {
  return rstate__wire_put_ping(b, RSTATE__WIRE_PONG, *(const uint64_t *)arg);
}

static void pong(remote *r, uint64_t payload) { rstate__remote_send(r, r->gen, encode_pong, &payload); }

/* ---- the connection ------------------------------------------------------------ */

void rstate__remote_drop(remote *r, const char *why) {
  if (r->state != CONN_CONNECTED) return;
  snprintf(r->why, sizeof r->why, "%s", why && *why ? why : "the connection was lost");
  r->state = CONN_DISCONNECTED;
  pthread_mutex_lock(&r->wlock);
  r->gen++;
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  pthread_mutex_unlock(&r->wlock);
  while (r->waiters) {
    waiter *w = r->waiters;
    free(w->sentence);
    w->sentence = NULL;
    char s[256];
    snprintf(s, sizeof s, "%s: the connection was lost before the answer came (%s)", r->uri, r->why);
    w->sentence = strdup(s);
    rstate__remote_finish(r, w, RSTATE_ECLOSED);
  }
  rstate__sub_lost(r);
  rstate__wire_reader_free(&r->reader);
}

static int encode_hello(rstate__wire_buf *b, const void *arg) { return rstate__wire_put_hello(b, arg); }

/* Reads the handshake's answer within the deadline. */
static int handshake(remote *r, int fd, int64_t deadline) {
  rstate__wire_hello hello = {RSTATE__WIRE_VERSION, (uint32_t)r->opts.heartbeat_ms, r->token ? r->token : "", 0};
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  int rc = encode_hello(&b, &hello);
  /* A server that refuses us (over its max_clients) may answer and close
   * before HELLO is written: the write then fails (EPIPE, ECONNRESET), yet
   * its refusal is there to read, and says more than "Broken pipe". */
  int send_errno = 0;
  if (!rc && !send_all(fd, b.data, b.len)) send_errno = errno;
  rstate__wire_buf_free(&b);
  if (rc) return rc;
  rstate__wire_reader_init(&r->reader, RSTATE__WIRE_HANDSHAKE_MAX);
  r->read_size = RSTATE__WIRE_READ_FIRST;
  for (;;) {
    rstate__wire_frame f;
    int k = rstate__wire_reader_next(&r->reader, &f);
    if (k < 0) return rstate__err(RSTATE_EPROTO, "%s: the handshake failed: %s", r->uri, rstate_last_error());
    if (k == 1) {
      rstate__wire_msg m;
      if (rstate__wire_decode_frame(&f, &r->scratch, &m))
        return rstate__err(RSTATE_EPROTO, "%s: the handshake failed: %s", r->uri, rstate_last_error());
      if (m.type == RSTATE__WIRE_ERROR)
        return rstate__err(m.u.error.code, "%s: %s", r->uri, *m.u.error.sentence ? m.u.error.sentence : rstate_strerror(m.u.error.code));
      if (m.type != RSTATE__WIRE_WELCOME)
        return rstate__err(RSTATE_EPROTO, "%s: the server answered HELLO with %s", r->uri,
                           rstate__wire_type_name(m.type));
      r->welcome = m.u.welcome;
      r->reader.max_frame = rstate__wire_client_limit(m.u.welcome.max_frame);
      return RSTATE_OK;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, ms_until(deadline));
    if (n == 0) return rstate__err(RSTATE_ETIMEDOUT, "%s: the server did not answer the handshake in time", r->uri);
    if (n < 0) continue;
    size_t room;
    uint8_t *buf = rstate__wire_reader_prepare(&r->reader, 4096, &room);
    if (!buf) return RSTATE_ENOMEM;
    ssize_t got = recv(fd, buf, room, MSG_DONTWAIT);
    if (got <= 0 && send_errno && !(got < 0 && (errno == EAGAIN || errno == EINTR)))
      return rstate__err(RSTATE_EIO, "%s: the connection was lost during the handshake: %s", r->uri,
                         strerror(send_errno));
    if (got == 0) return rstate__err(RSTATE_EIO, "%s: the server closed the connection during the handshake", r->uri);
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return rstate__err(RSTATE_EIO, "%s: the handshake failed: %s", r->uri, strerror(errno));
    }
    rstate__wire_reader_commit(&r->reader, (size_t)got);
  }
}

/* Connects and shakes hands; on success the remote is CONNECTED and its
 * subscriptions are sent again. Not under lock. */
static int connect_once(remote *r) {
  int64_t deadline = rstate__monotonic_ns() + (int64_t)r->connect_timeout_ms * 1000000;
  int fd;
  int rc = rstate__addr_connect(&r->addr, r->connect_timeout_ms, &fd, r->uri);
  if (rc) return rc;
  if ((rc = rstate__peer_check(&r->addr, fd, r->opts.peer_uid, r->uri))) {
    close(fd);
    return rc;
  }
  if ((rc = handshake(r, fd, deadline))) {
    rstate__wire_reader_free(&r->reader);
    close(fd);
    return rc;
  }
  struct timeval tv = {r->request_timeout_ms / 1000, (r->request_timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  /* no receive timeout: watchdog.c notices a silent server */
  pthread_mutex_lock(&r->lock);
  pthread_mutex_lock(&r->wlock);
  r->fd = fd;
  r->gen++;
  r->out.limit = r->welcome.max_frame;
  pthread_mutex_unlock(&r->wlock);
  r->state = CONN_CONNECTED;
  r->silent = false;
  r->last_rx_ns = r->wait_ns = rstate__monotonic_ns();
  r->retry_ns = r->last_rx_ns + (int64_t)heartbeat_ms(r) * 1000000;
  rstate__sub_resubscribe(r);
  r->instance = r->welcome.instance_id;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  rstate__watchdog_poke();
  return RSTATE_OK;
}

int64_t rstate__remote_silent(remote *r, int64_t now) {
  /* a lock held now is held by a send (bounded by SO_SNDTIMEO) or by frames
   * being handled: that store is not waiting, and the others must not wait
   * for it; it is looked at again in 10 ms */
  if (pthread_mutex_trylock(&r->lock)) return 10000000; /* 10 ms */
  int64_t tick = 0;
  if (r->state == CONN_CONNECTED) {
    int64_t hb = (int64_t)heartbeat_ms(r) * 1000000;
    tick = hb / 4;
    /* silence counts while the thread waits: a long callback is not the server's */
    int64_t since = r->last_rx_ns > r->wait_ns ? r->last_rx_ns : r->wait_ns;
    if (r->waiting && !r->silent && now - since >= 3 * hb) {
      r->silent = true;
      /* r->fd changes only under lock: it is this connection's */
      if (r->fd >= 0) shutdown(r->fd, SHUT_RDWR); /* ends serve's wait for bytes */
    }
  }
  pthread_mutex_unlock(&r->lock);
  return tick;
}

static void report(remote *r, rstate_conn_state st) {
  if (r->opts.on_state) r->opts.on_state(rstate_host_store(r->host), st, r->opts.state_userdata);
  rstate_host_deliver(r->host);
}

static bool closing(remote *r) {
  pthread_mutex_lock(&r->lock);
  bool c = r->closing;
  pthread_mutex_unlock(&r->lock);
  return c;
}

/* Waits ms, or until the store closes; false when it closes. */
static bool rest(remote *r, int ms) {
  struct pollfd p = {.fd = r->wake, .events = POLLIN};
  int64_t deadline = rstate__monotonic_ns() + (int64_t)ms * 1000000;
  while (!closing(r)) {
    int left = ms_until(deadline);
    if (!left) return true;
    poll(&p, 1, left);
  }
  return false;
}

static unsigned jitter_seed(void) { return (unsigned)rstate__monotonic_ns() ^ (unsigned)(uintptr_t)&jitter_seed; }

/* After a loss: reconnects with exponential backoff and full jitter in
 * [delay/2, delay], the delay doubling from 50 ms up to 5 s. */
static bool reconnect(remote *r) {
  unsigned seed = jitter_seed();
  int delay = BACKOFF_FIRST_MS;
  for (;;) {
    int ms = delay / 2 + (int)(rand_r(&seed) % (unsigned)(delay / 2 + 1));
    if (!rest(r, ms)) return false;
    if (connect_once(r) == RSTATE_OK) return true;
    delay = delay * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : delay * 2;
  }
}

/* Waits until the socket has bytes and reads them. The connection thread
 * blocks in recv itself, one system call per wakeup, except on a Unix
 * socket after a wakeup that brought an answer (writer: the store is
 * sending requests): there it waits in poll, then reads. The kernel wakes
 * every thread blocked in recv on a Unix socket each time the peer reads
 * what the socket wrote (the write space that frees wakes the socket's
 * waiters, and a recv waiter does not look at why), so a writer's
 * connection thread woke for nothing just as the server read each request,
 * and took a CPU from the threads carrying the change to the watchers
 * (bench/notes.md, remote.unix.relay.p50x); poll's waiter wakes for
 * incoming bytes only. A store that receives events keeps the single recv:
 * a poll more per wakeup cost the 100-client fan-out 14 % and a stream of
 * events 10 %. */
static ssize_t wait_and_read(remote *r, int fd, bool writer) {
  if (r->addr.family != AF_UNIX || !writer) return read_some(r, fd, 0);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, -1) > 0) return read_some(r, fd, MSG_DONTWAIT);
  return -1;
}

/* Reads while connected; returns when the connection is lost or the store
 * closes. The wait for bytes (wait_and_read) has no timeout: a live server
 * sends PING every heartbeat interval, watchdog.c shuts the socket of a
 * silent one down, and remote_close shuts it down to end the wait. */
static void serve(remote *r) {
  for (;;) {
    pthread_mutex_lock(&r->lock);
    if (r->answered) release_answered(r); /* answered while on_state ran */
    if (r->closing) rstate__remote_drop(r, "the store is closing");
    int64_t hb_ns = (int64_t)heartbeat_ms(r) * 1000000, now = rstate__monotonic_ns();
    if (r->state == CONN_CONNECTED && now >= r->retry_ns) {
      rstate__sub_retry(r); /* a send that fails on the socket drops the connection */
      r->retry_ns = now + hb_ns;
    }
    if (r->state != CONN_CONNECTED) {
      pthread_mutex_unlock(&r->lock);
      return;
    }
    int fd = r->fd;
    bool writer = r->answers != r->answers_waited; /* the last wakeup brought an answer */
    r->answers_waited = r->answers;
    r->waiting = true;
    int64_t rx = r->last_rx_ns;
    pthread_mutex_unlock(&r->lock);

    /* the reader is the connection thread's alone: read outside the lock */
    ssize_t k = wait_and_read(r, fd, writer);
    int err = errno;
    pthread_mutex_lock(&r->lock);
    r->waiting = false;
    if (r->closing) rstate__remote_drop(r, "the store is closing");
    if (r->silent) {
      rstate__remote_drop(r, "the server stopped answering heartbeats");
    } else if (k > 0) {
      r->in_serve = true;
      process_frames(r);
      r->in_serve = false;
    } else if (k == 0 || (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)) {
      rstate__remote_drop(r, k == 0 ? "the server closed the connection" : strerror(err));
    }
    pthread_mutex_unlock(&r->lock);
    rstate_host_deliver(r->host);
    pthread_mutex_lock(&r->lock);
    if (r->answered) release_answered(r);
    /* frames came, and their callbacks ran: the silence counts from now
     * (a wakeup with no whole frame, EINTR say, does not restart it) */
    if (r->last_rx_ns != rx) r->wait_ns = rstate__monotonic_ns();
    pthread_mutex_unlock(&r->lock);
  }
}

static void *conn_main(void *arg) {
  remote *r = arg;
  tls_conn = r;
  int rc = connect_once(r);
  if (rc) {
    pthread_mutex_lock(&r->lock);
    r->open_rc = rc;
    r->open_error = strdup(rstate_last_error());
    r->open_done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
  }
  report(r, RSTATE_STATE_CONNECTED);
  pthread_mutex_lock(&r->lock);
  r->open_done = true;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);

  for (;;) {
    serve(r);
    if (closing(r)) break;
    report(r, RSTATE_STATE_DISCONNECTED);
    if (r->opts.no_reconnect) {
      rest(r, INT_MAX); /* until the store closes */
      break;
    }
    if (!reconnect(r)) break;
    report(r, RSTATE_STATE_CONNECTED);
  }
  pthread_mutex_lock(&r->lock);
  rstate__remote_drop(r, "the store is closing");
  pthread_mutex_unlock(&r->lock);
  report(r, RSTATE_STATE_CLOSED);
  return NULL;
}

/* ---- open and close --------------------------------------------------------------- */

static void remote_free(remote *r) {
  rstate__watchdog_remove(r); /* (it was never added when the open failed early: nothing to do) */
  rstate__sub_free_all(r);
  rstate__sub_out_free(r);
  rstate__wire_reader_free(&r->reader);
  rstate__wire_buf_free(&r->scratch);
  rstate__wire_buf_free(&r->out);
  if (r->wake >= 0) close(r->wake);
  pthread_mutex_destroy(&r->lock);
  pthread_mutex_destroy(&r->wlock);
  pthread_cond_destroy(&r->cond);
  free(r->open_error);
  free(r->token);
  free(r->uri);
  free(r);
}

static int remote_open(rstate_backend **out, const char *uri, const rstate_options *opts, rstate_host *host) {
  remote *r = calloc(1, sizeof *r);
  if (!r) return rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  r->host = host;
  r->fd = -1;
  r->opts = *opts;
  r->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 2000;
  r->request_timeout_ms = opts->request_timeout_ms ? opts->request_timeout_ms : 5000;
  r->cpus = rstate__spin_cpus(); /* the connection thread gets the opener's CPUs */
  r->answer_ns = SPIN_MAX_NS / 2;
  pthread_mutex_init(&r->lock, NULL);
  pthread_mutex_init(&r->wlock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cond, &ca);
  pthread_condattr_destroy(&ca);
  rstate__wire_buf_init(&r->scratch);
  rstate__wire_buf_init(&r->out);
  r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int rc = RSTATE_OK;
  if (!(r->uri = strdup(uri)) || !rstate__strdup_opt(&r->token, opts->token))
    rc = rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  else if (r->wake < 0)
    rc = rstate__err(RSTATE_EIO, "rstate_open: %s: eventfd: %s", uri, strerror(errno));
  if (!rc) rc = rstate__addr_parse(&r->addr, uri, "rstate_open");
  if (!rc) rc = rstate__watchdog_add(r);
  if (!rc && pthread_create(&r->thread, NULL, conn_main, r))
    rc = rstate__err(RSTATE_ENOMEM, "rstate_open: %s: cannot start the connection thread", uri);
  if (rc) {
    remote_free(r);
    return rc;
  }
  pthread_mutex_lock(&r->lock);
  while (!r->open_done) pthread_cond_wait(&r->cond, &r->lock);
  rc = r->open_rc;
  pthread_mutex_unlock(&r->lock);
  if (rc) {
    pthread_join(r->thread, NULL);
    rstate__err(rc, "rstate_open: %s", r->open_error ? r->open_error : rstate_strerror(rc));
    remote_free(r);
    return rc;
  }
  *out = (rstate_backend *)r;
  return RSTATE_OK;
}

static void remote_close(rstate_backend *b) {
  remote *r = R(b);
  pthread_mutex_lock(&r->lock);
  r->closing = true; /* the connection thread drops the connection and ends */
  pthread_mutex_unlock(&r->lock);
  pthread_mutex_lock(&r->wlock);
  if (r->fd >= 0) shutdown(r->fd, SHUT_RDWR); /* ends serve's wait for bytes */
  pthread_mutex_unlock(&r->wlock);
  uint64_t one = 1;
  if (write(r->wake, &one, sizeof one) < 0) { /* a full eventfd is awake already */
  }
  pthread_join(r->thread, NULL);
  remote_free(r);
}

/* ---- operations ------------------------------------------------------------------ */

static int put_define(rstate__wire_buf *b, const void *m) { return rstate__wire_put_define(b, m); }
static void req_define(void *m, uint32_t req) { ((rstate__wire_define *)m)->req = req; }

static int remote_define(rstate_backend *b, const rstate_var_def *def) {
  rstate__spec *spec; /* checked here for a clear error without a round trip; the server decides */
  int rc = rstate__spec_new(&spec, def);
  if (rc) return rc;
  rstate__spec_free(spec);
  rstate__wire_define m = {0, *def};
  waiter w = {.reply_type = RSTATE__WIRE_OK};
  return call(R(b), &w, &(request){.set_req = req_define, .encode = put_define, .arg = &m});
}

static int put_undefine(rstate__wire_buf *b, const void *m) { return rstate__wire_put_name(b, RSTATE__WIRE_UNDEFINE, m); }
static int put_get(rstate__wire_buf *b, const void *m) { return rstate__wire_put_name(b, RSTATE__WIRE_GET, m); }
static int put_info(rstate__wire_buf *b, const void *m) { return rstate__wire_put_name(b, RSTATE__WIRE_INFO, m); }
static void req_name(void *m, uint32_t req) { ((rstate__wire_name *)m)->req = req; }

static int remote_undefine(rstate_backend *b, const char *name) {
  int rc = rstate__name_check(name);
  if (rc) return rc;
  rstate__wire_name m = {0, name};
  waiter w = {.reply_type = RSTATE__WIRE_OK};
  return call(R(b), &w, &(request){.set_req = req_name, .encode = put_undefine, .arg = &m});
}

typedef struct get_ctx {
  rstate_value *out;
  rstate_var_info *info;
  bool nomem;
} get_ctx;

static bool on_get(waiter *w, const rstate__wire_msg *m) {
  get_ctx *c = w->ctx;
  if (m->type == RSTATE__WIRE_GET_REPLY) {
    const rstate__wire_get_reply *g = &m->u.get_reply;
    if (c->out && rstate_value_copy(c->out, &g->value)) c->nomem = true;
    if (c->info) *c->info = (rstate_var_info){g->type, g->version, g->revision, g->updated_ns};
  } else {
    *c->info = m->u.info_reply.info;
  }
  return true;
}

static int remote_get(rstate_backend *b, const char *name, rstate_value *out, rstate_var_info *info) {
  int rc = rstate__name_check(name);
  if (rc) return rc;
  rstate__wire_name m = {0, name};
  get_ctx c = {out, info, false};
  waiter w = {.reply_type = out ? RSTATE__WIRE_GET_REPLY : RSTATE__WIRE_INFO_REPLY, .on_reply = on_get, .ctx = &c};
  rc = call(R(b), &w, &(request){.set_req = req_name, .encode = out ? put_get : put_info, .arg = &m});
  if (!rc && c.nomem) rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory", name);
  return rc;
}

typedef struct many_ctx {
  rstate_value *out;
  size_t n, got;
  uint64_t revision;
  bool failed;
} many_ctx;

static bool on_values(waiter *w, const rstate__wire_msg *m) {
  many_ctx *c = w->ctx;
  const rstate__wire_values_part *p = &m->u.values;
  for (size_t i = 0; i < p->n; i++) {
    if (c->got >= c->n || rstate_value_copy(&c->out[c->got], &p->values[i])) {
      c->failed = true;
      continue;
    }
    c->got++;
  }
  c->revision = p->revision;
  return !(p->flags & RSTATE__WIRE_MORE);
}

static int put_names_get_many(rstate__wire_buf *b, const void *m) {
  return rstate__wire_put_names(b, RSTATE__WIRE_GET_MANY, m);
}
static int put_names_snapshot(rstate__wire_buf *b, const void *m) {
  return rstate__wire_put_names(b, RSTATE__WIRE_SNAPSHOT, m);
}
static void req_names(void *m, uint32_t req) { ((rstate__wire_names *)m)->req = req; }

static int remote_get_many(rstate_backend *b, const char *const *names, size_t n, rstate_value *out,
                           uint64_t *revision) {
  rstate__wire_names m = {0, names, n};
  many_ctx c = {out, n, 0, 0, false};
  waiter w = {.reply_type = RSTATE__WIRE_GET_MANY_PART, .on_reply = on_values, .ctx = &c};
  int rc = call(R(b), &w, &(request){.set_req = req_names, .encode = put_names_get_many, .arg = &m});
  if (!rc && (c.failed || c.got != n))
    rc = rstate__err(c.failed && c.got < n ? RSTATE_ENOMEM : RSTATE_EPROTO,
                     "rstate_get_many: %zu values came for %zu names", c.got, n);
  if (rc) {
    for (size_t i = 0; i < c.got; i++) rstate_value_clear(&out[i]);
    return rc;
  }
  if (revision) *revision = c.revision;
  return RSTATE_OK;
}

typedef struct snap_ctx {
  rstate_snapshot_var *vars;
  rstate_value *values;
  size_t n, cap;
  uint64_t revision;
  bool failed;
} snap_ctx;

static bool on_snapshot(waiter *w, const rstate__wire_msg *m) {
  snap_ctx *c = w->ctx;
  const rstate__wire_snapshot_part *p = &m->u.snapshot;
  for (size_t i = 0; i < p->n && !c->failed; i++) {
    if (c->n == c->cap) {
      size_t cap = c->cap ? 2 * c->cap : 64;
      rstate_snapshot_var *vars = realloc(c->vars, cap * sizeof *vars);
      if (vars) c->vars = vars;
      rstate_value *values = realloc(c->values, cap * sizeof *values);
      if (values) c->values = values;
      if (!vars || !values) {
        c->failed = true;
        break;
      }
      c->cap = cap;
    }
    const rstate__wire_var *v = &p->vars[i];
    char *name = strdup(v->name);
    if (!name || rstate_value_copy(&c->values[c->n], &v->value)) {
      free(name);
      c->failed = true;
      break;
    }
    c->vars[c->n] = (rstate_snapshot_var){name, v->type, NULL, v->version, v->updated_ns};
    c->n++;
  }
  c->revision = p->revision;
  return !(p->flags & RSTATE__WIRE_MORE);
}

static int remote_snapshot(rstate_backend *b, const char *const *patterns, size_t n, rstate_snapshot_fn fn, void *ud,
                           uint64_t *revision) {
  rstate__wire_names m = {0, patterns, n};
  snap_ctx c = {0};
  waiter w = {.reply_type = RSTATE__WIRE_SNAPSHOT_PART, .on_reply = on_snapshot, .ctx = &c};
  int rc = call(R(b), &w, &(request){.set_req = req_names, .encode = put_names_snapshot, .arg = &m});
  if (!rc && c.failed) rc = rstate__err(RSTATE_ENOMEM, "out of memory reading a snapshot of %zu variables", c.n);
  for (size_t i = 0; i < c.n; i++) {
    c.vars[i].value = &c.values[i];
    if (!rc) rc = fn(&c.vars[i], ud);
  }
  for (size_t i = 0; i < c.n; i++) {
    free((char *)c.vars[i].name);
    rstate_value_clear(&c.values[i]);
  }
  free(c.vars);
  free(c.values);
  if (!rc && revision) *revision = c.revision;
  return rc;
}

static int put_set_many(rstate__wire_buf *b, const void *m) { return rstate__wire_put_set_many(b, m); }
static void req_set_many(void *m, uint32_t req) { ((rstate__wire_set_many *)m)->req = req; }

static int remote_set_many(rstate_backend *b, const rstate_assign *items, size_t n, const uint64_t *expected,
                           const rstate_set_opts *opts, size_t *failed_index) {
  *failed_index = SIZE_MAX;
  for (size_t i = 0; i < n; i++) {
    int rc = rstate__name_check(items[i].name);
    const rstate_value *v = &items[i].value;
    const char *nul = v->kind == RSTATE_STRING && v->u.s.ptr ? memchr(v->u.s.ptr, '\0', v->u.s.len) : NULL;
    if (!rc && ((int)v->kind < RSTATE_NONE || (int)v->kind > RSTATE_STRING)) /* the protocol cannot carry it */
      rc = rstate__err(RSTATE_ETYPE, "%s: no variable takes a value of unknown kind %d", items[i].name, (int)v->kind);
    else if (!rc && v->kind == RSTATE_STRING && !v->u.s.ptr)
      rc = rstate__err(RSTATE_EINVAL, "%s: the string value has a NULL pointer", items[i].name);
    else if (!rc && nul) /* the protocol cannot carry it; the same answer as a mem: store */
      rc = rstate__err(RSTATE_ETYPE, "%s: the string holds a NUL byte at byte %zu", items[i].name,
                       (size_t)(nul - v->u.s.ptr));
    if (rc) {
      *failed_index = i;
      return rc;
    }
  }
  rstate__wire_set_many m = {0, items, expected, n, opts ? *opts : (rstate_set_opts){0}};
  waiter w = {.reply_type = RSTATE__WIRE_SET_MANY_REPLY, .failed_index = RSTATE__WIRE_NO_INDEX};
  int rc = call(R(b), &w, &(request){.set_req = req_set_many, .encode = put_set_many, .arg = &m});
  if (rc && w.failed_index < n) *failed_index = (size_t)w.failed_index;
  return rc;
}

static int put_revision(rstate__wire_buf *b, const void *m) {
  return rstate__wire_put_req(b, RSTATE__WIRE_REVISION, ((const rstate__wire_req *)m)->req);
}
static void req_req(void *m, uint32_t req) { ((rstate__wire_req *)m)->req = req; }

static bool on_revision(waiter *w, const rstate__wire_msg *m) {
  *(uint64_t *)w->ctx = m->u.rev.revision;
  return true;
}

static uint64_t remote_revision(rstate_backend *b) {
  rstate__wire_req m = {0};
  uint64_t rev = 0;
  waiter w = {.reply_type = RSTATE__WIRE_REVISION_REPLY, .on_reply = on_revision, .ctx = &rev};
  return call(R(b), &w, &(request){.set_req = req_req, .encode = put_revision, .arg = &m}) ? 0 : rev;
}

/* ---- history (protocol version 2) ---- */

typedef struct hist_ctx {
  rstate_history_entry *e;
  size_t n, cap;
  bool nomem;
} hist_ctx;

static bool on_hist(waiter *w, const rstate__wire_msg *m) {
  hist_ctx *c = w->ctx;
  const rstate__wire_hist_part *p = &m->u.hist;
  for (size_t i = 0; i < p->n && !c->nomem; i++) {
    if (c->n == c->cap) {
      size_t cap = c->cap ? 2 * c->cap : 16;
      rstate_history_entry *e = realloc(c->e, cap * sizeof *e);
      if (!e) {
        c->nomem = true;
        break;
      }
      c->e = e;
      c->cap = cap;
    }
    const rstate_history_entry *src = &p->entries[i];
    rstate_history_entry *x = &c->e[c->n++];
    memset(x, 0, sizeof *x);
    x->version = src->version;
    x->revision = src->revision;
    x->timestamp_ns = src->timestamp_ns;
    if (rstate_value_copy(&x->value, &src->value)) c->nomem = true;
    if (src->source && !(x->source = strdup(src->source))) c->nomem = true;
    rstate_meta *meta = src->n_meta ? calloc(src->n_meta, sizeof *meta) : NULL;
    if (src->n_meta && !meta) c->nomem = true;
    x->meta = meta;
    for (size_t k = 0; meta && k < src->n_meta; k++) {
      x->n_meta = k + 1;
      meta[k].key = strdup(src->meta[k].key);
      meta[k].value = strdup(src->meta[k].value);
      if (!meta[k].key || !meta[k].value) c->nomem = true;
    }
  }
  return !(p->flags & RSTATE__WIRE_MORE);
}

static int put_history(rstate__wire_buf *b, const void *m) { return rstate__wire_put_history(b, m); }
static void req_history(void *m, uint32_t req) { ((rstate__wire_history *)m)->req = req; }

/* The served store's history (HISTORY), all of it copied before fn runs,
 * so fn may call the store. Against a server older than protocol version
 * 2: RSTATE_ENOTSUP, nothing sent. */
static int remote_history(rstate_backend *b, const char *name, uint64_t after_version,
                          int (*fn)(const rstate_history_entry *e, void *ud), void *ud) {
  int rc = rstate__name_check(name);
  if (rc) return rc;
  rstate__wire_history m = {0, name, after_version};
  hist_ctx c = {0};
  waiter w = {.reply_type = RSTATE__WIRE_HISTORY_PART, .on_reply = on_hist, .ctx = &c};
  rc = call(R(b), &w, &(request){req_history, put_history, &m, RSTATE__WIRE_VERSION_HISTORY, "history"});
  if (!rc && c.nomem) rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory reading its history", name);
  for (size_t i = 0; !rc && i < c.n; i++)
    if (fn(&c.e[i], ud)) break;
  for (size_t i = 0; i < c.n; i++) rstate__history_entry_free(&c.e[i]);
  free(c.e);
  return rc;
}

static int remote_subscribe(rstate_backend *b, rstate_sub *sub, const char *const *patterns, size_t n,
                            bool include_initial) {
  return rstate__sub_subscribe(R(b), sub, patterns, n, include_initial);
}

static void remote_unsubscribe(rstate_backend *b, rstate_sub *sub) { rstate__sub_unsubscribe(R(b), sub); }

const rstate_backend_ops rstate__remote_ops = {
    .version = RSTATE_BACKEND_VERSION,
    .name = "remote",
    .open = remote_open,
    .close = remote_close,
    .define = remote_define,
    .undefine = remote_undefine,
    .get = remote_get,
    .get_many = remote_get_many,
    .snapshot = remote_snapshot,
    .set_many = remote_set_many,
    .revision = remote_revision,
    .subscribe = remote_subscribe,
    .unsubscribe = remote_unsubscribe,
    .history = remote_history,
};
