/*
 * sse.c — GET /v1/watch: one Server-Sent Events stream per request, fed by
 * the hub. The response is libmicrohttpd's content-reader callback: it
 * pulls the stream's next bytes from the hub, and when there are none the
 * hub suspends the connection (under its lock) until its waker resumes it,
 * so an idle stream costs no thread and no polling.
 *
 *   ?names=a,b.*   the variables covered (a trailing '*' is a prefix; none: all)
 *   ?initial=1     an INITIAL event per covered variable first
 *   Last-Event-ID: REV (or ?after=REV)  resume after that revision
 */
#include "internal.h"
#include "parse.h"

#include <stdlib.h>
#include <string.h>

typedef struct sse {
  hub_stream *st;
  struct MHD_Connection *c;
  char pre[160]; /* sent before the events: retry and a comment saying how the stream starts */
  size_t pre_len, pre_off;
} sse;

static void wake(void *ud) { MHD_resume_connection(((sse *)ud)->c); }
static void suspend(void *ud) { MHD_suspend_connection(((sse *)ud)->c); }

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  sse *x = cls;
  if (x->pre_off < x->pre_len) {
    size_t n = x->pre_len - x->pre_off;
    if (n > max) n = max;
    memcpy(buf, x->pre + x->pre_off, n);
    x->pre_off += n;
    return (ssize_t)n;
  }
  long n = hub_read(x->st, buf, max);
  return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void release(void *cls) {
  sse *x = cls;
  hub_stream_close(x->st);
  free(x);
}

enum MHD_Result sse_watch(request *r) {
  hub_stream_opts o = {.wake = wake, .suspend = suspend};
  const char *id = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Last-Event-ID");
  const char *after = http_arg(r, "after");
  const char *from = id && *id ? id : after;
  if (from) {
    if (http_parse_u64(from, &o.after) != 0)
      return http_error(r, 400, RSTATE_EINVAL,
                        id && *id ? "Last-Event-ID: expected a revision number" : "?after= must be a revision number");
    o.has_after = true;
  }
  const char *initial = http_arg(r, "initial");
  o.initial = initial && (strcmp(initial, "1") == 0 || strcmp(initial, "true") == 0);

  /* names: split a copy on commas */
  const char *list = http_arg(r, "names");
  char *copy = strdup(list && *list ? list : "*");
  const char **names = copy ? calloc(strlen(copy) / 2 + 2, sizeof *names) : NULL;
  if (!names) {
    free(copy);
    return http_error(r, 503, RSTATE_ENOMEM, "out of memory opening the stream");
  }
  size_t n = http_split_names(copy, names, strlen(copy) / 2 + 1);
  if (n == 0) names[n++] = "*";
  o.names = names;
  o.n_names = n;

  sse *x = calloc(1, sizeof *x);
  if (!x) {
    free(names);
    free(copy);
    return http_error(r, 503, RSTATE_ENOMEM, "out of memory opening the stream");
  }
  x->c = r->c;
  o.ud = x;
  bool resumed = false;
  int rc = hub_stream_open(r->srv->hub, &o, &x->st, &resumed);
  free(names);
  free(copy);
  if (rc) {
    free(x);
    return http_lib_error(r, rc);
  }
  int pn;
  if (o.has_after)
    pn = snprintf(x->pre, sizeof x->pre, "retry: 1000\n: %s after revision %llu\n\n",
                  resumed ? "resumed" : "history gone, resync", (unsigned long long)o.after);
  else
    pn = snprintf(x->pre, sizeof x->pre, "retry: 1000\n: watching\n\n");
  x->pre_len = (size_t)pn;

  struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, reader, x, release);
  if (!resp) {
    release(x);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  enum MHD_Result ok = MHD_queue_response(r->c, 200, resp);
  MHD_destroy_response(resp);
  metrics_request("watch", 200, metrics_now_ns() - r->start_ns);
  return ok;
}
