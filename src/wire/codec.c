/*
 * codec.c — the message codecs: encoders and decoders of every frame body of
 * docs/PROTOCOL.md, and the frame table that maps each frame type to its
 * name, its sender and its body layout (wire.h, RSTATE__WIRE_FRAMES). Pure:
 * no I/O, no threads, no globals but constant tables, so it can be fed
 * anything (tests/test_wire.c, fuzz/fuzz_wire.c). Cutting bytes into frames
 * is framing.c's.
 *
 * Encoders write through a small writer with a sticky error (wr): the frame
 * is appended field by field and, on any failure, cut off again, so a
 * buffer never holds half a frame. Decoders read through a cursor with a
 * sticky error (rd) that never reads past the body: every length and count
 * is checked against the bytes that remain before it is used. Strings and
 * arrays go to a scratch buffer reserved once per decode from the body
 * length (scratch_bound), arrays from its front and NUL-terminated strings
 * from its back, so pointers handed out never move.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "wire.h"

/* ---- the frame table --------------------------------------------------- */

/* Scratch a body of len bytes of a layout may need for its arrays, beyond
 * its strings (scratch_bound); defined with the cursor below. */
typedef size_t (*arrays_fn)(size_t len);

/* One row per frame type (RSTATE__WIRE_FRAMES); a type without a row has no
 * name. Rows of one layout share its decoder and encoder. */
typedef struct frame_row {
  const char *name;
  uint8_t from; /* RSTATE__WIRE_FROM_CLIENT, _SERVER, or both bits */
  int (*decode)(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_msg *out);
  int (*encode)(rstate__wire_buf *b, const rstate__wire_msg *m);
  arrays_fn arrays; /* NULL: no arrays */
} frame_row;

static const frame_row *row_of(uint8_t type);

const char *rstate__wire_type_name(uint8_t type) {
  const frame_row *r = row_of(type);
  return r ? r->name : "unknown";
}

bool rstate__wire_type_known(uint8_t type) { return row_of(type) != NULL; }

bool rstate__wire_type_to_server(uint8_t type) {
  const frame_row *r = row_of(type);
  return r && (r->from & RSTATE__WIRE_FROM_CLIENT);
}

bool rstate__wire_type_to_client(uint8_t type) {
  const frame_row *r = row_of(type);
  return r && (r->from & RSTATE__WIRE_FROM_SERVER);
}

/* ---- the writer ---------------------------------------------------------- */

typedef struct wr {
  rstate__wire_buf *b;
  size_t mark; /* b->len before the frame */
  int err;
  const char *what;
} wr;

__attribute__((format(printf, 3, 4))) static void wr_fail(wr *w, int code, const char *fmt, ...) {
  if (w->err) return;
  va_list ap;
  va_start(ap, fmt);
  w->err = rstate__verr(code, fmt, ap);
  va_end(ap);
}

/* Every field goes through here: the room check is inline, the growth not. */
static inline void wr_bytes(wr *w, const void *p, size_t n) {
  if (w->err || n == 0) return;
  if (__builtin_expect(w->b->cap - w->b->len < n, 0) && rstate__wire_buf_reserve(w->b, n) != RSTATE_OK) {
    w->err = RSTATE_ENOMEM;
    return;
  }
  memcpy(w->b->data + w->b->len, p, n);
  w->b->len += n;
}

static void wr_u8(wr *w, uint8_t v) { wr_bytes(w, &v, 1); }

static void wr_u16(wr *w, uint16_t v) {
  uint8_t p[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  wr_bytes(w, p, 2);
}

static void wr_u32(wr *w, uint32_t v) {
  uint8_t p[4];
  rstate__wire_set_u32(p, v);
  wr_bytes(w, p, 4);
}

/* Little-endian on any host; on a little-endian one these compile to one
 * load or store. */
static inline void put_le64(uint8_t *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &v, 8);
#else
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
#endif
}

static inline uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(&v, p, 8);
#else
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
#endif
  return v;
}

static void wr_u64(wr *w, uint64_t v) {
  uint8_t p[8];
  put_le64(p, v);
  wr_bytes(w, p, 8);
}

static void wr_i64(wr *w, int64_t v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  wr_u64(w, u);
}

static void wr_begin(wr *w, rstate__wire_buf *b, uint8_t type) {
  w->b = b;
  w->mark = b->len;
  w->err = 0;
  w->what = rstate__wire_type_name(type);
  uint8_t hdr[RSTATE__WIRE_HEADER + 1] = {0, 0, 0, 0, type};
  wr_bytes(w, hdr, sizeof hdr);
}

/* Patches the length field; on any error cuts the frame off again. */
static int wr_end(wr *w) {
  if (!w->err) {
    size_t len = w->b->len - w->mark - RSTATE__WIRE_HEADER;
    if (len > UINT32_MAX)
      wr_fail(w, RSTATE_ELIMIT, "wire: %s: a frame of %zu bytes does not fit a 32-bit length", w->what, len);
    else if (w->b->limit && len > w->b->limit)
      wr_fail(w, RSTATE_ELIMIT,
              "wire: %s: a frame of %zu bytes is over the peer's limit of %" PRIu32 " bytes (max_frame)", w->what, len,
              w->b->limit);
    else
      rstate__wire_set_u32(w->b->data + w->mark, (uint32_t)len);
  }
  if (w->err) w->b->len = w->mark;
  return w->err;
}

static void wr_strn(wr *w, const char *s, size_t n, const char *field) {
  if (w->err) return;
  if (!s) {
    wr_fail(w, RSTATE_EINVAL, "wire: %s: %s is NULL", w->what, field);
    return;
  }
  if (n >= UINT32_MAX) {
    wr_fail(w, RSTATE_ELIMIT, "wire: %s: %s of %zu bytes is too long", w->what, field, n);
    return;
  }
  if (memchr(s, 0, n)) {
    wr_fail(w, RSTATE_EINVAL, "wire: %s: %s contains a NUL byte", w->what, field);
    return;
  }
  wr_u32(w, (uint32_t)n);
  wr_bytes(w, s, n);
}

static void wr_str(wr *w, const char *s, const char *field) { wr_strn(w, s, s ? strlen(s) : 0, field); }

/* An optional string: NULL is the length 0xFFFFFFFF and no bytes. */
static void wr_optstr(wr *w, const char *s, const char *field) {
  if (!s) {
    wr_u32(w, UINT32_MAX);
    return;
  }
  wr_str(w, s, field);
}

static void wr_value(wr *w, const rstate_value *v, const char *field) {
  if (w->err) return;
  if (!v) {
    wr_fail(w, RSTATE_EINVAL, "wire: %s: %s is NULL", w->what, field);
    return;
  }
  switch (v->kind) {
    case RSTATE_NONE:
      wr_u8(w, 0);
      return;
    case RSTATE_FLOAT: {
      uint64_t u;
      memcpy(&u, &v->u.f, 8);
      wr_u8(w, 1);
      wr_u64(w, u);
      return;
    }
    case RSTATE_INT:
      wr_u8(w, 2);
      wr_i64(w, v->u.i);
      return;
    case RSTATE_BOOL:
      wr_u8(w, 3);
      wr_u8(w, v->u.b ? 1 : 0);
      return;
    case RSTATE_STRING:
      wr_u8(w, 4);
      wr_strn(w, v->u.s.ptr, v->u.s.len, field);
      return;
  }
  wr_fail(w, RSTATE_EINVAL, "wire: %s: %s has the unknown value kind %d", w->what, field, (int)v->kind);
}

static void wr_type(wr *w, rstate_type t, const char *field) {
  if (t < RSTATE_TYPE_FLOAT || t > RSTATE_TYPE_MODULE) {
    wr_fail(w, RSTATE_EINVAL, "wire: %s: %s is the unknown variable type %d", w->what, field, (int)t);
    return;
  }
  wr_u8(w, (uint8_t)t);
}

static void wr_req(wr *w, uint32_t req) {
  if (req == 0) {
    wr_fail(w, RSTATE_EINVAL, "wire: %s: request id 0 is reserved", w->what);
    return;
  }
  wr_u32(w, req);
}

