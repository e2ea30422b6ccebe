/*
 * hub.c — the change feed behind the SSE streams: a ring of copied events
 * fed by one watch, streams with cursors, slow-stream folding, the waker
 * thread. See hub.h for the design.
 */
#include "hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../eventfmt.h"

/* One event copied into a single allocation (strings after the struct). */
typedef struct copy {
  rstate_event ev;
  size_t bytes;
} copy;

typedef struct entry {
  copy *c;
  char *text; /* "id: REV\ndata: JSON\n\n", formatted on first use */
  size_t text_len;
} entry;

/* A slow stream's folded changes of one variable. */
typedef struct folded {
  copy *last;         /* the last change folded in */
  rstate_value old;   /* the first change's old value (owned) */
  uint64_t coalesced; /* changes it stands for */
} folded;

struct hub_stream {
  hub *h;
  hub_stream *prev, *next;
  char **names;
  size_t n_names;
  uint64_t cursor;    /* next ring sequence number to look at */
  uint64_t skip_upto; /* ring events at or below this revision are in the snapshot already */
  folded *fold;
  size_t n_fold, cap_fold;
  char *out;          /* text formatted and not yet copied out */
  size_t out_len, out_off, out_cap;
  bool heartbeat_due, suspended;
  bool failed;        /* a change could not be kept for it: it ends */
  size_t n_pre;       /* INITIAL or RESYNC records in out at the start */
  hub_stream_opts o;
};

struct hub {
  rstate_store *s;
  rstate_watch_id watch;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  pthread_t waker;
  bool waker_started, dirty, stopping;
  int heartbeat_ms;
  entry *ring;
  size_t cap;
  uint64_t head, tail; /* sequence numbers: [tail, head) are held */
  uint64_t lost_rev;   /* every event above this revision is in the ring (or still coming) */
  hub_stream *streams;
  hub_stats st;
  void (*on_thread)(void);
};

/* ---- copies -------------------------------------------------------------- */

static size_t str_size(const char *s) { return s ? strlen(s) + 1 : 0; }

static size_t value_extra(const rstate_value *v) { return v->kind == RSTATE_STRING ? v->u.s.len + 1 : 0; }

static char *put_str(char **p, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  memcpy(*p, s, n);
  char *r = *p;
  *p += n;
  return r;
}

static void put_value(char **p, rstate_value *dst, const rstate_value *src) {
  *dst = *src;
  if (src->kind != RSTATE_STRING) return;
  memcpy(*p, src->u.s.ptr, src->u.s.len);
  (*p)[src->u.s.len] = '\0';
  dst->u.s.ptr = *p;
  *p += src->u.s.len + 1;
}

static copy *copy_event(const rstate_event *ev) {
  size_t n = sizeof(copy) + ev->n_meta * sizeof(rstate_meta) + str_size(ev->name) + str_size(ev->source) +
             value_extra(&ev->old_value) + value_extra(&ev->new_value);
  for (size_t i = 0; i < ev->n_meta; i++) n += str_size(ev->meta[i].key) + str_size(ev->meta[i].value);
  copy *c = malloc(n);
  if (!c) return NULL;
  c->ev = *ev;
  c->bytes = n;
  rstate_meta *meta = (rstate_meta *)(c + 1);
  char *p = (char *)(meta + ev->n_meta);
  c->ev.name = put_str(&p, ev->name);
  c->ev.source = put_str(&p, ev->source);
  put_value(&p, &c->ev.old_value, &ev->old_value);
  put_value(&p, &c->ev.new_value, &ev->new_value);
  for (size_t i = 0; i < ev->n_meta; i++) {
    meta[i].key = put_str(&p, ev->meta[i].key);
    meta[i].value = put_str(&p, ev->meta[i].value);
  }
  c->ev.meta = ev->n_meta ? meta : NULL;
  c->ev.store = NULL;
  return c;
}

/* "id: REV\ndata: JSON\n\n" appended to the stream's out buffer. */
static int out_reserve(hub_stream *st, size_t more) {
  if (st->out_len + more <= st->out_cap) return 0;
  size_t cap = st->out_cap ? st->out_cap : 4096;
  while (cap < st->out_len + more) cap *= 2;
  char *o = realloc(st->out, cap);
  if (!o) return -1;
  st->out = o;
  st->out_cap = cap;
  return 0;
}

static int out_put(hub_stream *st, const char *p, size_t n) {
  if (out_reserve(st, n)) return -1;
  memcpy(st->out + st->out_len, p, n);
  st->out_len += n;
  return 0;
}

