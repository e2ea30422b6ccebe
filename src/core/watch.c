/*
 * watch.c — watches: registration with a gap-free initial snapshot, the
 * per-watch queue, debounce merging, and delivery to callbacks.
 *
 * Every watch is serialized on its own. Changes are queued on it (push, under
 * the registry lock, in revision order); the first thread to find it idle
 * claims it and drains its queue: for an inline watch the thread that made
 * the change, after the store's locks are released; for a queued or debounced
 * watch the dispatcher (dispatch.c). A queued watch without debounce takes
 * its changes through a lock-free inbox instead (inbox_push), and the
 * setter that finds it empty hands it to the dispatcher. A change made inside a callback is only
 * queued: the delivery loop of the thread runs it after the callback returns,
 * so there is no recursion, and a feedback chain longer than
 * RSTATE_CASCADE_LIMIT is refused with RSTATE_ELIMIT.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* What this thread is doing: the inline watches it claimed and must drain,
 * and whether (and how deep in a feedback chain) it is inside a callback. */
static _Thread_local struct {
  rstate__watch *head, *tail;
  int in_callback;
  uint32_t depth;
  rstate__watch *current; /* the watch whose fn or filter runs on this thread */
} tls;

#define STRIPE(w) rstate__watch_stripe(w)

bool rstate__in_callback(void) { return tls.in_callback > 0; }

int rstate__cascade_check(const char *fn, const char *name) {
  if (tls.in_callback && tls.depth + 1 > RSTATE_CASCADE_LIMIT)
    return rstate__err(RSTATE_ELIMIT,
                       "%s: %s: refused: %d callbacks in a row each changed a variable another one watches "
                       "(a feedback loop?)",
                       fn, name ? name : "?", RSTATE_CASCADE_LIMIT);
  return RSTATE_OK;
}

uint32_t rstate__emit_depth(void) { return tls.in_callback ? tls.depth + 1 : 0; }

static int emit(rstate_store *s, const rstate_change *changes, size_t n) {
  if (!rstate__registry_live(s->registry)) return RSTATE_OK;
  return rstate__registry_emit(s->registry, changes, n, rstate__emit_depth());
}

int rstate_host_emit(rstate_host *h, const rstate_change *changes, size_t n) {
  if (!h || !changes || !n) return RSTATE_OK;
  if (atomic_load_explicit(&h->store->n_taps, memory_order_relaxed))
    return rstate__tap_emit(h->store, changes, n, emit);
  return emit(h->store, changes, n);
}

/* Emitted inside a callback (a backend reading its connection while the
 * callback waits for its own write), events count as that callback's
 * changes: one more link of a feedback chain, as for rstate_host_emit. */
int rstate_host_emit_to(rstate_host *h, rstate_sub *sub, const rstate_change *changes, const uint32_t *coalesced,
                        size_t n) {
  if (!h || !sub || !changes || !n) return RSTATE_OK;
  if (rstate__tap_is_sub(h->store, sub)) return rstate__tap_feed(h->store, changes, n);
  rstate__watch *w = (rstate__watch *)sub;
  rstate__batch *b = rstate__batch_new(changes, n, n, rstate__emit_depth());
  if (!b) return RSTATE_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    rstate__node *node = rstate__batch_node(b, i);
    node->rec = rstate__batch_record(b, i);
    node->coalesced = coalesced ? coalesced[i] : 0;
    rstate__watch_push(w, node);
  }
  return RSTATE_OK;
}

void rstate_host_deliver(rstate_host *h) {
  (void)h;
  rstate__deliver_claimed();
}

rstate_store *rstate_host_store(rstate_host *h) { return h ? h->store : NULL; }

/* ---- lifetime ------------------------------------------------------------ */

void rstate__watch_ref(rstate__watch *w) { atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed); }

static void release_list(rstate__node *n) {
  while (n) {
    rstate__node *next = n->next;
    rstate__node_release(n);
    n = next;
  }
}

