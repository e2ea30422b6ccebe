/*
 * store.c — the store front end: the public calls on variables.
 *
 * Checks arguments, hands each call to the store's backend through its
 * operations table, and never special-cases a backend: "mem:" is the local
 * backend behind this same front end. Backends are picked by URI scheme.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

extern const rstate_backend_ops rstate__local_ops;
extern const rstate_backend_ops rstate__remote_ops;
extern const rstate_backend_ops rstate__file_ops;
extern const rstate_backend_ops rstate__redis_ops;

static const struct {
  const char *scheme; /* including the colon */
  const rstate_backend_ops *ops;
} schemes[] = {
    {"mem:", &rstate__local_ops},
    {"unix:", &rstate__remote_ops},
    {"tcp:", &rstate__remote_ops},
    {"file:", &rstate__file_ops},
    {"redis:", &rstate__redis_ops},
    {"redis-sentinel:", &rstate__redis_ops},
};

#define CHECK_STORE(s, fn) \
  if (!(s)) return rstate__err(RSTATE_EINVAL, "%s: store is NULL", fn)
#define CHECK_NAME(name, fn) \
  if (!(name)) return rstate__err(RSTATE_EINVAL, "%s: name is NULL", fn)

static void free_stripes(rstate_store *s) {
  pthread_rwlock_destroy(&s->tap_lock);
  pthread_mutex_destroy(&s->tap_sub_mu);
  pthread_mutex_destroy(&s->tap_mu);
  pthread_cond_destroy(&s->tap_moved);
  for (int i = 0; i < RSTATE_STRIPES; i++) {
    pthread_mutex_destroy(&s->stripes[i].lock);
    pthread_cond_destroy(&s->stripes[i].idle);
  }
}

/* The store on whole cache lines (its stripes are: store.h), from calloc
 * (which aligns to 16 only) with room to align it. */
static rstate_store *store_alloc(void) {
  char *block = calloc(1, sizeof(rstate_store) + RSTATE__CACHE_LINE);
  if (!block) return NULL;
  rstate_store *s = (rstate_store *)(block + (RSTATE__CACHE_LINE - (uintptr_t)block % RSTATE__CACHE_LINE));
  s->block = block;
  return s;
}

int rstate_open_backend(rstate_store **out, const rstate_backend_ops *ops, const char *uri,
                        const rstate_options *opts) {
  if (out) *out = NULL;
  if (!out || !ops || !uri) return rstate__err(RSTATE_EINVAL, "rstate_open: out, ops and uri must not be NULL");
  if (ops->version < 1 || ops->version > RSTATE_BACKEND_VERSION)
    return rstate__err(RSTATE_EINVAL, "rstate_open: backend table version %u is not one this library knows (1..%d)",
                       ops->version, RSTATE_BACKEND_VERSION);
  if (!ops->open || !ops->close || !ops->define || !ops->undefine || !ops->get || !ops->get_many || !ops->snapshot ||
      !ops->set_many || !ops->revision)
    return rstate__err(RSTATE_EINVAL, "rstate_open: backend \"%s\" lacks a required operation",
                       ops->name ? ops->name : "?");
  if (ops->version >= 2 && !ops->subscribe != !ops->unsubscribe)
    return rstate__err(RSTATE_EINVAL, "rstate_open: backend \"%s\" has only one of subscribe and unsubscribe",
                       ops->name ? ops->name : "?");
  if (opts && (opts->connect_timeout_ms < 0 || opts->request_timeout_ms < 0 || opts->heartbeat_ms < 0))
    return rstate__err(RSTATE_EINVAL, "rstate_open: timeouts and heartbeat_ms must not be negative");
  if (opts && (opts->sync_interval_ms < 0 || (unsigned)opts->sync > RSTATE_SYNC_NONE))
    return rstate__err(RSTATE_EINVAL, "rstate_open: sync must be an rstate_sync and sync_interval_ms not negative");
  if (opts && (opts->peer_uid < -1 || opts->peer_uid > UINT32_MAX - 1))
    return rstate__err(RSTATE_EINVAL, "rstate_open: peer_uid %lld is not a uid (0 to 4294967294), nor -1 (any)",
                       (long long)opts->peer_uid);

  rstate_store *s = store_alloc();
  if (!s) return rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  if (opts) s->opts = *opts;
  if (!rstate__strdup_opt(&s->token, s->opts.token)) {
    free(s->block);
    return rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  }
  s->opts.token = s->token;
  s->host.store = s;
  s->ops = ops;
  pthread_rwlock_init(&s->tap_lock, NULL);
  pthread_mutex_init(&s->tap_sub_mu, NULL);
  pthread_mutex_init(&s->tap_mu, NULL);
  pthread_cond_init(&s->tap_moved, NULL);
  for (int i = 0; i < RSTATE_STRIPES; i++) {
    pthread_mutex_init(&s->stripes[i].lock, NULL);
    pthread_cond_init(&s->stripes[i].idle, NULL);
  }
  int rc = RSTATE_OK;
  if (!(s->registry = rstate__registry_new())) rc = rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  if (!rc) rc = rstate__dispatch_new(&s->dispatch, s, s->opts.dispatch_thread);
  if (!rc) rc = ops->open(&s->backend, uri, &s->opts, &s->host);
  if (rc) {
    rstate__dispatch_free(s->dispatch);
    rstate__registry_free(s->registry);
    free_stripes(s);
    free(s->token);
    free(s->block);
    return rc;
  }
  *out = s;
  return RSTATE_OK;
}