/* The SSE record of an event, malloc'ed. */
static char *format(const rstate_event *ev, size_t *len) {
  strbuf b = {0};
  strbuf_put(&b, "id: ", 4);
  strbuf_u64(&b, ev->revision);
  strbuf_put(&b, "\ndata: ", 7);
  eventfmt_json_sb(&b, ev, EVENTFMT_QUOTE64);
  strbuf_putc(&b, '\n');
  if (b.failed) {
    strbuf_free(&b);
    return NULL;
  }
  *len = b.len;
  char *fit = realloc(b.p, b.len); /* kept in the ring: its bytes are counted as text_len */
  return fit ? fit : b.p;
}

/* ---- names --------------------------------------------------------------- */

static bool covers(const hub_stream *st, const char *name) {
  for (size_t i = 0; i < st->n_names; i++) {
    const char *p = st->names[i];
    size_t n = strlen(p);
    if (n && p[n - 1] == '*') {
      if (strncmp(name, p, n - 1) == 0) return true;
    } else if (strcmp(name, p) == 0) {
      return true;
    }
  }
  return false;
}

/* ---- folding ------------------------------------------------------------- */

static void fold_free(hub_stream *st) {
  for (size_t i = 0; i < st->n_fold; i++) {
    free(st->fold[i].last);
    rstate_value_clear(&st->fold[i].old);
  }
  st->n_fold = 0;
}

/* Folds one ring event into the stream's pending folded events: a change
 * after a change of the same variable merges; anything else is kept as
 * its own item. Returns -1 when out of memory (the event is then lost to
 * this stream, and the stream is ended). */
static int fold_in(hub_stream *st, const entry *e) {
  const rstate_event *ev = &e->c->ev;
  for (size_t i = st->n_fold; i-- > 0;) {
    folded *f = &st->fold[i];
    if (strcmp(f->last->ev.name, ev->name) != 0) continue;
    if (f->last->ev.kind != RSTATE_EVENT_CHANGED || ev->kind != RSTATE_EVENT_CHANGED) break;
    copy *c = copy_event(ev);
    if (!c) return -1;
    free(f->last);
    f->last = c;
    f->coalesced += ev->coalesced ? ev->coalesced : 1;
    st->h->st.coalesced += ev->coalesced ? ev->coalesced : 1;
    return 0;
  }
  if (st->n_fold == st->cap_fold) {
    size_t nc = st->cap_fold ? st->cap_fold * 2 : 8;
    folded *a = realloc(st->fold, nc * sizeof *a);
    if (!a) return -1;
    st->fold = a;
    st->cap_fold = nc;
  }
  folded *f = &st->fold[st->n_fold];
  if (!(f->last = copy_event(ev))) return -1;
  f->old = (rstate_value){0};
  if (rstate_value_copy(&f->old, &ev->old_value) != RSTATE_OK) {
    free(f->last);
    return -1;
  }
  f->coalesced = ev->coalesced;
  st->n_fold++;
  return 0;
}

static int fold_cmp(const void *a, const void *b) {
  uint64_t x = ((const folded *)a)->last->ev.revision, y = ((const folded *)b)->last->ev.revision;
  return x < y ? -1 : x > y;
}

/* Drops the oldest eighth of the ring, folding it into the streams still
 * behind it. Lock held. */
static void drop_oldest(hub *h) {
  uint64_t upto = h->tail + (h->cap / 8 ? h->cap / 8 : 1);
  for (hub_stream *st = h->streams; st; st = st->next) {
    if (st->cursor >= upto) continue;
    for (uint64_t q = st->cursor < h->tail ? h->tail : st->cursor; q < upto; q++) {
      const entry *e = &h->ring[q % h->cap];
      if (e->c->ev.revision <= st->skip_upto || !covers(st, e->c->ev.name)) continue;
      if (fold_in(st, e) != 0) {
        /* out of memory: this stream would lose a change without counting
         * it, so it ends (its client reconnects and resumes or resyncs) */
        st->failed = true;
        break;
      }
    }
    st->cursor = upto;
  }
  for (; h->tail < upto; h->tail++) {
    entry *e = &h->ring[h->tail % h->cap];
    h->lost_rev = e->c->ev.revision;
    h->st.ring_bytes -= e->c->bytes + e->text_len;
    free(e->c);
    free(e->text);
    *e = (entry){0};
  }
}

/* ---- the watch ------------------------------------------------------------ */

