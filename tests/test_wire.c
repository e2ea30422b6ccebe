/*
 * test_wire.c — the wire codec (src/wire/framing.c, src/wire/codec.c):
 * every frame type encoded, framed and decoded back to the same fields and
 * the same bytes; every frame fed split at every byte offset, byte by byte,
 * and in random chunks; declared lengths refused before anything is stored;
 * every truncation, trailing byte, bad tag and byte flip of every frame
 * refused or re-encoded exactly; the splitting encoders the server uses;
 * golden bytes that docs/PROTOCOL.md quotes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "wire/wire.h"

TestSuite(wire);

/* ---- sample messages -------------------------------------------------------- */

static rstate_value vstr(const char *s) { return rstate_string(s); }

static double bits_to_double(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

static char long_string[3001];
static char name255[256];
static rstate_meta many_meta[300];
static char many_meta_text[300][2][16];

static void init_data(void) {
  memset(long_string, 'x', sizeof long_string - 1);
  for (size_t i = 0; i < sizeof long_string - 1; i += 7) long_string[i] = (char)(0x80 | (i & 0x3f)); /* not UTF-8: fine */
  long_string[sizeof long_string - 1] = '\0';
  memset(name255, 'n', 255);
  name255[255] = '\0';
  for (int i = 0; i < 300; i++) {
    snprintf(many_meta_text[i][0], 16, "k%d", i);
    if (i % 3)
      snprintf(many_meta_text[i][1], 16, "v%d", i);
    else
      many_meta_text[i][1][0] = '\0';
    many_meta[i].key = many_meta_text[i][0];
    many_meta[i].value = many_meta_text[i][1];
  }
}

/* Fills out with representative (variant 0) or edge (variant 1) messages of
 * every frame type; returns how many. Everything points to static data. */
static size_t samples(rstate__wire_msg *out, int variant) {
  static const char *const choices[] = {"Default", "Optimized", "A.B"};
  static const char *const names3[] = {"a", "cfg.temperature", "model"};
  static const char *const patterns[] = {"model", "cfg.*", "*"};
  static const char *const empties[] = {"", ""};
  static rstate_constraints cmod, cfloat, cedge;
  static rstate_meta meta2[] = {{"trace", "abc123"}, {"user", "ana"}};
  static rstate_assign items[3];
  static uint64_t expected[3] = {0, 7, UINT64_MAX};
  static rstate_value values[8];
  static rstate__wire_list_item list[3];
  static rstate__wire_var vars[4];
  static rstate__wire_stat stats[3];
  static rstate__wire_event events[4];
  static rstate_history_entry hist[3];
  size_t n = 0;
  init_data();
#define ADD(t) (out[n].type = (t), &out[n++].u)
  if (variant == 0) {
    cmod = (rstate_constraints){.choices = choices, .n_choices = 3, .module_namespace = "Strategies",
                                .pattern = "^[A-Z].*$"};
    cfloat = (rstate_constraints){.min = rstate_float(0), .max = rstate_int(2), .max_length = 0};
    items[0] = (rstate_assign){"temperature", rstate_float(0.7)};
    items[1] = (rstate_assign){"max_tokens", rstate_int(4096)};
    items[2] = (rstate_assign){"model", vstr("claude-3")};
    values[0] = rstate_float(1.5);
    values[1] = rstate_int(-3);
    values[2] = rstate_bool(true);
    values[3] = vstr("gpt-4");
    values[4] = (rstate_value){.kind = RSTATE_NONE};
    list[0] = (rstate__wire_list_item){"a", RSTATE_TYPE_FLOAT};
    list[1] = (rstate__wire_list_item){"b", RSTATE_TYPE_MODULE};
    vars[0] = (rstate__wire_var){"cfg.a", RSTATE_TYPE_INTEGER, rstate_int(5), 3, 1700000000000000000};
    vars[1] = (rstate__wire_var){"cfg.b", RSTATE_TYPE_STRING, vstr("hello"), 1, 1700000000000000001};
    stats[0] = (rstate__wire_stat){"clients", 3};
    stats[1] = (rstate__wire_stat){"revision", 1234};
    events[0] = (rstate__wire_event){RSTATE_EVENT_CHANGED, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.5),
                                     rstate_float(0.7), 4, 1700000000123456789, 1};
    events[1] = (rstate__wire_event){RSTATE_EVENT_CHANGED, "model", RSTATE_TYPE_CHOICE, vstr("gpt-4"),
                                     vstr("claude-3"), 2, 1700000000123456789, 1};

    ADD(RSTATE__WIRE_HELLO)->hello = (rstate__wire_hello){1, 0, "secret", 0};
    ADD(RSTATE__WIRE_WELCOME)->welcome =
        (rstate__wire_welcome){1, 0x0123456789ABCDEFull, 1000, 42, 1024 * 1024, RSTATE__WIRE_READ_WRITE};
    ADD(RSTATE__WIRE_PING)->ping.payload = 7;
    ADD(RSTATE__WIRE_PONG)->ping.payload = 7;
    ADD(RSTATE__WIRE_ERROR)->error =
        (rstate__wire_error){5, RSTATE_ECONSTRAINT, "max_tokens: 5000 is above the maximum 4096", 1};
    ADD(RSTATE__WIRE_OK)->req.req = 5;
    ADD(RSTATE__WIRE_STATS)->req.req = 6;
    ADD(RSTATE__WIRE_REVISION)->req.req = 7;
    ADD(RSTATE__WIRE_DEFINE)->define = (rstate__wire_define){
        8, {.name = "strategy", .type = RSTATE_TYPE_MODULE, .initial = vstr("Strategies.Default"),
            .constraints = &cmod, .description = "Which strategy runs"}};
    ADD(RSTATE__WIRE_DEFINE)->define = (rstate__wire_define){
        9, {.name = "temperature", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(0.7), .constraints = &cfloat}};
    ADD(RSTATE__WIRE_UNDEFINE)->name = (rstate__wire_name){10, "model"};
    ADD(RSTATE__WIRE_GET)->name = (rstate__wire_name){11, "model"};
    ADD(RSTATE__WIRE_INFO)->name = (rstate__wire_name){12, "model"};
    ADD(RSTATE__WIRE_GET_MANY)->names = (rstate__wire_names){13, names3, 3};
    ADD(RSTATE__WIRE_LIST)->names = (rstate__wire_names){14, NULL, 0};
    ADD(RSTATE__WIRE_SNAPSHOT)->names = (rstate__wire_names){15, patterns + 1, 1};
    ADD(RSTATE__WIRE_SET_MANY)->set_many =
        (rstate__wire_set_many){16, items, expected, 3, {.source = "python", .meta = meta2, .n_meta = 2}};
    ADD(RSTATE__WIRE_WATCH)->watch =
        (rstate__wire_watch){17, 9, RSTATE__WIRE_WATCH_INITIAL, 0, patterns, 2};
    ADD(RSTATE__WIRE_UNWATCH)->unwatch = (rstate__wire_unwatch){18, 9};
    ADD(RSTATE__WIRE_GET_REPLY)->get_reply =
        (rstate__wire_get_reply){11, RSTATE_TYPE_CHOICE, vstr("gpt-4"), 3, 40, 1700000000000000000};
    ADD(RSTATE__WIRE_SET_MANY_REPLY)->rev = (rstate__wire_rev){16, 43};
    ADD(RSTATE__WIRE_REVISION_REPLY)->rev = (rstate__wire_rev){7, 43};
    ADD(RSTATE__WIRE_INFO_REPLY)->info_reply =
        (rstate__wire_info_reply){12, {RSTATE_TYPE_CHOICE, 3, 40, 1700000000000000000}};
    ADD(RSTATE__WIRE_GET_MANY_PART)->values = (rstate__wire_values_part){13, 0, 43, values, 5};
    ADD(RSTATE__WIRE_LIST_PART)->list = (rstate__wire_list_part){14, 0, 43, list, 2};
    ADD(RSTATE__WIRE_SNAPSHOT_PART)->snapshot = (rstate__wire_snapshot_part){15, 0, 43, vars, 2};
    ADD(RSTATE__WIRE_WATCH_REPLY)->watch_reply =
        (rstate__wire_watch_reply){17, 9, RSTATE__WIRE_WATCH_NEW, 43, 2};
    ADD(RSTATE__WIRE_STATS_REPLY)->stats = (rstate__wire_stats_reply){6, stats, 2};
    ADD(RSTATE__WIRE_EVENT)->events = (rstate__wire_events){9, 44, 0, "python", meta2, 2, events, 2};
    hist[0] = (rstate_history_entry){1, 3, 1700000000000000000, rstate_int(7), NULL, NULL, 0};
    hist[1] = (rstate_history_entry){2, 9, 1700000000000000001, vstr("two"), "ops", meta2, 2};
    ADD(RSTATE__WIRE_HISTORY)->history = (rstate__wire_history){19, "cfg.a", 0};
    ADD(RSTATE__WIRE_ROLLBACK)->rollback =
        (rstate__wire_rollback){20, "cfg.a", 1, {.source = "ops", .meta = meta2, .n_meta = 2}};
    ADD(RSTATE__WIRE_HISTORY_PART)->hist = (rstate__wire_hist_part){19, 0, 44, hist, 2};
    ADD(RSTATE__WIRE_ROLLBACK_REPLY)->rev = (rstate__wire_rev){20, 45};
  } else {
    cedge = (rstate_constraints){.min = rstate_int(INT64_MIN), .max = rstate_float(bits_to_double(0x7FF0000000000000ull)),
                                 .min_length = SIZE_MAX, .max_length = SIZE_MAX - 1, .choices = empties,
                                 .n_choices = 2, .module_namespace = "", .pattern = ""};
    items[0] = (rstate_assign){"", rstate_stringn("", 0)};
    items[1] = (rstate_assign){name255, rstate_bool(false)};
    items[2] = (rstate_assign){"x", (rstate_value){.kind = RSTATE_NONE}};
    values[0] = rstate_float(bits_to_double(0x7FF8000000000123ull)); /* quiet NaN with a payload */
    values[1] = rstate_float(bits_to_double(0x7FF0000000000001ull)); /* signalling NaN */
    values[2] = rstate_float(-0.0);
    values[3] = rstate_float(bits_to_double(0xFFF0000000000000ull)); /* -inf */
    values[4] = rstate_int(INT64_MIN);
    values[5] = rstate_int(INT64_MAX);
    values[6] = rstate_bool(false);
    values[7] = vstr(long_string);
    list[0] = (rstate__wire_list_item){"", RSTATE_TYPE_BOOLEAN};
    list[1] = (rstate__wire_list_item){name255, RSTATE_TYPE_CHOICE};
    list[2] = (rstate__wire_list_item){"z", RSTATE_TYPE_MODULE};
    vars[0] = (rstate__wire_var){name255, RSTATE_TYPE_FLOAT, rstate_float(-0.0), UINT64_MAX, INT64_MIN};
    vars[1] = (rstate__wire_var){"b", RSTATE_TYPE_BOOLEAN, rstate_bool(true), 0, -1};
    vars[2] = (rstate__wire_var){"c", RSTATE_TYPE_STRING, vstr(""), 1, 0};
    vars[3] = (rstate__wire_var){"d", RSTATE_TYPE_STRING, (rstate_value){.kind = RSTATE_NONE}, 1, INT64_MAX};
    stats[0] = (rstate__wire_stat){"", UINT64_MAX};
    events[0] = (rstate__wire_event){RSTATE_EVENT_DELETED, name255, RSTATE_TYPE_STRING, vstr(long_string),
                                     (rstate_value){.kind = RSTATE_NONE}, UINT64_MAX, INT64_MIN, UINT32_MAX};
    events[1] = (rstate__wire_event){RSTATE_EVENT_DEFINED, "d", RSTATE_TYPE_INTEGER, (rstate_value){.kind = RSTATE_NONE},
                                     rstate_int(INT64_MIN), 1, -1, 1};
    events[2] = (rstate__wire_event){RSTATE_EVENT_INITIAL, "", RSTATE_TYPE_BOOLEAN, (rstate_value){.kind = RSTATE_NONE},
                                     rstate_bool(true), 9, 0, 0};
    events[3] = (rstate__wire_event){RSTATE_EVENT_CHANGED, "f", RSTATE_TYPE_FLOAT,
                                     rstate_float(bits_to_double(0x7FF8000000000001ull)), rstate_float(-0.0), 2, 1, 0};

    ADD(RSTATE__WIRE_HELLO)->hello = (rstate__wire_hello){UINT16_MAX, UINT32_MAX, "", 0xFF};
    ADD(RSTATE__WIRE_HELLO)->hello = (rstate__wire_hello){1, 1, long_string, 0};
    ADD(RSTATE__WIRE_WELCOME)->welcome =
        (rstate__wire_welcome){UINT16_MAX, UINT64_MAX, UINT32_MAX, UINT64_MAX, UINT32_MAX, RSTATE__WIRE_READ_ONLY};
    ADD(RSTATE__WIRE_WELCOME)->welcome =
        (rstate__wire_welcome){1, 0, 1, 0, RSTATE__WIRE_MIN_MAX_FRAME, RSTATE__WIRE_READ_WRITE};
    ADD(RSTATE__WIRE_PING)->ping.payload = 0;
    ADD(RSTATE__WIRE_PONG)->ping.payload = UINT64_MAX;
    ADD(RSTATE__WIRE_ERROR)->error = (rstate__wire_error){0, INT32_MIN, "", RSTATE__WIRE_NO_INDEX};
    ADD(RSTATE__WIRE_ERROR)->error = (rstate__wire_error){UINT32_MAX, RSTATE_EPERM, long_string, 0};
    ADD(RSTATE__WIRE_OK)->req.req = UINT32_MAX;
    ADD(RSTATE__WIRE_DEFINE)->define =
        (rstate__wire_define){1, {.name = name255, .type = RSTATE_TYPE_BOOLEAN, .initial = rstate_bool(true)}};
    ADD(RSTATE__WIRE_DEFINE)->define = (rstate__wire_define){
        2, {.name = "", .type = RSTATE_TYPE_STRING, .initial = vstr(""), .constraints = &cedge, .description = ""}};
    ADD(RSTATE__WIRE_GET)->name = (rstate__wire_name){1, ""};
    ADD(RSTATE__WIRE_INFO)->name = (rstate__wire_name){UINT32_MAX, name255};
    ADD(RSTATE__WIRE_GET_MANY)->names = (rstate__wire_names){1, NULL, 0};
    ADD(RSTATE__WIRE_SNAPSHOT)->names = (rstate__wire_names){1, empties, 2};
    ADD(RSTATE__WIRE_SET_MANY)->set_many = (rstate__wire_set_many){1, NULL, NULL, 0, {0}};
    ADD(RSTATE__WIRE_SET_MANY)->set_many =
        (rstate__wire_set_many){2, items, expected, 3, {.source = "", .meta = many_meta, .n_meta = 300}};
    ADD(RSTATE__WIRE_SET_MANY)->set_many = (rstate__wire_set_many){3, items + 1, NULL, 2, {0}};
    ADD(RSTATE__WIRE_WATCH)->watch = (rstate__wire_watch){1, UINT64_MAX, 0, UINT64_MAX, NULL, 0};
    ADD(RSTATE__WIRE_UNWATCH)->unwatch = (rstate__wire_unwatch){1, 0};
    ADD(RSTATE__WIRE_GET_REPLY)->get_reply =
        (rstate__wire_get_reply){1, RSTATE_TYPE_FLOAT, values[0], UINT64_MAX, 0, INT64_MIN};
    ADD(RSTATE__WIRE_GET_REPLY)->get_reply =
        (rstate__wire_get_reply){2, RSTATE_TYPE_STRING, values[7], 1, 1, -1};
    ADD(RSTATE__WIRE_INFO_REPLY)->info_reply = (rstate__wire_info_reply){1, {RSTATE_TYPE_MODULE, 0, 0, INT64_MIN}};
    ADD(RSTATE__WIRE_GET_MANY_PART)->values = (rstate__wire_values_part){1, RSTATE__WIRE_MORE, 0, values, 8};
    ADD(RSTATE__WIRE_GET_MANY_PART)->values = (rstate__wire_values_part){2, 0, UINT64_MAX, NULL, 0};
    ADD(RSTATE__WIRE_LIST_PART)->list = (rstate__wire_list_part){1, RSTATE__WIRE_MORE, UINT64_MAX, list, 3};
    ADD(RSTATE__WIRE_LIST_PART)->list = (rstate__wire_list_part){1, 0, 0, NULL, 0};
    ADD(RSTATE__WIRE_SNAPSHOT_PART)->snapshot = (rstate__wire_snapshot_part){1, RSTATE__WIRE_MORE, 5, vars, 4};
    ADD(RSTATE__WIRE_WATCH_REPLY)->watch_reply =
        (rstate__wire_watch_reply){1, UINT64_MAX, RSTATE__WIRE_WATCH_GAP, UINT64_MAX, UINT64_MAX};
    ADD(RSTATE__WIRE_WATCH_REPLY)->watch_reply = (rstate__wire_watch_reply){2, 1, RSTATE__WIRE_WATCH_RESUMED, 7, 0};
    ADD(RSTATE__WIRE_STATS_REPLY)->stats = (rstate__wire_stats_reply){1, stats, 1};
    ADD(RSTATE__WIRE_STATS_REPLY)->stats = (rstate__wire_stats_reply){2, NULL, 0};
    ADD(RSTATE__WIRE_EVENT)->events =
        (rstate__wire_events){UINT64_MAX, UINT64_MAX, RSTATE__WIRE_MORE, NULL, NULL, 0, events, 4};
    ADD(RSTATE__WIRE_EVENT)->events = (rstate__wire_events){0, 0, 0, "", many_meta, 300, events + 2, 1};
  }
#undef ADD
  return n;
}