int rstate_open(rstate_store **out, const char *uri, const rstate_options *opts) {
  if (out) *out = NULL;
  if (!out || !uri) return rstate__err(RSTATE_EINVAL, "rstate_open: out and uri must not be NULL");
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    if (strncmp(uri, schemes[i].scheme, strlen(schemes[i].scheme)) == 0)
      return rstate_open_backend(out, schemes[i].ops, uri, opts);
  }
  return rstate__err(RSTATE_EINVAL,
                     "rstate_open: \"%s\" is not a store URI (mem:, file:/dir, unix:/path, tcp:host:port, "
                     "redis:host:port/store)",
                     uri);
}

void rstate_close(rstate_store *s) {
  if (!s) return;
  rstate__tap_close_all(s);           /* its servers stop serving it */
  rstate__dispatch_stop(s->dispatch); /* no callback runs from here on */
  rstate__watch_close_all(s);
  s->ops->close(s->backend);
  rstate__dispatch_free(s->dispatch);
  rstate__registry_free(s->registry);
  free_stripes(s);
  free(s->token);
  free(s->block);
}

int rstate_define(rstate_store *s, const rstate_var_def *def) {
  CHECK_STORE(s, "rstate_define");
  if (!def) return rstate__err(RSTATE_EINVAL, "rstate_define: def is NULL");
  CHECK_NAME(def->name, "rstate_define");
  int rc = rstate__cascade_check("rstate_define", def->name);
  if (!rc) rc = s->ops->define(s->backend, def);
  rstate__deliver_claimed();
  return rc;
}

int rstate_undefine(rstate_store *s, const char *name) {
  CHECK_STORE(s, "rstate_undefine");
  CHECK_NAME(name, "rstate_undefine");
  int rc = rstate__cascade_check("rstate_undefine", name);
  if (!rc) rc = s->ops->undefine(s->backend, name);
  rstate__deliver_claimed();
  return rc;
}

int rstate_get(rstate_store *s, const char *name, rstate_value *out) {
  if (out) out->kind = RSTATE_NONE;
  CHECK_STORE(s, "rstate_get");
  CHECK_NAME(name, "rstate_get");
  if (!out) return rstate__err(RSTATE_EINVAL, "rstate_get: %s: out is NULL", name);
  return s->ops->get(s->backend, name, out, NULL);
}