static int on_event(const rstate_event *ev, void *ud) {
  hub *h = ud;
  copy *c = copy_event(ev);
  pthread_mutex_lock(&h->mu);
  h->st.events_in++;
  if (c) {
    if (h->head - h->tail == h->cap) drop_oldest(h);
    h->ring[h->head % h->cap] = (entry){.c = c};
    h->head++;
    h->st.ring_bytes += c->bytes;
  } else {
    /* out of memory: the ring cannot hold this change. No stream may lose
     * it silently: every stream ends (clients reconnect and resume, or get
     * RESYNC, since no replay may cross this revision). */
    fprintf(stderr, "rstated: warn: http: out of memory copying the change of %s: every stream is ended\n", ev->name);
    h->lost_rev = ev->revision;
    for (hub_stream *st = h->streams; st; st = st->next) st->failed = true;
  }
  if (!h->dirty) {
    h->dirty = true;
    pthread_cond_signal(&h->cond);
  }
  pthread_mutex_unlock(&h->mu);
  return RSTATE_CONTINUE;
}

/* Lock held: skips what the stream does not cover; true when it has
 * something to send. */
static bool ready(hub_stream *st) {
  hub *h = st->h;
  if (h->stopping || st->failed || st->out_off < st->out_len || st->n_fold || st->heartbeat_due) return true;
  if (st->cursor < h->tail) st->cursor = h->tail;
  while (st->cursor < h->head) {
    const rstate_event *ev = &h->ring[st->cursor % h->cap].c->ev;
    if (ev->revision > st->skip_upto && covers(st, ev->name)) return true;
    st->cursor++;
  }
  return false;
}

static void *waker(void *arg) {
  hub *h = arg;
  if (h->on_thread) h->on_thread();
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  pthread_mutex_lock(&h->mu);
  while (!h->stopping) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    bool beat = now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec >= next.tv_nsec);
    if (beat) {
      next = now;
      next.tv_sec += h->heartbeat_ms / 1000;
      next.tv_nsec += (long)(h->heartbeat_ms % 1000) * 1000000;
      if (next.tv_nsec >= 1000000000) {
        next.tv_sec++;
        next.tv_nsec -= 1000000000;
      }
      for (hub_stream *st = h->streams; st; st = st->next) st->heartbeat_due = true;
    }
    if (beat || h->dirty) {
      h->dirty = false;
      for (hub_stream *st = h->streams; st; st = st->next)
        if (st->suspended && ready(st)) {
          st->suspended = false;
          st->o.wake(st->o.ud);
        }
    }
    if (!h->dirty) pthread_cond_timedwait(&h->cond, &h->mu, &next);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

int hub_start(hub **out, rstate_store *s, size_t capacity, int heartbeat_ms, void (*on_thread)(void)) {
  *out = NULL;
  hub *h = calloc(1, sizeof *h);
  if (!h) return RSTATE_ENOMEM;
  h->on_thread = on_thread;
  h->s = s;
  h->cap = capacity ? capacity : 65536;
  h->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 15000;
  h->ring = calloc(h->cap, sizeof *h->ring);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&h->mu, NULL);
  if (!h->ring) {
    hub_free(h);
    return RSTATE_ENOMEM;
  }
  const char *all[] = {"*"};
  /* lost_rev: the revision before the watch began (a change racing the
   * registration lands in the ring, with a revision above it) */
  h->lost_rev = rstate_revision(s);
  int rc = rstate_watch(s, all, 1, on_event, h, NULL, &h->watch);
  if (rc != RSTATE_OK) {
    h->watch = 0;
    hub_free(h);
    return rc;
  }
  if ((errno = pthread_create(&h->waker, NULL, waker, h)) != 0) {
    hub_free(h);
    return -1;
  }
  h->waker_started = true;
  *out = h;
  return 0;
}

void hub_shutdown(hub *h) {
  if (!h) return;
  pthread_mutex_lock(&h->mu);
  h->stopping = true;
  for (hub_stream *st = h->streams; st; st = st->next)
    if (st->suspended) {
      st->suspended = false;
      st->o.wake(st->o.ud);
    }
  pthread_cond_signal(&h->cond);
  pthread_mutex_unlock(&h->mu);
  if (h->waker_started) pthread_join(h->waker, NULL);
  h->waker_started = false;
  if (h->watch) rstate_unwatch(h->s, h->watch);
  h->watch = 0;
}

void hub_free(hub *h) {
  if (!h) return;
  hub_shutdown(h);
  while (h->streams) hub_stream_close(h->streams);
  for (uint64_t q = h->tail; h->ring && q < h->head; q++) {
    free(h->ring[q % h->cap].c);
    free(h->ring[q % h->cap].text);
  }
  free(h->ring);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cond);
  free(h);
}

void hub_get_stats(hub *h, hub_stats *out) {
  pthread_mutex_lock(&h->mu);
  *out = h->st;
  out->ring_entries = (size_t)(h->head - h->tail);
  out->ring_capacity = h->cap;
  pthread_mutex_unlock(&h->mu);
}

