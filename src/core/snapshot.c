/*
 * snapshot.c — the front end's one snapshot collector: the variables a
 * backend's snapshot calls back with are copied out (the callback runs
 * under the backend's lock and its arguments are borrowed), then sorted by
 * name. rstate_list, rstate_watch (INITIAL events) and a server's LIST,
 * SNAPSHOT and WATCH all take their snapshots here.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

typedef struct collect {
  rstate__snap *sn;
  bool values;
  const char *fn;
} collect;

static int collect_one(const rstate_snapshot_var *v, void *ud) {
  collect *c = ud;
  rstate__snap *sn = c->sn;
  if (!RSTATE__GROW(sn->vars, sn->cap, sn->n + 1, 16))
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory taking the snapshot", c->fn);
  rstate__snap_var *w = &sn->vars[sn->n];
  memset(w, 0, sizeof *w);
  char *name = strdup(v->name);
  if (!name || (c->values && rstate_value_copy(&w->value, v->value) != RSTATE_OK)) {
    free(name);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory taking the snapshot", c->fn);
  }
  w->name = name;
  w->type = v->type;
  w->version = v->version;
  w->updated_ns = v->updated_ns;
  sn->n++;
  return RSTATE_OK;
}

static int var_cmp(const void *a, const void *b) {
  return strcmp(((const rstate__snap_var *)a)->name, ((const rstate__snap_var *)b)->name);
}

static bool sorted(const rstate__snap *sn) {
  for (size_t i = 1; i < sn->n; i++)
    if (strcmp(sn->vars[i - 1].name, sn->vars[i].name) > 0) return false;
  return true;
}

int rstate__snapshot_take(rstate_store *s, const char *const *patterns, size_t n, bool values, rstate__snap *out,
                          uint64_t *revision, const char *fn) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < n; i++) {
    int rc = rstate__watch_pattern_check(patterns[i]);
    if (rc) return rc;
  }
  collect c = {out, values, fn};
  uint64_t rev = 0;
  int rc = s->ops->snapshot(s->backend, patterns, n, collect_one, &c, &rev);
  if (rc) {
    rstate__snap_free(out);
    return rc;
  }
  if (out->n > 1 && !sorted(out)) qsort(out->vars, out->n, sizeof *out->vars, var_cmp);
  if ((rc = rstate__tap_sync(s, rev, fn))) {
    rstate__snap_free(out);
    return rc;
  }
  if (revision) *revision = rev;
  return RSTATE_OK;
}

void rstate__snap_free(rstate__snap *sn) {
  for (size_t i = 0; i < sn->n; i++) {
    free((char *)sn->vars[i].name);
    rstate_value_clear(&sn->vars[i].value);
  }
  free(sn->vars);
  memset(sn, 0, sizeof *sn);
}

static int count_one(const rstate_snapshot_var *v, void *ud) {
  (void)v;
  (*(uint64_t *)ud)++;
  return RSTATE_OK;
}

int rstate__serve_revision(rstate_store *s, uint64_t *revision, uint64_t *n_vars, const char *what) {
  static const char *const every[] = {"*"};
  uint64_t r = 0, n = 0;
  s->ops->snapshot(s->backend, every, n_vars ? 1 : 0, count_one, &n, &r);
  *revision = r;
  if (n_vars) *n_vars = n;
  return rstate__tap_sync(s, r, what);
}

uint64_t rstate__serve_identity(rstate_store *s) {
  return s->ops->version >= 4 && s->ops->identity ? s->ops->identity(s->backend) : 0;
}

int rstate__serve_changes(rstate_store *s, uint64_t after, uint64_t up_to,
                          int (*fn)(const rstate_change *changes, size_t n, void *ud), void *ud) {
  if (s->ops->version < 4 || !s->ops->changes)
    return rstate__err(RSTATE_ENOTSUP, "the %s backend keeps no changes to replay", s->ops->name);
  return s->ops->changes(s->backend, after, up_to, fn, ud);
}
