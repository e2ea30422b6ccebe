/*
 * testbackend.c — a fixed-capacity array of float variables under a mutex,
 * implemented only through reactivestate/backend.h (see testbackend.h).
 *
 * Every accepted change (define, undefine, set_many) is checked in full,
 * then announced with rstate_host_emit under the lock, and applied only if
 * the announcement succeeded: a change is either applied and announced, or
 * neither.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testbackend.h"

#define NAME_MAX_LEN 255

typedef struct tb_var {
  bool used;
  char name[NAME_MAX_LEN + 1];
  rstate_value value;   /* always RSTATE_FLOAT */
  rstate_value initial; /* for the idempotent re-define check */
  char *description;    /* NULL: none */
  uint64_t version;
  uint64_t revision;
  int64_t updated_ns;
} tb_var;

typedef struct tb {
  pthread_mutex_t lock;
  rstate_host *host;
  uint64_t revision;
  tb_var vars[TESTBACKEND_CAPACITY];
} tb;

int (*testbackend_emit_hook)(rstate_host *h, const rstate_change *changes, size_t n);

static atomic_uint opens, closes;

unsigned testbackend_opens(void) { return atomic_load(&opens); }
unsigned testbackend_closes(void) { return atomic_load(&closes); }

static tb *T(rstate_backend *b) { return (tb *)b; }

static int emit(tb *t, const rstate_change *changes, size_t n) {
  return testbackend_emit_hook ? testbackend_emit_hook(t->host, changes, n) : rstate_host_emit(t->host, changes, n);
}

static int64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int name_check(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > NAME_MAX_LEN)
    return rstate_set_last_error(RSTATE_EINVAL, "test backend: name \"%.40s\" must be 1..%d bytes", name,
                                 NAME_MAX_LEN);
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '/' || c == '-';
    if (!ok)
      return rstate_set_last_error(RSTATE_EINVAL, "test backend: name \"%.40s\" has a character outside [A-Za-z0-9_.:/-]",
                                   name);
  }
  return RSTATE_OK;
}

/* ENOTFOUND for a well-formed name, EINVAL for a bad one. */
static int not_found(const char *name) {
  int rc = name_check(name);
  return rc ? rc : rstate_set_last_error(RSTATE_ENOTFOUND, "%s: no such variable", name);
}

/* Coerces a value for a float variable: RSTATE_FLOAT or RSTATE_INT, finite. */
static int to_float(const char *name, const rstate_value *in, rstate_value *out) {
  double f;
  if (in->kind == RSTATE_FLOAT)
    f = in->u.f;
  else if (in->kind == RSTATE_INT)
    f = (double)in->u.i;
  else
    return rstate_set_last_error(RSTATE_ETYPE, "%s: a float variable takes a float or an integer value", name);
  if (!isfinite(f)) return rstate_set_last_error(RSTATE_ETYPE, "%s: the value is not finite", name);
  *out = rstate_float(f);
  return RSTATE_OK;
}

static tb_var *lookup(tb *t, const char *name) {
  for (size_t i = 0; i < TESTBACKEND_CAPACITY; i++)
    if (t->vars[i].used && strcmp(t->vars[i].name, name) == 0) return &t->vars[i];
  return NULL;
}

static bool covers(const char *pattern, const char *name) {
  size_t plen = strlen(pattern);
  if (plen && pattern[plen - 1] == '*') return strncmp(pattern, name, plen - 1) == 0;
  return strcmp(pattern, name) == 0;
}

static int tb_open(rstate_backend **out, const char *uri, const rstate_options *opts, rstate_host *host) {
  (void)opts;
  if (strcmp(uri, "test:") != 0) return rstate_set_last_error(RSTATE_EINVAL, "test backend: unexpected URI \"%s\"", uri);
  tb *t = calloc(1, sizeof *t);
  if (!t) return rstate_set_last_error(RSTATE_ENOMEM, "test backend: out of memory");
  pthread_mutex_init(&t->lock, NULL);
  t->host = host;
  *out = (rstate_backend *)t;
  atomic_fetch_add(&opens, 1);
  return RSTATE_OK;
}

static void tb_close(rstate_backend *b) {
  tb *t = T(b);
  for (size_t i = 0; i < TESTBACKEND_CAPACITY; i++) free(t->vars[i].description);
  pthread_mutex_destroy(&t->lock);
  free(t);
  atomic_fetch_add(&closes, 1);
}

