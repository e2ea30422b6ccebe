/*
 * metrics.c — GET /metrics in the Prometheus text format (version 0.0.4),
 * from what the daemon can see through the public API and its own
 * counters. The names and what each counts are in docs/HTTP.md.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../json.h"

static const char *const route_labels[] = {"page", "healthz", "metrics", "vars", "var_get", "var_put",
                                           "set_many", "history", "watch", "other"};
#define N_ROUTES (sizeof route_labels / sizeof route_labels[0])
static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1};
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])

static _Atomic uint64_t buckets[N_ROUTES][N_BOUNDS + 1], sum_ns[N_ROUTES], count[N_ROUTES];
static _Atomic uint64_t by_class[N_ROUTES][6]; /* 1xx..5xx */
static _Atomic uint64_t refused[32];            /* by -code */

int64_t metrics_now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void metrics_refused(int code) {
  refused[code < 0 && code > -32 ? -code : 0]++;
}

void metrics_request(const char *route, unsigned status, int64_t ns) {
  size_t i = 0;
  while (i < N_ROUTES - 1 && strcmp(route_labels[i], route) != 0) i++;
  double s = (double)ns / 1e9;
  size_t b = 0;
  while (b < N_BOUNDS && s > bounds[b]) b++;
  buckets[i][b]++;
  sum_ns[i] += (uint64_t)(ns > 0 ? ns : 0);
  count[i]++;
  if (status / 100 < 6) by_class[i][status / 100]++;
}

static int count_var(const char *name, rstate_type type, void *ud) {
  (void)name;
  (void)type;
  (*(size_t *)ud)++;
  return 0;
}

enum MHD_Result metrics_answer(request *r) {
  http_server *h = r->srv;
  hub_stats hs;
  hub_get_stats(h->hub, &hs);
  size_t vars = 0;
  rstate_list(h->s, count_var, &vars);
  const union MHD_DaemonInfo *ci = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return http_lib_error(r, RSTATE_ENOMEM);
  rstate_server_stats ss = {0};
  bool sock = h->o.server && rstate_server_get_stats(h->o.server, &ss) == RSTATE_OK;
  fprintf(f,
          "# HELP rstated_changes_accepted_total Changes the store accepted (its revision), from every client.\n"
          "# TYPE rstated_changes_accepted_total counter\n"
          "rstated_changes_accepted_total %" PRIu64 "\n",
          rstate_revision(h->s));
  fputs("# HELP rstated_requests_refused_total Requests answered with an error (a refused change, an unknown\n"
        "# variable, a refused token, malformed input), by transport and error code.\n"
        "# TYPE rstated_requests_refused_total counter\n",
        f);
  for (int c = 1; c < 32; c++) {
    const char *name = rstate_error_name(-c);
    if (strcmp(name, "RSTATE_E?") == 0) continue; /* not a code (yet) */
    if (sock)
      fprintf(f, "rstated_requests_refused_total{transport=\"socket\",code=\"%s\"} %" PRIu64 "\n", name,
              ss.refused[c]);
    fprintf(f, "rstated_requests_refused_total{transport=\"http\",code=\"%s\"} %" PRIu64 "\n", name,
            (uint64_t)refused[c]);
  }
  fprintf(f, "# HELP rstated_variables Variables defined in the store.\n"
             "# TYPE rstated_variables gauge\n"
             "rstated_variables %zu\n", vars);
  fputs("# HELP rstated_events_delivered_total Events sent to watchers, INITIAL and RESYNC included.\n"
        "# TYPE rstated_events_delivered_total counter\n", f);
  if (sock) fprintf(f, "rstated_events_delivered_total{transport=\"socket\"} %" PRIu64 "\n", ss.events_sent);
  fprintf(f, "rstated_events_delivered_total{transport=\"sse\"} %" PRIu64 "\n", hs.events_delivered);
  fputs("# HELP rstated_events_coalesced_total Changes merged into another event for slow watchers.\n"
        "# TYPE rstated_events_coalesced_total counter\n", f);
  if (sock) fprintf(f, "rstated_events_coalesced_total{transport=\"socket\"} %" PRIu64 "\n", ss.events_coalesced);
  fprintf(f, "rstated_events_coalesced_total{transport=\"sse\"} %" PRIu64 "\n", hs.coalesced);
  fputs("# HELP rstated_clients_connected Clients connected now (http: connections, streams included).\n"
        "# TYPE rstated_clients_connected gauge\n", f);
  if (sock) fprintf(f, "rstated_clients_connected{transport=\"socket\"} %" PRIu64 "\n", ss.clients);
  fprintf(f, "rstated_clients_connected{transport=\"http\"} %u\n", ci ? ci->num_connections : 0u);
  fprintf(f, "# HELP rstated_sse_streams SSE streams open now.\n"
             "# TYPE rstated_sse_streams gauge\n"
             "rstated_sse_streams %zu\n", hs.streams);
  fputs("# HELP rstated_history_events Events held for resuming watchers (socket clients; SSE streams).\n"
        "# TYPE rstated_history_events gauge\n", f);
  if (sock) fprintf(f, "rstated_history_events{transport=\"socket\"} %" PRIu64 "\n", ss.history_events);
  fprintf(f, "rstated_history_events{transport=\"sse\"} %zu\n", hs.ring_entries);
  fputs("# HELP rstated_history_bytes Bytes those events hold.\n"
        "# TYPE rstated_history_bytes gauge\n", f);
  if (sock) fprintf(f, "rstated_history_bytes{transport=\"socket\"} %" PRIu64 "\n", ss.history_bytes);
  fprintf(f, "rstated_history_bytes{transport=\"sse\"} %zu\n", hs.ring_bytes);
  fprintf(f, "# HELP rstated_history_capacity Events the SSE history keeps at most.\n"
             "# TYPE rstated_history_capacity gauge\n"
             "rstated_history_capacity{transport=\"sse\"} %zu\n", hs.ring_capacity);
  fputs("# HELP rstated_http_requests_total HTTP requests answered, by route and status class.\n"
        "# TYPE rstated_http_requests_total counter\n",
        f);
  for (size_t i = 0; i < N_ROUTES; i++)
    for (int c = 1; c < 6; c++)
      if (by_class[i][c])
        fprintf(f, "rstated_http_requests_total{route=\"%s\",status=\"%dxx\"} %" PRIu64 "\n", route_labels[i], c,
                (uint64_t)by_class[i][c]);
  fputs("# HELP rstated_http_request_duration_seconds Time from a request's arrival to its answer (for a stream: to its\n"
        "# first byte), by route.\n"
        "# TYPE rstated_http_request_duration_seconds histogram\n",
        f);
  for (size_t i = 0; i < N_ROUTES; i++) {
    uint64_t cum = 0;
    for (size_t b = 0; b < N_BOUNDS; b++) {
      cum += buckets[i][b];
      fprintf(f, "rstated_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64 "\n", route_labels[i],
              bounds[b], cum);
    }
    cum += buckets[i][N_BOUNDS];
    fprintf(f, "rstated_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", route_labels[i],
            cum);
    fprintf(f, "rstated_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", route_labels[i],
            (double)sum_ns[i] / 1e9);
    fprintf(f, "rstated_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n", route_labels[i],
            (uint64_t)count[i]);
  }
  bool bad = ferror(f) != 0;
  if (fclose(f) != 0 || bad) {
    free(buf);
    return http_lib_error(r, RSTATE_ENOMEM);
  }
  enum MHD_Result res = http_answer(r, 200, ANSWER_PROM, buf, len);
  free(buf);
  return res;
}