void rstate__watch_unref(rstate__watch *w) {
  if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1) return;
  release_list(w->head);
  release_list(atomic_load_explicit(&w->inbox, memory_order_acquire));
  release_list(w->pending);
  free(w->patterns);
  free(w->ignore_source);
  free(w);
}

/* ---- queueing (under the stripe lock) -------------------------------------------- */

static void append(rstate__watch *w, rstate__node *node) {
  node->next = NULL;
  if (w->tail)
    w->tail->next = node;
  else
    w->head = node;
  w->tail = node;
  w->n_ready++;
}

static rstate__node *pop(rstate__watch *w) {
  rstate__node *node = w->head;
  if (!node) return NULL;
  w->head = node->next;
  if (!w->head) w->tail = NULL;
  w->n_ready--;
  node->next = NULL;
  return node;
}

/* The inbox is a stack: the drainer reverses it, a chain of dependent
 * loads that nothing overlaps, one cache miss per node when a long backlog
 * has gone cold (a dispatch thread held by a slow callback). So a setter
 * that has pushed INBOX_RUN changes since it found the inbox empty moves
 * them behind the ready queue itself, under the lock, while they are still
 * in its cache: one lock round trip per INBOX_RUN changes. */
#define INBOX_RUN 64

/* A queued watch's drain delivers at most this many changes, then lets go
 * and queues behind the other ready watches: setters may append to its
 * queue as fast as it drains, and the others would wait forever. Up to
 * that, a drain that empties its queue while a setter streams into the
 * inbox takes what came meanwhile instead of letting go at once: each
 * let-go costs the setter a claim and a push onto the dispatcher's ready
 * list, contended with the dispatcher (once per 8 events on average before,
 * bench/notes.md dispatch.stream). */
#define DRAIN_RUN 256

/* Moves the inbox, oldest first, behind the ready queue (under the lock). */
static void splice_inbox(rstate__watch *w) {
  if (!atomic_load_explicit(&w->inbox, memory_order_relaxed)) return;
  rstate__node *n = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
  rstate__node *oldest = NULL, *newest = n;
  uint32_t k = 0;
  while (n) {
    rstate__node *next = n->next;
    n->next = oldest;
    oldest = n;
    n = next;
    k++;
  }
  if (!oldest) return;
  if (w->tail)
    w->tail->next = oldest;
  else
    w->head = oldest;
  w->tail = newest;
  w->n_ready += k;
}

/* Changes in the inbox (under the lock, so no drainer empties it meanwhile). */
static uint32_t inbox_count(rstate__watch *w) {
  uint32_t k = 0;
  for (rstate__node *n = atomic_load_explicit(&w->inbox, memory_order_acquire); n; n = n->next) k++;
  return k;
}

/* The node taken at claim time: the claiming thread's alone, but counted
 * as pending by the statistics (under the lock), hence atomic. */
static rstate__node *get_taken(rstate__watch *w) { return atomic_load_explicit(&w->taken, memory_order_relaxed); }
static void set_taken(rstate__watch *w, rstate__node *n) { atomic_store_explicit(&w->taken, n, memory_order_relaxed); }

/* The first thread to find the watch idle with work claims it. */
static inline void claim_if_idle(rstate__watch *w) {
  if (atomic_load_explicit(&w->claimed, memory_order_relaxed) || w->initializing || w->dead ||
      (!w->head && !atomic_load_explicit(&w->inbox, memory_order_relaxed)))
    return;
  /* no reference: an end meanwhile passes the registry's to the claimer
   * (orphaned). A setter pushing into the inbox claims without the lock,
   * hence the exchange for a queued watch. */
  if (w->queued) {
    if (atomic_exchange(&w->claimed, true)) return;
    rstate__dispatch_ready(w->store->dispatch, w);
    return;
  }
  atomic_store_explicit(&w->claimed, true, memory_order_relaxed);
  w->drain_next = NULL;
  if (!tls.in_callback) set_taken(w, pop(w)); /* the drain starts without the lock */
  if (tls.tail) {
    tls.tail->drain_next = w;
  } else {
    tls.head = w;
    /* This thread drains w first, and runs no user code before: no
     * callback runs here now, and its other claims queue behind w. So w
     * may count as running already (rstate_unwatch from another thread
     * waits for that delivery, as for a callback that began). Those
     * behind it get running when their drain comes (rstate__watch_drain):
     * the callbacks before may end them, or wait for another thread. */
    if (get_taken(w)) atomic_store_explicit(&w->running, true, memory_order_relaxed);
  }
  tls.tail = w;
}

