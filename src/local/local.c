/*
 * local.c — the local backend: the variables of a "mem:" store.
 *
 * A hash table of variables under one mutex. Each variable holds its compiled
 * definition (types.c), its current value in the type's kind, its version and
 * the revision of its last change. Every accepted change is announced to the
 * front end with rstate_host_emit while the mutex is held and before the change
 * is applied, so changes reach watchers in revision order and a change whose
 * announcement cannot be queued is not applied at all.
 *
 * Hot paths (get and set of a scalar) take the mutex once and allocate nothing.
 *
 * History (keep_versions > 0): each variable keeps its last keep_versions + 1
 * versions (the current one and keep_versions before it) in a ring of
 * entries that own their strings. A change prepares its entry before it is
 * announced, so running out of memory abandons the change whole.
 *
 * The file: backend (src/file/) is this backend plus a journal hook and the
 * restore calls of local.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local.h"

typedef struct var {
  char *name;
  size_t len;
  uint64_t hash;
  rstate__spec *spec;
  rstate_type type;
  rstate_value value; /* owns its string */
  uint64_t version;
  uint64_t revision;
  int64_t updated_ns;
  uint64_t mark; /* set_many: the batch that last touched it (duplicate check) */
  /* history ring: h_n entries from h_start (mod h_cap); entries own their strings */
  rstate_history_entry *h;
  size_t h_cap, h_start, h_n;
} var;

typedef struct local {
  pthread_mutex_t lock;
  rstate__map vars;
  uint64_t revision;
  uint64_t batch; /* serial of set_many calls, for var.mark */
  rstate_host *host;
  size_t keep; /* entries kept per variable: keep_versions + 1, or 0 (no history) */
  rstate__local_journal journal; /* write NULL: none */
} local;

static local *L(rstate_backend *b) { return (local *)b; }

static var *lookup(local *l, const char *name) {
  size_t len = strlen(name);
  return rstate__map_get(&l->vars, name, len, rstate__hash(name, len));
}

/* ENOTFOUND for a well-formed name that is not defined, EINVAL for a bad one. */
static int not_found(const char *name) {
  int rc = rstate__name_check(name);
  if (rc) return rc;
  return rstate__err(RSTATE_ENOTFOUND, "%s: no such variable", name);
}

/* ---- history entries ----------------------------------------------------- */

static void hentry_clear(rstate_history_entry *e) {
  if (e->value.kind == RSTATE_STRING) rstate_value_clear(&e->value);
  free((char *)e->source);
  free((void *)e->meta); /* one block with its strings (meta_dup) */
  memset(e, 0, sizeof *e);
}

/* Copies meta pairs into one block: the array, then the strings. */
static rstate_meta *meta_dup(const rstate_meta *meta, size_t n) {
  if (!n) return NULL;
  size_t size = n * sizeof(rstate_meta);
  for (size_t i = 0; i < n; i++) size += strlen(meta[i].key) + strlen(meta[i].value) + 2;
  rstate_meta *m = malloc(size);
  if (!m) return NULL;
  char *p = (char *)(m + n);
  for (size_t i = 0; i < n; i++) {
    size_t kl = strlen(meta[i].key) + 1, vl = strlen(meta[i].value) + 1;
    memcpy(p, meta[i].key, kl);
    m[i].key = p;
    p += kl;
    memcpy(p, meta[i].value, vl);
    m[i].value = p;
    p += vl;
  }
  return m;
}

/* Fills e with owned copies; false on ENOMEM (e cleared). */
static bool hentry_make(rstate_history_entry *e, const rstate_value *value, uint64_t version, uint64_t revision,
                        int64_t ts, const char *source, const rstate_meta *meta, size_t n_meta) {
  memset(e, 0, sizeof *e);
  e->version = version;
  e->revision = revision;
  e->timestamp_ns = ts;
  bool ok = true;
  if (value->kind == RSTATE_STRING)
    ok = rstate_value_copy(&e->value, value) == RSTATE_OK;
  else
    e->value = *value;
  if (ok && source) ok = (e->source = strdup(source)) != NULL;
  if (ok && n_meta) {
    ok = (e->meta = meta_dup(meta, n_meta)) != NULL;
    e->n_meta = ok ? n_meta : 0;
  }
  if (!ok) hentry_clear(e);
  return ok;
}

/* Makes room in v's ring for one more entry; false on ENOMEM. */
static bool hist_reserve(local *l, var *v) {
  if (v->h_n < v->h_cap || v->h_cap == l->keep) return true; /* room, or full and rotating */
  size_t cap = v->h_cap ? v->h_cap * 2 : 4;
  if (cap > l->keep) cap = l->keep;
  rstate_history_entry *h = realloc(v->h, cap * sizeof *h);
  if (!h) return false;
  v->h = h; /* still linear: the ring only wraps once at l->keep */
  v->h_cap = cap;
  return true;
}

/* The slot for one more entry (room made by hist_reserve), the oldest one
 * dropped when full: to be filled whole by the caller. */
