/*
 * log.c — what the server says when a limit bites or it refuses someone:
 * one line through rstate_server_opts.on_log, each kind at most once a
 * second (a minute for the history), so that a flood of refused connections costs one line a second,
 * not one per connection. The lines left unsaid are counted and the next
 * line of the kind says how many.
 */
#include <stdarg.h>
#include <stdio.h>

#include "server.h"

/* The history forgetting for want of room is steady state once it starts:
 * said once a minute; the rest once a second. */
static int64_t interval_ms(srv_log_kind kind) { return kind == LOG_HISTORY_BYTES ? 60000 : 1000; }

void rstate__srv_log(rstate_server *srv, srv_log_kind kind, const char *fmt, ...) {
  srv->log_counts[kind]++;
  if (!srv->on_log) return;
  int64_t now = now_ms();
  srv_log_state *st = &srv->log_state[kind];
  if (st->said && now - st->last_ms < interval_ms(kind)) {
    st->unsaid++;
    return;
  }
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (st->unsaid && (size_t)n < sizeof line)
    snprintf(line + n, sizeof line - (size_t)n, " (and %llu more like it in the last %lld ms)",
             (unsigned long long)st->unsaid, (long long)(now - st->last_ms));
  st->said = true;
  st->last_ms = now;
  st->unsaid = 0;
  srv->on_log(srv, line, srv->log_ud);
}