static int tb_define(rstate_backend *b, const rstate_var_def *def) {
  tb *t = T(b);
  int rc = name_check(def->name);
  if (rc) return rc;
  if (def->type != RSTATE_TYPE_FLOAT)
    return rstate_set_last_error(RSTATE_ENOTSUP, "%s: the test backend only keeps float variables, not %s", def->name,
                                 rstate_type_name(def->type));
  if (def->constraints)
    return rstate_set_last_error(RSTATE_ENOTSUP, "%s: the test backend does not support constraints", def->name);
  rstate_value initial;
  if ((rc = to_float(def->name, &def->initial, &initial))) return rc;

  const char *desc = def->description && def->description[0] ? def->description : NULL;
  char *desc_copy = NULL;
  if (desc && !(desc_copy = strdup(desc))) return rstate_set_last_error(RSTATE_ENOMEM, "test backend: out of memory");

  pthread_mutex_lock(&t->lock);
  tb_var *v = lookup(t, def->name);
  if (v) {
    /* a definition is the type (always float), the initial value and the description */
    bool same = rstate_value_equal(&v->initial, &initial) &&
                (v->description ? desc && strcmp(v->description, desc) == 0 : !desc);
    pthread_mutex_unlock(&t->lock);
    free(desc_copy);
    return same ? RSTATE_OK : rstate_set_last_error(RSTATE_EEXIST, "%s: already defined differently", def->name);
  }
  tb_var *slot = NULL;
  for (size_t i = 0; i < TESTBACKEND_CAPACITY && !slot; i++)
    if (!t->vars[i].used) slot = &t->vars[i];
  if (!slot) {
    pthread_mutex_unlock(&t->lock);
    free(desc_copy);
    return rstate_set_last_error(RSTATE_ELIMIT, "%s: the test backend holds at most %d variables", def->name,
                                 TESTBACKEND_CAPACITY);
  }
  int64_t now = realtime_ns();
  rstate_change ch = {.kind = RSTATE_EVENT_DEFINED,
                      .name = def->name,
                      .type = RSTATE_TYPE_FLOAT,
                      .new_value = &initial,
                      .version = 1,
                      .revision = t->revision + 1,
                      .timestamp_ns = now};
  rc = emit(t, &ch, 1);
  if (!rc) {
    slot->used = true;
    strcpy(slot->name, def->name);
    slot->value = slot->initial = initial;
    slot->description = desc_copy;
    desc_copy = NULL;
    slot->version = 1;
    slot->revision = ++t->revision;
    slot->updated_ns = now;
  }
  pthread_mutex_unlock(&t->lock);
  free(desc_copy); /* not installed: the change was abandoned */
  return rc;
}

static int tb_undefine(rstate_backend *b, const char *name) {
  tb *t = T(b);
  pthread_mutex_lock(&t->lock);
  tb_var *v = lookup(t, name);
  if (!v) {
    pthread_mutex_unlock(&t->lock);
    return not_found(name);
  }
  rstate_change ch = {.kind = RSTATE_EVENT_DELETED,
                      .name = v->name,
                      .type = RSTATE_TYPE_FLOAT,
                      .old_value = &v->value,
                      .version = v->version,
                      .revision = t->revision + 1,
                      .timestamp_ns = realtime_ns()};
  int rc = emit(t, &ch, 1);
  char *description = NULL;
  if (!rc) {
    description = v->description;
    memset(v, 0, sizeof *v);
    t->revision++;
  }
  pthread_mutex_unlock(&t->lock);
  free(description);
  return rc;
}

static int tb_get(rstate_backend *b, const char *name, rstate_value *out, rstate_var_info *info) {
  tb *t = T(b);
  pthread_mutex_lock(&t->lock);
  tb_var *v = lookup(t, name);
  if (v) {
    if (out) *out = v->value; /* a float: nothing to copy */
    if (info) {
      info->type = RSTATE_TYPE_FLOAT;
      info->version = v->version;
      info->revision = v->revision;
      info->updated_ns = v->updated_ns;
    }
  }
  pthread_mutex_unlock(&t->lock);
  return v ? RSTATE_OK : not_found(name);
}

static int tb_get_many(rstate_backend *b, const char *const *names, size_t n, rstate_value *out, uint64_t *revision) {
  tb *t = T(b);
  pthread_mutex_lock(&t->lock);
  for (size_t i = 0; i < n; i++) {
    if (!lookup(t, names[i])) {
      pthread_mutex_unlock(&t->lock);
      return not_found(names[i]);
    }
  }
  for (size_t i = 0; i < n; i++) out[i] = lookup(t, names[i])->value;
  if (revision) *revision = t->revision;
  pthread_mutex_unlock(&t->lock);
  return RSTATE_OK;
}

