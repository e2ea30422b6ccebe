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
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "types/types.h"
#include "util/util.h"

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
} var;

typedef struct local {
  pthread_mutex_t lock;
  rstate__map vars;
  uint64_t revision;
  uint64_t batch; /* serial of set_many calls, for var.mark */
  rstate_host *host;
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

static void var_free(var *v) {
  if (!v) return;
  rstate_value_clear(&v->value);
  rstate__spec_free(v->spec);
  free(v->name);
  free(v);
}

static int local_open(rstate_backend **out, const char *uri, const rstate_options *opts, rstate_host *host) {
  (void)opts;
  if (strcmp(uri, "mem:") != 0) return rstate__err(RSTATE_EINVAL, "mem: store: unexpected URI \"%s\"", uri);
  local *l = calloc(1, sizeof *l);
  if (!l) return rstate__err(RSTATE_ENOMEM, "mem: store: out of memory");
  pthread_mutex_init(&l->lock, NULL);
  rstate__map_init(&l->vars);
  l->host = host;
  *out = (rstate_backend *)l;
  return RSTATE_OK;
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
    bool same = rstate__spec_same(old->spec, spec);
    rstate_type type = old->type; /* old may be undefined once the lock is released */
    pthread_mutex_unlock(&l->lock);
    var_free(v);
    if (same) return RSTATE_OK;
    return rstate__err(RSTATE_EEXIST, "%s: already defined differently (as %s)", def->name, rstate_type_name(type));
  }
  if (!rstate__map_reserve(&l->vars, 1)) {
    pthread_mutex_unlock(&l->lock);
    var_free(v);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory defining the variable", def->name);
  }
  v->revision = l->revision + 1;
  rstate_change ch = {.kind = RSTATE_EVENT_DEFINED,
                      .name = v->name,
                      .name_len = v->len,
                      .name_hash = v->hash,
                      .type = v->type,
                      .new_value = &v->value,
                      .version = 1,
                      .revision = v->revision,
                      .timestamp_ns = v->updated_ns};
  rc = rstate_host_emit(l->host, &ch, 1);
  if (rc) {
    pthread_mutex_unlock(&l->lock);
    var_free(v);
    return rc;
  }
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
  int rc = rstate_host_emit(l->host, &ch, 1);
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
} pending;

static void pending_free(pending *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i].value.kind == RSTATE_STRING) rstate_value_clear(&p[i].value);
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
  if (!rc && k) {
    uint64_t revision = l->revision + 1;
    int64_t now = rstate__realtime_ns();
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
    rc = rstate_host_emit(l->host, c, k);
    if (rc) {
      *failed_index = SIZE_MAX;
    } else {
      for (size_t i = 0; i < k; i++) {
        var *v = p[i].v;
        if (v->value.kind == RSTATE_STRING) rstate_value_clear(&v->value);
        v->value = p[i].value;
        p[i].value.kind = RSTATE_NONE; /* moved */
        v->version++;
        v->revision = revision;
        v->updated_ns = now;
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

static uint64_t local_revision(rstate_backend *b) {
  local *l = L(b);
  pthread_mutex_lock(&l->lock);
  uint64_t r = l->revision;
  pthread_mutex_unlock(&l->lock);
  return r;
}

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
};
