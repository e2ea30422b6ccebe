/*
 * request.c — the requests a client sends after the handshake.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

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

static void list_or_snapshot(rstate_server *srv, client *c, const rstate__wire_names *m, bool values) {
  const char *const *p = m->n ? m->names : every;
  size_t n = m->n ? m->n : 1;
  const char *what = values ? "SNAPSHOT" : "LIST";
  rstate__snap sn;
  uint64_t rev = values ? 0 : rstate_revision(srv->store); /* LIST: read just before the snapshot */
  uint64_t srev = 0;
  int rc = rstate__snapshot_take(srv->store, p, n, values, &sn, &srev, what);
  if (rc) {
    rstate__srv_reply_error(srv, c, m->req, rc, SIZE_MAX);
    return;
  }
  if (values) {
    rstate__wire_var *vars = wire_vars(&sn, what);
    rstate__wire_snapshot_part part = {m->req, 0, srev, vars, sn.n};
    size_t frames = 0;
    if (!vars)
      rstate__srv_reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
    else
      rstate__srv_sent(srv, c, rstate__wire_put_snapshot_parts(&c->out, &part, srv->max_frame, &frames), frames);
    free(vars);
  } else {
    rstate__wire_list_item *items = sn.n ? malloc(sn.n * sizeof *items) : NULL;
    if (sn.n && !items) {
      rstate__err(RSTATE_ENOMEM, "LIST: the server ran out of memory");
      rstate__srv_reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
    } else {
      for (size_t i = 0; i < sn.n; i++) items[i] = (rstate__wire_list_item){sn.vars[i].name, sn.vars[i].type};
      rstate__wire_list_part part = {m->req, 0, rev, items, sn.n};
      size_t frames = 0;
      rc = rstate__wire_put_list_parts(&c->out, &part, srv->max_frame, &frames);
      rstate__srv_sent(srv, c, rc, frames);
    }
    free(items);
  }
  rstate__snap_free(&sn);
}

static void do_list(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  list_or_snapshot(srv, c, &m->u.names, false);
}

static void do_snapshot(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  list_or_snapshot(srv, c, &m->u.names, true);
}

static void do_get_many(rstate_server *srv, client *c, const rstate__wire_msg *msg) {
  const rstate__wire_names *m = &msg->u.names;
  rstate_value *vals = m->n ? calloc(m->n, sizeof *vals) : NULL;
  if (m->n && !vals) {
    rstate__err(RSTATE_ENOMEM, "GET_MANY: the server ran out of memory");
    rstate__srv_reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
    return;
  }
  uint64_t rev = 0;
  int rc = m->n ? rstate_get_many(srv->store, m->names, m->n, vals, &rev) : RSTATE_OK;
  if (!m->n) rev = rstate_revision(srv->store);
  if (rc) {
    rstate__srv_reply_error(srv, c, m->req, rc, SIZE_MAX);
  } else {
    rstate__wire_values_part part = {m->req, 0, rev, vals, m->n};
    size_t frames = 0;
    rc = rstate__wire_put_values_parts(&c->out, &part, srv->max_frame, &frames);
    rstate__srv_sent(srv, c, rc, frames);
  }
  for (size_t i = 0; i < m->n; i++) rstate_value_clear(&vals[i]);
  free(vals);
}

static void do_set_many(rstate_server *srv, client *c, const rstate__wire_msg *msg) {
  const rstate__wire_set_many *m = &msg->u.set_many;
  size_t failed = SIZE_MAX;
  int rc = m->n ? rstate__serve_set(srv->store, m->items, m->n, m->expected, &m->opts, &failed) : RSTATE_OK;
  if (rc) {
    rstate__srv_reply_error(srv, c, m->req, rc, failed);
  } else {
    rstate__wire_rev r = {m->req, rstate_revision(srv->store)};
    rstate__srv_events_first(srv, c);
    rstate__srv_sent(srv, c, rstate__wire_put_rev(&c->out, RSTATE__WIRE_SET_MANY_REPLY, &r), 1);
  }
  /* the served store's inline watchers run here, as on any setter's thread */
  rstate__serve_deliver();
}