int rstate_get_many(rstate_store *s, const char *const *names, size_t n, rstate_value *out, uint64_t *revision) {
  if (out)
    for (size_t i = 0; i < n; i++) out[i].kind = RSTATE_NONE;
  CHECK_STORE(s, "rstate_get_many");
  if (n && (!names || !out)) return rstate__err(RSTATE_EINVAL, "rstate_get_many: names and out must not be NULL");
  for (size_t i = 0; i < n; i++)
    if (!names[i]) return rstate__err(RSTATE_EINVAL, "rstate_get_many: names[%zu] is NULL", i);
  return s->ops->get_many(s->backend, names, n, out, revision);
}

int rstate_info(rstate_store *s, const char *name, rstate_var_info *out) {
  CHECK_STORE(s, "rstate_info");
  CHECK_NAME(name, "rstate_info");
  if (!out) return rstate__err(RSTATE_EINVAL, "rstate_info: %s: out is NULL", name);
  return s->ops->get(s->backend, name, NULL, out);
}

int rstate__serve_get(rstate_store *s, const char *name, rstate_value *out, rstate_var_info *info) {
  if (out) out->kind = RSTATE_NONE;
  CHECK_STORE(s, "rstate_get");
  CHECK_NAME(name, "rstate_get");
  return s->ops->get(s->backend, name, out, info);
}

uint64_t rstate_revision(rstate_store *s) { return s ? s->ops->revision(s->backend) : 0; }


/* rstate_list: the names of one snapshot, then the user's function with no
 * lock held, in name order. */
int rstate_list(rstate_store *s, int (*fn)(const char *name, rstate_type type, void *ud), void *ud) {
  CHECK_STORE(s, "rstate_list");
  if (!fn) return rstate__err(RSTATE_EINVAL, "rstate_list: fn is NULL");
  rstate__snap sn;
  const char *all = "*";
  int rc = rstate__snapshot_take(s, &all, 1, false, &sn, NULL, "rstate_list");
  for (size_t i = 0; !rc && i < sn.n; i++)
    if (fn(sn.vars[i].name, sn.vars[i].type, ud)) break;
  rstate__snap_free(&sn);
  return rc;
}

/* ---- setting ------------------------------------------------------------ */

/* name: the variable set, or NULL (a batch). */
static int check_set_opts(const rstate_set_opts *opts, const char *fn, const char *name) {
  if (!opts) return RSTATE_OK;
  const char *sep = name ? ": " : "";
  if (!name) name = "";
  if (opts->n_meta && !opts->meta)
    return rstate__err(RSTATE_EINVAL, "%s: %s%sn_meta is %zu but meta is NULL", fn, name, sep, opts->n_meta);
  if (opts->source && !rstate__utf8_valid(opts->source, strlen(opts->source)))
    return rstate__err(RSTATE_EINVAL, "%s: %s%sthe source is not valid UTF-8", fn, name, sep);
  for (size_t i = 0; i < opts->n_meta; i++) {
    const rstate_meta *m = &opts->meta[i];
    if (!m->key || !m->value)
      return rstate__err(RSTATE_EINVAL, "%s: %s%smeta[%zu] has a NULL key or value", fn, name, sep, i);
    if (!rstate__utf8_valid(m->key, strlen(m->key)) || !rstate__utf8_valid(m->value, strlen(m->value)))
      return rstate__err(RSTATE_EINVAL, "%s: %s%smeta[%zu] (key or value) is not valid UTF-8", fn, name, sep, i);
  }
  return RSTATE_OK;
}

/* failed: NULL, or where the backend's failed index goes. deliver: run the
 * inline watchers reached before returning (rstate__serve_set leaves them
 * to rstate__serve_deliver). */
