/*
 * server.h — the server's own header: its objects (the server, its
 * clients and their subscriptions) and the calls its files make of one
 * another. See loop.c for how the parts fit together.
 */
#ifndef RSTATE_SERVER_H
#define RSTATE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/core.h"
#include "history.h"
#include "listener.h"
#include "types/types.h"
#include "util/util.h"
#include "wire/wire.h"

#define DEFAULT_HEARTBEAT_MS 1000
#define DEFAULT_HISTORY 65536
#define DEFAULT_MAX_CLIENTS 1024
#define DEFAULT_MAX_QUEUE (4u * 1024u * 1024u)
#define DEFAULT_HISTORY_BYTES (64u * 1024u * 1024u)
#define DEFAULT_MAX_HANDSHAKES 64
#define DEFAULT_HANDSHAKE_MS 3000
/* The shortest heartbeat a client may ask for: the server wakes four times
 * per interval, so this bounds its wakeups at 40 a second. */
#define MIN_HEARTBEAT_MS 100
/* With every handshake slot taken, a new connection closes the one waiting
 * longest if that one has waited this long; otherwise (a burst of clients
 * connecting at once) the server stops accepting until a slot frees, and
 * the newcomers wait in the listening socket's backlog. */
#define HANDSHAKE_GRACE_MS 250
/* Events are encoded for a client while less than this is waiting to be
 * written to it (or max_queue_bytes, when smaller): enough to batch many
 * events per write, little enough that a slow client's backlog stays in
 * the history, where it can be coalesced. */
#define STREAM_THRESHOLD (256u * 1024u)
#define READ_CHUNK 65536u /* the largest read; a client starts at 4 KiB (rstate__wire_read_size) */
#define READ_ROUNDS 16    /* reads per wakeup per client, for fairness */
#define MAX_SUBS 4096     /* subscriptions per connection (RSTATE_ELIMIT above) */
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

/* What the server logs, each kind rate-limited on its own (log.c). */
typedef enum srv_log_kind {
  LOG_TOKEN_REFUSED,
  LOG_CLIENTS_FULL,
  LOG_HANDSHAKES_FULL,
  LOG_HANDSHAKE_PUSHED,
  LOG_HANDSHAKE_LATE,
  LOG_STALLED,
  LOG_HISTORY_BYTES,
  LOG_HEARTBEAT_FLOOR,
  LOG_ACCEPT_FAILED,
  LOG_NOT_DURABLE,
  LOG_KINDS
} srv_log_kind;

typedef struct srv_log_state {
  bool said;
  int64_t last_ms;
  uint64_t unsaid;
} srv_log_state;

typedef struct client {
  struct client *prev, *next;
  int fd;
  cstate state;
  bool doomed;  /* to be closed by the handler that found out */
  bool more;    /* its subscriptions have more to send than its output holds */
  bool stalled; /* its unread answers are over the bound: its frames wait (request.c) */
  uint8_t access;
  uint16_t version; /* the protocol version the handshake settled on */
  uint32_t hb_ms;
  uint32_t events;                      /* epoll mask in force */
  int64_t last_rx, last_ping, deadline; /* deadline: of the handshake (C_HELLO), of the linger (C_CLOSING) */
  int64_t accepted_ms;
  rstate__wire_reader rd;
  size_t read_size; /* rstate__wire_read_size: grows up to READ_CHUNK with the traffic */
  rstate__wire_buf out;
  size_t out_off;
  sub **subs;
  size_t n_subs, cap_subs;
  bool announced; /* on_client was told it connected, not yet that it went */
  bool flush_held; /* written to while the turn's writes were not durable yet */
  uint64_t wrote_turn; /* the last turn (srv->wakeups) in which it changed the store */
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
  bool accept_full;   /* every handshake slot is taken: accepting again once one frees */
  int efd, tfd, ep;
  pthread_t thread;
  bool thread_started;
  atomic_bool stopping;
  const char *stop_why; /* what the clients are told; set before stopping */

  char *token, *read_token;
  uint32_t hb_ms;
  size_t max_clients;
  size_t max_handshakes;
  uint32_t handshake_ms;
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
  size_t n_hello, n_ready, n_subs; /* n_hello: in the handshake */
  uint32_t tick_ms;
  rstate__wire_buf scratch;
  rstate__wire_event *evs;
  size_t evs_cap;
  uint64_t ping_seq;
  int64_t started_ns;
  uint64_t events_sent, events_coalesced, frames_in, frames_out, bytes_in, bytes_out;
  uint64_t refused[32]; /* requests answered with an error, by -code (0: beyond 31) */
  /* rstate_server_get_stats: the counters as of the end of the last turn */
  pthread_mutex_t stats_mu;
  rstate_server_stats stats;
  uint64_t wakeups; /* turns of the loop */
  /* the turn's writes may not be durable yet (defer_durability): nothing
   * is written to a client until they are */
  bool holding;
  void (*on_log)(rstate_server *srv, const char *line, void *ud);
  void *log_ud;
  srv_log_state log_state[LOG_KINDS];
  uint64_t log_counts[LOG_KINDS]; /* times each kind happened, said or not */
};

