/*
 * fuzz_wire.c — libFuzzer target for the wire codec (src/wire/framing.c,
 * src/wire/codec.c).
 *
 * Input: byte 0 picks the reader's max_frame (low 3 bits), feed() or
 * prepare()/commit() (bit 3) and seeds the chunk sizes; the rest is the byte
 * stream, fed in chunks of 1 to 64 bytes or up to 4 KiB, sizes drawn from a
 * generator seeded by byte 0 and the input length. Every frame the reader
 * returns is decoded with the decoder of its type.
 *
 * Invariants checked (abort() on a breach):
 *  - the reader returns 1, 0, RSTATE_ELIMIT or RSTATE_EPROTO only; frames
 *    never exceed max_frame; an error is sticky; the reader's buffer never
 *    holds more than one maximal frame plus the last chunk;
 *  - a decoder returns RSTATE_OK or RSTATE_EPROTO only (RSTATE_ENOMEM would
 *    mean the scratch bound of codec.c is wrong);
 *  - what decodes re-encodes to exactly the frame's bytes (HELLO: to a
 *    prefix, as it ignores trailing bytes), and the re-encoding decodes and
 *    re-encodes to itself;
 *  - the splitting encoders, given the decoded items of a part or EVENT
 *    frame and a small max_frame, produce frames that each fit (or hold a
 *    single item), carry MORE on all but the last, and hold the same items
 *    in the same order.
 * Memory errors and leaks are the sanitizers' to find.
 *
 * Seeds: the same file built without libFuzzer and with FUZZ_WIRE_SEEDS
 * defined is a program that writes one seed per frame type (and three
 * multi-frame streams) into the directory it is given. So:
 *
 *   cc -DFUZZ_WIRE_SEEDS -Iinclude -Isrc -D_GNU_SOURCE fuzz/fuzz_wire.c \
 *     src/wire/framing.c src/wire/codec.c src/util/error.c -o /tmp/wire_seeds
 *   mkdir -p fuzz/corpus-wire && /tmp/wire_seeds fuzz/corpus-wire
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
 *     fuzz/fuzz_wire.c src/wire/framing.c src/wire/codec.c src/util/error.c src/types/value.c -o /tmp/fuzz_wire
 *   nice -n 19 /tmp/fuzz_wire -max_total_time=600 -max_len=16384 fuzz/corpus-wire
 *
 * (.gitignore keeps fuzz/corpus-wire and the other corpus-NAME directories out of git.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t max_frames[8] = {5, 64, 300, 4096, 65536, 1u << 20, 1u << 24, UINT32_MAX};

#define CHECK(cond)                                                                             \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      fprintf(stderr, "fuzz_wire: %s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, rstate_last_error());                                                      \
      abort();                                                                                  \
    }                                                                                           \
  } while (0)

typedef struct ctx {
  rstate__wire_buf scratch, scratch2, enc, enc2, split;
  rstate__wire_reader splits;
} ctx;

/* Items of a part or EVENT message: count and the i-th, re-encoded alone,
 * for comparison (a LIST_PART item as a one-item LIST_PART, and so on). */
static size_t items_of(const rstate__wire_msg *m) {
  switch (m->type) {
    case RSTATE__WIRE_GET_MANY_PART: return m->u.values.n;
    case RSTATE__WIRE_LIST_PART: return m->u.list.n;
    case RSTATE__WIRE_SNAPSHOT_PART: return m->u.snapshot.n;
    case RSTATE__WIRE_EVENT: return m->u.events.n;
  }
  return 0;
}

static void put_one(rstate__wire_buf *b, const rstate__wire_msg *m, size_t i) {
  rstate__wire_msg one = *m;
  switch (m->type) {
    case RSTATE__WIRE_GET_MANY_PART:
      one.u.values.values += i;
      one.u.values.n = 1;
      one.u.values.flags = 0;
      break;
    case RSTATE__WIRE_LIST_PART:
      one.u.list.items += i;
      one.u.list.n = 1;
      one.u.list.flags = 0;
      break;
    case RSTATE__WIRE_SNAPSHOT_PART:
      one.u.snapshot.vars += i;
      one.u.snapshot.n = 1;
      one.u.snapshot.flags = 0;
      break;
    case RSTATE__WIRE_EVENT:
      one.u.events.events += i;
      one.u.events.n = 1;
      one.u.events.flags = 0;
      break;
  }
  CHECK(rstate__wire_encode(b, &one) == RSTATE_OK);
}

