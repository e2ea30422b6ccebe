/*
 * test_resp.c — the RESP reader and encoder of the redis: backend
 * (src/redis/resp.c): every reply fed whole, split at every byte and one
 * byte at a time gives the same tree; malformed replies are EPROTO and
 * declared lengths over a limit ELIMIT before anything is waited for.
 */
#include <math.h>

#include "helpers.h"
#include "redis/redis.h"

TestSuite(resp);

/* A printable form of a reply tree, to compare trees. */
static void show(const rstate__resp *r, char *out, size_t cap) {
  size_t n = strlen(out);
  char *p = out + n;
  size_t room = cap - n;
  switch (r->type) {
  case RSTATE_RESP_STATUS: snprintf(p, room, "+%s;", r->str); break;
  case RSTATE_RESP_ERROR: snprintf(p, room, "-%s;", r->str); break;
  case RSTATE_RESP_INTEGER: snprintf(p, room, ":%lld;", (long long)r->integer); break;
  case RSTATE_RESP_STRING: snprintf(p, room, "$%zu:%s;", r->len, r->str); break;
  case RSTATE_RESP_NIL: snprintf(p, room, "nil;"); break;
  case RSTATE_RESP_DOUBLE: snprintf(p, room, ",%g;", r->dbl); break;
  case RSTATE_RESP_BOOL: snprintf(p, room, "#%lld;", (long long)r->integer); break;
  case RSTATE_RESP_ARRAY:
  case RSTATE_RESP_MAP: {
    size_t k = r->type == RSTATE_RESP_MAP ? 2 * r->n : r->n;
    snprintf(p, room, "%c%zu[", r->agg, r->n);
    for (size_t i = 0; i < k; i++) show(&r->elem[i], out, cap);
    n = strlen(out);
    snprintf(out + n, cap - n, "];");
    break;
  }
  }
}

#define STREAM "*1\r\n*2\r\n$10\r\nrs:{s}:log\r\n*1\r\n*2\r\n$3\r\n7-0\r\n*2\r\n$1\r\nb\r\n$3\r\n\x00\x01\x02\r\n"

static const struct {
  const char *bytes;
  size_t len; /* 0: strlen */
  const char *tree;
} replies[] = {
    {"+OK\r\n", 0, "+OK;"},
    {"-ERR unknown command\r\n", 0, "-ERR unknown command;"},
    {":0\r\n", 0, ":0;"},
    {":-9223372036854775808\r\n", 0, ":-9223372036854775808;"},
    {":9223372036854775807\r\n", 0, ":9223372036854775807;"},
    {"$5\r\nhello\r\n", 0, "$5:hello;"},
    {"$0\r\n\r\n", 0, "$0:;"},
    {"$-1\r\n", 0, "nil;"},
    {"*-1\r\n", 0, "nil;"},
    {"_\r\n", 0, "nil;"},
    {",3.25\r\n", 0, ",3.25;"},
    {",-inf\r\n", 0, ",-inf;"},
    {"#t\r\n", 0, "#1;"},
    {"#f\r\n", 0, "#0;"},
    {"(12345678901234567890123\r\n", 0, "$23:12345678901234567890123;"},
    {"=8\r\ntxt:abcd\r\n", 0, "$4:abcd;"},
    {"!9\r\nERR wrong\r\n", 0, "-ERR wrong;"},
    {"*0\r\n", 0, "*0[];"},
    {"*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n+a\r\n_\r\n", 0, "*3[:1;$3:foo;*2[+a;nil;];];"},
    {"%2\r\n+k1\r\n:1\r\n+k2\r\n*1\r\n$1\r\nx\r\n", 0, "%2[+k1;:1;+k2;*1[$1:x;];];"},
    {"~2\r\n:1\r\n:2\r\n", 0, "~2[:1;:2;];"},
    {">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", 0, ">3[$7:message;$2:ch;$2:hi;];"},
    {"|1\r\n+ttl\r\n:3600\r\n:7\r\n", 0, ":7;"},
    {"*2\r\n|1\r\n+a\r\n+b\r\n$2\r\nxy\r\n:5\r\n", 0, "*2[$2:xy;:5;];"},
    /* a stream entry as XREAD answers */
    {STREAM, sizeof STREAM - 1, "*1[*2[$10:rs:{s}:log;*1[*2[$3:7-0;*2[$1:b;$3:;];];];];];"},
};

