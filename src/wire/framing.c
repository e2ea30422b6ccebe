/*
 * framing.c — the byte side of the wire: growable buffers, and the reader
 * that cuts a byte stream into frames. Framing follows hiredis's
 * redisReader: bytes go in, whole frames come out, no I/O inside, and a
 * frame's declared length is checked against max_frame as soon as its four
 * length bytes have arrived, before anything of it is stored. What a frame
 * means is codec.c's business.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "wire.h"

/* ---- buffers ------------------------------------------------------------- */

void rstate__wire_buf_init(rstate__wire_buf *b) { memset(b, 0, sizeof *b); }

void rstate__wire_buf_free(rstate__wire_buf *b) {
  uint32_t limit = b->limit;
  free(b->data);
  memset(b, 0, sizeof *b);
  b->limit = limit;
}

int rstate__wire_buf_reserve(rstate__wire_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return RSTATE_OK;
  if (extra > SIZE_MAX - b->len)
    return rstate__err(RSTATE_ENOMEM, "wire: buffer of %zu bytes cannot grow by %zu", b->len, extra);
  size_t need = b->len + extra;
  if (!RSTATE__GROW(b->data, b->cap, need, 256))
    return rstate__err(RSTATE_ENOMEM, "wire: out of memory growing a buffer of %zu bytes to hold %zu", b->cap, need);
  return RSTATE_OK;
}