#define MAX_SAMPLES 64

/* ---- a textual dump of every field, to compare messages ------------------------ */

static void dump_str(FILE *f, const char *s) {
  if (!s) {
    fputs("(absent)", f);
    return;
  }
  fprintf(f, "%zu:\"", strlen(s));
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) fprintf(f, *p >= 32 && *p < 127 ? "%c" : "\\x%02x", *p);
  fputc('"', f);
}

static void dump_value(FILE *f, const rstate_value *v) {
  switch (v->kind) {
    case RSTATE_NONE: fputs("none", f); return;
    case RSTATE_FLOAT: {
      uint64_t u;
      memcpy(&u, &v->u.f, 8);
      fprintf(f, "float:%016llx", (unsigned long long)u);
      return;
    }
    case RSTATE_INT: fprintf(f, "int:%lld", (long long)v->u.i); return;
    case RSTATE_BOOL: fprintf(f, "bool:%d", v->u.b ? 1 : 0); return;
    case RSTATE_STRING:
      fprintf(f, "string:%zu:", v->u.s.len);
      for (size_t i = 0; i < v->u.s.len; i++) fprintf(f, "%02x", (unsigned char)v->u.s.ptr[i]);
      return;
  }
  fprintf(f, "kind?%d", (int)v->kind);
}

static void dump_meta(FILE *f, const rstate_meta *m, size_t n) {
  fprintf(f, " meta[%zu]", n);
  for (size_t i = 0; i < n; i++) {
    fputc(' ', f);
    dump_str(f, m[i].key);
    fputc('=', f);
    dump_str(f, m[i].value);
  }
}

static void dump_strs(FILE *f, const char *const *s, size_t n) {
  fprintf(f, " [%zu]", n);
  for (size_t i = 0; i < n; i++) {
    fputc(' ', f);
    dump_str(f, s[i]);
  }
}

/* Every field of m as text; a NULL token, constraints, expected array is
 * printed as the "", zeros or zeros it encodes as. Caller frees. */