static int64_t entry_deadline(const rstate__watch *w, const rstate__node *e) {
  int64_t d = e->last_ns + (int64_t)w->debounce_ms * 1000000;
  if (w->max_wait_ms) {
    int64_t cap = e->first_ns + (int64_t)w->max_wait_ms * 1000000;
    if (cap < d) d = cap;
  }
  return d;
}

static void update_deadline(rstate__watch *w) {
  int64_t d = INT64_MAX;
  for (rstate__node *e = w->pending; e; e = e->next) {
    int64_t x = entry_deadline(w, e);
    if (x < d) d = x;
  }
  int64_t old = atomic_exchange(&w->deadline, d);
  if (d < old) rstate__dispatch_deadline(w->store->dispatch, d);
}

static bool same_var(const rstate__record *a, const rstate__record *b) {
  return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0;
}

/* Moves pending bursts to the ready queue: all of them, or that of one
 * variable (var), or those due at now in the order they came due (ties by
 * revision). */
static bool flush(rstate__watch *w, int64_t now, const rstate__record *var, bool all) {
  bool moved = false;
  for (;;) {
    rstate__node **pick = NULL;
    int64_t pick_at = 0;
    for (rstate__node **link = &w->pending; *link; link = &(*link)->next) {
      rstate__node *e = *link;
      if (all || var) {
        if (all || same_var(e->rec, var)) {
          pick = link;
          break;
        }
        continue;
      }
      int64_t at = entry_deadline(w, e);
      const rstate__record *last = e->latest ? e->latest->rec : e->rec;
      const rstate__record *picked = pick ? ((*pick)->latest ? (*pick)->latest->rec : (*pick)->rec) : NULL;
      if (at <= now && (!pick || at < pick_at || (at == pick_at && last->revision < picked->revision))) {
        pick = link;
        pick_at = at;
      }
    }
    if (!pick) break;
    rstate__node *e = *pick;
    *pick = e->next;
    w->n_pending--;
    append(w, e);
    moved = true;
  }
  if (moved) update_deadline(w);
  return moved;
}

bool rstate__watch_flush_due(rstate__watch *w, int64_t now, bool all) {
  pthread_mutex_lock(&STRIPE(w)->lock);
  bool moved = !w->dead && flush(w, now, NULL, all);
  claim_if_idle(w);
  pthread_mutex_unlock(&STRIPE(w)->lock);
  return moved;
}

/* Debounce: merges a change into its variable's burst, or starts one. */
static void merge(rstate__watch *w, rstate__node *node) {
  int64_t now = rstate__now_ns();
  const rstate__record *rec = node->rec;
  for (rstate__node *e = w->pending; e; e = e->next) {
    if (same_var(e->rec, rec)) {
      e->coalesced += node->coalesced ? node->coalesced : 1;
      rstate__node_release(e->latest);
      e->latest = node;
      e->last_ns = now;
      update_deadline(w);
      return;
    }
  }
  if (!node->coalesced) node->coalesced = 1;
  node->first_ns = node->last_ns = now;
  node->next = NULL;
  rstate__node **tail = &w->pending;
  while (*tail) tail = &(*tail)->next;
  *tail = node; /* bursts stay in the order they started */
  w->n_pending++;
  update_deadline(w);
}

/* Queues one change on w (or merges it into a debounce burst). A debounced
 * watch's DEFINED and DELETED go out without delay, after that variable's
 * pending change. */
static inline void enqueue(rstate__watch *w, rstate__node *node) {
  if (w->debounce_ms && !w->initializing) {
    if (node->rec->kind == RSTATE_EVENT_CHANGED) {
      merge(w, node);
      return;
    }
    flush(w, 0, node->rec, false);
  }
  append(w, node);
}

