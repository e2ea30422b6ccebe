/*
 * backend.c — the "redis:HOST:PORT/STORE" backend: a store kept in Redis 7,
 * shared by every process that opens the same STORE.
 *
 * Writes: each is one call of a Function of the library (library.c), which
 * decides existence, definition identity, versions, compare-and-set and the
 * revision atomically, and appends the change to the store's log (a stream
 * whose ids are the revisions). Values and definitions are checked here
 * first with the library's own checks (same codes and sentences as mem:),
 * against definitions read from Redis and kept by name with the revision
 * that defined them; the Function refuses a value checked against a
 * definition since replaced, and the set is checked again. Sets go through
 * the group commit of commit.c (several threads' sets in one call, several
 * calls in flight); define and undefine use the pooled connections.
 *
 * Watches: one reader thread per store tails the log (XREAD BLOCK) on a
 * connection of its own, and keeps a mirror of every variable as of the
 * last revision it read; it rests while the store has no watch (a writer
 * alone does not read its own changes back) and catches up for the next.
 * Watches are subscriptions (backend.h, version 2): a new watch's INITIAL
 * events come from the mirror, after the reader
 * caught up with the revision Redis had when the watch was made, and every
 * later entry goes to the watches that cover its changes. Each entry names
 * the previous change's token: when an entry does not follow the last one
 * read (the log was trimmed past it, a failover lost writes and reused
 * their revisions, the store was flushed and made again), the reader takes
 * a snapshot and sends each watch RESYNC, DEFINED and DELETED events for
 * what differs from the mirror. Inline callbacks run on the reader thread;
 * a set waits (up to request_timeout_ms) for the reader to have delivered
 * its change, so a single-threaded program has seen its own change when
 * rstate_set returns, as with unix: and tcp: stores.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "redis.h"

#define LOG_MAXLEN "100000" /* entries kept in a store's log (approximately: MAXLEN ~) */
#define BLOCK_MS 1000       /* the reader checks the store's epoch after this long without entries */
#define TOKEN_MAX 64
#define KEEP_DEFAULT 100    /* rstate_history: versions before the current one, by default */
#define HISTORY_PAGE "200"  /* log entries read per XREVRANGE while walking a variable's history */

typedef struct mvar { /* a variable as of the last revision read */
  char *name;
  size_t len;
  uint64_t hash;
  rstate_type type;
  uint64_t version, defrev;
  int64_t ts;
  rstate_value value; /* owned */
} mvar;

typedef struct cspec { /* a definition, for checking values */
  char *name;
  size_t len;
  uint64_t hash;
  uint64_t defrev;
  rstate__spec *spec;
} cspec;

typedef struct rsub {
  struct rsub *next;
  rstate_sub *handle;
  char **patterns;
  size_t *plens;
  size_t n;
} rsub;

#define POOL 4 /* callers' connections: writers on several threads overlap their round trips */

typedef struct pconn {
  pthread_mutex_t lock;
  rstate__redis_conn c;
} pconn;

typedef struct rds {
  rstate_host *host;
  char *uri;
  char *keys[4]; /* meta, defs, vars, log */
  rstate__addr addr;     /* redis: */
  rstate__addr *sentinels; /* redis-sentinel: */
  size_t n_sentinels;
  char *master;
  char *user, *pass;
  int connect_timeout_ms, request_timeout_ms, replicas, replica_timeout_ms;
  size_t keep; /* versions rstate_history gives before the current one (keep_versions, 0: 100) */
  bool no_reconnect;
  void (*on_state)(rstate_store *s, rstate_conn_state state, void *userdata);
  void *state_userdata;
  char token_base[24];
  atomic_uint_fast64_t token_n;

  pconn pool[POOL]; /* the callers' connections */
  rstate__redis_commit commit; /* sets: group commit on a connection of their own */
  atomic_uint next_conn;

  pthread_mutex_t spec_lock;
  rstate__map specs; /* name -> cspec */

  pthread_mutex_t lock; /* the reader's state below */
  pthread_cond_t cond;  /* emitted, delivered or connected changed */
  rstate__redis_conn rconn;
  int wake; /* eventfd: rstate_close wakes the reader out of its XREAD */
  pthread_t thread;
  bool started, closing, connected;
  uint64_t emitted, delivered; /* revisions: read and sent to watches; their callbacks ran */
  char tok[TOKEN_MAX + 1];     /* the token of revision `emitted` */
  char epoch[TOKEN_MAX + 1];
  rstate__map mirror; /* name -> mvar */
  rsub *subs;
  size_t n_subs;
  size_t joining; /* watches being made, waiting for the reader to catch up */
} rds;

#define R(b) ((rds *)(b))

static _Thread_local rds *reader_of; /* the store whose reader thread this is */

/* ---- small helpers ---- */

static int not_found(const char *name) {
  int rc = rstate__name_check(name);
  if (rc) return rc;
  return rstate__err(RSTATE_ENOTFOUND, "%s: no such variable", name);
}

static void next_token(rds *r, char *out) {
  uint64_t n = atomic_fetch_add(&r->token_n, 1);
  snprintf(out, TOKEN_MAX, "%s%" PRIx64, r->token_base, n);
}

static void copy_tok(char *dst, const rstate__resp *s) {
  size_t n = s && s->str ? s->len : 0;
  if (n > TOKEN_MAX) n = TOKEN_MAX;
  if (n) memcpy(dst, s->str, n);
  dst[n] = 0;
}

static bool is_tok(const char *tok, const rstate__resp *s) {
  return s && s->type == RSTATE_RESP_STRING && s->len == strlen(tok) && !memcmp(s->str, tok, s->len);
}

static void set_state(rds *r, bool up) {
  /* under lock; on_state runs outside it */
  if (r->connected == up) return;
  r->connected = up;
  pthread_cond_broadcast(&r->cond);
}

static void report(rds *r, rstate_conn_state st) {
  if (r->on_state) r->on_state(rstate_host_store(r->host), st, r->state_userdata);
}

static void mvar_free(mvar *v) {
  if (!v) return;
  rstate_value_clear(&v->value);
  free(v->name);
  free(v);
}

static void mirror_clear(rstate__map *m) {
  size_t it = 0;
  mvar *v;
  while ((v = rstate__map_next(m, &it))) mvar_free(v);
  rstate__map_free(m);
  rstate__map_init(m);
}

static mvar *mirror_get(rstate__map *m, const char *name, size_t len) {
  return rstate__map_get(m, name, len, rstate__hash(name, len));
}

/* Sets or adds a variable of the mirror; false on ENOMEM. */
static bool mirror_put(rstate__map *m, const char *name, size_t len, rstate_type type, uint64_t version,
                       uint64_t defrev, int64_t ts, const rstate_value *value) {
  mvar *v = mirror_get(m, name, len);
  rstate_value copy;
  if (rstate_value_copy(&copy, value)) return false;
  if (v) {
    rstate_value_clear(&v->value);
  } else {
    if (!(v = calloc(1, sizeof *v)) || !(v->name = malloc(len + 1)) || !rstate__map_reserve(m, 1)) {
      if (v) free(v->name);
      free(v);
      rstate_value_clear(&copy);
      return false;
    }
    memcpy(v->name, name, len);
    v->name[len] = 0;
    v->len = len;
    v->hash = rstate__hash(name, len);
    rstate__map_put(m, v->name, len, v->hash, v);
  }
  v->value = copy;
  v->type = type;
  v->version = version;
  v->defrev = defrev;
  v->ts = ts;
  return true;
}

static bool covers(const rsub *s, const char *name, size_t len) {
  for (size_t i = 0; i < s->n; i++)
    if (rstate__pattern_covers(s->patterns[i], s->plens[i], name, len)) return true;
  return false;
}

/* Connects to the primary: the address of the URI, or the one the
 * Sentinels name. */
static int connect_to(rds *r, rstate__redis_conn *c) {
  if (r->n_sentinels)
    return rstate__redis_sentinel_connect(c, r->sentinels, r->n_sentinels, r->master, r->uri, r->user, r->pass,
                                          r->connect_timeout_ms);
  return rstate__redis_connect(c, &r->addr, r->uri, r->user, r->pass, r->connect_timeout_ms);
}

/* A callers' connection, connected (locked: give it back with
 * release). RSTATE_ECLOSED when the primary cannot be reached now,
 * RSTATE_EPERM when it refuses the password. */
static int acquire(rds *r, pconn **out) {
  pconn *p = NULL;
  for (int i = 0; i < POOL && !p; i++)
    if (!pthread_mutex_trylock(&r->pool[i].lock)) p = &r->pool[i];
  if (!p) {
    p = &r->pool[atomic_fetch_add(&r->next_conn, 1) % POOL];
    pthread_mutex_lock(&p->lock);
  }
  int rc = RSTATE_OK;
  if (p->c.fd < 0 && (rc = connect_to(r, &p->c)) && rc != RSTATE_EPERM)
    rc = rstate__err(RSTATE_ECLOSED, "%s: not connected to Redis (%s)", r->uri, rstate_last_error());
  if (rc) {
    pthread_mutex_unlock(&p->lock);
    return rc;
  }
  *out = p;
  return RSTATE_OK;
}

static void release(pconn *p) { pthread_mutex_unlock(&p->lock); }

static int commit_connect(void *ud, rstate__redis_conn *c) { return connect_to(ud, c); }

/* ---- definitions, for checking values ---- */

static void cspec_free(cspec *c) {
  if (!c) return;
  rstate__spec_free(c->spec);
  free(c->name);
  free(c);
}