void rstate__wire_buf_consume(rstate__wire_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

/* ---- the reader ---------------------------------------------------------- */

/* An empty reader buffer bigger than this is given back. */
#define READER_SHRINK (256u * 1024u)

void rstate__wire_reader_init(rstate__wire_reader *r, uint32_t max_frame) {
  memset(r, 0, sizeof *r);
  r->max_frame = max_frame;
}

void rstate__wire_reader_free(rstate__wire_reader *r) {
  free(r->buf.data);
  memset(r, 0, sizeof *r);
}

/* Drops the frames next() has returned. */
static void reader_compact(rstate__wire_reader *r) {
  if (r->pos == 0) return;
  if (r->pos < r->buf.len) memmove(r->buf.data, r->buf.data + r->pos, r->buf.len - r->pos);
  r->buf.len -= r->pos;
  r->scan -= r->pos;
  r->pos = 0;
  if (r->buf.len == 0 && r->buf.cap > READER_SHRINK) {
    free(r->buf.data);
    r->buf.data = NULL;
    r->buf.cap = 0;
  }
}

/* The byte at offset off of the buffer followed by in. */
static uint8_t reader_byte(const rstate__wire_reader *r, const uint8_t *in, size_t off) {
  return off < r->buf.len ? r->buf.data[off] : in[off - r->buf.len];
}

/* Checks every frame header that lies whole within the buffer followed by
 * the first total - buf.len bytes of in. Returns how many of those bytes are
 * to be kept: all of them, or those before a bad header (r->err is then
 * set, and nothing after it is ever stored). */
static size_t reader_scan(rstate__wire_reader *r, const uint8_t *in, size_t total) {
  while (total >= RSTATE__WIRE_HEADER && r->scan <= total - RSTATE__WIRE_HEADER) {
    uint32_t len = (uint32_t)reader_byte(r, in, r->scan) | (uint32_t)reader_byte(r, in, r->scan + 1) << 8 |
                   (uint32_t)reader_byte(r, in, r->scan + 2) << 16 | (uint32_t)reader_byte(r, in, r->scan + 3) << 24;
    if (len > r->max_frame || len == 0) {
      r->err = len == 0 ? RSTATE_EPROTO : RSTATE_ELIMIT;
      r->bad_len = len;
      return r->scan;
    }
    if ((size_t)len > SIZE_MAX - RSTATE__WIRE_HEADER - r->scan) {
      r->err = RSTATE_ELIMIT;
      r->bad_len = len;
      return r->scan;
    }
    r->scan += RSTATE__WIRE_HEADER + (size_t)len;
  }
  return total;
}

/* How many new bytes to keep when the scan says the stream may be kept up
 * to end. A refused header may have begun in bytes already buffered (its
 * first one to three bytes): those are dropped. */
static size_t reader_keep(rstate__wire_reader *r, size_t end) {
  if (end >= r->buf.len) return end - r->buf.len;
  r->buf.len = end;
  return 0;
}

int rstate__wire_reader_feed(rstate__wire_reader *r, const void *bytes, size_t n) {
  if (!r || (!bytes && n)) return rstate__err(RSTATE_EINVAL, "wire: reader_feed: NULL argument");
  if (n == 0 || r->err) return RSTATE_OK; /* after an error, input is dropped */
  reader_compact(r);
  if (n > SIZE_MAX - r->buf.len) return rstate__err(RSTATE_ENOMEM, "wire: reader_feed: %zu bytes is too much", n);
  size_t scan = r->scan;
  size_t keep = reader_keep(r, reader_scan(r, bytes, r->buf.len + n));
  if (keep && rstate__wire_buf_reserve(&r->buf, keep) != RSTATE_OK) {
    r->scan = scan; /* as if never called */
    r->err = 0;
    r->bad_len = 0;
    return RSTATE_ENOMEM;
  }
  if (keep) memcpy(r->buf.data + r->buf.len, bytes, keep);
  r->buf.len += keep;
  return RSTATE_OK;
}

uint8_t *rstate__wire_reader_prepare(rstate__wire_reader *r, size_t want, size_t *room) {
  if (room) *room = 0;
  if (!r) return NULL;
  reader_compact(r);
  if (want == 0) want = 1;
  if (rstate__wire_buf_reserve(&r->buf, want) != RSTATE_OK) return NULL;
  if (room) *room = r->buf.cap - r->buf.len;
  return r->buf.data + r->buf.len;
}

int rstate__wire_reader_commit(rstate__wire_reader *r, size_t n) {
  if (!r || n > r->buf.cap - r->buf.len)
    return rstate__err(RSTATE_EINVAL, "wire: reader_commit: more bytes than prepare gave room for");
  if (n == 0 || r->err) return RSTATE_OK;
  const uint8_t *in = r->buf.data + r->buf.len;
  size_t keep = reader_keep(r, reader_scan(r, in, r->buf.len + n));
  r->buf.len += keep;
  return RSTATE_OK;
}

static int reader_fail(rstate__wire_reader *r) {
  if (r->err == RSTATE_EPROTO)
    return rstate__err(RSTATE_EPROTO, "wire: a frame's length field is 0 (a frame holds at least its type byte)");
  return rstate__err(RSTATE_ELIMIT,
                     "wire: a frame of %" PRIu32 " bytes is over the limit of %" PRIu32 " bytes (max_frame)",
                     r->bad_len, r->max_frame);
}

int rstate__wire_reader_next(rstate__wire_reader *r, rstate__wire_frame *out) {
  if (!r || !out) return rstate__err(RSTATE_EINVAL, "wire: reader_next: NULL argument");
  size_t avail = r->buf.len - r->pos;
  if (avail == 0 && r->err) return reader_fail(r);
  if (avail < RSTATE__WIRE_HEADER) return 0;
  uint32_t len = rstate__wire_get_u32(r->buf.data + r->pos);
  if (len > r->max_frame || len == 0) { /* max_frame may have been lowered since the scan */
    r->err = len == 0 ? RSTATE_EPROTO : RSTATE_ELIMIT;
    r->bad_len = len;
    r->buf.len = r->pos;
    r->scan = r->pos;
    return reader_fail(r);
  }
  if (avail - RSTATE__WIRE_HEADER < len) return 0;
  out->type = r->buf.data[r->pos + RSTATE__WIRE_HEADER];
  out->body = r->buf.data + r->pos + RSTATE__WIRE_HEADER + 1;
  out->len = (size_t)len - 1;
  r->pos += RSTATE__WIRE_HEADER + (size_t)len;
  return 1;
}
