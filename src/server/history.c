/*
 * history.c — the server's memory of the store's changes, and the merging
 * of a slow client's pending events (see history.h).
 *
 * An entry is one allocation so the tap, which runs under the backend's lock
 * on the setter's thread, costs one malloc and a few copies; the server
 * thread then owns it and shares it, by reference count, between the history
 * list and the coalesced events that still point into it.
 */
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "util/util.h"

/* ---- entries ----------------------------------------------------------------- */

static size_t str_bytes(const char *s) { return s ? strlen(s) + 1 : 0; }

static size_t value_bytes(const rstate_value *v) { return v && v->kind == RSTATE_STRING ? v->u.s.len + 1 : 0; }

/* Copies a string to *p and advances it. */
static const char *put_str(char **p, const char *s, size_t len) {
  char *d = *p;
  memcpy(d, s, len);
  d[len] = '\0';
  *p += len + 1;
  return d;
}

static rstate_value put_value(char **p, const rstate_value *v) {
  if (!v) return (rstate_value){.kind = RSTATE_NONE};
  rstate_value out = *v;
  if (v->kind == RSTATE_STRING) out.u.s.ptr = put_str(p, v->u.s.ptr, v->u.s.len);
  return out;
}

rstate__hentry *rstate__hentry_new(const rstate_change *changes, size_t n) {
  const rstate_change *c0 = &changes[0];
  size_t bytes = sizeof(rstate__hentry) + n * sizeof(rstate__hchange) + c0->n_meta * sizeof(rstate_meta);
  bytes += str_bytes(c0->source);
  for (size_t i = 0; i < c0->n_meta; i++) bytes += str_bytes(c0->meta[i].key) + str_bytes(c0->meta[i].value);
  for (size_t i = 0; i < n; i++) {
    size_t len = changes[i].name_len ? changes[i].name_len : strlen(changes[i].name);
    bytes += len + 1 + value_bytes(changes[i].old_value) + value_bytes(changes[i].new_value);
  }
  rstate__hentry *e = malloc(bytes);
  if (!e) return NULL;
  e->next = NULL;
  e->revision = c0->revision;
  e->n = n;
  e->n_meta = c0->n_meta;
  e->bytes = bytes;
  e->cum_bytes = 0;
  e->refs = 1;
  e->cursors = 0;
  rstate_meta *meta = (rstate_meta *)(e->changes + n);
  char *p = (char *)(meta + c0->n_meta);
  e->meta = c0->n_meta ? meta : NULL;
  e->source = c0->source ? put_str(&p, c0->source, strlen(c0->source)) : NULL;
  for (size_t i = 0; i < c0->n_meta; i++) {
    meta[i].key = put_str(&p, c0->meta[i].key, strlen(c0->meta[i].key));
    meta[i].value = put_str(&p, c0->meta[i].value, strlen(c0->meta[i].value));
  }
  for (size_t i = 0; i < n; i++) {
    const rstate_change *c = &changes[i];
    rstate__hchange *h = &e->changes[i];
    h->name_len = c->name_len ? c->name_len : strlen(c->name);
    h->name = put_str(&p, c->name, h->name_len);
    h->hash = c->name_hash ? c->name_hash : rstate_name_hash(h->name, h->name_len);
    h->kind = c->kind;
    h->type = c->type;
    h->old_value = put_value(&p, c->old_value);
    h->new_value = put_value(&p, c->new_value);
    h->version = c->version;
    h->timestamp_ns = c->timestamp_ns;
  }
  return e;
}

void rstate__hentry_unref(rstate__hentry *e) {
  if (e && --e->refs == 0) free(e);
}

/* ---- the list ---------------------------------------------------------------- */

int rstate__history_init(rstate__history *h, size_t keep, uint64_t max_bytes, uint64_t revision) {
  memset(h, 0, sizeof *h);
  rstate__hentry *e = calloc(1, sizeof *e);
  if (!e) return rstate__err(RSTATE_ENOMEM, "rstate_server_start: out of memory");
  e->revision = revision;
  e->refs = 1;
  h->head = h->tail = e;
  h->keep = keep;
  h->max_bytes = max_bytes;
  return RSTATE_OK;
}

void rstate__history_free(rstate__history *h) {
  rstate__hentry *e = h->head;
  while (e) {
    rstate__hentry *next = e->next;
    rstate__hentry_unref(e);
    e = next;
  }
  memset(h, 0, sizeof *h);
}