static void spec_forget(rds *r, const char *name) {
  size_t len = strlen(name);
  pthread_mutex_lock(&r->spec_lock);
  cspec *c = rstate__map_del(&r->specs, name, len, rstate__hash(name, len));
  pthread_mutex_unlock(&r->spec_lock);
  cspec_free(c);
}

/* Reads the definitions of the names not known yet (one call). A name that
 * is not defined stays unknown. */
static int spec_fetch(rds *r, const char *const *names, size_t n) {
  const char **want = malloc((n ? n : 1) * sizeof *want);
  if (!want) return rstate__err(RSTATE_ENOMEM, "%s: out of memory", r->uri);
  size_t k = 0;
  pthread_mutex_lock(&r->spec_lock);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(names[i]);
    if (!rstate__map_get(&r->specs, names[i], len, rstate__hash(names[i], len))) want[k++] = names[i];
  }
  pthread_mutex_unlock(&r->spec_lock);
  if (!k) {
    free(want);
    return RSTATE_OK;
  }
  rstate__resp *rep = NULL;
  pconn *p;
  int rc = acquire(r, &p);
  if (!rc) {
    rc = rstate__redis_fcall(&p->c, r->uri, r->request_timeout_ms, true, "defs", (const char *const *)r->keys, (int)k,
                             want, NULL, &rep);
    release(p);
  }
  if (!rc && (rep->type != RSTATE_RESP_ARRAY || rep->n != 2 * k))
    rc = rstate__err(RSTATE_EPROTO, "%s: unexpected answer to reading definitions", r->uri);
  for (size_t i = 0; !rc && i < k; i++) {
    const rstate__resp *d = &rep->elem[2 * i], *v = &rep->elem[2 * i + 1];
    if (d->type != RSTATE_RESP_STRING || v->type != RSTATE_RESP_STRING) continue; /* not defined */
    rstate__redis_def def;
    rstate__redis_rec rec;
    if ((rc = rstate__redis_get_rec(v->str, v->len, &rec))) break;
    if ((rc = rstate__redis_get_def(d->str, d->len, &def))) break;
    cspec *c = calloc(1, sizeof *c);
    rstate__spec *spec = NULL;
    if (!c || !(c->name = strdup(want[i])) || rstate__spec_new(&spec, &def.def)) {
      if (c) free(c->name);
      free(c);
      rstate__redis_def_free(&def);
      rc = spec ? RSTATE_ENOMEM : rstate__err(RSTATE_EPROTO, "%s: the store holds a definition of %s this library refuses",
                                              r->uri, want[i]);
      break;
    }
    rstate__redis_def_free(&def);
    c->spec = spec;
    c->defrev = rec.defrev;
    c->len = strlen(c->name);
    c->hash = rstate__hash(c->name, c->len);
    pthread_mutex_lock(&r->spec_lock);
    if (!rstate__map_get(&r->specs, c->name, c->len, c->hash) && rstate__map_reserve(&r->specs, 1)) {
      rstate__map_put(&r->specs, c->name, c->len, c->hash, c);
      c = NULL;
    }
    pthread_mutex_unlock(&r->spec_lock);
    cspec_free(c);
  }
  rstate__resp_free(rep);
  free(want);
  return rc;
}

/* The sentence of a define refused because the name is defined otherwise,
 * naming the part that differs as the mem: backend does: the stored
 * definition is read back for it (just "definition" if it cannot be). */
static int defined_differently(rds *r, const rstate_var_def *def, rstate_type stored) {
  if (stored != def->type) return rstate__defined_differently(def->name, stored, def->type, NULL);
  const char *part = "definition";
  rstate__spec *mine = NULL;
  spec_forget(r, def->name);
  if (spec_fetch(r, &def->name, 1) == RSTATE_OK && rstate__spec_new(&mine, def) == RSTATE_OK) {
    size_t len = strlen(def->name);
    pthread_mutex_lock(&r->spec_lock);
    cspec *c = rstate__map_get(&r->specs, def->name, len, rstate__hash(def->name, len));
    const char *d = c ? rstate__spec_diff(c->spec, mine) : NULL; /* a static string */
    pthread_mutex_unlock(&r->spec_lock);
    if (d) part = d;
  }
  rstate__spec_free(mine);
  return rstate__defined_differently(def->name, stored, def->type, part);
}

/* ---- calls on the callers' connection ---- */

/* One Function call. For a write that changed something (answered OK)
 * with replicas set, WAIT follows on the same connection: *acked is then
 * how many replicas confirmed, or -1 when they could not be asked (the
 * sentence in why). */
static int call(rds *r, bool ro, const char *fn, int argc, const char *const *argv, const size_t *lens,
                rstate__resp **rep, long long *acked, char *why, size_t why_size) {
  pconn *p;
  int rc = acquire(r, &p);
  if (rc) return rc;
  rc = rstate__redis_fcall(&p->c, r->uri, r->request_timeout_ms, ro, fn, (const char *const *)r->keys, argc, argv,
                           lens, rep);
  if (rc == RSTATE_ECLOSED) rstate__redis_conn_close(&p->c); /* READONLY: the next call looks for the primary */
  if (!rc && acked && r->replicas > 0 && (*rep)->type == RSTATE_RESP_ARRAY && (*rep)->n >= 1 &&
      rstate__resp_is(&(*rep)->elem[0], "OK")) {
    char n[16], ms[16];
    snprintf(n, sizeof n, "%d", r->replicas);
    snprintf(ms, sizeof ms, "%d", r->replica_timeout_ms);
    const char *wait[] = {"WAIT", n, ms};
    rstate__resp *w = NULL;
    int wrc = rstate__redis_command(&p->c, r->uri, r->replica_timeout_ms + r->request_timeout_ms, &w, 3, wait, NULL);
    *acked = !wrc && w->type == RSTATE_RESP_INTEGER ? w->integer : -1;
    snprintf(why, why_size, "%s", wrc ? rstate_last_error() : "unexpected answer to WAIT");
    rstate__resp_free(w);
  }
  release(p);
  return rc;
}

static void catch_up(rds *r, uint64_t rev);

/* Under lock: whether the reader follows the log now: while a watch (or
 * the taps' subscription) may get its entries, or one is being made. A
 * store nobody watches leaves the log alone: Redis then serves its XADDs
 * to the other clients' readers alone, and this process parses nothing. */
static bool tailing(const rds *r) { return r->n_subs > 0 || r->joining > 0; }

/* After a write that took a revision: the replicas' answer, then the
 * reader. */
static int after_write(rds *r, uint64_t rev, const char *what, long long acked, const char *why) {
  int rc = RSTATE_OK;
  if (r->replicas > 0 && acked < 0)
    rc = rstate__err(RSTATE_ETIMEDOUT,
                     "%s: the replicas could not be asked (%s): the change was applied on the primary only and may be "
                     "lost if it fails",
                     what, why);
  else if (r->replicas > 0 && acked < r->replicas)
    rc = rstate__err(RSTATE_ETIMEDOUT,
                     "%s: %lld of %d replicas confirmed within %d ms: the change was applied on the primary only and "
                     "may be lost if it fails",
                     what, acked, r->replicas, r->replica_timeout_ms);
  /* inline watchers have seen the change when the call returns. On the
   * reader thread (a callback's change) the reader reads up to it now: its
   * events are queued behind the running callback, and they count as one
   * more link of a feedback chain. */
  if (reader_of == r) {
    catch_up(r, rev);
  } else {
    int64_t deadline = rstate__realtime_ns() + (int64_t)r->request_timeout_ms * 1000000;
    struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    pthread_mutex_lock(&r->lock);
    /* wait while a watch may get the change, or while the reader delivers
     * it; asked again at every wakeup: once the last watch is gone (an
     * unwatch broadcasts cond), the reader rests and would never reach rev */
    while (r->connected && !r->closing && r->delivered < rev && (tailing(r) || r->emitted >= rev))
      if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&r->lock);
  }
  return rc;
}

static bool answer_is(const rstate__resp *rep, const char *s) {
  return rep->type == RSTATE_RESP_ARRAY && rep->n >= 1 && rstate__resp_is(&rep->elem[0], s);
}

static int bad_answer(rds *r, const char *what) {
  return rstate__err(RSTATE_EPROTO, "%s: unexpected answer from Redis to %s", r->uri, what);
}

/* A write the Function refused with an error (a key of another type, a
 * record it did not write, ...): nothing of it was written. */
static int not_applied(rds *r, const char *what, const rstate__resp *why) {
  int rc = rstate__redis_error(why, r->uri);
  return rstate__err(rc, "%s: not applied: %s", what, rstate_last_error());
}

/* A call of a define or undefine that failed on what Redis answered
 * (EPROTO: an error answer, or one that could not be read; EPERM: the
 * user's ACL refused it) names the variable, as a set's does. It does not
 * say "not applied": a reply that could not be read may follow a write
 * that was made (a refusal by the Function says itself that nothing was). */
static int call_failed(const char *name, int rc) {
  return rc == RSTATE_EPROTO || rc == RSTATE_EPERM ? rstate__err(rc, "%s: %s", name, rstate_last_error()) : rc;
}

/* ---- the operations ---- */