static rstate_history_entry *hist_slot(var *v) {
  if (v->h_n < v->h_cap) {
    size_t i = v->h_start + v->h_n++;
    return &v->h[i < v->h_cap ? i : i - v->h_cap];
  }
  rstate_history_entry *e = &v->h[v->h_start];
  hentry_clear(e);
  v->h_start = v->h_start + 1 < v->h_cap ? v->h_start + 1 : 0;
  return e;
}

/* Appends a prepared entry (moved in), dropping the oldest when full. */
static void hist_push(var *v, rstate_history_entry *e) {
  *hist_slot(v) = *e;
  memset(e, 0, sizeof *e);
}

/* Whether an entry owns memory (made before the change, so that running out
 * of it abandons the change) or is made in place after it (hist_put). */
static bool hentry_owns(const rstate_value *value, const char *source, size_t n_meta) {
  return value->kind == RSTATE_STRING || source || n_meta;
}

/* Appends an entry that owns nothing (a scalar, no source, no meta) made in
 * place in the ring. */
static void hist_put(var *v, const rstate_value *value, uint64_t version, uint64_t revision, int64_t ts) {
  rstate_history_entry *e = hist_slot(v);
  e->version = version;
  e->revision = revision;
  e->timestamp_ns = ts;
  e->value = *value;
  e->source = NULL;
  e->meta = NULL;
  e->n_meta = 0;
}

static void hist_free(var *v) {
  for (size_t i = 0; i < v->h_n; i++) hentry_clear(&v->h[(v->h_start + i) % v->h_cap]);
  free(v->h);
  v->h = NULL;
  v->h_cap = v->h_start = v->h_n = 0;
}

static const rstate_history_entry *hist_at(const var *v, size_t i) { return &v->h[(v->h_start + i) % v->h_cap]; }

static void var_free(var *v) {
  if (!v) return;
  hist_free(v);
  rstate_value_clear(&v->value);
  rstate__spec_free(v->spec);
  free(v->name);
  free(v);
}

int rstate__local_new(rstate_backend **out, rstate_host *host, size_t keep_versions,
                      const rstate__local_journal *journal) {
  local *l = calloc(1, sizeof *l);
  if (!l) return rstate__err(RSTATE_ENOMEM, "store: out of memory");
  pthread_mutex_init(&l->lock, NULL);
  rstate__map_init(&l->vars);
  l->host = host;
  l->keep = keep_versions ? (keep_versions < SIZE_MAX ? keep_versions + 1 : keep_versions) : 0;
  if (journal) l->journal = *journal;
  *out = (rstate_backend *)l;
  return RSTATE_OK;
}

static int local_open(rstate_backend **out, const char *uri, const rstate_options *opts, rstate_host *host) {
  if (strcmp(uri, "mem:") != 0) return rstate__err(RSTATE_EINVAL, "mem: store: unexpected URI \"%s\"", uri);
  return rstate__local_new(out, host, opts ? opts->keep_versions : 0, NULL);
}

/* Under lock: the variable takes the new value (moved out of *nv). */
static void take_value(var *v, rstate_value *nv) {
  if (v->value.kind == RSTATE_STRING) rstate_value_clear(&v->value);
  v->value = *nv;
  nv->kind = RSTATE_NONE;
}

/* Announces a change: the journal first, then the front end (none when
 * restoring into a store without host). */
static int announce(local *l, const rstate_change *c, size_t n, const rstate__spec *spec) {
  if (l->journal.write) {
    int rc = l->journal.write(l->journal.ud, c, n, spec);
    if (rc) return rc;
  }
  if (!l->host) return RSTATE_OK;
  int rc = rstate_host_emit(l->host, c, n);
  if (rc && l->journal.write && l->journal.undo) l->journal.undo(l->journal.ud);
  return rc;
}

static void local_close(rstate_backend *b) {
  local *l = L(b);
  size_t it = 0;
  var *v;
  while ((v = rstate__map_next(&l->vars, &it))) var_free(v);
  rstate__map_free(&l->vars);
  pthread_mutex_destroy(&l->lock);
  free(l);
}

