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

typedef struct rstate__node {
  struct rstate__node *next;
  const rstate__record *rec;
  rstate__batch *batch;
  /* debounce: this node is the first change of a burst; latest is the last
   * one merged into it (NULL: none yet), coalesced counts them all. */
  struct rstate__node *latest;
  uint32_t coalesced;
  int64_t first_ns, last_ns;
} rstate__node;

/* Builds a batch of n records from changes (kinds and revisions as given)
 * and n_nodes nodes, node j pointing at no record yet. depth goes to every
 * record. NULL on ENOMEM (with a sentence). */
rstate__batch *rstate__batch_new(const rstate_change *changes, size_t n, size_t n_nodes, uint32_t depth);
/* Frees the small batches freed on one thread and kept for another's next
 * changes (a dispatch thread about to sleep: the stream has stopped). */
void rstate__batch_trim(void);
const rstate__record *rstate__batch_record(rstate__batch *b, size_t i);
rstate__node *rstate__batch_node(rstate__batch *b, size_t j);
/* Releases one node (and the batch with its last node); NULL is a no-op.
 * A debounce node releases the node merged into it too. */
void rstate__node_release(rstate__node *node);

/* Fills ev from a node for delivery: a debounce node gives the first
 * record's old value and everything else from the latest. */
void rstate__event_fill(rstate_event *ev, const rstate__node *node, rstate_store *store, rstate_watch_id id);

#endif