/* ---- streams -------------------------------------------------------------- */

typedef struct snapshot {
  hub_stream *st;
  char **names;
  size_t n, cap;
  int rc;
} snapshot;

static int list_one(const char *name, rstate_type type, void *ud) {
  (void)type;
  snapshot *sn = ud;
  if (!covers(sn->st, name)) return 0;
  if (sn->n == sn->cap) {
    size_t nc = sn->cap ? sn->cap * 2 : 16;
    char **a = realloc(sn->names, nc * sizeof *a);
    if (!a) return sn->rc = RSTATE_ENOMEM;
    sn->names = a;
    sn->cap = nc;
  }
  if (!(sn->names[sn->n] = strdup(name))) return sn->rc = RSTATE_ENOMEM;
  sn->n++;
  return 0;
}

/* The covered variables' current values as INITIAL or RESYNC records in
 * st->out, consistent with one store revision; st->skip_upto gets it.
 * Lock NOT held (the store is called). */
static int snapshot_into(hub *h, hub_stream *st, rstate_event_kind kind) {
  for (int attempt = 0;; attempt++) {
    snapshot sn = {.st = st};
    int rc = rstate_list(h->s, list_one, &sn);
    if (!rc) rc = sn.rc;
    rstate_value *vals = rc ? NULL : calloc(sn.n ? sn.n : 1, sizeof *vals);
    rstate_var_info *info = rc ? NULL : calloc(sn.n ? sn.n : 1, sizeof *info);
    if (!rc && (!vals || !info)) rc = RSTATE_ENOMEM;
    uint64_t rev = 0;
    if (!rc) rc = rstate_get_many(h->s, (const char *const *)sn.names, sn.n, vals, &rev);
    bool moved = false;
    for (size_t i = 0; !rc && i < sn.n; i++) {
      rc = rstate_info(h->s, sn.names[i], &info[i]);
      if (!rc && info[i].revision > rev) moved = true; /* changed after the snapshot: its version is newer */
    }
    if (rc == RSTATE_ENOTFOUND) moved = true, rc = 0; /* undefined meanwhile */
    if (!rc && (!moved || attempt >= 20)) {
      st->out_len = st->out_off = 0;
      for (size_t i = 0; i < sn.n && !rc; i++) {
        rstate_event ev = {.kind = kind,
                           .name = sn.names[i],
                           .type = info[i].type,
                           .new_value = vals[i],
                           .version = info[i].version,
                           .revision = rev,
                           .timestamp_ns = info[i].updated_ns,
                           .coalesced = 0};
        size_t len;
        char *t = format(&ev, &len);
        if (!t || out_put(st, t, len)) rc = RSTATE_ENOMEM;
        free(t);
      }
      st->n_pre = sn.n;
      st->skip_upto = rev;
    }
    for (size_t i = 0; i < sn.n; i++) {
      free(sn.names[i]);
      if (vals) rstate_value_clear(&vals[i]);
    }
    free(sn.names);
    free(vals);
    free(info);
    if (rc || !moved || attempt >= 20) return rc;
  }
}