static int local_define(rstate_backend *b, const rstate_var_def *def) {
  local *l = L(b);
  rstate__spec *spec;
  int rc = rstate__spec_new(&spec, def);
  if (rc) return rc;

  var *v = calloc(1, sizeof *v);
  if (!v || !(v->name = strdup(def->name)) || rstate_value_copy(&v->value, rstate__spec_initial(spec))) {
    if (v) free(v->name);
    free(v);
    rstate__spec_free(spec);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory defining the variable", def->name);
  }
  v->len = strlen(v->name);
  v->hash = rstate__hash(v->name, v->len);
  v->spec = spec;
  v->type = rstate__spec_type(spec);
  v->version = 1;
  v->updated_ns = rstate__realtime_ns();

  pthread_mutex_lock(&l->lock);
  var *old = rstate__map_get(&l->vars, v->name, v->len, v->hash);
  if (old) {
    const char *part = rstate__spec_diff(old->spec, spec);
    rstate_type type = old->type; /* old may be undefined once the lock is released */
    pthread_mutex_unlock(&l->lock);
    rstate_type asked = v->type;
    var_free(v);
    return part ? rstate__defined_differently(def->name, type, asked, part) : RSTATE_OK;
  }
  if (!rstate__map_reserve(&l->vars, 1)) {
    pthread_mutex_unlock(&l->lock);
    var_free(v);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory defining the variable", def->name);
  }
  v->revision = l->revision + 1;
  rstate_history_entry he;
  if (l->keep && (!hist_reserve(l, v) || !hentry_make(&he, &v->value, 1, v->revision, v->updated_ns, NULL, NULL, 0))) {
    pthread_mutex_unlock(&l->lock);
    var_free(v);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory defining the variable", def->name);
  }
  rstate_change ch = {.kind = RSTATE_EVENT_DEFINED,
                      .name = v->name,
                      .name_len = v->len,
                      .name_hash = v->hash,
                      .type = v->type,
                      .new_value = &v->value,
                      .version = 1,
                      .revision = v->revision,
                      .timestamp_ns = v->updated_ns};
  rc = announce(l, &ch, 1, spec);
  if (rc) {
    pthread_mutex_unlock(&l->lock);
    if (l->keep) hentry_clear(&he);
    var_free(v);
    return rc;
  }
  if (l->keep) hist_push(v, &he);
  rstate__map_put(&l->vars, v->name, v->len, v->hash, v);
  l->revision++;
  pthread_mutex_unlock(&l->lock);
  return RSTATE_OK;
}

static int local_undefine(rstate_backend *b, const char *name) {
  local *l = L(b);
  pthread_mutex_lock(&l->lock);
  var *v = lookup(l, name);
  if (!v) {
    pthread_mutex_unlock(&l->lock);
    return not_found(name);
  }
  rstate_change ch = {.kind = RSTATE_EVENT_DELETED,
                      .name = v->name,
                      .name_len = v->len,
                      .name_hash = v->hash,
                      .type = v->type,
                      .old_value = &v->value,
                      .version = v->version,
                      .revision = l->revision + 1,
                      .timestamp_ns = rstate__realtime_ns()};
  int rc = announce(l, &ch, 1, NULL);
  if (rc) {
    pthread_mutex_unlock(&l->lock);
    return rc;
  }
  rstate__map_del(&l->vars, v->name, v->len, v->hash);
  l->revision++;
  pthread_mutex_unlock(&l->lock);
  var_free(v);
  return RSTATE_OK;
}

static void fill_info(const var *v, rstate_var_info *info) {
  info->type = v->type;
  info->version = v->version;
  info->revision = v->revision;
  info->updated_ns = v->updated_ns;
}

static int local_get(rstate_backend *b, const char *name, rstate_value *out, rstate_var_info *info) {
  local *l = L(b);
  pthread_mutex_lock(&l->lock);
  var *v = lookup(l, name);
  if (!v) {
    pthread_mutex_unlock(&l->lock);
    return not_found(name);
  }
  int rc = RSTATE_OK;
  if (out) {
    if (v->value.kind == RSTATE_STRING)
      rc = rstate_value_copy(out, &v->value);
    else
      *out = v->value;
  }
  if (info) fill_info(v, info);
  pthread_mutex_unlock(&l->lock);
  if (rc) return rstate__err(rc, "%s: out of memory copying the value", name);
  return RSTATE_OK;
}

static int local_get_many(rstate_backend *b, const char *const *names, size_t n, rstate_value *out,
                          uint64_t *revision) {
  local *l = L(b);
  pthread_mutex_lock(&l->lock);
  for (size_t i = 0; i < n; i++) {
    if (!lookup(l, names[i])) {
      pthread_mutex_unlock(&l->lock);
      return not_found(names[i]);
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (rstate_value_copy(&out[i], &lookup(l, names[i])->value)) {
      pthread_mutex_unlock(&l->lock);
      for (size_t k = 0; k < i; k++) rstate_value_clear(&out[k]);
      return rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the value", names[i]);
    }
  }
  if (revision) *revision = l->revision;
  pthread_mutex_unlock(&l->lock);
  return RSTATE_OK;
}

static int snapshot_one(const var *v, rstate_snapshot_fn fn, void *ud) {
  rstate_snapshot_var sv = {v->name, v->type, &v->value, v->version, v->updated_ns};
  return fn(&sv, ud);
}

static int local_snapshot(rstate_backend *b, const char *const *patterns, size_t n, rstate_snapshot_fn fn, void *ud,
                          uint64_t *revision) {
  local *l = L(b);
  int rc = RSTATE_OK;
  bool any_prefix = false;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(patterns[i]);
    if (len && patterns[i][len - 1] == '*') any_prefix = true;
  }
  pthread_mutex_lock(&l->lock);
  if (any_prefix) {
    /* one walk over every variable, each reported once */
    size_t it = 0;
    var *v;
    while (!rc && (v = rstate__map_next(&l->vars, &it))) {
      for (size_t i = 0; i < n; i++) {
        if (rstate__pattern_covers(patterns[i], strlen(patterns[i]), v->name, v->len)) {
          rc = snapshot_one(v, fn, ud);
          break;
        }
      }
    }
  } else {
    /* exact names: direct lookups; a name given twice is reported once */
    for (size_t i = 0; i < n && !rc; i++) {
      var *v = lookup(l, patterns[i]);
      bool seen = false;
      for (size_t k = 0; k < i && !seen; k++) seen = strcmp(patterns[k], patterns[i]) == 0;
      if (v && !seen) rc = snapshot_one(v, fn, ud);
    }
  }
  if (revision) *revision = l->revision;
  pthread_mutex_unlock(&l->lock);
  return rc;
}