static int put_source_meta(rstate__resp_buf *src, rstate__resp_buf *meta, const rstate_set_opts *opts) {
  if (opts && opts->source) {
    if (rstate__resp_buf_put(src, "+", 1) || rstate__resp_buf_put(src, opts->source, strlen(opts->source)))
      return RSTATE_ENOMEM;
  } else if (rstate__resp_buf_put(src, "-", 1)) {
    return RSTATE_ENOMEM;
  }
  for (size_t i = 0; opts && i < opts->n_meta; i++)
    if (rstate__redis_pack(meta, opts->meta[i].key, strlen(opts->meta[i].key)) ||
        rstate__redis_pack(meta, opts->meta[i].value, strlen(opts->meta[i].value)))
      return RSTATE_ENOMEM;
  return RSTATE_OK;
}

static int rds_define(rstate_backend *b, const rstate_var_def *def) {
  rds *r = R(b);
  rstate__spec *spec;
  int rc = rstate__spec_new(&spec, def);
  if (rc) return rc;
  rstate__resp_buf text = {0}, init = {0};
  rc = rstate__redis_put_def(&text, def, spec);
  if (!rc && rstate__redis_put_value(&init, rstate__spec_initial(spec)))
    rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory", def->name);
  rstate_type type = rstate__spec_type(spec);
  rstate__spec_free(spec);
  if (rc) {
    rstate__resp_buf_free(&text);
    rstate__resp_buf_free(&init);
    return rc;
  }
  char tok[TOKEN_MAX + 1], ty[8];
  next_token(r, tok);
  snprintf(ty, sizeof ty, "%d", (int)type);
  const char *argv[] = {tok, "-", "", LOG_MAXLEN, def->name, text.p, ty, init.p};
  size_t lens[] = {strlen(tok), 1, 0, strlen(LOG_MAXLEN), strlen(def->name), text.len, strlen(ty), init.len};
  rstate__resp *rep = NULL;
  long long acked = 0;
  char why[256] = "";
  rc = call(r, false, "define", 8, argv, lens, &rep, &acked, why, sizeof why);
  rstate__resp_buf_free(&text);
  rstate__resp_buf_free(&init);
  if (rc) return call_failed(def->name, rc);
  uint64_t rev = 0;
  if (answer_is(rep, "SAME")) {
    rc = RSTATE_OK;
  } else if (answer_is(rep, "EEXIST") && rep->n == 2) {
    uint64_t t = 0;
    rstate__resp_u64(&rep->elem[1], &t);
    rc = defined_differently(r, def, (rstate_type)t);
  } else if (answer_is(rep, "OK") && rep->n == 2 && rstate__resp_u64(&rep->elem[1], &rev)) {
    spec_forget(r, def->name);
  } else {
    rc = bad_answer(r, "define");
  }
  rstate__resp_free(rep);
  if (!rc && rev) rc = after_write(r, rev, def->name, acked, why);
  return rc;
}

static int rds_undefine(rstate_backend *b, const char *name) {
  rds *r = R(b);
  char tok[TOKEN_MAX + 1];
  next_token(r, tok);
  const char *argv[] = {tok, "-", "", LOG_MAXLEN, name};
  rstate__resp *rep = NULL;
  long long acked = 0;
  char why[256] = "";
  int rc = call(r, false, "undefine", 5, argv, NULL, &rep, &acked, why, sizeof why);
  if (rc) return call_failed(name, rc);
  uint64_t rev = 0;
  if (answer_is(rep, "NOTFOUND"))
    rc = not_found(name);
  else if (!(answer_is(rep, "OK") && rep->n == 2 && rstate__resp_u64(&rep->elem[1], &rev)))
    rc = bad_answer(r, "undefine");
  rstate__resp_free(rep);
  spec_forget(r, name);
  if (!rc) rc = after_write(r, rev, name, acked, why);
  return rc;
}

/* get_many's work: the revision and each record, all present. */
static int read_vars(rds *r, const char *const *names, size_t n, rstate__resp **rep, uint64_t *rev) {
  int rc = call(r, true, "get", (int)n, names, NULL, rep, NULL, NULL, 0);
  if (rc) return rc;
  if ((*rep)->type != RSTATE_RESP_ARRAY || (*rep)->n != n + 1 || !rstate__resp_u64(&(*rep)->elem[0], rev)) {
    rstate__resp_free(*rep);
    *rep = NULL;
    return bad_answer(r, "get");
  }
  for (size_t i = 0; i < n; i++) {
    if ((*rep)->elem[i + 1].type != RSTATE_RESP_STRING) {
      rstate__resp_free(*rep);
      *rep = NULL;
      return not_found(names[i]);
    }
  }
  return RSTATE_OK;
}

static int rds_get(rstate_backend *b, const char *name, rstate_value *out, rstate_var_info *info) {
  rds *r = R(b);
  rstate__resp *rep;
  uint64_t rev;
  int rc = read_vars(r, &name, 1, &rep, &rev);
  if (rc) return rc;
  rstate__redis_rec rec;
  rc = rstate__redis_get_rec(rep->elem[1].str, rep->elem[1].len, &rec);
  if (!rc && out && rstate_value_copy(out, &rec.value)) rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the value", name);
  if (!rc && info) *info = (rstate_var_info){rec.type, rec.version, rec.revision, rec.ts};
  rstate__resp_free(rep);
  return rc;
}

static int rds_get_many(rstate_backend *b, const char *const *names, size_t n, rstate_value *out, uint64_t *revision) {
  rds *r = R(b);
  rstate__resp *rep;
  uint64_t rev;
  int rc = read_vars(r, names, n, &rep, &rev);
  if (rc) return rc;
  size_t i = 0;
  for (; i < n && !rc; i++) {
    rstate__redis_rec rec;
    rc = rstate__redis_get_rec(rep->elem[i + 1].str, rep->elem[i + 1].len, &rec);
    if (!rc && rstate_value_copy(&out[i], &rec.value))
      rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the value", names[i]);
  }
  if (rc)
    for (size_t k = 0; k + 1 < i; k++) rstate_value_clear(&out[k]);
  else if (revision)
    *revision = rev;
  rstate__resp_free(rep);
  return rc;
}

/* A snapshot of every variable: rev, token, epoch, and name/record pairs. */
static int snap_read(rds *r, rstate__redis_conn *c, rstate__resp **rep) {
  int rc = rstate__redis_fcall(c, r->uri, r->request_timeout_ms, true, "snap", (const char *const *)r->keys, 0, NULL,
                               NULL, rep);
  if (rc) return rc;
  const rstate__resp *p = *rep;
  uint64_t rev;
  if (p->type != RSTATE_RESP_ARRAY || p->n != 4 || !rstate__resp_u64(&p->elem[0], &rev) ||
      p->elem[3].type != RSTATE_RESP_ARRAY || p->elem[3].n % 2) {
    rstate__resp_free(*rep);
    *rep = NULL;
    return bad_answer(r, "snap");
  }
  return RSTATE_OK;
}

static int rds_snapshot(rstate_backend *b, const char *const *patterns, size_t n, rstate_snapshot_fn fn, void *ud,
                        uint64_t *revision) {
  rds *r = R(b);
  rstate__resp *rep;
  pconn *p;
  int rc = acquire(r, &p);
  if (rc) return rc;
  rc = snap_read(r, &p->c, &rep);
  release(p);
  if (rc) return rc;
  const rstate__resp *vars = &rep->elem[3];
  for (size_t i = 0; !rc && i < vars->n; i += 2) {
    const rstate__resp *name = &vars->elem[i], *v = &vars->elem[i + 1];
    bool want = false;
    for (size_t k = 0; k < n && !want; k++) want = rstate__pattern_covers(patterns[k], strlen(patterns[k]), name->str, name->len);
    if (!want) continue;
    rstate__redis_rec rec;
    if ((rc = rstate__redis_get_rec(v->str, v->len, &rec))) break;
    rstate_snapshot_var sv = {name->str, rec.type, &rec.value, rec.version, rec.ts};
    rc = fn(&sv, ud);
  }
  if (!rc && revision) rstate__resp_u64(&rep->elem[0], revision);
  rstate__resp_free(rep);
  return rc;
}

static uint64_t rds_revision(rstate_backend *b) {
  rds *r = R(b);
  rstate__resp *rep;
  uint64_t rev = 0;
  if (read_vars(r, NULL, 0, &rep, &rev)) return 0;
  rstate__resp_free(rep);
  return rev;
}

rstate__redis_commit *rstate__redis_commit_of(rstate_backend *b) { return &R(b)->commit; }