static void wr_count(wr *w, size_t n, const void *array, const char *field) {
  if (n > UINT32_MAX) {
    wr_fail(w, RSTATE_ELIMIT, "wire: %s: %zu %s is more than a frame holds", w->what, n, field);
    return;
  }
  if (n && !array) {
    wr_fail(w, RSTATE_EINVAL, "wire: %s: %s is NULL", w->what, field);
    return;
  }
  wr_u32(w, (uint32_t)n);
}

static void wr_strs(wr *w, const char *const *s, size_t n, const char *field) {
  wr_count(w, n, s, field);
  for (size_t i = 0; i < n && !w->err; i++) wr_str(w, s[i], field);
}

static void wr_meta(wr *w, const rstate_meta *meta, size_t n) {
  wr_count(w, n, meta, "meta");
  for (size_t i = 0; i < n && !w->err; i++) {
    wr_str(w, meta[i].key, "meta key");
    wr_str(w, meta[i].value, "meta value");
  }
}

static void wr_flags(wr *w, uint8_t flags, uint8_t allowed) {
  if (flags & ~allowed) {
    wr_fail(w, RSTATE_EINVAL, "wire: %s: flag bits 0x%02x are not defined", w->what, flags & ~allowed);
    return;
  }
  wr_u8(w, flags);
}

static int wr_bad_type(uint8_t type, const char *layout) {
  return rstate__err(RSTATE_EINVAL, "wire: frame type 0x%02x (%s) does not have the %s layout", type,
                     rstate__wire_type_name(type), layout);
}

/* ---- the decoding cursor and its scratch ----------------------------------- */

/* The fewest bytes one array element takes on the wire, by which every count
 * is checked against the bytes left, and the scratch bound computed. */
#define MIN_STR 4u                          /* u32 length */
#define MIN_VALUE 1u                        /* tag */
#define MIN_META (2u * MIN_STR)             /* key, value */
#define MIN_ITEM (MIN_STR + MIN_VALUE + 8u) /* SET_MANY: name, value, expected */
#define MIN_LIST_ITEM (MIN_STR + 1u)        /* name, type */
#define MIN_VAR (MIN_STR + 1u + MIN_VALUE + 8u + 8u)
#define MIN_STAT (MIN_STR + 8u)
#define MIN_EVENT (1u + MIN_STR + 1u + 2u * MIN_VALUE + 8u + 8u + 4u)
#define MIN_HENTRY (8u + 8u + 8u + MIN_VALUE + MIN_STR + 4u) /* HISTORY_PART: an entry */

/* Arrays are carved from the front of the scratch in multiples of ALIGN. */
#define ALIGN 8u

typedef struct rd {
  const uint8_t *p, *end, *start;
  uint8_t *front, *back; /* free scratch between them */
  int err;
  const char *what;
} rd;

__attribute__((format(printf, 3, 4))) static void rd_fail(rd *c, int code, const char *fmt, ...) {
  if (c->err) return;
  va_list ap;
  va_start(ap, fmt);
  c->err = rstate__verr(code, fmt, ap);
  va_end(ap);
}

static size_t rd_left(const rd *c) { return (size_t)(c->end - c->p); }

static bool rd_need(rd *c, size_t n, const char *field) {
  if (c->err) return false;
  if (rd_left(c) < n) {
    rd_fail(c, RSTATE_EPROTO, "wire: %s: truncated at %s: %zu bytes needed at offset %zu, %zu left", c->what, field, n,
            (size_t)(c->p - c->start), rd_left(c));
    return false;
  }
  return true;
}

static uint8_t rd_u8(rd *c, const char *field) {
  if (!rd_need(c, 1, field)) return 0;
  return *c->p++;
}

static uint16_t rd_u16(rd *c, const char *field) {
  if (!rd_need(c, 2, field)) return 0;
  uint16_t v = (uint16_t)(c->p[0] | c->p[1] << 8);
  c->p += 2;
  return v;
}

static uint32_t rd_u32(rd *c, const char *field) {
  if (!rd_need(c, 4, field)) return 0;
  uint32_t v = rstate__wire_get_u32(c->p);
  c->p += 4;
  return v;
}

static uint64_t rd_u64(rd *c, const char *field) {
  if (!rd_need(c, 8, field)) return 0;
  uint64_t v = get_le64(c->p);
  c->p += 8;
  return v;
}

static int64_t rd_i64(rd *c, const char *field) {
  uint64_t u = rd_u64(c, field);
  int64_t v;
  memcpy(&v, &u, 8);
  return v;
}

/* n elements of size bytes from the front of the scratch; NULL for n == 0
 * or on error. n has been checked against the body, so the bound holds. */
static void *rd_array(rd *c, size_t n, size_t size) {
  if (c->err || n == 0) return NULL;
  size_t bytes = (n * size + ALIGN - 1) / ALIGN * ALIGN;
  if (bytes > (size_t)(c->back - c->front)) {
    rd_fail(c, RSTATE_ENOMEM, "wire: %s: decode scratch bound exceeded (a bug in codec.c)", c->what);
    return NULL;
  }
  void *p = c->front;
  c->front += bytes;
  memset(p, 0, bytes);
  return p;
}

/* A NUL-terminated copy of the next n bytes, from the back of the scratch. */
static const char *rd_strn(rd *c, size_t n, const char *field) {
  if (!rd_need(c, n, field)) return NULL;
  if (memchr(c->p, 0, n)) {
    rd_fail(c, RSTATE_EPROTO, "wire: %s: %s contains a NUL byte", c->what, field);
    return NULL;
  }
  if (n + 1 > (size_t)(c->back - c->front)) {
    rd_fail(c, RSTATE_ENOMEM, "wire: %s: decode scratch bound exceeded (a bug in codec.c)", c->what);
    return NULL;
  }
  c->back -= n + 1;
  char *s = (char *)c->back;
  memcpy(s, c->p, n);
  s[n] = '\0';
  c->p += n;
  return s;
}

static const char *rd_str(rd *c, const char *field) {
  uint32_t n = rd_u32(c, field);
  return c->err ? NULL : rd_strn(c, n, field);
}

static const char *rd_optstr(rd *c, const char *field) {
  uint32_t n = rd_u32(c, field);
  if (c->err || n == UINT32_MAX) return NULL;
  return rd_strn(c, n, field);
}

/* A count of elements that take at least min bytes each. */
static size_t rd_count(rd *c, size_t min, const char *field) {
  uint32_t n = rd_u32(c, field);
  if (c->err) return 0;
  if (n > rd_left(c) / min) {
    rd_fail(c, RSTATE_EPROTO, "wire: %s: %" PRIu32 " %s cannot fit in the %zu bytes left", c->what, n, field,
            rd_left(c));
    return 0;
  }
  return n;
}

static void rd_value(rd *c, rstate_value *v, const char *field) {
  memset(v, 0, sizeof *v);
  uint8_t tag = rd_u8(c, field);
  if (c->err) return;
  switch (tag) {
    case 0:
      return;
    case 1: {
      uint64_t u = rd_u64(c, field);
      double d;
      memcpy(&d, &u, 8);
      v->kind = RSTATE_FLOAT;
      v->u.f = d;
      return;
    }
    case 2:
      v->kind = RSTATE_INT;
      v->u.i = rd_i64(c, field);
      return;
    case 3: {
      uint8_t b = rd_u8(c, field);
      if (b > 1) rd_fail(c, RSTATE_EPROTO, "wire: %s: %s: boolean byte %u is neither 0 nor 1", c->what, field, b);
      v->kind = RSTATE_BOOL;
      v->u.b = b == 1;
      return;
    }
    case 4: {
      uint32_t n = rd_u32(c, field);
      if (c->err) return;
      v->kind = RSTATE_STRING;
      v->u.s.ptr = rd_strn(c, n, field);
      v->u.s.len = n;
      return;
    }
  }
  rd_fail(c, RSTATE_EPROTO, "wire: %s: %s has the unknown value tag %u", c->what, field, tag);
}

