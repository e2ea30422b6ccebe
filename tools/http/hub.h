/*
 * hub.h — the change feed behind rstated's SSE streams (GET /v1/watch).
 *
 * One watch on "*" (through the public API, like any client of the store)
 * copies every event into a bounded ring, in revision order. Each stream
 * keeps a cursor into that ring, so the setter's thread only appends (one
 * copy, one lock, one wakeup) whatever the number of streams, and each
 * stream's bytes are formatted once per event (cached in the entry) on the
 * HTTP thread that writes them.
 *
 * The ring is also the stream history: a stream that asks to start after
 * revision R (Last-Event-ID, ?after=) replays from the ring when it still
 * reaches back to R, else it starts with RESYNC events (the current values)
 * — see hub_stream_open.
 *
 * Slow streams: when the ring must drop its oldest entries (it is full), a
 * stream whose cursor is among them first folds them into one event per
 * variable, as a slow socket client is coalesced: the first old value, the
 * rest from the last change, coalesced = the changes it stands for. So a
 * stream never holds the setters and never loses a change without counting
 * it; its memory is bounded by the variables it covers.
 *
 * A waker thread resumes the streams that have something to send (and
 * marks a heartbeat comment due on every stream each heartbeat), so the
 * setter never loops over streams. Nothing here knows HTTP: a stream is
 * woken through a callback, and its bytes are pulled with hub_read.
 */
#ifndef RSTATE_TOOLS_HTTP_HUB_H
#define RSTATE_TOOLS_HTTP_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <reactivestate.h>

typedef struct hub hub;
typedef struct hub_stream hub_stream;

typedef struct hub_stats {
  uint64_t events_in;        /* events the hub's watch received */
  uint64_t events_delivered; /* SSE events written to streams (INITIAL and RESYNC included) */
  uint64_t coalesced;        /* changes merged into another event on slow streams: sum of (coalesced - 1) */
  uint64_t streams_opened, streams_closed;
  size_t streams;            /* open now */
  size_t ring_entries, ring_capacity;
  size_t ring_bytes;         /* bytes held by the ring's copies and cached text */
} hub_stats;

/* Starts the hub on s: registers its watch, starts the waker thread.
 * capacity: ring entries (0: 65536); heartbeat_ms: how often each stream
 * gets a comment line (0: 15000); on_thread (may be NULL) runs first on the
 * waker thread. Returns 0, or an RSTATE_E* code with rstate_last_error()
 * set (or -1 with errno for the thread). */
int hub_start(hub **out, rstate_store *s, size_t capacity, int heartbeat_ms, void (*on_thread)(void));
/* Ends every stream (hub_read returns -1 from then on) and wakes them; the
 * caller then stops the HTTP server, closes the streams, and calls
 * hub_free. */
void hub_shutdown(hub *h);
void hub_free(hub *h);
void hub_get_stats(hub *h, hub_stats *out);

/* Called with the hub's lock held: the stream was suspended and now has
 * something to send; resume it. */
typedef void (*hub_wake_fn)(void *ud);
/* Called with the hub's lock held from inside hub_read when it returns 0:
 * suspend the stream (its wake callback comes later). */
typedef void (*hub_suspend_fn)(void *ud);

typedef struct hub_stream_opts {
  const char *const *names; /* exact names, or prefixes ending in '*' ("*": all) */
  size_t n_names;
  bool initial;             /* start with an INITIAL event per covered variable */
  bool has_after;           /* resume after revision `after` */
  uint64_t after;
  hub_wake_fn wake;
  hub_suspend_fn suspend;
  void *ud;
} hub_stream_opts;

/*
 * Opens a stream. With has_after: when the ring still holds every change
 * after `after` (and `after` is not beyond the store's revision), the
 * stream replays them, then goes on live; otherwise it begins with a
 * RESYNC event per covered variable (old null, new the current value,
 * revision the snapshot's, coalesced 0: the stream cannot know what the
 * client last saw) and goes on live from that snapshot. With initial (and
 * no usable resume): an INITIAL event per covered variable first.
 * An exact name that is not defined is RSTATE_ENOTFOUND; a bad name
 * RSTATE_EINVAL; both with rstate_last_error()'s sentence. *resumed (may be
 * NULL) tells whether the history reached back.
 */
int hub_stream_open(hub *h, const hub_stream_opts *o, hub_stream **out, bool *resumed);
/*
 * Copies the stream's next bytes into buf (at most max): SSE records
 * ("id: REV\ndata: {...}\n\n"), or a heartbeat comment. Returns the count;
 * 0 after calling the suspend callback (nothing to send now); -1 once the
 * hub is shut down.
 */
long hub_read(hub_stream *st, char *buf, size_t max);
/* The stream's connection is gone: unlinks and frees it. */
void hub_stream_close(hub_stream *st);

#endif
