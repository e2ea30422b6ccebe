/*
 * subscription.c — a remote store's watches: one server subscription per
 * watch (docs/PROTOCOL.md, section 6), its event groups, its resume point,
 * and the RESYNC events that rebuild a watch's view after a gap.
 *
 * Each subscription remembers the last value and version it saw of every
 * variable it covers (from the INITIAL events the server always sends at
 * registration, then from every event, filtered at the watch or not). After
 * a reconnect it asks the server to resume after the revision of the last
 * group it received whole. When the server cannot (its history no longer
 * reaches back, or it is a new instance), the INITIAL events it sends
 * instead are compared with what was seen: RESYNC for a variable whose
 * value or version differs, DEFINED for one not seen before, DELETED for a
 * seen one that is gone.
 *
 * Everything here runs under the remote's lock; events go to the front end
 * with rstate_host_emit_to.
 */
#include <stdlib.h>
#include <string.h>

#include "remote.h"

typedef struct seen {
  char *name;
  size_t len;
  uint64_t hash;
  rstate_type type;
  rstate_value value;
  uint64_t version;
  int64_t updated_ns; /* the timestamp of that event: when the variable last changed */
  uint64_t mark;      /* the gap being rebuilt that found it */
} seen;

typedef struct frame_copy {
  struct frame_copy *next;
  size_t len;
  uint8_t body[];
} frame_copy;

struct rsub {
  rsub *next;
  uint64_t id;
  rstate_sub *handle;
  char **patterns; /* one allocation with the strings */
  size_t n;
  bool include_initial;
  bool subscribed;      /* the first WATCH was answered whole */
  bool initial_pending; /* INITIAL events are on their way */
  bool gap;             /* ... and they rebuild the view */
  bool broken;          /* not taken back after a reconnect: asked again every heartbeat */
  uint32_t watch_req;
  waiter *waiter;    /* the first WATCH's caller, until it returns */
  uint64_t resume;   /* revision of the last group received whole */
  uint64_t instance; /* the server it belongs to */
  rstate__map seen;
  uint64_t gaps;
  frame_copy *group, **group_tail;
};

/* ---- what a subscription has seen ---------------------------------------- */

static seen *seen_get(rsub *s, const char *name) {
  size_t len = strlen(name);
  return rstate__map_get(&s->seen, name, len, rstate__hash(name, len));
}

static void seen_free(seen *v) {
  if (!v) return;
  rstate_value_clear(&v->value);
  free(v->name);
  free(v);
}

static void seen_del(rsub *s, const char *name) {
  size_t len = strlen(name);
  seen_free(rstate__map_del(&s->seen, name, len, rstate__hash(name, len)));
}

/* What ev says the variable now is. */
static bool seen_set(rsub *s, const rstate__wire_event *ev) {
  const char *name = ev->name;
  seen *v = seen_get(s, name);
  if (!v) {
    if (!rstate__map_reserve(&s->seen, 1) || !(v = calloc(1, sizeof *v))) return false;
    v->len = strlen(name);
    if (!(v->name = malloc(v->len + 1))) {
      free(v);
      return false;
    }
    memcpy(v->name, name, v->len + 1);
    v->hash = rstate__hash(name, v->len);
    rstate__map_put(&s->seen, v->name, v->len, v->hash, v);
  }
  rstate_value copy;
  if (rstate_value_copy(&copy, &ev->new_value)) return false;
  rstate_value_clear(&v->value);
  v->value = copy;
  v->type = ev->type;
  v->version = ev->version;
  v->updated_ns = ev->timestamp_ns;
  return true;
}

/* ---- lifetime ---------------------------------------------------------------- */

static void drop_group(rsub *s) {
  while (s->group) {
    frame_copy *next = s->group->next;
    free(s->group);
    s->group = next;
  }
  s->group_tail = &s->group;
}

static void sub_free(rsub *s) {
  drop_group(s);
  size_t it = 0;
  seen *v;
  while ((v = rstate__map_next(&s->seen, &it))) seen_free(v);
  rstate__map_free(&s->seen);
  free(s->patterns);
  free(s);
}

