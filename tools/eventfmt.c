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

void eventfmt_json_sb(strbuf *b, const rstate_event *ev, unsigned flags) {
  bool q = flags & EVENTFMT_QUOTE64;
  strbuf_puts(b, "{\"kind\":\"");
  strbuf_puts(b, eventfmt_kind_name(ev->kind));
  strbuf_puts(b, "\",\"name\":");
  json_string_sb(b, ev->name, strlen(ev->name));
  strbuf_puts(b, ",\"type\":\"");
  strbuf_puts(b, rstate_type_name(ev->type));
  strbuf_puts(b, "\",\"old\":");
  json_value_sb(b, &ev->old_value);
  strbuf_puts(b, ",\"new\":");
  json_value_sb(b, &ev->new_value);
  strbuf_puts(b, q ? ",\"version\":\"" : ",\"version\":");
  strbuf_u64(b, ev->version);
  strbuf_puts(b, q ? "\",\"revision\":\"" : ",\"revision\":");
  strbuf_u64(b, ev->revision);
  strbuf_puts(b, q ? "\",\"timestamp_ns\":\"" : ",\"timestamp_ns\":");
  strbuf_i64(b, ev->timestamp_ns);
  strbuf_puts(b, q ? "\",\"source\":" : ",\"source\":");
  json_string_sb(b, ev->source, ev->source ? strlen(ev->source) : 0);
  strbuf_puts(b, ",\"meta\":{");
  for (size_t i = 0; i < ev->n_meta; i++) {
    const char *k = ev->meta[i].key ? ev->meta[i].key : "";
    if (i) strbuf_putc(b, ',');
    json_string_sb(b, k, strlen(k));
    strbuf_putc(b, ':');
    json_string_sb(b, ev->meta[i].value, ev->meta[i].value ? strlen(ev->meta[i].value) : 0);
  }
  strbuf_puts(b, "},\"coalesced\":");
  strbuf_u64(b, ev->coalesced);
  strbuf_put(b, "}\n", 2);
}

int eventfmt_json_flags(FILE *f, const rstate_event *ev, unsigned flags) {
  strbuf b = {0};
  eventfmt_json_sb(&b, ev, flags);
  int r = strbuf_write(&b, f);
  strbuf_free(&b);
  return r;
}
