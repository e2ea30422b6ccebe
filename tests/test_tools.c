/*
 * test_tools.c — the helpers of the command-line tools (tools/), tested
 * without a server: argument parsing (args.c), values read by type and
 * written back (textvalue.c), JSON escaping (json.c), the watch line
 * formats (eventfmt.c), the default socket (defaults.c), and the snapshot
 * file (snapshot.c): an exact round trip of every type through a file,
 * versions and revisions that continue, the restore rules, every
 * malformed-file error with its "path:line", every cut and every altered
 * byte of a real snapshot refused, and the atomic write leaving no
 * temporary file behind (and removing those a killed writer left).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tools/args.h"
#include "../tools/defaults.h"
#include "../tools/eventfmt.h"
#include "../tools/json.h"
#include "../tools/private.h"
#include "../tools/snapshot.h"
#include "../tools/textvalue.h"
#include "helpers.h"
#include "core/core.h" /* rstate__dump and rstate__restore: private.h must agree with it */

/* ---- args ---------------------------------------------------------------- */

TestSuite(tools_args);

enum { O_SOURCE, O_JSON, O_HELP };
static const tool_opt opts[] = {{"source", true}, {"json", false}, {"help", false}, {NULL, false}};

static int parse(tool_args *a, char *err, size_t errlen, int argc, ...) {
  char *argv[16];
  va_list ap;
  va_start(ap, argc);
  for (int i = 0; i < argc; i++) argv[i] = va_arg(ap, char *);
  va_end(ap);
  return tool_args_parse(argc, argv, opts, a, err, errlen);
}

Test(tools_args, options_anywhere_and_both_spellings) {
  tool_args a;
  char err[128];
  cr_assert_eq(parse(&a, err, sizeof err, 6, "x", "--source", "cli", "-5", "--json", "--source=later"), 0, "%s", err);
  cr_assert_eq(a.n_pos, 2);
  cr_assert_str_eq(a.pos[0], "x");
  cr_assert_str_eq(a.pos[1], "-5", "a negative number is an argument");
  cr_assert_str_eq(tool_args_get(&a, O_SOURCE), "later", "the last value wins");
  cr_assert_eq(tool_args_count(&a, O_SOURCE), 2);
  cr_assert_str_eq(tool_args_get(&a, O_JSON), "");
  cr_assert_null(tool_args_get(&a, O_HELP));
  tool_args_free(&a);
}

Test(tools_args, double_dash_ends_options_and_h_is_help) {
  tool_args a;
  char err[128];
  cr_assert_eq(parse(&a, err, sizeof err, 5, "-h", "--", "--json", "-x", "-.5"), 0, "%s", err);
  cr_assert_not_null(tool_args_get(&a, O_HELP));
  cr_assert_null(tool_args_get(&a, O_JSON));
  cr_assert_eq(a.n_pos, 3);
  cr_assert_str_eq(a.pos[0], "--json");
  cr_assert_str_eq(a.pos[1], "-x");
  cr_assert_str_eq(a.pos[2], "-.5");
  tool_args_free(&a);
  cr_assert_eq(parse(&a, err, sizeof err, 2, "-", "-0.5"), 0, "%s", err);
  cr_assert_eq(a.n_pos, 2, "\"-\" and \"-0.5\" are arguments");
  tool_args_free(&a);
}

Test(tools_args, usage_errors_have_sentences) {
  tool_args a;
  char err[128];
  cr_assert_eq(parse(&a, err, sizeof err, 1, "--frob"), -1);
  cr_assert_str_eq(err, "unknown option --frob");
  tool_args_free(&a);
  cr_assert_eq(parse(&a, err, sizeof err, 1, "-x"), -1);
  cr_assert_str_eq(err, "unknown option -x");
  tool_args_free(&a);
  cr_assert_eq(parse(&a, err, sizeof err, 2, "x", "--source"), -1);
  cr_assert_str_eq(err, "option --source needs a value");
  tool_args_free(&a);
  cr_assert_eq(parse(&a, err, sizeof err, 1, "--json=yes"), -1);
  cr_assert_str_eq(err, "option --json takes no value");
  tool_args_free(&a);
  cr_assert_eq(parse(&a, err, sizeof err, 1, "--sourc=x"), -1, "no abbreviations");
  tool_args_free(&a);
}

Test(tools_args, strict_unsigned_numbers) {
  unsigned long long v = 7;
  cr_assert_eq(tool_parse_u64("0", 10, &v), 0);
  cr_assert_eq(v, 0);
  cr_assert_eq(tool_parse_u64("18446744073709551615", UINT64_MAX, &v), 0);
  cr_assert_eq(v, UINT64_MAX);
  cr_assert_eq(tool_parse_u64("18446744073709551616", UINT64_MAX, &v), -1);
  cr_assert_eq(tool_parse_u64("11", 10, &v), -1);
  cr_assert_eq(tool_parse_u64("", 10, &v), -1);
  cr_assert_eq(tool_parse_u64("-1", 10, &v), -1);
  cr_assert_eq(tool_parse_u64("+1", 10, &v), -1);
  cr_assert_eq(tool_parse_u64(" 1", 10, &v), -1);
  cr_assert_eq(tool_parse_u64("1x", 10, &v), -1);
}

/* ---- textvalue ----------------------------------------------------------- */

TestSuite(tools_textvalue);

Test(tools_textvalue, type_names) {
  rstate_type t;
  const char *names[] = {"float", "integer", "boolean", "string", "choice", "module"};
  for (int i = 0; i < 6; i++) {
    cr_assert_eq(tv_parse_type(names[i], &t), 0);
    cr_assert_eq(t, (rstate_type)(RSTATE_TYPE_FLOAT + i));
  }
  cr_assert_eq(tv_parse_type("int", &t), -1);
  cr_assert_eq(tv_parse_type("Float", &t), -1);
}