static int set_checked(rstate_store *s, const char *name, const rstate_value *v, const uint64_t *expected,
                       const rstate_set_opts *opts, const char *fn, size_t *failed, bool deliver) {
  CHECK_STORE(s, fn);
  if (!name) return rstate__err(RSTATE_EINVAL, "%s: name is NULL", fn);
  if (!v) return rstate__err(RSTATE_EINVAL, "%s: %s: value is NULL", fn, name);
  int rc = check_set_opts(opts, fn, name);
  if (!rc) rc = rstate__cascade_check(fn, name);
  if (rc) return rc;
  rstate_assign item = {name, *v};
  size_t ignored;
  rc = s->ops->set_many(s->backend, &item, 1, expected, opts, failed ? failed : &ignored);
  if (deliver) rstate__deliver_claimed();
  return rc;
}

static int set_one(rstate_store *s, const char *name, const rstate_value *v, const uint64_t *expected,
                   const rstate_set_opts *opts, const char *fn, size_t *failed) {
  return set_checked(s, name, v, expected, opts, fn, failed, true);
}

int rstate_set(rstate_store *s, const char *name, const rstate_value *v, const rstate_set_opts *opts) {
  return set_one(s, name, v, NULL, opts, "rstate_set", NULL);
}

int rstate_set_if(rstate_store *s, const char *name, const rstate_value *v, uint64_t expected_version,
                  const rstate_set_opts *opts) {
  if (expected_version == 0 && s && name && v) { /* to backends 0 means "any version" */
    rstate_var_info info;
    int rc = s->ops->get(s->backend, name, NULL, &info);
    if (rc) return rc;
    return rstate__err(RSTATE_ECONFLICT, "%s: version is %llu, not the expected 0", name,
                       (unsigned long long)info.version);
  }
  return set_one(s, name, v, &expected_version, opts, "rstate_set_if", NULL);
}

static int set_many(rstate_store *s, const rstate_assign *items, size_t n, const uint64_t *expected,
                    const rstate_set_opts *opts, size_t *failed_index, bool deliver) {
  size_t failed = SIZE_MAX;
  int rc;
  if (!s) {
    rc = rstate__err(RSTATE_EINVAL, "rstate_set_many: store is NULL");
  } else if (n && !items) {
    rc = rstate__err(RSTATE_EINVAL, "rstate_set_many: items is NULL");
  } else if ((rc = check_set_opts(opts, "rstate_set_many", NULL)) == RSTATE_OK) {
    for (size_t i = 0; i < n && !rc; i++)
      if (!items[i].name) {
        failed = i;
        rc = rstate__err(RSTATE_EINVAL, "rstate_set_many: items[%zu].name is NULL", i);
      }
    if (!rc) rc = rstate__cascade_check("rstate_set_many", n ? items[0].name : NULL);
    if (!rc && n) rc = s->ops->set_many(s->backend, items, n, expected, opts, &failed);
    if (deliver) rstate__deliver_claimed();
  }
  if (failed_index) *failed_index = rc ? failed : SIZE_MAX;
  return rc;
}

int rstate_set_many(rstate_store *s, const rstate_assign *items, size_t n, const rstate_set_opts *opts,
                    size_t *failed_index) {
  return set_many(s, items, n, NULL, opts, failed_index, true);
}

int rstate__serve_set(rstate_store *s, const rstate_assign *items, size_t n, const uint64_t *expected,
                      const rstate_set_opts *opts, size_t *failed_index) {
  bool any = true; /* every expected version 0: the call was not a conditional one */
  for (size_t i = 0; expected && i < n && any; i++) any = expected[i] == 0;
  if (any) expected = NULL;
  if (n == 1 && items) {
    size_t failed = SIZE_MAX;
    int rc = set_checked(s, items[0].name, &items[0].value, expected, opts, expected ? "rstate_set_if" : "rstate_set",
                         &failed, false);
    if (failed_index) *failed_index = rc ? failed : SIZE_MAX;
    return rc;
  }
  return set_many(s, items, n, expected, opts, failed_index, false);
}

void rstate__serve_deliver(void) { rstate__deliver_claimed(); }

int rstate__serve_defer_durability(rstate_store *s, bool on) {
  if (s->ops->version < 6 || !s->ops->defer_durability) return RSTATE_OK;
  return s->ops->defer_durability(s->backend, on);
}