static bool ignored(const rstate__watch *w, const rstate__record *rec) {
  return w->ignore_source && rec->kind == RSTATE_EVENT_CHANGED && rec->source && !strcmp(rec->source, w->ignore_source);
}

/* One compare-and-swap; the setter that makes the inbox non-empty claims
 * the watch unless it is claimed already, and a claimer looks at the inbox
 * again after it lets go (rstate__watch_drain), so no change is stranded.
 * Pushes to one watch are serialized by the caller (the registry lock, or
 * the lock a subscribing backend holds around rstate_host_emit_to), which
 * keeps them in order and lets in_pushed be the setters' plain count. */
static void inbox_push(rstate__watch *w, rstate__node *node) {
  rstate__node *old = atomic_load_explicit(&w->inbox, memory_order_relaxed);
  do {
    node->next = old;
  } while (!atomic_compare_exchange_weak(&w->inbox, &old, node));
  w->in_pushed = old ? w->in_pushed + 1 : 1;
  if (old || atomic_exchange(&w->claimed, true)) return;
  rstate__dispatch_ready(w->store->dispatch, w);
}

rstate__node *rstate__watch_push_locked(rstate__watch *w, rstate__node *node) {
  if (w->dead) return node;
  if (ignored(w, node->rec)) {
    w->stats.filtered++;
    return node;
  }
  enqueue(w, node);
  claim_if_idle(w);
  return NULL;
}

void rstate__watch_push(rstate__watch *w, rstate__node *node) {
  /* a watch registering holds its changes under the lock (finish_registration) */
  if (rstate__watch_uses_inbox(w) && !atomic_load_explicit(&w->initializing, memory_order_acquire) &&
      !ignored(w, node->rec) && w->in_pushed < INBOX_RUN) {
    inbox_push(w, node);
    return;
  }
  pthread_mutex_lock(&STRIPE(w)->lock);
  if (rstate__watch_uses_inbox(w)) { /* a long run: in order behind the queue while its nodes are in this cache */
    splice_inbox(w);
    w->in_pushed = 0;
  }
  rstate__node *unused = rstate__watch_push_locked(w, node);
  pthread_mutex_unlock(&STRIPE(w)->lock);
  rstate__node_release(unused);
}

/* ---- ending a watch ---------------------------------------------------- */

/* A backend that keeps watches itself forgets this one: nothing more is
 * emitted to it. Called once, by whoever removed it from the registry. */
static void unsubscribe(rstate__watch *w) {
  if (rstate__subscribes(w->store)) w->store->ops->unsubscribe(w->store->backend, (rstate_sub *)w);
}

/* destroy is user code: what it changes is delivered after it returns, as
 * for a callback. */
static void call_destroy(rstate__watch *w) {
  if (!w->destroy) return;
  tls.in_callback++;
  w->destroy(w->userdata);
  tls.in_callback--;
}

/* Ends w, whose registry entry the caller has just removed (the caller now
 * holds the registry's reference). From inside w's own callback it returns
 * at once and the delivery loop runs destroy after the callback; from
 * anywhere else it waits for a running callback and runs destroy itself. */
static void end_watch(rstate__watch *w) {
  unsubscribe(w);
  if (w->debounce_ms) rstate__dispatch_remove_timer(w->store->dispatch, w);
  pthread_mutex_lock(&STRIPE(w)->lock);
  w->dead = true;
  rstate__node *untaken = NULL;
  /* this thread claimed w, took its node (claim_if_idle) and has not begun
   * its drain (rstate__deliver_claimed moves tls.head on before a drain):
   * user code runs before that delivery, a backend's (on_state) or, when
   * w was claimed behind another watch, that one's callback. The delivery
   * is not a running callback to wait for, and it is off now. */
  if (tls.head == w && get_taken(w)) {
    untaken = get_taken(w);
    set_taken(w, NULL);
    w->running = false;
  }
  if (w->running && tls.current == w) {
    w->destroy_pending = true; /* the delivery loop owns the registry reference now */
    pthread_mutex_unlock(&STRIPE(w)->lock);
    return;
  }
  rstate__stripe *st = STRIPE(w);
  st->waiters++;
  while (w->running) pthread_cond_wait(&st->idle, &st->lock);
  st->waiters--;
  pthread_mutex_unlock(&STRIPE(w)->lock);
  rstate__node_release(untaken);
  call_destroy(w);
  /* dead since the first lock, so no new claim: one still held (another
   * thread's list, the dispatcher's) will drop the registry's reference
   * when it is released, after it looked at w for the last time. */
  pthread_mutex_lock(&st->lock);
  bool claimed = w->claimed;
  if (claimed) w->orphaned = true;
  pthread_mutex_unlock(&st->lock);
  if (!claimed) rstate__watch_unref(w);
}

