/*
 * api.c — the JSON rows of the HTTP API: the variables (list, one, set),
 * set-many, history. Every store call goes through the public API, so each
 * check (names, types, constraints, versions) is the library's, and its
 * sentence is the answer's message. Numbers that may pass 2^53 are strings.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../json.h"
#include "jsonin.h"
#include "parse.h"

static const rstate_set_opts http_source = {.source = "http"};

/* One variable's value and info, consistent with each other: read again
 * when a change slipped between the two reads. */
static int read_var(rstate_store *s, const char *name, rstate_value *v, rstate_var_info *info) {
  for (int attempt = 0;; attempt++) {
    rstate_var_info before;
    int rc = rstate_info(s, name, &before);
    if (!rc) rc = rstate_get(s, name, v);
    if (!rc) rc = rstate_info(s, name, info);
    if (rc) return rc;
    if (info->version == before.version || attempt >= 10) return 0;
    rstate_value_clear(v);
  }
}

static void var_fields(FILE *f, const rstate_var_info *info, const rstate_value *v) {
  fprintf(f, "\"type\":\"%s\",\"value\":", rstate_type_name(info->type));
  json_value(f, v);
  fputs(",\"version\":", f);
  json_u64(f, info->version);
  fputs(",\"revision\":", f);
  json_u64(f, info->revision);
  fputs(",\"updated_ns\":", f);
  json_i64(f, info->updated_ns);
}

typedef struct names {
  const char *prefix;
  char **v;
  size_t n, cap;
  int rc;
} names;

static int collect(const char *name, rstate_type type, void *ud) {
  (void)type;
  names *ns = ud;
  if (ns->prefix && strncmp(name, ns->prefix, strlen(ns->prefix)) != 0) return 0;
  if (ns->n == ns->cap) {
    size_t nc = ns->cap ? ns->cap * 2 : 32;
    char **a = realloc(ns->v, nc * sizeof *a);
    if (!a) return ns->rc = RSTATE_ENOMEM;
    ns->v = a;
    ns->cap = nc;
  }
  if (!(ns->v[ns->n] = strdup(name))) return ns->rc = RSTATE_ENOMEM;
  ns->n++;
  return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

enum MHD_Result api_vars(request *r) {
  names ns = {.prefix = http_arg(r, "prefix")};
  int rc = rstate_list(r->srv->s, collect, &ns);
  if (!rc) rc = ns.rc;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = rc ? NULL : open_memstream(&buf, &len);
  if (!rc && !f) rc = RSTATE_ENOMEM;
  if (!rc) {
    qsort(ns.v, ns.n, sizeof *ns.v, by_name);
    putc('{', f);
    bool first = true;
    for (size_t i = 0; i < ns.n; i++) {
      rstate_value v = {0};
      rstate_var_info info;
      if (read_var(r->srv->s, ns.v[i], &v, &info) != 0) continue; /* undefined meanwhile */
      if (!first) putc(',', f);
      first = false;
      json_string(f, ns.v[i], strlen(ns.v[i]));
      putc(':', f);
      putc('{', f);
      var_fields(f, &info, &v);
      putc('}', f);
      rstate_value_clear(&v);
    }
    fputs("}\n", f);
  }
  for (size_t i = 0; i < ns.n; i++) free(ns.v[i]);
  free(ns.v);
  if (rc) return http_lib_error(r, rc);
  return http_answer_stream(r, 200, f, &buf, &len);
}

/* A catalog value as a JSON array of the comma-separated choices. */
static void choices_json(FILE *f, const char *list) {
  putc('[', f);
  bool first = true;
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == '\t') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if (t > p) {
      if (!first) putc(',', f);
      first = false;
      json_string(f, p, (size_t)(t - p));
    }
    p = *e ? e + 1 : e;
  }
  putc(']', f);
}

enum MHD_Result api_var_get(request *r, const char *name) {
  rstate_value v = {0};
  rstate_var_info info;
  int rc = read_var(r->srv->s, name, &v, &info);
  if (rc) return http_lib_error(r, rc);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) {
    rstate_value_clear(&v);
    return http_lib_error(r, RSTATE_ENOMEM);
  }
  fputs("{\"name\":", f);
  json_string(f, name, strlen(name));
  putc(',', f);
  var_fields(f, &info, &v);
  const catalog *cat = r->srv->cat;
  const char *d = catalog_get(cat, name, CAT_DESCRIPTION);
  fputs(",\"description\":", f);
  json_string(f, d, d ? strlen(d) : 0);
  /* beyond API.md's fields: the constraints as the schema file wrote them */
  fputs(",\"constraints\":{", f);
  bool first = true;
  for (int k = CAT_MIN; k < CAT_N; k++) {
    const char *t = catalog_get(cat, name, k);
    if (!t) continue;
    if (!first) putc(',', f);
    first = false;
    fprintf(f, "\"%s\":", catalog_keys[k]);
    if (k == CAT_CHOICES) choices_json(f, t);
    else json_string(f, t, strlen(t));
  }
  fputs("}}\n", f);
  rstate_value_clear(&v);
  return http_answer_stream(r, 200, f, &buf, &len);
}