static char *tree_of(const rstate__resp *r) {
  static char out[4096];
  out[0] = 0;
  show(r, out, sizeof out);
  return out;
}

/* Feeds bytes in pieces cut at the offsets in cuts; asserts "need more"
 * before the last byte and the whole tree after it. */
static void feed_cut(const char *bytes, size_t len, size_t cut, const char *tree) {
  rstate__resp_reader rd;
  rstate__resp_reader_init(&rd, NULL);
  rstate__resp *r = NULL;
  ASSERT_RC(rstate__resp_feed(&rd, bytes, cut), RSTATE_OK);
  if (cut < len) {
    ASSERT_RC(rstate__resp_next(&rd, &r), 0);
    cr_assert_null(r);
    ASSERT_RC(rstate__resp_feed(&rd, bytes + cut, len - cut), RSTATE_OK);
  }
  ASSERT_RC(rstate__resp_next(&rd, &r), 1);
  cr_assert_str_eq(tree_of(r), tree, "cut at %zu of %zu", cut, len);
  rstate__resp_free(r);
  ASSERT_RC(rstate__resp_next(&rd, &r), 0);
  rstate__resp_reader_free(&rd);
}

Test(resp, every_reply_split_at_every_byte) {
  for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
    size_t len = replies[i].len ? replies[i].len : strlen(replies[i].bytes);
    for (size_t cut = 0; cut <= len; cut++) feed_cut(replies[i].bytes, len, cut, replies[i].tree);
  }
}

Test(resp, one_byte_at_a_time_and_pipelined) {
  /* every reply, back to back, fed byte by byte: each comes out once, in order */
  rstate__resp_reader rd;
  rstate__resp_reader_init(&rd, NULL);
  size_t got = 0;
  for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
    size_t len = replies[i].len ? replies[i].len : strlen(replies[i].bytes);
    for (size_t k = 0; k < len; k++) {
      ASSERT_RC(rstate__resp_feed(&rd, replies[i].bytes + k, 1), RSTATE_OK);
      rstate__resp *r;
      int rc = rstate__resp_next(&rd, &r);
      cr_assert_eq(rc, k + 1 == len ? 1 : 0, "reply %zu byte %zu: %d (%s)", i, k, rc, rstate_last_error());
      if (rc == 1) {
        cr_assert_str_eq(tree_of(r), replies[i].tree);
        rstate__resp_free(r);
        got++;
      }
    }
  }
  cr_assert_eq(got, sizeof replies / sizeof replies[0]);
  rstate__resp_reader_free(&rd);

  /* and all at once: one feed, every reply taken in turn */
  rstate__resp_reader_init(&rd, NULL);
  for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
    size_t len = replies[i].len ? replies[i].len : strlen(replies[i].bytes);
    ASSERT_RC(rstate__resp_feed(&rd, replies[i].bytes, len), RSTATE_OK);
  }
  for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
    rstate__resp *r;
    ASSERT_RC(rstate__resp_next(&rd, &r), 1);
    cr_assert_str_eq(tree_of(r), replies[i].tree);
    rstate__resp_free(r);
  }
  rstate__resp *r;
  ASSERT_RC(rstate__resp_next(&rd, &r), 0);
  rstate__resp_reader_free(&rd);
}

static char sentence[256]; /* first_error's sentence */

static int first_error(const char *bytes, const rstate__resp_limits *lim) {
  rstate__resp_reader rd;
  rstate__resp_reader_init(&rd, lim);
  rstate__resp_feed(&rd, bytes, strlen(bytes));
  rstate__resp *r = NULL;
  int rc = rstate__resp_next(&rd, &r);
  rstate__resp_free(r);
  snprintf(sentence, sizeof sentence, "%s", rstate_last_error());
  int again = rstate__resp_next(&rd, &r);
  cr_assert(rc >= 0 || again == rc, "a failed reader must keep failing (%d then %d)", rc, again);
  rstate__resp_reader_free(&rd);
  return rc;
}

