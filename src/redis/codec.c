/*
 * codec.c — how a redis: store keeps values, definitions and variable
 * records in Redis, as text the Function library can compare and the client
 * reads back. Pure: no I/O; everything read is checked, and what does not
 * parse is RSTATE_EPROTO (a key written by something else than this library).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

int rstate__redis_put_value(rstate__resp_buf *b, const rstate_value *v) {
  char tmp[40];
  int n;
  switch (v->kind) {
  case RSTATE_FLOAT: n = snprintf(tmp, sizeof tmp, "f%.17g", v->u.f); break;
  case RSTATE_INT: n = snprintf(tmp, sizeof tmp, "i%" PRId64, v->u.i); break;
  case RSTATE_BOOL: n = snprintf(tmp, sizeof tmp, "b%d", v->u.b ? 1 : 0); break;
  case RSTATE_STRING:
    if (rstate__resp_buf_put(b, "s", 1)) return RSTATE_ENOMEM;
    return rstate__resp_buf_put(b, v->u.s.ptr, v->u.s.len);
  default: return rstate__err(RSTATE_EINVAL, "redis: no text for a value of kind %d", (int)v->kind);
  }
  return rstate__resp_buf_put(b, tmp, (size_t)n);
}

static int bad_text(const char *what) { return rstate__err(RSTATE_EPROTO, "redis: the store holds a malformed %s", what); }

static bool parse_u64(const char *p, size_t n, uint64_t *out) {
  if (!n || n > 20) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return false;
    uint64_t d = (uint64_t)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

int rstate__redis_get_value(const char *p, size_t n, rstate_value *out) {
  memset(out, 0, sizeof *out);
  if (!n) return bad_text("value");
  char tmp[40];
  switch (p[0]) {
  case 's':
    if (!rstate__utf8_valid(p + 1, n - 1)) return bad_text("string value");
    out->kind = RSTATE_STRING;
    out->u.s.ptr = p + 1;
    out->u.s.len = n - 1;
    return RSTATE_OK;
  case 'b':
    if (n != 2 || (p[1] != '0' && p[1] != '1')) return bad_text("boolean value");
    out->kind = RSTATE_BOOL;
    out->u.b = p[1] == '1';
    return RSTATE_OK;
  case 'i': {
    bool neg = n > 1 && p[1] == '-';
    uint64_t u;
    if (!parse_u64(p + 1 + neg, n - 1 - neg, &u) || u > (uint64_t)INT64_MAX + neg) return bad_text("integer value");
    out->kind = RSTATE_INT;
    out->u.i = neg ? (int64_t)(0 - u) : (int64_t)u;
    return RSTATE_OK;
  }
  case 'f': {
    if (n - 1 >= sizeof tmp || n < 2) return bad_text("float value");
    memcpy(tmp, p + 1, n - 1);
    tmp[n - 1] = 0;
    char *end;
    double d = strtod(tmp, &end);
    if (end != tmp + n - 1 || !isfinite(d)) return bad_text("float value");
    out->kind = RSTATE_FLOAT;
    out->u.f = d;
    return RSTATE_OK;
  }
  default: return bad_text("value");
  }
}

int rstate__redis_pack(rstate__resp_buf *b, const char *p, size_t n) {
  char tmp[24];
  int k = snprintf(tmp, sizeof tmp, "%zu:", n);
  if (rstate__resp_buf_put(b, tmp, (size_t)k)) return RSTATE_ENOMEM;
  return rstate__resp_buf_put(b, p, n);
}

bool rstate__redis_unpack(const char **p, const char *end, const char **s, size_t *n, bool *bad) {
  const char *q = *p;
  if (q == end) return false;
  const char *colon = memchr(q, ':', (size_t)(end - q) < 21 ? (size_t)(end - q) : 21);
  uint64_t len;
  if (!colon || !parse_u64(q, (size_t)(colon - q), &len) || len > (uint64_t)(end - colon - 1)) {
    *bad = true;
    return false;
  }
  *s = colon + 1;
  *n = (size_t)len;
  *p = colon + 1 + len;
  return true;
}

/* ---- definitions ---- */

/* A bound as the type keeps it: float bounds as floats, integer as integers. */
static int put_bound(rstate__resp_buf *tmp, rstate_type type, const rstate_value *v) {
  if (v->kind == RSTATE_NONE) return RSTATE_OK;
  rstate_value c = *v;
  if (type == RSTATE_TYPE_FLOAT && v->kind == RSTATE_INT) c = rstate_float((double)v->u.i);
  if (type == RSTATE_TYPE_INTEGER && v->kind == RSTATE_FLOAT) c = rstate_int((int64_t)v->u.f);
  return rstate__redis_put_value(tmp, &c);
}

static int pack_text(rstate__resp_buf *b, rstate__resp_buf *tmp) {
  int rc = rstate__redis_pack(b, tmp->p ? tmp->p : "", tmp->len);
  tmp->len = 0;
  return rc;
}

static int pack_str(rstate__resp_buf *b, const char *s) { return rstate__redis_pack(b, s, strlen(s)); }

static int pack_opt(rstate__resp_buf *b, rstate__resp_buf *tmp, const char *s) {
  if (!s) return rstate__redis_pack(b, "", 0);
  if (rstate__resp_buf_put(tmp, "+", 1) || rstate__resp_buf_put(tmp, s, strlen(s))) return RSTATE_ENOMEM;
  return pack_text(b, tmp);
}