/* One item of a set_many that passed its checks and changes its variable. */
typedef struct pending {
  var *v;
  rstate_value value; /* coerced; a string is the owned copy to install */
  rstate_history_entry he; /* with history, when it owns memory: the entry to push */
  bool he_made;            /* he holds one (else it is made in place: hist_put) */
} pending;

static void pending_free(pending *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i].value.kind == RSTATE_STRING) rstate_value_clear(&p[i].value);
    if (p[i].he_made) hentry_clear(&p[i].he);
  }
}

static int local_set_many(rstate_backend *b, const rstate_assign *items, size_t n, const uint64_t *expected,
                          const rstate_set_opts *opts, size_t *failed_index) {
  local *l = L(b);
  pending stack_p[8];
  rstate_change stack_c[8];
  pending *p = stack_p;
  rstate_change *c = stack_c;
  if (n > 8) {
    p = malloc(n * sizeof *p);
    c = malloc(n * sizeof *c);
    if (!p || !c) {
      free(p == stack_p ? NULL : p);
      free(c == stack_c ? NULL : c);
      *failed_index = SIZE_MAX;
      return rstate__err(RSTATE_ENOMEM, "set: out of memory for %zu items", n);
    }
  }
  int rc = RSTATE_OK;
  size_t k = 0; /* items that change */

  pthread_mutex_lock(&l->lock);
  uint64_t batch = ++l->batch;
  for (size_t i = 0; i < n; i++) {
    var *v = lookup(l, items[i].name);
    if (!v) {
      rc = not_found(items[i].name);
    } else if (v->mark == batch) {
      rc = rstate__err(RSTATE_EINVAL, "%s: named twice in one set_many", v->name);
    } else if (expected && expected[i] && v->version != expected[i]) {
      rc = rstate__err(RSTATE_ECONFLICT, "%s: version is %llu, not the expected %llu", v->name,
                       (unsigned long long)v->version, (unsigned long long)expected[i]);
    } else {
      v->mark = batch;
      rstate_value value;
      rc = rstate__spec_check(v->spec, &items[i].value, &value);
      if (!rc && !rstate_value_equal(&value, &v->value)) {
        p[k].v = v;
        p[k].value = value;
        p[k].he_made = false;
        if (value.kind == RSTATE_STRING && rstate_value_copy(&p[k].value, &value)) {
          rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the value", v->name);
        } else {
          k++;
        }
      }
    }
    if (rc) {
      *failed_index = i;
      break;
    }
  }
  uint64_t revision = l->revision + 1;
  int64_t now = 0;
  if (!rc && k) now = rstate__realtime_ns();
  const char *source = opts ? opts->source : NULL;
  const rstate_meta *meta = opts ? opts->meta : NULL;
  size_t n_meta = opts ? opts->n_meta : 0;
  for (size_t i = 0; !rc && l->keep && i < k; i++) {
    if (!hist_reserve(l, p[i].v) ||
        (hentry_owns(&p[i].value, source, n_meta) &&
         !(p[i].he_made =
               hentry_make(&p[i].he, &p[i].value, p[i].v->version + 1, revision, now, source, meta, n_meta)))) {
      rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory keeping its history", p[i].v->name);
      *failed_index = SIZE_MAX;
    }
  }
  if (!rc && k) {
    for (size_t i = 0; i < k; i++) {
      c[i] = (rstate_change){.kind = RSTATE_EVENT_CHANGED,
                             .name = p[i].v->name,
                             .name_len = p[i].v->len,
                             .name_hash = p[i].v->hash,
                             .type = p[i].v->type,
                             .old_value = &p[i].v->value,
                             .new_value = &p[i].value,
                             .version = p[i].v->version + 1,
                             .revision = revision,
                             .timestamp_ns = now,
                             .source = opts ? opts->source : NULL,
                             .meta = opts ? opts->meta : NULL,
                             .n_meta = opts ? opts->n_meta : 0};
    }
    rc = announce(l, c, k, NULL);
    if (rc) {
      *failed_index = SIZE_MAX;
    } else {
      for (size_t i = 0; i < k; i++) {
        var *v = p[i].v;
        take_value(v, &p[i].value);
        v->version++;
        v->revision = revision;
        v->updated_ns = now;
        if (l->keep && p[i].he_made)
          hist_push(v, &p[i].he);
        else if (l->keep)
          hist_put(v, &v->value, v->version, revision, now);
      }
      l->revision = revision;
    }
  }
  pthread_mutex_unlock(&l->lock);
  pending_free(p, k);
  if (p != stack_p) {
    free(p);
    free(c);
  }
  return rc;
}