static rsub *sub_new(const char *const *patterns, size_t n) {
  size_t bytes = n * sizeof(char *);
  for (size_t i = 0; i < n; i++) bytes += strlen(patterns[i]) + 1;
  rsub *s = calloc(1, sizeof *s);
  if (!s || !(s->patterns = malloc(bytes))) {
    free(s);
    return NULL;
  }
  char *text = (char *)(s->patterns + n);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(patterns[i]) + 1;
    s->patterns[i] = memcpy(text, patterns[i], len);
    text += len;
  }
  s->n = n;
  rstate__map_init(&s->seen);
  s->group_tail = &s->group;
  return s;
}

static void unlink_sub(remote *r, rsub *s) {
  for (rsub **p = &r->subs; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      return;
    }
}

static rsub *find(remote *r, uint64_t id) {
  for (rsub *s = r->subs; s; s = s->next)
    if (s->id == id) return s;
  return NULL;
}

/* ---- WATCH and UNWATCH ----------------------------------------------------------- */

static int put_watch(rstate__wire_buf *b, const void *m) { return rstate__wire_put_watch(b, m); }
static int put_unwatch(rstate__wire_buf *b, const void *m) { return rstate__wire_put_unwatch(b, m); }

/* Sends WATCH for s (under lock). The server is always asked for the
 * INITIAL events: they are the values the watch saw at registration. */
static int send_watch(remote *r, rsub *s, uint64_t resume_after) {
  rstate__wire_watch m = {s->watch_req, s->id, RSTATE__WIRE_WATCH_INITIAL, resume_after,
                          (const char *const *)s->patterns, s->n};
  return rstate__remote_send(r, r->gen, put_watch, &m);
}

int rstate__sub_subscribe(remote *r, rstate_sub *handle, const char *const *patterns, size_t n, bool include_initial) {
  rsub *s = sub_new(patterns, n);
  if (!s) return rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory");
  s->handle = handle;
  s->include_initial = include_initial;
  waiter w = {.reply_type = RSTATE__WIRE_WATCH_REPLY};
  pthread_mutex_lock(&r->lock);
  if (r->state != CONN_CONNECTED) {
    int rc = rstate__err(RSTATE_ECLOSED, "rstate_watch: %s: not connected to the server (%s)", r->uri, r->why);
    pthread_mutex_unlock(&r->lock);
    sub_free(s);
    return rc;
  }
  s->id = ++r->next_sub;
  s->instance = r->welcome.instance_id;
  rstate__remote_add_waiter(r, &w);
  s->watch_req = w.req;
  s->waiter = &w;
  s->next = r->subs;
  r->subs = s;
  int rc = send_watch(r, s, 0);
  pthread_mutex_unlock(&r->lock);
  if (rc) {
    pthread_mutex_lock(&r->lock);
    rstate__remote_finish(r, &w, rc);
    pthread_mutex_unlock(&r->lock);
  }
  rc = rstate__remote_wait(r, &w);
  pthread_mutex_lock(&r->lock);
  s->waiter = NULL;
  if (rc) {
    unlink_sub(r, s);
    if (rc == RSTATE_ETIMEDOUT && r->state == CONN_CONNECTED) { /* it may exist on the server: forget it there */
      rstate__wire_unwatch u = {rstate__remote_next_req(r), s->id};
      rstate__remote_send(r, r->gen, put_unwatch, &u);
    }
    sub_free(s);
  }
  pthread_mutex_unlock(&r->lock);
  return rc;
}

void rstate__sub_unsubscribe(remote *r, rstate_sub *handle) {
  pthread_mutex_lock(&r->lock);
  rsub *s = r->subs;
  while (s && s->handle != handle) s = s->next;
  if (s) {
    unlink_sub(r, s);
    if (r->state == CONN_CONNECTED) {
      rstate__wire_unwatch u = {rstate__remote_next_req(r), s->id}; /* no one waits for its OK */
      rstate__remote_send(r, r->gen, put_unwatch, &u);
    }
    sub_free(s);
  }
  pthread_mutex_unlock(&r->lock);
}

/* Sends WATCH for s again on the current connection, resuming after the last
 * revision it received whole when the server is the instance it came from.
 * A WATCH that cannot be sent (larger than this server's max_frame) leaves s
 * broken, to be asked again later. */
static void ask_again(remote *r, rsub *s) {
  if (s->instance != r->welcome.instance_id) {
    s->instance = r->welcome.instance_id;
    s->resume = 0; /* a new server: its revisions are not ours */
  }
  s->watch_req = rstate__remote_next_req(r); /* its answer comes to rstate__sub_frame */
  s->broken = send_watch(r, s, s->resume) != RSTATE_OK;
}

