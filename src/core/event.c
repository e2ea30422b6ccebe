/*
 * event.c — batches of change records and the nodes that queue them on
 * watches (see event.h for the layout and why).
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

/* Each thread keeps its last freed small batch for its next change: an
 * inline set and its delivery happen on one thread, so most changes then
 * cost no malloc. Blocks keep their exact size; the spare serves any change
 * it fits. A queued change is freed on the dispatch thread, whose spare is
 * soon taken: the small batches it frees beyond that go back to the setting
 * side through the returned list (lock-free: one compare-and-swap to give
 * one back, one exchange to take them all), which a thread without a
 * fitting spare takes as its spares. Otherwise the dispatch thread's frees
 * and the setter's mallocs would meet in the allocator: its arena lock, and
 * pages given back to the kernel by one thread and faulted in by the other.
 * Spares are freed when their thread exits; the returned list holds at most
 * about RETURNED_MAX batches (2 MiB at most, about 1 MiB for number
 * changes: room for the backlog a setter builds while the dispatch thread
 * is off its CPU for a millisecond), and a dispatch thread going to sleep
 * frees it (rstate__batch_trim). */
#define SPARE_MAX 512
#define RETURNED_MAX 4096
static _Thread_local rstate__batch *spare, *spares;
static _Thread_local bool spare_registered;
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
/* the returned list, written on the freeing thread at every free: on a
 * line of its own */
static struct {
  _Alignas(RSTATE__CACHE_LINE) _Atomic(rstate__batch *) list;
  atomic_int n; /* about how many: counted before the push, reset at a take */
} returned;

static void free_list(rstate__batch *b) {
  while (b) {
    rstate__batch *next = b->next_free;
    free(b);
    b = next;
  }
}

/* Runs on the exiting thread; a later thread-exit destructor that sets a
 * variable registers the key again (glibc reruns destructors), so nothing
 * leaks. */
static void spare_release(void *slot) {
  (void)slot;
  free(spare);
  spare = NULL;
  free_list(spares);
  spares = NULL;
  spare_registered = false;
}

static void spare_key_create(void) { pthread_key_create(&spare_key, spare_release); }

/* So that the thread's spares are freed when it exits; false if they cannot be. */
static bool spare_register(void) {
  if (spare_registered) return true;
  pthread_once(&spare_once, spare_key_create);
  if (pthread_setspecific(spare_key, &spare) != 0) return false;
  spare_registered = true;
  return true;
}

static void *batch_alloc(size_t size, size_t *got) {
  if (spare && spare->size >= size) {
    void *p = spare;
    *got = spare->size;
    spare = NULL;
    return p;
  }
  if (size <= SPARE_MAX && !spares && atomic_load_explicit(&returned.list, memory_order_relaxed) && spare_register()) {
    spares = atomic_exchange_explicit(&returned.list, NULL, memory_order_acquire);
    atomic_store_explicit(&returned.n, 0, memory_order_relaxed);
  }
  /* the returned batches are small: a larger change leaves them for the
   * next small one (walking them would free the stash for nothing); one
   * too small for a small change is dropped */
  while (size <= SPARE_MAX && spares) {
    rstate__batch *b = spares;
    spares = b->next_free;
    if (b->size >= size) {
      *got = b->size;
      return b;
    }
    free(b);
  }
  *got = size;
  return malloc(size);
}

void rstate__batch_free(rstate__batch *b) {
  if (b->size > SPARE_MAX) {
    free(b);
    return;
  }
  if (!spare) {
    if (spare_register())
      spare = b;
    else
      free(b);
    return;
  }
  if (atomic_load_explicit(&returned.n, memory_order_relaxed) >= RETURNED_MAX || /* full: no more atomics */
      atomic_fetch_add_explicit(&returned.n, 1, memory_order_relaxed) >= RETURNED_MAX) {
    atomic_fetch_sub_explicit(&returned.n, 1, memory_order_relaxed);
    free(b);
    return;
  }
  rstate__batch *old = atomic_load_explicit(&returned.list, memory_order_relaxed);
  do {
    b->next_free = old;
  } while (!atomic_compare_exchange_weak_explicit(&returned.list, &old, b, memory_order_release, memory_order_relaxed));
}