/* Backend version 5: puts variables back as a snapshot recorded them
 * (backend.h): all checks first, then one revision for what differs, kept
 * in the history like any change. */
static int local_restore(rstate_backend *b, const rstate_snapshot_var *vars, size_t n, uint64_t revision,
                         size_t *failed_index) {
  local *l = L(b);
  pending *p = calloc(n ? n : 1, sizeof *p);
  rstate_change *c = calloc(n ? n : 1, sizeof *c);
  size_t *from = calloc(n ? n : 1, sizeof *from); /* p[k] restores vars[from[k]] */
  if (!p || !c || !from) {
    free(p);
    free(c);
    free(from);
    *failed_index = SIZE_MAX;
    return rstate__err(RSTATE_ENOMEM, "restore: out of memory for %zu variables", n);
  }
  int rc = RSTATE_OK;
  size_t k = 0;
  pthread_mutex_lock(&l->lock);
  uint64_t batch = ++l->batch;
  for (size_t i = 0; i < n && !rc; i++) {
    var *v = lookup(l, vars[i].name);
    if (!v) {
      rc = not_found(vars[i].name);
    } else if (v->mark == batch) {
      rc = rstate__err(RSTATE_EINVAL, "%s: named twice in one restore", v->name);
    } else if (v->type != vars[i].type) {
      rc = rstate__err(RSTATE_ETYPE, "%s: a %s variable, not a %s one", v->name, rstate_type_name(v->type),
                       rstate_type_name(vars[i].type));
    } else if (vars[i].version < v->version) {
      rc = rstate__err(RSTATE_ECONFLICT, "%s: version %llu is below its current version %llu", v->name,
                       (unsigned long long)vars[i].version, (unsigned long long)v->version);
    } else {
      v->mark = batch;
      rstate_value value;
      rc = rstate__spec_check(v->spec, vars[i].value, &value);
      bool same = !rc && vars[i].version == v->version && rstate_value_equal(&value, &v->value);
      if (same && vars[i].updated_ns) v->updated_ns = vars[i].updated_ns; /* no change: no event */
      if (!rc && !same) {
        p[k].v = v;
        p[k].value = value;
        if (value.kind == RSTATE_STRING && rstate_value_copy(&p[k].value, &value))
          rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory copying the value", v->name);
        else
          from[k++] = i;
      }
    }
    if (rc) *failed_index = i;
  }
  uint64_t rev = revision > l->revision + 1 ? revision : l->revision + 1;
  int64_t now = 0;
  if (!rc && k) now = rstate__realtime_ns();
  for (size_t i = 0; !rc && l->keep && i < k; i++) {
    const rstate_snapshot_var *sv = &vars[from[i]];
    if (!hist_reserve(l, p[i].v) ||
        !(p[i].he_made = hentry_make(&p[i].he, &p[i].value, sv->version, rev, sv->updated_ns ? sv->updated_ns : now,
                                     NULL, NULL, 0))) {
      rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory keeping its history", p[i].v->name);
      *failed_index = SIZE_MAX;
    }
  }
  if (!rc && k) {
    for (size_t i = 0; i < k; i++) {
      const rstate_snapshot_var *sv = &vars[from[i]];
      c[i] = (rstate_change){.kind = RSTATE_EVENT_CHANGED,
                             .name = p[i].v->name,
                             .name_len = p[i].v->len,
                             .name_hash = p[i].v->hash,
                             .type = p[i].v->type,
                             .old_value = &p[i].v->value,
                             .new_value = &p[i].value,
                             .version = sv->version,
                             .revision = rev,
                             .timestamp_ns = sv->updated_ns ? sv->updated_ns : now};
    }
    rc = announce(l, c, k, NULL);
    if (rc) {
      *failed_index = SIZE_MAX;
    } else {
      for (size_t i = 0; i < k; i++) {
        var *v = p[i].v;
        take_value(v, &p[i].value);
        v->version = c[i].version;
        v->revision = rev;
        v->updated_ns = c[i].timestamp_ns;
        if (l->keep) hist_push(v, &p[i].he);
      }
      l->revision = rev;
    }
  }
  if (!rc && revision > l->revision) l->revision = revision;
  pthread_mutex_unlock(&l->lock);
  pending_free(p, k);
  free(p);
  free(c);
  free(from);
  return rc;
}

static uint64_t local_revision(rstate_backend *b) {
  local *l = L(b);
  pthread_mutex_lock(&l->lock);
  uint64_t r = l->revision;
  pthread_mutex_unlock(&l->lock);
  return r;
}

/* ---- history ---------------------------------------------------------------- */