static rstate_type rd_type(rd *c, const char *field) {
  uint8_t t = rd_u8(c, field);
  if (c->err) return (rstate_type)0;
  if (t < RSTATE_TYPE_FLOAT || t > RSTATE_TYPE_MODULE)
    rd_fail(c, RSTATE_EPROTO, "wire: %s: %s is the unknown variable type %u", c->what, field, t);
  return (rstate_type)t;
}

static uint32_t rd_req(rd *c) {
  uint32_t req = rd_u32(c, "request id");
  if (!c->err && req == 0) rd_fail(c, RSTATE_EPROTO, "wire: %s: request id 0 is reserved", c->what);
  return req;
}

static uint8_t rd_flags(rd *c, uint8_t allowed) {
  uint8_t f = rd_u8(c, "flags");
  if (!c->err && (f & ~allowed))
    rd_fail(c, RSTATE_EPROTO, "wire: %s: flag bits 0x%02x are not defined", c->what, (unsigned)(f & ~allowed));
  return f;
}

static const char *const *rd_strs(rd *c, size_t *n, const char *field) {
  *n = rd_count(c, MIN_STR, field);
  const char **s = rd_array(c, *n, sizeof *s);
  for (size_t i = 0; i < *n && !c->err; i++) s[i] = rd_str(c, field);
  return s;
}

static const rstate_meta *rd_meta(rd *c, size_t *n) {
  *n = rd_count(c, MIN_META, "meta pairs");
  rstate_meta *m = rd_array(c, *n, sizeof *m);
  for (size_t i = 0; i < *n && !c->err; i++) {
    m[i].key = rd_str(c, "meta key");
    m[i].value = rd_str(c, "meta value");
  }
  return m;
}

/* a + b and a * b, saturating at SIZE_MAX. */
static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }
static size_t sat_mul(size_t a, size_t b) { return b && a > SIZE_MAX / b ? SIZE_MAX : a * b; }
/* Scratch for up to len / min elements of size bytes, plus alignment. */
static size_t array_bound(size_t len, size_t min, size_t size) { return sat_add(sat_mul(len / min, size), ALIGN); }

/* Scratch for the arrays of each layout that has some (frame_row.arrays):
 * at most (len / its element's wire minimum) elements per array. */
static size_t arrays_define(size_t len) {
  return sat_add(sizeof(rstate_constraints) + ALIGN, array_bound(len, MIN_STR, sizeof(const char *)));
}
static size_t arrays_strs(size_t len) { return array_bound(len, MIN_STR, sizeof(const char *)); }
static size_t arrays_set_many(size_t len) {
  size_t b = array_bound(len, MIN_META, sizeof(rstate_meta));
  b = sat_add(b, array_bound(len, MIN_ITEM, sizeof(rstate_assign)));
  return sat_add(b, array_bound(len, MIN_ITEM, sizeof(uint64_t)));
}
static size_t arrays_values(size_t len) { return array_bound(len, MIN_VALUE, sizeof(rstate_value)); }
static size_t arrays_list(size_t len) { return array_bound(len, MIN_LIST_ITEM, sizeof(rstate__wire_list_item)); }
static size_t arrays_snapshot(size_t len) { return array_bound(len, MIN_VAR, sizeof(rstate__wire_var)); }
static size_t arrays_stats(size_t len) { return array_bound(len, MIN_STAT, sizeof(rstate__wire_stat)); }
static size_t arrays_events(size_t len) {
  return sat_add(array_bound(len, MIN_META, sizeof(rstate_meta)),
                 array_bound(len, MIN_EVENT, sizeof(rstate__wire_event)));
}

/* HISTORY_PART: the entries, and one meta array per entry, each rounded up
 * to ALIGN (at most ALIGN - 1 bytes more per pair it holds). */
static size_t arrays_hist(size_t len) {
  return sat_add(array_bound(len, MIN_HENTRY, sizeof(rstate_history_entry)),
                 array_bound(len, MIN_META, sizeof(rstate_meta) + ALIGN));
}
static size_t arrays_rollback(size_t len) { return array_bound(len, MIN_META, sizeof(rstate_meta)); }

/* The most scratch a body of len bytes of this type can use: every string
 * takes at most the bytes it takes on the wire (n + 1 <= 4 + n), and the
 * arrays what its layout says. */
static size_t scratch_bound(uint8_t type, size_t len) {
  size_t b = sat_add(len, 64);
  const frame_row *r = row_of(type);
  return r && r->arrays ? sat_add(b, r->arrays(len)) : b;
}

static const uint8_t empty_body[1];

/* Starts a decode of a body of type; with scratch, reserves the bound. */
static int rd_begin(rd *c, uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch, bool needs_scratch,
                    void *out, size_t out_size) {
  memset(c, 0, sizeof *c);
  c->what = rstate__wire_type_name(type);
  if (out) memset(out, 0, out_size);
  if (!out || (!body && len) || (needs_scratch && !scratch))
    return c->err = rstate__err(RSTATE_EINVAL, "wire: decoding %s: NULL argument", c->what);
  if (!body) body = empty_body;
  c->p = c->start = body;
  c->end = body + len;
  if (needs_scratch) {
    size_t bound = scratch_bound(type, len);
    if (bound > scratch->cap) {
      uint8_t *p = malloc(bound);
      if (!p)
        return c->err = rstate__err(RSTATE_ENOMEM, "wire: decoding %s: out of memory for %zu bytes", c->what, bound);
      free(scratch->data);
      scratch->data = p;
      scratch->cap = bound;
    }
    scratch->len = 0;
    c->front = scratch->data;
    c->back = scratch->data + bound;
  }
  return RSTATE_OK;
}

/* Ends a decode: trailing bytes are an error; on error *out is zeroed. */
static int rd_end(rd *c, bool exact, void *out, size_t out_size) {
  if (!c->err && exact && c->p != c->end)
    rd_fail(c, RSTATE_EPROTO, "wire: %s: %zu trailing bytes after the last field", c->what, rd_left(c));
  if (c->err) memset(out, 0, out_size);
  return c->err;
}

#define RD_BEGIN(type, scratch, needs)                                               \
  rd c;                                                                              \
  do {                                                                               \
    int rc_ = rd_begin(&c, (type), body, len, (scratch), (needs), out, sizeof *out); \
    if (rc_) return rc_;                                                             \
  } while (0)
#define RD_END() rd_end(&c, true, out, sizeof *out)

/* ---- handshake, heartbeat, errors ---------------------------------------- */

int rstate__wire_put_hello(rstate__wire_buf *b, const rstate__wire_hello *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_HELLO);
  if (!m)
    wr_fail(&w, RSTATE_EINVAL, "wire: HELLO: NULL message");
  else if (m->version == 0)
    wr_fail(&w, RSTATE_EINVAL, "wire: HELLO: version 0 does not exist");
  wr_bytes(&w, RSTATE__WIRE_MAGIC, RSTATE__WIRE_MAGIC_LEN);
  if (!w.err) {
    wr_u16(&w, m->version);
    wr_u32(&w, m->heartbeat_ms);
    wr_str(&w, m->token ? m->token : "", "token");
    wr_u8(&w, m->flags);
  }
  return wr_end(&w);
}

int rstate__wire_decode_hello(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_hello *out) {
  RD_BEGIN(RSTATE__WIRE_HELLO, scratch, true);
  if (rd_need(&c, RSTATE__WIRE_MAGIC_LEN, "magic")) {
    if (memcmp(c.p, RSTATE__WIRE_MAGIC, RSTATE__WIRE_MAGIC_LEN) != 0)
      rd_fail(&c, RSTATE_EPROTO, "wire: HELLO: bad magic: the peer does not speak this protocol");
    c.p += RSTATE__WIRE_MAGIC_LEN;
  }
  out->version = rd_u16(&c, "version");
  if (!c.err && out->version == 0) rd_fail(&c, RSTATE_EPROTO, "wire: HELLO: version 0 does not exist");
  out->heartbeat_ms = rd_u32(&c, "heartbeat_ms");
  out->token = rd_str(&c, "token");
  out->flags = rd_u8(&c, "flags");
  /* Later versions may append fields: HELLO alone tolerates trailing bytes. */
  return rd_end(&c, false, out, sizeof *out);
}