/* The server whose thread this is (NULL on other threads). */
extern _Thread_local rstate_server *rstate__srv_serving;

/* The monotonic clock in ms, for heartbeats and lingering. */
static inline int64_t now_ms(void) { return rstate__monotonic_ns() / 1000000; }

/* Bytes queued for the client and not yet written. */
static inline size_t out_pending(const client *c) { return c->out.len - c->out_off; }

/* Past this much unread output, a client's requests wait: nothing more is
 * read from it, nor handled, until it has read its answers (client.c). */
static inline size_t out_bound(const rstate_server *srv) { return 2 * srv->max_queue + srv->threshold; }

static inline void frames_out(rstate_server *srv, size_t n) { srv->frames_out += n; }

/* A request refused (or a connection failed) with code, for the stats. */
static inline void count_refused(rstate_server *srv, int code) { srv->refused[code < 0 && code > -32 ? -code : 0]++; }

/* The last entry s has had. */
static inline rstate__hentry *at(const rstate_server *srv, const sub *s) { return s->cursor ? s->cursor : srv->synced; }

/* ---- loop.c: the thread, heartbeats, start and stop -------------------------- */

/* The heartbeat tick: a quarter of the shortest interval in force; hb_ms
 * shorter than the tick's interval sets it shorter at once (the tick
 * lengthens again, in on_tick, when such clients have gone). */
void rstate__srv_arm_timer(rstate_server *srv, uint32_t hb_ms);

/* ---- log.c: rate-limited lines for the operator -------------------------------- */

