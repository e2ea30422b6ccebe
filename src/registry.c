/*
 * registry.c — the index of a store's watches.
 *
 * Exact names map to the list of watches on that name; prefix patterns
 * ("model.*") map, by their prefix, to theirs, and the registry remembers
 * which prefix lengths are in use. A change of a variable therefore costs a
 * lookup of its name plus one lookup per prefix length in use, and then
 * O(watches covering it): never O(all watches). Watches are also kept by id,
 * in id order, for rstate_unwatch and the statistics.
 *
 * Emitting (rstate_host_emit) happens here: the targets of every change are
 * collected, one batch is allocated for them all, and then each node is
 * queued, which cannot fail, so a change reaches every watch or none.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

typedef struct wlist {
  size_t len;
  uint64_t hash;
  rstate__watch **w;
  size_t n, cap;
  char key[]; /* the name or prefix, NUL-terminated */
} wlist;

typedef struct target {
  rstate__watch *w;
  size_t change;
} target;

#define EXACT_SLOTS 1024

struct rstate__registry {
  pthread_mutex_t lock;
  rstate__map exact;
  rstate__map prefix;
  size_t prefix_lens[RSTATE_NAME_MAX + 1]; /* prefix keys of each length */
  rstate__watch **ids;                     /* sorted by id */
  size_t n_ids, cap_ids;
  uint64_t next_id;
  uint64_t serial; /* for watch->mark */
  target *targets; /* scratch for emit, kept to avoid reallocating */
  size_t cap_targets;
  atomic_size_t live;
  /* A look before the lock: how many exact-name lists hash to each slot
   * (255: many, never lowered again) and how many prefix lists exist. A
   * change whose slot is 0, with no prefix list, reaches no watch. */
  _Atomic uint8_t exact_slots[EXACT_SLOTS];
  atomic_size_t prefixes;
};

rstate__registry *rstate__registry_new(void) {
  rstate__registry *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  pthread_mutex_init(&r->lock, NULL);
  rstate__map_init(&r->exact);
  rstate__map_init(&r->prefix);
  r->next_id = 1;
  return r;
}

static void free_lists(rstate__map *m) {
  size_t it = 0;
  wlist *l;
  while ((l = rstate__map_next(m, &it))) {
    free(l->w);
    free(l);
  }
  rstate__map_free(m);
}

void rstate__registry_free(rstate__registry *r) {
  if (!r) return;
  free_lists(&r->exact);
  free_lists(&r->prefix);
  free(r->ids);
  free(r->targets);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

static bool is_prefix(const char *pattern, size_t *len) {
  *len = strlen(pattern);
  if (*len && pattern[*len - 1] == '*') {
    (*len)--;
    return true;
  }
  return false;
}

/* The list for a pattern, created (empty) when create is set; NULL on ENOMEM or absent. */
static wlist *list_for(rstate__registry *r, const char *pattern, bool create) {
  size_t len;
  bool prefix = is_prefix(pattern, &len);
  rstate__map *m = prefix ? &r->prefix : &r->exact;
  uint64_t h = rstate__hash(pattern, len);
  wlist *l = rstate__map_get(m, pattern, len, h);
  if (l || !create) return l;
  l = calloc(1, sizeof *l + len + 1);
  if (!l || !rstate__map_reserve(m, 1)) {
    free(l);
    return NULL;
  }
  memcpy(l->key, pattern, len);
  l->len = len;
  l->hash = h;
  rstate__map_put(m, l->key, len, h, l);
  if (prefix) {
    r->prefix_lens[len]++;
    atomic_fetch_add(&r->prefixes, 1);
  } else {
    uint8_t n = atomic_load(&r->exact_slots[h % EXACT_SLOTS]);
    if (n < 255) atomic_store(&r->exact_slots[h % EXACT_SLOTS], n + 1);
  }
  return l;
}

static bool reserve(void **arr, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap * 2 : 2; /* most names have one or two watches */
  while (c < need) c *= 2;
  void *p = realloc(*arr, c * size);
  if (!p) return false;
  *arr = p;
  *cap = c;
  return true;
}

int rstate__registry_add(rstate__registry *r, rstate__watch *w) {
  pthread_mutex_lock(&r->lock);
  /* make every allocation first, so the adding itself cannot fail; lists
   * created here and left empty by a failure are reused later */
  bool ok = reserve((void **)&r->ids, &r->cap_ids, r->n_ids + 1, sizeof *r->ids);
  for (size_t i = 0; ok && i < w->n_patterns; i++) {
    wlist *l = list_for(r, w->patterns[i], true);
    ok = l && reserve((void **)&l->w, &l->cap, l->n + 1, sizeof *l->w);
  }
  if (!ok) {
    pthread_mutex_unlock(&r->lock);
    return rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory registering the watch");
  }
  for (size_t i = 0; i < w->n_patterns; i++) {
    wlist *l = list_for(r, w->patterns[i], false);
    l->w[l->n++] = w;
  }
  w->id = r->next_id++;
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

static void list_remove(rstate__registry *r, const char *pattern, rstate__watch *w) {
  size_t len;
  bool prefix = is_prefix(pattern, &len);
  wlist *l = list_for(r, pattern, false);
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) {
    if (l->w[i] == w) {
      memmove(&l->w[i], &l->w[i + 1], (l->n - i - 1) * sizeof *l->w); /* keep registration order */
      l->n--;
      break;
    }
  }
  if (l->n) return;
  rstate__map_del(prefix ? &r->prefix : &r->exact, l->key, l->len, l->hash);
  if (prefix) {
    r->prefix_lens[len]--;
    atomic_fetch_sub(&r->prefixes, 1);
  } else {
    uint8_t n = atomic_load(&r->exact_slots[l->hash % EXACT_SLOTS]);
    if (n < 255) atomic_store(&r->exact_slots[l->hash % EXACT_SLOTS], n - 1);
  }
  free(l->w);
  free(l);
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
  for (size_t p = 0; p < w->n_patterns; p++) list_remove(r, w->patterns[p], w);
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
    for (size_t p = 0; p < w->n_patterns; p++) list_remove(r, w->patterns[p], w);
    w->drain_next = head;
    head = w;
  }
  r->n_ids = 0;
  atomic_store(&r->live, 0);
  pthread_mutex_unlock(&r->lock);
  return head;
}