Test(tools_textvalue, parse_by_type) {
  rstate_value v;
  char err[256];
  cr_assert_eq(tv_parse(RSTATE_TYPE_INTEGER, "n", "-42", &v, err, sizeof err), 0);
  cr_assert_eq(v.kind, RSTATE_INT);
  cr_assert_eq(v.u.i, -42);
  cr_assert_eq(tv_parse(RSTATE_TYPE_INTEGER, "n", "9223372036854775807", &v, err, sizeof err), 0);
  cr_assert_eq(v.u.i, INT64_MAX);
  cr_assert_eq(tv_parse(RSTATE_TYPE_INTEGER, "n", "-9223372036854775808", &v, err, sizeof err), 0);
  cr_assert_eq(v.u.i, INT64_MIN);
  cr_assert_eq(tv_parse(RSTATE_TYPE_INTEGER, "n", "9223372036854775808", &v, err, sizeof err), -1);
  cr_assert_str_eq(err, "n: 9223372036854775808 is outside the range of a 64-bit integer");
  cr_assert_eq(tv_parse(RSTATE_TYPE_INTEGER, "n", "1e3", &v, err, sizeof err), 0);
  cr_assert_eq(v.kind, RSTATE_FLOAT, "not an integer literal: handed to the library as a float");
  cr_assert_eq(v.u.f, 1000.0);
  cr_assert_eq(tv_parse(RSTATE_TYPE_INTEGER, "n", "abc", &v, err, sizeof err), -1);
  cr_assert_str_eq(err, "n: \"abc\" is not an integer");
  cr_assert_eq(tv_parse(RSTATE_TYPE_INTEGER, "n", "", &v, err, sizeof err), -1);

  cr_assert_eq(tv_parse(RSTATE_TYPE_FLOAT, "t", "0.5", &v, err, sizeof err), 0);
  cr_assert_eq(v.kind, RSTATE_FLOAT);
  cr_assert_eq(v.u.f, 0.5);
  cr_assert_eq(tv_parse(RSTATE_TYPE_FLOAT, "t", "-3", &v, err, sizeof err), 0);
  cr_assert_eq(v.u.f, -3.0);
  cr_assert_eq(tv_parse(RSTATE_TYPE_FLOAT, "t", "0.5x", &v, err, sizeof err), -1);
  cr_assert_str_eq(err, "t: \"0.5x\" is not a number");
  cr_assert_eq(tv_parse(RSTATE_TYPE_FLOAT, "t", " 1", &v, err, sizeof err), -1);

  const char *yes[] = {"true", "TRUE", "yes", "on", "1"}, *no[] = {"false", "No", "off", "0"};
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(tv_parse(RSTATE_TYPE_BOOLEAN, "b", yes[i], &v, err, sizeof err), 0, "%s", yes[i]);
    cr_assert(v.kind == RSTATE_BOOL && v.u.b);
  }
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(tv_parse(RSTATE_TYPE_BOOLEAN, "b", no[i], &v, err, sizeof err), 0, "%s", no[i]);
    cr_assert(v.kind == RSTATE_BOOL && !v.u.b);
  }
  cr_assert_eq(tv_parse(RSTATE_TYPE_BOOLEAN, "b", "2", &v, err, sizeof err), -1);
  cr_assert_str_eq(err, "b: \"2\" is not a boolean (true/false, yes/no, on/off, 1/0)");

  const char *text = "any text, even 12";
  for (rstate_type t = RSTATE_TYPE_STRING; t <= RSTATE_TYPE_MODULE; t++) {
    cr_assert_eq(tv_parse(t, "s", text, &v, err, sizeof err), 0);
    cr_assert_eq(v.kind, RSTATE_STRING);
    cr_assert_eq(v.u.s.ptr, text, "strings are borrowed, not copied");
    cr_assert_eq(v.u.s.len, strlen(text));
  }
}

Test(tools_textvalue, floats_shortest_and_exact) {
  char buf[40];
  tv_format_float(0.7, buf);
  cr_assert_str_eq(buf, "0.7");
  tv_format_float(1.0, buf);
  cr_assert_str_eq(buf, "1.0");
  tv_format_float(-0.0, buf);
  cr_assert_str_eq(buf, "-0.0");
  tv_format_float(1e300, buf);
  cr_assert_str_eq(buf, "1e+300");
  tv_format_float(0.1 + 0.2, buf);
  cr_assert_str_eq(buf, "0.30000000000000004");
  double samples[] = {DBL_MAX, -DBL_MAX, DBL_MIN, DBL_TRUE_MIN, 1.0 / 3, M_PI, 123456789012345678.0, 2.5e-8};
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    tv_format_float(samples[i], buf);
    cr_assert_eq(strtod(buf, NULL), samples[i], "%s does not read back as %.17g", buf, samples[i]);
  }
  /* a sweep of bit patterns: every finite one reads back exactly */
  uint64_t bits = 0x0123456789abcdefULL;
  for (int i = 0; i < 20000; i++) {
    bits = bits * 6364136223846793005ULL + 1442695040888963407ULL;
    double d;
    memcpy(&d, &bits, sizeof d);
    if (!isfinite(d)) continue;
    tv_format_float(d, buf);
    cr_assert_eq(strtod(buf, NULL), d, "%s does not read back as %a", buf, d);
  }
}

/* Integral values under 10^15 take a shorter way: the same text "%.15g"
 * gives, with ".0". */
Test(tools_textvalue, integral_floats_as_before) {
  char buf[40], want[48];
  double edges[] = {0, -0.0, 1, -1, 9, 10, -10, 999999999999999.0, -999999999999999.0, 4503599627370496.0 / 8,
                    123456789.0, -42.0, 1e14, 65536.0};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    tv_format_float(edges[i], buf);
    snprintf(want, sizeof want, "%.15g.0", edges[i]);
    cr_assert_str_eq(buf, want, "%.17g", edges[i]);
  }
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d = (double)(int64_t)(x % 1999999999999999ULL) - 999999999999999.0; /* within ±(10^15 - 1) */
    if (i % 2) d = (double)(int64_t)(x % 100000) - 50000;                      /* and small ones */
    tv_format_float(d, buf);
    snprintf(want, sizeof want, "%.15g.0", d);
    cr_assert_str_eq(buf, want, "%.17g", d);
  }
  /* from 10^15 on, the exponent form as before */
  tv_format_float(1e15, buf);
  cr_assert_str_eq(buf, "1e+15");
  tv_format_float(-1e15, buf);
  cr_assert_str_eq(buf, "-1e+15");
  tv_format_float(1e15 + 2, buf);
  cr_assert_str_eq(buf, "1000000000000002.0");
}

static char *printed(const rstate_value *v, tv_style style) {
  char *s = tv_to_string(v, style);
  cr_assert_not_null(s);
  return s;
}