int rstate__wire_put_welcome(rstate__wire_buf *b, const rstate__wire_welcome *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_WELCOME);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: WELCOME: NULL message"), wr_end(&w);
  if (m->version == 0) wr_fail(&w, RSTATE_EINVAL, "wire: WELCOME: version 0 does not exist");
  if (m->heartbeat_ms == 0) wr_fail(&w, RSTATE_EINVAL, "wire: WELCOME: heartbeat_ms is 0");
  if (m->max_frame < RSTATE__WIRE_MIN_MAX_FRAME)
    wr_fail(&w, RSTATE_EINVAL, "wire: WELCOME: max_frame %" PRIu32 " is below the minimum %u", m->max_frame,
            RSTATE__WIRE_MIN_MAX_FRAME);
  if (m->access != RSTATE__WIRE_READ_WRITE && m->access != RSTATE__WIRE_READ_ONLY)
    wr_fail(&w, RSTATE_EINVAL, "wire: WELCOME: unknown access %u", m->access);
  wr_u16(&w, m->version);
  wr_u64(&w, m->instance_id);
  wr_u32(&w, m->heartbeat_ms);
  wr_u64(&w, m->revision);
  wr_u32(&w, m->max_frame);
  wr_u8(&w, m->access);
  return wr_end(&w);
}

int rstate__wire_decode_welcome(const uint8_t *body, size_t len, rstate__wire_welcome *out) {
  RD_BEGIN(RSTATE__WIRE_WELCOME, NULL, false);
  out->version = rd_u16(&c, "version");
  if (!c.err && out->version == 0) rd_fail(&c, RSTATE_EPROTO, "wire: WELCOME: version 0 does not exist");
  out->instance_id = rd_u64(&c, "instance id");
  out->heartbeat_ms = rd_u32(&c, "heartbeat_ms");
  if (!c.err && out->heartbeat_ms == 0) rd_fail(&c, RSTATE_EPROTO, "wire: WELCOME: heartbeat_ms is 0");
  out->revision = rd_u64(&c, "revision");
  out->max_frame = rd_u32(&c, "max_frame");
  if (!c.err && out->max_frame < RSTATE__WIRE_MIN_MAX_FRAME)
    rd_fail(&c, RSTATE_EPROTO, "wire: WELCOME: max_frame %" PRIu32 " is below the minimum %u", out->max_frame,
            RSTATE__WIRE_MIN_MAX_FRAME);
  out->access = rd_u8(&c, "access");
  if (!c.err && out->access != RSTATE__WIRE_READ_WRITE && out->access != RSTATE__WIRE_READ_ONLY)
    rd_fail(&c, RSTATE_EPROTO, "wire: WELCOME: unknown access %u", out->access);
  return RD_END();
}

int rstate__wire_put_ping(rstate__wire_buf *b, uint8_t type, uint64_t payload) {
  if (type != RSTATE__WIRE_PING && type != RSTATE__WIRE_PONG) return wr_bad_type(type, "PING");
  wr w;
  wr_begin(&w, b, type);
  wr_u64(&w, payload);
  return wr_end(&w);
}

int rstate__wire_decode_ping(uint8_t type, const uint8_t *body, size_t len, rstate__wire_ping *out) {
  RD_BEGIN(type, NULL, false);
  out->payload = rd_u64(&c, "payload");
  return RD_END();
}

int rstate__wire_put_error(rstate__wire_buf *b, const rstate__wire_error *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_ERROR);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: ERROR: NULL message"), wr_end(&w);
  if (m->code >= 0) wr_fail(&w, RSTATE_EINVAL, "wire: ERROR: code %" PRId32 " is not an error", m->code);
  wr_u32(&w, m->req); /* 0 allowed: the connection failed */
  wr_u32(&w, (uint32_t)m->code);
  wr_str(&w, m->sentence ? m->sentence : "", "sentence");
  wr_u64(&w, m->failed_index);
  return wr_end(&w);
}

int rstate__wire_decode_error(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_error *out) {
  RD_BEGIN(RSTATE__WIRE_ERROR, scratch, true);
  out->req = rd_u32(&c, "request id");
  uint32_t code = rd_u32(&c, "code");
  memcpy(&out->code, &code, 4);
  if (!c.err && out->code >= 0) rd_fail(&c, RSTATE_EPROTO, "wire: ERROR: code %" PRId32 " is not an error", out->code);
  out->sentence = rd_str(&c, "sentence");
  out->failed_index = rd_u64(&c, "failed_index");
  return RD_END();
}

/* Whether a frame type has the layout whose any-frame decoder is dec. */
typedef int (*decode_fn)(uint8_t, const uint8_t *, size_t, rstate__wire_buf *, rstate__wire_msg *);
static bool has_layout(uint8_t type, decode_fn dec) {
  const frame_row *r = row_of(type);
  return r && r->decode == dec;
}
static int dec_req(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_msg *out);
static int dec_name(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_msg *out);
static int dec_names(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_msg *out);
static int dec_rev(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_msg *out);
static int dec_ping(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_msg *out);

int rstate__wire_put_req(rstate__wire_buf *b, uint8_t type, uint32_t req) {
  if (!has_layout(type, dec_req)) return wr_bad_type(type, "OK");
  wr w;
  wr_begin(&w, b, type);
  wr_req(&w, req);
  return wr_end(&w);
}

int rstate__wire_decode_req(uint8_t type, const uint8_t *body, size_t len, rstate__wire_req *out) {
  RD_BEGIN(type, NULL, false);
  out->req = rd_req(&c);
  return RD_END();
}

/* ---- requests ------------------------------------------------------------- */

int rstate__wire_put_define(rstate__wire_buf *b, const rstate__wire_define *m) {
  static const rstate_constraints none;
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_DEFINE);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: DEFINE: NULL message"), wr_end(&w);
  const rstate_var_def *d = &m->def;
  const rstate_constraints *k = d->constraints ? d->constraints : &none;
  wr_req(&w, m->req);
  wr_str(&w, d->name, "name");
  wr_type(&w, d->type, "type");
  wr_value(&w, &d->initial, "initial");
  wr_value(&w, &k->min, "min");
  wr_value(&w, &k->max, "max");
  wr_u64(&w, (uint64_t)k->min_length);
  wr_u64(&w, (uint64_t)k->max_length);
  wr_strs(&w, k->choices, k->n_choices, "choices");
  wr_optstr(&w, k->module_namespace, "namespace");
  wr_optstr(&w, k->pattern, "pattern");
  wr_optstr(&w, d->description, "description");
  return wr_end(&w);
}

static size_t rd_size(rd *c, const char *field) {
  uint64_t v = rd_u64(c, field);
#if SIZE_MAX < UINT64_MAX
  if (!c->err && v > SIZE_MAX)
    rd_fail(c, RSTATE_EPROTO, "wire: %s: %s does not fit this machine's size_t", c->what, field);
#endif
  return (size_t)v;
}

int rstate__wire_decode_define(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_define *out) {
  RD_BEGIN(RSTATE__WIRE_DEFINE, scratch, true);
  rstate_var_def *d = &out->def;
  rstate_constraints *k = rd_array(&c, 1, sizeof *k);
  out->req = rd_req(&c);
  d->name = rd_str(&c, "name");
  d->type = rd_type(&c, "type");
  rd_value(&c, &d->initial, "initial");
  if (k) {
    rd_value(&c, &k->min, "min");
    rd_value(&c, &k->max, "max");
    k->min_length = rd_size(&c, "min_length");
    k->max_length = rd_size(&c, "max_length");
    k->choices = rd_strs(&c, &k->n_choices, "choices");
    k->module_namespace = rd_optstr(&c, "namespace");
    k->pattern = rd_optstr(&c, "pattern");
  }
  d->description = rd_optstr(&c, "description");
  d->constraints = k;
  return RD_END();
}

