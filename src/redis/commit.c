/*
 * commit.c — group commit for a redis: store's sets: the set requests of
 * every thread go through one connection of their own, several of them in
 * one call of the group Function (sets, library.c), and several
 * such calls in flight at once (pipelined; Redis answers them in order).
 *
 * No thread of its own: a caller queues its request, then takes whichever
 * job is free while its answer is not in: the sender's (take the queued
 * requests, up to COMMIT_BATCH, and send them as one call, when fewer than
 * COMMIT_FLIGHTS calls are in flight) or the reader's (read the oldest
 * call's answer and hand each request its own). A caller alone sends its
 * request and reads its answer: one round trip, as without the queue;
 * under load the requests that queue while a call is out go out together.
 *
 * Each request is decided alone in the Function, in order, with its own
 * revision and answer; one refused, or one that raised inside the Function
 * (answered ERR: it wrote nothing), does not refuse the others. A request
 * is answered only from the reply to the call that carried it: when the
 * connection fails, every call in flight fails with the connection's
 * sentence (their outcome is unknown: never sent again), and the next call
 * connects again. A call answered with an error as a whole ran nothing
 * (the Function answers each request's own failure in its answer, and
 * raises only for a call that does not parse; or Redis refused to start
 * it: out of memory, not the primary): its requests fail with that error.
 * When the server could not find the Function (the library was flushed,
 * or never loaded there) they are queued again instead, at most twice,
 * and the library is loaded before the next call goes out.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "redis.h"

#define COMMIT_FLIGHTS 4 /* calls in flight on the connection */
#define COMMIT_BATCH 64  /* requests in one call */

struct rstate__redis_batch {
  struct rstate__redis_batch *next;
  rstate__redis_req **reqs;
  size_t n;
  bool want_wait;
  rstate__resp *reply; /* the Function's answer: one array per request */
  size_t refs;         /* requests still reading their answer */
};

void rstate__redis_commit_init(rstate__redis_commit *q, const rstate__redis_commit_conf *conf) {
  memset(q, 0, sizeof *q);
  q->conf = *conf;
  pthread_mutex_init(&q->lock, NULL);
  rstate__redis_conn_init(&q->c);
}

void rstate__redis_commit_free(rstate__redis_commit *q) {
  rstate__redis_conn_free(&q->c);
  pthread_mutex_destroy(&q->lock);
}

static void batch_free(rstate__redis_batch *b) {
  rstate__resp_free(b->reply);
  free(b->reqs);
  free(b);
}

/* Under lock: the request is answered (rc and the sentence, or its part of
 * the batch's reply). */
static void finish(rstate__redis_req *r, int rc, const char *sentence) {
  r->rc = rc;
  if (rc) snprintf(r->err, sizeof r->err, "%s", sentence);
  r->done = true;
  pthread_cond_signal(&r->cond);
}

/* Under lock: a job is free (sending or reading) and its caller leaves:
 * wake one caller still waiting to take it, the owner of the oldest
 * request in flight, else of the oldest queued. Waking one (not every
 * waiting caller) keeps a change of hands to one wakeup. */
static void hand_off(rstate__redis_commit *q) {
  if (q->flights && !q->reading)
    pthread_cond_signal(&q->flights->reqs[0]->cond);
  else if (q->pending && !q->sending)
    pthread_cond_signal(&q->pending->cond);
}

/* Under lock: a batch that got no answer (its requests fail alike). */
static void fail_batch(rstate__redis_batch *b, int rc, const char *sentence) {
  for (size_t i = 0; i < b->n; i++) finish(b->reqs[i], rc, sentence);
  batch_free(b);
}

/* Under lock: the connection cannot be trusted any more; a reader in recv
 * wakes up, and it is closed once no one uses it. */
static void break_conn(rstate__redis_commit *q) {
  if (q->c.fd >= 0 && !q->broken) shutdown(q->c.fd, SHUT_RDWR);
  q->broken = true;
}

/* Under lock: every call in flight fails (the connection failed). */
static void fail_flights(rstate__redis_commit *q, int rc, const char *sentence) {
  while (q->flights) {
    rstate__redis_batch *b = q->flights;
    q->flights = b->next;
    fail_batch(b, rc, sentence);
  }
  q->flights_tail = NULL;
  q->n_flights = 0;
}

/* Encodes one call of the group Function carrying b's requests, and WAIT
 * after it when replicas are asked for. */