static char *dump(const rstate__wire_msg *m) {
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  cr_assert_not_null(f);
  fprintf(f, "%s:", rstate__wire_type_name(m->type));
  switch (m->type) {
    case RSTATE__WIRE_HELLO:
      fprintf(f, " v%u hb%u flags%u token=", m->u.hello.version, m->u.hello.heartbeat_ms, m->u.hello.flags);
      dump_str(f, m->u.hello.token ? m->u.hello.token : "");
      break;
    case RSTATE__WIRE_WELCOME: {
      const rstate__wire_welcome *w = &m->u.welcome;
      fprintf(f, " v%u id%llu hb%u rev%llu max%u access%u", w->version, (unsigned long long)w->instance_id,
              w->heartbeat_ms, (unsigned long long)w->revision, w->max_frame, w->access);
      break;
    }
    case RSTATE__WIRE_PING:
    case RSTATE__WIRE_PONG: fprintf(f, " %llu", (unsigned long long)m->u.ping.payload); break;
    case RSTATE__WIRE_ERROR:
      fprintf(f, " req%u code%d idx%llu ", m->u.error.req, m->u.error.code, (unsigned long long)m->u.error.failed_index);
      dump_str(f, m->u.error.sentence ? m->u.error.sentence : "");
      break;
    case RSTATE__WIRE_OK:
    case RSTATE__WIRE_STATS:
    case RSTATE__WIRE_REVISION: fprintf(f, " req%u", m->u.req.req); break;
    case RSTATE__WIRE_DEFINE: {
      static const rstate_constraints none;
      const rstate_var_def *d = &m->u.define.def;
      const rstate_constraints *k = d->constraints ? d->constraints : &none;
      fprintf(f, " req%u ", m->u.define.req);
      dump_str(f, d->name);
      fprintf(f, " type%d ", (int)d->type);
      dump_value(f, &d->initial);
      fputs(" min=", f);
      dump_value(f, &k->min);
      fputs(" max=", f);
      dump_value(f, &k->max);
      fprintf(f, " len%zu..%zu choices", k->min_length, k->max_length);
      dump_strs(f, k->choices, k->n_choices);
      fputs(" ns=", f);
      dump_str(f, k->module_namespace);
      fputs(" pattern=", f);
      dump_str(f, k->pattern);
      fputs(" desc=", f);
      dump_str(f, d->description);
      break;
    }
    case RSTATE__WIRE_UNDEFINE:
    case RSTATE__WIRE_GET:
    case RSTATE__WIRE_INFO:
      fprintf(f, " req%u ", m->u.name.req);
      dump_str(f, m->u.name.name);
      break;
    case RSTATE__WIRE_GET_MANY:
    case RSTATE__WIRE_LIST:
    case RSTATE__WIRE_SNAPSHOT:
      fprintf(f, " req%u", m->u.names.req);
      dump_strs(f, m->u.names.names, m->u.names.n);
      break;
    case RSTATE__WIRE_SET_MANY: {
      const rstate__wire_set_many *s = &m->u.set_many;
      fprintf(f, " req%u source=", s->req);
      dump_str(f, s->opts.source);
      dump_meta(f, s->opts.meta, s->opts.n_meta);
      fprintf(f, " items[%zu]", s->n);
      for (size_t i = 0; i < s->n; i++) {
        fputc(' ', f);
        dump_str(f, s->items[i].name);
        fputc('=', f);
        dump_value(f, &s->items[i].value);
        fprintf(f, "@%llu", (unsigned long long)(s->expected ? s->expected[i] : 0));
      }
      break;
    }
    case RSTATE__WIRE_WATCH: {
      const rstate__wire_watch *w = &m->u.watch;
      fprintf(f, " req%u sub%llu flags%u resume%llu", w->req, (unsigned long long)w->sub, w->flags,
              (unsigned long long)w->resume_after);
      dump_strs(f, w->patterns, w->n);
      break;
    }
    case RSTATE__WIRE_UNWATCH: fprintf(f, " req%u sub%llu", m->u.unwatch.req, (unsigned long long)m->u.unwatch.sub); break;
    case RSTATE__WIRE_GET_REPLY: {
      const rstate__wire_get_reply *g = &m->u.get_reply;
      fprintf(f, " req%u type%d ", g->req, (int)g->type);
      dump_value(f, &g->value);
      fprintf(f, " v%llu rev%llu at%lld", (unsigned long long)g->version, (unsigned long long)g->revision,
              (long long)g->updated_ns);
      break;
    }
    case RSTATE__WIRE_HISTORY:
      fprintf(f, " req%u ", m->u.history.req);
      dump_str(f, m->u.history.name);
      fprintf(f, " after%llu", (unsigned long long)m->u.history.after_version);
      break;
    case RSTATE__WIRE_ROLLBACK:
      fprintf(f, " req%u ", m->u.rollback.req);
      dump_str(f, m->u.rollback.name);
      fprintf(f, " v%llu source=", (unsigned long long)m->u.rollback.version);
      dump_str(f, m->u.rollback.opts.source);
      dump_meta(f, m->u.rollback.opts.meta, m->u.rollback.opts.n_meta);
      break;
    case RSTATE__WIRE_HISTORY_PART: {
      const rstate__wire_hist_part *p = &m->u.hist;
      fprintf(f, " req%u flags%u rev%llu [%zu]", p->req, p->flags, (unsigned long long)p->revision, p->n);
      for (size_t i = 0; i < p->n; i++) {
        const rstate_history_entry *e = &p->entries[i];
        fprintf(f, " v%llu/rev%llu/at%lld=", (unsigned long long)e->version, (unsigned long long)e->revision,
                (long long)e->timestamp_ns);
        dump_value(f, &e->value);
        fputs(" source=", f);
        dump_str(f, e->source);
        dump_meta(f, e->meta, e->n_meta);
      }
      break;
    }
    case RSTATE__WIRE_SET_MANY_REPLY:
    case RSTATE__WIRE_ROLLBACK_REPLY:
    case RSTATE__WIRE_REVISION_REPLY:
      fprintf(f, " req%u rev%llu", m->u.rev.req, (unsigned long long)m->u.rev.revision);
      break;
    case RSTATE__WIRE_INFO_REPLY: {
      const rstate_var_info *i = &m->u.info_reply.info;
      fprintf(f, " req%u type%d v%llu rev%llu at%lld", m->u.info_reply.req, (int)i->type, (unsigned long long)i->version,
              (unsigned long long)i->revision, (long long)i->updated_ns);
      break;
    }
    case RSTATE__WIRE_GET_MANY_PART: {
      const rstate__wire_values_part *p = &m->u.values;
      fprintf(f, " req%u flags%u rev%llu [%zu]", p->req, p->flags, (unsigned long long)p->revision, p->n);
      for (size_t i = 0; i < p->n; i++) {
        fputc(' ', f);
        dump_value(f, &p->values[i]);
      }
      break;
    }
    case RSTATE__WIRE_LIST_PART: {
      const rstate__wire_list_part *p = &m->u.list;
      fprintf(f, " req%u flags%u rev%llu [%zu]", p->req, p->flags, (unsigned long long)p->revision, p->n);
      for (size_t i = 0; i < p->n; i++) {
        fputc(' ', f);
        dump_str(f, p->items[i].name);
        fprintf(f, ":%d", (int)p->items[i].type);
      }
      break;
    }
    case RSTATE__WIRE_SNAPSHOT_PART: {
      const rstate__wire_snapshot_part *p = &m->u.snapshot;
      fprintf(f, " req%u flags%u rev%llu [%zu]", p->req, p->flags, (unsigned long long)p->revision, p->n);
      for (size_t i = 0; i < p->n; i++) {
        const rstate__wire_var *v = &p->vars[i];
        fputc(' ', f);
        dump_str(f, v->name);
        fprintf(f, ":%d=", (int)v->type);
        dump_value(f, &v->value);
        fprintf(f, "@%llu/%lld", (unsigned long long)v->version, (long long)v->updated_ns);
      }
      break;
    }
    case RSTATE__WIRE_WATCH_REPLY: {
      const rstate__wire_watch_reply *w = &m->u.watch_reply;
      fprintf(f, " req%u sub%llu status%u rev%llu initial%llu", w->req, (unsigned long long)w->sub, w->status,
              (unsigned long long)w->revision, (unsigned long long)w->n_initial);
      break;
    }
    case RSTATE__WIRE_STATS_REPLY: {
      const rstate__wire_stats_reply *s = &m->u.stats;
      fprintf(f, " req%u [%zu]", s->req, s->n);
      for (size_t i = 0; i < s->n; i++) {
        fputc(' ', f);
        dump_str(f, s->stats[i].key);
        fprintf(f, "=%llu", (unsigned long long)s->stats[i].value);
      }
      break;
    }
    case RSTATE__WIRE_EVENT: {
      const rstate__wire_events *e = &m->u.events;
      fprintf(f, " sub%llu rev%llu flags%u source=", (unsigned long long)e->sub, (unsigned long long)e->revision,
              e->flags);
      dump_str(f, e->source);
      dump_meta(f, e->meta, e->n_meta);
      fprintf(f, " events[%zu]", e->n);
      for (size_t i = 0; i < e->n; i++) {
        const rstate__wire_event *v = &e->events[i];
        fprintf(f, " {kind%d ", (int)v->kind);
        dump_str(f, v->name);
        fprintf(f, " type%d ", (int)v->type);
        dump_value(f, &v->old_value);
        fputs(" -> ", f);
        dump_value(f, &v->new_value);
        fprintf(f, " v%llu at%lld x%u}", (unsigned long long)v->version, (long long)v->timestamp_ns, v->coalesced);
      }
      break;
    }
    default: fputs(" ?", f);
  }
  fclose(f);
  return text;
}

/* ---- helpers --------------------------------------------------------------------- */

/* Encodes every message into one buffer; offs[i] is where frame i starts. */
static void encode_all(rstate__wire_buf *b, const rstate__wire_msg *m, size_t n, size_t *offs) {
  for (size_t i = 0; i < n; i++) {
    offs[i] = b->len;
    ASSERT_RC(rstate__wire_encode(b, &m[i]), RSTATE_OK);
  }
  offs[n] = b->len;
}

/* The frame at off of an encoding: its type, body and body length. */
static void frame_at(const rstate__wire_buf *b, size_t off, size_t end, rstate__wire_frame *f) {
  cr_assert_geq(end - off, 5);
  uint32_t len = (uint32_t)b->data[off] | (uint32_t)b->data[off + 1] << 8 | (uint32_t)b->data[off + 2] << 16 |
                 (uint32_t)b->data[off + 3] << 24;
  cr_assert_eq((size_t)len, end - off - 4, "length field %u, frame of %zu bytes", len, end - off);
  f->type = b->data[off + 4];
  f->body = b->data + off + 5;
  f->len = len - 1;
}

/* Drains r, checking each frame against the expected stream; returns the
 * number of the next expected frame. */
