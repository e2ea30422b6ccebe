/*
 * eventfmt.h — one watch event as one line of text, the output of
 * `rstate watch`: for people, or a JSON object (--json).
 *
 * Human:  TIME KIND NAME OLD -> NEW version V [source S] [coalesced N]
 *   2026-11-22T11:15:02.123456Z changed model "gpt-4" -> "claude-3" version 2 source cli
 * TIME is the change's timestamp in UTC with microseconds; KIND is initial,
 * changed, defined, deleted or resync; values are written quoted (strings
 * in double quotes), and a missing value (OLD of initial and defined, NEW
 * of deleted) is "-". "coalesced N" appears when N > 1.
 *
 * JSON: {"kind","name","type","old","new","version","revision",
 * "timestamp_ns","source","meta","coalesced"}, in that order; old/new are
 * null when missing, source is null when none, meta an object.
 */
#ifndef RSTATE_TOOLS_EVENTFMT_H
#define RSTATE_TOOLS_EVENTFMT_H

#include <stdio.h>

#include <reactivestate.h>

#include "strbuf.h"

/* "initial", "changed", "defined", "deleted", "resync"; "unknown". */
const char *eventfmt_kind_name(rstate_event_kind k);
/* UTC time with microseconds, "2026-11-22T11:15:02.123456Z". */
void eventfmt_time(int64_t ns, char buf[40]);
/* Write the line, "\n" included. Return 0 or -1 (write error). */
int eventfmt_human(FILE *f, const rstate_event *ev);
int eventfmt_json(FILE *f, const rstate_event *ev);
/* The JSON line with flags: EVENTFMT_QUOTE64 writes version, revision and
 * timestamp_ns as JSON strings (the HTTP API's rule for numbers that may
 * pass 2^53); eventfmt_json is flags 0. */
enum { EVENTFMT_QUOTE64 = 1 };
int eventfmt_json_flags(FILE *f, const rstate_event *ev, unsigned flags);
/* The same line appended to a buffer (the SSE records: no stdio). */
void eventfmt_json_sb(strbuf *b, const rstate_event *ev, unsigned flags);

#endif