void rstate__sub_resubscribe(remote *r) {
  for (rsub *s = r->subs; s; s = s->next)
    if (!s->waiter) ask_again(r, s); /* (a waiter: its first WATCH failed with the old connection) */
}

void rstate__sub_retry(remote *r) {
  for (rsub *s = r->subs; s && r->state == CONN_CONNECTED; s = s->next)
    if (s->broken && !s->waiter) ask_again(r, s);
}

void rstate__sub_lost(remote *r) {
  for (rsub *s = r->subs; s; s = s->next) {
    drop_group(s);
    s->initial_pending = false;
  }
}

void rstate__sub_error(remote *r, const rstate__wire_error *e) {
  for (rsub *s = r->subs; s; s = s->next)
    if (s->watch_req == e->req) s->broken = true; /* the server refused to take it back: asked again later */
}

void rstate__sub_free_all(remote *r) {
  while (r->subs) {
    rsub *s = r->subs;
    r->subs = s->next;
    sub_free(s);
  }
}

/* ---- events ----------------------------------------------------------------------- */

static bool out_push(evq *o, const rstate_change *c, uint32_t coalesced) {
  if (o->n == o->cap) {
    size_t cap = o->cap ? 2 * o->cap : 16;
    rstate_change *nc = realloc(o->c, cap * sizeof *nc);
    if (nc) o->c = nc;
    uint32_t *ncoal = realloc(o->coalesced, cap * sizeof *ncoal);
    if (ncoal) o->coalesced = ncoal;
    if (!nc || !ncoal) return false;
    o->cap = cap;
  }
  o->c[o->n] = *c;
  o->coalesced[o->n++] = coalesced;
  return true;
}

void rstate__sub_out_free(remote *r) {
  free(r->outq.c);
  free(r->outq.coalesced);
  memset(&r->outq, 0, sizeof r->outq);
}

static bool emit(remote *r, rsub *s, evq *o) {
  if (!o->n) return true;
  bool ok = rstate_host_emit_to(r->host, s->handle, o->c, o->coalesced, o->n) == RSTATE_OK;
  o->n = 0;
  return ok;
}

/* One frame of INITIAL events after a gap: compared with what was seen. */
static bool rebuild_frame(remote *r, rsub *s, const rstate__wire_events *e, evq *o) {
  for (size_t i = 0; i < e->n; i++) {
    const rstate__wire_event *ev = &e->events[i];
    seen *v = seen_get(s, ev->name);
    rstate_change c = {.name = ev->name, .type = ev->type, .new_value = &ev->new_value, .version = ev->version,
                       .revision = e->revision, .timestamp_ns = ev->timestamp_ns};
    uint32_t coalesced = 1;
    rstate__seen was = {v ? v->type : ev->type, v ? v->version : 0, v ? v->updated_ns : 0, v ? &v->value : NULL, false},
                 now = {ev->type, ev->version, ev->timestamp_ns, &ev->new_value, false};
    c.kind = rstate__resync_event(v ? &was : NULL, &now, &coalesced); /* the rule both rebuilding backends share */
    if (!c.kind) {
      v->mark = s->gaps;
      continue;
    }
    if (v) c.old_value = &v->value;
    if (!out_push(o, &c, coalesced)) return false;
  }
  if (!emit(r, s, o)) return false;
  for (size_t i = 0; i < e->n; i++) {
    const rstate__wire_event *ev = &e->events[i];
    if (!seen_set(s, ev)) return false;
    seen_get(s, ev->name)->mark = s->gaps;
  }
  return true;
}

/* After the last frame of a rebuild: a variable seen before and absent now
 * was undefined during the gap. */
static bool rebuild_end(remote *r, rsub *s, uint64_t revision, evq *o) {
  size_t it = 0;
  seen *v;
  while ((v = rstate__map_next(&s->seen, &it))) {
    if (v->mark == s->gaps) continue;
    rstate_change c = {.kind = RSTATE_EVENT_DELETED, .name = v->name, .type = v->type, .old_value = &v->value,
                       .version = v->version, .revision = revision, .timestamp_ns = rstate__realtime_ns()};
    if (!out_push(o, &c, 1)) return false;
  }
  size_t n = o->n;
  char **gone = n ? malloc(n * sizeof *gone) : NULL;
  if (n && !gone) return false;
  for (size_t i = 0; i < n; i++) gone[i] = (char *)o->c[i].name;
  bool ok = emit(r, s, o);
  if (ok) /* the names belong to the entries: take them out first, free them after */
    for (size_t i = 0; i < n; i++) seen_del(s, gone[i]);
  free(gone);
  return ok;
}