static size_t value_bytes(const rstate_value *v) { return v && v->kind == RSTATE_STRING ? v->u.s.len + 1 : 0; }

static size_t str_bytes(const char *s) { return s ? strlen(s) + 1 : 0; }

static size_t name_len(const rstate_change *c) { return c->name_hash ? c->name_len : strlen(c->name); }

/* Copies a string into the batch's text area, returns the copy. */
static char *put(char **text, const char *s, size_t len) {
  char *p = *text;
  memcpy(p, s, len);
  p[len] = '\0';
  *text += len + 1;
  return p;
}

/* Copies a value into a record in place (no struct returned by value: that
 * costs a store-forwarding stall on this path), its string into the text. */
static void put_value(rstate_value *out, char **text, const rstate_value *v) {
  if (!v) {
    out->kind = RSTATE_NONE;
    return;
  }
  out->kind = v->kind;
  out->u = v->u;
  if (v->kind == RSTATE_STRING) out->u.s.ptr = put(text, v->u.s.ptr, v->u.s.len);
}

static size_t round_up(size_t n) { return (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1); }

rstate__batch *rstate__batch_new(const rstate_change *changes, size_t n, size_t n_nodes, uint32_t depth) {
  /* every change of one emit shares its source and metadata */
  const char *source = n ? changes[0].source : NULL;
  const rstate_meta *meta = n ? changes[0].meta : NULL;
  size_t n_meta = n ? changes[0].n_meta : 0;

  size_t text = str_bytes(source);
  for (size_t i = 0; i < n_meta; i++) text += str_bytes(meta[i].key) + str_bytes(meta[i].value);
  for (size_t i = 0; i < n; i++)
    text += name_len(&changes[i]) + 1 + value_bytes(changes[i].old_value) + value_bytes(changes[i].new_value);

  size_t off_records = round_up(sizeof(rstate__batch));
  size_t off_nodes = off_records + round_up(n * sizeof(rstate__record));
  size_t off_meta = off_nodes + round_up(n_nodes * sizeof(rstate__node));
  size_t off_text = off_meta + n_meta * sizeof(rstate_meta);
  size_t size;
  char *block = batch_alloc(off_text + text, &size);
  if (!block) {
    rstate__err(RSTATE_ENOMEM, "%s: out of memory queuing the change for its watchers", n ? changes[0].name : "?");
    return NULL;
  }
  rstate__batch *b = (rstate__batch *)block;
  atomic_init(&b->refs, n_nodes);
  b->size = size;
  b->n_records = n;
  b->n_nodes = n_nodes;
  b->records = (rstate__record *)(block + off_records);
  b->nodes = (rstate__node *)(block + off_nodes);
  for (size_t j = 0; j < n_nodes; j++) b->nodes[j] = (rstate__node){.batch = b};

  char *t = block + off_text;
  const char *src = source ? put(&t, source, strlen(source)) : NULL;
  rstate_meta *m = (rstate_meta *)(block + off_meta);
  for (size_t i = 0; i < n_meta; i++) {
    m[i].key = put(&t, meta[i].key, strlen(meta[i].key));
    m[i].value = put(&t, meta[i].value, strlen(meta[i].value));
  }
  for (size_t i = 0; i < n; i++) {
    const rstate_change *c = &changes[i];
    rstate__record *r = &b->records[i];
    r->kind = c->kind;
    r->type = c->type;
    r->name_len = name_len(c);
    r->name = put(&t, c->name, r->name_len);
    put_value(&r->old_value, &t, c->old_value);
    put_value(&r->new_value, &t, c->new_value);
    r->version = c->version;
    r->revision = c->revision;
    r->timestamp_ns = c->timestamp_ns;
    r->source = src;
    r->meta = n_meta ? m : NULL;
    r->n_meta = n_meta;
    r->depth = depth;
  }
  return b;
}

void rstate__batch_trim(void) {
  if (!atomic_load_explicit(&returned.list, memory_order_relaxed)) return;
  free_list(atomic_exchange_explicit(&returned.list, NULL, memory_order_acquire));
  atomic_store_explicit(&returned.n, 0, memory_order_relaxed);
}
