/*
 * event.h — the records of changes on their way to watchers (event.c).
 *
 * One emitted revision becomes one batch: a single allocation holding a
 * record per change (name, old and new value, source and metadata copied
 * in) and a node per (watch, change) pair that is queued on the watch. The
 * batch is freed when its last node is released, so a change fanned out to
 * many watches is copied once, and queuing it never allocates.
 */
#ifndef RSTATE_EVENT_H
#define RSTATE_EVENT_H

#include <stdatomic.h>

#include "util/util.h"

typedef struct rstate__record {
  rstate_event_kind kind;
  rstate_type type;
  const char *name;
  size_t name_len;
  rstate_value old_value;
  rstate_value new_value;
  uint64_t version;
  uint64_t revision;
  int64_t timestamp_ns;
  const char *source;
  const rstate_meta *meta;
  size_t n_meta;
  uint32_t depth; /* how many callbacks deep the change was made (feedback limit) */
} rstate__record;

typedef struct rstate__batch rstate__batch;
typedef struct rstate__node rstate__node;

/* One allocation: the records, then the nodes, then the metadata and text
 * (event.c). Here so that the calls made once per delivered event inline. */
struct rstate__batch {
  atomic_size_t refs;              /* nodes not yet released */
  struct rstate__batch *next_free; /* on the returned list, or a thread's spares */
  size_t size;                     /* bytes allocated */
  size_t n_records;
  size_t n_nodes;
  rstate__record *records;
  rstate__node *nodes;
};

struct rstate__node {
  struct rstate__node *next;
  const rstate__record *rec;
  rstate__batch *batch;
  /* debounce: this node is the first change of a burst; latest is the last
   * one merged into it (NULL: none yet), coalesced counts them all. */
  struct rstate__node *latest;
  uint32_t coalesced;
  int64_t first_ns, last_ns;
};

/* Builds a batch of n records from changes (kinds and revisions as given)
 * and n_nodes nodes, node j pointing at no record yet. depth goes to every
 * record. NULL on ENOMEM (with a sentence). */
rstate__batch *rstate__batch_new(const rstate_change *changes, size_t n, size_t n_nodes, uint32_t depth);
/* Frees the small batches freed on one thread and kept for another's next
 * changes (a dispatch thread about to sleep: the stream has stopped). */
void rstate__batch_trim(void);
static inline const rstate__record *rstate__batch_record(rstate__batch *b, size_t i) { return &b->records[i]; }
static inline rstate__node *rstate__batch_node(rstate__batch *b, size_t j) { return &b->nodes[j]; }
/* Frees a batch whose last node was released (event.c). */
void rstate__batch_free(rstate__batch *b);
/* Releases one node (and the batch with its last node); NULL is a no-op.
 * A debounce node releases the node merged into it too (at most one level:
 * a latest never has a latest). */
static inline void rstate__node_release(rstate__node *node) {
  if (!node) return;
  rstate__node *latest = node->latest;
  node->latest = NULL;
  rstate__batch *b = node->batch;
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) rstate__batch_free(b);
  if (latest) rstate__node_release(latest);
}

/* Fills ev from a node for delivery: a debounce node gives the first
 * record's old value and everything else from the latest. */
static inline void rstate__event_fill(rstate_event *ev, const rstate__node *node, rstate_store *store, rstate_watch_id id) {
  const rstate__record *first = node->rec;
  const rstate__record *last = node->latest ? node->latest->rec : first;
  ev->kind = last->kind;
  ev->store = store;
  ev->watch = id;
  ev->name = last->name;
  ev->type = last->type;
  ev->old_value = first->old_value;
  ev->new_value = last->new_value;
  ev->version = last->version;
  ev->revision = last->revision;
  ev->timestamp_ns = last->timestamp_ns;
  ev->source = last->source;
  ev->meta = last->meta;
  ev->n_meta = last->n_meta;
  if (first->kind == RSTATE_EVENT_INITIAL)
    ev->coalesced = 0;
  else
    ev->coalesced = node->coalesced ? node->coalesced : 1;
}

#endif
