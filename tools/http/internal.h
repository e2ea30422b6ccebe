/*
 * internal.h — what the files of tools/http/ share: the server object, a
 * request being answered, and the answer helpers. Each file does one job:
 *   server.c   libmicrohttpd glue: options, limits, tokens, the route table
 *   api.c      /v1/vars, /v1/set-many, /v1/history: JSON in and out
 *   sse.c      /v1/watch: the Server-Sent Events streams (over hub.c)
 *   hub.c      the change feed: ring, cursors, slow-stream folding
 *   metrics.c  /metrics: Prometheus text
 *   catalog.c  descriptions and constraints read from the schema files
 *   jsonin.c   JSON bodies decoded into values
 *   page.html  the live page, embedded at build time (page.c)
 */
#ifndef RSTATE_TOOLS_HTTP_INTERNAL_H
#define RSTATE_TOOLS_HTTP_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <microhttpd.h>

#include "catalog.h"
#include "http.h"
#include "hub.h"

struct http_server {
  rstate_store *s;
  struct MHD_Daemon *d;
  hub *hub;
  catalog *cat;
  http_opts o;
  char *token, *read_token;
  char url[128];
  unsigned connections; /* open now (MHD's thread only) */
  bool at_limit;        /* logged that max_connections was reached */
};

/* One request while its body arrives and when it is answered. */
typedef struct request {
  http_server *srv;
  struct MHD_Connection *c;
  const char *method, *path; /* path without the query */
  const struct route *route;
  char *body;
  size_t body_len, body_cap;
  bool too_big, write_access;
  int64_t start_ns;
} request;

typedef enum answer_kind { ANSWER_JSON, ANSWER_TEXT, ANSWER_HTML, ANSWER_PROM } answer_kind;

/* Queues a response with this status and body (copied). */
enum MHD_Result http_answer(request *r, unsigned status, answer_kind kind, const char *body, size_t len);
/* {"error":"RSTATE_E...","message":"..."} with the status. */
enum MHD_Result http_error(request *r, unsigned status, int code, const char *message);
/* The error of a failed library call: the status for its code, its name,
 * rstate_last_error()'s sentence. */
enum MHD_Result http_lib_error(request *r, int code);
/* An open_memstream-built JSON answer: closes f and answers (500 when the
 * writing failed). */
enum MHD_Result http_answer_stream(request *r, unsigned status, FILE *f, char **buf, size_t *len);
/* A query argument, or NULL. */
const char *http_arg(request *r, const char *key);

/* Handlers (api.c, sse.c, metrics.c). */
enum MHD_Result api_vars(request *r);
enum MHD_Result api_var_get(request *r, const char *name);
enum MHD_Result api_var_put(request *r, const char *name);
enum MHD_Result api_set_many(request *r);
enum MHD_Result api_history(request *r, const char *name);
enum MHD_Result sse_watch(request *r);
enum MHD_Result metrics_answer(request *r);

/* metrics.c: counters the other files bump. */
void metrics_refused(int code);         /* an error answer, by its code */
void metrics_request(const char *route, unsigned status, int64_t ns);
int64_t metrics_now_ns(void);

/* server.c: lowers the calling thread's priority by http_opts.nice, once
 * per thread (libmicrohttpd's thread, the hub's waker). */
void http_lower_priority(void);

/* JSON helpers over tools/json.c. */
int json_u64(FILE *f, uint64_t v);       /* "123": a quoted 64-bit number */
int json_i64(FILE *f, int64_t v);

/* The embedded page (page.c, generated from page.html). */
extern const unsigned char http_page[];
extern const size_t http_page_len;

#endif