int rstate__wire_put_name(rstate__wire_buf *b, uint8_t type, const rstate__wire_name *m) {
  if (!has_layout(type, dec_name)) return wr_bad_type(type, "GET");
  wr w;
  wr_begin(&w, b, type);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: %s: NULL message", w.what), wr_end(&w);
  wr_req(&w, m->req);
  wr_str(&w, m->name, "name");
  return wr_end(&w);
}

int rstate__wire_decode_name(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                             rstate__wire_name *out) {
  RD_BEGIN(type, scratch, true);
  out->req = rd_req(&c);
  out->name = rd_str(&c, "name");
  return RD_END();
}

int rstate__wire_put_names(rstate__wire_buf *b, uint8_t type, const rstate__wire_names *m) {
  if (!has_layout(type, dec_names)) return wr_bad_type(type, "GET_MANY");
  wr w;
  wr_begin(&w, b, type);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: %s: NULL message", w.what), wr_end(&w);
  wr_req(&w, m->req);
  wr_strs(&w, m->names, m->n, type == RSTATE__WIRE_GET_MANY ? "names" : "patterns");
  return wr_end(&w);
}

int rstate__wire_decode_names(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                              rstate__wire_names *out) {
  RD_BEGIN(type, scratch, true);
  out->req = rd_req(&c);
  out->names = rd_strs(&c, &out->n, type == RSTATE__WIRE_GET_MANY ? "names" : "patterns");
  return RD_END();
}

int rstate__wire_put_set_many(rstate__wire_buf *b, const rstate__wire_set_many *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_SET_MANY);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: SET_MANY: NULL message"), wr_end(&w);
  wr_req(&w, m->req);
  wr_optstr(&w, m->opts.source, "source");
  wr_meta(&w, m->opts.meta, m->opts.n_meta);
  wr_count(&w, m->n, m->items, "items");
  for (size_t i = 0; i < m->n && !w.err; i++) {
    wr_str(&w, m->items[i].name, "item name");
    wr_value(&w, &m->items[i].value, "item value");
    wr_u64(&w, m->expected ? m->expected[i] : 0);
  }
  return wr_end(&w);
}

int rstate__wire_decode_set_many(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                 rstate__wire_set_many *out) {
  RD_BEGIN(RSTATE__WIRE_SET_MANY, scratch, true);
  out->req = rd_req(&c);
  out->opts.source = rd_optstr(&c, "source");
  out->opts.meta = rd_meta(&c, &out->opts.n_meta);
  out->n = rd_count(&c, MIN_ITEM, "items");
  rstate_assign *items = rd_array(&c, out->n, sizeof *items);
  uint64_t *expected = rd_array(&c, out->n, sizeof *expected);
  for (size_t i = 0; i < out->n && !c.err; i++) {
    items[i].name = rd_str(&c, "item name");
    rd_value(&c, &items[i].value, "item value");
    expected[i] = rd_u64(&c, "expected version");
  }
  out->items = items;
  out->expected = expected;
  return RD_END();
}

int rstate__wire_put_watch(rstate__wire_buf *b, const rstate__wire_watch *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_WATCH);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: WATCH: NULL message"), wr_end(&w);
  wr_req(&w, m->req);
  wr_u64(&w, m->sub);
  wr_flags(&w, m->flags, RSTATE__WIRE_WATCH_INITIAL);
  wr_u64(&w, m->resume_after);
  wr_strs(&w, m->patterns, m->n, "patterns");
  return wr_end(&w);
}

int rstate__wire_decode_watch(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_watch *out) {
  RD_BEGIN(RSTATE__WIRE_WATCH, scratch, true);
  out->req = rd_req(&c);
  out->sub = rd_u64(&c, "subscription id");
  out->flags = rd_flags(&c, RSTATE__WIRE_WATCH_INITIAL);
  out->resume_after = rd_u64(&c, "resume_after");
  out->patterns = rd_strs(&c, &out->n, "patterns");
  return RD_END();
}

int rstate__wire_put_unwatch(rstate__wire_buf *b, const rstate__wire_unwatch *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_UNWATCH);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: UNWATCH: NULL message"), wr_end(&w);
  wr_req(&w, m->req);
  wr_u64(&w, m->sub);
  return wr_end(&w);
}

int rstate__wire_decode_unwatch(const uint8_t *body, size_t len, rstate__wire_unwatch *out) {
  RD_BEGIN(RSTATE__WIRE_UNWATCH, NULL, false);
  out->req = rd_req(&c);
  out->sub = rd_u64(&c, "subscription id");
  return RD_END();
}

/* ---- replies ------------------------------------------------------------- */

int rstate__wire_put_get_reply(rstate__wire_buf *b, const rstate__wire_get_reply *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_GET_REPLY);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: GET_REPLY: NULL message"), wr_end(&w);
  wr_req(&w, m->req);
  wr_type(&w, m->type, "type");
  wr_value(&w, &m->value, "value");
  wr_u64(&w, m->version);
  wr_u64(&w, m->revision);
  wr_i64(&w, m->updated_ns);
  return wr_end(&w);
}

int rstate__wire_decode_get_reply(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                  rstate__wire_get_reply *out) {
  RD_BEGIN(RSTATE__WIRE_GET_REPLY, scratch, true);
  out->req = rd_req(&c);
  out->type = rd_type(&c, "type");
  rd_value(&c, &out->value, "value");
  out->version = rd_u64(&c, "version");
  out->revision = rd_u64(&c, "revision");
  out->updated_ns = rd_i64(&c, "updated_ns");
  return RD_END();
}

int rstate__wire_put_rev(rstate__wire_buf *b, uint8_t type, const rstate__wire_rev *m) {
  if (!has_layout(type, dec_rev)) return wr_bad_type(type, "REVISION_REPLY");
  wr w;
  wr_begin(&w, b, type);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: %s: NULL message", w.what), wr_end(&w);
  wr_req(&w, m->req);
  wr_u64(&w, m->revision);
  return wr_end(&w);
}

int rstate__wire_decode_rev(uint8_t type, const uint8_t *body, size_t len, rstate__wire_rev *out) {
  RD_BEGIN(type, NULL, false);
  out->req = rd_req(&c);
  out->revision = rd_u64(&c, "revision");
  return RD_END();
}

int rstate__wire_put_info_reply(rstate__wire_buf *b, const rstate__wire_info_reply *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_INFO_REPLY);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: INFO_REPLY: NULL message"), wr_end(&w);
  wr_req(&w, m->req);
  wr_type(&w, m->info.type, "type");
  wr_u64(&w, m->info.version);
  wr_u64(&w, m->info.revision);
  wr_i64(&w, m->info.updated_ns);
  return wr_end(&w);
}

int rstate__wire_decode_info_reply(const uint8_t *body, size_t len, rstate__wire_info_reply *out) {
  RD_BEGIN(RSTATE__WIRE_INFO_REPLY, NULL, false);
  out->req = rd_req(&c);
  out->info.type = rd_type(&c, "type");
  out->info.version = rd_u64(&c, "version");
  out->info.revision = rd_u64(&c, "revision");
  out->info.updated_ns = rd_i64(&c, "updated_ns");
  return RD_END();
}

int rstate__wire_put_watch_reply(rstate__wire_buf *b, const rstate__wire_watch_reply *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_WATCH_REPLY);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: WATCH_REPLY: NULL message"), wr_end(&w);
  if (m->status > RSTATE__WIRE_WATCH_GAP) wr_fail(&w, RSTATE_EINVAL, "wire: WATCH_REPLY: unknown status %u", m->status);
  wr_req(&w, m->req);
  wr_u64(&w, m->sub);
  wr_u8(&w, m->status);
  wr_u64(&w, m->revision);
  wr_u64(&w, m->n_initial);
  return wr_end(&w);
}

int rstate__wire_decode_watch_reply(const uint8_t *body, size_t len, rstate__wire_watch_reply *out) {
  RD_BEGIN(RSTATE__WIRE_WATCH_REPLY, NULL, false);
  out->req = rd_req(&c);
  out->sub = rd_u64(&c, "subscription id");
  out->status = rd_u8(&c, "status");
  if (!c.err && out->status > RSTATE__WIRE_WATCH_GAP)
    rd_fail(&c, RSTATE_EPROTO, "wire: WATCH_REPLY: unknown status %u", out->status);
  out->revision = rd_u64(&c, "revision");
  out->n_initial = rd_u64(&c, "n_initial");
  return RD_END();
}