/* First ring position whose revision is above rev. Lock held. */
static uint64_t position_after(const hub *h, uint64_t rev) {
  uint64_t lo = h->tail, hi = h->head;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (h->ring[mid % h->cap].c->ev.revision <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static void stream_free(hub_stream *st) {
  if (!st) return;
  fold_free(st);
  free(st->fold);
  for (size_t i = 0; i < st->n_names; i++) free(st->names[i]);
  free(st->names);
  free(st->out);
  free(st);
}

int hub_stream_open(hub *h, const hub_stream_opts *o, hub_stream **out, bool *resumed) {
  *out = NULL;
  if (resumed) *resumed = false;
  hub_stream *st = calloc(1, sizeof *st);
  if (!st || !(st->names = calloc(o->n_names ? o->n_names : 1, sizeof *st->names))) {
    free(st);
    return RSTATE_ENOMEM;
  }
  st->h = h;
  st->o = *o;
  st->o.names = NULL;
  for (size_t i = 0; i < o->n_names; i++) {
    if (!(st->names[i] = strdup(o->names[i]))) {
      stream_free(st);
      return RSTATE_ENOMEM;
    }
    st->n_names++;
    size_t n = strlen(o->names[i]);
    if (n && o->names[i][n - 1] == '*') continue;
    rstate_var_info info;
    int rc = rstate_info(h->s, o->names[i], &info);
    if (rc) {
      stream_free(st);
      return rc;
    }
  }
  for (int attempt = 0;; attempt++) {
    bool replay = false;
    if (o->has_after) {
      pthread_mutex_lock(&h->mu);
      uint64_t now = rstate_revision(h->s);
      if (o->after >= h->lost_rev && o->after <= now) {
        replay = true;
        st->skip_upto = o->after;
        st->cursor = position_after(h, o->after);
        st->prev = NULL;
        st->next = h->streams;
        if (h->streams) h->streams->prev = st;
        h->streams = st;
        h->st.streams_opened++;
        h->st.streams++;
      }
      pthread_mutex_unlock(&h->mu);
      if (replay) {
        if (resumed) *resumed = true;
        break;
      }
    }
    int rc = 0;
    if (o->has_after || o->initial)
      rc = snapshot_into(h, st, o->has_after ? RSTATE_EVENT_RESYNC : RSTATE_EVENT_INITIAL);
    else
      st->skip_upto = rstate_revision(h->s);
    if (rc) {
      stream_free(st);
      return rc;
    }
    pthread_mutex_lock(&h->mu);
    bool ok = h->lost_rev <= st->skip_upto || attempt >= 5;
    if (ok) {
      st->cursor = position_after(h, st->skip_upto);
      st->next = h->streams;
      if (h->streams) h->streams->prev = st;
      h->streams = st;
      h->st.streams_opened++;
      h->st.streams++;
      h->st.events_delivered += st->n_pre; /* the INITIAL or RESYNC records */
    }
    pthread_mutex_unlock(&h->mu);
    if (ok) break;
  }
  *out = st;
  return 0;
}

/* Lock held: formats what the stream has to send into its out buffer. */
static int fill(hub_stream *st, size_t max) {
  hub *h = st->h;
  st->out_len = st->out_off = 0;
  if (st->n_fold) {
    qsort(st->fold, st->n_fold, sizeof *st->fold, fold_cmp);
    for (size_t i = 0; i < st->n_fold; i++) {
      rstate_event ev = st->fold[i].last->ev;
      ev.old_value = st->fold[i].old;
      ev.coalesced = (uint32_t)(st->fold[i].coalesced > UINT32_MAX ? UINT32_MAX : st->fold[i].coalesced);
      size_t len;
      char *t = format(&ev, &len);
      if (!t || out_put(st, t, len)) {
        free(t);
        return -1;
      }
      free(t);
      h->st.events_delivered++;
    }
    fold_free(st);
    return 0;
  }
  if (st->cursor < h->tail) st->cursor = h->tail;
  while (st->cursor < h->head && st->out_len < max) {
    entry *e = &h->ring[st->cursor % h->cap];
    st->cursor++;
    if (e->c->ev.revision <= st->skip_upto || !covers(st, e->c->ev.name)) continue;
    if (!e->text) {
      if (!(e->text = format(&e->c->ev, &e->text_len))) return -1;
      h->st.ring_bytes += e->text_len;
    }
    if (out_put(st, e->text, e->text_len)) return -1;
    h->st.events_delivered++;
  }
  if (st->out_len == 0 && st->heartbeat_due) {
    static const char beat[] = ": heartbeat\n\n";
    if (out_put(st, beat, sizeof beat - 1)) return -1;
  }
  st->heartbeat_due = false;
  return 0;
}

long hub_read(hub_stream *st, char *buf, size_t max) {
  hub *h = st->h;
  pthread_mutex_lock(&h->mu);
  long r;
  if (h->stopping || (st->failed && st->out_off == st->out_len)) {
    r = -1;
  } else {
    if (st->out_off == st->out_len && fill(st, max) != 0) {
      fprintf(stderr, "rstated: warn: http: out of memory formatting a stream's events: the stream is ended\n");
      r = -1;
      goto done;
    }
    size_t n = st->out_len - st->out_off;
    if (n > max) n = max;
    if (n) memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out_len && st->out_cap > 1 << 20) { /* do not keep a burst's buffer */
      free(st->out);
      st->out = NULL;
      st->out_cap = st->out_len = st->out_off = 0;
    }
    r = (long)n;
    if (n == 0) {
      st->suspended = true;
      st->o.suspend(st->o.ud);
    }
  }
done:
  pthread_mutex_unlock(&h->mu);
  return r;
}

void hub_stream_close(hub_stream *st) {
  if (!st) return;
  hub *h = st->h;
  pthread_mutex_lock(&h->mu);
  if (st->prev) st->prev->next = st->next;
  else if (h->streams == st) h->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  h->st.streams--;
  h->st.streams_closed++;
  pthread_mutex_unlock(&h->mu);
  stream_free(st);
}