static int rds_set_many(rstate_backend *b, const rstate_assign *items, size_t n, const uint64_t *expected,
                        const rstate_set_opts *opts, size_t *failed_index) {
  rds *r = R(b);
  *failed_index = SIZE_MAX;
  const char **names = malloc((n ? n : 1) * sizeof *names);
  const char **argv = malloc((4 + 5 * n) * sizeof *argv);
  size_t *lens = malloc((4 + 5 * n) * sizeof *lens);
  char (*nums)[2][24] = malloc((n ? n : 1) * sizeof *nums);
  rstate__resp_buf *vals = calloc(n ? n : 1, sizeof *vals);
  rstate__resp_buf src = {0}, meta = {0};
  int rc = RSTATE_OK;
  if (!names || !argv || !lens || !nums || !vals || put_source_meta(&src, &meta, opts)) {
    rc = rstate__err(RSTATE_ENOMEM, "set: out of memory for %zu items", n);
    goto done;
  }
  for (size_t i = 0; i < n; i++) names[i] = items[i].name;
  for (int attempt = 0;; attempt++) {
    if ((rc = spec_fetch(r, names, n))) goto done;
    /* the values, checked here against the definitions as known */
    size_t upto = n, bad = SIZE_MAX;
    int bad_rc = 0;
    char bad_sentence[512] = "";
    for (size_t i = 0; i < n && upto == n; i++) {
      vals[i].len = 0;
      size_t len = strlen(names[i]);
      nums[i][0][0] = '0', nums[i][0][1] = 0;
      pthread_mutex_lock(&r->spec_lock);
      cspec *c = rstate__map_get(&r->specs, names[i], len, rstate__hash(names[i], len));
      rstate_value v = {0};
      int crc = RSTATE_OK;
      if (c) {
        snprintf(nums[i][0], sizeof nums[i][0], "%" PRIu64, c->defrev);
        crc = rstate__spec_check(c->spec, &items[i].value, &v);
        if (!crc && rstate__redis_put_value(&vals[i], &v)) crc = rstate__err(RSTATE_ENOMEM, "%s: out of memory", names[i]);
      }
      pthread_mutex_unlock(&r->spec_lock);
      if (crc) {
        bad = i, upto = i + 1, bad_rc = crc;
        snprintf(bad_sentence, sizeof bad_sentence, "%s", rstate_last_error());
      }
      snprintf(nums[i][1], sizeof nums[i][1], "%" PRIu64, expected ? expected[i] : 0);
    }
    char tok[TOKEN_MAX + 1], count[24];
    next_token(r, tok);
    snprintf(count, sizeof count, "%zu", upto);
    argv[0] = tok, lens[0] = strlen(tok);
    argv[1] = src.p, lens[1] = src.len;
    argv[2] = meta.p ? meta.p : "", lens[2] = meta.len;
    argv[3] = count, lens[3] = strlen(count);
    for (size_t i = 0; i < upto; i++) {
      const char **a = argv + 4 + 5 * i;
      size_t *l = lens + 4 + 5 * i;
      a[0] = names[i], l[0] = strlen(names[i]);
      a[1] = nums[i][0], l[1] = strlen(nums[i][0]);
      a[2] = nums[i][1], l[2] = strlen(nums[i][1]);
      a[3] = vals[i].p ? vals[i].p : "", l[3] = vals[i].len;
      a[4] = i == bad ? "1" : "0", l[4] = 1;
    }
    rstate__redis_req req = {.argv = argv, .lens = lens, .argc = (int)(4 + 5 * upto)};
    if ((rc = rstate__redis_commit_call(&r->commit, &req))) goto done;
    const rstate__resp *rep = req.answer;
    long long acked = req.acked;
    const char *why = req.why;
    uint64_t idx = 0, rev = 0, ver = 0;
    bool has_idx = rep->type == RSTATE_RESP_ARRAY && rep->n >= 2 && rstate__resp_u64(&rep->elem[1], &idx) && idx < upto;
    if (answer_is(rep, "SAME")) {
      rc = RSTATE_OK;
    } else if (answer_is(rep, "OK") && rep->n == 2 && rstate__resp_u64(&rep->elem[1], &rev)) {
      rc = RSTATE_OK;
    } else if (answer_is(rep, "STALE") && has_idx && attempt < 8) {
      spec_forget(r, names[idx]);
      rstate__redis_commit_release(&r->commit, &req);
      continue; /* checked against a definition since replaced: again */
    } else if (answer_is(rep, "NOTFOUND") && has_idx) {
      spec_forget(r, names[idx]);
      rc = not_found(names[idx]);
      *failed_index = idx;
    } else if (answer_is(rep, "TWICE") && has_idx) {
      rc = rstate__err(RSTATE_EINVAL, "%s: named twice in one set_many", names[idx]);
      *failed_index = idx;
    } else if (answer_is(rep, "CONFLICT") && has_idx && rep->n == 3 && rstate__resp_u64(&rep->elem[2], &ver)) {
      rc = rstate__err(RSTATE_ECONFLICT, "%s: version is %llu, not the expected %llu", names[idx],
                       (unsigned long long)ver, (unsigned long long)expected[idx]);
      *failed_index = idx;
    } else if (answer_is(rep, "BAD") && has_idx && idx == bad) {
      rc = rstate__err(bad_rc, "%s", bad_sentence);
      *failed_index = idx;
    } else if (answer_is(rep, "ERR") && rep->n >= 2 && rep->elem[1].type == RSTATE_RESP_STRING) {
      /* it raised inside the Function: nothing of it was written */
      bool blamed = rep->n == 3 && rstate__resp_u64(&rep->elem[2], &idx) && idx < upto;
      rc = not_applied(r, blamed ? names[idx] : n == 1 ? names[0] : "set_many", &rep->elem[1]);
      if (blamed) *failed_index = idx;
    } else {
      rc = bad_answer(r, "set");
    }
    rstate__redis_commit_release(&r->commit, &req);
    if (!rc && rev) rc = after_write(r, rev, n == 1 ? names[0] : "set_many", acked, why);
    break;
  }
done:
  for (size_t i = 0; vals && i < n; i++) rstate__resp_buf_free(&vals[i]);
  free(vals);
  free(nums);
  free(lens);
  free(argv);
  free(names);
  rstate__resp_buf_free(&src);
  rstate__resp_buf_free(&meta);
  return rc;
}

/* ---- the reader: log entries to watches ---- */

typedef struct entry_change {
  rstate_event_kind kind;
  rstate_type type;
  uint64_t version;
  const char *name;
  size_t len;
  rstate_value old_value, new_value;
  char *name_copy;
} entry_change;

/* Parses one change "KIND TYPE VERSION NAME OLD NEW" (packed items). */
static int parse_change(const char **p, const char *end, entry_change *c) {
  const char *s[6];
  size_t n[6];
  bool bad = false;
  for (int i = 0; i < 6; i++)
    if (!rstate__redis_unpack(p, end, &s[i], &n[i], &bad)) return RSTATE_EPROTO;
  memset(c, 0, sizeof *c);
  uint64_t t;
  if (n[0] != 1 || !strchr("CDX", s[0][0])) return RSTATE_EPROTO;
  c->kind = s[0][0] == 'C' ? RSTATE_EVENT_CHANGED : s[0][0] == 'D' ? RSTATE_EVENT_DEFINED : RSTATE_EVENT_DELETED;
  rstate__resp fake = {.type = RSTATE_RESP_STRING, .str = s[1], .len = n[1]};
  if (!rstate__resp_u64(&fake, &t) || t < RSTATE_TYPE_FLOAT || t > RSTATE_TYPE_MODULE) return RSTATE_EPROTO;
  c->type = (rstate_type)t;
  fake.str = s[2], fake.len = n[2];
  if (!rstate__resp_u64(&fake, &c->version)) return RSTATE_EPROTO;
  if (!(c->name_copy = malloc(n[3] + 1))) return RSTATE_ENOMEM;
  memcpy(c->name_copy, s[3], n[3]);
  c->name_copy[n[3]] = 0;
  c->name = c->name_copy;
  c->len = n[3];
  /* values borrow the entry's text, which is not NUL-terminated inside:
   * strings are copied where needed (the mirror) */
  if (n[4] && rstate__redis_get_value(s[4], n[4], &c->old_value)) return RSTATE_EPROTO;
  if (n[5] && rstate__redis_get_value(s[5], n[5], &c->new_value)) return RSTATE_EPROTO;
  return RSTATE_OK;
}

static const rstate__resp *field_of(const rstate__resp *fields, const char *key) {
  for (size_t i = 0; i + 1 < fields->n; i += 2)
    if (rstate__resp_is(&fields->elem[i], key)) return &fields->elem[i + 1];
  return NULL;
}

/* Copies a packed value's string so that it is NUL-terminated. */
static int own_strings(entry_change *c, char **keep) {
  for (int w = 0; w < 2; w++) {
    rstate_value *v = w ? &c->new_value : &c->old_value;
    if (v->kind != RSTATE_STRING) continue;
    char *s = malloc(v->u.s.len + 1);
    if (!s) return RSTATE_ENOMEM;
    memcpy(s, v->u.s.ptr, v->u.s.len);
    s[v->u.s.len] = 0;
    v->u.s.ptr = s;
    keep[w] = s;
  }
  return RSTATE_OK;
}

/* Sends one log entry (revision rev) to the watches and into the mirror.
 * Under lock. Returns RSTATE_EPROTO for an entry that does not parse. */
