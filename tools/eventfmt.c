/*
 * eventfmt.c — one watch event as one line of text, for people or as JSON.
 * The formats are described in eventfmt.h and in rstate(1).
 */
#include "eventfmt.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "textvalue.h"

const char *eventfmt_kind_name(rstate_event_kind k) {
  switch (k) {
    case RSTATE_EVENT_INITIAL: return "initial";
    case RSTATE_EVENT_CHANGED: return "changed";
    case RSTATE_EVENT_DEFINED: return "defined";
    case RSTATE_EVENT_DELETED: return "deleted";
    case RSTATE_EVENT_RESYNC: return "resync";
  }
  return "unknown";
}

void eventfmt_time(int64_t ns, char buf[40]) {
  int64_t sec = ns / 1000000000, frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    sec -= 1;
  }
  time_t t = (time_t)sec;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(buf, 40, "%" PRId64, ns);
    return;
  }
  size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, 40 - n, ".%06dZ", (int)(frac / 1000));
}

int eventfmt_human(FILE *f, const rstate_event *ev) {
  char when[40];
  eventfmt_time(ev->timestamp_ns, when);
  if (fprintf(f, "%s %s %s ", when, eventfmt_kind_name(ev->kind), ev->name) < 0) return -1;
  if (tv_print(f, &ev->old_value, TV_QUOTED) < 0 || fputs(" -> ", f) < 0) return -1;
  if (tv_print(f, &ev->new_value, TV_QUOTED) < 0) return -1;
  if (fprintf(f, " version %" PRIu64, ev->version) < 0) return -1;
  if (ev->source && fprintf(f, " source %s", ev->source) < 0) return -1;
  if (ev->coalesced > 1 && fprintf(f, " coalesced %" PRIu32, ev->coalesced) < 0) return -1;
  return putc('\n', f) == EOF ? -1 : 0;
}

int eventfmt_json(FILE *f, const rstate_event *ev) { return eventfmt_json_flags(f, ev, 0); }

int eventfmt_json_flags(FILE *f, const rstate_event *ev, unsigned flags) {
  const char *q = (flags & EVENTFMT_QUOTE64) ? "\"" : "";
  if (fprintf(f, "{\"kind\":\"%s\",\"name\":", eventfmt_kind_name(ev->kind)) < 0) return -1;
  if (json_string(f, ev->name, strlen(ev->name)) < 0) return -1;
  if (fprintf(f, ",\"type\":\"%s\",\"old\":", rstate_type_name(ev->type)) < 0) return -1;
  if (json_value(f, &ev->old_value) < 0 || fputs(",\"new\":", f) < 0) return -1;
  if (json_value(f, &ev->new_value) < 0) return -1;
  if (fprintf(f, ",\"version\":%s%" PRIu64 "%s,\"revision\":%s%" PRIu64 "%s,\"timestamp_ns\":%s%" PRId64 "%s,\"source\":",
              q, ev->version, q, q, ev->revision, q, q, ev->timestamp_ns, q) < 0)
    return -1;
  if (json_string(f, ev->source, ev->source ? strlen(ev->source) : 0) < 0) return -1;
  if (fputs(",\"meta\":{", f) < 0) return -1;
  for (size_t i = 0; i < ev->n_meta; i++) {
    const char *k = ev->meta[i].key ? ev->meta[i].key : "";
    if (i && putc(',', f) == EOF) return -1;
    if (json_string(f, k, strlen(k)) < 0 || putc(':', f) == EOF) return -1;
    if (json_string(f, ev->meta[i].value, ev->meta[i].value ? strlen(ev->meta[i].value) : 0) < 0) return -1;
  }
  if (fprintf(f, "},\"coalesced\":%" PRIu32 "}\n", ev->coalesced) < 0) return -1;
  return 0;
}