static int local_history(rstate_backend *b, const char *name, uint64_t after_version,
                         int (*fn)(const rstate_history_entry *e, void *ud), void *ud) {
  local *l = L(b);
  if (!l->keep) return rstate__err(RSTATE_ENOTSUP, "%s: this store keeps no history (keep_versions is 0)", name);
  pthread_mutex_lock(&l->lock);
  var *v = lookup(l, name);
  if (!v) {
    pthread_mutex_unlock(&l->lock);
    return not_found(name);
  }
  /* copy what is asked for, then call fn with no lock held */
  size_t first = 0;
  while (first < v->h_n && hist_at(v, first)->version <= after_version) first++;
  size_t n = v->h_n - first;
  rstate_history_entry *copy = n ? calloc(n, sizeof *copy) : NULL;
  bool ok = !n || copy;
  for (size_t i = 0; ok && i < n; i++) {
    const rstate_history_entry *e = hist_at(v, first + i);
    ok = hentry_make(&copy[i], &e->value, e->version, e->revision, e->timestamp_ns, e->source, e->meta, e->n_meta);
    if (!ok) n = i;
  }
  pthread_mutex_unlock(&l->lock);
  int rc = RSTATE_OK;
  if (!ok) rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory copying its history", name);
  for (size_t i = 0; !rc && i < n; i++)
    if (fn(&copy[i], ud)) break;
  for (size_t i = 0; i < n; i++) hentry_clear(&copy[i]);
  free(copy);
  return rc;
}

/* ---- kept changes (version 4) ------------------------------------------------- */

/* One kept change, copied out: a variable's entry and the one before it. */
typedef struct kept {
  char *name;
  rstate_type type;
  rstate_value old_value; /* RSTATE_NONE for version 1 (DEFINED) */
  rstate_history_entry e; /* the change: its version, revision, value, source, meta */
} kept;

static int kept_cmp(const void *a, const void *b) {
  const kept *x = a, *y = b;
  if (x->e.revision != y->e.revision) return x->e.revision < y->e.revision ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void kept_free(kept *k, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(k[i].name);
    rstate_value_clear(&k[i].old_value);
    hentry_clear(&k[i].e);
  }
  free(k);
}

/* Every revision in (after, up_to] rebuilt from the variables' kept
 * versions: a revision is held when some variable keeps its change, and a
 * change is whole when the version before it is kept too (or it is the
 * definition). Undefines keep nothing, so a revision that undefined a
 * variable is never held. */
static int local_changes(rstate_backend *b, uint64_t after, uint64_t up_to,
                         int (*fn)(const rstate_change *c, size_t n, void *ud), void *ud) {
  local *l = L(b);
  if (!l->keep) return rstate__err(RSTATE_ENOTSUP, "this store keeps no history (keep_versions is 0)");
  if (up_to <= after) return RSTATE_OK;
  kept *k = NULL;
  size_t n = 0, cap = 0;
  int rc = RSTATE_OK;
  pthread_mutex_lock(&l->lock);
  if (up_to > l->revision) rc = rstate__err(RSTATE_ENOTFOUND, "revision %llu is above the store revision %llu",
                                            (unsigned long long)up_to, (unsigned long long)l->revision);
  size_t it = 0;
  var *v;
  while (!rc && (v = rstate__map_next(&l->vars, &it))) {
    for (size_t i = 0; !rc && i < v->h_n; i++) {
      const rstate_history_entry *e = hist_at(v, i);
      if (e->revision <= after || e->revision > up_to) continue;
      const rstate_history_entry *prev = i ? hist_at(v, i - 1) : NULL;
      if (e->version > 1 && (!prev || prev->version + 1 != e->version)) {
        rc = rstate__err(RSTATE_ENOTFOUND, "%s: version %llu, before revision %llu, is no longer kept", v->name,
                         (unsigned long long)(e->version - 1), (unsigned long long)e->revision);
        break;
      }
      if (n == cap) {
        size_t nc = cap ? 2 * cap : 64;
        kept *nk = realloc(k, nc * sizeof *nk);
        if (!nk) {
          rc = rstate__err(RSTATE_ENOMEM, "out of memory copying the kept changes");
          break;
        }
        k = nk;
        cap = nc;
      }
      kept *x = &k[n];
      memset(x, 0, sizeof *x);
      if (!(x->name = strdup(v->name)) ||
          !hentry_make(&x->e, &e->value, e->version, e->revision, e->timestamp_ns, e->source, e->meta, e->n_meta) ||
          (e->version > 1 && rstate_value_copy(&x->old_value, &prev->value))) {
        free(x->name);
        hentry_clear(&x->e);
        rc = rstate__err(RSTATE_ENOMEM, "out of memory copying the kept changes");
        break;
      }
      x->type = v->type;
      n++;
    }
  }
  pthread_mutex_unlock(&l->lock);
  if (!rc) qsort(k, n, sizeof *k, kept_cmp);
  /* all or nothing: every revision of the range must be there */
  size_t revs = 0;
  for (size_t i = 0; !rc && i < n; i++)
    if (!i || k[i].e.revision != k[i - 1].e.revision) revs++;
  if (!rc && revs != up_to - after)
    rc = rstate__err(RSTATE_ENOTFOUND, "%llu of the %llu revisions after %llu are no longer kept",
                     (unsigned long long)(up_to - after - revs), (unsigned long long)(up_to - after),
                     (unsigned long long)after);
  rstate_change *c = !rc && n ? calloc(n, sizeof *c) : NULL;
  if (!rc && n && !c) rc = rstate__err(RSTATE_ENOMEM, "out of memory copying the kept changes");
  for (size_t i = 0; !rc && i < n; i++) {
    const kept *x = &k[i];
    c[i] = (rstate_change){.kind = x->e.version == 1 ? RSTATE_EVENT_DEFINED : RSTATE_EVENT_CHANGED,
                           .name = x->name,
                           .type = x->type,
                           .old_value = x->e.version == 1 ? NULL : &x->old_value,
                           .new_value = &x->e.value,
                           .version = x->e.version,
                           .revision = x->e.revision,
                           .timestamp_ns = x->e.timestamp_ns,
                           .source = x->e.source,
                           .meta = x->e.meta,
                           .n_meta = x->e.n_meta};
  }
  for (size_t i = 0; !rc && i < n;) {
    size_t j = i;
    while (j < n && k[j].e.revision == k[i].e.revision) j++;
    if (fn(&c[i], j - i, ud)) break;
    i = j;
  }
  free(c);
  kept_free(k, n);
  return rc;
}