int rstate_unwatch(rstate_store *s, rstate_watch_id id) {
  if (!s) return rstate__err(RSTATE_EINVAL, "rstate_unwatch: store is NULL");
  rstate__watch *w = rstate__registry_find(s->registry, id);
  if (!w || !rstate__registry_remove(s->registry, w)) {
    if (w) rstate__watch_unref(w);
    return rstate__err(RSTATE_ENOTFOUND, "rstate_unwatch: no watch %llu on this store", (unsigned long long)id);
  }
  end_watch(w);
  rstate__watch_unref(w);    /* registry_find's */
  rstate__deliver_claimed(); /* what destroy changed */
  return RSTATE_OK;
}

void rstate__watch_close_all(rstate_store *s) {
  rstate__watch *w = rstate__registry_take_all(s->registry);
  while (w) {
    rstate__watch *next = w->pass_next;
    end_watch(w);
    w = next;
  }
}

/* ---- delivery ------------------------------------------------------------ */

/* Runs filter and callback for one node; *called tells whether the callback
 * ran. Returns what the callback returned. */
static int deliver(rstate__watch *w, const rstate__node *node, bool *called) {
  rstate_event ev;
  rstate__event_fill(&ev, node, w->store, w->id);
  uint32_t saved = tls.depth;
  const rstate__record *last = node->latest ? node->latest->rec : node->rec;
  tls.depth = last->depth;
  tls.in_callback++;
  rstate__watch *outer = tls.current;
  tls.current = w;
  int rc = RSTATE_CONTINUE;
  *called = true;
  if (w->filter) {
    *called = w->filter(&ev, w->userdata);
    if (*called) { /* the filter may have unwatched: then fn must not start */
      pthread_mutex_lock(&STRIPE(w)->lock);
      *called = !w->dead;
      pthread_mutex_unlock(&STRIPE(w)->lock);
    }
  }
  if (*called) rc = w->fn(&ev, w->userdata);
  tls.current = outer;
  tls.in_callback--;
  tls.depth = saved;
  return rc;
}