/* One frame of a whole group, in order. */
static bool frame_events(remote *r, rsub *s, const rstate__wire_events *e, evq *o) {
  if (s->initial_pending && s->gap) return rebuild_frame(r, s, e, o);
  bool initial = s->initial_pending;
  for (size_t i = 0; i < e->n; i++) {
    const rstate__wire_event *ev = &e->events[i];
    if (initial && !s->include_initial) continue; /* kept as what was seen, not delivered */
    rstate_change c = {.kind = ev->kind, .name = ev->name, .type = ev->type,
                       .old_value = ev->old_value.kind == RSTATE_NONE ? NULL : &ev->old_value,
                       .new_value = ev->new_value.kind == RSTATE_NONE ? NULL : &ev->new_value,
                       .version = ev->version, .revision = e->revision, .timestamp_ns = ev->timestamp_ns,
                       .source = e->source, .meta = e->meta, .n_meta = e->n_meta};
    if (!out_push(o, &c, ev->kind == RSTATE_EVENT_INITIAL ? 0 : ev->coalesced)) return false;
  }
  if (!emit(r, s, o)) return false;
  for (size_t i = 0; i < e->n; i++) {
    const rstate__wire_event *ev = &e->events[i];
    if (ev->kind == RSTATE_EVENT_DELETED)
      seen_del(s, ev->name);
    else if (!seen_set(s, ev))
      return false;
  }
  return true;
}

/* The group is whole: its frames are s->group then last (NULL when the
 * group's frames are all copied). */
static void group_done(remote *r, rsub *s, const rstate__wire_events *last) {
  evq *o = &r->outq; /* kept from group to group: no allocation per event */
  o->n = 0;
  bool ok = true;
  uint64_t revision = s->resume;
  if (s->gap && s->initial_pending) s->gaps++;
  for (frame_copy *f = s->group; f && ok; f = f->next) {
    rstate__wire_events e;
    ok = rstate__wire_decode_events(f->body, f->len, &r->scratch, &e) == RSTATE_OK && frame_events(r, s, &e, o);
    revision = e.revision;
  }
  if (ok && last) {
    ok = frame_events(r, s, last, o);
    revision = last->revision;
  }
  if (ok && s->initial_pending && s->gap) ok = rebuild_end(r, s, revision, o);
  drop_group(s);
  if (!ok) { /* out of memory: the group was not taken whole; the server sends it again after a reconnect */
    rstate__remote_drop(r, "out of memory taking events");
    return;
  }
  s->resume = revision;
  if (s->initial_pending) {
    s->initial_pending = false;
    s->subscribed = true;
    if (s->waiter) rstate__remote_finish(r, s->waiter, RSTATE_OK);
  }
}

static void watch_reply(remote *r, const rstate__wire_watch_reply *m) {
  rsub *s = find(r, m->sub);
  if (!s || m->req != s->watch_req) return;
  if (m->status == RSTATE__WIRE_WATCH_RESUMED) return; /* the missed changes follow */
  s->resume = m->revision;
  s->initial_pending = true;
  s->gap = s->subscribed; /* a reconnect: NEW (new server) or GAP both rebuild the view */
  if (m->n_initial == 0) group_done(r, s, NULL);
}

bool rstate__sub_frame(remote *r, const rstate__wire_msg *m, const rstate__wire_frame *f) {
  if (m->type == RSTATE__WIRE_WATCH_REPLY) {
    watch_reply(r, &m->u.watch_reply);
    return false;
  }
  const rstate__wire_events *e = &m->u.events;
  rsub *s = find(r, e->sub);
  if (!s || s->broken) return false; /* unwatched: frames on their way still come */
  if (!(e->flags & RSTATE__WIRE_MORE) && !s->group) {
    group_done(r, s, e);
    return true;
  }
  frame_copy *c = malloc(sizeof *c + f->len);
  if (!c) {
    rstate__remote_drop(r, "out of memory taking events");
    return false;
  }
  c->next = NULL;
  c->len = f->len;
  memcpy(c->body, f->body, f->len);
  *s->group_tail = c;
  s->group_tail = &c->next;
  if (e->flags & RSTATE__WIRE_MORE) return false;
  group_done(r, s, NULL);
  return true;
}