/* Calls fn(w, ud) once for each watch covering name; stops when fn returns false. */
static bool each_covering(rstate__registry *r, const char *name, size_t len, uint64_t hash,
                          bool (*fn)(rstate__watch *, void *), void *ud) {
  uint64_t serial = ++r->serial;
  wlist *l = r->exact.count ? rstate__map_get(&r->exact, name, len, hash ? hash : rstate__hash(name, len)) : NULL;
  for (size_t i = 0; l && i < l->n; i++) {
    l->w[i]->mark = serial;
    if (!fn(l->w[i], ud)) return false;
  }
  if (!r->prefix.count) return true;
  for (size_t plen = 0; plen <= len; plen++) {
    if (!r->prefix_lens[plen]) continue;
    wlist *pl = rstate__map_get(&r->prefix, name, plen, rstate__hash(name, plen));
    for (size_t i = 0; pl && i < pl->n; i++) {
      rstate__watch *w = pl->w[i];
      if (w->mark == serial) continue; /* covered twice: one event */
      w->mark = serial;
      if (!fn(w, ud)) return false;
    }
  }
  return true;
}

static bool count_one(rstate__watch *w, void *ud) {
  if (w->published) (*(size_t *)ud)++;
  return true;
}

size_t rstate__registry_count(rstate__registry *r, const char *name) {
  size_t n = 0, len = strlen(name);
  if (len > RSTATE_NAME_MAX) return 0; /* no variable has such a name */
  pthread_mutex_lock(&r->lock);
  each_covering(r, name, len, 0, count_one, &n);
  pthread_mutex_unlock(&r->lock);
  return n;
}

typedef struct collect {
  rstate__registry *r;
  size_t change, n;
} collect;

static bool collect_one(rstate__watch *w, void *ud) {
  collect *c = ud;
  rstate__registry *r = c->r;
  if (!reserve((void **)&r->targets, &r->cap_targets, c->n + 1, sizeof *r->targets)) return false;
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
    if (!each_covering(r, ch->name, ch->name_hash ? ch->name_len : strlen(ch->name), ch->name_hash, collect_one, &c)) {
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
    for (size_t j = 0; j < c.n; j++) {
      rstate__node *node = rstate__batch_node(b, j);
      node->rec = rstate__batch_record(b, r->targets[j].change);
      rstate__watch_push(r->targets[j].w, node);
    }
  }
  pthread_mutex_unlock(&r->lock);
  return RSTATE_OK;
}