static void do_stats(rstate_server *srv, client *c, const rstate__wire_msg *msg) {
  uint32_t req = msg->u.req.req;
  uint64_t vars = 0;
  uint64_t rev = 0;
  rstate__serve_revision(srv->store, &rev, &vars, "STATS"); /* late taps: the figures say so (history_*) */
  uint64_t oldest = srv->hist.events ? srv->hist.head->revision : 0;
  uint64_t queued = 0;
  for (const client *o = srv->clients; o; o = o->next) queued += out_pending(o);
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
      {"history_bytes", rstate__history_bytes(&srv->hist)},
      {"history_forgotten", srv->hist.forgotten},
      {"handshakes", srv->n_hello},
      {"queued_bytes", queued},
      {"loop_wakeups", srv->wakeups},
      {"tokens_refused", srv->log_counts[LOG_TOKEN_REFUSED]},
      {"clients_refused", srv->log_counts[LOG_CLIENTS_FULL]},
      {"handshakes_late", srv->log_counts[LOG_HANDSHAKE_LATE]},
      {"reads_stalled", srv->log_counts[LOG_STALLED]},
  };
  rstate__wire_stats_reply r = {req, st, sizeof st / sizeof st[0]};
  rstate__srv_sent(srv, c, rstate__wire_put_stats_reply(&c->out, &r), 1);
}

/* WATCH: NEW or GAP take a snapshot at R (serialized with the changes, so
 * every history entry above R comes after it) and start the cursor there;
 * RESUMED starts it at resume_after when the history holds every revision
 * above it. */
static void do_watch(rstate_server *srv, client *c, const rstate__wire_msg *msg) {
  const rstate__wire_watch *m = &msg->u.watch;
  int rc = RSTATE_OK;
  if (m->sub == 0)
    rc = rstate__err(RSTATE_EINVAL, "WATCH: subscription id 0 is not allowed");
  else if (rstate__srv_find_sub(c, m->sub))
    rc = rstate__err(RSTATE_EINVAL, "WATCH: subscription %llu is already in use on this connection",
                     (unsigned long long)m->sub);
  else if (m->n == 0)
    rc = rstate__err(RSTATE_EINVAL, "WATCH: subscription %llu has no pattern", (unsigned long long)m->sub);
  else if (c->n_subs >= MAX_SUBS)
    rc = rstate__err(RSTATE_ELIMIT, "WATCH: a connection may have at most %d subscriptions", MAX_SUBS);
  if (!rc) rc = rstate__srv_patterns_check(m->patterns, m->n);
  if (rc) {
    rstate__srv_reply_error(srv, c, m->req, rc, SIZE_MAX);
    return;
  }
  if (c->n_subs == c->cap_subs) {
    size_t cap = c->cap_subs ? c->cap_subs * 2 : 4;
    sub **subs = realloc(c->subs, cap * sizeof *subs);
    if (!subs) {
      rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
      rstate__srv_reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
      return;
    }
    c->subs = subs;
    c->cap_subs = cap;
  }
  sub *sb = rstate__srv_sub_new(m->sub, m->patterns, m->n);
  if (!sb) {
    rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
    rstate__srv_reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
    return;
  }
  uint8_t status = RSTATE__WIRE_WATCH_NEW;
  if (m->resume_after) {
    uint64_t cur = 0;
    if ((rc = rstate__serve_revision(srv->store, &cur, NULL, "WATCH"))) {
      rstate__srv_sub_free(sb);
      rstate__srv_reply_error(srv, c, m->req, rc, SIZE_MAX);
      return;
    }
    rstate__srv_drain(srv); /* every revision up to cur is now in the history */
    if (m->resume_after >= srv->hist.head->revision && m->resume_after <= cur) {
      if (!rstate__srv_attach(srv, c, sb, rstate__history_find(&srv->hist, NULL, m->resume_after))) {
        rstate__srv_sub_free(sb);
        rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
        rstate__srv_reply_error(srv, c, m->req, RSTATE_ENOMEM, SIZE_MAX);
        return;
      }
      rstate__wire_watch_reply r = {m->req, m->sub, RSTATE__WIRE_WATCH_RESUMED, m->resume_after, 0};
      rstate__srv_sent(srv, c, rstate__wire_put_watch_reply(&c->out, &r), 1);
      return;
    }
    /* before the server's memory: from what the store keeps, when it can */
    if (m->resume_after < srv->hist.head->revision && m->resume_after <= cur &&
        rstate__srv_resume_kept(srv, c, sb, m))
      return;
    status = RSTATE__WIRE_WATCH_GAP;
  }
  bool initial = status == RSTATE__WIRE_WATCH_GAP || (m->flags & RSTATE__WIRE_WATCH_INITIAL);
  rstate__hentry *before = srv->hist.tail; /* published before the snapshot: revision <= R */
  rstate__snap sn = {0};
  uint64_t R = 0;
  if (initial)
    rc = rstate__snapshot_take(srv->store, m->patterns, m->n, true, &sn, &R, "WATCH");
  else
    rc = rstate__serve_revision(srv->store, &R, NULL, "WATCH");
  if (!rc && !rstate__srv_ensure_evs(srv, sn.n)) rc = rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
  if (!rc) {
    rstate__srv_drain(srv);
    if (!rstate__srv_attach(srv, c, sb, rstate__history_find(&srv->hist, before, R)))
      rc = rstate__err(RSTATE_ENOMEM, "WATCH: the server ran out of memory");
  }
  if (rc) {
    rstate__snap_free(&sn);
    rstate__srv_sub_free(sb);
    rstate__srv_reply_error(srv, c, m->req, rc, SIZE_MAX);
    return;
  }
  rstate__wire_watch_reply r = {m->req, m->sub, status, R, sn.n};
  rstate__srv_sent(srv, c, rstate__wire_put_watch_reply(&c->out, &r), 1);
  if (sn.n && c->state == C_READY) { /* in name order, as a mem: store gives them */
    for (size_t i = 0; i < sn.n; i++) {
      const rstate__snap_var *v = &sn.vars[i];
      srv->evs[i] = (rstate__wire_event){RSTATE_EVENT_INITIAL, v->name,       v->type, {.kind = RSTATE_NONE}, v->value,
                                         v->version,           v->updated_ns, 0};
    }
    rstate__wire_events ev = {m->sub, R, 0, NULL, NULL, 0, srv->evs, sn.n};
    size_t frames = 0;
    rc = rstate__wire_put_events_split(&c->out, &ev, srv->max_frame, &frames);
    rstate__srv_sent(srv, c, rc, frames);
    srv->events_sent += sn.n;
  }
  rstate__snap_free(&sn);
}

