/*
 * registry.c — the index of a store's watches.
 *
 * Which watches cover a name is subindex.c's: a change of a variable costs
 * a lookup of its name plus one lookup per prefix length in use, and then
 * O(watches covering it), never O(all watches). Watches are also kept by
 * id, in id order, for rstate_unwatch and the statistics.
 *
 * The watches' side of emitting is here (rstate__registry_emit, which
 * rstate_host_emit in watch.c calls): the targets of every change are
 * collected, one batch is allocated for them all, and then each node is
 * queued, which cannot fail, so a change reaches every watch or none.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "types/types.h"

typedef struct target {
  rstate__watch *w;
  size_t change;
} target;

#define EXACT_SLOTS 1024
#define STRIPE_RUN 16

struct rstate__registry {
  pthread_mutex_t lock;
  rstate__subindex index;
  rstate__watch **ids; /* sorted by id */
  size_t n_ids, cap_ids;
  uint64_t next_id;
  uint64_t serial; /* for watch->mark */
  target *targets; /* scratch for emit, kept to avoid reallocating */
  size_t cap_targets;
  atomic_size_t live;
  /* A look before the lock: how many exact patterns hash to each slot
   * (255: many, never lowered again) and how many prefix patterns exist. A
   * change whose slot is 0, with no prefix pattern, reaches no watch. */
  _Atomic uint8_t exact_slots[EXACT_SLOTS];
  atomic_size_t prefixes;
};

rstate__registry *rstate__registry_new(void) {
  rstate__registry *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  pthread_mutex_init(&r->lock, NULL);
  rstate__subindex_init(&r->index);
  r->next_id = 1;
  return r;
}

