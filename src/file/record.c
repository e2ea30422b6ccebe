/*
 * record.c — the payloads of file: records, encoded and decoded.
 *
 * Pure: bytes in, bytes out, no I/O, so the decoder can be fuzzed. The
 * decoder trusts nothing: every length is checked against what is left
 * before it is used, and strings are copied NUL-terminated into an arena
 * sized from the payload's length, so a payload cannot make it allocate
 * more than a few times its own size.
 *
 *   value   u8 kind (0 none, 1 float, 2 int, 3 bool, 4 string), then f64 bits, i64, u8 or str
 *   str     u32 length, bytes (no NUL); optional strings use length 0xFFFFFFFF for NULL
 *   def     str name, u8 type, value initial, value min, value max, u64 min_length,
 *           u64 max_length, u32 n_choices, str * n, optstr namespace, optstr pattern,
 *           optstr description
 *   DEFINE      u8 1, u64 revision, i64 ts, def
 *   UNDEFINE    u8 2, u64 revision, i64 ts, str name
 *   SET         u8 3, u64 revision, i64 ts, optstr source, u32 n_meta, (str key, str value) * n,
 *               u32 n, (str name, u64 version, value) * n
 *   SNAP_HEAD   u8 4, u64 revision, u64 journal generation, u64 variables
 *   SNAP_VAR    u8 5, def, u64 version, u64 revision, i64 updated_ns, value,
 *               u32 n_history, (u64 version, u64 revision, i64 ts, value, optstr source,
 *               u32 n_meta, (str, str) * n) * n
 *   SNAP_END    u8 6, u64 variables
 */
#include <stdlib.h>
#include <string.h>

#include "file.h"

/* ---- encoding ----------------------------------------------------------- */

void rstate__buf_free(rstate__buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

static uint8_t *room(rstate__buf *b, size_t n) {
  if (b->oom) return NULL;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return NULL;
    }
    b->p = p;
    b->cap = cap;
  }
  uint8_t *r = b->p + b->len;
  b->len += n;
  return r;
}

static void put_bytes(rstate__buf *b, const void *p, size_t n) {
  uint8_t *d = room(b, n);
  if (d && n) memcpy(d, p, n);
}

static void put_u8(rstate__buf *b, uint8_t v) { put_bytes(b, &v, 1); }

static void put_u32(rstate__buf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put_bytes(b, x, 4);
}

static void put_u64(rstate__buf *b, uint64_t v) {
  uint8_t x[8];
  for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
  put_bytes(b, x, 8);
}

static void put_strn(rstate__buf *b, const char *s, size_t n) {
  if (n >= 0xFFFFFFFFu) {
    b->oom = true;
    return;
  }
  put_u32(b, (uint32_t)n);
  put_bytes(b, s, n);
}

static void put_str(rstate__buf *b, const char *s) { put_strn(b, s, strlen(s)); }

static void put_optstr(rstate__buf *b, const char *s) {
  if (s)
    put_str(b, s);
  else
    put_u32(b, 0xFFFFFFFFu);
}

static void put_value(rstate__buf *b, const rstate_value *v) {
  put_u8(b, (uint8_t)v->kind);
  switch (v->kind) {
  case RSTATE_FLOAT: {
    uint64_t bits;
    memcpy(&bits, &v->u.f, 8);
    put_u64(b, bits);
    break;
  }
  case RSTATE_INT: put_u64(b, (uint64_t)v->u.i); break;
  case RSTATE_BOOL: put_u8(b, v->u.b ? 1 : 0); break;
  case RSTATE_STRING: put_strn(b, v->u.s.ptr, v->u.s.len); break;
  default: break;
  }
}

static void put_meta(rstate__buf *b, const rstate_meta *meta, size_t n) {
  put_u32(b, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    put_str(b, meta[i].key);
    put_str(b, meta[i].value);
  }
}

static void put_def(rstate__buf *b, const rstate__spec *spec) {
  size_t nc = rstate__spec_n_choices(spec);
  const char *stack[16];
  const char **choices = nc <= 16 ? stack : malloc(nc * sizeof *choices);
  if (!choices) {
    b->oom = true;
    return;
  }
  rstate_var_def def;
  rstate_constraints c;
  rstate__spec_def(spec, &def, &c, choices);
  put_str(b, def.name);
  put_u8(b, (uint8_t)def.type);
  put_value(b, &def.initial);
  put_value(b, &c.min);
  put_value(b, &c.max);
  put_u64(b, c.min_length);
  put_u64(b, c.max_length);
  put_u32(b, (uint32_t)c.n_choices);
  for (size_t i = 0; i < c.n_choices; i++) put_str(b, c.choices[i]);
  put_optstr(b, c.module_namespace);
  put_optstr(b, c.pattern);
  put_optstr(b, def.description);
  if (choices != stack) free(choices);
}