static int encode(rstate__redis_commit *q, rstate__redis_batch *b, rstate__resp_buf *out) {
  const rstate__redis_commit_conf *f = &q->conf;
  size_t argc = 9;
  for (size_t i = 0; i < b->n; i++) argc += (size_t)b->reqs[i]->argc;
  const char **argv = malloc(argc * sizeof *argv);
  size_t *lens = malloc(argc * sizeof *lens);
  int rc = RSTATE_OK;
  if (!argv || !lens) {
    rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory for a command", f->uri);
  } else {
    char count[24];
    snprintf(count, sizeof count, "%zu", b->n);
    const char *head[9] = {"FCALL", RSTATE_REDIS_LIB "_sets", "4", f->keys[0], f->keys[1], f->keys[2], f->keys[3],
                           f->maxlen, count};
    size_t k = 0;
    for (; k < 9; k++) argv[k] = head[k], lens[k] = strlen(head[k]);
    for (size_t i = 0; i < b->n; i++)
      for (int j = 0; j < b->reqs[i]->argc; j++, k++) argv[k] = b->reqs[i]->argv[j], lens[k] = b->reqs[i]->lens[j];
    rc = rstate__resp_command(out, (int)argc, argv, lens);
    if (!rc && b->want_wait) {
      char n[16], ms[16];
      snprintf(n, sizeof n, "%d", f->replicas);
      snprintf(ms, sizeof ms, "%d", f->replica_timeout_ms);
      const char *wait[] = {"WAIT", n, ms};
      rc = rstate__resp_command(out, 3, wait, NULL);
    }
    if (rc) rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory for a command", f->uri);
  }
  free(argv);
  free(lens);
  return rc;
}

/* Connects (when not connected) and makes sure the server has the
 * library (an empty call loads it when missing). Alone on the connection. */
static int prepare(rstate__redis_commit *q) {
  const rstate__redis_commit_conf *f = &q->conf;
  int rc = RSTATE_OK;
  if (q->c.fd < 0 && (rc = f->connect(f->ud, &q->c)) && rc != RSTATE_EPERM)
    rc = rstate__err(RSTATE_ECLOSED, "%s: not connected to Redis (%s)", f->uri, rstate_last_error());
  if (rc) return rc;
  const char *argv[] = {f->maxlen, "0"};
  rstate__resp *rep = NULL;
  rc = rstate__redis_fcall(&q->c, f->uri, f->request_timeout_ms, false, "sets", f->keys, 2, argv, NULL, &rep);
  rstate__resp_free(rep);
  if (rc) rstate__redis_conn_close(&q->c);
  return rc;
}

/* The sender's job, entered and left under lock. */
static void send_batch(rstate__redis_commit *q) {
  bool fresh = q->c.fd < 0 || q->reload;
  rstate__redis_batch *b = calloc(1, sizeof *b);
  size_t n = q->n_pending < COMMIT_BATCH ? q->n_pending : COMMIT_BATCH;
  if (b && !(b->reqs = malloc(n * sizeof *b->reqs))) {
    free(b);
    b = NULL;
  }
  if (!b) { /* the first request fails; the others wait for memory */
    rstate__redis_req *r = q->pending;
    q->pending = r->next;
    q->n_pending--;
    finish(r, RSTATE_ENOMEM, "set: out of memory for a request to Redis");
    return;
  }
  for (; b->n < n; b->n++) {
    rstate__redis_req *r = q->pending;
    q->pending = r->next;
    r->next = NULL;
    b->reqs[b->n] = r;
  }
  q->n_pending -= n;
  if (!q->pending) q->pending_tail = NULL;
  b->want_wait = q->conf.replicas > 0;
  q->sending = true;
  pthread_mutex_unlock(&q->lock);

  int rc = fresh ? prepare(q) : RSTATE_OK;
  rstate__resp_buf out = {0};
  if (!rc) rc = encode(q, b, &out);
  if (!rc) rc = rstate__redis_send(q->c.fd, out.p, out.len, q->conf.uri);
  rstate__resp_buf_free(&out);
  char why[sizeof ((rstate__redis_req *)0)->err];
  if (rc) snprintf(why, sizeof why, "%s", rstate_last_error());

  pthread_mutex_lock(&q->lock);
  q->sending = false;
  if (rc) {
    if (rc == RSTATE_ECLOSED && q->c.fd >= 0) break_conn(q);
    fail_batch(b, rc, why);
  } else {
    if (fresh) q->reload = false;
    if (q->flights_tail)
      q->flights_tail->next = b;
    else
      q->flights = b;
    q->flights_tail = b;
    q->n_flights++;
  }
}

/* Under lock: the call b ran nothing (the Function was missing): its
 * requests go back in the queue, at most twice each. */
static void requeue(rstate__redis_commit *q, rstate__redis_batch *b, int rc, const char *sentence) {
  for (size_t i = b->n; i-- > 0;) { /* pushed in front from the last: they go again in their order */
    rstate__redis_req *r = b->reqs[i];
    if (++r->tries > 2) {
      finish(r, rc, sentence);
      continue;
    }
    r->next = q->pending;
    q->pending = r;
    if (!q->pending_tail) q->pending_tail = r;
    q->n_pending++;
  }
  batch_free(b);
}