static size_t drain(rstate__wire_reader *r, const rstate__wire_buf *b, const size_t *offs, size_t n, size_t got) {
  rstate__wire_frame f;
  int rc;
  while ((rc = rstate__wire_reader_next(r, &f)) == 1) {
    cr_assert_lt(got, n, "more frames than were sent");
    rstate__wire_frame want;
    frame_at(b, offs[got], offs[got + 1], &want);
    cr_assert_eq(f.type, want.type, "frame %zu: type 0x%02x, want 0x%02x", got, f.type, want.type);
    cr_assert_eq(f.len, want.len, "frame %zu: body of %zu bytes, want %zu", got, f.len, want.len);
    cr_assert(memcmp(f.body, want.body, f.len) == 0, "frame %zu: body differs", got);
    got++;
  }
  ASSERT_RC(rc, 0);
  return got;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Feeds bytes to r with feed() or with prepare()/commit(). */
static void give(rstate__wire_reader *r, const uint8_t *p, size_t n, bool zero_copy) {
  if (!zero_copy) {
    ASSERT_RC(rstate__wire_reader_feed(r, p, n), RSTATE_OK);
    return;
  }
  size_t room = 0;
  uint8_t *dst = rstate__wire_reader_prepare(r, n, &room);
  cr_assert_not_null(dst);
  cr_assert_geq(room, n);
  if (n) memcpy(dst, p, n);
  ASSERT_RC(rstate__wire_reader_commit(r, n), RSTATE_OK);
}

/* ---- round trips ------------------------------------------------------------------- */

static void round_trip_variant(int variant) {
  rstate__wire_msg msgs[MAX_SAMPLES];
  size_t n = samples(msgs, variant);
  rstate__wire_buf b, scratch, again;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  rstate__wire_buf_init(&again);
  size_t offs[MAX_SAMPLES + 1];
  encode_all(&b, msgs, n, offs);

  rstate__wire_reader r;
  rstate__wire_reader_init(&r, UINT32_MAX);
  ASSERT_RC(rstate__wire_reader_feed(&r, b.data, b.len), RSTATE_OK);
  for (size_t i = 0; i < n; i++) {
    rstate__wire_frame f;
    ASSERT_RC(rstate__wire_reader_next(&r, &f), 1);
    cr_assert_eq(f.type, msgs[i].type);
    rstate__wire_msg d;
    int rc = rstate__wire_decode_frame(&f, &scratch, &d);
    cr_assert_eq(rc, RSTATE_OK, "%s (sample %zu): %s", rstate__wire_type_name(f.type), i, rstate_last_error());
    char *want = dump(&msgs[i]), *got = dump(&d);
    cr_assert_str_eq(got, want, "sample %zu decodes to\n%s\nwant\n%s", i, got, want);
    free(want);
    free(got);
    /* the encoding is canonical: what decodes re-encodes to the same bytes */
    again.len = 0;
    ASSERT_RC(rstate__wire_encode(&again, &d), RSTATE_OK);
    cr_assert_eq(again.len, offs[i + 1] - offs[i], "%s: re-encoded to %zu bytes, want %zu", rstate__wire_type_name(f.type),
                 again.len, offs[i + 1] - offs[i]);
    cr_assert(memcmp(again.data, b.data + offs[i], again.len) == 0, "%s: re-encoding differs",
              rstate__wire_type_name(f.type));
  }
  rstate__wire_frame f;
  ASSERT_RC(rstate__wire_reader_next(&r, &f), 0);
  rstate__wire_reader_free(&r);
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
  rstate__wire_buf_free(&again);
}

Test(wire, round_trip_every_frame_type) { round_trip_variant(0); }

Test(wire, round_trip_edge_values) { round_trip_variant(1); }

Test(wire, samples_cover_every_frame_type) {
  static const uint8_t all[] = {
      RSTATE__WIRE_HELLO,         RSTATE__WIRE_WELCOME,        RSTATE__WIRE_PING,           RSTATE__WIRE_PONG,
      RSTATE__WIRE_ERROR,         RSTATE__WIRE_OK,             RSTATE__WIRE_DEFINE,         RSTATE__WIRE_UNDEFINE,
      RSTATE__WIRE_GET,           RSTATE__WIRE_GET_MANY,       RSTATE__WIRE_SET_MANY,       RSTATE__WIRE_INFO,
      RSTATE__WIRE_LIST,          RSTATE__WIRE_SNAPSHOT,       RSTATE__WIRE_WATCH,          RSTATE__WIRE_UNWATCH,
      RSTATE__WIRE_STATS,         RSTATE__WIRE_REVISION,       RSTATE__WIRE_GET_REPLY,      RSTATE__WIRE_GET_MANY_PART,
      RSTATE__WIRE_SET_MANY_REPLY, RSTATE__WIRE_INFO_REPLY,    RSTATE__WIRE_LIST_PART,      RSTATE__WIRE_SNAPSHOT_PART,
      RSTATE__WIRE_WATCH_REPLY,   RSTATE__WIRE_STATS_REPLY,    RSTATE__WIRE_REVISION_REPLY, RSTATE__WIRE_EVENT,
      RSTATE__WIRE_HISTORY,       RSTATE__WIRE_ROLLBACK,       RSTATE__WIRE_HISTORY_PART,   RSTATE__WIRE_ROLLBACK_REPLY};
  rstate__wire_msg msgs[MAX_SAMPLES];
  size_t n = samples(msgs, 0);
  size_t known = 0;
  for (unsigned t = 0; t < 256; t++) known += rstate__wire_type_known((uint8_t)t);
  cr_assert_eq(known, sizeof all, "%zu known types, %zu listed", known, sizeof all);
  for (size_t i = 0; i < sizeof all; i++) {
    bool found = false;
    for (size_t j = 0; j < n; j++) found |= msgs[j].type == all[i];
    cr_assert(found, "no sample of %s", rstate__wire_type_name(all[i]));
    cr_assert(rstate__wire_type_known(all[i]));
    bool to_s = rstate__wire_type_to_server(all[i]), to_c = rstate__wire_type_to_client(all[i]);
    bool both = all[i] == RSTATE__WIRE_PING || all[i] == RSTATE__WIRE_PONG;
    cr_assert(both ? to_s && to_c : to_s != to_c, "%s: to_server %d to_client %d", rstate__wire_type_name(all[i]), to_s,
              to_c);
  }
  cr_assert(rstate__wire_type_to_server(RSTATE__WIRE_HELLO));
  cr_assert(rstate__wire_type_to_client(RSTATE__WIRE_EVENT));
  cr_assert_not(rstate__wire_type_to_server(0x7F));
  cr_assert_not(rstate__wire_type_to_client(0x7F));
  cr_assert_str_eq(rstate__wire_type_name(0x7F), "unknown");
}

/* ---- framing: every split --------------------------------------------------------------- */

/* Feeds the whole encoding of the samples cut in two at every offset, with
 * feed() and with prepare/commit, and checks every frame comes out whole. */
static void split_everywhere(int variant) {
  rstate__wire_msg msgs[MAX_SAMPLES];
  size_t n = samples(msgs, variant);
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  size_t offs[MAX_SAMPLES + 1];
  encode_all(&b, msgs, n, offs);
  for (int zc = 0; zc < 2; zc++) {
    for (size_t cut = 0; cut <= b.len; cut++) {
      rstate__wire_reader r;
      rstate__wire_reader_init(&r, UINT32_MAX);
      give(&r, b.data, cut, zc);
      size_t got = drain(&r, &b, offs, n, 0);
      give(&r, b.data + cut, b.len - cut, zc);
      got = drain(&r, &b, offs, n, got);
      cr_assert_eq(got, n, "cut at %zu: %zu frames of %zu", cut, got, n);
      rstate__wire_reader_free(&r);
    }
  }
  rstate__wire_buf_free(&b);
}

Test(wire, every_frame_split_at_every_offset) { split_everywhere(0); }

/* Each edge frame alone, cut at every offset into two and into three. */
Test(wire, edge_frames_split_at_every_offset) {
  rstate__wire_msg msgs[MAX_SAMPLES];
  size_t n = samples(msgs, 1);
  for (size_t i = 0; i < n; i++) {
    rstate__wire_buf b;
    rstate__wire_buf_init(&b);
    size_t offs[2];
    encode_all(&b, &msgs[i], 1, offs);
    for (size_t cut = 0; cut <= b.len; cut++) {
      rstate__wire_reader r;
      rstate__wire_reader_init(&r, UINT32_MAX);
      give(&r, b.data, cut, cut & 1);
      size_t got = drain(&r, &b, offs, 1, 0);
      size_t cut2 = cut + (b.len - cut) / 2;
      give(&r, b.data + cut, cut2 - cut, false);
      got = drain(&r, &b, offs, 1, got);
      give(&r, b.data + cut2, b.len - cut2, true);
      got = drain(&r, &b, offs, 1, got);
      cr_assert_eq(got, 1, "%s cut at %zu and %zu", rstate__wire_type_name(msgs[i].type), cut, cut2);
      rstate__wire_reader_free(&r);
    }
    rstate__wire_buf_free(&b);
  }
}

/* Every sample of both variants, concatenated, fed one byte at a time and
 * in random chunk sizes. */
Test(wire, byte_by_byte_and_random_chunks) {
  rstate__wire_msg msgs[MAX_SAMPLES];
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  size_t offs[2 * MAX_SAMPLES + 1], total = 0;
  for (int variant = 0; variant < 2; variant++) { /* samples() reuses its arrays: encode each variant at once */
    size_t n = samples(msgs, variant);
    for (size_t i = 0; i < n; i++) {
      offs[total++] = b.len;
      ASSERT_RC(rstate__wire_encode(&b, &msgs[i]), RSTATE_OK);
    }
  }
  offs[total] = b.len;

  rstate__wire_reader r;
  rstate__wire_reader_init(&r, UINT32_MAX);
  size_t got = 0;
  for (size_t i = 0; i < b.len; i++) {
    give(&r, b.data + i, 1, i & 1);
    got = drain(&r, &b, offs, total, got);
  }
  cr_assert_eq(got, total);
  rstate__wire_reader_free(&r);

  for (int round = 0; round < 200; round++) {
    rstate__wire_reader_init(&r, UINT32_MAX);
    got = 0;
    for (size_t i = 0; i < b.len;) {
      size_t k = (size_t)(rng() % (round < 100 ? 17 : 3000));
      if (k > b.len - i) k = b.len - i;
      give(&r, b.data + i, k, rng() & 1);
      i += k;
      got = drain(&r, &b, offs, total, got);
    }
    cr_assert_eq(got, total, "round %d: %zu frames of %zu", round, got, total);
    rstate__wire_reader_free(&r);
  }
  rstate__wire_buf_free(&b);
}

/* Frames returned by next() stay valid until the next feed. */
Test(wire, frames_stay_valid_until_next_feed) {
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  ASSERT_RC(rstate__wire_put_ping(&b, RSTATE__WIRE_PING, 1), RSTATE_OK);
  ASSERT_RC(rstate__wire_put_ping(&b, RSTATE__WIRE_PONG, 2), RSTATE_OK);
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, 100);
  ASSERT_RC(rstate__wire_reader_feed(&r, b.data, b.len), RSTATE_OK);
  rstate__wire_frame f1, f2;
  ASSERT_RC(rstate__wire_reader_next(&r, &f1), 1);
  ASSERT_RC(rstate__wire_reader_next(&r, &f2), 1);
  rstate__wire_ping p1, p2;
  ASSERT_RC(rstate__wire_decode_ping(f1.type, f1.body, f1.len, &p1), RSTATE_OK);
  ASSERT_RC(rstate__wire_decode_ping(f2.type, f2.body, f2.len, &p2), RSTATE_OK);
  cr_assert_eq(f1.type, RSTATE__WIRE_PING);
  cr_assert_eq(f2.type, RSTATE__WIRE_PONG);
  cr_assert_eq(p1.payload, 1);
  cr_assert_eq(p2.payload, 2);
  rstate__wire_reader_free(&r);
  rstate__wire_buf_free(&b);
}

/* ---- framing: limits -------------------------------------------------------------------- */