int rstate_set_float(rstate_store *s, const char *name, double v) {
  rstate_value x = rstate_float(v);
  return set_one(s, name, &x, NULL, NULL, "rstate_set_float", NULL);
}

int rstate_set_int(rstate_store *s, const char *name, int64_t v) {
  rstate_value x = rstate_int(v);
  return set_one(s, name, &x, NULL, NULL, "rstate_set_int", NULL);
}

int rstate_set_bool(rstate_store *s, const char *name, bool v) {
  rstate_value x = rstate_bool(v);
  return set_one(s, name, &x, NULL, NULL, "rstate_set_bool", NULL);
}

int rstate_set_string(rstate_store *s, const char *name, const char *v) {
  if (!v) return rstate__err(RSTATE_EINVAL, "rstate_set_string: %s: value is NULL", name ? name : "?");
  rstate_value x = rstate_string(v);
  return set_one(s, name, &x, NULL, NULL, "rstate_set_string", NULL);
}

/* Reads a variable for a scalar getter; ETYPE unless its kind is wanted. */
static int get_kind(rstate_store *s, const char *name, const void *out, rstate_value *v, rstate_kind want,
                    rstate_kind also, const char *fn) {
  CHECK_STORE(s, fn);
  if (!name) return rstate__err(RSTATE_EINVAL, "%s: name is NULL", fn);
  if (!out) return rstate__err(RSTATE_EINVAL, "%s: %s: out is NULL", fn, name);
  rstate_var_info info;
  int rc = s->ops->get(s->backend, name, v, &info);
  if (rc) return rc;
  if (v->kind != want && v->kind != also) {
    rstate_value_clear(v);
    return rstate__err(RSTATE_ETYPE, "%s: %s is a %s variable", fn, name, rstate_type_name(info.type));
  }
  return RSTATE_OK;
}

int rstate_get_float(rstate_store *s, const char *name, double *out) {
  rstate_value v;
  int rc = get_kind(s, name, out, &v, RSTATE_FLOAT, RSTATE_INT, "rstate_get_float");
  if (!rc) *out = v.kind == RSTATE_FLOAT ? v.u.f : (double)v.u.i;
  return rc;
}

int rstate_get_int(rstate_store *s, const char *name, int64_t *out) {
  rstate_value v;
  int rc = get_kind(s, name, out, &v, RSTATE_INT, RSTATE_INT, "rstate_get_int");
  if (!rc) *out = v.u.i;
  return rc;
}

int rstate_get_bool(rstate_store *s, const char *name, bool *out) {
  rstate_value v;
  int rc = get_kind(s, name, out, &v, RSTATE_BOOL, RSTATE_BOOL, "rstate_get_bool");
  if (!rc) *out = v.u.b;
  return rc;
}

int rstate_get_string(rstate_store *s, const char *name, char **out) {
  if (out) *out = NULL;
  rstate_value v;
  int rc = get_kind(s, name, out, &v, RSTATE_STRING, RSTATE_STRING, "rstate_get_string");
  if (!rc) *out = (char *)v.u.s.ptr; /* the copy rstate_get made, NUL-terminated: the caller frees it */
  return rc;
}

/* ---- history and rollback --------------------------------------------------- */

static bool keeps_history(const rstate_store *s) { return s->ops->version >= 3 && s->ops->history; }

int rstate_history(rstate_store *s, const char *name, uint64_t after_version,
                   int (*fn)(const rstate_history_entry *e, void *ud), void *ud) {
  CHECK_STORE(s, "rstate_history");
  CHECK_NAME(name, "rstate_history");
  if (!fn) return rstate__err(RSTATE_EINVAL, "rstate_history: %s: fn is NULL", name);
  if (!keeps_history(s)) return rstate__err(RSTATE_ENOTSUP, "rstate_history: %s: this store keeps no history", name);
  return s->ops->history(s->backend, name, after_version, fn, ud);
}

typedef struct rollback_acc {
  uint64_t want;
  bool found, nomem;
  rstate_value value;
  uint64_t current;
} rollback_acc;