static int apply_entry(rds *r, uint64_t rev, const rstate__resp *fields) {
  const rstate__resp *cs = field_of(fields, "c"), *ts = field_of(fields, "ts"), *src = field_of(fields, "s"),
                     *m = field_of(fields, "m");
  uint64_t t = 0;
  if (!cs || !ts || !rstate__resp_u64(ts, &t) || cs->type != RSTATE_RESP_STRING) return RSTATE_EPROTO;
  size_t cap = 8, n = 0;
  entry_change *ch = malloc(cap * sizeof *ch);
  char **keep = NULL;
  rstate_meta *meta = NULL;
  size_t n_meta = 0;
  int rc = ch ? RSTATE_OK : RSTATE_ENOMEM;
  const char *p = cs->str, *end = cs->str + cs->len;
  while (!rc && p < end) {
    if (n == cap) {
      entry_change *nc = realloc(ch, 2 * cap * sizeof *ch);
      if (!nc) {
        rc = RSTATE_ENOMEM;
        break;
      }
      ch = nc, cap *= 2;
    }
    rc = parse_change(&p, end, &ch[n]);
    n++;
  }
  if (!rc && !(keep = calloc(2 * (n ? n : 1), sizeof *keep))) rc = RSTATE_ENOMEM;
  for (size_t i = 0; !rc && i < n; i++) rc = own_strings(&ch[i], keep + 2 * i);
  /* meta: packed key, value pairs */
  if (!rc && m && m->type == RSTATE_RESP_STRING) {
    const char *q = m->str, *qe = m->str + m->len, *str;
    size_t items = 0, k;
    bool bad = false;
    for (const char *x = q; rstate__redis_unpack(&x, qe, &str, &k, &bad);) items++;
    if (!(meta = calloc(items / 2 + 1, sizeof *meta))) rc = RSTATE_ENOMEM;
    for (size_t i = 0; !rc && i + 1 < items; i += 2) {
      const char *ks, *vs;
      size_t kl, vl;
      rstate__redis_unpack(&q, qe, &ks, &kl, &bad);
      rstate__redis_unpack(&q, qe, &vs, &vl, &bad);
      char *key = strndup(ks, kl), *val = strndup(vs, vl);
      meta[n_meta++] = (rstate_meta){key, val};
      if (!key || !val) rc = RSTATE_ENOMEM;
    }
  }
  char *source = NULL;
  if (!rc && src && src->type == RSTATE_RESP_STRING && src->len >= 1 && src->str[0] == '+')
    source = (char *)src->str + 1; /* NUL-terminated by the reply */

  if (!rc) {
    rstate_change *out = malloc((n ? n : 1) * sizeof *out);
    if (!out) rc = RSTATE_ENOMEM;
    for (rsub *s = r->subs; !rc && s; s = s->next) {
      size_t k = 0;
      for (size_t i = 0; i < n; i++) {
        if (!covers(s, ch[i].name, ch[i].len)) continue;
        out[k++] = (rstate_change){.kind = ch[i].kind,
                                   .name = ch[i].name,
                                   .type = ch[i].type,
                                   .old_value = ch[i].kind == RSTATE_EVENT_DEFINED ? NULL : &ch[i].old_value,
                                   .new_value = ch[i].kind == RSTATE_EVENT_DELETED ? NULL : &ch[i].new_value,
                                   .version = ch[i].version,
                                   .revision = rev,
                                   .timestamp_ns = (int64_t)t,
                                   .source = source,
                                   .meta = meta,
                                   .n_meta = n_meta};
      }
      if (k) rstate_host_emit_to(r->host, s->handle, out, NULL, k); /* ENOMEM: that watch misses it (logged nowhere yet) */
    }
    free(out);
    for (size_t i = 0; !rc && i < n; i++) {
      if (ch[i].kind == RSTATE_EVENT_DELETED) {
        mvar_free(rstate__map_del(&r->mirror, ch[i].name, ch[i].len, rstate__hash(ch[i].name, ch[i].len)));
      } else {
        mvar *old = mirror_get(&r->mirror, ch[i].name, ch[i].len);
        uint64_t defrev = ch[i].kind == RSTATE_EVENT_DEFINED ? rev : old ? old->defrev : 0;
        if (!mirror_put(&r->mirror, ch[i].name, ch[i].len, ch[i].type, ch[i].version, defrev, (int64_t)t,
                        &ch[i].new_value))
          rc = RSTATE_ENOMEM;
      }
    }
  }
  for (size_t i = 0; i < n; i++) free(ch[i].name_copy);
  for (size_t i = 0; keep && i < 2 * n; i++) free(keep[i]);
  for (size_t i = 0; i < n_meta; i++) {
    free((char *)meta[i].key);
    free((char *)meta[i].value);
  }
  free(meta);
  free(keep);
  free(ch);
  return rc;
}

/* What a watch that saw `was` is told about `now` after a gap: the rule the
 * remote backend follows too (types/resync.c); the revision that defined a
 * variable tells a re-definition for sure. */
static rstate_event_kind gap_event(const mvar *was, const mvar *now, uint32_t *coalesced) {
  rstate__seen w = {0}, n = {0};
  if (was) w = (rstate__seen){was->type, was->version, was->ts, &was->value, false};
  if (now) n = (rstate__seen){now->type, now->version, now->ts, &now->value, was && was->defrev != now->defrev};
  return rstate__resync_event(was ? &w : NULL, now ? &n : NULL, coalesced);
}

/* Under lock: replaces the mirror by a snapshot, telling every watch what
 * differs. snap is the answer of the snap function. */
static int resync(rds *r, const rstate__resp *snap) {
  rstate__map now;
  rstate__map_init(&now);
  const rstate__resp *vars = &snap->elem[3];
  int rc = RSTATE_OK;
  for (size_t i = 0; !rc && i < vars->n; i += 2) {
    rstate__redis_rec rec;
    if ((rc = rstate__redis_get_rec(vars->elem[i + 1].str, vars->elem[i + 1].len, &rec))) break;
    if (!mirror_put(&now, vars->elem[i].str, vars->elem[i].len, rec.type, rec.version, rec.defrev, rec.ts, &rec.value))
      rc = RSTATE_ENOMEM;
  }
  uint64_t rev = 0;
  rstate__resp_u64(&snap->elem[0], &rev);
  size_t cap = now.count + r->mirror.count + 1;
  rstate_change *out = rc ? NULL : malloc(cap * sizeof *out);
  uint32_t *co = rc ? NULL : malloc(cap * sizeof *co);
  if (!rc && (!out || !co)) rc = RSTATE_ENOMEM;
  int64_t now_ns = rstate__realtime_ns();
  for (rsub *s = r->subs; !rc && s; s = s->next) {
    size_t k = 0, it = 0;
    mvar *v;
    while ((v = rstate__map_next(&now, &it))) {
      if (!covers(s, v->name, v->len)) continue;
      mvar *was = mirror_get(&r->mirror, v->name, v->len);
      uint32_t c;
      rstate_event_kind kind = gap_event(was, v, &c);
      if (!kind) continue;
      out[k] = (rstate_change){.kind = kind, .name = v->name, .type = v->type,
                               .old_value = was ? &was->value : NULL, .new_value = &v->value,
                               .version = v->version, .revision = rev, .timestamp_ns = v->ts};
      co[k++] = c;
    }
    it = 0;
    while ((v = rstate__map_next(&r->mirror, &it))) {
      if (!covers(s, v->name, v->len) || mirror_get(&now, v->name, v->len)) continue;
      out[k] = (rstate_change){.kind = RSTATE_EVENT_DELETED, .name = v->name, .type = v->type,
                               .old_value = &v->value, .version = v->version, .revision = rev,
                               .timestamp_ns = now_ns};
      co[k++] = 1;
    }
    if (k) rstate_host_emit_to(r->host, s->handle, out, co, k);
  }
  free(out);
  free(co);
  if (rc) {
    mirror_clear(&now);
    rstate__map_free(&now);
    return rc;
  }
  mirror_clear(&r->mirror);
  rstate__map_free(&r->mirror);
  r->mirror = now;
  r->emitted = rev;
  copy_tok(r->tok, &snap->elem[1]);
  copy_tok(r->epoch, &snap->elem[2]);
  return RSTATE_OK;
}

/* Takes a snapshot on the reader's connection and resyncs (reader thread). */
static int full_sync(rds *r) {
  rstate__resp *snap = NULL;
  int rc = snap_read(r, &r->rconn, &snap);
  if (rc) return rc;
  pthread_mutex_lock(&r->lock);
  rc = resync(r, snap);
  pthread_mutex_unlock(&r->lock);
  rstate__resp_free(snap);
  return rc;
}

/* Whether what the reader saw still stands: the same epoch, and the store
 * at or past the last revision read with the same token there; when it is
 * past it, the log must still hold the next entry, following that token. */
static int check_epoch(rds *r, bool *gap, uint64_t *store_rev) {
  const char *argv[] = {"HMGET", r->keys[0], "rev", "tok", "epoch"};
  rstate__resp *rep = NULL;
  int rc = rstate__redis_command(&r->rconn, r->uri, r->request_timeout_ms, &rep, 5, argv, NULL);
  if (rc) return rc;
  if (rep->type != RSTATE_RESP_ARRAY || rep->n != 3) {
    rstate__resp_free(rep);
    return bad_answer(r, "HMGET");
  }
  uint64_t rev = 0;
  rstate__resp_u64(&rep->elem[0], &rev);
  if (store_rev) *store_rev = rev;
  pthread_mutex_lock(&r->lock);
  const rstate__resp *ep = &rep->elem[2];
  uint64_t emitted = r->emitted;
  char tok[TOKEN_MAX + 1];
  memcpy(tok, r->tok, sizeof tok);
  if (ep->type != RSTATE_RESP_STRING)
    *gap = r->epoch[0] != 0 || r->emitted != 0; /* the store is gone */
  else
    *gap = (r->epoch[0] && !is_tok(r->epoch, ep)) || rev < r->emitted ||
           (rev == r->emitted && !is_tok(r->tok, &rep->elem[1]));
  pthread_mutex_unlock(&r->lock);
  rstate__resp_free(rep);
  if (*gap || rev <= emitted) return RSTATE_OK;
  char id[32];
  snprintf(id, sizeof id, "%" PRIu64 "-0", emitted + 1);
  const char *xr[] = {"XRANGE", r->keys[3], id, id};
  if ((rc = rstate__redis_command(&r->rconn, r->uri, r->request_timeout_ms, &rep, 4, xr, NULL))) return rc;
  const rstate__resp *e = rstate__resp_at(rep, 0), *fields = rstate__resp_at(e, 1);
  *gap = !fields || fields->type != RSTATE_RESP_ARRAY || !is_tok(tok, field_of(fields, "p"));
  rstate__resp_free(rep);
  return RSTATE_OK;
}