Test(tools_textvalue, print_raw_and_quoted) {
  struct {
    rstate_value v;
    const char *raw, *quoted;
  } cases[] = {
      {rstate_int(-7), "-7", "-7"},
      {rstate_float(2), "2.0", "2.0"},
      {rstate_bool(true), "true", "true"},
      {rstate_bool(false), "false", "false"},
      {rstate_string(""), "", "\"\""},
      {rstate_string("say \"hi\"\\\n\t\r\x01\x7f é"), "say \"hi\"\\\n\t\r\x01\x7f é",
       "\"say \\\"hi\\\"\\\\\\n\\t\\r\\x01\\x7f é\""},
      {{.kind = RSTATE_NONE}, "-", "-"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *raw = printed(&cases[i].v, TV_RAW), *quoted = printed(&cases[i].v, TV_QUOTED);
    cr_assert_str_eq(raw, cases[i].raw, "case %zu", i);
    cr_assert_str_eq(quoted, cases[i].quoted, "case %zu", i);
    free(raw);
    free(quoted);
  }
}

/* ---- json and event lines ------------------------------------------------ */

TestSuite(tools_format);

static FILE *capture(char **buf, size_t *len) {
  *buf = NULL;
  FILE *f = open_memstream(buf, len);
  cr_assert_not_null(f);
  return f;
}

Test(tools_format, json_strings_and_values) {
  char *buf;
  size_t len;
  FILE *f = open_memstream(&buf, &len);
  cr_assert_not_null(f);
  const char *s = "a\"b\\c\n\r\t\b\f\x01\x1f é €";
  cr_assert_eq(json_string(f, s, strlen(s)), 0);
  putc(' ', f);
  json_string(f, NULL, 0);
  putc(' ', f);
  rstate_value vals[] = {rstate_float(0.25), rstate_float(3), rstate_int(INT64_MIN), rstate_bool(false),
                         {.kind = RSTATE_NONE}};
  for (size_t i = 0; i < 5; i++) {
    cr_assert_eq(json_value(f, &vals[i]), 0);
    putc(' ', f);
  }
  fclose(f);
  cr_assert_str_eq(buf, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f é €\" null 0.25 3.0 -9223372036854775808 false null ");
  free(buf);
}

/* Strings of every length up to well past what json_string and json_value
 * format on the stack (then on the heap), escapes falling at every
 * offset: the same text as the escaping, piece by piece. */
Test(tools_format, json_strings_of_every_length) {
  static const char *const piece[] = {"a", "\"", "b", "\\", "\n", "é", "\x01", "cd", "€", "\t"};
  static const char *const want_piece[] = {"a", "\\\"", "b", "\\\\", "\\n", "é", "\\u0001", "cd", "€", "\\t"};
  enum { N = 1500 };
  static char in[N * 3 + 8], want[N * 6 + 8];
  for (size_t n = 0; n <= N; n++) {
    size_t ilen = 0, wlen = 0;
    want[wlen++] = '"';
    for (size_t i = 0; i < n; i++) {
      size_t k = (i * 7 + n) % 10;
      memcpy(in + ilen, piece[k], strlen(piece[k]));
      ilen += strlen(piece[k]);
      memcpy(want + wlen, want_piece[k], strlen(want_piece[k]));
      wlen += strlen(want_piece[k]);
    }
    in[ilen] = '\0';
    want[wlen++] = '"';
    want[wlen] = '\0';
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(json_string(f, in, ilen), 0, "%zu pieces", n);
    rstate_value v = {.kind = RSTATE_STRING, .u.s = {in, ilen}};
    cr_assert_eq(json_value(f, &v), 0, "%zu pieces", n);
    fclose(f);
    cr_assert_eq(len, 2 * wlen, "%zu pieces: %zu bytes, want %zu", n, len, 2 * wlen);
    cr_assert(!memcmp(buf, want, wlen) && !memcmp(buf + wlen, want, wlen), "%zu pieces: %s", n, buf);
    free(buf);
  }
}

/* A buffer that starts in the caller's bytes moves to the heap once the
 * text outgrows them, the text kept. */
Test(tools_format, a_strbuf_outgrows_the_callers_buffer) {
  char small[8];
  strbuf b = strbuf_on(small, sizeof small);
  strbuf_puts(&b, "1234567");
  cr_assert_eq(b.p, small, "moved while it fit");
  strbuf_putc(&b, '8');
  cr_assert_eq(b.p, small, "moved while it fit");
  strbuf_puts(&b, "9abcdef");
  strbuf_u64(&b, 42);
  cr_assert_neq(b.p, small, "still in the caller's 8 bytes");
  cr_assert(!b.failed);
  cr_assert_eq(b.len, 17);
  cr_assert(!memcmp(b.p, "123456789abcdef42", 17));
  strbuf_free(&b);
  b = strbuf_on(small, sizeof small);
  strbuf_puts(&b, "fits");
  cr_assert_eq(b.p, small);
  strbuf_free(&b); /* frees nothing: the bytes are the caller's */
}

static rstate_event sample_event(void) {
  static const rstate_meta meta[] = {{"run", "7"}, {"why", "a \"test\""}};
  rstate_event ev = {0};
  ev.kind = RSTATE_EVENT_CHANGED;
  ev.name = "model";
  ev.type = RSTATE_TYPE_CHOICE;
  ev.old_value = rstate_string("gpt-4");
  ev.new_value = rstate_string("claude-3");
  ev.version = 2;
  ev.revision = 5;
  ev.timestamp_ns = 1795346102123456789LL; /* 2026-11-22T11:15:02.123456789Z */
  ev.source = "cli";
  ev.meta = meta;
  ev.n_meta = 2;
  ev.coalesced = 1;
  return ev;
}

Test(tools_format, human_line) {
  size_t len;
  char *buf;
  FILE *f = capture(&buf, &len);
  rstate_event ev = sample_event();
  cr_assert_eq(eventfmt_human(f, &ev), 0);
  ev.kind = RSTATE_EVENT_INITIAL;
  ev.old_value.kind = RSTATE_NONE;
  ev.source = NULL;
  ev.coalesced = 0;
  eventfmt_human(f, &ev);
  ev.kind = RSTATE_EVENT_CHANGED;
  ev.old_value = rstate_float(0.5);
  ev.new_value = rstate_float(1);
  ev.coalesced = 3;
  eventfmt_human(f, &ev);
  fclose(f);
  cr_assert_str_eq(buf,
                   "2026-11-22T11:15:02.123456Z changed model \"gpt-4\" -> \"claude-3\" version 2 source cli\n"
                   "2026-11-22T11:15:02.123456Z initial model - -> \"claude-3\" version 2\n"
                   "2026-11-22T11:15:02.123456Z changed model 0.5 -> 1.0 version 2 coalesced 3\n");
  free(buf);
}

Test(tools_format, json_line) {
  size_t len;
  char *buf;
  FILE *f = capture(&buf, &len);
  rstate_event ev = sample_event();
  cr_assert_eq(eventfmt_json(f, &ev), 0);
  ev.kind = RSTATE_EVENT_DELETED;
  ev.new_value.kind = RSTATE_NONE;
  ev.source = NULL;
  ev.n_meta = 0;
  eventfmt_json(f, &ev);
  fclose(f);
  cr_assert_str_eq(buf,
                   "{\"kind\":\"changed\",\"name\":\"model\",\"type\":\"choice\",\"old\":\"gpt-4\",\"new\":"
                   "\"claude-3\",\"version\":2,\"revision\":5,\"timestamp_ns\":1795346102123456789,\"source\":\"cli\","
                   "\"meta\":{\"run\":\"7\",\"why\":\"a \\\"test\\\"\"},\"coalesced\":1}\n"
                   "{\"kind\":\"deleted\",\"name\":\"model\",\"type\":\"choice\",\"old\":\"gpt-4\",\"new\":null,"
                   "\"version\":2,\"revision\":5,\"timestamp_ns\":1795346102123456789,\"source\":null,\"meta\":{},"
                   "\"coalesced\":1}\n");
  free(buf);
}

/* The HTTP API's form: 64-bit numbers as strings; extremes of every field. */
Test(tools_format, json_line_quoted_numbers) {
  size_t len;
  char *buf;
  FILE *f = capture(&buf, &len);
  rstate_event ev = sample_event();
  ev.type = RSTATE_TYPE_INTEGER;
  ev.old_value = rstate_int(INT64_MIN);
  ev.new_value = rstate_int(INT64_MAX);
  ev.version = UINT64_MAX;
  ev.revision = 0;
  ev.timestamp_ns = INT64_MIN;
  ev.n_meta = 0;
  ev.coalesced = UINT32_MAX;
  cr_assert_eq(eventfmt_json_flags(f, &ev, EVENTFMT_QUOTE64), 0);
  fclose(f);
  cr_assert_str_eq(buf, "{\"kind\":\"changed\",\"name\":\"model\",\"type\":\"integer\",\"old\":-9223372036854775808,"
                        "\"new\":9223372036854775807,\"version\":\"18446744073709551615\",\"revision\":\"0\","
                        "\"timestamp_ns\":\"-9223372036854775808\",\"source\":\"cli\",\"meta\":{},"
                        "\"coalesced\":4294967295}\n");
  free(buf);
}

Test(tools_format, times_before_1970) {
  char buf[40];
  eventfmt_time(-1, buf);
  cr_assert_str_eq(buf, "1969-12-31T23:59:59.999999Z");
  eventfmt_time(0, buf);
  cr_assert_str_eq(buf, "1970-01-01T00:00:00.000000Z");
}

Test(tools_format, default_socket) {
  setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
  char *uri = tool_default_uri(), *dir = (char *)"unset";
  cr_assert_str_eq(uri, "unix:/run/user/1234/reactivestate.sock");
  free(uri);
  cr_assert_eq(tool_fallback_dir(&dir), 0);
  cr_assert_null(dir, "no fallback directory with XDG_RUNTIME_DIR");
  unsetenv("TMPDIR");
  char want[96], want_dir[96];
  snprintf(want, sizeof want, "unix:/tmp/reactivestate-%u/reactivestate.sock", (unsigned)getuid());
  snprintf(want_dir, sizeof want_dir, "/tmp/reactivestate-%u", (unsigned)getuid());
  for (int empty = 0; empty < 2; empty++) {
    if (empty)
      setenv("XDG_RUNTIME_DIR", "", 1);
    else
      unsetenv("XDG_RUNTIME_DIR");
    uri = tool_default_uri();
    cr_assert_str_eq(uri, want);
    free(uri);
    cr_assert_eq(tool_fallback_dir(&dir), 0);
    cr_assert_str_eq(dir, want_dir);
    free(dir);
  }
  setenv("TMPDIR", "/var/tmp", 1);
  uri = tool_default_uri();
  snprintf(want, sizeof want, "unix:/var/tmp/reactivestate-%u/reactivestate.sock", (unsigned)getuid());
  cr_assert_str_eq(uri, want, "TMPDIR moves the fallback");
  free(uri);
  unsetenv("TMPDIR");
}


/* ---- snapshot ------------------------------------------------------------ */

TestSuite(tools_snapshot);

typedef struct tmpdir {
  char dir[64];
  char path[128];
} tmpdir;

static void tmp_make(tmpdir *t) {
  strcpy(t->dir, "/tmp/rstate-test-tools-XXXXXX");
  cr_assert_not_null(mkdtemp(t->dir));
  snprintf(t->path, sizeof t->path, "%s/state.snap", t->dir);
}

/* Entries in the directory, "." and ".." aside. */
static int tmp_entries(const tmpdir *t) {
  DIR *d = opendir(t->dir);
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void tmp_remove(tmpdir *t) {
  DIR *d = opendir(t->dir);
  if (d) {
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(t->dir);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

/* A whole format 2 snapshot of these variable lines, at this revision:
 * header, written line, body, and the end record with count and CRC. */
static void write_v2(const char *path, uint64_t revision, const char *body) {
  char *text = NULL;
  size_t n = 0;
  for (const char *p = body; *p; p++) n += *p == '\n';
  cr_assert(asprintf(&text, "# reactivestate snapshot 2\n# written 2026-11-22T11:15:02.123456Z at store revision %llu\n%s",
                     (unsigned long long)revision, body) > 0);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "%s# end: %zu variables, crc32 %08x\n", text, n, (unsigned)snapshot_crc32(0, text, strlen(text)));
  fclose(f);
  free(text);
}

static void def(rstate_store *s, const char *name, rstate_type type, rstate_value initial,
                const rstate_constraints *c) {
  rstate_var_def d = {.name = name, .type = type, .initial = initial, .constraints = c};
  ASSERT_RC(rstate_define(s, &d), RSTATE_OK);
}

/* A snapshot file's text without its "# written ..." line and its end
 * record (whose checksum covers the time of writing). */
static char *body_of(const char *path) {
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  char *out = NULL, *line = NULL;
  size_t len = 0, cap = 0;
  FILE *o = open_memstream(&out, &len);
  while (getline(&line, &cap, f) >= 0)
    if (strncmp(line, "# written ", 10) != 0 && strncmp(line, "# end: ", 7) != 0) fputs(line, o);
  free(line);
  fclose(f);
  fclose(o);
  return out;
}

static void assert_same_value(rstate_store *a, rstate_store *b, const char *name) {
  rstate_value va, vb;
  ASSERT_RC(rstate_get(a, name, &va), RSTATE_OK);
  ASSERT_RC(rstate_get(b, name, &vb), RSTATE_OK);
  cr_assert(rstate_value_equal(&va, &vb), "%s differs after the round trip", name);
  if (va.kind == RSTATE_FLOAT)
    cr_assert_eq(signbit(va.u.f), signbit(vb.u.f), "%s: the sign of zero was lost", name);
  rstate_value_clear(&va);
  rstate_value_clear(&vb);
}

typedef struct warnings {
  int n;
  char first[512], last[512];
} warnings;

static void collect_warning(void *ud, const char *sentence) {
  warnings *w = ud;
  if (w->n++ == 0) snprintf(w->first, sizeof w->first, "%s", sentence);
  snprintf(w->last, sizeof w->last, "%s", sentence);
}

static const char *const hard_strings[][2] = {
    {"s.empty", ""},
    {"s.controls", "tab\there\nnewline\rcr\x01\x1f\x7f end"},
    {"s.backslashes", "\\\\x41 \\t \\ trailing\\"},
    {"s.utf8", "héllo → 世界 🎉"},
    {"s.hashes", "# not a comment\t# nor this"},
};

Test(tools_snapshot, every_type_round_trips_exactly) {
  tmpdir t;
  tmp_make(&t);
  rstate_store *a = h_open();
  double floats[] = {0.7, -0.0, DBL_MAX, DBL_TRUE_MIN, 1.0 / 3, 1e21};
  char name[32];
  for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
    snprintf(name, sizeof name, "f.%zu", i);
    def(a, name, RSTATE_TYPE_FLOAT, rstate_float(floats[i]), NULL);
  }
  def(a, "i.min", RSTATE_TYPE_INTEGER, rstate_int(INT64_MIN), NULL);
  def(a, "i.max", RSTATE_TYPE_INTEGER, rstate_int(INT64_MAX), NULL);
  def(a, "b.t", RSTATE_TYPE_BOOLEAN, rstate_bool(true), NULL);
  def(a, "b.f", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL);
  for (size_t i = 0; i < sizeof hard_strings / sizeof hard_strings[0]; i++)
    def(a, hard_strings[i][0], RSTATE_TYPE_STRING, rstate_string(hard_strings[i][1]), NULL);
  const char *choices[] = {"gpt-4", "claude-3"};
  rstate_constraints cc = {.choices = choices, .n_choices = 2};
  def(a, "model", RSTATE_TYPE_CHOICE, rstate_string("claude-3"), &cc);
  rstate_constraints mc = {.module_namespace = "Strategies"};
  def(a, "strategy", RSTATE_TYPE_MODULE, rstate_string("Strategies.Fast"), &mc);

  char err[512];
  size_t count = 0;
  cr_assert_eq(snapshot_write(a, t.path, &count, err, sizeof err), 0, "%s", err);
  size_t n_vars = 6 + 4 + sizeof hard_strings / sizeof hard_strings[0] + 2;
  cr_assert_eq(count, n_vars);
  cr_assert_eq(tmp_entries(&t), 1, "the temporary file is gone");
  struct stat st;
  cr_assert_eq(stat(t.path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "a snapshot is private to its owner");

  /* into an empty store: every variable is defined from the snapshot */
  rstate_store *b = h_open();
  warnings w = {0};
  size_t set = 9, defined = 9;
  cr_assert_eq(snapshot_restore(b, t.path, collect_warning, &w, &set, &defined, err, sizeof err), 0, "%s", err);
  cr_assert_eq(w.n, 0, "warning: %s", w.last);
  cr_assert_eq(set, 0);
  cr_assert_eq(defined, n_vars);
  for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
    snprintf(name, sizeof name, "f.%zu", i);
    assert_same_value(a, b, name);
  }
  const char *others[] = {"i.min", "i.max", "b.t", "b.f", "model", "strategy"};
  for (size_t i = 0; i < 6; i++) assert_same_value(a, b, others[i]);
  for (size_t i = 0; i < sizeof hard_strings / sizeof hard_strings[0]; i++) assert_same_value(a, b, hard_strings[i][0]);
  rstate_var_info info;
  ASSERT_RC(rstate_info(b, "model", &info), RSTATE_OK);
  cr_assert_eq(info.type, RSTATE_TYPE_CHOICE, "types are kept");
  ASSERT_RC(rstate_set_string(b, "model", "gpt-4"), RSTATE_ECONSTRAINT); /* its only choice is its value */

  /* and back again: the same text but for the "written" line */
  tmpdir t2;
  tmp_make(&t2);
  cr_assert_eq(snapshot_write(b, t2.path, NULL, err, sizeof err), 0, "%s", err);
  char *one = body_of(t.path), *two = body_of(t2.path);
  cr_assert_str_eq(one, two);
  free(one);
  free(two);
  rstate_close(a);
  rstate_close(b);
  tmp_remove(&t);
  tmp_remove(&t2);
}

Test(tools_snapshot, the_file_text) {
  tmpdir t;
  tmp_make(&t);
  rstate_store *s = h_open();
  def(s, "b", RSTATE_TYPE_STRING, rstate_string("x\ty\\z\n\"q\"\x01\x7f"), NULL); /* '"' is not escaped */
  def(s, "a", RSTATE_TYPE_FLOAT, rstate_float(0.7), NULL);
  def(s, "c", RSTATE_TYPE_INTEGER, rstate_int(-3), NULL);
  ASSERT_RC(rstate_set_float(s, "a", 0.5), RSTATE_OK);
  ASSERT_RC(rstate_set_float(s, "a", 0.25), RSTATE_OK);
  rstate_var_info ia, ib, ic;
  ASSERT_RC(rstate_info(s, "a", &ia), RSTATE_OK);
  ASSERT_RC(rstate_info(s, "b", &ib), RSTATE_OK);
  ASSERT_RC(rstate_info(s, "c", &ic), RSTATE_OK);
  char err[512];
  cr_assert_eq(snapshot_write(s, t.path, NULL, err, sizeof err), 0, "%s", err);
  FILE *f = fopen(t.path, "r");
  char text[1024] = {0};
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  cr_assert_eq(strncmp(text, "# reactivestate snapshot 2\n# written ", 37), 0, "%s", text);
  const char *body = strstr(text, "revision 5\n");
  cr_assert_not_null(body, "%s", text);
  char want[512];
  snprintf(want, sizeof want, "a\tfloat\t3\t%lld\t0.25\nb\tstring\t1\t%lld\tx\\ty\\\\z\\n\"q\"\\x01\\x7f\nc\tinteger\t1\t%lld\t-3\n",
           (long long)ia.updated_ns, (long long)ib.updated_ns, (long long)ic.updated_ns);
  cr_assert_eq(strncmp(body + 11, want, strlen(want)), 0, "%s", body + 11);
  const char *end = body + 11 + strlen(want);
  snprintf(want, sizeof want, "# end: 3 variables, crc32 %08x\n", (unsigned)snapshot_crc32(0, text, (size_t)(end - text)));
  cr_assert_str_eq(end, want, "the end record counts the variables and checks every byte before it");
  rstate_close(s);
  tmp_remove(&t);
}

/* Versions and the store revision continue across a restart: temperature
 * at version 3 stays at 3 and the next set makes 4; the next change takes
 * the revision after the snapshot's. */
Test(tools_snapshot, versions_and_revisions_continue) {
  tmpdir t;
  tmp_make(&t);
  rstate_store *a = h_open();
  def(a, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), NULL);
  def(a, "other", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  def(a, "mine", RSTATE_TYPE_STRING, rstate_string("x"), NULL); /* not in the schema below */
  for (int i = 0; i < 10; i++) ASSERT_RC(rstate_set_int(a, "other", i + 2), RSTATE_OK);
  ASSERT_RC(rstate_set_float(a, "temperature", 0.8), RSTATE_OK);
  ASSERT_RC(rstate_set_float(a, "temperature", 0.9), RSTATE_OK);
  ASSERT_RC(rstate_set_string(a, "mine", "y"), RSTATE_OK);
  rstate_var_info before;
  ASSERT_RC(rstate_info(a, "temperature", &before), RSTATE_OK);
  cr_assert_eq(before.version, 3);
  uint64_t rev = rstate_revision(a);
  cr_assert_eq(rev, 16);
  char err[512];
  cr_assert_eq(snapshot_write(a, t.path, NULL, err, sizeof err), 0, "%s", err);

  /* a restart: the schema defines two of them again (revisions 1 and 2) */
  rstate_store *b = h_open();
  def(b, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), NULL);
  def(b, "other", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  size_t set = 0, defined = 0;
  cr_assert_eq(snapshot_restore(b, t.path, NULL, NULL, &set, &defined, err, sizeof err), 0, "%s", err);
  cr_assert_eq(set, 2);
  cr_assert_eq(defined, 1);
  cr_assert_eq(rstate_revision(b), rev, "the store revision continues from the snapshot's");
  rstate_var_info after;
  ASSERT_RC(rstate_info(b, "temperature", &after), RSTATE_OK);
  cr_assert_eq(after.version, 3, "temperature keeps its version");
  cr_assert_eq(after.updated_ns, before.updated_ns, "and the time of its last change");
  ASSERT_RC(rstate_info(b, "mine", &after), RSTATE_OK);
  cr_assert_eq(after.version, 2, "a variable defined from the snapshot keeps its version too");
  ASSERT_RC(rstate_set_float(b, "temperature", 1.0), RSTATE_OK);
  ASSERT_RC(rstate_info(b, "temperature", &after), RSTATE_OK);
  cr_assert_eq(after.version, 4, "the next set makes version 4");
  cr_assert_eq(after.revision, rev + 1, "and takes the revision after the snapshot's");
  cr_assert_eq(rstate_revision(b), rev + 1);
  rstate_close(a);
  rstate_close(b);
  tmp_remove(&t);
}

/* The front end's restore: its checks, and CHANGED events for watchers. */
static int count_events(const rstate_event *ev, void *ud) {
  int *n = ud;
  if (ev->kind == RSTATE_EVENT_CHANGED && ev->version == 7 && ev->revision == 40) (*n)++;
  return RSTATE_CONTINUE;
}

Test(tools_snapshot, restore_through_the_front_end) {
  rstate_store *s = h_open();
  def(s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  int seen = 0;
  const char *names[] = {"x"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(s, names, 1, count_events, &seen, NULL, &id), RSTATE_OK);
  rstate_value v = rstate_int(5);
  rstate_snapshot_var sv = {"x", RSTATE_TYPE_INTEGER, &v, 7, 123};
  size_t failed = 9;
  sv.version = 0;
  ASSERT_RC(rstate__restore(s, &sv, 1, 40, &failed), RSTATE_EINVAL);
  cr_assert_eq(failed, 0);
  sv.version = 7;
  sv.type = RSTATE_TYPE_FLOAT;
  ASSERT_RC(rstate__restore(s, &sv, 1, 40, &failed), RSTATE_ETYPE);
  sv.type = RSTATE_TYPE_INTEGER;
  sv.name = "nosuch";
  ASSERT_RC(rstate__restore(s, &sv, 1, 40, &failed), RSTATE_ENOTFOUND);
  sv.name = "x";
  cr_assert_eq(rstate_revision(s), 1, "a refused restore changes nothing");
  ASSERT_RC(rstate__restore(s, &sv, 1, 40, &failed), RSTATE_OK);
  cr_assert_eq(seen, 1, "the watcher got the change, at version 7 and revision 40");
  rstate_var_info info;
  ASSERT_RC(rstate_info(s, "x", &info), RSTATE_OK);
  cr_assert_eq(info.version, 7);
  cr_assert_eq(info.revision, 40);
  cr_assert_eq(info.updated_ns, 123);
  sv.version = 6;
  ASSERT_RC(rstate__restore(s, &sv, 1, 40, &failed), RSTATE_ECONFLICT);
  /* nothing to change: the revision still moves up to the one given */
  sv.version = 7;
  ASSERT_RC(rstate__restore(s, &sv, 1, 50, &failed), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), 50);
  cr_assert_eq(seen, 1);
  ASSERT_RC(rstate_unwatch(s, id), RSTATE_OK);
  rstate_close(s);
}

Test(tools_snapshot, missing_file_is_no_snapshot) {
  rstate_store *s = h_open();
  char err[256] = "";
  size_t set = 5, defined = 5;
  cr_assert_eq(snapshot_restore(s, "/tmp/rstate-test-tools-does-not-exist.snap", NULL, NULL, &set, &defined, err,
                                sizeof err),
               1);
  cr_assert_eq(set, 0);
  cr_assert_eq(defined, 0);
  rstate_close(s);
}

/* restore must refuse the file with this sentence ("%s" is the path) and
 * change nothing. */
static void assert_refused(const char *path, const char *error_fmt, const char *what) {
  rstate_store *s = h_open();
  char err[512], want[512];
  size_t set = 5, defined = 5;
  cr_assert_eq(snapshot_restore(s, path, NULL, NULL, &set, &defined, err, sizeof err), -1, "%s", what);
  if (error_fmt) {
    snprintf(want, sizeof want, error_fmt, path);
    cr_assert_str_eq(err, want, "%s", what);
  }
  cr_assert_eq(rstate_revision(s), 0, "%s: the store changed", what);
  cr_assert_eq(set + defined, 0);
  rstate_close(s);
}

Test(tools_snapshot, malformed_files_change_nothing) {
  struct {
    const char *text, *error;
  } whole[] = {
      {"", "%s: empty file, not a snapshot (or one cut short before its first line)"},
      {"x\tfloat\t1\n", "%s:1: not a snapshot file (the first line must be \"# reactivestate snapshot 2\")"},
      {"# reactivestate snapshot 3\n", "%s:1: not a snapshot file (the first line must be \"# reactivestate snapshot 2\")"},
      {"# reactivestate snapshot 1\nx\tfloat\t1\n",
       "%s:1: a snapshot in format 1 (rstated 0.1.0), which has no end record, so that a copy cut short cannot be "
       "told from a whole one: refused (its values, one a line, can be set again with rstate set once the daemon "
       "runs without it)"},
      {"# reactivestate snapshot 2\n# written x at store revision 1\nx\tfloat\t1\t1\t1.5\n",
       "%s:4: no end record after line 3: the file was cut short"},
      {"# reactivestate snapshot 2\n# written x at store revision 1\nx\tfloat\t1\t1\t1.5",
       "%s:3: the line has no newline at its end: the file was cut short"},
      {"# reactivestate snapshot 2\n# written x at store revision -1\n",
       "%s:2: expected \"# written TIME at store revision N\": the file is damaged"},
      {"# reactivestate snapshot 2\n# written x at store revision 1\n# end: 0 variables, crc32 00000000\n",
       NULL /* the checksum: below */},
      {"# reactivestate snapshot 2\n# written x at store revision 1\n# end: 0 variables\n",
       "%s:3: expected \"# end: N variables, crc32 HHHHHHHH\": the file is damaged"},
  };
  tmpdir t;
  tmp_make(&t);
  for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
    write_text(t.path, whole[i].text);
    char what[32];
    snprintf(what, sizeof what, "file %zu", i);
    assert_refused(t.path, whole[i].error, what);
  }
  struct {
    const char *body, *error;
  } lines[] = {
      {"ok\tfloat\t1\t1\t1\nbad line\n",
       "%s:4: expected name<TAB>type<TAB>version<TAB>updated_ns<TAB>value"},
      {"x\tfloat\t1\t1\n", "%s:3: expected name<TAB>type<TAB>version<TAB>updated_ns<TAB>value"},
      {"\tfloat\t1\t1\t1\n", "%s:3: empty variable name"},
      {"x\tdouble\t1\t1\t1\n", "%s:3: x: unknown type \"double\""},
      {"x\tfloat\t0\t1\t1\n", "%s:3: x: version \"0\" is not a whole number from 1"},
      {"x\tfloat\t01\t1\t1\n", "%s:3: x: version \"01\" is not a whole number from 1"},
      {"x\tfloat\t1\t1.5\t1\n", "%s:3: x: time of last change \"1.5\" is not a whole number of nanoseconds"},
      {"x\tfloat\t1\t1\tone\n", "%s:3: x: \"one\" is not a number"},
      {"x\tinteger\t1\t1\t1.0\n", "%s:3: x: \"1.0\" is not an integer as written in a snapshot"},
      {"x\tinteger\t1\t1\t99999999999999999999\n",
       "%s:3: x: \"99999999999999999999\" is not an integer as written in a snapshot"},
      {"x\tboolean\t1\t1\tmaybe\n", "%s:3: x: \"maybe\" is not a boolean (true/false, yes/no, on/off, 1/0)"},
      {"x\tstring\t1\t1\tbad \\q\n", "%s:3: x: bad escape in the value (\\\\, \\t, \\n, \\r or \\xHH, not \\x00)"},
      {"x\tstring\t1\t1\t\\x0\n", "%s:3: x: bad escape in the value (\\\\, \\t, \\n, \\r or \\xHH, not \\x00)"},
      {"x\tstring\t1\t1\t\\x00\n", "%s:3: x: bad escape in the value (\\\\, \\t, \\n, \\r or \\xHH, not \\x00)"},
      {"x\tinteger\t1\t1\t1\ny\tinteger\t1\t1\t1\nx\tinteger\t2\t1\t5\n", "%s:5: x: given twice (also at line 3)"},
      {"# a comment\n", "%s:3: expected name<TAB>type<TAB>version<TAB>updated_ns<TAB>value"},
      {"\n", "%s:3: expected name<TAB>type<TAB>version<TAB>updated_ns<TAB>value"},
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    write_v2(t.path, 1, lines[i].body);
    char what[32];
    snprintf(what, sizeof what, "body %zu", i);
    assert_refused(t.path, lines[i].error, what);
  }
  /* a whole file with a wrong checksum, or a count that differs */
  write_text(t.path, whole[7].text);
  char want[256];
  snprintf(want, sizeof want, "%%s:3: the checksum of the file (crc32 %08x) is not the end record's (00000000): the "
           "file is damaged or was altered", (unsigned)snapshot_crc32(0, whole[7].text, strlen(whole[7].text) - 35));
  assert_refused(t.path, want, "checksum");
  write_v2(t.path, 1, "x\tinteger\t1\t1\t1\n");
  FILE *f = fopen(t.path, "r+");
  cr_assert_not_null(f);
  char text[256] = {0};
  cr_assert_gt(fread(text, 1, sizeof text - 1, f), 0);
  char *one = strstr(text, "# end: 1 ");
  cr_assert_not_null(one);
  one[7] = '2';
  rewind(f);
  fputs(text, f);
  fclose(f);
  assert_refused(t.path, "%s:4: the end record counts 2 variables, the file holds 1: the file is damaged", "count");
  tmp_remove(&t);
}

/* A real snapshot, cut at every length and with every byte altered: each
 * is refused, naming the file, and restores nothing. */
Test(tools_snapshot, every_cut_and_every_altered_byte_is_refused) {
  tmpdir t;
  tmp_make(&t);
  rstate_store *a = h_open();
  def(a, "count", RSTATE_TYPE_INTEGER, rstate_int(123456789), NULL);
  def(a, "ratio", RSTATE_TYPE_FLOAT, rstate_float(1.25), NULL);
  def(a, "on", RSTATE_TYPE_BOOLEAN, rstate_bool(true), NULL);
  def(a, "name", RSTATE_TYPE_STRING, rstate_string("h\xc3\xa9llo\tworld"), NULL);
  ASSERT_RC(rstate_set_int(a, "count", 987654321), RSTATE_OK);
  char err[512];
  cr_assert_eq(snapshot_write(a, t.path, NULL, err, sizeof err), 0, "%s", err);
  FILE *f = fopen(t.path, "r");
  cr_assert_not_null(f);
  char orig[2048];
  size_t len = fread(orig, 1, sizeof orig, f);
  fclose(f);
  cr_assert(len > 100 && len < sizeof orig);
  char path2[160];
  snprintf(path2, sizeof path2, "%s/cut.snap", t.dir);
  size_t plen = strlen(path2);
  size_t refused = 0, tried = 0;
  for (size_t cut = 0; cut < len; cut++) {
    f = fopen(path2, "w");
    fwrite(orig, 1, cut, f);
    fclose(f);
    rstate_store *s = h_open();
    size_t set = 0, defined = 0;
    tried++;
    if (snapshot_restore(s, path2, NULL, NULL, &set, &defined, err, sizeof err) == -1 &&
        strncmp(err, path2, plen) == 0 && rstate_revision(s) == 0 && set + defined == 0)
      refused++;
    else
      cr_log_info("cut at %zu of %zu: not refused (%s)", cut, len, err);
    rstate_close(s);
  }
  static const unsigned char flips[] = {0x01, 0x20, 0x80, 0xff};
  for (size_t at = 0; at < len; at++) {
    for (size_t k = 0; k < sizeof flips + 2; k++) {
      char copy[2048];
      memcpy(copy, orig, len);
      if (k < sizeof flips)
        copy[at] = (char)(copy[at] ^ flips[k]);
      else
        copy[at] = k == sizeof flips ? '\n' : '0';
      if (copy[at] == orig[at]) continue;
      f = fopen(path2, "w");
      fwrite(copy, 1, len, f);
      fclose(f);
      rstate_store *s = h_open();
      size_t set = 0, defined = 0;
      tried++;
      if (snapshot_restore(s, path2, NULL, NULL, &set, &defined, err, sizeof err) == -1 &&
          strncmp(err, path2, plen) == 0 && rstate_revision(s) == 0 && set + defined == 0)
        refused++;
      else
        cr_log_info("byte %zu altered (0x%02x to 0x%02x): not refused (%s)", at, (unsigned char)orig[at],
                     (unsigned char)copy[at], err);
      rstate_close(s);
    }
  }
  cr_assert_eq(refused, tried, "%zu of %zu damaged copies were accepted", tried - refused, tried);
  cr_log_info("%zu cuts and %zu altered copies of a %zu-byte snapshot: all refused", len, tried - len, len);
  /* and the whole file still restores */
  rstate_store *b = h_open();
  cr_assert_eq(snapshot_restore(b, t.path, NULL, NULL, NULL, NULL, err, sizeof err), 0, "%s", err);
  int64_t count = 0;
  ASSERT_RC(rstate_get_int(b, "count", &count), RSTATE_OK);
  cr_assert_eq(count, 987654321);
  rstate_close(a);
  rstate_close(b);
  tmp_remove(&t);
}

/* A writer killed between mkstemp and rename leaves ".NAME.XXXXXX"; the
 * next start removes those, and nothing else. */
Test(tools_snapshot, partial_files_of_a_killed_writer_are_removed) {
  tmpdir t;
  tmp_make(&t);
  const char *names[] = {".state.snap.Ab12Zz", ".state.snap.000000", ".state.snap.lock", ".state.snap.Ab12Zzz",
                         ".other.snap.Ab12Zz", "state.snap.Ab12Zz", "keep"};
  char p[256];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", t.dir, names[i]);
    write_text(p, "# reactivestate snapshot 2\nhalf");
  }
  char err[512];
  size_t removed = 9;
  cr_assert_eq(snapshot_remove_partial(t.path, &removed, err, sizeof err), 0, "%s", err);
  cr_assert_eq(removed, 2);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", t.dir, names[i]);
    cr_assert_eq(access(p, F_OK) == 0, i >= 2, "%s", names[i]);
  }
  tmp_remove(&t);
}