Test(resp, malformed_replies_are_eproto) {
  static const char *bad[] = {
      "?5\r\n",       "+OK\rX",        ":12a\r\n",     ":\r\n",          ":99999999999999999999\r\n",
      "$3\r\nabcd\r\n", "$-2\r\n",      "$x\r\n",       "*-2\r\n",        "%-1\r\n",
      "#x\r\n",        "_x\r\n",        ",1.2.x\r\n",   "=3\r\nabc\r\n",  "$?\r\n",
      "*?\r\n",        "!-1\r\n",       "+a\nb\r\n",    ":9223372036854775808\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = first_error(bad[i], NULL);
    cr_assert_eq(rc, RSTATE_EPROTO, "reply %zu (%s): %d, want RSTATE_EPROTO", i, bad[i], rc);
    cr_assert(strstr(sentence, "malformed") != NULL, "sentence: %s", sentence);
  }
}

Test(resp, declared_lengths_over_the_limits_are_elimit_before_their_bytes) {
  rstate__resp_limits lim = {.max_bulk = 16, .max_elements = 4, .max_depth = 3, .max_reply = 64};
  ASSERT_RC(first_error("$17\r\n", &lim), RSTATE_ELIMIT);
  cr_assert(strstr(sentence, "17 bytes") != NULL, "%s", sentence);
  ASSERT_RC(first_error("$16\r\n", &lim), 0); /* at the limit: waits for the bytes */
  ASSERT_RC(first_error("*5\r\n", &lim), RSTATE_ELIMIT);
  ASSERT_RC(first_error("%5\r\n", &lim), RSTATE_ELIMIT);
  ASSERT_RC(first_error("*1\r\n*1\r\n*1\r\n:1\r\n", &lim), RSTATE_ELIMIT);
  ASSERT_RC(first_error("*1\r\n*1\r\n:1\r\n", &lim), 1);
  /* a reply still growing past max_reply */
  ASSERT_RC(first_error("*4\r\n$16\r\n0123456789abcdef\r\n$16\r\n0123456789abcdef\r\n$16\r\n0123", &lim),
            RSTATE_ELIMIT);
  /* a huge declared count never allocates: it waits for items (and is ELIMIT by the default limit) */
  ASSERT_RC(first_error("*1000000000\r\n", NULL), RSTATE_ELIMIT);
  ASSERT_RC(first_error("$9999999999999\r\n", NULL), RSTATE_ELIMIT);
}

Test(resp, encoder_writes_commands_the_reader_reads_back) {
  rstate__resp_buf b = {0};
  const char *argv[] = {"SET", "key", "a\r\nb"};
  size_t lens[] = {3, 3, 4};
  ASSERT_RC(rstate__resp_command(&b, 3, argv, lens), RSTATE_OK);
  const char *argv2[] = {"PING"};
  ASSERT_RC(rstate__resp_command(&b, 1, argv2, NULL), RSTATE_OK);
  const char *want = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$4\r\na\r\nb\r\n*1\r\n$4\r\nPING\r\n";
  cr_assert_eq(b.len, strlen(want));
  cr_assert(!memcmp(b.p, want, b.len));
  rstate__resp_reader rd;
  rstate__resp_reader_init(&rd, NULL);
  ASSERT_RC(rstate__resp_feed(&rd, b.p, b.len), RSTATE_OK);
  rstate__resp *r;
  ASSERT_RC(rstate__resp_next(&rd, &r), 1);
  cr_assert_str_eq(tree_of(r), "*3[$3:SET;$3:key;$4:a\r\nb;];");
  rstate__resp_free(r);
  rstate__resp_reader_free(&rd);
  rstate__resp_buf_free(&b);
}

Test(resp, helpers_read_numbers_and_strings) {
  rstate__resp_reader rd;
  rstate__resp_reader_init(&rd, NULL);
  const char *in = "*4\r\n$20\r\n18446744073709551615\r\n:-1\r\n+OK\r\n$20\r\n18446744073709551616\r\n";
  ASSERT_RC(rstate__resp_feed(&rd, in, strlen(in)), RSTATE_OK);
  rstate__resp *r;
  ASSERT_RC(rstate__resp_next(&rd, &r), 1);
  uint64_t v = 0;
  cr_assert(rstate__resp_u64(rstate__resp_at(r, 0), &v));
  cr_assert_eq(v, UINT64_MAX);
  cr_assert(!rstate__resp_u64(rstate__resp_at(r, 1), &v));
  cr_assert(rstate__resp_is(rstate__resp_at(r, 2), "OK"));
  cr_assert(!rstate__resp_u64(rstate__resp_at(r, 3), &v));
  cr_assert_null(rstate__resp_at(r, 4));
  rstate__resp_free(r);
  rstate__resp_reader_free(&rd);
}