Test(wire, oversized_length_refused_before_allocation) {
  static uint8_t junk[1 << 20];
  junk[0] = junk[1] = junk[2] = junk[3] = 0xFF; /* 4 GiB - 1 declared */
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, RSTATE__WIRE_DEFAULT_MAX_FRAME);
  ASSERT_RC(rstate__wire_reader_feed(&r, junk, sizeof junk), RSTATE_OK);
  cr_assert_eq(r.buf.cap, 0, "the reader allocated %zu bytes for a refused frame", r.buf.cap);
  rstate__wire_frame f;
  ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_ELIMIT);
  cr_assert(strstr(rstate_last_error(), "max_frame") != NULL, "%s", rstate_last_error());
  /* sticky, and later input is dropped without growing the buffer */
  ASSERT_RC(rstate__wire_reader_feed(&r, junk, sizeof junk), RSTATE_OK);
  cr_assert_eq(r.buf.cap, 0);
  ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_ELIMIT);
  rstate__wire_reader_free(&r);

  /* the header alone, then the body byte by byte: still nothing stored */
  rstate__wire_reader_init(&r, 1000);
  uint8_t hdr[4] = {0xE9, 0x03, 0, 0}; /* 1001 */
  for (int i = 0; i < 4; i++) ASSERT_RC(rstate__wire_reader_feed(&r, hdr + i, 1), RSTATE_OK);
  size_t cap = r.buf.cap;
  for (int i = 0; i < 5000; i++) ASSERT_RC(rstate__wire_reader_feed(&r, junk + 4, 1), RSTATE_OK);
  cr_assert_eq(r.buf.cap, cap, "the buffer grew from %zu to %zu after a refused header", cap, r.buf.cap);
  cr_assert_leq(r.buf.len, 3);
  ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_ELIMIT);
  rstate__wire_reader_free(&r);

  /* through prepare/commit: the room asked for, nothing more */
  rstate__wire_reader_init(&r, 1000);
  size_t room = 0;
  uint8_t *p = rstate__wire_reader_prepare(&r, 64, &room);
  cr_assert_not_null(p);
  memcpy(p, junk, 64);
  cap = r.buf.cap;
  ASSERT_RC(rstate__wire_reader_commit(&r, 64), RSTATE_OK);
  cr_assert_eq(r.buf.len, 0, "bytes of a refused frame were kept");
  cr_assert_eq(r.buf.cap, cap);
  ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_ELIMIT);
  rstate__wire_reader_free(&r);
}

Test(wire, frames_before_a_refused_one_still_come_out) {
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  ASSERT_RC(rstate__wire_put_ping(&b, RSTATE__WIRE_PING, 1), RSTATE_OK);
  ASSERT_RC(rstate__wire_put_ping(&b, RSTATE__WIRE_PING, 2), RSTATE_OK);
  uint8_t bad[64] = {0x00, 0x00, 0x10, 0x00}; /* 1 MiB declared */
  ASSERT_RC(rstate__wire_buf_reserve(&b, sizeof bad), RSTATE_OK);
  memcpy(b.data + b.len, bad, sizeof bad);
  b.len += sizeof bad;
  for (size_t cut = 0; cut <= b.len; cut++) {
    rstate__wire_reader r;
    rstate__wire_reader_init(&r, 4096);
    give(&r, b.data, cut, cut & 1);
    give(&r, b.data + cut, b.len - cut, !(cut & 1));
    rstate__wire_frame f;
    for (uint64_t want = 1; want <= 2; want++) {
      ASSERT_RC(rstate__wire_reader_next(&r, &f), 1);
      rstate__wire_ping p;
      ASSERT_RC(rstate__wire_decode_ping(f.type, f.body, f.len, &p), RSTATE_OK);
      cr_assert_eq(p.payload, want);
    }
    ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_ELIMIT);
    ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_ELIMIT);
    cr_assert_leq(r.buf.len, 2 * 13 + 3, "cut %zu: %zu bytes kept", cut, r.buf.len);
    rstate__wire_reader_free(&r);
  }
  rstate__wire_buf_free(&b);
}

Test(wire, exactly_max_frame_passes_one_more_is_refused) {
  const uint32_t max = 5000;
  for (uint32_t len = max - 1; len <= max + 1; len++) {
    rstate__wire_buf b;
    rstate__wire_buf_init(&b);
    /* a GET_MANY_PART of NONE values whose length field is exactly len */
    static rstate_value none[6000];
    rstate__wire_values_part p = {1, 0, 0, none, len - 18};
    ASSERT_RC(rstate__wire_put_values_part(&b, &p), RSTATE_OK);
    cr_assert_eq(b.len, (size_t)len + 4);
    rstate__wire_reader r;
    rstate__wire_reader_init(&r, max);
    ASSERT_RC(rstate__wire_reader_feed(&r, b.data, b.len), RSTATE_OK);
    rstate__wire_frame f;
    ASSERT_RC(rstate__wire_reader_next(&r, &f), len <= max ? 1 : RSTATE_ELIMIT);
    rstate__wire_reader_free(&r);
    /* the encoder's limit is the same bound */
    b.len = 0;
    b.limit = max;
    ASSERT_RC(rstate__wire_put_values_part(&b, &p), len <= max ? RSTATE_OK : RSTATE_ELIMIT);
    cr_assert_eq(b.len, len <= max ? (size_t)len + 4 : 0);
    rstate__wire_buf_free(&b);
  }
}

Test(wire, zero_length_is_a_protocol_error) {
  uint8_t zero[8] = {0};
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, 100);
  ASSERT_RC(rstate__wire_reader_feed(&r, zero, sizeof zero), RSTATE_OK);
  rstate__wire_frame f;
  ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_EPROTO);
  ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_EPROTO);
  rstate__wire_reader_free(&r);
}

Test(wire, lowering_max_frame_applies_to_buffered_frames) {
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  rstate__wire_hello h = {1, 0, "a token of some length", 0};
  ASSERT_RC(rstate__wire_put_hello(&b, &h), RSTATE_OK);
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, RSTATE__WIRE_HANDSHAKE_MAX);
  ASSERT_RC(rstate__wire_reader_feed(&r, b.data, b.len), RSTATE_OK);
  r.max_frame = 10;
  rstate__wire_frame f;
  ASSERT_RC(rstate__wire_reader_next(&r, &f), RSTATE_ELIMIT);
  rstate__wire_reader_free(&r);
  rstate__wire_buf_free(&b);
}

Test(wire, unknown_frame_types_pass_the_reader_and_fail_decoding) {
  uint8_t frame[] = {3, 0, 0, 0, 0x7F, 1, 2};
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, 100);
  ASSERT_RC(rstate__wire_reader_feed(&r, frame, sizeof frame), RSTATE_OK);
  rstate__wire_frame f;
  ASSERT_RC(rstate__wire_reader_next(&r, &f), 1);
  cr_assert_eq(f.type, 0x7F);
  cr_assert_eq(f.len, 2);
  rstate__wire_buf scratch;
  rstate__wire_buf_init(&scratch);
  rstate__wire_msg m;
  ASSERT_RC(rstate__wire_decode_frame(&f, &scratch, &m), RSTATE_EPROTO);
  cr_assert(strstr(rstate_last_error(), "0x7f") != NULL, "%s", rstate_last_error());
  for (unsigned t = 0; t < 256; t++)
    if (!rstate__wire_type_known((uint8_t)t)) ASSERT_RC(rstate__wire_decode((uint8_t)t, frame, 0, &scratch, &m), RSTATE_EPROTO);
  rstate__wire_buf_free(&scratch);
  rstate__wire_reader_free(&r);
}

/* ---- decoding: malformed bodies ------------------------------------------------------------- */

static bool all_zero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

/* Every prefix of every sample's body is refused, and *out is zeroed; one
 * trailing byte is refused too (HELLO aside). */
static void truncations(int variant) {
  rstate__wire_msg msgs[MAX_SAMPLES];
  size_t n = samples(msgs, variant);
  rstate__wire_buf b, scratch;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  size_t offs[MAX_SAMPLES + 1];
  encode_all(&b, msgs, n, offs);
  for (size_t i = 0; i < n; i++) {
    rstate__wire_frame f;
    frame_at(&b, offs[i], offs[i + 1], &f);
    uint8_t *copy = malloc(f.len + 1);
    cr_assert_not_null(copy);
    memcpy(copy, f.body, f.len);
    for (size_t len = 0; len < f.len; len++) {
      rstate__wire_msg d;
      memset(&d, 0xAB, sizeof d);
      int rc = rstate__wire_decode(f.type, copy, len, &scratch, &d);
      cr_assert_eq(rc, RSTATE_EPROTO, "%s cut to %zu of %zu bytes: %s", rstate__wire_type_name(f.type), len, f.len,
                   rstate_error_name(rc));
      cr_assert_eq(d.type, f.type);
      cr_assert(all_zero(&d.u, sizeof d.u), "%s: a failed decode left fields set", rstate__wire_type_name(f.type));
    }
    copy[f.len] = 0;
    rstate__wire_msg d;
    int rc = rstate__wire_decode(f.type, copy, f.len + 1, &scratch, &d);
    ASSERT_RC(rc, f.type == RSTATE__WIRE_HELLO ? RSTATE_OK : RSTATE_EPROTO);
    free(copy);
  }
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
}

Test(wire, every_truncation_is_refused) {
  truncations(0);
  truncations(1);
}

/* Flipping any bit of any sample's body gives EPROTO, or a message that
 * re-encodes to exactly the flipped bytes. */
Test(wire, every_bit_flip_is_refused_or_canonical) {
  for (int variant = 0; variant < 2; variant++) {
    rstate__wire_msg msgs[MAX_SAMPLES];
    size_t n = samples(msgs, variant);
    rstate__wire_buf b, scratch, again;
    rstate__wire_buf_init(&b);
    rstate__wire_buf_init(&scratch);
    rstate__wire_buf_init(&again);
    size_t offs[MAX_SAMPLES + 1];
    encode_all(&b, msgs, n, offs);
    for (size_t i = 0; i < n; i++) {
      rstate__wire_frame f;
      frame_at(&b, offs[i], offs[i + 1], &f);
      if (f.len > 1500) continue; /* the long ones are covered by the fuzzer */
      uint8_t *copy = malloc(f.len);
      cr_assert_not_null(copy);
      for (size_t at = 0; at < f.len; at++) {
        for (int bit = 0; bit < 8; bit++) {
          memcpy(copy, f.body, f.len);
          copy[at] ^= (uint8_t)(1u << bit);
          rstate__wire_msg d;
          int rc = rstate__wire_decode(f.type, copy, f.len, &scratch, &d);
          if (rc == RSTATE_EPROTO) continue;
          cr_assert_eq(rc, RSTATE_OK, "%s byte %zu bit %d: %s", rstate__wire_type_name(f.type), at, bit, rstate_error_name(rc));
          again.len = 0;
          ASSERT_RC(rstate__wire_encode(&again, &d), RSTATE_OK);
          /* HELLO ignores trailing bytes: a shorter token re-encodes to a prefix */
          size_t want = f.type == RSTATE__WIRE_HELLO ? again.len - 5 : f.len;
          cr_assert_eq(again.len, want + 5, "%s byte %zu bit %d", rstate__wire_type_name(f.type), at, bit);
          cr_assert(want <= f.len && memcmp(again.data + 5, copy, want) == 0, "%s byte %zu bit %d: not canonical",
                    rstate__wire_type_name(f.type), at, bit);
        }
      }
      free(copy);
    }
    rstate__wire_buf_free(&b);
    rstate__wire_buf_free(&scratch);
    rstate__wire_buf_free(&again);
  }
}

