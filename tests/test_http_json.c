/*
 * test_http_json.c — the JSON bodies and header texts rstated --http reads
 * itself (tools/http/jsonin.c, tools/http/parse.c): every kind of value,
 * escapes, the limits of numbers, and each malformed input refused with
 * its code and sentence. The HTTP answers built on them are tested end to
 * end by tests/tools/http_api.py.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "../tools/http/jsonin.c"
#include "../tools/http/parse.c"

TestSuite(http_json);

static int parse(const char *text, jin_doc *d, char *err) {
  return jin_parse_value(text, strlen(text), d, err, 256);
}

Test(http_json, scalars) {
  jin_doc d;
  char err[256];
  cr_assert_eq(parse(" 42 ", &d, err), JIN_OK);
  cr_assert_eq(d.items[0].value.kind, RSTATE_INT);
  cr_assert_eq(d.items[0].value.u.i, 42);
  jin_free(&d);
  cr_assert_eq(parse("-9223372036854775808", &d, err), JIN_OK);
  cr_assert_eq(d.items[0].value.kind, RSTATE_INT);
  cr_assert_eq(d.items[0].value.u.i, INT64_MIN);
  jin_free(&d);
  cr_assert_eq(parse("9223372036854775808", &d, err), JIN_OK); /* past int64: a float */
  cr_assert_eq(d.items[0].value.kind, RSTATE_FLOAT);
  jin_free(&d);
  cr_assert_eq(parse("5.0", &d, err), JIN_OK);
  cr_assert_eq(d.items[0].value.kind, RSTATE_FLOAT);
  cr_assert_float_eq(d.items[0].value.u.f, 5.0, 0);
  jin_free(&d);
  cr_assert_eq(parse("-1.5e-3", &d, err), JIN_OK);
  cr_assert_float_eq(d.items[0].value.u.f, -0.0015, 1e-18);
  jin_free(&d);
  cr_assert_eq(parse("true", &d, err), JIN_OK);
  cr_assert(d.items[0].value.kind == RSTATE_BOOL && d.items[0].value.u.b);
  jin_free(&d);
  cr_assert_eq(parse("false", &d, err), JIN_OK);
  cr_assert(d.items[0].value.kind == RSTATE_BOOL && !d.items[0].value.u.b);
  jin_free(&d);
}

Test(http_json, strings_and_escapes) {
  jin_doc d;
  char err[256];
  cr_assert_eq(parse("\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\"", &d, err), JIN_OK);
  const rstate_value *v = &d.items[0].value;
  cr_assert_eq(v->kind, RSTATE_STRING);
  const char want[] = "a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80";
  cr_assert_eq(v->u.s.len, sizeof want - 1);
  cr_assert_eq(memcmp(v->u.s.ptr, want, sizeof want), 0); /* NUL-terminated too */
  jin_free(&d);
  cr_assert_eq(parse("\"\"", &d, err), JIN_OK);
  cr_assert_eq(d.items[0].value.u.s.len, 0);
  cr_assert_str_eq(d.items[0].value.u.s.ptr, "");
  jin_free(&d);
}

