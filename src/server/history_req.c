/*
 * history_req.c — HISTORY and ROLLBACK (protocol version 2): a served
 * store's kept versions, read and rolled back to through the front end's
 * public calls, so a client gets every check and sentence a local caller
 * gets (RSTATE_ENOTSUP from a store that keeps no history included).
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* The entries of one walk, copied (the walk's entries live for one call). */
typedef struct hist_copy {
  rstate_history_entry *e;
  size_t n, cap;
  bool nomem;
} hist_copy;

static void hist_copy_free(hist_copy *h) {
  for (size_t i = 0; i < h->n; i++) rstate__history_entry_free(&h->e[i]);
  free(h->e);
}

static int hist_collect(const rstate_history_entry *e, void *ud) {
  hist_copy *h = ud;
  if (h->n == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 16;
    rstate_history_entry *p = realloc(h->e, cap * sizeof *p);
    if (!p) return h->nomem = true;
    h->e = p;
    h->cap = cap;
  }
  rstate_history_entry *x = &h->e[h->n];
  memset(x, 0, sizeof *x);
  x->version = e->version;
  x->revision = e->revision;
  x->timestamp_ns = e->timestamp_ns;
  bool bad = rstate_value_copy(&x->value, &e->value) != RSTATE_OK;
  if (e->source && !(x->source = strdup(e->source))) bad = true;
  rstate_meta *meta = e->n_meta ? calloc(e->n_meta, sizeof *meta) : NULL;
  if (e->n_meta && !meta) bad = true;
  x->meta = meta;
  for (size_t i = 0; meta && i < e->n_meta; i++) {
    x->n_meta = i + 1;
    meta[i].key = strdup(e->meta[i].key ? e->meta[i].key : "");
    meta[i].value = strdup(e->meta[i].value ? e->meta[i].value : "");
    if (!meta[i].key || !meta[i].value) bad = true;
  }
  h->n++; /* freed with the others, whole or not */
  if (bad) h->nomem = true;
  return bad;
}

void rstate__srv_do_history(rstate_server *srv, client *c, const rstate__wire_msg *msg) {
  const rstate__wire_history *m = &msg->u.history;
  hist_copy h = {0};
  uint64_t rev = rstate_revision(srv->store); /* read before the walk: the history reflects it */
  int rc = rstate_history(srv->store, m->name, m->after_version, hist_collect, &h);
  if (!rc && h.nomem) rc = rstate__err(RSTATE_ENOMEM, "HISTORY: %s: the server ran out of memory", m->name);
  if (rc) {
    rstate__srv_reply_error(srv, c, m->req, rc, SIZE_MAX);
  } else {
    rstate__wire_hist_part part = {m->req, 0, rev, h.e, h.n};
    size_t frames = 0;
    rc = rstate__wire_put_hist_parts(&c->out, &part, srv->max_frame, &frames);
    rstate__srv_sent(srv, c, rc, frames);
  }
  hist_copy_free(&h);
}

void rstate__srv_do_rollback(rstate_server *srv, client *c, const rstate__wire_msg *msg) {
  const rstate__wire_rollback *m = &msg->u.rollback;
  int rc = rstate_rollback(srv->store, m->name, m->version, &m->opts);
  if (rc) {
    rstate__srv_reply_error(srv, c, m->req, rc, SIZE_MAX);
    return;
  }
  rstate__wire_rev r = {m->req, rstate_revision(srv->store)};
  rstate__srv_events_first(srv, c);
  rstate__srv_sent(srv, c, rstate__wire_put_rev(&c->out, RSTATE__WIRE_ROLLBACK_REPLY, &r), 1);
}

/* ---- resuming from the store's kept changes ------------------------------- */

typedef struct kept_entries {
  rstate__hentry **e;
  size_t n, cap;
  bool nomem;
} kept_entries;

static int keep_entry(const rstate_change *changes, size_t n, void *ud) {
  kept_entries *k = ud;
  if (k->n == k->cap) {
    size_t cap = k->cap ? 2 * k->cap : 64;
    rstate__hentry **p = realloc(k->e, cap * sizeof *p);
    if (!p) return k->nomem = true;
    k->e = p;
    k->cap = cap;
  }
  rstate__hentry *e = rstate__hentry_new(changes, n);
  if (!e) return k->nomem = true;
  k->e[k->n++] = e;
  return 0;
}

bool rstate__srv_resume_kept(rstate_server *srv, client *c, sub *sb, const rstate__wire_watch *m) {
  uint64_t up_to = srv->hist.head->revision; /* the history holds every revision above it */
  kept_entries k = {0};
  int rc = rstate__serve_changes(srv->store, m->resume_after, up_to, keep_entry, &k);
  bool ok = !rc && !k.nomem && k.n == up_to - m->resume_after;
  if (ok && !rstate__srv_attach(srv, c, sb, rstate__history_find(&srv->hist, NULL, up_to))) ok = false;
  if (ok) {
    rstate__wire_watch_reply r = {m->req, m->sub, RSTATE__WIRE_WATCH_RESUMED, m->resume_after, 0};
    rstate__srv_sent(srv, c, rstate__wire_put_watch_reply(&c->out, &r), 1);
  }
  for (size_t i = 0; i < k.n; i++) {
    const rstate__hentry *e = k.e[i];
    size_t n = 0;
    if (ok && c->state == C_READY && rstate__srv_ensure_evs(srv, e->n)) {
      for (size_t j = 0; j < e->n; j++) {
        const rstate__hchange *h = &e->changes[j];
        if (rstate__srv_covers(sb, h))
          srv->evs[n++] = (rstate__wire_event){h->kind,      h->name,         h->type, h->old_value,
                                               h->new_value, h->version, h->timestamp_ns, 1};
      }
    } else if (ok && c->state == C_READY) {
      rstate__srv_fail(srv, c, RSTATE_ENOMEM, "the server ran out of memory");
    }
    if (n) {
      rstate__wire_events ev = {sb->id, e->revision, 0, e->source, e->meta, e->n_meta, srv->evs, n};
      size_t frames = 0;
      rstate__srv_sent(srv, c, rstate__wire_put_events_split(&c->out, &ev, srv->max_frame, &frames), frames);
      srv->events_sent += n;
    }
    rstate__hentry_unref(k.e[i]);
  }
  free(k.e);
  return ok;
}