int rstate__redis_put_def(rstate__resp_buf *b, const rstate_var_def *def, const rstate__spec *spec) {
  static const rstate_constraints none;
  const rstate_constraints *c = def->constraints ? def->constraints : &none;
  rstate_type type = rstate__spec_type(spec);
  rstate__resp_buf tmp = {0};
  char num[24];
  int rc = pack_str(b, def->name);
  snprintf(num, sizeof num, "%d", (int)type);
  if (!rc) rc = pack_str(b, num);
  if (!rc) rc = rstate__redis_put_value(&tmp, rstate__spec_initial(spec));
  if (!rc) rc = pack_text(b, &tmp);
  if (!rc) rc = put_bound(&tmp, type, &c->min);
  if (!rc) rc = pack_text(b, &tmp);
  if (!rc) rc = put_bound(&tmp, type, &c->max);
  if (!rc) rc = pack_text(b, &tmp);
  snprintf(num, sizeof num, "%zu", c->min_length);
  if (!rc) rc = pack_str(b, num);
  snprintf(num, sizeof num, "%zu", c->max_length);
  if (!rc) rc = pack_str(b, num);
  if (!rc) rc = pack_opt(b, &tmp, c->module_namespace);
  if (!rc) rc = pack_opt(b, &tmp, c->pattern);
  if (!rc) rc = pack_opt(b, &tmp, def->description && *def->description ? def->description : NULL);
  snprintf(num, sizeof num, "%zu", c->n_choices);
  if (!rc) rc = pack_str(b, num);
  for (size_t i = 0; !rc && i < c->n_choices; i++) rc = pack_str(b, c->choices[i]);
  rstate__resp_buf_free(&tmp);
  if (rc) return rstate__err(RSTATE_ENOMEM, "%s: out of memory encoding the definition", def->name);
  return RSTATE_OK;
}

void rstate__redis_def_free(rstate__redis_def *d) {
  free(d->choices);
  free(d->mem);
  memset(d, 0, sizeof *d);
}

int rstate__redis_get_def(const char *p, size_t n, rstate__redis_def *out) {
  memset(out, 0, sizeof *out);
  if (!(out->mem = malloc(2 * n + 16))) return rstate__err(RSTATE_ENOMEM, "redis: out of memory reading a definition");
  char *m = out->mem;
  const char *end = p + n, *items[11];
  size_t lens[11];
  bool bad = false;
  for (int i = 0; i < 11; i++) {
    const char *s;
    size_t k;
    if (!rstate__redis_unpack(&p, end, &s, &k, &bad)) goto fail;
    memcpy(m, s, k);
    m[k] = 0;
    items[i] = m;
    lens[i] = k;
    m += k + 1;
  }
  out->def.name = items[0];
  uint64_t type, minl, maxl, nch;
  if (!parse_u64(items[1], lens[1], &type) || type < RSTATE_TYPE_FLOAT || type > RSTATE_TYPE_MODULE) goto fail;
  out->def.type = (rstate_type)type;
  if (rstate__redis_get_value(items[2], lens[2], &out->def.initial)) goto fail;
  if (lens[3] && rstate__redis_get_value(items[3], lens[3], &out->c.min)) goto fail;
  if (lens[4] && rstate__redis_get_value(items[4], lens[4], &out->c.max)) goto fail;
  if (!parse_u64(items[5], lens[5], &minl) || !parse_u64(items[6], lens[6], &maxl)) goto fail;
  out->c.min_length = (size_t)minl;
  out->c.max_length = (size_t)maxl;
  if (lens[7]) out->c.module_namespace = items[7] + 1;
  if (lens[8]) out->c.pattern = items[8] + 1;
  if (lens[9]) out->def.description = items[9] + 1;
  if (!parse_u64(items[10], lens[10], &nch) || nch > n) goto fail;
  if (nch && !(out->choices = malloc(nch * sizeof *out->choices))) {
    rstate__redis_def_free(out);
    return rstate__err(RSTATE_ENOMEM, "redis: out of memory reading a definition");
  }
  for (uint64_t i = 0; i < nch; i++) {
    const char *s;
    size_t k;
    if (!rstate__redis_unpack(&p, end, &s, &k, &bad)) goto fail;
    memcpy(m, s, k);
    m[k] = 0;
    out->choices[i] = m;
    m += k + 1;
  }
  if (p != end) goto fail;
  out->c.choices = out->choices;
  out->c.n_choices = (size_t)nch;
  out->def.constraints = &out->c;
  return RSTATE_OK;
fail:
  rstate__redis_def_free(out);
  return bad_text("definition");
}

/* ---- records ---- */

static bool field(const char **p, const char *end, uint64_t *out) {
  const char *sp = memchr(*p, ' ', (size_t)(end - *p));
  if (!sp || !parse_u64(*p, (size_t)(sp - *p), out)) return false;
  *p = sp + 1;
  return true;
}

int rstate__redis_get_rec(const char *p, size_t n, rstate__redis_rec *out) {
  memset(out, 0, sizeof *out);
  const char *end = p + n;
  uint64_t ts, type;
  if (!field(&p, end, &out->version) || !field(&p, end, &out->revision) || !field(&p, end, &ts) ||
      !field(&p, end, &type) || !field(&p, end, &out->defrev) || ts > INT64_MAX || type < RSTATE_TYPE_FLOAT ||
      type > RSTATE_TYPE_MODULE)
    return bad_text("variable record");
  out->ts = (int64_t)ts;
  out->type = (rstate_type)type;
  return rstate__redis_get_value(p, (size_t)(end - p), &out->value);
}