Test(http_json, malformed_is_syntax_with_a_sentence) {
  static const struct {
    const char *text, *sentence;
  } cases[] = {
      {"", "body: expected a value at byte 0"},
      {"{", "body: expected a member name at byte 1"},
      {"1 2", "body: unexpected text after the JSON value at byte 2"},
      {"\"abc", "body: a string is not closed (byte 4)"},
      {"tru", "body: expected a value at byte 0"},
      {"01", "body: unexpected text after the JSON value at byte 1"},
      {"1.", "body: a digit must follow '.' at byte 2"},
      {"1e", "body: an exponent needs digits at byte 2"},
      {"\"\\x\"", "body: unknown escape \\x at byte 1"},
      {"\"\\ud800\"", "body: a high surrogate without its pair at byte 1"},
      {"\"\\udc00\"", "body: a lone low surrogate \\udc00 at byte 1"},
      {"\"\\u12g4\"", "body: a \\u escape needs four hex digits at byte 5"},
      {"\"a\nb\"", "body: a control character inside a string at byte 2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    jin_doc d;
    char err[256];
    cr_assert_eq(parse(cases[i].text, &d, err), JIN_SYNTAX, "%s", cases[i].text);
    cr_assert_str_eq(err, cases[i].sentence, "%s", cases[i].text);
    jin_free(&d);
  }
  char deep[200];
  memset(deep, '[', sizeof deep - 1);
  deep[sizeof deep - 1] = '\0';
  jin_doc d;
  char err[256];
  cr_assert_eq(parse(deep, &d, err), JIN_SYNTAX);
  cr_assert_str_eq(err, "body: nested deeper than 32 at byte 32");
  jin_free(&d);
}

Test(http_json, not_a_value_is_kind) {
  static const char *const texts[] = {"null", "[1]", "{\"a\":1}", "\"a\\u0000b\""};
  static const char *const sentences[] = {"body: null is not a value", "body: an array is not a value",
                                          "body: an object is not a value",
                                          "body: a string holds a NUL character (\\u0000), which no value may hold"};
  for (size_t i = 0; i < 4; i++) {
    jin_doc d;
    char err[256];
    cr_assert_eq(parse(texts[i], &d, err), JIN_KIND, "%s", texts[i]);
    cr_assert_str_eq(err, sentences[i]);
    jin_free(&d);
  }
}

Test(http_json, objects) {
  jin_doc d;
  char err[256];
  const char *t = "{\"temperature\": 0.5, \"model\": \"gemini\", \"on\": true, \"n\": 7}";
  cr_assert_eq(jin_parse_object(t, strlen(t), &d, err, sizeof err), JIN_OK);
  cr_assert_eq(d.n, 4);
  cr_assert_str_eq(d.items[0].name, "temperature");
  cr_assert_eq(d.items[0].value.kind, RSTATE_FLOAT);
  cr_assert_str_eq(d.items[1].name, "model");
  cr_assert_str_eq(d.items[1].value.u.s.ptr, "gemini");
  cr_assert_str_eq(d.items[3].name, "n");
  cr_assert_eq(d.items[3].value.u.i, 7);
  jin_free(&d);
  cr_assert_eq(jin_parse_object("{}", 2, &d, err, sizeof err), JIN_OK);
  cr_assert_eq(d.n, 0);
  jin_free(&d);
  t = "{\"a\": 1, \"b\": [2], \"c\": null}";
  cr_assert_eq(jin_parse_object(t, strlen(t), &d, err, sizeof err), JIN_KIND);
  cr_assert_eq(d.failed, 1);
  cr_assert_str_eq(err, "b: an array is not a value");
  jin_free(&d);
  cr_assert_eq(jin_parse_object("[1]", 3, &d, err, sizeof err), JIN_KIND);
  cr_assert_str_eq(err, "body: expected an object of name: value pairs");
  jin_free(&d);
  t = "{\"a\": 1,}";
  cr_assert_eq(jin_parse_object(t, strlen(t), &d, err, sizeof err), JIN_SYNTAX);
  cr_assert_str_eq(err, "body: expected a member name at byte 8");
  jin_free(&d);
  /* an invalid body is refused whole, even when a member before it was a kind error */
  t = "{\"a\": null, \"b\": }";
  cr_assert_eq(jin_parse_object(t, strlen(t), &d, err, sizeof err), JIN_SYNTAX);
  jin_free(&d);
}

Test(http_json, header_texts) {
  uint64_t v;
  cr_assert_eq(http_parse_u64("18446744073709551615", &v), 0);
  cr_assert_eq(v, UINT64_MAX);
  cr_assert_eq(http_parse_u64("18446744073709551616", &v), -1);
  cr_assert_eq(http_parse_u64("", &v), -1);
  cr_assert_eq(http_parse_u64("-1", &v), -1);
  cr_assert_eq(http_parse_u64(" 1", &v), -1);
  cr_assert_eq(http_parse_if_match("\"3\"", &v), 0);
  cr_assert_eq(v, 3);
  cr_assert_eq(http_parse_if_match("W/\"12\"", &v), 0);
  cr_assert_eq(v, 12);
  cr_assert_eq(http_parse_if_match("7", &v), 0);
  cr_assert_eq(http_parse_if_match("\"\"", &v), -1);
  cr_assert_eq(http_parse_if_match("\"x\"", &v), -1);
  char list[] = " a, b.* ,,*, ";
  const char *names[8];
  size_t n = http_split_names(list, names, 8);
  cr_assert_eq(n, 3);
  cr_assert_str_eq(names[0], "a");
  cr_assert_str_eq(names[1], "b.*");
  cr_assert_str_eq(names[2], "*");
}