void rstate__registry_free(rstate__registry *r) {
  if (!r) return;
  rstate__subindex_free(&r->index);
  free(r->ids);
  free(r->targets);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* Counts w's patterns in (d = 1) or out (d = -1) of the look before the
 * lock. */
static void count_patterns(rstate__registry *r, const rstate__watch *w, int d) {
  for (size_t i = 0; i < w->n_patterns; i++) {
    size_t len;
    if (rstate__pattern_is_prefix(w->patterns[i], &len)) {
      atomic_fetch_add(&r->prefixes, (size_t)(ptrdiff_t)d);
      continue;
    }
    _Atomic uint8_t *slot = &r->exact_slots[rstate__hash(w->patterns[i], len) % EXACT_SLOTS];
    uint8_t n = atomic_load(slot);
    if (n < 255) atomic_store(slot, (uint8_t)(n + d));
  }
}

int rstate__registry_add(rstate__registry *r, rstate__watch *w) {
  pthread_mutex_lock(&r->lock);
  /* the id's room first: once the index took the watch, nothing can fail */
  if (!RSTATE__GROW(r->ids, r->cap_ids, r->n_ids + 1, 2) ||
      !rstate__subindex_add(&r->index, w, (const char *const *)w->patterns, w->n_patterns)) {
    pthread_mutex_unlock(&r->lock);
    return rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory registering the watch");
  }
  count_patterns(r, w, 1);
  w->id = r->next_id++;
  /* watches registered one after another share a stripe, STRIPE_RUN at a
   * time: a name's watches are kept in the order added, so a change
   * queued on many of them takes each stripe's lock once per run (emit) */
  w->stripe = (uint8_t)((w->id / STRIPE_RUN) % RSTATE_STRIPES);
  r->ids[r->n_ids++] = w; /* ids only grow, so the array stays sorted */
  atomic_fetch_add(&r->live, 1);
  pthread_mutex_unlock(&r->lock);
  return RSTATE_OK;
}

static size_t id_index(rstate__registry *r, rstate_watch_id id) {
  size_t lo = 0, hi = r->n_ids;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->ids[mid]->id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < r->n_ids && r->ids[lo]->id == id ? lo : SIZE_MAX;
}

static void unindex(rstate__registry *r, rstate__watch *w) {
  rstate__subindex_remove(&r->index, w, (const char *const *)w->patterns, w->n_patterns);
  count_patterns(r, w, -1);
}

bool rstate__registry_remove(rstate__registry *r, rstate__watch *w) {
  pthread_mutex_lock(&r->lock);
  size_t i = id_index(r, w->id);
  if (i == SIZE_MAX) {
    pthread_mutex_unlock(&r->lock);
    return false;
  }
  memmove(&r->ids[i], &r->ids[i + 1], (r->n_ids - i - 1) * sizeof *r->ids);
  r->n_ids--;
  unindex(r, w);
  atomic_fetch_sub(&r->live, 1);
  pthread_mutex_unlock(&r->lock);
  return true;
}

void rstate__registry_publish(rstate__registry *r, rstate__watch *w) {
  pthread_mutex_lock(&r->lock);
  w->published = true;
  pthread_mutex_unlock(&r->lock);
}

rstate__watch *rstate__registry_find(rstate__registry *r, rstate_watch_id id) {
  pthread_mutex_lock(&r->lock);
  size_t i = id_index(r, id);
  rstate__watch *w = i == SIZE_MAX || !r->ids[i]->published ? NULL : r->ids[i];
  if (w) rstate__watch_ref(w);
  pthread_mutex_unlock(&r->lock);
  return w;
}

rstate__watch *rstate__registry_take_all(rstate__registry *r) {
  pthread_mutex_lock(&r->lock);
  rstate__watch *head = NULL;
  for (size_t i = r->n_ids; i-- > 0;) {
    rstate__watch *w = r->ids[i];
    unindex(r, w);
    w->pass_next = head;
    head = w;
  }
  r->n_ids = 0;
  atomic_store(&r->live, 0);
  pthread_mutex_unlock(&r->lock);
  return head;
}

/* Whether this is w's first visit for the name being looked up (under the
 * registry lock, each lookup under a new serial): a watch whose patterns
 * cover a name twice gets one event. */
static inline bool first_visit(rstate__registry *r, rstate__watch *w) {
  if (w->mark == r->serial) return false;
  w->mark = r->serial;
  return true;
}

/* The visitors below go to rstate__subindex_each by name, so that it
 * inlines them: the walk runs once per watch of every change. */
typedef struct count {
  rstate__registry *r;
  size_t n;
} count;

static bool count_one(void *item, void *ud) {
  count *c = ud;
  rstate__watch *w = item;
  if (first_visit(c->r, w) && w->published) c->n++;
  return true;
}

size_t rstate__registry_count(rstate__registry *r, const char *name) {
  size_t len = strlen(name);
  if (len > RSTATE_NAME_MAX) return 0; /* no variable has such a name */
  count c = {r, 0};
  pthread_mutex_lock(&r->lock);
  r->serial++;
  rstate__subindex_each(&r->index, name, len, rstate__hash(name, len), count_one, &c);
  pthread_mutex_unlock(&r->lock);
  return c.n;
}

typedef struct collect {
  rstate__registry *r;
  size_t change, n;
} collect;

static inline bool collect_one(void *item, void *ud) {
  collect *c = ud;
  rstate__registry *r = c->r;
  rstate__watch *w = item;
  if (!first_visit(r, w)) return true;
  if (!RSTATE__GROW(r->targets, r->cap_targets, c->n + 1, 2)) return false; /* most names have one or two watches */
  r->targets[c->n].w = w;
  r->targets[c->n++].change = c->change;
  return true;
}

bool rstate__registry_live(rstate__registry *r) { return atomic_load_explicit(&r->live, memory_order_acquire) != 0; }

/* Whether some change may reach a watch; false means none can, without
 * taking the lock. Called under the backend's serialization: a watch
 * registered after this look takes its snapshot after the change. */
static bool may_reach(rstate__registry *r, const rstate_change *changes, size_t n) {
  if (atomic_load_explicit(&r->prefixes, memory_order_acquire)) return true;
  for (size_t i = 0; i < n; i++) {
    uint64_t h = changes[i].name_hash ? changes[i].name_hash : rstate__hash(changes[i].name, strlen(changes[i].name));
    if (atomic_load_explicit(&r->exact_slots[h % EXACT_SLOTS], memory_order_acquire)) return true;
  }
  return false;
}

int rstate__registry_emit(rstate__registry *r, const rstate_change *changes, size_t n, uint32_t depth) {
  if (!may_reach(r, changes, n)) return RSTATE_OK;
  pthread_mutex_lock(&r->lock);
  collect c = {r, 0, 0};
  for (c.change = 0; c.change < n; c.change++) {
    const rstate_change *ch = &changes[c.change];
    size_t len = ch->name_hash ? ch->name_len : strlen(ch->name);
    r->serial++;
    if (!rstate__subindex_each(&r->index, ch->name, len, ch->name_hash ? ch->name_hash : rstate__hash(ch->name, len),
                               collect_one, &c)) {
      pthread_mutex_unlock(&r->lock);
      return rstate__err(RSTATE_ENOMEM, "%s: out of memory queuing the change for its watchers",
                         changes[c.change].name);
    }
  }
  if (c.n) {
    rstate__batch *b = rstate__batch_new(changes, n, c.n, depth);
    if (!b) {
      pthread_mutex_unlock(&r->lock);
      return RSTATE_ENOMEM;
    }
    rstate__stripe *held = NULL; /* the stripe of the run of watches being queued on */
    rstate__node *unused = NULL;
    for (size_t j = 0; j < c.n; j++) {
      rstate__watch *w = r->targets[j].w;
      rstate__node *node = rstate__batch_node(b, j);
      node->rec = rstate__batch_record(b, r->targets[j].change);
      rstate__stripe *st = rstate__watch_uses_inbox(w) ? NULL : rstate__watch_stripe(w);
      if (held && held != st) pthread_mutex_unlock(&held->lock);
      if (!st) {
        held = NULL;
        rstate__watch_push(w, node);
        continue;
      }
      if (held != st) pthread_mutex_lock(&st->lock);
      held = st;
      if ((node = rstate__watch_push_locked(w, node))) {
        node->next = unused;
        unused = node;
      }
    }
    if (held) pthread_mutex_unlock(&held->lock);
    while (unused) {
      rstate__node *next = unused->next;
      rstate__node_release(unused);
      unused = next;
    }
  }
  pthread_mutex_unlock(&r->lock);
  return RSTATE_OK;
}
