/*
 * remote.h — the remote backend's connection object, shared by remote.c
 * (connecting, requests, the connection thread) and subscription.c
 * (watches: event groups, resume points, RESYNC after a gap).
 *
 * Locks: `lock` guards everything below it; `wlock` guards writing to the
 * socket (and out). Order: lock, then wlock. Neither is held while user
 * code runs; rstate_host_emit_to is called under `lock` (the backend lock).
 * watchdog.c's locks come before both: its functions are never called
 * under them. fd is set and closed under both, so either one keeps it.
 */
#ifndef RSTATE_REMOTE_H
#define RSTATE_REMOTE_H

#include <pthread.h>
#include <stdatomic.h>

#include "net/net.h"
#include "types/types.h"
#include "util/util.h"
#include "wire/wire.h"

typedef struct waiter waiter;
typedef struct rsub rsub;

/* The events of one frame on their way to rstate_host_emit_to. */
typedef struct evq {
  rstate_change *c;
  uint32_t *coalesced;
  size_t n, cap;
} evq;

/* Called on the connection thread, under lock, for each frame answering the
 * waiter's request; returns true once the answer is whole. */
typedef bool (*reply_fn)(waiter *w, const rstate__wire_msg *m);

struct waiter {
  waiter *next;
  uint32_t req;
  uint8_t reply_type; /* the frame type that answers (OK, GET_REPLY, ...) */
  reply_fn on_reply;  /* NULL: the frame itself is the whole answer */
  void *ctx;
  atomic_bool done; /* set under lock; read without it by a caller looking for it */
  int64_t done_ns;  /* monotonic: when done was set */
  int rc;
  char *sentence; /* an ERROR's sentence */
  uint64_t failed_index;
};

enum { CONN_CONNECTED = 1, CONN_DISCONNECTED };

typedef struct remote {
  rstate_host *host;
  char *uri;
  rstate__addr addr;
  rstate_options opts;
  char *token;
  int connect_timeout_ms, request_timeout_ms;
  int cpus;          /* the CPUs the connection thread may run on (rstate__remote_wait) */
  int n_waiting;     /* callers waiting for an answer now (under lock) */
  int64_t answer_ns; /* how long answers have been taking to come (a moving average, under lock) */
  uint64_t answers;        /* answers read by the connection thread (under lock) */
  uint64_t answers_waited; /* ... as of its last wait for bytes (serve) */

  pthread_mutex_t lock;
  pthread_cond_t cond; /* a waiter is done, the state changed */
  int state;
  bool closing;   /* rstate_close: the connection thread ends */
  char why[160];  /* why the last connection was lost */
  bool open_done; /* the first connection attempt is over (open_rc) */
  int open_rc;
  char *open_error;
  uint64_t gen;     /* connection serial: a request belongs to one connection */
  int fd;           /* -1 when disconnected */
  int wake;         /* eventfd: wakes the connection thread resting before a reconnect (closing) */
  rstate__wire_reader reader; /* connection thread only */
  size_t read_size;           /* ... and its next read's size (rstate__wire_read_size) */
  rstate__wire_buf scratch;   /* decoding, connection thread only */
  rstate__wire_welcome welcome;
  uint64_t instance;          /* the server instance subscriptions belong to */
  int64_t last_rx_ns;         /* monotonic: the last frame received */
  int64_t wait_ns;            /* monotonic: when the connection thread began waiting for bytes */
  bool waiting;               /* it waits for bytes now (serve) */
  bool silent;                /* watchdog.c shut the socket down: three heartbeats missed */
  int64_t retry_ns;           /* monotonic: when refused subscriptions are asked for again */
  uint32_t next_req;
  waiter *waiters;
  waiter *answered; /* answers read, released after the callbacks before them ran */
  bool in_serve;    /* the connection thread is reading outside any callback */
  waiter *pumping;  /* the request a callback on the connection thread reads for */
  rsub *subs;
  uint64_t next_sub;
  evq outq; /* subscription.c's, kept between groups */
  pthread_t thread;
  struct remote *wd_next, *wd_prev; /* watchdog.c's list (under its lock) */

  pthread_mutex_t wlock;
  rstate__wire_buf out; /* the frame being sent */
} remote;

/* ---- remote.c, for subscription.c ---- */

/* Drops the connection (under lock, on the connection thread only: it
 * closes the socket and frees the reader, which serve reads into outside
 * the lock): fails every request in flight with RSTATE_ECLOSED; the
 * connection thread reports and reconnects. */
void rstate__remote_drop(remote *r, const char *why);
/* Sends an encoded frame on the current connection (under lock or not;
 * takes wlock). encode appends the frame to the buffer. */
int rstate__remote_send(remote *r, uint64_t gen, int (*encode)(rstate__wire_buf *b, const void *arg), const void *arg);
/* Completes a waiter (under lock). */
void rstate__remote_finish(remote *r, waiter *w, int rc);
/* A request id for a request no one waits for (under lock). */
uint32_t rstate__remote_next_req(remote *r);
/* Registers a waiter for a request of this connection (under lock) and
 * gives it a request id. */
void rstate__remote_add_waiter(remote *r, waiter *w);
/* Waits (not under lock) for w, sent on connection gen, to be answered;
 * removes it. Returns its rc, with the sentence set. */
int rstate__remote_wait(remote *r, waiter *w);

/* For watchdog.c (takes lock): when r's connection thread has waited for
 * bytes three heartbeat intervals since the last frame, shuts the socket
 * down, once, and marks r silent. Returns how long until r should be
 * looked at again (a quarter interval), 0 when it is not connected. */
int64_t rstate__remote_silent(remote *r, int64_t now);

/* ---- watchdog.c: the thread that notices silent servers (not under lock) ---- */

/* r is watched from now until rstate__watchdog_remove (rstate_open). */
int rstate__watchdog_add(remote *r);
void rstate__watchdog_remove(remote *r);
/* A connection was made: its heartbeat interval may be shorter than the
 * thread's current wait. */
void rstate__watchdog_poke(void);

/* ---- subscription.c ---- */

int rstate__sub_subscribe(remote *r, rstate_sub *handle, const char *const *patterns, size_t n, bool include_initial);
void rstate__sub_unsubscribe(remote *r, rstate_sub *handle);
/* WATCH_REPLY and EVENT frames (under lock, connection thread); true when
 * events went to a watch. */
bool rstate__sub_frame(remote *r, const rstate__wire_msg *m, const rstate__wire_frame *f);
/* An ERROR answering a request no waiter waits for: a re-subscription. */
void rstate__sub_error(remote *r, const rstate__wire_error *e);
/* The connection was lost (under lock): partial groups are dropped. */
void rstate__sub_lost(remote *r);
/* A new connection (under lock): every subscription is sent again, resuming
 * from its last revision when the server is the same instance. */
void rstate__sub_resubscribe(remote *r);
/* Sends again each subscription the server did not take back (under lock,
 * connection thread, once per heartbeat interval). */
void rstate__sub_retry(remote *r);
/* Frees every subscription (closing). */
void rstate__sub_free_all(remote *r);
void rstate__sub_out_free(remote *r);

#endif