int rstate__wire_put_stats_reply(rstate__wire_buf *b, const rstate__wire_stats_reply *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_STATS_REPLY);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: STATS_REPLY: NULL message"), wr_end(&w);
  wr_req(&w, m->req);
  wr_count(&w, m->n, m->stats, "stats");
  for (size_t i = 0; i < m->n && !w.err; i++) {
    wr_str(&w, m->stats[i].key, "stat key");
    wr_u64(&w, m->stats[i].value);
  }
  return wr_end(&w);
}

int rstate__wire_decode_stats_reply(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                    rstate__wire_stats_reply *out) {
  RD_BEGIN(RSTATE__WIRE_STATS_REPLY, scratch, true);
  out->req = rd_req(&c);
  out->n = rd_count(&c, MIN_STAT, "stats");
  rstate__wire_stat *s = rd_array(&c, out->n, sizeof *s);
  for (size_t i = 0; i < out->n && !c.err; i++) {
    s[i].key = rd_str(&c, "stat key");
    s[i].value = rd_u64(&c, "stat value");
  }
  out->stats = s;
  return RD_END();
}

/* ---- parts: GET_MANY_PART, LIST_PART, SNAPSHOT_PART -------------------------- */

/* Writes item i of a part's array. */
typedef void (*item_fn)(wr *w, const void *items, size_t i);

static void item_value(wr *w, const void *items, size_t i) { wr_value(w, &((const rstate_value *)items)[i], "value"); }

static void item_list(wr *w, const void *items, size_t i) {
  const rstate__wire_list_item *it = &((const rstate__wire_list_item *)items)[i];
  wr_str(w, it->name, "name");
  wr_type(w, it->type, "type");
}

static void item_var(wr *w, const void *items, size_t i) {
  const rstate__wire_var *v = &((const rstate__wire_var *)items)[i];
  wr_str(w, v->name, "name");
  wr_type(w, v->type, "type");
  wr_value(w, &v->value, "value");
  wr_u64(w, v->version);
  wr_i64(w, v->updated_ns);
}

static void item_event(wr *w, const void *items, size_t i) {
  const rstate__wire_event *e = &((const rstate__wire_event *)items)[i];
  if (e->kind < RSTATE_EVENT_INITIAL || e->kind > RSTATE_EVENT_DELETED) {
    wr_fail(w, RSTATE_EINVAL, "wire: EVENT: event kind %d does not travel", (int)e->kind);
    return;
  }
  wr_u8(w, (uint8_t)e->kind);
  wr_str(w, e->name, "name");
  wr_type(w, e->type, "type");
  wr_value(w, &e->old_value, "old value");
  wr_value(w, &e->new_value, "new value");
  wr_u64(w, e->version);
  wr_i64(w, e->timestamp_ns);
  wr_u32(w, e->coalesced);
}

/* The header of a part (or of an EVENT frame) before its item count. */
typedef struct part_head {
  uint8_t type;
  uint32_t req; /* parts */
  uint64_t sub; /* EVENT */
  uint64_t revision;
  uint8_t flags;
  const char *source;      /* EVENT */
  const rstate_meta *meta; /* EVENT */
  size_t n_meta;
  uint8_t last_flags; /* split: the last frame's flags (0, or MORE for an EVENT group that goes on) */
} part_head;

/* Begins a frame and writes the header; *flags_at and *count_at get the
 * offsets to patch. */
static void part_begin(wr *w, rstate__wire_buf *b, const part_head *h, size_t *flags_at, size_t *count_at) {
  wr_begin(w, b, h->type);
  if (h->type == RSTATE__WIRE_EVENT) {
    wr_u64(w, h->sub);
    wr_u64(w, h->revision);
    *flags_at = b->len;
    wr_flags(w, h->flags, RSTATE__WIRE_MORE);
    wr_optstr(w, h->source, "source");
    wr_meta(w, h->meta, h->n_meta);
  } else {
    wr_req(w, h->req);
    *flags_at = b->len;
    wr_flags(w, h->flags, RSTATE__WIRE_MORE);
    wr_u64(w, h->revision);
  }
  *count_at = b->len;
  wr_u32(w, 0);
}

/*
 * Writes items [0, n) in one frame with h->flags, or (split) in as many
 * frames as it takes to keep each length field within max_frame (0: no
 * limit), flags MORE on every frame but the last, which gets h->last_flags.
 * All or nothing.
 */
static int put_parts(rstate__wire_buf *b, const part_head *h, const void *items, size_t n, item_fn fn,
                     uint32_t max_frame, bool split, size_t *frames) {
  size_t mark = b->len, nframes = 0, i = 0;
  if (frames) *frames = 0;
  if (n && !items) return rstate__err(RSTATE_EINVAL, "wire: %s: items are NULL", rstate__wire_type_name(h->type));
  if (!split && n > UINT32_MAX)
    return rstate__err(RSTATE_ELIMIT, "wire: %s: %zu items is more than a frame holds", rstate__wire_type_name(h->type),
                       n);
  do {
    wr w;
    size_t flags_at = 0, count_at = 0, k = 0;
    part_begin(&w, b, h, &flags_at, &count_at);
    while (i < n && !w.err && k < UINT32_MAX) {
      size_t before = b->len;
      fn(&w, items, i);
      if (w.err) break;
      if (split && max_frame && k > 0 && b->len - w.mark - RSTATE__WIRE_HEADER > max_frame) {
        b->len = before; /* does not fit: it opens the next frame */
        break;
      }
      k++;
      i++;
    }
    if (!w.err) {
      if (split) b->data[flags_at] = i < n ? RSTATE__WIRE_MORE : h->last_flags;
      rstate__wire_set_u32(b->data + count_at, (uint32_t)k);
    }
    int rc = wr_end(&w);
    if (rc) {
      b->len = mark;
      return rc;
    }
    nframes++;
  } while (i < n);
  if (frames) *frames = nframes;
  return RSTATE_OK;
}

int rstate__wire_put_values_part(rstate__wire_buf *b, const rstate__wire_values_part *m) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: GET_MANY_PART: NULL message");
  part_head h = {.type = RSTATE__WIRE_GET_MANY_PART, .req = m->req, .revision = m->revision, .flags = m->flags};
  return put_parts(b, &h, m->values, m->n, item_value, 0, false, NULL);
}

int rstate__wire_put_values_parts(rstate__wire_buf *b, const rstate__wire_values_part *m, uint32_t max_frame,
                                  size_t *frames) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: GET_MANY_PART: NULL message");
  part_head h = {.type = RSTATE__WIRE_GET_MANY_PART, .req = m->req, .revision = m->revision};
  return put_parts(b, &h, m->values, m->n, item_value, max_frame, true, frames);
}

int rstate__wire_decode_values_part(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                    rstate__wire_values_part *out) {
  RD_BEGIN(RSTATE__WIRE_GET_MANY_PART, scratch, true);
  out->req = rd_req(&c);
  out->flags = rd_flags(&c, RSTATE__WIRE_MORE);
  out->revision = rd_u64(&c, "revision");
  out->n = rd_count(&c, MIN_VALUE, "values");
  rstate_value *v = rd_array(&c, out->n, sizeof *v);
  for (size_t i = 0; i < out->n && !c.err; i++) rd_value(&c, &v[i], "value");
  out->values = v;
  return RD_END();
}

int rstate__wire_put_list_part(rstate__wire_buf *b, const rstate__wire_list_part *m) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: LIST_PART: NULL message");
  part_head h = {.type = RSTATE__WIRE_LIST_PART, .req = m->req, .revision = m->revision, .flags = m->flags};
  return put_parts(b, &h, m->items, m->n, item_list, 0, false, NULL);
}

