/*
 * subs.c — a client's subscriptions: the patterns each covers, where it
 * stands in the history, and which clients the loop pumps (the active list).
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"

void rstate__srv_sub_free(sub *s) {
  if (!s) return;
  rstate__cursor_set(&s->cursor, NULL);
  rstate__coalesced_free(&s->pend);
  rstate__map_free(&s->exact);
  free(s->prefixes);
  free(s->prefix_lens);
  free(s->patterns);
  free(s->text);
  free(s);
}

bool rstate__srv_covers(const sub *s, const rstate__hchange *h) {
  if (s->all) return true;
  if (s->exact.count && rstate__map_get(&s->exact, h->name, h->name_len, h->hash)) return true;
  for (size_t i = 0; i < s->n_prefixes; i++)
    if (h->name_len >= s->prefix_lens[i] && memcmp(h->name, s->prefixes[i], s->prefix_lens[i]) == 0) return true;
  return false;
}

int rstate__srv_patterns_check(const char *const *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = rstate__watch_pattern_check(p[i]);
    if (rc) return rc;
  }
  return RSTATE_OK;
}

/* A subscription over copies of the patterns (checked already). */
sub *rstate__srv_sub_new(uint64_t id, const char *const *patterns, size_t n) {
  sub *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->id = id;
  rstate__map_init(&s->exact);
  rstate__coalesced_init(&s->pend);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += strlen(patterns[i]) + 1;
  s->text = malloc(bytes);
  s->patterns = malloc(n * sizeof *s->patterns);
  s->prefixes = malloc(n * sizeof *s->prefixes);
  s->prefix_lens = malloc(n * sizeof *s->prefix_lens);
  if (!s->text || !s->patterns || !s->prefixes || !s->prefix_lens || !rstate__map_reserve(&s->exact, n)) {
    rstate__srv_sub_free(s);
    return NULL;
  }
  char *p = s->text;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(patterns[i]), key;
    memcpy(p, patterns[i], len + 1);
    s->patterns[s->n_patterns++] = p;
    if (rstate__pattern_is_prefix(p, &key)) {
      if (!key) s->all = true;
      s->prefixes[s->n_prefixes] = p;
      s->prefix_lens[s->n_prefixes++] = key;
    } else {
      uint64_t h = rstate__hash(p, key);
      if (!rstate__map_get(&s->exact, p, key, h)) rstate__map_put(&s->exact, p, key, h, p);
    }
    p += len + 1;
  }
  return s;
}

sub **rstate__srv_find_sub(client *c, uint64_t id) {
  for (size_t i = 0; i < c->n_subs; i++)
    if (c->subs[i]->id == id) return &c->subs[i];
  return NULL;
}

void rstate__srv_remove_sub(rstate_server *srv, client *c, struct sub **slot) {
  rstate__subindex_remove(&srv->index, *slot, (*slot)->patterns, (*slot)->n_patterns);
  rstate__srv_sub_free(*slot);
  *slot = c->subs[--c->n_subs];
  srv->n_subs--;
}

/* A client is pumped at the end of the loop's turn while it is active: it
 * had a socket event, a change one of its subscriptions covers, a new
 * subscription, or it still has something to send (resync). The others
 * cost nothing per change. */
void rstate__srv_activate(rstate_server *srv, client *c) {
  if (c->active) return;
  c->active = true;
  c->aprev = NULL;
  c->anext = srv->active;
  if (srv->active) srv->active->aprev = c;
  srv->active = c;
}

void rstate__srv_deactivate(rstate_server *srv, client *c) {
  if (!c->active) return;
  c->active = false;
  if (c->aprev)
    c->aprev->anext = c->anext;
  else
    srv->active = c->anext;
  if (c->anext) c->anext->aprev = c->aprev;
}

static bool activate_owner(void *item, void *ud) {
  rstate__srv_activate(ud, ((sub *)item)->owner);
  return true;
}

/* Activates the clients with a subscription that covers a change of e. */
void rstate__srv_activate_covered(rstate_server *srv, const rstate__hentry *e) {
  for (size_t i = 0; i < e->n; i++) {
    const rstate__hchange *h = &e->changes[i];
    rstate__subindex_each(&srv->index, h->name, h->name_len, h->hash, activate_owner, srv);
  }
}

/* Adds s to c at entry e (its cursor); false on ENOMEM. */
bool rstate__srv_attach(rstate_server *srv, client *c, sub *s, rstate__hentry *e) {
  s->owner = c;
  if (!rstate__subindex_add(&srv->index, s, s->patterns, s->n_patterns)) return false;
  rstate__cursor_set(&s->cursor, e);
  c->subs[c->n_subs++] = s;
  srv->n_subs++;
  rstate__srv_activate(srv, c);
  return true;
}

/* At the end of the loop's turn, once srv->synced is the tail: the
 * subscriptions that have had everything give up their own cursors; true
 * when c has nothing left to send and can leave the active list. */
bool rstate__srv_resync(rstate_server *srv, client *c) {
  bool idle = !c->more;
  for (size_t i = 0; i < c->n_subs; i++) {
    sub *s = c->subs[i];
    if (s->cursor == srv->synced && !s->pend.live) rstate__cursor_set(&s->cursor, NULL);
    if (s->cursor || s->pend.live) idle = false;
  }
  return idle;
}