Test(tools_snapshot, write_failures_are_sentences) {
  rstate_store *s = h_open();
  char err[512];
  cr_assert_eq(snapshot_write(s, "/tmp/rstate-test-tools-no-such-dir/x.snap", NULL, err, sizeof err), -1);
  cr_assert_str_eq(err,
                   "/tmp/rstate-test-tools-no-such-dir/x.snap: cannot create a temporary file in "
                   "/tmp/rstate-test-tools-no-such-dir: No such file or directory");
  rstate_close(s);
}

Test(tools_snapshot, rewrite_replaces_and_empty_store_round_trips) {
  tmpdir t;
  tmp_make(&t);
  rstate_store *s = h_open();
  char err[512];
  size_t n = 9;
  cr_assert_eq(snapshot_write(s, t.path, &n, err, sizeof err), 0, "%s", err);
  cr_assert_eq(n, 0);
  def(s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  cr_assert_eq(snapshot_write(s, t.path, &n, err, sizeof err), 0, "%s", err);
  cr_assert_eq(n, 1);
  ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_OK);
  cr_assert_eq(snapshot_write(s, t.path, &n, err, sizeof err), 0, "%s", err);
  cr_assert_eq(tmp_entries(&t), 1);
  rstate_store *b = h_open();
  def(b, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  size_t set, defined;
  cr_assert_eq(snapshot_restore(b, t.path, NULL, NULL, &set, &defined, err, sizeof err), 0, "%s", err);
  int64_t x = 0;
  ASSERT_RC(rstate_get_int(b, "x", &x), RSTATE_OK);
  cr_assert_eq(x, 2);
  cr_assert_eq(set, 1);
  rstate_close(s);
  rstate_close(b);
  tmp_remove(&t);
}

/* A store that keeps history keeps the restored version too. */
static int collect_versions(const rstate_history_entry *e, void *ud) {
  uint64_t *v = ud;
  v[v[0] + 1] = e->version;
  v[0]++;
  return 0;
}

Test(tools_snapshot, a_restore_is_kept_in_the_history) {
  rstate_options o = {.keep_versions = 5};
  rstate_store *s = h_open_opts(&o);
  def(s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  rstate_value v = rstate_int(5);
  rstate_snapshot_var sv = {"x", RSTATE_TYPE_INTEGER, &v, 7, 123};
  size_t failed;
  ASSERT_RC(rstate__restore(s, &sv, 1, 40, &failed), RSTATE_OK);
  uint64_t versions[8] = {0};
  ASSERT_RC(rstate_history(s, "x", 0, collect_versions, versions), RSTATE_OK);
  cr_assert_eq(versions[0], 2, "%llu entries", (unsigned long long)versions[0]);
  cr_assert_eq(versions[1], 1);
  cr_assert_eq(versions[2], 7);
  ASSERT_RC(rstate_rollback(s, "x", 1, NULL), RSTATE_OK);
  rstate_var_info info;
  ASSERT_RC(rstate_info(s, "x", &info), RSTATE_OK);
  cr_assert_eq(info.version, 8, "a rollback after a restore goes on from the restored version");
  cr_assert_eq(info.revision, 41);
  rstate_close(s);
}

/* The fallback directory is made private, and refused unless it is. */
Test(tools_format, fallback_directory_must_be_our_own) {
  tmpdir t;
  tmp_make(&t);
  char dir[160], err[512], want[512];
  snprintf(dir, sizeof dir, "%s/fallback", t.dir);
  cr_assert_eq(tool_private_dir(dir, err, sizeof err), 0, "%s", err);
  struct stat st;
  cr_assert_eq(lstat(dir, &st), 0);
  cr_assert(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "made with mode 0700");
  cr_assert_eq(tool_private_dir(dir, err, sizeof err), 0, "%s", err);
  chmod(dir, 0755);
  cr_assert_eq(tool_private_dir(dir, err, sizeof err), -1);
  snprintf(want, sizeof want,
           "%s: other users may enter the socket directory (mode 755): refused (chmod 700 it, or set XDG_RUNTIME_DIR, "
           "or give --listen)", dir);
  cr_assert_str_eq(err, want);
  chmod(dir, 0700);
  char link[160];
  snprintf(link, sizeof link, "%s/link", t.dir);
  cr_assert_eq(symlink(dir, link), 0);
  cr_assert_eq(tool_private_dir(link, err, sizeof err), -1);
  cr_assert(strstr(err, "is not a directory (a symbolic link?)"), "%s", err);
  unlink(link);
  if (geteuid() == 0) { /* another user's directory (needs root to make one) */
    cr_assert_eq(chown(dir, 65534, 65534), 0);
    cr_assert_eq(tool_private_dir(dir, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s: the socket directory belongs to uid 65534, not to this user (uid 0): refused, another user may "
             "listen there (set XDG_RUNTIME_DIR, or give --listen)", dir);
    cr_assert_str_eq(err, want);
  }
  rmdir(dir);
  tmp_remove(&t);
}