/* Re-encodes the items of m split at max_frame and checks the frames. */
static void check_split(ctx *c, const rstate__wire_msg *m, uint32_t max) {
  size_t n = items_of(m);
  if (n == 0 && m->type == RSTATE__WIRE_EVENT) return;
  c->split.len = 0;
  size_t frames = 0;
  int rc;
  switch (m->type) {
    case RSTATE__WIRE_GET_MANY_PART: rc = rstate__wire_put_values_parts(&c->split, &m->u.values, max, &frames); break;
    case RSTATE__WIRE_LIST_PART: rc = rstate__wire_put_list_parts(&c->split, &m->u.list, max, &frames); break;
    case RSTATE__WIRE_SNAPSHOT_PART: rc = rstate__wire_put_snapshot_parts(&c->split, &m->u.snapshot, max, &frames); break;
    case RSTATE__WIRE_EVENT: rc = rstate__wire_put_events_split(&c->split, &m->u.events, max, &frames); break;
    default: return;
  }
  CHECK(rc == RSTATE_OK);
  CHECK(frames >= 1 && frames <= (n ? n : 1));
  rstate__wire_reader_init(&c->splits, UINT32_MAX);
  CHECK(rstate__wire_reader_feed(&c->splits, c->split.data, c->split.len) == RSTATE_OK);
  rstate__wire_frame f;
  size_t seen = 0, got = 0;
  while ((rc = rstate__wire_reader_next(&c->splits, &f)) == 1) {
    rstate__wire_msg p;
    CHECK(rstate__wire_decode_frame(&f, &c->scratch2, &p) == RSTATE_OK);
    CHECK(p.type == m->type);
    got++;
    size_t k = items_of(&p);
    CHECK(k >= 1 || n == 0);
    CHECK(f.len + 1 <= max || k == 1);
    uint8_t flags = m->type == RSTATE__WIRE_GET_MANY_PART ? p.u.values.flags
                    : m->type == RSTATE__WIRE_LIST_PART   ? p.u.list.flags
                    : m->type == RSTATE__WIRE_SNAPSHOT_PART ? p.u.snapshot.flags
                                                            : p.u.events.flags;
    uint8_t last = m->type == RSTATE__WIRE_EVENT ? m->u.events.flags : 0; /* an EVENT group may go on */
    CHECK(flags == (got < frames ? RSTATE__WIRE_MORE : last));
    for (size_t i = 0; i < k; i++, seen++) {
      CHECK(seen < n);
      c->enc2.len = 0;
      put_one(&c->enc2, &p, i);
      size_t mark = c->enc2.len;
      put_one(&c->enc2, m, seen);
      CHECK(c->enc2.len == 2 * mark && memcmp(c->enc2.data, c->enc2.data + mark, mark) == 0);
    }
  }
  CHECK(rc == 0);
  CHECK(got == frames && seen == n);
  rstate__wire_reader_free(&c->splits);
}

static void check_frame(ctx *c, const rstate__wire_frame *f, uint8_t mode) {
  rstate__wire_msg m;
  int rc = rstate__wire_decode_frame(f, &c->scratch, &m);
  CHECK(rc == RSTATE_OK || rc == RSTATE_EPROTO);
  if (rc) {
    CHECK(rstate_last_error()[0] != '\0');
    return;
  }
  c->enc.len = 0;
  CHECK(rstate__wire_encode(&c->enc, &m) == RSTATE_OK);
  CHECK(c->enc.len >= 5 && c->enc.data[4] == f->type);
  size_t body = c->enc.len - 5;
  if (f->type == RSTATE__WIRE_HELLO)
    CHECK(body <= f->len);
  else
    CHECK(body == f->len);
  CHECK(memcmp(c->enc.data + 5, f->body, body) == 0);
  /* the re-encoding decodes and re-encodes to itself */
  rstate__wire_msg m2;
  CHECK(rstate__wire_decode(f->type, c->enc.data + 5, body, &c->scratch2, &m2) == RSTATE_OK);
  c->enc2.len = 0;
  CHECK(rstate__wire_encode(&c->enc2, &m2) == RSTATE_OK);
  CHECK(c->enc2.len == c->enc.len && memcmp(c->enc2.data, c->enc.data, c->enc.len) == 0);
  if (items_of(&m) || f->type == RSTATE__WIRE_LIST_PART) check_split(c, &m, 24 + (mode & 0x70));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  uint32_t max = max_frames[mode & 7];
  bool zero_copy = mode & 8;
  data++;
  size--;

  static ctx c; /* buffers kept between runs: their reuse is part of what is tested */
  rstate__wire_reader r;
  rstate__wire_reader_init(&r, max);
  uint64_t rng = (uint64_t)mode * 0x9E3779B97F4A7C15ull ^ size;
  int err = 0;
  for (size_t off = 0; off < size;) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    size_t chunk = (size_t)(rng & 0x100 ? rng % 4096 : rng % 64) + 1;
    if (chunk > size - off) chunk = size - off;
    if (zero_copy) {
      size_t room = 0;
      uint8_t *p = rstate__wire_reader_prepare(&r, chunk, &room);
      CHECK(p && room >= chunk);
      memcpy(p, data + off, chunk);
      CHECK(rstate__wire_reader_commit(&r, chunk) == RSTATE_OK);
    } else {
      CHECK(rstate__wire_reader_feed(&r, data + off, chunk) == RSTATE_OK);
    }
    off += chunk;
    /* what is buffered and not yet returned is whole frames up to max, or
     * the start of one, so never more than a frame plus a chunk */
    CHECK(r.buf.len - r.pos <= (size_t)max + RSTATE__WIRE_HEADER + chunk);
    rstate__wire_frame f;
    int rc;
    while ((rc = rstate__wire_reader_next(&r, &f)) == 1) {
      CHECK(err == 0);
      CHECK(f.len + 1 <= max);
      check_frame(&c, &f, mode);
    }
    CHECK(rc == 0 || rc == RSTATE_ELIMIT || rc == RSTATE_EPROTO);
    if (rc < 0) {
      CHECK(err == 0 || err == rc);
      err = rc;
      CHECK(rstate__wire_reader_next(&r, &f) == rc); /* sticky */
    }
  }
  rstate__wire_reader_free(&r);
  return 0;
}