void rstate__srv_log(rstate_server *srv, srv_log_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- client.c: connections --------------------------------------------------- */

/* Writes what it can without blocking. */
void rstate__srv_flush(rstate_server *srv, client *c);
/* The client failed at the connection level: an ERROR with request id 0,
 * then the connection closes once that is written (or after a short
 * linger). Nothing more is read from it or sent to it. */
void rstate__srv_fail(rstate_server *srv, client *c, int code, const char *sentence);
/* Closes c when a handler marked it; returns whether it still lives. */
bool rstate__srv_settle(rstate_server *srv, client *c);
/* Accepts every pending connection (the listening socket is readable). */
void rstate__srv_on_accept(rstate_server *srv);
/* A handshake slot freed, or a tick: accept again if every slot had been
 * taken and one is free now or its holder has had its grace. */
void rstate__srv_accept_resume(rstate_server *srv);
/* ERROR for request req with the thread's last sentence. */
void rstate__srv_reply_error(rstate_server *srv, client *c, uint32_t req, int code, size_t failed);
/* After an encoder: count the frames, or give up on the client. */
void rstate__srv_sent(rstate_server *srv, client *c, int rc, size_t frames);
/* Reads what the client sent, a few rounds at most, and handles each whole
 * frame: HELLO first (the handshake), then requests (request.c). */
void rstate__srv_on_readable(rstate_server *srv, client *c);

/* ---- subs.c: subscriptions, and which clients the loop pumps ----------------- */

void rstate__srv_sub_free(sub *s);
/* Whether one of s's patterns covers the change. */
bool rstate__srv_covers(const sub *s, const rstate__hchange *h);
/* The patterns of a WATCH, checked as rstate_watch checks them. */
int rstate__srv_patterns_check(const char *const *p, size_t n);
/* A subscription over copies of the patterns (checked already). */
sub *rstate__srv_sub_new(uint64_t id, const char *const *patterns, size_t n);
/* The slot of c's subscription id; NULL when it has none. */
sub **rstate__srv_find_sub(client *c, uint64_t id);
/* Ends the subscription in slot (c's subs). */
void rstate__srv_remove_sub(rstate_server *srv, client *c, struct sub **slot);
/* A client is pumped at the end of the loop's turn while it is active: it
 * had a socket event, a change one of its subscriptions covers, a new
 * subscription, or it still has something to send (resync). The others
 * cost nothing per change. */
void rstate__srv_activate(rstate_server *srv, client *c);
void rstate__srv_deactivate(rstate_server *srv, client *c);
/* Activates the clients with a subscription that covers a change of e. */
void rstate__srv_activate_covered(rstate_server *srv, const rstate__hentry *e);
/* Adds s to c at entry e (its cursor); false on ENOMEM. */
bool rstate__srv_attach(rstate_server *srv, client *c, sub *s, rstate__hentry *e);
/* At the end of the loop's turn, once srv->synced is the tail: the
 * subscriptions that have had everything give up their own cursors; true
 * when c has nothing left to send and can leave the active list. */
bool rstate__srv_resync(rstate_server *srv, client *c);

/* ---- stream.c: changes in, events out ---------------------------------------- */

/* The server's tap (core/core.h), ud the server; its closing is loop.c's.
 * prepare copies a revision into a history entry and publish queues it for
 * the server thread, on the setter's thread, under the backend's lock. */
int rstate__srv_tap_prepare(void *ud, const rstate_change *changes, size_t n, void **out);
void rstate__srv_tap_publish(void *ud, void *prepared);
void rstate__srv_tap_discard(void *ud, void *prepared);
/* Moves the queued entries into the history. The eventfd is read before
 * (by the caller), so a publish after the queue was taken wakes us again. */
void rstate__srv_drain(rstate_server *srv);
/* Room for n events in srv->evs, the encoding scratch; false on ENOMEM. */
bool rstate__srv_ensure_evs(rstate_server *srv, size_t n);
/* Fills the client's output and writes, a few rounds at most (other
 * clients wait meanwhile). When more is left, EPOLLOUT stays on even with
 * the output empty, so the loop comes back for it. */
void rstate__srv_pump(rstate_server *srv, client *c);
/* The first fill of a turn, for every active client before any is written
 * to (loop.c); false when the client is being failed. */
bool rstate__srv_fill(rstate_server *srv, client *c);
/* Before the answer to a write: the events up to that write go out first,
 * so that a client whose own watches cover what it wrote has had their
 * events when its write returns (unless it is too far behind). Past the
 * streaming threshold, up to max_queue_bytes: what is behind the output
 * must not slip behind the answer. */
void rstate__srv_events_first(rstate_server *srv, client *c);

/* ---- history_req.c: HISTORY and ROLLBACK (protocol version 2) ---------- */

void rstate__srv_do_history(rstate_server *srv, client *c, const rstate__wire_msg *m);
void rstate__srv_do_rollback(rstate_server *srv, client *c, const rstate__wire_msg *m);
/* A WATCH resuming after a revision the server's history no longer reaches
 * back to (its own start, after a restart on durable data): when the store
 * still keeps every change since (rstate__serve_changes), answers RESUMED,
 * sends the covered ones as EVENT frames and attaches sb at the history's
 * head; true then (sb is the client's, the answer queued). false: nothing
 * sent, sb still the caller's (a GAP then). */
bool rstate__srv_resume_kept(rstate_server *srv, client *c, sub *sb, const rstate__wire_watch *m);

/* ---- request.c: the requests, one table ------------------------------------------------- */

/* Handles one frame of a client past the handshake, through the request
 * table: the answer is queued on c->out, or c is failed. */
void rstate__srv_on_request(rstate_server *srv, client *c, const rstate__wire_frame *f);

#endif