size_t rstate__frame_begin(rstate__buf *b) {
  size_t start = b->len;
  room(b, RSTATE_FRAME_HEAD);
  return start;
}

bool rstate__frame_end(rstate__buf *b, size_t start) {
  if (b->oom) return false;
  size_t len = b->len - start - RSTATE_FRAME_HEAD;
  if (len > RSTATE_FRAME_MAX || len == 0) return false;
  size_t pad = (8 - (b->len & 7)) & 7;
  uint8_t *z = room(b, pad);
  if (!z) return false;
  memset(z, 0, pad);
  uint8_t *h = b->p + start;
  uint32_t l32 = (uint32_t)len;
  for (int i = 0; i < 4; i++) h[i] = (uint8_t)(l32 >> (8 * i));
  uint32_t crc = rstate__frame_crc(l32, h + RSTATE_FRAME_HEAD);
  for (int i = 0; i < 4; i++) h[4 + i] = (uint8_t)(crc >> (8 * i));
  return true;
}

void rstate__enc_define(rstate__buf *b, uint64_t revision, int64_t ts, const rstate__spec *spec) {
  put_u8(b, RSTATE_REC_DEFINE);
  put_u64(b, revision);
  put_u64(b, (uint64_t)ts);
  put_def(b, spec);
}

void rstate__enc_undefine(rstate__buf *b, uint64_t revision, int64_t ts, const char *name) {
  put_u8(b, RSTATE_REC_UNDEFINE);
  put_u64(b, revision);
  put_u64(b, (uint64_t)ts);
  put_str(b, name);
}

void rstate__enc_set(rstate__buf *b, const rstate_change *c, size_t n) {
  put_u8(b, RSTATE_REC_SET);
  put_u64(b, c[0].revision);
  put_u64(b, (uint64_t)c[0].timestamp_ns);
  put_optstr(b, c[0].source);
  put_meta(b, c[0].meta, c[0].n_meta);
  put_u32(b, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    put_strn(b, c[i].name, c[i].name_len ? c[i].name_len : strlen(c[i].name));
    put_u64(b, c[i].version);
    put_value(b, c[i].new_value);
  }
}

/* ---- a SET frame straight into the journal (the hot path) ---------------- */

static size_t value_size(const rstate_value *v) {
  switch (v->kind) {
  case RSTATE_FLOAT:
  case RSTATE_INT: return 9;
  case RSTATE_BOOL: return 2;
  case RSTATE_STRING: return 5 + v->u.s.len;
  default: return 1;
  }
}

size_t rstate__set_frame_size(const rstate_change *c, size_t n, rstate__set_lens *lens) {
  lens->source = c[0].source ? strlen(c[0].source) : 0;
  size_t len = 1 + 8 + 8 + 4 + lens->source + 4 + 4;
  for (size_t i = 0; i < c[0].n_meta; i++) len += 8 + strlen(c[0].meta[i].key) + strlen(c[0].meta[i].value);
  for (size_t i = 0; i < n; i++)
    len += 4 + (c[i].name_len ? c[i].name_len : strlen(c[i].name)) + 8 + value_size(c[i].new_value);
  if (len > RSTATE_FRAME_MAX) return 0;
  lens->payload = len;
  return RSTATE_FRAME_HEAD + ((len + 7) & ~(size_t)7);
}

static inline uint8_t *w32(uint8_t *p, uint32_t v) {
  memcpy(p, &v, 4); /* little-endian machines only: see file.h */
  return p + 4;
}

static inline uint8_t *w64(uint8_t *p, uint64_t v) {
  memcpy(p, &v, 8);
  return p + 8;
}

static inline uint8_t *wstr(uint8_t *p, const char *s, size_t n) {
  p = w32(p, (uint32_t)n);
  memcpy(p, s, n);
  return p + n;
}