/* Random bytes as the body of every type: never anything but OK or EPROTO,
 * and OK only for bodies that re-encode to themselves. */
Test(wire, random_bodies_of_every_type) {
  rstate__wire_buf scratch, again;
  rstate__wire_buf_init(&scratch);
  rstate__wire_buf_init(&again);
  uint8_t body[96];
  for (unsigned t = 0; t < 256; t++) {
    for (int round = 0; round < 300; round++) {
      size_t len = (size_t)(rng() % sizeof body);
      for (size_t i = 0; i < len; i++) {
        uint64_t x = rng();
        body[i] = (uint8_t)((x >> 8) % 4 == 0 ? x & 3 : x); /* plenty of small bytes: short counts and lengths */
      }
      rstate__wire_msg d;
      int rc = rstate__wire_decode((uint8_t)t, body, len, &scratch, &d);
      cr_assert(rc == RSTATE_OK || rc == RSTATE_EPROTO, "type 0x%02x: %s", t, rstate_error_name(rc));
      if (rc) continue;
      again.len = 0;
      ASSERT_RC(rstate__wire_encode(&again, &d), RSTATE_OK);
      if (t == RSTATE__WIRE_HELLO) continue; /* HELLO ignores its trailing bytes */
      cr_assert_eq(again.len, len + 5);
      cr_assert(memcmp(again.data + 5, body, len) == 0);
    }
  }
  rstate__wire_buf_free(&scratch);
  rstate__wire_buf_free(&again);
}