/* The reader's job, entered and left under lock: the oldest call's answer. */
static void read_batch(rstate__redis_commit *q) {
  const rstate__redis_commit_conf *f = &q->conf;
  rstate__redis_batch *b = q->flights;
  q->reading = true;
  pthread_mutex_unlock(&q->lock);

  rstate__resp *rep = NULL, *w = NULL;
  int rc = rstate__redis_recv(&q->c, f->uri, f->request_timeout_ms, &rep);
  char why[sizeof ((rstate__redis_req *)0)->err] = "";
  if (rc) snprintf(why, sizeof why, "%s", rstate_last_error());
  long long acked = 0;
  int wrc = RSTATE_OK;
  char wwhy[sizeof why] = "";
  if (!rc && b->want_wait) {
    wrc = rstate__redis_recv(&q->c, f->uri, f->replica_timeout_ms + f->request_timeout_ms, &w);
    acked = !wrc && w->type == RSTATE_RESP_INTEGER ? w->integer : -1;
    snprintf(wwhy, sizeof wwhy, "%s", wrc ? rstate_last_error() : "unexpected answer to WAIT");
    rstate__resp_free(w);
  }

  pthread_mutex_lock(&q->lock);
  q->reading = false;
  if (rc) { /* no answer: every call in flight has an unknown outcome */
    break_conn(q);
    fail_flights(q, rc, why);
    return;
  }
  q->flights = b->next;
  if (!q->flights) q->flights_tail = NULL;
  q->n_flights--;
  b->next = NULL;
  if (wrc) break_conn(q); /* the calls after this one fail when read */
  if (rep->type == RSTATE_RESP_ERROR) {
    bool missing = strstr(rep->str, "Function not found") != NULL;
    rc = rstate__redis_error(rep, f->uri);
    snprintf(why, sizeof why, "%s", rstate_last_error());
    rstate__resp_free(rep);
    if (rc == RSTATE_ECLOSED) break_conn(q); /* not the primary now: look for it again */
    if (missing) {
      q->reload = true;
      requeue(q, b, rc, why);
    } else {
      fail_batch(b, rc, why);
    }
    return;
  }
  if (rep->type != RSTATE_RESP_ARRAY || rep->n != b->n) {
    rstate__resp_free(rep);
    rc = rstate__err(RSTATE_EPROTO, "%s: unexpected answer from Redis to set", f->uri);
    snprintf(why, sizeof why, "%s", rstate_last_error());
    fail_batch(b, rc, why);
    return;
  }
  b->reply = rep;
  b->refs = b->n;
  for (size_t i = 0; i < b->n; i++) {
    rstate__redis_req *r = b->reqs[i];
    r->batch = b;
    r->answer = &rep->elem[i];
    r->acked = acked;
    snprintf(r->why, sizeof r->why, "%s", wwhy);
    finish(r, RSTATE_OK, NULL);
  }
}

int rstate__redis_commit_call(rstate__redis_commit *q, rstate__redis_req *r) {
  r->next = NULL;
  r->done = false;
  r->rc = RSTATE_OK;
  r->tries = 0;
  r->batch = NULL;
  r->answer = NULL;
  r->acked = 0;
  r->why[0] = 0;
  pthread_cond_init(&r->cond, NULL);
  pthread_mutex_lock(&q->lock);
  if (q->pending_tail)
    q->pending_tail->next = r;
  else
    q->pending = r;
  q->pending_tail = r;
  q->n_pending++;
  while (!r->done) {
    bool idle = !q->sending && !q->reading;
    if (q->broken && idle && !q->n_flights) { /* everything in flight failed: start again */
      rstate__redis_conn_close(&q->c);
      q->broken = false;
    }
    bool alone = idle && !q->n_flights; /* connecting or loading the library needs the connection to itself */
    if (q->pending && !q->sending && !q->broken && q->n_flights < COMMIT_FLIGHTS &&
        ((q->c.fd >= 0 && !q->reload) || alone)) {
      send_batch(q);
    } else if (q->flights && !q->reading) {
      read_batch(q);
    } else {
      pthread_cond_wait(&r->cond, &q->lock);
    }
  }
  hand_off(q);
  pthread_mutex_unlock(&q->lock);
  pthread_cond_destroy(&r->cond);
  if (r->rc) return rstate__err(r->rc, "%s", r->err);
  return RSTATE_OK;
}

void rstate__redis_commit_release(rstate__redis_commit *q, rstate__redis_req *r) {
  rstate__redis_batch *b = r->batch;
  if (!b) return;
  r->batch = NULL;
  r->answer = NULL;
  pthread_mutex_lock(&q->lock);
  bool last = --b->refs == 0;
  pthread_mutex_unlock(&q->lock);
  if (last) batch_free(b);
}

size_t rstate__redis_commit_queued(rstate__redis_commit *q) {
  pthread_mutex_lock(&q->lock);
  size_t n = q->n_pending;
  pthread_mutex_unlock(&q->lock);
  return n;
}