static int rollback_collect(const rstate_history_entry *e, void *ud) {
  rollback_acc *acc = ud;
  if (e->version == acc->want) {
    acc->found = true;
    if (rstate_value_copy(&acc->value, &e->value)) acc->nomem = true;
  }
  acc->current = e->version;
  return 0;
}

/* Finds the value in the history (entries from that version on: the first
 * is it when kept, the last the current one), then sets it like any set. */
int rstate_rollback(rstate_store *s, const char *name, uint64_t version, const rstate_set_opts *opts) {
  CHECK_STORE(s, "rstate_rollback");
  CHECK_NAME(name, "rstate_rollback");
  if (!keeps_history(s)) return rstate__err(RSTATE_ENOTSUP, "rstate_rollback: %s: this store keeps no history", name);
  rollback_acc acc = {.want = version};
  int rc = s->ops->history(s->backend, name, version ? version - 1 : 0, rollback_collect, &acc);
  if (!rc && version == 0) {
    rstate_value_clear(&acc.value);
    return rstate__err(RSTATE_ENOTFOUND, "rstate_rollback: %s: there is no version 0", name);
  }
  if (!rc && acc.nomem) rc = rstate__err(RSTATE_ENOMEM, "rstate_rollback: %s: out of memory", name);
  if (!rc && !acc.current) {
    rstate_var_info info;
    rc = s->ops->get(s->backend, name, NULL, &info);
    if (!rc)
      rc = rstate__err(RSTATE_ECONFLICT, "rstate_rollback: %s: version %llu is above the current version %llu", name,
                       (unsigned long long)version, (unsigned long long)info.version);
  }
  if (!rc && !acc.found)
    rc = rstate__err(RSTATE_ENOTFOUND, "rstate_rollback: %s: version %llu is no longer kept", name,
                     (unsigned long long)version);
  if (!rc) rc = set_one(s, name, &acc.value, NULL, opts, "rstate_rollback", NULL);
  rstate_value_clear(&acc.value);
  return rc;
}

/* ---- rstated's snapshot: every variable out, and back in ----------------- */

int rstate__dump(rstate_store *s, rstate_snapshot_fn fn, void *ud, uint64_t *revision) {
  CHECK_STORE(s, "rstate_dump");
  if (!fn) return rstate__err(RSTATE_EINVAL, "rstate_dump: fn is NULL");
  const char *all = "*";
  return s->ops->snapshot(s->backend, &all, 1, fn, ud, revision);
}

int rstate__restore(rstate_store *s, const rstate_snapshot_var *vars, size_t n, uint64_t revision,
                    size_t *failed_index) {
  size_t failed = SIZE_MAX;
  int rc = RSTATE_OK;
  if (!s) {
    rc = rstate__err(RSTATE_EINVAL, "rstate_restore: store is NULL");
  } else if (n && !vars) {
    rc = rstate__err(RSTATE_EINVAL, "rstate_restore: vars is NULL");
  } else {
    for (size_t i = 0; i < n && !rc; i++) {
      if (!vars[i].name || !vars[i].value) {
        failed = i;
        rc = rstate__err(RSTATE_EINVAL, "rstate_restore: vars[%zu] has a NULL name or value", i);
      } else if (vars[i].version == 0) {
        failed = i;
        rc = rstate__err(RSTATE_EINVAL, "rstate_restore: %s: version 0 (versions start at 1)", vars[i].name);
      }
    }
    if (!rc && (s->ops->version < 5 || !s->ops->restore))
      rc = rstate__err(RSTATE_ENOTSUP, "rstate_restore: the %s backend cannot restore variables",
                       s->ops->name ? s->ops->name : "store's");
    if (!rc) rc = rstate__cascade_check("rstate_restore", n ? vars[0].name : NULL);
    if (!rc) rc = s->ops->restore(s->backend, vars, n, revision, &failed);
    rstate__deliver_claimed();
  }
  if (failed_index) *failed_index = rc ? failed : SIZE_MAX;
  return rc;
}