/* ---- restoring and walking (local.h) ------------------------------------------ */

int rstate__local_restore_define(rstate_backend *b, rstate__spec *spec, uint64_t revision, int64_t updated_ns) {
  local *l = L(b);
  const char *name = rstate__spec_name(spec);
  if (lookup(l, name)) {
    rstate__spec_free(spec);
    return rstate__err(RSTATE_EEXIST, "%s: defined twice", name);
  }
  var *v = calloc(1, sizeof *v);
  if (!v || !(v->name = strdup(name)) || rstate_value_copy(&v->value, rstate__spec_initial(spec)) ||
      !rstate__map_reserve(&l->vars, 1)) {
    if (v) {
      free(v->name);
      rstate_value_clear(&v->value);
    }
    free(v);
    rstate__spec_free(spec);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory defining the variable", name);
  }
  v->len = strlen(v->name);
  v->hash = rstate__hash(v->name, v->len);
  v->spec = spec;
  v->type = rstate__spec_type(spec);
  v->version = 1;
  v->revision = revision;
  v->updated_ns = updated_ns;
  rstate_history_entry he;
  if (l->keep && (!hist_reserve(l, v) || !hentry_make(&he, &v->value, 1, revision, updated_ns, NULL, NULL, 0))) {
    var_free(v);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory defining the variable", name);
  }
  if (l->keep) hist_push(v, &he);
  rstate__map_put(&l->vars, v->name, v->len, v->hash, v);
  if (revision > l->revision) l->revision = revision;
  return RSTATE_OK;
}

static rstate_kind type_kind(rstate_type t) {
  switch (t) {
  case RSTATE_TYPE_FLOAT: return RSTATE_FLOAT;
  case RSTATE_TYPE_INTEGER: return RSTATE_INT;
  case RSTATE_TYPE_BOOLEAN: return RSTATE_BOOL;
  default: return RSTATE_STRING;
  }
}

/* Finds the variable a restore names and checks the value against its
 * definition: a value the definition refuses is damage (EPROTO). */
static int restore_check(local *l, const char *name, const rstate_value *value, var **v, rstate_value *checked) {
  *v = lookup(l, name);
  if (!*v) return rstate__err(RSTATE_ENOTFOUND, "%s: no such variable", name);
  int rc = rstate__spec_check((*v)->spec, value, checked);
  if (rc == RSTATE_ENOMEM) return rc;
  if (rc) {
    char why[256];
    snprintf(why, sizeof why, "%s", rstate_last_error());
    return rstate__err(RSTATE_EPROTO, "%s: a value its definition refuses (%s)", name, why);
  }
  return RSTATE_OK;
}

int rstate__local_restore_set(rstate_backend *b, const char *name, const rstate_value *value, uint64_t version,
                              uint64_t revision, int64_t ts, const char *source, const rstate_meta *meta,
                              size_t n_meta) {
  local *l = L(b);
  var *v;
  rstate_value checked;
  int rc = restore_check(l, name, value, &v, &checked);
  if (rc) return rc;
  value = &checked;
  if (version != v->version + 1)
    return rstate__err(RSTATE_EPROTO, "%s: version %llu does not follow %llu", name, (unsigned long long)version,
                       (unsigned long long)v->version);
  rstate_value copy;
  if (rstate_value_copy(&copy, value)) return rstate__err(RSTATE_ENOMEM, "%s: out of memory", name);
  rstate_history_entry he;
  if (l->keep && (!hist_reserve(l, v) || !hentry_make(&he, value, version, revision, ts, source, meta, n_meta))) {
    rstate_value_clear(&copy);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory keeping its history", name);
  }
  if (l->keep) hist_push(v, &he);
  rstate_value_clear(&v->value);
  v->value = copy;
  v->version = version;
  v->revision = revision;
  v->updated_ns = ts;
  if (revision > l->revision) l->revision = revision;
  return RSTATE_OK;
}