static void do_ping(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  rstate__srv_sent(srv, c, rstate__wire_put_ping(&c->out, RSTATE__WIRE_PONG, m->u.ping.payload), 1);
}

static void do_pong(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  (void)srv;
  (void)c;
  (void)m;
}

/* After a write the store accepted: the events up to it, then OK. */
static void ok_after_write(rstate_server *srv, client *c, uint32_t req, int rc) {
  if (rc) {
    rstate__srv_reply_error(srv, c, req, rc, SIZE_MAX);
    return;
  }
  rstate__srv_events_first(srv, c);
  rstate__srv_sent(srv, c, rstate__wire_put_req(&c->out, RSTATE__WIRE_OK, req), 1);
}

static void do_define(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  ok_after_write(srv, c, m->u.define.req, rstate_define(srv->store, &m->u.define.def));
}

static void do_undefine(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  ok_after_write(srv, c, m->u.name.req, rstate_undefine(srv->store, m->u.name.name));
}

static void do_get(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  rstate__wire_get_reply r = {.req = m->u.name.req};
  rstate_var_info info;
  int rc = rstate__serve_get(srv->store, m->u.name.name, &r.value, &info);
  if (rc) {
    rstate__srv_reply_error(srv, c, r.req, rc, SIZE_MAX);
    return;
  }
  r.type = info.type;
  r.version = info.version;
  r.revision = info.revision;
  r.updated_ns = info.updated_ns;
  rstate__srv_sent(srv, c, rstate__wire_put_get_reply(&c->out, &r), 1);
  rstate_value_clear(&r.value);
}

static void do_info(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  rstate__wire_info_reply r = {.req = m->u.name.req};
  int rc = rstate_info(srv->store, m->u.name.name, &r.info);
  if (rc)
    rstate__srv_reply_error(srv, c, r.req, rc, SIZE_MAX);
  else
    rstate__srv_sent(srv, c, rstate__wire_put_info_reply(&c->out, &r), 1);
}

static void do_unwatch(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  sub **slot = rstate__srv_find_sub(c, m->u.unwatch.sub);
  if (!slot) {
    rstate__err(RSTATE_ENOTFOUND, "UNWATCH: no subscription %llu on this connection",
                (unsigned long long)m->u.unwatch.sub);
    rstate__srv_reply_error(srv, c, m->u.unwatch.req, RSTATE_ENOTFOUND, SIZE_MAX);
    return;
  }
  rstate__srv_remove_sub(srv, c, slot);
  rstate__srv_sent(srv, c, rstate__wire_put_req(&c->out, RSTATE__WIRE_OK, m->u.unwatch.req), 1);
}

static void do_revision(rstate_server *srv, client *c, const rstate__wire_msg *m) {
  rstate__wire_rev r = {m->u.req.req, rstate_revision(srv->store)};
  rstate__srv_sent(srv, c, rstate__wire_put_rev(&c->out, RSTATE__WIRE_REVISION_REPLY, &r), 1);
}