/* One XREAD: entries after the last revision read, or none within
 * BLOCK_MS. Sets *gap when an entry does not follow. */
static int read_log(rds *r, bool *gap, bool *idle, bool wait) {
  char after[32], block[16];
  pthread_mutex_lock(&r->lock);
  snprintf(after, sizeof after, "%" PRIu64 "-0", r->emitted);
  pthread_mutex_unlock(&r->lock);
  snprintf(block, sizeof block, "%d", BLOCK_MS);
  const char *argv[] = {"XREAD", "COUNT", "1000", "BLOCK", block, "STREAMS", r->keys[3], after};
  const char *now[] = {"XREAD", "COUNT", "1000", "STREAMS", r->keys[3], after};
  rstate__resp *rep = NULL;
  int rc = wait ? rstate__redis_command(&r->rconn, r->uri, BLOCK_MS + r->request_timeout_ms, &rep, 8, argv, NULL)
                : rstate__redis_command(&r->rconn, r->uri, r->request_timeout_ms, &rep, 6, now, NULL);
  if (rc) return rc;
  *idle = rep->type == RSTATE_RESP_NIL;
  const rstate__resp *entries = NULL;
  if (!*idle) {
    const rstate__resp *k = rstate__resp_at(rep, 0);
    entries = rstate__resp_at(k, 1);
    if (!entries || entries->type != RSTATE_RESP_ARRAY) {
      rstate__resp_free(rep);
      return bad_answer(r, "XREAD");
    }
  }
  pthread_mutex_lock(&r->lock);
  for (size_t i = 0; !rc && entries && i < entries->n && !*gap; i++) {
    const rstate__resp *e = &entries->elem[i], *id = rstate__resp_at(e, 0), *fields = rstate__resp_at(e, 1);
    uint64_t rev = 0;
    if (!id || id->type != RSTATE_RESP_STRING || !fields || fields->type != RSTATE_RESP_ARRAY) {
      rc = bad_answer(r, "XREAD");
      break;
    }
    const char *dash = memchr(id->str, '-', id->len);
    rstate__resp num = {.type = RSTATE_RESP_STRING, .str = id->str, .len = dash ? (size_t)(dash - id->str) : 0};
    const rstate__resp *prev = field_of(fields, "p"), *tok = field_of(fields, "t");
    if (!rstate__resp_u64(&num, &rev) || !tok) {
      rc = bad_answer(r, "XREAD");
      break;
    }
    if (rev != r->emitted + 1 || !is_tok(r->tok, prev)) {
      *gap = true;
      break;
    }
    if (rev == 1 && !r->epoch[0]) copy_tok(r->epoch, tok); /* the store's first write names its epoch */
    rc = apply_entry(r, rev, fields);
    if (rc == RSTATE_EPROTO) rc = bad_answer(r, "XREAD (a log entry)");
    if (!rc) {
      r->emitted = rev;
      copy_tok(r->tok, tok);
    }
  }
  pthread_mutex_unlock(&r->lock);
  rstate__resp_free(rep);
  return rc;
}

/* On the reader thread, inside a callback: reads the log up to rev now. A
 * failure is left to the reader's loop, which finds the connection closed. */
static void catch_up(rds *r, uint64_t rev) {
  for (int i = 0; i < 64; i++) {
    pthread_mutex_lock(&r->lock);
    bool done = r->emitted >= rev || !r->connected;
    pthread_mutex_unlock(&r->lock);
    if (done || r->rconn.fd < 0) return;
    bool gap = false, idle = false;
    int rc = read_log(r, &gap, &idle, false);
    if (!rc && gap) rc = full_sync(r);
    if (rc || idle) return;
  }
}

static void delivered(rds *r) {
  rstate_host_deliver(r->host); /* inline callbacks, outside every lock */
  pthread_mutex_lock(&r->lock);
  r->delivered = r->emitted;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

/* Not tailing: waits up to BLOCK_MS for a watch (or close), then checks
 * that the connection still stands (on_state reports its loss). */
static int rest(rds *r, bool *join) {
  int64_t until = rstate__realtime_ns() + (int64_t)BLOCK_MS * 1000000;
  struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
  pthread_mutex_lock(&r->lock);
  while (!r->closing && !tailing(r))
    if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT) break;
  *join = tailing(r) && !r->closing;
  bool closing = r->closing;
  pthread_mutex_unlock(&r->lock);
  if (closing || *join) return RSTATE_OK;
  const char *ping[] = {"PING"};
  rstate__resp *rep = NULL;
  int rc = rstate__redis_command(&r->rconn, r->uri, r->request_timeout_ms, &rep, 1, ping, NULL);
  rstate__resp_free(rep);
  return rc;
}

/* Tailing again after a rest: the log since the last revision read, or a
 * snapshot when that is far behind (or no longer follows). */
static int rejoin(rds *r) {
  bool gap = false;
  uint64_t rev = 0;
  int rc = check_epoch(r, &gap, &rev);
  pthread_mutex_lock(&r->lock);
  bool far = rev > r->emitted + 1000;
  pthread_mutex_unlock(&r->lock);
  if (!rc && (gap || far)) rc = full_sync(r);
  return rc;
}

static void *reader_main(void *arg) {
  rds *r = arg;
  reader_of = r;
  int backoff_ms = 50;
  unsigned seed = (unsigned)rstate__monotonic_ns();
  for (;;) {
    pthread_mutex_lock(&r->lock);
    bool closing = r->closing, up = r->connected;
    pthread_mutex_unlock(&r->lock);
    if (closing) break;
    int rc = RSTATE_OK;
    if (!up) {
      if (r->no_reconnect) {
        pthread_mutex_lock(&r->lock);
        while (!r->closing) pthread_cond_wait(&r->cond, &r->lock);
        pthread_mutex_unlock(&r->lock);
        break;
      }
      /* rest before trying again, woken early by close */
      int64_t until = rstate__realtime_ns() + (int64_t)(backoff_ms / 2 + (int)(rand_r(&seed) % (unsigned)(backoff_ms / 2 + 1))) * 1000000;
      struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
      pthread_mutex_lock(&r->lock);
      while (!r->closing && pthread_cond_timedwait(&r->cond, &r->lock, &ts) != ETIMEDOUT) {
      }
      closing = r->closing;
      pthread_mutex_unlock(&r->lock);
      if (closing) break;
      if (backoff_ms < 2000) backoff_ms *= 2;
      rc = connect_to(r, &r->rconn);
      bool gap = false;
      if (!rc) rc = check_epoch(r, &gap, NULL);
      if (!rc && gap) rc = full_sync(r);
      if (rc) {
        rstate__redis_conn_close(&r->rconn);
        continue;
      }
      backoff_ms = 50;
      pthread_mutex_lock(&r->lock);
      set_state(r, true);
      pthread_mutex_unlock(&r->lock);
      delivered(r);
      report(r, RSTATE_STATE_CONNECTED);
      continue;
    }
    bool gap = false, idle = false;
    pthread_mutex_lock(&r->lock);
    bool tail = tailing(r);
    pthread_mutex_unlock(&r->lock);
    if (!tail) {
      bool join = false;
      if ((rc = rest(r, &join)) == RSTATE_OK && join) rc = rejoin(r);
      if (!rc) {
        if (join) delivered(r);
        continue;
      }
    } else {
      rc = read_log(r, &gap, &idle, true);
      if (!rc && idle) rc = check_epoch(r, &gap, NULL);
    }
    if (!rc && gap) rc = full_sync(r);
    if (!rc) {
      delivered(r);
      continue;
    }
    /* lost: report, then reconnect and resume */
    rstate__redis_conn_close(&r->rconn);
    pthread_mutex_lock(&r->lock);
    closing = r->closing;
    set_state(r, false);
    pthread_mutex_unlock(&r->lock);
    delivered(r); /* what was emitted before the loss */
    if (!closing) report(r, RSTATE_STATE_DISCONNECTED);
    /* callers' connection too: its next call connects again */
  }
  return NULL;
}

/* ---- watches ---- */

static int by_name(const void *a, const void *b) {
  return strcmp(((const rstate_change *)a)->name, ((const rstate_change *)b)->name);
}