/* If-Match: 1 with *version set, 0 when absent, -1 when malformed. */
static int if_match(request *r, uint64_t *version) {
  const char *h = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MATCH);
  if (!h) return 0;
  return http_parse_if_match(h, version) == 0 ? 1 : -1;
}

static enum MHD_Result body_error(request *r, int jr, const char *err) {
  if (jr == JIN_NOMEM) return http_error(r, 503, RSTATE_ENOMEM, err);
  if (jr == JIN_KIND) return http_error(r, 422, RSTATE_ETYPE, err);
  return http_error(r, 400, RSTATE_EINVAL, err);
}

enum MHD_Result api_var_put(request *r, const char *name) {
  uint64_t expected = 0;
  int im = if_match(r, &expected);
  if (im < 0) return http_error(r, 400, RSTATE_EINVAL, "If-Match: expected a version in double quotes, such as \"3\"");
  jin_doc doc;
  char err[256];
  int jr = jin_parse_value(r->body ? r->body : "", r->body_len, &doc, err, sizeof err);
  if (jr) {
    /* the sentence names the variable, like the library's */
    char msg[520];
    snprintf(msg, sizeof msg, "%.255s: %s", name, err);
    jin_free(&doc);
    return body_error(r, jr, msg);
  }
  int rc = im ? rstate_set_if(r->srv->s, name, &doc.items[0].value, expected, &http_source)
              : rstate_set(r->srv->s, name, &doc.items[0].value, &http_source);
  jin_free(&doc);
  if (rc) {
    return http_lib_error(r, rc);
  }
  rstate_var_info info;
  rc = rstate_info(r->srv->s, name, &info);
  if (rc) return http_lib_error(r, rc);
  char buf[96];
  int n = snprintf(buf, sizeof buf, "{\"version\":\"%" PRIu64 "\",\"revision\":\"%" PRIu64 "\"}\n", info.version,
                   info.revision);
  return http_answer(r, 200, ANSWER_JSON, buf, (size_t)n);
}

enum MHD_Result api_set_many(request *r) {
  jin_doc doc;
  char err[400];
  int jr = jin_parse_object(r->body ? r->body : "", r->body_len, &doc, err, sizeof err);
  if (jr) {
    jin_free(&doc);
    return body_error(r, jr, err);
  }
  size_t failed = SIZE_MAX;
  int rc = rstate_set_many(r->srv->s, doc.items, doc.n, &http_source, &failed);
  if (rc) {
    unsigned status = failed != SIZE_MAX && rc != RSTATE_ENOMEM ? 422 : 0;
    enum MHD_Result res;
    if (!status) {
      res = http_lib_error(r, rc);
    } else {
      char *buf = NULL;
      size_t len = 0;
      FILE *f = open_memstream(&buf, &len);
      if (!f) {
        jin_free(&doc);
        return MHD_NO;
      }
      const char *msg = rstate_last_error();
      fprintf(f, "{\"error\":\"%s\",\"message\":", rstate_error_name(rc));
      json_string(f, msg, strlen(msg));
      fputs(",\"name\":", f);
      json_string(f, doc.items[failed].name, strlen(doc.items[failed].name));
      fputs("}\n", f);
      res = http_answer_stream(r, status, f, &buf, &len);
    }
    jin_free(&doc);
    return res;
  }
  jin_free(&doc);
  char buf[64];
  int n = snprintf(buf, sizeof buf, "{\"revision\":\"%" PRIu64 "\"}\n", rstate_revision(r->srv->s));
  return http_answer(r, 200, ANSWER_JSON, buf, (size_t)n);
}

typedef struct hist {
  FILE *f;
  bool first;
} hist;

static int history_one(const rstate_history_entry *e, void *ud) {
  hist *h = ud;
  FILE *f = h->f;
  if (!h->first) putc(',', f);
  h->first = false;
  fputs("{\"version\":", f);
  json_u64(f, e->version);
  fputs(",\"revision\":", f);
  json_u64(f, e->revision);
  fputs(",\"value\":", f);
  json_value(f, &e->value);
  fputs(",\"timestamp_ns\":", f);
  json_i64(f, e->timestamp_ns);
  fputs(",\"source\":", f);
  json_string(f, e->source, e->source ? strlen(e->source) : 0);
  putc('}', f);
  return 0;
}

enum MHD_Result api_history(request *r, const char *name) {
  uint64_t after = 0;
  const char *a = http_arg(r, "after");
  if (a && http_parse_u64(a, &after) != 0) return http_error(r, 400, RSTATE_EINVAL, "?after= must be a version number");
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return http_lib_error(r, RSTATE_ENOMEM);
  hist h = {.f = f, .first = true};
  putc('[', f);
  int rc = rstate_history(r->srv->s, name, after, history_one, &h);
  fputs("]\n", f);
  if (rc) {
    fclose(f);
    free(buf);
    return http_lib_error(r, rc);
  }
  return http_answer_stream(r, 200, f, &buf, &len);
}