int rstate__watch_drain(rstate__watch *w) {
  int ran = 0, taken = 0;                            /* callbacks run; nodes handled (filtered too) */
  rstate__node *node = get_taken(w), *unused = NULL; /* popped at claim time */
  set_taken(w, NULL);
  if (node && !atomic_load_explicit(&w->running, memory_order_relaxed)) {
    /* taken behind another watch: running from now on, unless ended
     * meanwhile (end_watch sets dead, then looks at running) */
    atomic_store(&w->running, true);
    if (atomic_load(&w->dead)) {
      unused = node;
      node = NULL;
    }
  }
  if (!node) {
    pthread_mutex_lock(&STRIPE(w)->lock);
    if (unused) { /* an unwatch may have seen running: it waits for this */
      atomic_store_explicit(&w->running, false, memory_order_relaxed);
      if (STRIPE(w)->waiters) pthread_cond_broadcast(&STRIPE(w)->idle);
    }
    splice_inbox(w);
  }
  /* a queued watch's drain runs at most DRAIN_RUN changes: setters may
   * keep appending, and the other ready watches wait for it */
  while (node || (!w->dead && w->head && (taken < DRAIN_RUN || !w->queued))) {
    if (!node) {
      node = pop(w);
      atomic_store_explicit(&w->running, true, memory_order_relaxed);
      pthread_mutex_unlock(&STRIPE(w)->lock);
    }

    bool called;
    int rc = deliver(w, node, &called);
    uint32_t coalesced = node->coalesced;
    rstate__node_release(node);
    taken++;
    if (rc == RSTATE_UNWATCH && rstate__registry_remove(w->store->registry, w)) {
      unsubscribe(w);
      if (w->debounce_ms) rstate__dispatch_remove_timer(w->store->dispatch, w);
      pthread_mutex_lock(&STRIPE(w)->lock);
      w->dead = true;
      w->destroy_pending = true;
      pthread_mutex_unlock(&STRIPE(w)->lock);
    }

    pthread_mutex_lock(&STRIPE(w)->lock);
    atomic_store_explicit(&w->running, false, memory_order_relaxed);
    if (called) {
      ran++;
      w->stats.delivered++;
      if (coalesced > 1) w->stats.coalesced += coalesced - 1;
    } else {
      w->stats.filtered++;
    }
    if (STRIPE(w)->waiters) pthread_cond_broadcast(&STRIPE(w)->idle);
    node = NULL;
    /* a setter streaming into the inbox meanwhile: take what came */
    if (!w->head && atomic_load_explicit(&w->inbox, memory_order_relaxed) && taken < DRAIN_RUN) splice_inbox(w);
  }
  /* changes left by the bound: the watch queues behind the others ready */
  bool again = false, more = !w->dead && w->head;
  if (rstate__watch_uses_inbox(w)) {
    /* a setter that found the inbox empty while this claim held tried to
     * claim and left it to us: look again after letting go (both sides
     * sequentially consistent). */
    atomic_store(&w->claimed, false);
    again = !w->dead && (more || atomic_load(&w->inbox)) && !atomic_exchange(&w->claimed, true);
  } else if (more && w->queued) {
    again = true; /* still claimed */
  } else {
    atomic_store_explicit(&w->claimed, false, memory_order_relaxed);
  }
  bool destroy = w->destroy_pending, orphaned = w->orphaned;
  w->destroy_pending = false;
  pthread_mutex_unlock(&STRIPE(w)->lock);
  rstate__node_release(unused);
  if (again) { /* not dead: neither destroy nor orphaned */
    rstate__dispatch_ready(w->store->dispatch, w);
    return ran;
  }
  if (destroy) {
    call_destroy(w);
    rstate__watch_unref(w); /* the registry's */
  }
  if (orphaned) rstate__watch_unref(w); /* the registry's, passed on by end_watch */
  return ran;
}

void rstate__watch_unclaim(rstate__watch *w) {
  pthread_mutex_lock(&STRIPE(w)->lock);
  atomic_store(&w->claimed, false);
  bool orphaned = w->orphaned;
  pthread_mutex_unlock(&STRIPE(w)->lock);
  if (orphaned) rstate__watch_unref(w);
}

void rstate__deliver_claimed(void) {
  if (tls.in_callback) return;
  while (tls.head) {
    rstate__watch *w = tls.head;
    tls.head = w->drain_next;
    if (!tls.head) tls.tail = NULL;
    w->drain_next = NULL;
    rstate__watch_drain(w);
  }
}

/* ---- registration -------------------------------------------------------- */