static int rds_subscribe(rstate_backend *b, rstate_sub *sub, const char *const *patterns, size_t n,
                         bool include_initial) {
  rds *r = R(b);
  rsub *s = calloc(1, sizeof *s);
  if (!s || !(s->patterns = calloc(n, sizeof *s->patterns)) || !(s->plens = calloc(n, sizeof *s->plens))) {
    if (s) free(s->patterns);
    free(s);
    return rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory");
  }
  s->handle = sub;
  s->n = n;
  for (size_t i = 0; i < n; i++) {
    if (!(s->patterns[i] = strdup(patterns[i]))) {
      for (size_t k = 0; k < i; k++) free(s->patterns[k]);
      free(s->patterns);
      free(s->plens);
      free(s);
      return rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory");
    }
    s->plens[i] = strlen(patterns[i]);
  }
  int rc = RSTATE_OK;
  /* the reader first catches up with the store as it is now, so that the
   * INITIAL events are no older than the call */
  if (reader_of != r) {
    uint64_t now = 0;
    rstate__resp *rep = NULL;
    pthread_mutex_lock(&r->lock);
    r->joining++; /* the reader follows the log again, if it rested */
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (!(rc = read_vars(r, NULL, 0, &rep, &now))) rstate__resp_free(rep);
    int64_t deadline = rstate__realtime_ns() + (int64_t)r->request_timeout_ms * 1000000;
    struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    pthread_mutex_lock(&r->lock);
    while (!rc && r->emitted < now && r->connected && !r->closing)
      if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT) break;
    if (!rc && !r->connected)
      rc = rstate__err(RSTATE_ECLOSED, "%s: not connected to Redis", r->uri);
    pthread_mutex_unlock(&r->lock);
  }
  pthread_mutex_lock(&r->lock);
  if (reader_of != r) r->joining--; /* added below (under this lock) or given up */
  if (!rc && include_initial) {
    size_t cap = r->mirror.count + 1, k = 0, it = 0;
    rstate_change *out = malloc(cap * sizeof *out);
    uint32_t *co = calloc(cap, sizeof *co);
    mvar *v;
    if (!out || !co) rc = rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory");
    while (!rc && (v = rstate__map_next(&r->mirror, &it))) {
      if (!covers(s, v->name, v->len)) continue;
      out[k++] = (rstate_change){.kind = RSTATE_EVENT_INITIAL, .name = v->name, .type = v->type,
                                 .new_value = &v->value, .version = v->version, .revision = r->emitted,
                                 .timestamp_ns = v->ts};
    }
    if (!rc && k) qsort(out, k, sizeof *out, by_name);
    if (!rc && k && rstate_host_emit_to(r->host, sub, out, co, k))
      rc = rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory for %zu initial events", k);
    free(out);
    free(co);
  }
  if (!rc) { /* at the end: watches get a change in the order they were made */
    rsub **tail = &r->subs;
    while (*tail) tail = &(*tail)->next;
    *tail = s;
    r->n_subs++;
    s = NULL;
  }
  pthread_mutex_unlock(&r->lock);
  if (s) {
    for (size_t i = 0; i < n; i++) free(s->patterns[i]);
    free(s->patterns);
    free(s->plens);
    free(s);
  }
  return rc;
}

static void sub_free(rsub *s) {
  for (size_t i = 0; i < s->n; i++) free(s->patterns[i]);
  free(s->patterns);
  free(s->plens);
  free(s);
}

static void rds_unsubscribe(rstate_backend *b, rstate_sub *sub) {
  rds *r = R(b);
  pthread_mutex_lock(&r->lock);
  for (rsub **p = &r->subs; *p; p = &(*p)->next) {
    if ((*p)->handle != sub) continue;
    rsub *s = *p;
    *p = s->next;
    r->n_subs--;
    sub_free(s);
    break;
  }
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

/* ---- history: read back from the log ---- */

/* rstate_history on a redis: store: the log holds every change with its
 * version, revision (the entry id), time, source, meta and new value, so a
 * variable's history is read back from it, newest first, from the entry of
 * its current version down to the revision that defined it (no further:
 * history starts again at a re-definition), at most keep versions before
 * the current one, and no older than the log reaches (about 100,000
 * entries of the whole store). Nothing is kept for it on writes. */

typedef struct hist_acc {
  rstate_history_entry *e; /* newest first */
  size_t n, cap;
} hist_acc;

static void hist_free(hist_acc *h) {
  for (size_t i = 0; i < h->n; i++) rstate__history_entry_free(&h->e[i]);
  free(h->e);
}

/* Appends an owned copy; false: out of memory. */
static bool hist_push(hist_acc *h, uint64_t version, uint64_t rev, int64_t ts, const rstate_value *v,
                      const rstate__resp *src, const rstate__resp *m) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 16;
    rstate_history_entry *e = realloc(h->e, cap * sizeof *e);
    if (!e) return false;
    h->e = e, h->cap = cap;
  }
  rstate_history_entry *e = &h->e[h->n];
  memset(e, 0, sizeof *e);
  e->version = version, e->revision = rev, e->timestamp_ns = ts;
  bool ok = rstate_value_copy(&e->value, v) == RSTATE_OK;
  if (ok && src && src->type == RSTATE_RESP_STRING && src->len >= 1 && src->str[0] == '+')
    ok = (e->source = strndup(src->str + 1, src->len - 1)) != NULL;
  if (ok && m && m->type == RSTATE_RESP_STRING) {
    const char *q = m->str, *qe = m->str + m->len, *str;
    size_t items = 0, k;
    bool bad = false;
    for (const char *x = q; rstate__redis_unpack(&x, qe, &str, &k, &bad);) items++;
    rstate_meta *meta = items / 2 ? calloc(items / 2, sizeof *meta) : NULL;
    ok = !(items / 2) || meta;
    e->meta = meta;
    for (size_t i = 0; ok && i + 1 < items; i += 2) {
      const char *ks, *vs;
      size_t kl, vl;
      rstate__redis_unpack(&q, qe, &ks, &kl, &bad);
      rstate__redis_unpack(&q, qe, &vs, &vl, &bad);
      meta[e->n_meta].key = strndup(ks, kl);
      meta[e->n_meta].value = strndup(vs, vl);
      e->n_meta++;
      ok = meta[e->n_meta - 1].key && meta[e->n_meta - 1].value;
    }
  }
  if (!ok) {
    rstate__history_entry_free(e);
    return false;
  }
  h->n++;
  return true;
}

/* Looks for name's change in one log entry; 1: found (pushed), 0: not in
 * it, negative: an error code. *defined: it was the definition. */
static int hist_entry(hist_acc *h, const char *name, size_t len, uint64_t rev, const rstate__resp *fields,
                      uint64_t *version, bool *defined) {
  const rstate__resp *cs = field_of(fields, "c"), *ts = field_of(fields, "ts");
  uint64_t t = 0;
  if (!cs || !ts || !rstate__resp_u64(ts, &t) || cs->type != RSTATE_RESP_STRING) return RSTATE_EPROTO;
  const char *p = cs->str, *end = cs->str + cs->len;
  int rc = 0;
  while (!rc && p < end) {
    entry_change c;
    rc = parse_change(&p, end, &c);
    bool mine = !rc && c.len == len && memcmp(c.name, name, len) == 0 && c.kind != RSTATE_EVENT_DELETED;
    if (mine) {
      char *str = NULL;
      if (c.new_value.kind == RSTATE_STRING) { /* NUL-terminated for the copy */
        if (!(str = strndup(c.new_value.u.s.ptr, c.new_value.u.s.len))) rc = RSTATE_ENOMEM;
        c.new_value.u.s.ptr = str;
      }
      if (!rc && !hist_push(h, c.version, rev, (int64_t)t, &c.new_value, field_of(fields, "s"), field_of(fields, "m")))
        rc = RSTATE_ENOMEM;
      free(str);
      *version = c.version;
      *defined = c.kind == RSTATE_EVENT_DEFINED;
    }
    free(c.name_copy);
    if (mine && !rc) return 1;
  }
  return rc;
}

static int rds_history(rstate_backend *b, const char *name, uint64_t after_version,
                       int (*fn)(const rstate_history_entry *e, void *ud), void *ud) {
  rds *r = R(b);
  rstate__resp *cur = NULL;
  uint64_t now;
  int rc = read_vars(r, &name, 1, &cur, &now);
  if (rc) return rc;
  rstate__redis_rec rec;
  if ((rc = rstate__redis_get_rec(cur->elem[1].str, cur->elem[1].len, &rec))) {
    rstate__resp_free(cur);
    return bad_answer(r, "get");
  }
  hist_acc h = {0};
  size_t want = r->keep < SIZE_MAX ? r->keep + 1 : SIZE_MAX; /* the current version and keep before it */
  char hi[32], lo[32];
  snprintf(hi, sizeof hi, "%" PRIu64 "-0", rec.revision);
  snprintf(lo, sizeof lo, "%" PRIu64 "-0", rec.defrev);
  size_t len = strlen(name);
  bool done = rec.version <= after_version, have_current = false;
  while (!rc && !done) {
    const char *argv[] = {"XREVRANGE", r->keys[3], hi, lo, "COUNT", HISTORY_PAGE};
    rstate__resp *rep = NULL;
    pconn *p;
    if ((rc = acquire(r, &p))) break;
    rc = rstate__redis_command(&p->c, r->uri, r->request_timeout_ms, &rep, 6, argv, NULL);
    if (rc == RSTATE_ECLOSED) rstate__redis_conn_close(&p->c);
    release(p);
    if (rc) break;
    if (rep->type != RSTATE_RESP_ARRAY) {
      rstate__resp_free(rep);
      rc = bad_answer(r, "XREVRANGE");
      break;
    }
    done = rep->n == 0;
    for (size_t i = 0; !rc && !done && i < rep->n; i++) {
      const rstate__resp *e = &rep->elem[i], *id = rstate__resp_at(e, 0), *fields = rstate__resp_at(e, 1);
      const char *dash = id && id->type == RSTATE_RESP_STRING ? memchr(id->str, '-', id->len) : NULL;
      rstate__resp num = {.type = RSTATE_RESP_STRING, .str = id ? id->str : NULL, .len = dash ? (size_t)(dash - id->str) : 0};
      uint64_t rev, version = 0;
      bool defined = false;
      if (!dash || !fields || fields->type != RSTATE_RESP_ARRAY || !rstate__resp_u64(&num, &rev)) {
        rc = bad_answer(r, "XREVRANGE");
        break;
      }
      snprintf(hi, sizeof hi, "(%" PRIu64 "-0", rev); /* the next page: below this entry */
      int got = hist_entry(&h, name, len, rev, fields, &version, &defined);
      if (got < 0) {
        rc = got == RSTATE_ENOMEM ? rstate__err(RSTATE_ENOMEM, "%s: out of memory copying its history", name)
                                  : bad_answer(r, "XREVRANGE (a log entry)");
        break;
      }
      if (!got) continue;
      if (version == rec.version) have_current = true;
      if (version > rec.version || (!have_current && h.n == 1 && version != rec.version)) {
        /* not this definition's (a race with a write): start again below */
        rstate__history_entry_free(&h.e[--h.n]);
        continue;
      }
      if (version <= after_version) { /* not asked for */
        rstate__history_entry_free(&h.e[--h.n]);
        done = true;
      }
      done = done || defined || version == 1 || h.n >= want;
    }
    rstate__resp_free(rep);
  }
  /* the log trimmed past the current version: it comes from the record */
  if (!rc && !have_current && rec.version > after_version) {
    for (size_t i = 0; i < h.n; i++) rstate__history_entry_free(&h.e[i]);
    h.n = 0;
    if (!hist_push(&h, rec.version, rec.revision, rec.ts, &rec.value, NULL, NULL))
      rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory copying its history", name);
  }
  rstate__resp_free(cur);
  for (size_t i = h.n; !rc && i > 0; i--) /* oldest first, no lock held */
    if (fn(&h.e[i - 1], ud)) break;
  hist_free(&h);
  return rc;
}