static int tb_snapshot(rstate_backend *b, const char *const *patterns, size_t n, rstate_snapshot_fn fn, void *ud,
                       uint64_t *revision) {
  tb *t = T(b);
  int rc = RSTATE_OK;
  pthread_mutex_lock(&t->lock);
  for (size_t i = 0; i < TESTBACKEND_CAPACITY && !rc; i++) {
    tb_var *v = &t->vars[i];
    if (!v->used) continue;
    bool match = false;
    for (size_t k = 0; k < n && !match; k++) match = covers(patterns[k], v->name);
    if (!match) continue;
    rstate_snapshot_var sv = {v->name, RSTATE_TYPE_FLOAT, &v->value, v->version, 0};
    rc = fn(&sv, ud);
  }
  if (revision) *revision = t->revision;
  pthread_mutex_unlock(&t->lock);
  return rc;
}

static int tb_set_many(rstate_backend *b, const rstate_assign *items, size_t n, const uint64_t *expected,
                       const rstate_set_opts *opts, size_t *failed_index) {
  tb *t = T(b);
  tb_var **vars = calloc(n ? n : 1, sizeof *vars);
  rstate_value *values = calloc(n ? n : 1, sizeof *values);
  rstate_change *changes = calloc(n ? n : 1, sizeof *changes);
  size_t failed = SIZE_MAX;
  int rc = RSTATE_OK;
  if (!vars || !values || !changes) rc = rstate_set_last_error(RSTATE_ENOMEM, "test backend: out of memory");

  pthread_mutex_lock(&t->lock);
  size_t k = 0; /* items that change the store */
  for (size_t i = 0; !rc && i < n; i++) {
    tb_var *v = lookup(t, items[i].name);
    bool twice = false;
    for (size_t j = 0; j < i && !twice; j++) twice = strcmp(items[j].name, items[i].name) == 0;
    rstate_value value;
    if (!v) {
      rc = not_found(items[i].name);
    } else if (twice) {
      rc = rstate_set_last_error(RSTATE_EINVAL, "%s: named twice in one set_many", v->name);
    } else if (expected && expected[i] && v->version != expected[i]) {
      rc = rstate_set_last_error(RSTATE_ECONFLICT, "%s: version is %llu, not the expected %llu", v->name,
                                 (unsigned long long)v->version, (unsigned long long)expected[i]);
    } else if (!(rc = to_float(v->name, &items[i].value, &value)) && !rstate_value_equal(&value, &v->value)) {
      vars[k] = v;
      values[k++] = value;
    }
    if (rc) failed = i;
  }
  if (!rc && k) {
    uint64_t revision = t->revision + 1;
    int64_t now = realtime_ns();
    for (size_t i = 0; i < k; i++)
      changes[i] = (rstate_change){.kind = RSTATE_EVENT_CHANGED,
                                   .name = vars[i]->name,
                                   .type = RSTATE_TYPE_FLOAT,
                                   .old_value = &vars[i]->value,
                                   .new_value = &values[i],
                                   .version = vars[i]->version + 1,
                                   .revision = revision,
                                   .timestamp_ns = now,
                                   .source = opts ? opts->source : NULL,
                                   .meta = opts ? opts->meta : NULL,
                                   .n_meta = opts ? opts->n_meta : 0};
    rc = emit(t, changes, k);
    if (!rc) {
      for (size_t i = 0; i < k; i++) {
        vars[i]->value = values[i];
        vars[i]->version++;
        vars[i]->revision = revision;
        vars[i]->updated_ns = now;
      }
      t->revision = revision;
    }
  }
  pthread_mutex_unlock(&t->lock);
  free(vars);
  free(values);
  free(changes);
  if (failed_index) *failed_index = failed;
  return rc;
}

static uint64_t tb_revision(rstate_backend *b) {
  tb *t = T(b);
  pthread_mutex_lock(&t->lock);
  uint64_t r = t->revision;
  pthread_mutex_unlock(&t->lock);
  return r;
}

const rstate_backend_ops testbackend_ops = {
    .version = RSTATE_BACKEND_VERSION,
    .name = "test",
    .open = tb_open,
    .close = tb_close,
    .define = tb_define,
    .undefine = tb_undefine,
    .get = tb_get,
    .get_many = tb_get_many,
    .snapshot = tb_snapshot,
    .set_many = tb_set_many,
    .revision = tb_revision,
};