static rstate__watch *watch_new(rstate_store *s, const char *const *names, size_t n, rstate_watch_fn fn, void *userdata,
                                const rstate_watch_opts *o) {
  rstate__watch *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  atomic_init(&w->refs, 1);
  atomic_init(&w->deadline, INT64_MAX);
  atomic_init(&w->inbox, NULL);
  atomic_init(&w->claimed, false);
  atomic_init(&w->taken, NULL);
  w->store = s;
  w->fn = fn;
  w->userdata = userdata;
  w->filter = o->filter;
  w->destroy = o->destroy;
  w->debounce_ms = o->debounce_ms;
  w->max_wait_ms = o->max_wait_ms;
  w->queued = o->queued || o->debounce_ms;
  w->include_initial = o->include_initial;
  atomic_init(&w->initializing, true);
  /* the patterns, a name given twice kept once, in one allocation: the
   * pointer array, then the strings */
  size_t bytes = n * sizeof *w->patterns;
  for (size_t i = 0; i < n; i++) bytes += strlen(names[i]) + 1;
  if (!rstate__strdup_opt(&w->ignore_source, o->ignore_source) || !(w->patterns = malloc(bytes))) {
    rstate__watch_unref(w);
    return NULL;
  }
  char *text = (char *)(w->patterns + n);
  for (size_t i = 0; i < n; i++) {
    bool dup = false;
    for (size_t k = 0; k < w->n_patterns && !dup; k++) dup = !strcmp(w->patterns[k], names[i]);
    if (dup) continue;
    size_t len = strlen(names[i]) + 1;
    w->patterns[w->n_patterns++] = memcpy(text, names[i], len);
    text += len;
  }
  return w;
}

/* Every exact name of the watch must be defined. */
static int name_cmp(const void *key, const void *var) { return strcmp(key, ((const rstate__snap_var *)var)->name); }

static int check_exact(const rstate__watch *w, const rstate__snap *sn) {
  for (size_t i = 0; i < w->n_patterns; i++) {
    const char *p = w->patterns[i];
    size_t len = strlen(p);
    if (len && p[len - 1] == '*') continue;
    if (!sn->n || !bsearch(p, sn->vars, sn->n, sizeof *sn->vars, name_cmp)) /* in name order */
      return rstate__err(RSTATE_ENOTFOUND, "rstate_watch: %s: no such variable", p);
  }
  return RSTATE_OK;
}

/* The INITIAL events of a snapshot, in name order. NULL on ENOMEM (with a
 * sentence). */
static rstate__batch *initial_batch(const rstate__snap *sn, uint64_t revision) {
  rstate_change *items = calloc(sn->n, sizeof *items);
  if (!items) return NULL;
  for (size_t i = 0; i < sn->n; i++) {
    const rstate__snap_var *v = &sn->vars[i];
    items[i] = (rstate_change){.kind = RSTATE_EVENT_INITIAL,
                               .name = v->name,
                               .type = v->type,
                               .new_value = &v->value,
                               .version = v->version,
                               .revision = revision,
                               .timestamp_ns = v->updated_ns};
  }
  rstate__batch *b = rstate__batch_new(items, sn->n, sn->n, 0);
  free(items);
  for (size_t i = 0; b && i < sn->n; i++) rstate__batch_node(b, i)->rec = rstate__batch_record(b, i);
  return b;
}

/* The same for a backend that subscribes: asked name by name. */
static int check_exact_defined(const rstate__watch *w) {
  for (size_t i = 0; i < w->n_patterns; i++) {
    const char *p = w->patterns[i];
    size_t len = strlen(p);
    if (len && p[len - 1] == '*') continue;
    rstate_var_info info;
    int rc = w->store->ops->get(w->store->backend, p, NULL, &info);
    if (rc == RSTATE_ENOTFOUND) return rstate__err(RSTATE_ENOTFOUND, "rstate_watch: %s: no such variable", p);
    if (rc) return rc;
  }
  return RSTATE_OK;
}

/* Ends registration: drops what the snapshot already shows, puts the
 * INITIAL events first, and lets delivery start. */
static void finish_registration(rstate__watch *w, rstate__batch *initial, size_t n_initial, uint64_t revision,
                                bool drop_seen) {
  pthread_mutex_lock(&STRIPE(w)->lock);
  rstate__node *held = w->head;
  w->head = w->tail = NULL;
  w->n_ready = 0;
  for (size_t i = 0; i < n_initial; i++) append(w, rstate__batch_node(initial, i));
  atomic_store_explicit(&w->initializing, false, memory_order_release);
  while (held) {
    rstate__node *next = held->next;
    if (drop_seen && w->include_initial && held->rec->revision <= revision)
      rstate__node_release(held);
    else
      enqueue(w, held);
    held = next;
  }
  claim_if_idle(w);
  pthread_mutex_unlock(&STRIPE(w)->lock);
}