int rstate__wire_put_list_parts(rstate__wire_buf *b, const rstate__wire_list_part *m, uint32_t max_frame,
                                size_t *frames) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: LIST_PART: NULL message");
  part_head h = {.type = RSTATE__WIRE_LIST_PART, .req = m->req, .revision = m->revision};
  return put_parts(b, &h, m->items, m->n, item_list, max_frame, true, frames);
}

int rstate__wire_decode_list_part(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                  rstate__wire_list_part *out) {
  RD_BEGIN(RSTATE__WIRE_LIST_PART, scratch, true);
  out->req = rd_req(&c);
  out->flags = rd_flags(&c, RSTATE__WIRE_MORE);
  out->revision = rd_u64(&c, "revision");
  out->n = rd_count(&c, MIN_LIST_ITEM, "items");
  rstate__wire_list_item *it = rd_array(&c, out->n, sizeof *it);
  for (size_t i = 0; i < out->n && !c.err; i++) {
    it[i].name = rd_str(&c, "name");
    it[i].type = rd_type(&c, "type");
  }
  out->items = it;
  return RD_END();
}

int rstate__wire_put_snapshot_part(rstate__wire_buf *b, const rstate__wire_snapshot_part *m) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: SNAPSHOT_PART: NULL message");
  part_head h = {.type = RSTATE__WIRE_SNAPSHOT_PART, .req = m->req, .revision = m->revision, .flags = m->flags};
  return put_parts(b, &h, m->vars, m->n, item_var, 0, false, NULL);
}

int rstate__wire_put_snapshot_parts(rstate__wire_buf *b, const rstate__wire_snapshot_part *m, uint32_t max_frame,
                                    size_t *frames) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: SNAPSHOT_PART: NULL message");
  part_head h = {.type = RSTATE__WIRE_SNAPSHOT_PART, .req = m->req, .revision = m->revision};
  return put_parts(b, &h, m->vars, m->n, item_var, max_frame, true, frames);
}

int rstate__wire_decode_snapshot_part(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                      rstate__wire_snapshot_part *out) {
  RD_BEGIN(RSTATE__WIRE_SNAPSHOT_PART, scratch, true);
  out->req = rd_req(&c);
  out->flags = rd_flags(&c, RSTATE__WIRE_MORE);
  out->revision = rd_u64(&c, "revision");
  out->n = rd_count(&c, MIN_VAR, "variables");
  rstate__wire_var *v = rd_array(&c, out->n, sizeof *v);
  for (size_t i = 0; i < out->n && !c.err; i++) {
    v[i].name = rd_str(&c, "name");
    v[i].type = rd_type(&c, "type");
    rd_value(&c, &v[i].value, "value");
    v[i].version = rd_u64(&c, "version");
    v[i].updated_ns = rd_i64(&c, "updated_ns");
  }
  out->vars = v;
  return RD_END();
}

/* ---- events -------------------------------------------------------------- */

static int events_head(const rstate__wire_events *m, part_head *h) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: EVENT: NULL message");
  if (m->n == 0) return rstate__err(RSTATE_EINVAL, "wire: EVENT: an EVENT frame holds at least one event");
  *h = (part_head){.type = RSTATE__WIRE_EVENT,
                   .sub = m->sub,
                   .revision = m->revision,
                   .flags = m->flags,
                   .source = m->source,
                   .meta = m->meta,
                   .n_meta = m->n_meta};
  return RSTATE_OK;
}

int rstate__wire_put_events(rstate__wire_buf *b, const rstate__wire_events *m) {
  part_head h;
  int rc = events_head(m, &h);
  if (rc) return rc;
  return put_parts(b, &h, m->events, m->n, item_event, 0, false, NULL);
}

int rstate__wire_put_events_split(rstate__wire_buf *b, const rstate__wire_events *m, uint32_t max_frame,
                                  size_t *frames) {
  part_head h;
  if (frames) *frames = 0;
  int rc = events_head(m, &h);
  if (rc) return rc;
  if (m->flags & ~RSTATE__WIRE_MORE)
    return rstate__err(RSTATE_EINVAL, "wire: EVENT: flag bits 0x%02x are not defined", m->flags & ~RSTATE__WIRE_MORE);
  h.flags = 0;
  h.last_flags = m->flags;
  return put_parts(b, &h, m->events, m->n, item_event, max_frame, true, frames);
}

int rstate__wire_decode_events(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_events *out) {
  RD_BEGIN(RSTATE__WIRE_EVENT, scratch, true);
  out->sub = rd_u64(&c, "subscription id");
  out->revision = rd_u64(&c, "revision");
  out->flags = rd_flags(&c, RSTATE__WIRE_MORE);
  out->source = rd_optstr(&c, "source");
  out->meta = rd_meta(&c, &out->n_meta);
  out->n = rd_count(&c, MIN_EVENT, "events");
  if (!c.err && out->n == 0) rd_fail(&c, RSTATE_EPROTO, "wire: EVENT: an EVENT frame holds at least one event");
  rstate__wire_event *e = rd_array(&c, out->n, sizeof *e);
  for (size_t i = 0; i < out->n && !c.err; i++) {
    uint8_t kind = rd_u8(&c, "event kind");
    if (!c.err && (kind < RSTATE_EVENT_INITIAL || kind > RSTATE_EVENT_DELETED))
      rd_fail(&c, RSTATE_EPROTO, "wire: EVENT: unknown event kind %u", kind);
    e[i].kind = (rstate_event_kind)kind;
    e[i].name = rd_str(&c, "name");
    e[i].type = rd_type(&c, "type");
    rd_value(&c, &e[i].old_value, "old value");
    rd_value(&c, &e[i].new_value, "new value");
    e[i].version = rd_u64(&c, "version");
    e[i].timestamp_ns = rd_i64(&c, "timestamp_ns");
    e[i].coalesced = rd_u32(&c, "coalesced");
  }
  out->events = e;
  return RD_END();
}

/* ---- history (version 2): HISTORY, ROLLBACK, HISTORY_PART ----------------- */

int rstate__wire_put_history(rstate__wire_buf *b, const rstate__wire_history *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_HISTORY);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: HISTORY: NULL message"), wr_end(&w);
  wr_req(&w, m->req);
  wr_str(&w, m->name, "name");
  wr_u64(&w, m->after_version);
  return wr_end(&w);
}

int rstate__wire_decode_history(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_history *out) {
  RD_BEGIN(RSTATE__WIRE_HISTORY, scratch, true);
  out->req = rd_req(&c);
  out->name = rd_str(&c, "name");
  out->after_version = rd_u64(&c, "after_version");
  return RD_END();
}

int rstate__wire_put_rollback(rstate__wire_buf *b, const rstate__wire_rollback *m) {
  wr w;
  wr_begin(&w, b, RSTATE__WIRE_ROLLBACK);
  if (!m) return wr_fail(&w, RSTATE_EINVAL, "wire: ROLLBACK: NULL message"), wr_end(&w);
  wr_req(&w, m->req);
  wr_str(&w, m->name, "name");
  wr_u64(&w, m->version);
  wr_optstr(&w, m->opts.source, "source");
  wr_meta(&w, m->opts.meta, m->opts.n_meta);
  return wr_end(&w);
}

int rstate__wire_decode_rollback(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                 rstate__wire_rollback *out) {
  RD_BEGIN(RSTATE__WIRE_ROLLBACK, scratch, true);
  out->req = rd_req(&c);
  out->name = rd_str(&c, "name");
  out->version = rd_u64(&c, "version");
  out->opts.source = rd_optstr(&c, "source");
  out->opts.meta = rd_meta(&c, &out->opts.n_meta);
  return RD_END();
}

static void item_hentry(wr *w, const void *items, size_t i) {
  const rstate_history_entry *e = &((const rstate_history_entry *)items)[i];
  wr_u64(w, e->version);
  wr_u64(w, e->revision);
  wr_i64(w, e->timestamp_ns);
  wr_value(w, &e->value, "value");
  wr_optstr(w, e->source, "source");
  wr_meta(w, e->meta, e->n_meta);
}

