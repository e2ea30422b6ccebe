/*
 * history.h — what a server remembers of the store's changes (history.c).
 *
 * Every revision the store emits becomes one entry: a single allocation
 * holding the revision, source, meta and each change (name, type, old and new
 * value, version, timestamp), built by the server's tap under the backend's
 * lock. The server thread keeps entries in a list, oldest first, so clients
 * can resume after a reconnect and slow clients can be streamed at their own
 * pace; it frees the oldest once enough newer events are kept and no
 * subscription still needs it.
 *
 * Coalescing (PROTOCOL.md 6.2) lives here too: a subscription that fell too
 * far behind folds its pending entries into a list of merged events, one per
 * run of consecutive CHANGED events of a variable.
 *
 * Entries are immutable once built. Everything below except
 * rstate__hentry_new runs on the server thread only, without locks.
 */
#ifndef RSTATE_HISTORY_H
#define RSTATE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"
#include "reactivestate.h"
#include "reactivestate/backend.h"

typedef struct rstate__hchange {
  const char *name; /* inside the entry */
  size_t name_len;
  uint64_t hash; /* rstate_name_hash(name, name_len) */
  rstate_event_kind kind;
  rstate_type type;
  rstate_value old_value; /* RSTATE_NONE for DEFINED; strings inside the entry */
  rstate_value new_value; /* RSTATE_NONE for DELETED */
  uint64_t version;
  int64_t timestamp_ns;
} rstate__hchange;

typedef struct rstate__hentry {
  struct rstate__hentry *next; /* the next revision (history list or incoming queue) */
  uint64_t revision;
  const char *source; /* NULL: none */
  const rstate_meta *meta;
  size_t n_meta;
  size_t n;           /* changes */
  size_t bytes;       /* the allocation's size: what this entry weighs in a backlog */
  uint64_t cum_bytes; /* bytes of every entry appended to the history up to this one */
  uint32_t refs;      /* the history list, coalesced events pointing here */
  uint32_t cursors;   /* subscriptions whose cursor is this entry */
  rstate__hchange changes[];
} rstate__hentry;

/* One allocation holding copies of the n changes of one revision (n >= 1),
 * refs 1. NULL on ENOMEM. Any thread (the tap's prepare). */
rstate__hentry *rstate__hentry_new(const rstate_change *changes, size_t n);
/* Drops a reference; frees the entry at 0. NULL: no-op. */
void rstate__hentry_unref(rstate__hentry *e);

/* The list, oldest first. head is never NULL: it is the newest entry every
 * subscription has had (initially an entry of no changes at the revision the
 * server started at), so every revision above head->revision is held — the
 * window a resume may start in. */
typedef struct rstate__history {
  rstate__hentry *head, *tail;
  size_t keep;          /* events to keep for resuming */
  uint64_t max_bytes;   /* bytes to keep at most (the newest entry is kept whatever it weighs) */
  uint64_t forgotten;   /* entries freed for want of room under max_bytes */
  size_t events;        /* events of the entries after head */
  uint64_t total_bytes; /* cum_bytes of the tail */
} rstate__history;

/* RSTATE_ENOMEM (with a sentence) when the first entry cannot be made. */
int rstate__history_init(rstate__history *h, size_t keep, uint64_t max_bytes, uint64_t revision);
/* The bytes of the entries a resume can replay (those after the head). */
static inline uint64_t rstate__history_bytes(const rstate__history *h) {
  return h->tail->cum_bytes - h->head->cum_bytes;
}
void rstate__history_free(rstate__history *h);
/* Appends an entry (taking its reference); an entry whose revision is not
 * above the tail's (emitted before the server read its starting revision)
 * is already known to everyone and is dropped. */
void rstate__history_push(rstate__history *h, rstate__hentry *e);
/* Frees the oldest entries, while no cursor is on them, until the entries
 * after the head hold at most keep events and max_bytes bytes (the newest
 * entry stays replayable whatever it weighs). Returns how many it freed
 * that keep alone would have kept (the byte bound bit). */
size_t rstate__history_trim(rstate__history *h);
/* The last entry whose revision is <= revision, searching forward from
 * start (NULL: the head). */
rstate__hentry *rstate__history_find(const rstate__history *h, rstate__hentry *start, uint64_t revision);

/* A cursor: the last entry a subscription has had. Holds it (and so every
 * later one) in the history. */
static inline void rstate__cursor_set(rstate__hentry **cur, rstate__hentry *e) {
  if (*cur) {
    (*cur)->cursors--;
    rstate__hentry_unref(*cur);
  }
  *cur = e;
  if (e) {
    e->cursors++;
    e->refs++;
  }
}

/* ---- coalescing ------------------------------------------------------------ */

/* One event of a coalesced list: the change idx of entry e, standing for
 * coalesced changes, with the old value of change first_idx of first. */
typedef struct rstate__cevent {
  rstate__hentry *e, *first;
  uint32_t idx, first_idx;
  uint32_t coalesced;
  bool dead; /* merged into a later one */
} rstate__cevent;

typedef struct rstate__coalesced {
  rstate__cevent *ev; /* in increasing revision order, dead ones skipped */
  size_t n, cap, live;
  rstate__map last; /* name -> 1 + index of the variable's last event in ev */
} rstate__coalesced;

void rstate__coalesced_init(rstate__coalesced *c);
/* Drops every event (and the references they hold). */
void rstate__coalesced_clear(rstate__coalesced *c);
void rstate__coalesced_free(rstate__coalesced *c);
/* Adds the changes of e picked by cover (indices in idx, k of them): a
 * CHANGED event merges with the variable's last event when that is a
 * CHANGED one. *merged gets how many merged. false on ENOMEM (nothing
 * added). */
bool rstate__coalesced_add(rstate__coalesced *c, rstate__hentry *e, const uint32_t *idx, size_t k, size_t *merged);

#endif /* RSTATE_HISTORY_H */