/* ---- open and close ---- */

static void rds_free(rds *r) {
  for (int i = 0; i < POOL; i++) {
    rstate__redis_conn_free(&r->pool[i].c);
    pthread_mutex_destroy(&r->pool[i].lock);
  }
  rstate__redis_commit_free(&r->commit);
  rstate__redis_conn_free(&r->rconn);
  mirror_clear(&r->mirror);
  rstate__map_free(&r->mirror);
  size_t it = 0;
  cspec *c;
  while ((c = rstate__map_next(&r->specs, &it))) cspec_free(c);
  rstate__map_free(&r->specs);
  while (r->subs) {
    rsub *s = r->subs;
    r->subs = s->next;
    sub_free(s);
  }
  for (int i = 0; i < 4; i++) free(r->keys[i]);
  if (r->wake >= 0) close(r->wake);
  free(r->uri);
  free(r->sentinels);
  free(r->master);
  free(r->user);
  free(r->pass);
  pthread_mutex_destroy(&r->spec_lock);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  free(r);
}

/* "redis:HOST:PORT/STORE": the address as "tcp:HOST:PORT", and the store;
 * "redis-sentinel:H1:P1,H2:P2/MASTER/STORE": the Sentinels and MASTER. */
static int parse_uri(rds *r, const char *uri) {
  bool sentinel = !strncmp(uri, "redis-sentinel:", 15);
  const char *rest = uri + (sentinel ? 15 : 6);
  const char *slash = strrchr(rest, '/');
  const char *form = sentinel ? "redis-sentinel:HOST:PORT,HOST:PORT/MASTER/STORE" : "redis:HOST:PORT/STORE";
  if (!slash || slash == rest || !slash[1])
    return rstate__err(RSTATE_EINVAL, "rstate_open: \"%s\": expected %s", uri, form);
  const char *store = slash + 1;
  size_t sl = strlen(store);
  if (sl > 200 || strspn(store, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") != sl)
    return rstate__err(RSTATE_EINVAL,
                       "rstate_open: \"%s\": a store name is 1 to 200 bytes of letters, digits and _.:-", uri);
  const char *hosts_end = slash;
  if (sentinel) {
    const char *m = slash - 1;
    while (m > rest && *m != '/') m--;
    if (m == rest || m + 1 == slash)
      return rstate__err(RSTATE_EINVAL, "rstate_open: \"%s\": expected %s", uri, form);
    if (!(r->master = strndup(m + 1, (size_t)(slash - m - 1))))
      return rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
    hosts_end = m;
  }
  char tcp[300];
  const char *p = rest;
  for (;;) {
    const char *comma = sentinel ? memchr(p, ',', (size_t)(hosts_end - p)) : NULL;
    const char *end = comma ? comma : hosts_end;
    if (end == p || (size_t)(end - p) + 5 >= sizeof tcp)
      return rstate__err(RSTATE_EINVAL, "rstate_open: \"%s\": expected %s", uri, form);
    snprintf(tcp, sizeof tcp, "tcp:%.*s", (int)(end - p), p);
    rstate__addr a;
    int rc = rstate__addr_parse(&a, tcp, "rstate_open");
    if (rc) return rc;
    if (!sentinel) {
      r->addr = a;
      break;
    }
    rstate__addr *na = realloc(r->sentinels, (r->n_sentinels + 1) * sizeof *na);
    if (!na) return rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
    r->sentinels = na;
    r->sentinels[r->n_sentinels++] = a;
    if (!comma) break;
    p = comma + 1;
  }
  static const char *const suffix[4] = {"meta", "defs", "vars", "log"};
  for (int i = 0; i < 4; i++) {
    size_t n = sl + 16;
    if (!(r->keys[i] = malloc(n))) return rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
    snprintf(r->keys[i], n, "rs:{%s}:%s", store, suffix[i]);
  }
  return RSTATE_OK;
}

static int rds_open(rstate_backend **out, const char *uri, const rstate_options *opts, rstate_host *host) {
  rds *r = calloc(1, sizeof *r);
  if (!r) return rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  for (int i = 0; i < POOL; i++) {
    pthread_mutex_init(&r->pool[i].lock, NULL);
    rstate__redis_conn_init(&r->pool[i].c);
  }
  pthread_mutex_init(&r->spec_lock, NULL);
  pthread_mutex_init(&r->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_cond_init(&r->cond, &ca);
  pthread_condattr_destroy(&ca);
  rstate__redis_conn_init(&r->rconn);
  rstate__redis_commit_init(&r->commit, &(rstate__redis_commit_conf){0});
  r->wake = r->rconn.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  rstate__map_init(&r->mirror);
  rstate__map_init(&r->specs);
  r->host = host;
  r->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 2000;
  r->request_timeout_ms = opts->request_timeout_ms ? opts->request_timeout_ms : 5000;
  r->replicas = opts->replicas;
  r->keep = opts->keep_versions ? opts->keep_versions : KEEP_DEFAULT;
  r->replica_timeout_ms = opts->replica_timeout_ms ? opts->replica_timeout_ms : 1000;
  r->no_reconnect = opts->no_reconnect;
  r->on_state = opts->on_state;
  r->state_userdata = opts->state_userdata;
  int rc = r->wake < 0 ? rstate__err(RSTATE_EIO, "rstate_open: eventfd: %s", strerror(errno)) : RSTATE_OK;
  if (!rc && (opts->replicas < 0 || opts->replica_timeout_ms < 0))
    rc = rstate__err(RSTATE_EINVAL, "rstate_open: replicas and replica_timeout_ms must not be negative");
  if (!rc && !(r->uri = strdup(uri))) rc = rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  if (!rc) rc = parse_uri(r, uri);
  r->commit.conf = (rstate__redis_commit_conf){.uri = r->uri,
                                               .keys = (const char *const *)r->keys,
                                               .maxlen = LOG_MAXLEN,
                                               .request_timeout_ms = r->request_timeout_ms,
                                               .replicas = r->replicas,
                                               .replica_timeout_ms = r->replica_timeout_ms,
                                               .connect = commit_connect,
                                               .ud = r};
  if (!rc && opts->token) {
    const char *colon = strchr(opts->token, ':');
    if (colon) {
      r->user = strndup(opts->token, (size_t)(colon - opts->token));
      r->pass = strdup(colon + 1);
    } else {
      r->pass = strdup(opts->token);
    }
    if (!r->pass || (colon && !r->user)) rc = rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  }
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) seed = (uint64_t)rstate__realtime_ns() ^ (uint64_t)getpid();
  snprintf(r->token_base, sizeof r->token_base, "%016" PRIx64 ".", seed);
  /* both connections now: a store that cannot be reached fails to open */
  if (!rc) rc = connect_to(r, &r->pool[0].c);
  if (!rc) rc = connect_to(r, &r->rconn);
  if (!rc) rc = full_sync(r);
  if (rc == RSTATE_ECLOSED) rc = rstate__err(RSTATE_EIO, "rstate_open: %s", rstate_last_error());
  if (!rc) {
    r->connected = true;
    r->delivered = r->emitted;
    if (pthread_create(&r->thread, NULL, reader_main, r))
      rc = rstate__err(RSTATE_ENOMEM, "rstate_open: %s: cannot start the reader thread", uri);
    else
      r->started = true;
  }
  if (rc) {
    rds_free(r);
    return rc;
  }
  *out = (rstate_backend *)r;
  report(r, RSTATE_STATE_CONNECTED);
  return RSTATE_OK;
}

static void rds_close(rstate_backend *b) {
  rds *r = R(b);
  pthread_mutex_lock(&r->lock);
  r->closing = true;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  uint64_t one = 1;
  if (write(r->wake, &one, sizeof one) < 0) { /* the counter is full: already woken */
  }
  if (r->started) pthread_join(r->thread, NULL);
  report(r, RSTATE_STATE_CLOSED);
  rds_free(r);
}

const rstate_backend_ops rstate__redis_ops = {
    .version = 3,
    .name = "redis",
    .open = rds_open,
    .close = rds_close,
    .define = rds_define,
    .undefine = rds_undefine,
    .get = rds_get,
    .get_many = rds_get_many,
    .snapshot = rds_snapshot,
    .set_many = rds_set_many,
    .revision = rds_revision,
    .subscribe = rds_subscribe,
    .unsubscribe = rds_unsubscribe,
    .history = rds_history,
};