int rstate__wire_put_hist_part(rstate__wire_buf *b, const rstate__wire_hist_part *m) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: HISTORY_PART: NULL message");
  part_head h = {.type = RSTATE__WIRE_HISTORY_PART, .req = m->req, .revision = m->revision, .flags = m->flags};
  return put_parts(b, &h, m->entries, m->n, item_hentry, 0, false, NULL);
}

int rstate__wire_put_hist_parts(rstate__wire_buf *b, const rstate__wire_hist_part *m, uint32_t max_frame,
                                size_t *frames) {
  if (!m) return rstate__err(RSTATE_EINVAL, "wire: HISTORY_PART: NULL message");
  part_head h = {.type = RSTATE__WIRE_HISTORY_PART, .req = m->req, .revision = m->revision};
  return put_parts(b, &h, m->entries, m->n, item_hentry, max_frame, true, frames);
}

int rstate__wire_decode_hist_part(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                  rstate__wire_hist_part *out) {
  RD_BEGIN(RSTATE__WIRE_HISTORY_PART, scratch, true);
  out->req = rd_req(&c);
  out->flags = rd_flags(&c, RSTATE__WIRE_MORE);
  out->revision = rd_u64(&c, "revision");
  out->n = rd_count(&c, MIN_HENTRY, "entries");
  rstate_history_entry *e = rd_array(&c, out->n, sizeof *e);
  for (size_t i = 0; i < out->n && !c.err; i++) {
    e[i].version = rd_u64(&c, "version");
    e[i].revision = rd_u64(&c, "revision");
    e[i].timestamp_ns = rd_i64(&c, "timestamp_ns");
    rd_value(&c, &e[i].value, "value");
    e[i].source = rd_optstr(&c, "source");
    e[i].meta = rd_meta(&c, &e[i].n_meta);
  }
  out->entries = e;
  return RD_END();
}

/* ---- any frame: each layout's decoder and encoder, and the table ------------ */

#define DECODER(layout, call)                                                                       \
  static int dec_##layout(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch, \
                          rstate__wire_msg *out) {                                                  \
    (void)type;                                                                                     \
    (void)scratch;                                                                                  \
    return call;                                                                                    \
  }
#define ENCODER(layout, call) \
  static int enc_##layout(rstate__wire_buf *b, const rstate__wire_msg *m) { return call; }

DECODER(hello, rstate__wire_decode_hello(body, len, scratch, &out->u.hello))
DECODER(welcome, rstate__wire_decode_welcome(body, len, &out->u.welcome))
DECODER(ping, rstate__wire_decode_ping(type, body, len, &out->u.ping))
DECODER(error, rstate__wire_decode_error(body, len, scratch, &out->u.error))
DECODER(req, rstate__wire_decode_req(type, body, len, &out->u.req))
DECODER(define, rstate__wire_decode_define(body, len, scratch, &out->u.define))
DECODER(name, rstate__wire_decode_name(type, body, len, scratch, &out->u.name))
DECODER(names, rstate__wire_decode_names(type, body, len, scratch, &out->u.names))
DECODER(set_many, rstate__wire_decode_set_many(body, len, scratch, &out->u.set_many))
DECODER(watch, rstate__wire_decode_watch(body, len, scratch, &out->u.watch))
DECODER(unwatch, rstate__wire_decode_unwatch(body, len, &out->u.unwatch))
DECODER(get_reply, rstate__wire_decode_get_reply(body, len, scratch, &out->u.get_reply))
DECODER(rev, rstate__wire_decode_rev(type, body, len, &out->u.rev))
DECODER(info_reply, rstate__wire_decode_info_reply(body, len, &out->u.info_reply))
DECODER(values, rstate__wire_decode_values_part(body, len, scratch, &out->u.values))
DECODER(list, rstate__wire_decode_list_part(body, len, scratch, &out->u.list))
DECODER(snapshot, rstate__wire_decode_snapshot_part(body, len, scratch, &out->u.snapshot))
DECODER(watch_reply, rstate__wire_decode_watch_reply(body, len, &out->u.watch_reply))
DECODER(stats, rstate__wire_decode_stats_reply(body, len, scratch, &out->u.stats))
DECODER(events, rstate__wire_decode_events(body, len, scratch, &out->u.events))
DECODER(history, rstate__wire_decode_history(body, len, scratch, &out->u.history))
DECODER(rollback, rstate__wire_decode_rollback(body, len, scratch, &out->u.rollback))
DECODER(hist, rstate__wire_decode_hist_part(body, len, scratch, &out->u.hist))

ENCODER(hello, rstate__wire_put_hello(b, &m->u.hello))
ENCODER(welcome, rstate__wire_put_welcome(b, &m->u.welcome))
ENCODER(ping, rstate__wire_put_ping(b, m->type, m->u.ping.payload))
ENCODER(error, rstate__wire_put_error(b, &m->u.error))
ENCODER(req, rstate__wire_put_req(b, m->type, m->u.req.req))
ENCODER(define, rstate__wire_put_define(b, &m->u.define))
ENCODER(name, rstate__wire_put_name(b, m->type, &m->u.name))
ENCODER(names, rstate__wire_put_names(b, m->type, &m->u.names))
ENCODER(set_many, rstate__wire_put_set_many(b, &m->u.set_many))
ENCODER(watch, rstate__wire_put_watch(b, &m->u.watch))
ENCODER(unwatch, rstate__wire_put_unwatch(b, &m->u.unwatch))
ENCODER(get_reply, rstate__wire_put_get_reply(b, &m->u.get_reply))
ENCODER(rev, rstate__wire_put_rev(b, m->type, &m->u.rev))
ENCODER(info_reply, rstate__wire_put_info_reply(b, &m->u.info_reply))
ENCODER(values, rstate__wire_put_values_part(b, &m->u.values))
ENCODER(list, rstate__wire_put_list_part(b, &m->u.list))
ENCODER(snapshot, rstate__wire_put_snapshot_part(b, &m->u.snapshot))
ENCODER(watch_reply, rstate__wire_put_watch_reply(b, &m->u.watch_reply))
ENCODER(stats, rstate__wire_put_stats_reply(b, &m->u.stats))
ENCODER(events, rstate__wire_put_events(b, &m->u.events))
ENCODER(history, rstate__wire_put_history(b, &m->u.history))
ENCODER(rollback, rstate__wire_put_rollback(b, &m->u.rollback))
ENCODER(hist, rstate__wire_put_hist_part(b, &m->u.hist))

/* The layouts with arrays in the scratch; the others have none. */
#define arrays_hello NULL
#define arrays_welcome NULL
#define arrays_ping NULL
#define arrays_error NULL
#define arrays_req NULL
#define arrays_name NULL
#define arrays_names arrays_strs
#define arrays_watch arrays_strs
#define arrays_unwatch NULL
#define arrays_get_reply NULL
#define arrays_rev NULL
#define arrays_info_reply NULL
#define arrays_watch_reply NULL
#define arrays_history NULL

static const frame_row frames[256] = {
#define FRAME_ROW(name, code, from, layout) \
  [code] = {#name, RSTATE__WIRE_FROM_##from, dec_##layout, enc_##layout, arrays_##layout},
    RSTATE__WIRE_FRAMES(FRAME_ROW)
#undef FRAME_ROW
};

static const frame_row *row_of(uint8_t type) { return frames[type].name ? &frames[type] : NULL; }

int rstate__wire_decode(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                        rstate__wire_msg *out) {
  if (!out) return rstate__err(RSTATE_EINVAL, "wire: decode: NULL argument");
  memset(out, 0, sizeof *out);
  out->type = type;
  const frame_row *r = row_of(type);
  if (!r) return rstate__err(RSTATE_EPROTO, "wire: unknown frame type 0x%02x", type);
  return r->decode(type, body, len, scratch, out);
}

int rstate__wire_encode(rstate__wire_buf *b, const rstate__wire_msg *m) {
  if (!b || !m) return rstate__err(RSTATE_EINVAL, "wire: encode: NULL argument");
  const frame_row *r = row_of(m->type);
  if (!r) return rstate__err(RSTATE_EINVAL, "wire: encode: unknown frame type 0x%02x", m->type);
  return r->encode(b, m);
}