int rstate__local_restore_state(rstate_backend *b, const char *name, const rstate_value *value, uint64_t version,
                                uint64_t revision, int64_t updated_ns) {
  local *l = L(b);
  var *v;
  rstate_value checked;
  int rc = restore_check(l, name, value, &v, &checked);
  if (rc) return rc;
  value = &checked;
  if (version == 0) return rstate__err(RSTATE_EPROTO, "%s: version 0", name);
  rstate_value copy;
  if (rstate_value_copy(&copy, value)) return rstate__err(RSTATE_ENOMEM, "%s: out of memory", name);
  rstate_value_clear(&v->value);
  v->value = copy;
  v->version = version;
  v->revision = revision;
  v->updated_ns = updated_ns;
  if (revision > l->revision) l->revision = revision;
  return RSTATE_OK;
}

int rstate__local_restore_undefine(rstate_backend *b, const char *name, uint64_t revision) {
  local *l = L(b);
  size_t len = strlen(name);
  var *v = rstate__map_del(&l->vars, name, len, rstate__hash(name, len));
  if (!v) return rstate__err(RSTATE_ENOTFOUND, "%s: no such variable", name);
  var_free(v);
  if (revision > l->revision) l->revision = revision;
  return RSTATE_OK;
}

int rstate__local_restore_history(rstate_backend *b, const char *name, const rstate_history_entry *entries,
                                  size_t n) {
  local *l = L(b);
  var *v = lookup(l, name);
  if (!v) return rstate__err(RSTATE_ENOTFOUND, "%s: no such variable", name);
  for (size_t i = 0; i < n; i++) {
    const rstate_value *x = &entries[i].value;
    if (x->kind != type_kind(v->type) || (x->kind == RSTATE_STRING && !rstate__utf8_valid(x->u.s.ptr, x->u.s.len)))
      return rstate__err(RSTATE_EPROTO, "%s: a kept value that is not a %s", name, rstate_type_name(v->type));
  }
  if (!l->keep) return RSTATE_OK;
  hist_free(v);
  if (n > l->keep) {
    entries += n - l->keep;
    n = l->keep;
  }
  for (size_t i = 0; i < n; i++) {
    rstate_history_entry he;
    if (!hist_reserve(l, v) || !hentry_make(&he, &entries[i].value, entries[i].version, entries[i].revision,
                                            entries[i].timestamp_ns, entries[i].source, entries[i].meta,
                                            entries[i].n_meta))
      return rstate__err(RSTATE_ENOMEM, "%s: out of memory keeping its history", name);
    hist_push(v, &he);
  }
  return RSTATE_OK;
}

void rstate__local_restore_revision(rstate_backend *b, uint64_t revision) {
  local *l = L(b);
  if (revision > l->revision) l->revision = revision;
}

int rstate__local_walk(rstate_backend *b, int (*fn)(const rstate__local_view *v, void *ud), void *ud,
                       uint64_t *revision) {
  local *l = L(b);
  rstate_history_entry *lin = NULL;
  size_t lin_cap = 0;
  int rc = RSTATE_OK;
  pthread_mutex_lock(&l->lock);
  size_t it = 0;
  var *v;
  while (!rc && (v = rstate__map_next(&l->vars, &it))) {
    if (v->h_n > lin_cap) {
      rstate_history_entry *n = realloc(lin, v->h_n * sizeof *n);
      if (!n) {
        rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory", v->name);
        break;
      }
      lin = n;
      lin_cap = v->h_n;
    }
    for (size_t i = 0; i < v->h_n; i++) lin[i] = *hist_at(v, i);
    rstate__local_view view = {v->spec, &v->value, v->version, v->revision, v->updated_ns, lin, v->h_n};
    rc = fn(&view, ud);
  }
  if (revision) *revision = l->revision;
  pthread_mutex_unlock(&l->lock);
  free(lin);
  return rc;
}

size_t rstate__local_count(rstate_backend *b) {
  local *l = L(b);
  pthread_mutex_lock(&l->lock);
  size_t n = l->vars.count;
  pthread_mutex_unlock(&l->lock);
  return n;
}

void rstate__local_lock(rstate_backend *b) { pthread_mutex_lock(&L(b)->lock); }
void rstate__local_unlock(rstate_backend *b) { pthread_mutex_unlock(&L(b)->lock); }

const rstate_backend_ops rstate__local_ops = {
    .version = RSTATE_BACKEND_VERSION,
    .name = "local",
    .open = local_open,
    .close = local_close,
    .define = local_define,
    .undefine = local_undefine,
    .get = local_get,
    .get_many = local_get_many,
    .snapshot = local_snapshot,
    .set_many = local_set_many,
    .revision = local_revision,
    .history = local_history,
    .changes = local_changes,
    .restore = local_restore,
};