/* Hand-made bodies with one bad field each. */
Test(wire, bad_tags_and_fields_are_refused) {
  rstate__wire_buf scratch;
  rstate__wire_buf_init(&scratch);
  rstate__wire_msg d;
  struct {
    uint8_t type;
    const char *what;
    size_t len;
    uint8_t body[48];
  } cases[] = {
      {RSTATE__WIRE_HELLO, "bad magic", 17, {'R', 'S', 'T', 'A', 'T', 'F', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {RSTATE__WIRE_HELLO, "version 0", 17, {'R', 'S', 'T', 'A', 'T', 'E', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {RSTATE__WIRE_WELCOME, "access 0", 31, {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0}},
      {RSTATE__WIRE_WELCOME, "heartbeat 0", 31, {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 1}},
      {RSTATE__WIRE_WELCOME, "max_frame 4095", 31, {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0x0F, 0, 0, 1}},
      {RSTATE__WIRE_ERROR, "code 0", 20, {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {RSTATE__WIRE_ERROR, "code 1", 20, {1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}},
      {RSTATE__WIRE_OK, "request id 0", 4, {0, 0, 0, 0}},
      {RSTATE__WIRE_GET, "NUL in name", 9, {1, 0, 0, 0, 1, 0, 0, 0, 0}},
      {RSTATE__WIRE_GET, "name longer than the body", 9, {1, 0, 0, 0, 2, 0, 0, 0, 'a'}},
      {RSTATE__WIRE_GET, "name length 0xFFFFFFFF", 9, {1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 'a'}},
      {RSTATE__WIRE_GET_MANY, "count 0xFFFFFFFF", 12, {1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}},
      {RSTATE__WIRE_GET_MANY, "count 2 with room for 1", 12, {1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
      {RSTATE__WIRE_GET_REPLY, "type 0", 31, {1, 0, 0, 0, 0, 0}},
      {RSTATE__WIRE_GET_REPLY, "type 7", 31, {1, 0, 0, 0, 7, 0}},
      {RSTATE__WIRE_GET_REPLY, "value tag 5", 31, {1, 0, 0, 0, 1, 5}},
      {RSTATE__WIRE_GET_REPLY, "bool byte 2", 32, {1, 0, 0, 0, 3, 3, 2}},
      {RSTATE__WIRE_GET_MANY_PART, "flag bit 1", 17, {1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {RSTATE__WIRE_GET_MANY_PART, "flag bit 7", 17, {1, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {RSTATE__WIRE_WATCH, "watch flag bit 1", 25, {1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}},
      {RSTATE__WIRE_WATCH_REPLY, "status 3", 29, {1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3}},
      {RSTATE__WIRE_EVENT, "no events", 29, {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}},
      {RSTATE__WIRE_EVENT,
       "event kind 5",
       48,
       {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1, 0, 0, 0, 5}},
      {RSTATE__WIRE_EVENT,
       "event kind 0",
       48,
       {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = rstate__wire_decode(cases[i].type, cases[i].body, cases[i].len, &scratch, &d);
    cr_assert_eq(rc, RSTATE_EPROTO, "%s %s: %s (%s)", rstate__wire_type_name(cases[i].type), cases[i].what,
                 rstate_error_name(rc), rstate_last_error());
  }
  /* the counts are refused before anything is reserved for them */
  rstate__wire_buf_free(&scratch);
  uint8_t body[12] = {1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF};
  ASSERT_RC(rstate__wire_decode(RSTATE__WIRE_GET_MANY_PART, body, sizeof body, &scratch, &d), RSTATE_EPROTO);
  cr_assert_leq(scratch.cap, 1024, "scratch of %zu bytes for a 12-byte body", scratch.cap);
  rstate__wire_buf_free(&scratch);
}

Test(wire, scratch_is_reused_and_bounded) {
  rstate__wire_msg msgs[MAX_SAMPLES];
  size_t n = samples(msgs, 0);
  rstate__wire_buf b, scratch;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  size_t offs[MAX_SAMPLES + 1];
  encode_all(&b, msgs, n, offs);
  for (size_t i = 0; i < n; i++) {
    rstate__wire_frame f;
    frame_at(&b, offs[i], offs[i + 1], &f);
    rstate__wire_msg d;
    ASSERT_RC(rstate__wire_decode(f.type, f.body, f.len, &scratch, &d), RSTATE_OK);
    cr_assert_leq(scratch.cap, 24 * f.len + 2048 > 4096 ? 24 * f.len + 2048 : 4096, "%s: scratch of %zu bytes",
                  rstate__wire_type_name(f.type), scratch.cap);
  }
  /* decoding the same frames again does not grow it */
  size_t cap = scratch.cap;
  uint8_t *data = scratch.data;
  for (size_t i = 0; i < n; i++) {
    rstate__wire_frame f;
    frame_at(&b, offs[i], offs[i + 1], &f);
    rstate__wire_msg d;
    ASSERT_RC(rstate__wire_decode(f.type, f.body, f.len, &scratch, &d), RSTATE_OK);
  }
  cr_assert_eq(scratch.cap, cap);
  cr_assert_eq(scratch.data, data);
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
}

Test(wire, decoded_messages_do_not_point_into_the_frame) {
  rstate__wire_msg msgs[MAX_SAMPLES];
  size_t n = samples(msgs, 0);
  rstate__wire_buf b, scratch;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  size_t offs[MAX_SAMPLES + 1];
  encode_all(&b, msgs, n, offs);
  for (size_t i = 0; i < n; i++) {
    rstate__wire_frame f;
    frame_at(&b, offs[i], offs[i + 1], &f);
    uint8_t *copy = malloc(f.len + 1);
    memcpy(copy, f.body, f.len);
    rstate__wire_msg d;
    ASSERT_RC(rstate__wire_decode(f.type, copy, f.len, &scratch, &d), RSTATE_OK);
    memset(copy, 0xEE, f.len);
    free(copy);
    char *want = dump(&msgs[i]), *got = dump(&d);
    cr_assert_str_eq(got, want);
    free(want);
    free(got);
  }
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
}

/* ---- encoding: refusals ------------------------------------------------------------------- */

Test(wire, encoders_refuse_what_decoders_would_and_leave_the_buffer_alone) {
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  ASSERT_RC(rstate__wire_put_ping(&b, RSTATE__WIRE_PING, 1), RSTATE_OK);
  size_t len = b.len;
  uint8_t first[13];
  memcpy(first, b.data, len);

  rstate__wire_name nm = {1, NULL};
  ASSERT_RC(rstate__wire_put_name(&b, RSTATE__WIRE_GET, &nm), RSTATE_EINVAL);
  nm = (rstate__wire_name){0, "x"};
  ASSERT_RC(rstate__wire_put_name(&b, RSTATE__WIRE_GET, &nm), RSTATE_EINVAL); /* request id 0 */
  nm = (rstate__wire_name){1, "x"};
  ASSERT_RC(rstate__wire_put_name(&b, RSTATE__WIRE_GET_MANY, &nm), RSTATE_EINVAL); /* wrong layout */
  ASSERT_RC(rstate__wire_put_ping(&b, RSTATE__WIRE_OK, 1), RSTATE_EINVAL);

  rstate_assign bad[2] = {{"a", rstate_int(1)}, {"b", rstate_stringn("x\0y", 3)}};
  rstate__wire_set_many sm = {1, bad, NULL, 2, {0}};
  ASSERT_RC(rstate__wire_put_set_many(&b, &sm), RSTATE_EINVAL);
  bad[1].value = rstate_stringn(NULL, 0);
  ASSERT_RC(rstate__wire_put_set_many(&b, &sm), RSTATE_EINVAL);
  bad[1].value.kind = (rstate_kind)9;
  ASSERT_RC(rstate__wire_put_set_many(&b, &sm), RSTATE_EINVAL);
  sm = (rstate__wire_set_many){1, NULL, NULL, 2, {0}};
  ASSERT_RC(rstate__wire_put_set_many(&b, &sm), RSTATE_EINVAL);
  rstate_meta meta = {"k", NULL};
  sm = (rstate__wire_set_many){1, NULL, NULL, 0, {.meta = &meta, .n_meta = 1}};
  ASSERT_RC(rstate__wire_put_set_many(&b, &sm), RSTATE_EINVAL);

  rstate__wire_define def = {1, {.name = "x", .type = (rstate_type)7, .initial = rstate_int(1)}};
  ASSERT_RC(rstate__wire_put_define(&b, &def), RSTATE_EINVAL);
  rstate_constraints k = {.n_choices = 2};
  def = (rstate__wire_define){1, {.name = "x", .type = RSTATE_TYPE_CHOICE, .initial = rstate_int(1), .constraints = &k}};
  ASSERT_RC(rstate__wire_put_define(&b, &def), RSTATE_EINVAL);

  rstate__wire_welcome w = {1, 1, 1000, 0, 100, RSTATE__WIRE_READ_WRITE};
  ASSERT_RC(rstate__wire_put_welcome(&b, &w), RSTATE_EINVAL); /* max_frame below 4096 */
  w = (rstate__wire_welcome){1, 1, 0, 0, 4096, RSTATE__WIRE_READ_WRITE};
  ASSERT_RC(rstate__wire_put_welcome(&b, &w), RSTATE_EINVAL);
  w = (rstate__wire_welcome){1, 1, 1, 0, 4096, 3};
  ASSERT_RC(rstate__wire_put_welcome(&b, &w), RSTATE_EINVAL);
  rstate__wire_hello h = {0, 0, NULL, 0};
  ASSERT_RC(rstate__wire_put_hello(&b, &h), RSTATE_EINVAL);
  rstate__wire_error e = {1, 0, "x", 0};
  ASSERT_RC(rstate__wire_put_error(&b, &e), RSTATE_EINVAL);
  rstate__wire_watch wa = {1, 1, 2, 0, NULL, 0};
  ASSERT_RC(rstate__wire_put_watch(&b, &wa), RSTATE_EINVAL);
  rstate__wire_watch_reply wr = {1, 1, 3, 0, 0};
  ASSERT_RC(rstate__wire_put_watch_reply(&b, &wr), RSTATE_EINVAL);
  rstate__wire_list_part lp = {1, 2, 0, NULL, 0};
  ASSERT_RC(rstate__wire_put_list_part(&b, &lp), RSTATE_EINVAL);

  rstate__wire_event ev = {RSTATE_EVENT_RESYNC, "x", RSTATE_TYPE_INTEGER, rstate_int(1), rstate_int(2), 2, 0, 1};
  rstate__wire_events evs = {1, 1, 0, NULL, NULL, 0, &ev, 1};
  ASSERT_RC(rstate__wire_put_events(&b, &evs), RSTATE_EINVAL); /* RESYNC never travels */
  evs.n = 0;
  ASSERT_RC(rstate__wire_put_events(&b, &evs), RSTATE_EINVAL);
  ASSERT_RC(rstate__wire_put_events_split(&b, &evs, 4096, NULL), RSTATE_EINVAL);

  rstate__wire_msg m = {.type = 0x7F};
  ASSERT_RC(rstate__wire_encode(&b, &m), RSTATE_EINVAL);

  /* over the peer's limit */
  b.limit = 20;
  nm = (rstate__wire_name){1, "a name long enough to pass twenty bytes"};
  ASSERT_RC(rstate__wire_put_name(&b, RSTATE__WIRE_GET, &nm), RSTATE_ELIMIT);
  cr_assert(strstr(rstate_last_error(), "max_frame") != NULL, "%s", rstate_last_error());

  cr_assert_eq(b.len, len, "a failed encoder left %zu bytes behind", b.len - len);
  cr_assert(memcmp(b.data, first, len) == 0);
  rstate__wire_buf_free(&b);
}

/* ---- splitting encoders -------------------------------------------------------------------- */

Test(wire, list_split_to_fit_max_frame) {
  enum { N = 2000 };
  static char names[N][24];
  static rstate__wire_list_item items[N];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "var.number.%d", i);
    items[i] = (rstate__wire_list_item){names[i], (rstate_type)(1 + i % 6)};
  }
  const uint32_t max = 4096;
  rstate__wire_buf b, scratch;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  rstate__wire_list_part lp = {77, 0, 1234, items, N};
  size_t frames = 0;
  ASSERT_RC(rstate__wire_put_list_parts(&b, &lp, max, &frames), RSTATE_OK);
  cr_assert_gt(frames, 5);

  rstate__wire_reader r;
  rstate__wire_reader_init(&r, max);
  ASSERT_RC(rstate__wire_reader_feed(&r, b.data, b.len), RSTATE_OK);
  rstate__wire_frame f;
  size_t seen = 0, got = 0;
  int rc;
  while ((rc = rstate__wire_reader_next(&r, &f)) == 1) {
    rstate__wire_list_part p;
    ASSERT_RC(rstate__wire_decode_list_part(f.body, f.len, &scratch, &p), RSTATE_OK);
    got++;
    cr_assert_eq(p.req, 77);
    cr_assert_eq(p.revision, 1234);
    cr_assert_eq(p.flags, got < frames ? RSTATE__WIRE_MORE : 0);
    cr_assert_gt(p.n, 0);
    /* full: the next item would not have fit */
    if (got < frames) cr_assert_gt(f.len + 1 + 4 + strlen(names[seen + p.n]) + 1, max);
    for (size_t i = 0; i < p.n; i++, seen++) {
      cr_assert_str_eq(p.items[i].name, names[seen]);
      cr_assert_eq(p.items[i].type, items[seen].type);
    }
  }
  ASSERT_RC(rc, 0);
  cr_assert_eq(got, frames);
  cr_assert_eq(seen, N);

  /* nothing to list: one frame, no items, no MORE */
  b.len = 0;
  lp.n = 0;
  ASSERT_RC(rstate__wire_put_list_parts(&b, &lp, max, &frames), RSTATE_OK);
  cr_assert_eq(frames, 1);
  cr_assert_eq(b.len, 4 + 18);
  rstate__wire_reader_free(&r);
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
}

Test(wire, oversized_item_goes_alone) {
  static char big[10000];
  memset(big, 'b', sizeof big - 1);
  rstate__wire_var vars[3] = {{"a", RSTATE_TYPE_INTEGER, rstate_int(1), 1, 0},
                              {"big", RSTATE_TYPE_STRING, rstate_string(big), 1, 0},
                              {"c", RSTATE_TYPE_INTEGER, rstate_int(3), 1, 0}};
  rstate__wire_buf b, scratch;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  rstate__wire_snapshot_part sp = {5, 0, 9, vars, 3};
  size_t frames = 0;
  ASSERT_RC(rstate__wire_put_snapshot_parts(&b, &sp, 4096, &frames), RSTATE_OK);
  cr_assert_eq(frames, 3);
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, rstate__wire_client_limit(4096));
  ASSERT_RC(rstate__wire_reader_feed(&r, b.data, b.len), RSTATE_OK);
  for (size_t i = 0; i < 3; i++) {
    rstate__wire_frame f;
    ASSERT_RC(rstate__wire_reader_next(&r, &f), 1);
    rstate__wire_snapshot_part p;
    ASSERT_RC(rstate__wire_decode_snapshot_part(f.body, f.len, &scratch, &p), RSTATE_OK);
    cr_assert_eq(p.n, 1);
    cr_assert_str_eq(p.vars[0].name, vars[i].name);
    cr_assert_eq(p.flags, i < 2 ? RSTATE__WIRE_MORE : 0);
  }
  /* with a limit on the buffer, the oversized frame fails the whole answer */
  b.len = 0;
  b.limit = 4096;
  ASSERT_RC(rstate__wire_put_snapshot_parts(&b, &sp, 4096, &frames), RSTATE_ELIMIT);
  cr_assert_eq(b.len, 0);
  cr_assert_eq(frames, 0);
  rstate__wire_reader_free(&r);
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
}

Test(wire, values_and_events_split) {
  enum { N = 500 };
  static rstate_value values[N];
  static rstate__wire_event events[N];
  static char names[N][16];
  for (int i = 0; i < N; i++) {
    values[i] = i % 2 ? rstate_int(i) : rstate_string("some string value");
    snprintf(names[i], sizeof names[i], "v%d", i);
    events[i] = (rstate__wire_event){RSTATE_EVENT_CHANGED, names[i], RSTATE_TYPE_INTEGER, rstate_int(i),
                                     rstate_int(i + 1), (uint64_t)i + 2, 1700000000000000000, 1};
  }
  rstate_meta meta[2] = {{"who", "me"}, {"why", "test"}};
  rstate__wire_buf b, scratch;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  rstate__wire_values_part vp = {3, RSTATE__WIRE_MORE /* ignored */, 10, values, N};
  size_t vframes = 0, eframes = 0;
  ASSERT_RC(rstate__wire_put_values_parts(&b, &vp, 4096, &vframes), RSTATE_OK);
  rstate__wire_events ev = {8, 11, 0, "src", meta, 2, events, N};
  ASSERT_RC(rstate__wire_put_events_split(&b, &ev, 4096, &eframes), RSTATE_OK);
  cr_assert_gt(vframes, 1);
  cr_assert_gt(eframes, 1);
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, 4096);
  ASSERT_RC(rstate__wire_reader_feed(&r, b.data, b.len), RSTATE_OK);
  size_t nv = 0, ne = 0, fv = 0, fe = 0;
  rstate__wire_frame f;
  while (rstate__wire_reader_next(&r, &f) == 1) {
    rstate__wire_msg m;
    ASSERT_RC(rstate__wire_decode_frame(&f, &scratch, &m), RSTATE_OK);
    if (m.type == RSTATE__WIRE_GET_MANY_PART) {
      fv++;
      cr_assert_eq(m.u.values.flags, fv < vframes ? RSTATE__WIRE_MORE : 0);
      for (size_t i = 0; i < m.u.values.n; i++, nv++) cr_assert(rstate_value_equal(&m.u.values.values[i], &values[nv]));
    } else {
      cr_assert_eq(m.type, RSTATE__WIRE_EVENT);
      fe++;
      cr_assert_eq(m.u.events.flags, fe < eframes ? RSTATE__WIRE_MORE : 0);
      cr_assert_eq(m.u.events.sub, 8);
      cr_assert_eq(m.u.events.revision, 11);
      cr_assert_str_eq(m.u.events.source, "src");
      cr_assert_eq(m.u.events.n_meta, 2);
      cr_assert_str_eq(m.u.events.meta[1].value, "test");
      for (size_t i = 0; i < m.u.events.n; i++, ne++) {
        cr_assert_str_eq(m.u.events.events[i].name, names[ne]);
        cr_assert_eq(m.u.events.events[i].new_value.u.i, (int64_t)ne + 1);
      }
    }
  }
  cr_assert_eq(nv, N);
  cr_assert_eq(ne, N);
  cr_assert_eq(fv, vframes);
  cr_assert_eq(fe, eframes);

  /* an EVENT group that goes on with the next revision: MORE on every frame */
  b.len = 0;
  ev.flags = RSTATE__WIRE_MORE;
  ASSERT_RC(rstate__wire_put_events_split(&b, &ev, 4096, &eframes), RSTATE_OK);
  rstate__wire_reader_free(&r);
  rstate__wire_reader_init(&r, 4096);
  ASSERT_RC(rstate__wire_reader_feed(&r, b.data, b.len), RSTATE_OK);
  fe = 0;
  while (rstate__wire_reader_next(&r, &f) == 1) {
    rstate__wire_events e;
    ASSERT_RC(rstate__wire_decode_events(f.body, f.len, &scratch, &e), RSTATE_OK);
    cr_assert_eq(e.flags, RSTATE__WIRE_MORE);
    fe++;
  }
  cr_assert_eq(fe, eframes);
  ev.flags = 0x02;
  ASSERT_RC(rstate__wire_put_events_split(&b, &ev, 4096, &eframes), RSTATE_EINVAL);
  rstate__wire_reader_free(&r);
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
}

/* A string value as long as max_frame allows, through a SET_MANY. */
Test(wire, max_length_value) {
  const uint32_t max = RSTATE__WIRE_DEFAULT_MAX_FRAME;
  /* SET_MANY body: req 4, source 4, n_meta 4, n 4, name 4+1, tag 1, len 4, bytes, expected 8 */
  size_t fixed = 1 + 4 + 4 + 4 + 4 + 5 + 1 + 4 + 8;
  size_t slen = max - fixed;
  char *s = malloc(slen + 2);
  cr_assert_not_null(s);
  for (size_t i = 0; i < slen + 1; i++) s[i] = (char)('a' + i % 26);
  s[slen + 1] = '\0';
  rstate__wire_buf b, scratch;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  b.limit = max;
  rstate_assign item = {"n", rstate_stringn(s, slen)};
  rstate__wire_set_many sm = {1, &item, NULL, 1, {0}};
  ASSERT_RC(rstate__wire_put_set_many(&b, &sm), RSTATE_OK);
  cr_assert_eq(b.len, (size_t)max + 4);
  item.value.u.s.len = slen + 1;
  ASSERT_RC(rstate__wire_put_set_many(&b, &sm), RSTATE_ELIMIT);
  cr_assert_eq(b.len, (size_t)max + 4);

  rstate__wire_reader r;
  rstate__wire_reader_init(&r, max);
  for (size_t i = 0; i < b.len; i += 65536) give(&r, b.data + i, b.len - i < 65536 ? b.len - i : 65536, (i >> 16) & 1);
  rstate__wire_frame f;
  ASSERT_RC(rstate__wire_reader_next(&r, &f), 1);
  rstate__wire_set_many d;
  ASSERT_RC(rstate__wire_decode_set_many(f.body, f.len, &scratch, &d), RSTATE_OK);
  cr_assert_eq(d.n, 1);
  cr_assert_eq(d.items[0].value.u.s.len, slen);
  cr_assert(memcmp(d.items[0].value.u.s.ptr, s, slen) == 0);
  cr_assert_eq(d.items[0].value.u.s.ptr[slen], '\0');
  cr_assert_leq(scratch.cap, 7 * (size_t)max, "scratch of %zu bytes for a %u-byte frame", scratch.cap, max);
  rstate__wire_reader_free(&r);
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
  free(s);
}

/* ---- golden bytes (quoted in docs/PROTOCOL.md) ------------------------------------------------ */

static void assert_bytes(const rstate__wire_buf *b, const uint8_t *want, size_t n, const char *what) {
  char got[512] = "";
  for (size_t i = 0; i < b->len && i < 150; i++) snprintf(got + 3 * i, 4, "%02x ", b->data[i]);
  cr_assert_eq(b->len, n, "%s: %zu bytes, want %zu: %s", what, b->len, n, got);
  cr_assert(memcmp(b->data, want, n) == 0, "%s: got %s", what, got);
}

Test(wire, golden_bytes) {
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  rstate__wire_hello h = {1, 0, "s3cret", 0};
  ASSERT_RC(rstate__wire_put_hello(&b, &h), RSTATE_OK);
  static const uint8_t hello[] = {0x18, 0x00, 0x00, 0x00, 0x01, 'R',  'S',  'T',  'A',  'T', 'E', 0x01, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 's',  '3',  'c', 'r', 'e',  't',  0x00};
  assert_bytes(&b, hello, sizeof hello, "HELLO");

  b.len = 0;
  rstate__wire_name g = {7, "model"};
  ASSERT_RC(rstate__wire_put_name(&b, RSTATE__WIRE_GET, &g), RSTATE_OK);
  static const uint8_t get[] = {0x0E, 0x00, 0x00, 0x00, 0x12, 0x07, 0x00, 0x00, 0x00,
                                0x05, 0x00, 0x00, 0x00, 'm',  'o',  'd',  'e',  'l'};
  assert_bytes(&b, get, sizeof get, "GET");

  b.len = 0;
  rstate__wire_get_reply gr = {7, RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), 3, 42, 1700000000000000000};
  ASSERT_RC(rstate__wire_put_get_reply(&b, &gr), RSTATE_OK);
  static const uint8_t reply[] = {0x28, 0x00, 0x00, 0x00, 0x32, 0x07, 0x00, 0x00, 0x00, 0x05, 0x04, 0x05, 0x00,
                                  0x00, 0x00, 'g',  'p',  't',  '-',  '4',  0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x2A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A,
                                  0x36, 0xFE, 0x9C, 0x97, 0x17};
  assert_bytes(&b, reply, sizeof reply, "GET_REPLY");

  b.len = 0;
  rstate_assign it = {"temperature", rstate_float(0.5)};
  uint64_t exp = 3;
  rstate__wire_set_many sm = {8, &it, &exp, 1, {.source = NULL}};
  ASSERT_RC(rstate__wire_put_set_many(&b, &sm), RSTATE_OK);
  static const uint8_t set[] = {0x31, 0x00, 0x00, 0x00, 0x14, 0x08, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00,
                                0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0B, 0x00, 0x00, 0x00, 't',  'e',  'm',
                                'p',  'e',  'r',  'a',  't',  'u',  'r',  'e',  0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x00, 0xE0, 0x3F, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  assert_bytes(&b, set, sizeof set, "SET_MANY");
  rstate__wire_buf_free(&b);
}

Test(wire, hello_ignores_fields_of_later_versions) {
  rstate__wire_buf b, scratch;
  rstate__wire_buf_init(&b);
  rstate__wire_buf_init(&scratch);
  rstate__wire_hello h = {2, 250, "tok", 0x81};
  ASSERT_RC(rstate__wire_put_hello(&b, &h), RSTATE_OK);
  static const uint8_t later[] = {0xAA, 0x00, 0x01, 0x02}; /* a version-2 field or four */
  ASSERT_RC(rstate__wire_buf_reserve(&b, sizeof later), RSTATE_OK);
  memcpy(b.data + b.len, later, sizeof later);
  b.len += sizeof later;
  rstate__wire_hello d;
  ASSERT_RC(rstate__wire_decode_hello(b.data + 5, b.len - 5, &scratch, &d), RSTATE_OK);
  cr_assert_eq(d.version, 2);
  cr_assert_eq(d.heartbeat_ms, 250);
  cr_assert_str_eq(d.token, "tok");
  cr_assert_eq(d.flags, 0x81);
  rstate__wire_buf_free(&b);
  rstate__wire_buf_free(&scratch);
}

Test(wire, null_arguments) {
  rstate__wire_buf scratch;
  rstate__wire_buf_init(&scratch);
  rstate__wire_name n;
  uint8_t body[9] = {1, 0, 0, 0, 1, 0, 0, 0, 'a'};
  ASSERT_RC(rstate__wire_decode_name(RSTATE__WIRE_GET, body, sizeof body, NULL, &n), RSTATE_EINVAL);
  ASSERT_RC(rstate__wire_decode_name(RSTATE__WIRE_GET, NULL, 3, &scratch, &n), RSTATE_EINVAL);
  ASSERT_RC(rstate__wire_decode_name(RSTATE__WIRE_GET, body, sizeof body, &scratch, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate__wire_decode_name(RSTATE__WIRE_GET, NULL, 0, &scratch, &n), RSTATE_EPROTO);
  ASSERT_RC(rstate__wire_decode_name(RSTATE__WIRE_GET, body, sizeof body, &scratch, &n), RSTATE_OK);
  cr_assert_str_eq(n.name, "a");
  rstate__wire_ping p;
  ASSERT_RC(rstate__wire_decode_ping(RSTATE__WIRE_PING, NULL, 0, &p), RSTATE_EPROTO);
  ASSERT_RC(rstate__wire_decode(RSTATE__WIRE_PING, body, 8, NULL, NULL), RSTATE_EINVAL);
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, 100);
  ASSERT_RC(rstate__wire_reader_feed(&r, NULL, 1), RSTATE_EINVAL);
  ASSERT_RC(rstate__wire_reader_feed(&r, NULL, 0), RSTATE_OK);
  ASSERT_RC(rstate__wire_reader_next(&r, NULL), RSTATE_EINVAL);
  size_t room = 0;
  cr_assert_not_null(rstate__wire_reader_prepare(&r, 8, &room));
  ASSERT_RC(rstate__wire_reader_commit(&r, room + 1), RSTATE_EINVAL);
  rstate__wire_reader_free(&r);
  ASSERT_RC(rstate__wire_encode(NULL, NULL), RSTATE_EINVAL);
  rstate__wire_buf_free(&scratch);
}

Test(wire, client_limit) {
  cr_assert_eq(rstate__wire_client_limit(4096), 2 * 4096 + 65536);
  cr_assert_eq(rstate__wire_client_limit(RSTATE__WIRE_DEFAULT_MAX_FRAME), 2 * 1048576 + 65536);
  cr_assert_eq(rstate__wire_client_limit(UINT32_MAX), UINT32_MAX);
  cr_assert_eq(rstate__wire_client_limit(UINT32_MAX / 2), UINT32_MAX);
}

Test(wire, buf_consume_drops_from_the_front) {
  rstate__wire_buf b;
  rstate__wire_buf_init(&b);
  ASSERT_RC(rstate__wire_put_ping(&b, RSTATE__WIRE_PING, 1), RSTATE_OK);
  ASSERT_RC(rstate__wire_put_ping(&b, RSTATE__WIRE_PONG, 2), RSTATE_OK);
  cr_assert_eq(b.len, 26);
  rstate__wire_buf_consume(&b, 13);
  cr_assert_eq(b.len, 13);
  cr_assert_eq(b.data[4], RSTATE__WIRE_PONG);
  rstate__wire_buf_consume(&b, 100);
  cr_assert_eq(b.len, 0);
  rstate__wire_buf_free(&b);
  cr_assert_null(b.data);
}

/* A connection's reads start small and grow only while they come back full,
 * so an idle connection holds 4 KiB and a streaming one reads in batches. */
Test(wire, read_size_grows_while_reads_fill_their_room) {
  size_t s = RSTATE__WIRE_READ_FIRST;
  s = rstate__wire_read_size(s, 100, s, 65536);
  cr_assert_eq(s, 4096, "a short read keeps the size");
  s = rstate__wire_read_size(s, 4096, 4096, 65536);
  cr_assert_eq(s, 8192, "a full read doubles it");
  s = rstate__wire_read_size(s, 8192, 16384, 65536);
  cr_assert_eq(s, 8192, "a read short of a larger room keeps it");
  for (int i = 0; i < 10; i++) s = rstate__wire_read_size(s, s, s, 65536);
  cr_assert_eq(s, 65536, "never past the maximum");
  cr_assert_eq(rstate__wire_read_size(49152, 49152, 49152, 65536), 65536, "the last step stops at the maximum");
}
