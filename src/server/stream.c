/*
 * stream.c — changes in, events out: the tap copies each revision into a
 * history entry on the setter's thread and queues it for the server thread,
 * which moves it into the history and streams to each subscription what it
 * covers, coalescing what a slow client cannot take.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

_Thread_local rstate_server *rstate__srv_serving;

int rstate__srv_tap_prepare(void *ud, const rstate_change *changes, size_t n, void **out) {
  (void)ud;
  *out = rstate__hentry_new(changes, n);
  return *out ? RSTATE_OK
              : rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the change for the server", changes[0].name);
}

void rstate__srv_tap_publish(void *ud, void *prepared) {
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
  bool self = rstate__srv_serving == srv;
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

void rstate__srv_tap_discard(void *ud, void *prepared) {
  (void)ud;
  rstate__hentry_unref(prepared);
}

/* Moves the queued entries into the history. The eventfd is read before
 * (by the caller), so a publish after the queue was taken wakes us again. */
void rstate__srv_drain(rstate_server *srv) {
  pthread_mutex_lock(&srv->mu);
  rstate__hentry *e = srv->in_head;
  srv->in_head = srv->in_tail = NULL;
  srv->signalled = false;
  srv->self_queued = false;
  pthread_mutex_unlock(&srv->mu);
  while (e) {
    rstate__hentry *next = e->next;
    rstate__srv_activate_covered(srv, e);
    rstate__history_push(&srv->hist, e);
    e = next;
  }
}

bool rstate__srv_ensure_evs(rstate_server *srv, size_t n) {
  if (n <= srv->evs_cap) return true;
  size_t cap = srv->evs_cap ? srv->evs_cap : 64;
  while (cap < n) cap *= 2;
  rstate__wire_event *evs = realloc(srv->evs, cap * sizeof *evs);
  if (!evs) return false;
  srv->evs = evs;
  srv->evs_cap = cap;
  return true;
}

/* Encodes the covered changes of one entry for a subscription. */
static int put_entry(rstate_server *srv, client *c, const sub *s, const rstate__hentry *e, uint8_t flags,
                     size_t *events) {
  size_t k = 0;
  if (!rstate__srv_ensure_evs(srv, e->n)) return RSTATE_ENOMEM;
  for (size_t i = 0; i < e->n; i++) {
    const rstate__hchange *h = &e->changes[i];
    if (!rstate__srv_covers(s, h)) continue;
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
  if (!rstate__srv_ensure_evs(srv, p->live)) return RSTATE_ENOMEM;
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
        if (rstate__srv_covers(s, &n->changes[j])) idx[k++] = (uint32_t)j;
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
  rstate__srv_activate(srv, c); /* its cursors move: resync at the end of the turn */
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
      rstate__srv_fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
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
void rstate__srv_pump(rstate_server *srv, client *c) {
  for (int round = 0; round < 4; round++) {
    if (!fill(srv, c, srv->threshold)) return;
    rstate__srv_flush(srv, c);
    if (c->doomed || !c->more || out_pending(c) >= srv->threshold) return;
  }
}

bool rstate__srv_fill(rstate_server *srv, client *c) { return fill(srv, c, srv->threshold); }

/* Before the answer to a write: the events up to that write go out first,
 * so that a client whose own watches cover what it wrote has had their
 * events when its write returns (unless it is too far behind). Past the
 * streaming threshold, up to max_queue_bytes: what is behind the output
 * must not slip behind the answer. */
void rstate__srv_events_first(rstate_server *srv, client *c) {
  rstate__srv_drain(srv);
  fill(srv, c, srv->max_queue > srv->threshold ? srv->max_queue : srv->threshold);
}