void rstate__set_frame_write_portable(uint8_t *frame, size_t size, const rstate__set_lens *lens,
                                      const rstate_change *c, size_t n) {
  uint8_t *p = frame + RSTATE_FRAME_HEAD;
  *p++ = RSTATE_REC_SET;
  p = w64(p, c[0].revision);
  p = w64(p, (uint64_t)c[0].timestamp_ns);
  if (c[0].source)
    p = wstr(p, c[0].source, lens->source);
  else
    p = w32(p, 0xFFFFFFFFu);
  p = w32(p, (uint32_t)c[0].n_meta);
  for (size_t i = 0; i < c[0].n_meta; i++) {
    p = wstr(p, c[0].meta[i].key, strlen(c[0].meta[i].key));
    p = wstr(p, c[0].meta[i].value, strlen(c[0].meta[i].value));
  }
  p = w32(p, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    p = wstr(p, c[i].name, c[i].name_len ? c[i].name_len : strlen(c[i].name));
    p = w64(p, c[i].version);
    const rstate_value *v = c[i].new_value;
    *p++ = (uint8_t)v->kind;
    switch (v->kind) {
    case RSTATE_FLOAT: memcpy(p, &v->u.f, 8); p += 8; break;
    case RSTATE_INT: p = w64(p, (uint64_t)v->u.i); break;
    case RSTATE_BOOL: *p++ = v->u.b ? 1 : 0; break;
    case RSTATE_STRING: p = wstr(p, v->u.s.ptr, v->u.s.len); break;
    default: break;
    }
  }
  uint32_t len = (uint32_t)(p - frame - RSTATE_FRAME_HEAD);
  memset(p, 0, size - (size_t)(p - frame)); /* the padding */
  uint8_t head[RSTATE_FRAME_HEAD];
  w32(head, len);
  w32(head + 4, rstate__frame_crc(len, frame + RSTATE_FRAME_HEAD));
  /* the head last: a record cut short mid-write most often looks like the end */
  atomic_signal_fence(memory_order_release);
  memcpy(frame, head, RSTATE_FRAME_HEAD);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The same frame with its checksum taken as it is written, field by field
 * from the values (the CRC instruction takes 1, 2, 4 or 8 bytes, so the sum
 * is that of the bytes in order): reading the fresh bytes back would stall
 * on each 8-byte load over several smaller stores. */
#define HARD __attribute__((target("sse4.2")))

HARD static inline uint8_t *h8(uint8_t *p, uint8_t v, uint32_t *c) {
  *c = __builtin_ia32_crc32qi(*c, v);
  *p = v;
  return p + 1;
}

HARD static inline uint8_t *h32(uint8_t *p, uint32_t v, uint32_t *c) {
  *c = __builtin_ia32_crc32si(*c, v);
  memcpy(p, &v, 4);
  return p + 4;
}

HARD static inline uint8_t *h64(uint8_t *p, uint64_t v, uint32_t *c) {
  *c = (uint32_t)__builtin_ia32_crc32di(*c, v);
  memcpy(p, &v, 8);
  return p + 8;
}

HARD static inline uint8_t *hstr(uint8_t *p, const char *s, size_t n, uint32_t *c) {
  p = h32(p, (uint32_t)n, c);
  memcpy(p, s, n);
  const uint8_t *q = (const uint8_t *)s;
  uint32_t x = *c;
  size_t k = n;
  for (; k >= 8; k -= 8, q += 8) {
    uint64_t w;
    memcpy(&w, q, 8);
    x = (uint32_t)__builtin_ia32_crc32di(x, w);
  }
  while (k--) x = __builtin_ia32_crc32qi(x, *q++);
  *c = x;
  return p + n;
}

HARD static void write_hard(uint8_t *frame, size_t size, const rstate__set_lens *lens, const rstate_change *c,
                            size_t n) {
  uint32_t crc = __builtin_ia32_crc32si(0xFFFFFFFFu, (uint32_t)lens->payload);
  uint8_t *p = frame + RSTATE_FRAME_HEAD;
  p = h8(p, RSTATE_REC_SET, &crc);
  p = h64(p, c[0].revision, &crc);
  p = h64(p, (uint64_t)c[0].timestamp_ns, &crc);
  if (c[0].source)
    p = hstr(p, c[0].source, lens->source, &crc);
  else
    p = h32(p, 0xFFFFFFFFu, &crc);
  p = h32(p, (uint32_t)c[0].n_meta, &crc);
  for (size_t i = 0; i < c[0].n_meta; i++) {
    p = hstr(p, c[0].meta[i].key, strlen(c[0].meta[i].key), &crc);
    p = hstr(p, c[0].meta[i].value, strlen(c[0].meta[i].value), &crc);
  }
  p = h32(p, (uint32_t)n, &crc);
  for (size_t i = 0; i < n; i++) {
    p = hstr(p, c[i].name, c[i].name_len ? c[i].name_len : strlen(c[i].name), &crc);
    p = h64(p, c[i].version, &crc);
    const rstate_value *v = c[i].new_value;
    p = h8(p, (uint8_t)v->kind, &crc);
    switch (v->kind) {
    case RSTATE_FLOAT: {
      uint64_t bits;
      memcpy(&bits, &v->u.f, 8);
      p = h64(p, bits, &crc);
      break;
    }
    case RSTATE_INT: p = h64(p, (uint64_t)v->u.i, &crc); break;
    case RSTATE_BOOL: p = h8(p, v->u.b ? 1 : 0, &crc); break;
    case RSTATE_STRING: p = hstr(p, v->u.s.ptr, v->u.s.len, &crc); break;
    default: break;
    }
  }
  memset(p, 0, size - (size_t)(p - frame)); /* the padding */
  uint8_t head[RSTATE_FRAME_HEAD];
  w32(head, (uint32_t)lens->payload);
  w32(head + 4, ~crc);
  /* the head last: a record cut short mid-write most often looks like the end */
  atomic_signal_fence(memory_order_release);
  memcpy(frame, head, RSTATE_FRAME_HEAD);
}

void rstate__set_frame_write(uint8_t *frame, size_t size, const rstate__set_lens *lens, const rstate_change *c,
                             size_t n) {
  if (rstate__crc32c_hard())
    write_hard(frame, size, lens, c, n);
  else
    rstate__set_frame_write_portable(frame, size, lens, c, n);
}
#else
void rstate__set_frame_write(uint8_t *frame, size_t size, const rstate__set_lens *lens, const rstate_change *c,
                             size_t n) {
  rstate__set_frame_write_portable(frame, size, lens, c, n);
}
#endif

void rstate__enc_snap_head(rstate__buf *b, uint64_t revision, uint64_t gen, uint64_t n_vars) {
  put_u8(b, RSTATE_REC_SNAP_HEAD);
  put_u64(b, revision);
  put_u64(b, gen);
  put_u64(b, n_vars);
}

void rstate__enc_snap_var(rstate__buf *b, const rstate__local_view *v) {
  put_u8(b, RSTATE_REC_SNAP_VAR);
  put_def(b, v->spec);
  put_u64(b, v->version);
  put_u64(b, v->revision);
  put_u64(b, (uint64_t)v->updated_ns);
  put_value(b, v->value);
  put_u32(b, (uint32_t)v->n_history);
  for (size_t i = 0; i < v->n_history; i++) {
    const rstate_history_entry *e = &v->history[i];
    put_u64(b, e->version);
    put_u64(b, e->revision);
    put_u64(b, (uint64_t)e->timestamp_ns);
    put_value(b, &e->value);
    put_optstr(b, e->source);
    put_meta(b, e->meta, e->n_meta);
  }
}

void rstate__enc_snap_end(rstate__buf *b, uint64_t n_vars) {
  put_u8(b, RSTATE_REC_SNAP_END);
  put_u64(b, n_vars);
}

/* ---- decoding ----------------------------------------------------------- */

typedef struct rd {
  const uint8_t *p;
  size_t n, off;
  rstate__arena *a;
  const char *why; /* set at the first problem; everything after is ignored */
} rd;

void rstate__arena_free(rstate__arena *a) {
  free(a->p);
  memset(a, 0, sizeof *a);
}

static bool fail(rd *r, const char *why) {
  if (!r->why) r->why = why;
  return false;
}

static const uint8_t *take(rd *r, size_t n) {
  if (r->why) return NULL;
  if (r->n - r->off < n) {
    fail(r, "it ends too soon");
    return NULL;
  }
  const uint8_t *p = r->p + r->off;
  r->off += n;
  return p;
}

static uint8_t get_u8(rd *r) {
  const uint8_t *p = take(r, 1);
  return p ? *p : 0;
}

static uint32_t get_u32(rd *r) {
  const uint8_t *p = take(r, 4);
  return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}

static uint64_t get_u64(rd *r) {
  const uint8_t *p = take(r, 8);
  uint64_t v = 0;
  for (int i = 7; p && i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static void *alloc(rd *r, size_t n) {
  if (r->why) return NULL;
  size_t at = (r->a->used + 7) & ~(size_t)7;
  if (at > r->a->cap || r->a->cap - at < n) {
    fail(r, "it holds more than its length allows");
    return NULL;
  }
  r->a->used = at + n;
  return r->a->p + at;
}

/* A string, copied NUL-terminated; *len its length. NULL on failure. */
static const char *get_strl(rd *r, size_t *len, bool optional, bool *is_null) {
  uint32_t n = get_u32(r);
  if (r->why) return NULL;
  if (n == 0xFFFFFFFFu) {
    if (!optional) {
      fail(r, "a required string is missing");
      return NULL;
    }
    *is_null = true;
    return NULL;
  }
  const uint8_t *p = take(r, n);
  char *s = p ? alloc(r, (size_t)n + 1) : NULL;
  if (!s) return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  if (memchr(s, 0, n)) {
    fail(r, "a string holds a NUL byte");
    return NULL;
  }
  if (len) *len = n;
  return s;
}

static const char *get_str(rd *r) { return get_strl(r, NULL, false, NULL); }

static const char *get_optstr(rd *r) {
  bool is_null = false;
  return get_strl(r, NULL, true, &is_null);
}

static void get_value(rd *r, rstate_value *v) {
  memset(v, 0, sizeof *v);
  uint8_t kind = get_u8(r);
  switch (kind) {
  case RSTATE_NONE: break;
  case RSTATE_FLOAT: {
    uint64_t bits = get_u64(r);
    memcpy(&v->u.f, &bits, 8);
    break;
  }
  case RSTATE_INT: v->u.i = (int64_t)get_u64(r); break;
  case RSTATE_BOOL: {
    uint8_t b = get_u8(r);
    if (b > 1) fail(r, "a boolean is neither 0 nor 1");
    v->u.b = b == 1;
    break;
  }
  case RSTATE_STRING: {
    size_t len = 0;
    const char *s = get_strl(r, &len, false, NULL);
    v->u.s.ptr = s ? s : "";
    v->u.s.len = s ? len : 0;
    break;
  }
  default: fail(r, "a value of no known kind"); return;
  }
  v->kind = (rstate_kind)kind;
}

static void get_meta(rd *r, rstate_meta **meta, size_t *n) {
  uint32_t k = get_u32(r);
  *meta = NULL;
  *n = 0;
  if (r->why || !k) return;
  if (k > (r->n - r->off) / 8) {
    fail(r, "more meta pairs than its length holds");
    return;
  }
  rstate_meta *m = alloc(r, k * sizeof *m);
  for (uint32_t i = 0; m && i < k; i++) {
    m[i].key = get_str(r);
    m[i].value = get_str(r);
  }
  if (r->why) return;
  *meta = m;
  *n = k;
}

static void get_def(rd *r, rstate__rec *out) {
  out->def.name = get_str(r);
  out->def.type = (rstate_type)get_u8(r);
  get_value(r, &out->def.initial);
  get_value(r, &out->c.min);
  get_value(r, &out->c.max);
  out->c.min_length = (size_t)get_u64(r);
  out->c.max_length = (size_t)get_u64(r);
  uint32_t nc = get_u32(r);
  if (!r->why && nc > (r->n - r->off) / 4) fail(r, "more choices than its length holds");
  const char **choices = nc && !r->why ? alloc(r, nc * sizeof *choices) : NULL;
  for (uint32_t i = 0; choices && i < nc; i++) choices[i] = get_str(r);
  out->c.choices = choices;
  out->c.n_choices = r->why ? 0 : nc;
  out->c.module_namespace = get_optstr(r);
  out->c.pattern = get_optstr(r);
  out->def.description = get_optstr(r);
  out->def.constraints = &out->c;
}

bool rstate__rec_decode(const uint8_t *p, size_t len, rstate__rec *out, rstate__arena *arena, const char **why) {
  memset(out, 0, sizeof *out);
  /* every arena allocation is paid for by at least 4 payload bytes and
   * needs at most 6 times that (a meta pair: 8 bytes, 16 of arena and two
   * NULs), plus alignment */
  size_t need = len * 8 + 64;
  if (arena->cap < need) {
    uint8_t *np = realloc(arena->p, need);
    if (!np) {
      *why = "out of memory";
      return false;
    }
    arena->p = np;
    arena->cap = need;
  }
  arena->used = 0;
  rd r = {p, len, 0, arena, NULL};
  out->kind = get_u8(&r);
  switch (out->kind) {
  case RSTATE_REC_DEFINE:
    out->revision = get_u64(&r);
    out->ts = (int64_t)get_u64(&r);
    get_def(&r, out);
    break;
  case RSTATE_REC_UNDEFINE:
    out->revision = get_u64(&r);
    out->ts = (int64_t)get_u64(&r);
    out->name = get_str(&r);
    break;
  case RSTATE_REC_SET: {
    out->revision = get_u64(&r);
    out->ts = (int64_t)get_u64(&r);
    out->source = get_optstr(&r);
    get_meta(&r, &out->meta, &out->n_meta);
    uint32_t n = get_u32(&r);
    if (!r.why && (n == 0 || n > (len - r.off) / 13)) fail(&r, "a change of no variable, or more than it holds");
    rstate__rec_item *items = r.why ? NULL : alloc(&r, n * sizeof *items);
    for (uint32_t i = 0; items && i < n; i++) {
      items[i].name = get_str(&r);
      items[i].version = get_u64(&r);
      get_value(&r, &items[i].value);
    }
    out->items = items;
    out->n_items = r.why ? 0 : n;
    break;
  }
  case RSTATE_REC_SNAP_HEAD:
    out->revision = get_u64(&r);
    out->gen = get_u64(&r);
    out->n_vars = get_u64(&r);
    break;
  case RSTATE_REC_SNAP_VAR: {
    get_def(&r, out);
    out->version = get_u64(&r);
    out->revision = get_u64(&r);
    out->ts = (int64_t)get_u64(&r);
    get_value(&r, &out->value);
    uint32_t n = get_u32(&r);
    if (!r.why && n > (len - r.off) / 29) fail(&r, "more history entries than it holds");
    rstate_history_entry *h = n && !r.why ? alloc(&r, n * sizeof *h) : NULL;
    for (uint32_t i = 0; h && i < n; i++) {
      h[i].version = get_u64(&r);
      h[i].revision = get_u64(&r);
      h[i].timestamp_ns = (int64_t)get_u64(&r);
      get_value(&r, &h[i].value);
      h[i].source = get_optstr(&r);
      rstate_meta *m;
      get_meta(&r, &m, &h[i].n_meta);
      h[i].meta = m;
    }
    out->hist = h;
    out->n_hist = r.why ? 0 : n;
    break;
  }
  case RSTATE_REC_SNAP_END: out->n_vars = get_u64(&r); break;
  default: fail(&r, "a record of no known kind"); break;
  }
  if (!r.why && r.off != len) fail(&r, "bytes are left over after it");
  if (r.why) {
    *why = r.why;
    return false;
  }
  return true;
}

/* ---- frames ------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

rstate__frame_state rstate__frame_at(const uint8_t *buf, size_t n, size_t off, const uint8_t **payload,
                                     size_t *len, size_t *next) {
  if (off >= n) return RSTATE_FRAME_END;
  if (n - off < RSTATE_FRAME_HEAD) {
    for (size_t i = off; i < n; i++)
      if (buf[i]) return RSTATE_FRAME_TORN;
    return RSTATE_FRAME_END;
  }
  uint32_t l = le32(buf + off), crc = le32(buf + off + 4);
  if (l == 0 && crc == 0) return RSTATE_FRAME_END;
  if (l == 0 || l > RSTATE_FRAME_MAX) return RSTATE_FRAME_BAD;
  size_t whole = RSTATE_FRAME_HEAD + (((size_t)l + 7) & ~(size_t)7);
  if (n - off < RSTATE_FRAME_HEAD + (size_t)l) return RSTATE_FRAME_TORN;
  if (rstate__frame_crc(l, buf + off + RSTATE_FRAME_HEAD) != crc) return RSTATE_FRAME_BAD;
  *payload = buf + off + RSTATE_FRAME_HEAD;
  *len = l;
  *next = off + whole < n ? off + whole : n;
  return RSTATE_FRAME_OK;
}

bool rstate__frame_any(const uint8_t *buf, size_t n, size_t from) {
  for (size_t off = (from + 7) & ~(size_t)7; off + RSTATE_FRAME_HEAD <= n; off += 8) {
    if (le32(buf + off) == 0) continue;
    const uint8_t *p;
    size_t len, next;
    if (rstate__frame_at(buf, n, off, &p, &len, &next) == RSTATE_FRAME_OK) return true;
  }
  return false;
}