#ifdef FUZZ_WIRE_SEEDS
/* ---- seed generator: `cc -DFUZZ_WIRE_SEEDS ...` (see the top) ------------------------ */

static void write_seed(const char *dir, const char *name, uint8_t mode, const rstate__wire_buf *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(&mode, 1, 1, f) != 1 || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  static const char *const choices[] = {"Default", "Optimized"};
  static const char *const names[] = {"model", "cfg.temperature", "cfg.*"};
  rstate_constraints k = {.min = rstate_int(0), .max = rstate_float(2.5), .min_length = 1, .max_length = 64,
                          .choices = choices, .n_choices = 2, .module_namespace = "Strategies", .pattern = "^[A-Z]"};
  rstate_meta meta[] = {{"trace", "t1"}, {"user", ""}};
  rstate_assign items[] = {{"temperature", rstate_float(0.7)}, {"n", rstate_int(-5)}, {"on", rstate_bool(true)},
                           {"model", rstate_string("gpt-4")}, {"x", {.kind = RSTATE_NONE}}};
  uint64_t expected[] = {0, 3, 0, 1, 0};
  rstate_value values[] = {rstate_float(-0.0), rstate_int(INT64_MIN), rstate_bool(false), rstate_string(""),
                           {.kind = RSTATE_NONE}};
  rstate__wire_list_item list[] = {{"a", RSTATE_TYPE_FLOAT}, {"b.c", RSTATE_TYPE_MODULE}};
  rstate__wire_var vars[] = {{"a", RSTATE_TYPE_INTEGER, rstate_int(1), 2, 3}, {"s", RSTATE_TYPE_STRING, rstate_string("v"), 1, -1}};
  rstate__wire_stat stats[] = {{"clients", 2}, {"revision", 99}};
  rstate__wire_event events[] = {
      {RSTATE_EVENT_CHANGED, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.5), rstate_float(0.7), 4, 1700000000, 1},
      {RSTATE_EVENT_DEFINED, "n", RSTATE_TYPE_INTEGER, {.kind = RSTATE_NONE}, rstate_int(1), 1, 1700000000, 1},
      {RSTATE_EVENT_DELETED, "m", RSTATE_TYPE_CHOICE, rstate_string("x"), {.kind = RSTATE_NONE}, 7, 1700000000, 3},
      {RSTATE_EVENT_INITIAL, "i", RSTATE_TYPE_BOOLEAN, {.kind = RSTATE_NONE}, rstate_bool(true), 2, 5, 0}};

  rstate__wire_msg m[32];
  size_t n = 0;