void rstate__history_push(rstate__history *h, rstate__hentry *e) {
  e->next = NULL;
  if (e->revision <= h->tail->revision) {
    rstate__hentry_unref(e);
    return;
  }
  h->total_bytes += e->bytes;
  e->cum_bytes = h->total_bytes;
  h->tail->next = e;
  h->tail = e;
  h->events += e->n;
}

size_t rstate__history_trim(rstate__history *h) {
  size_t by_bytes = 0;
  while (h->head != h->tail && h->head->cursors == 0) {
    bool events_over = h->events - h->head->next->n >= h->keep;
    bool bytes_over = h->head->next != h->tail && rstate__history_bytes(h) > h->max_bytes;
    if (!events_over && !bytes_over) break;
    if (!events_over) by_bytes++;
    rstate__hentry *old = h->head;
    h->head = old->next;
    h->events -= h->head->n;
    old->next = NULL; /* a coalesced event may still hold it: nothing after it is its to reach */
    rstate__hentry_unref(old);
  }
  h->forgotten += by_bytes;
  return by_bytes;
}

rstate__hentry *rstate__history_find(const rstate__history *h, rstate__hentry *start, uint64_t revision) {
  rstate__hentry *e = start ? start : h->head;
  while (e->next && e->next->revision <= revision) e = e->next;
  return e;
}

/* ---- coalescing -------------------------------------------------------------- */

void rstate__coalesced_init(rstate__coalesced *c) {
  memset(c, 0, sizeof *c);
  rstate__map_init(&c->last);
}

void rstate__coalesced_clear(rstate__coalesced *c) {
  for (size_t i = 0; i < c->n; i++) {
    if (c->ev[i].dead) continue;
    rstate__hentry_unref(c->ev[i].e);
    rstate__hentry_unref(c->ev[i].first);
  }
  c->n = c->live = 0;
  if (c->last.count) {
    rstate__map_free(&c->last);
    rstate__map_init(&c->last);
  }
}

void rstate__coalesced_free(rstate__coalesced *c) {
  rstate__coalesced_clear(c);
  rstate__map_free(&c->last);
  free(c->ev);
  memset(c, 0, sizeof *c);
}

/* Squeezes out dead events and renumbers the map. */
static void compact(rstate__coalesced *c) {
  size_t k = 0;
  for (size_t i = 0; i < c->n; i++) {
    if (c->ev[i].dead) continue;
    c->ev[k++] = c->ev[i];
  }
  c->n = k;
  /* the map's values are indices: rebuild them from the events, last one wins */
  for (size_t i = 0; i < c->n; i++) {
    const rstate__hchange *h = &c->ev[i].e->changes[c->ev[i].idx];
    rstate__map_del(&c->last, h->name, h->name_len, h->hash);
    rstate__map_put(&c->last, h->name, h->name_len, h->hash, (void *)(uintptr_t)(i + 1));
  }
}

bool rstate__coalesced_add(rstate__coalesced *c, rstate__hentry *e, const uint32_t *idx, size_t k, size_t *merged) {
  *merged = 0;
  if (c->n && c->n - c->live > c->live) compact(c);
  if (c->n + k > c->cap) {
    size_t cap = c->cap ? c->cap : 16;
    while (cap < c->n + k) cap *= 2;
    rstate__cevent *ev = realloc(c->ev, cap * sizeof *ev);
    if (!ev) return false;
    c->ev = ev;
    c->cap = cap;
  }
  if (!rstate__map_reserve(&c->last, k)) return false;
  for (size_t j = 0; j < k; j++) {
    const rstate__hchange *h = &e->changes[idx[j]];
    size_t prev = (size_t)(uintptr_t)rstate__map_del(&c->last, h->name, h->name_len, h->hash);
    rstate__cevent *ce = &c->ev[c->n];
    *ce = (rstate__cevent){.e = e, .first = e, .idx = idx[j], .first_idx = idx[j], .coalesced = 1};
    if (prev && h->kind == RSTATE_EVENT_CHANGED) {
      rstate__cevent *p = &c->ev[prev - 1];
      if (p->e->changes[p->idx].kind == RSTATE_EVENT_CHANGED) {
        /* keep the first old value; everything else from this change */
        ce->first = p->first;
        ce->first_idx = p->first_idx;
        ce->coalesced = p->coalesced + 1;
        rstate__hentry_unref(p->e);
        p->dead = true;
        c->live--;
        (*merged)++;
        e->refs++; /* ce->e; ce->first took over p's reference */
      } else {
        e->refs += 2;
      }
    } else {
      e->refs += 2;
    }
    rstate__map_put(&c->last, h->name, h->name_len, h->hash, (void *)(uintptr_t)(c->n + 1));
    c->n++;
    c->live++;
  }
  return true;
}