int rstate_watch(rstate_store *s, const char *const *names, size_t n, rstate_watch_fn fn, void *userdata,
                 const rstate_watch_opts *opts, rstate_watch_id *out) {
  if (out) *out = 0;
  if (!s || !fn) return rstate__err(RSTATE_EINVAL, "rstate_watch: store and callback must not be NULL");
  if (!names || !n) return rstate__err(RSTATE_EINVAL, "rstate_watch: at least one name is needed");
  for (size_t i = 0; i < n; i++) {
    int rc = rstate__watch_pattern_check(names[i]);
    if (rc) return rc;
  }
  rstate_watch_opts o = {0};
  if (opts) o = *opts;
  if (o.max_wait_ms && !o.debounce_ms)
    return rstate__err(RSTATE_EINVAL, "rstate_watch: max_wait_ms %u needs a debounce_ms", o.max_wait_ms);

  rstate__watch *w = watch_new(s, names, n, fn, userdata, &o);
  if (!w) return rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory");
  int rc = rstate__registry_add(s->registry, w);
  if (rc) {
    rstate__watch_unref(w);
    return rc;
  }
  if (w->debounce_ms && (rc = rstate__dispatch_add_timer(s->dispatch, w))) {
    rstate__registry_remove(s->registry, w);
    rstate__watch_unref(w);
    return rc;
  }

  /* registered first, then the snapshot: every change is either in the
   * snapshot (revision <= its revision) or queued on the watch. A backend
   * that subscribes emits the INITIAL events itself. */
  rstate__snap sn = {0};
  uint64_t revision = 0;
  rstate__batch *initial = NULL;
  bool subscribes = rstate__subscribes(s);
  if (subscribes) {
    rc = check_exact_defined(w);
    if (!rc)
      rc = s->ops->subscribe(s->backend, (rstate_sub *)w, (const char *const *)w->patterns, w->n_patterns,
                             w->include_initial);
  } else {
    rc = rstate__snapshot_take(s, (const char *const *)w->patterns, w->n_patterns, w->include_initial, &sn, &revision,
                               "rstate_watch");
    if (!rc) rc = check_exact(w, &sn);
  }
  if (!rc && w->include_initial && sn.n && !(initial = initial_batch(&sn, revision)))
    rc = rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory for %zu initial events", sn.n);
  if (rc) {
    rstate__snap_free(&sn);
    if (w->debounce_ms) rstate__dispatch_remove_timer(s->dispatch, w);
    rstate__registry_remove(s->registry, w);
    rstate__watch_unref(w); /* no destroy: the watch never existed */
    return rc;
  }
  /* once delivery starts the watch may end at once (RSTATE_UNWATCH on a
   * dispatch thread): keep it alive until we are done with it */
  rstate__watch_ref(w);
  rstate__registry_publish(s->registry, w); /* from here on it cannot fail */
  finish_registration(w, initial, initial ? sn.n : 0, revision, !subscribes);
  rstate__snap_free(&sn);
  if (out) *out = w->id;
  rstate__watch_unref(w);
  rstate__deliver_claimed();
  return RSTATE_OK;
}

int rstate_get_watch_stats(rstate_store *s, rstate_watch_id id, rstate_watch_stats *out) {
  if (!s || !out) return rstate__err(RSTATE_EINVAL, "rstate_get_watch_stats: store and out must not be NULL");
  rstate__watch *w = rstate__registry_find(s->registry, id);
  if (!w)
    return rstate__err(RSTATE_ENOTFOUND, "rstate_get_watch_stats: no watch %llu on this store", (unsigned long long)id);
  pthread_mutex_lock(&STRIPE(w)->lock);
  *out = w->stats;
  out->pending = w->n_ready + w->n_pending + inbox_count(w) + (get_taken(w) != NULL);
  pthread_mutex_unlock(&STRIPE(w)->lock);
  rstate__watch_unref(w);
  return RSTATE_OK;
}

size_t rstate_watcher_count(rstate_store *s, const char *name) {
  if (!s || !name) return 0;
  return rstate__registry_count(s->registry, name);
}