/* The variable a write would change first, for the sentence of a refusal. */
static const char *define_target(const rstate__wire_msg *m) { return m->u.define.def.name; }
static const char *undefine_target(const rstate__wire_msg *m) { return m->u.name.name; }
static const char *rollback_target(const rstate__wire_msg *m) { return m->u.rollback.name; }
static const char *set_many_target(const rstate__wire_msg *m) {
  return m->u.set_many.n ? m->u.set_many.items[0].name : "SET_MANY";
}

/* The request table, as Redis's command table: what a client may send after
 * the handshake, each frame type with its handler and whether it changes
 * the store (REQ_WRITE: refused on a read-only connection, in one place,
 * on_request); since below says which protocol version brought a request
 * (a frame of a later version than the connection's is malformed on it, as
 * it is to a server of that older version). A type without a row (HELLO, the server's own frames, types
 * nobody defined) fails the connection with RSTATE_EPROTO. */
enum { REQ_WRITE = 1 };

typedef struct request {
  void (*handle)(rstate_server *srv, client *c, const rstate__wire_msg *m);
  unsigned flags;
  const char *(*target)(const rstate__wire_msg *m); /* REQ_WRITE: what it would change first */
} request;

static const request requests[256] = {
    [RSTATE__WIRE_PING] = {do_ping, 0, NULL},
    [RSTATE__WIRE_PONG] = {do_pong, 0, NULL},
    [RSTATE__WIRE_DEFINE] = {do_define, REQ_WRITE, define_target},
    [RSTATE__WIRE_UNDEFINE] = {do_undefine, REQ_WRITE, undefine_target},
    [RSTATE__WIRE_GET] = {do_get, 0, NULL},
    [RSTATE__WIRE_GET_MANY] = {do_get_many, 0, NULL},
    [RSTATE__WIRE_SET_MANY] = {do_set_many, REQ_WRITE, set_many_target},
    [RSTATE__WIRE_INFO] = {do_info, 0, NULL},
    [RSTATE__WIRE_LIST] = {do_list, 0, NULL},
    [RSTATE__WIRE_SNAPSHOT] = {do_snapshot, 0, NULL},
    [RSTATE__WIRE_WATCH] = {do_watch, 0, NULL},
    [RSTATE__WIRE_UNWATCH] = {do_unwatch, 0, NULL},
    [RSTATE__WIRE_STATS] = {do_stats, 0, NULL},
    [RSTATE__WIRE_REVISION] = {do_revision, 0, NULL},
    [RSTATE__WIRE_HISTORY] = {rstate__srv_do_history, 0, NULL},
    [RSTATE__WIRE_ROLLBACK] = {rstate__srv_do_rollback, REQ_WRITE, rollback_target},
};

/* The protocol version that brought each request after version 1. */
static const uint16_t since[256] = {
    [RSTATE__WIRE_HISTORY] = RSTATE__WIRE_VERSION_HISTORY,
    [RSTATE__WIRE_ROLLBACK] = RSTATE__WIRE_VERSION_HISTORY,
};

void rstate__srv_on_request(rstate_server *srv, client *c, const rstate__wire_frame *f) {
  const request *r = &requests[f->type];
  if (!r->handle) {
    char msg[96];
    snprintf(msg, sizeof msg, "a client may not send a frame of type 0x%02x (%s)%s", f->type,
             rstate__wire_type_name(f->type), f->type == RSTATE__WIRE_HELLO ? " after the handshake" : "");
    rstate__srv_fail(srv, c, RSTATE_EPROTO, msg);
    return;
  }
  if (since[f->type] > c->version) {
    char msg[128];
    snprintf(msg, sizeof msg, "a frame of type 0x%02x (%s) needs protocol version %u; this connection speaks %u",
             f->type, rstate__wire_type_name(f->type), (unsigned)since[f->type], (unsigned)c->version);
    rstate__srv_fail(srv, c, RSTATE_EPROTO, msg);
    return;
  }
  rstate__wire_msg m;
  int rc = rstate__wire_decode_frame(f, &srv->scratch, &m);
  if (rc) {
    rstate__srv_fail(srv, c, rc, rstate_last_error());
    return;
  }
  if ((r->flags & REQ_WRITE) && c->access == RSTATE__WIRE_READ_ONLY) {
    /* every request a row marks REQ_WRITE starts with its request id */
    rstate__err(RSTATE_EPERM, "%s: not changed: this connection gave the read token, which may read and watch only",
                r->target(&m));
    rstate__srv_reply_error(srv, c, m.u.req.req, RSTATE_EPERM, SIZE_MAX);
    return;
  }
  if (r->flags & REQ_WRITE) c->wrote_turn = srv->wakeups;
  r->handle(srv, c, &m);
}