#define ADD(t) (m[n].type = (t), &m[n++].u)
  ADD(RSTATE__WIRE_HELLO)->hello = (rstate__wire_hello){1, 500, "token", 0};
  ADD(RSTATE__WIRE_WELCOME)->welcome = (rstate__wire_welcome){1, 0xABCDEF, 1000, 7, 1 << 20, RSTATE__WIRE_READ_ONLY};
  ADD(RSTATE__WIRE_PING)->ping.payload = 1;
  ADD(RSTATE__WIRE_PONG)->ping.payload = 1;
  ADD(RSTATE__WIRE_ERROR)->error = (rstate__wire_error){3, RSTATE_ECONFLICT, "n: version 4, expected 3", 1};
  ADD(RSTATE__WIRE_OK)->req.req = 1;
  ADD(RSTATE__WIRE_STATS)->req.req = 2;
  ADD(RSTATE__WIRE_REVISION)->req.req = 3;
  ADD(RSTATE__WIRE_DEFINE)->define = (rstate__wire_define){
      4, {.name = "strategy", .type = RSTATE_TYPE_MODULE, .initial = rstate_string("Strategies.Default"),
          .constraints = &k, .description = "what runs"}};
  ADD(RSTATE__WIRE_UNDEFINE)->name = (rstate__wire_name){5, "model"};
  ADD(RSTATE__WIRE_GET)->name = (rstate__wire_name){6, "model"};
  ADD(RSTATE__WIRE_INFO)->name = (rstate__wire_name){7, "model"};
  ADD(RSTATE__WIRE_GET_MANY)->names = (rstate__wire_names){8, names, 2};
  ADD(RSTATE__WIRE_LIST)->names = (rstate__wire_names){9, NULL, 0};
  ADD(RSTATE__WIRE_SNAPSHOT)->names = (rstate__wire_names){10, names + 2, 1};
  ADD(RSTATE__WIRE_SET_MANY)->set_many =
      (rstate__wire_set_many){11, items, expected, 5, {.source = "python", .meta = meta, .n_meta = 2}};
  ADD(RSTATE__WIRE_WATCH)->watch = (rstate__wire_watch){12, 1, RSTATE__WIRE_WATCH_INITIAL, 40, names, 3};
  ADD(RSTATE__WIRE_UNWATCH)->unwatch = (rstate__wire_unwatch){13, 1};
  ADD(RSTATE__WIRE_GET_REPLY)->get_reply = (rstate__wire_get_reply){6, RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), 2, 5, 9};
  ADD(RSTATE__WIRE_SET_MANY_REPLY)->rev = (rstate__wire_rev){11, 44};
  ADD(RSTATE__WIRE_REVISION_REPLY)->rev = (rstate__wire_rev){3, 44};
  ADD(RSTATE__WIRE_INFO_REPLY)->info_reply = (rstate__wire_info_reply){7, {RSTATE_TYPE_CHOICE, 2, 5, 9}};
  ADD(RSTATE__WIRE_GET_MANY_PART)->values = (rstate__wire_values_part){8, 0, 44, values, 5};
  ADD(RSTATE__WIRE_LIST_PART)->list = (rstate__wire_list_part){9, RSTATE__WIRE_MORE, 44, list, 2};
  ADD(RSTATE__WIRE_SNAPSHOT_PART)->snapshot = (rstate__wire_snapshot_part){10, 0, 44, vars, 2};
  ADD(RSTATE__WIRE_WATCH_REPLY)->watch_reply = (rstate__wire_watch_reply){12, 1, RSTATE__WIRE_WATCH_GAP, 44, 2};
  ADD(RSTATE__WIRE_STATS_REPLY)->stats = (rstate__wire_stats_reply){2, stats, 2};
  ADD(RSTATE__WIRE_EVENT)->events = (rstate__wire_events){1, 45, 0, "python", meta, 2, events, 4};
#undef ADD

  rstate__wire_buf one, all;
  rstate__wire_buf_init(&one);
  rstate__wire_buf_init(&all);
  char name[64];
  for (size_t i = 0; i < n; i++) {
    one.len = 0;
    if (rstate__wire_encode(&one, &m[i]) != RSTATE_OK || rstate__wire_encode(&all, &m[i]) != RSTATE_OK) {
      fprintf(stderr, "encoding %s: %s\n", rstate__wire_type_name(m[i].type), rstate_last_error());
      return 1;
    }
    snprintf(name, sizeof name, "seed-%02zu-%s", i, rstate__wire_type_name(m[i].type));
    write_seed(argv[1], name, 0x07, &one); /* max_frame unlimited, feed() */
  }
  write_seed(argv[1], "seed-all-feed", 0x07, &all);
  write_seed(argv[1], "seed-all-zerocopy", 0x0F, &all);
  write_seed(argv[1], "seed-all-max300", 0x02, &all); /* some frames refused */
  rstate__wire_buf_free(&one);
  rstate__wire_buf_free(&all);
  printf("%zu frame types, %zu seeds written to %s\n", n, n + 3, argv[1]);
  return 0;
}
#endif
