/*
 * resp.c — RESP2 and RESP3, the protocol Redis speaks: a pure reader that is
 * fed bytes and hands back whole replies, and the command encoder.
 *
 * A reply is parsed twice by the same code: a first pass checks it is whole
 * and well formed and counts its items and string bytes, without allocating;
 * the second fills one block of that size. A declared length is checked
 * against the limits before the bytes it announces are waited for, so a peer
 * cannot make the reader allocate what it did not send. When a reply is not
 * whole yet, the reader remembers how many bytes it needs at least and does
 * not scan again before they came, so a large reply arriving in pieces is
 * scanned a few times, not once per piece.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

#define MAX_LINE 65536 /* a status, error, number or length line */

static const rstate__resp_limits defaults = {
    .max_bulk = (size_t)64 << 20,
    .max_elements = (size_t)16 << 20,
    .max_reply = (size_t)256 << 20,
    .max_depth = 16,
};

void rstate__resp_reader_init(rstate__resp_reader *r, const rstate__resp_limits *lim) {
  memset(r, 0, sizeof *r);
  r->lim = defaults;
  if (lim) {
    if (lim->max_bulk) r->lim.max_bulk = lim->max_bulk;
    if (lim->max_elements) r->lim.max_elements = lim->max_elements;
    if (lim->max_reply) r->lim.max_reply = lim->max_reply;
    if (lim->max_depth) r->lim.max_depth = lim->max_depth;
  }
}

void rstate__resp_reader_free(rstate__resp_reader *r) {
  free(r->buf);
  r->buf = NULL;
  r->pos = r->len = r->cap = 0;
}

int rstate__resp_feed(rstate__resp_reader *r, const void *p, size_t n) {
  if (!n) return RSTATE_OK;
  if (r->pos && (r->pos == r->len || r->len - r->pos < r->pos)) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
  }
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n) cap *= 2;
    char *nb = realloc(r->buf, cap);
    if (!nb) return rstate__err(RSTATE_ENOMEM, "redis: out of memory for %zu bytes of replies", r->len + n);
    r->buf = nb;
    r->cap = cap;
  }
  memcpy(r->buf + r->len, p, n);
  r->len += n;
  return RSTATE_OK;
}

/* One pass over one reply. Counting (out == NULL): checks and counts, sets
 * want when incomplete. Building: fills nodes and strings from the block. */
typedef struct pass {
  const char *b;
  size_t len, pos;
  const rstate__resp_limits *lim;
  size_t nodes, bytes; /* counted */
  size_t want;         /* incomplete: bytes needed at least */
  rstate__resp *next_node;
  char *next_byte;
} pass;

enum { DONE = 1, MORE = 0 };

static int bad(const char *what, size_t at) {
  return rstate__err(RSTATE_EPROTO, "redis: malformed reply: %s at byte %zu", what, at);
}

/* A line from pos: *line, *n bytes without its CRLF; pos moves past it. */
static int line(pass *p, const char **l, size_t *n) {
  size_t avail = p->len - p->pos;
  const char *s = p->b + p->pos;
  const char *cr = memchr(s, '\r', avail < MAX_LINE + 1 ? avail : MAX_LINE + 1);
  if (!cr) {
    if (avail > MAX_LINE) return rstate__err(RSTATE_ELIMIT, "redis: a reply line is longer than %d bytes", MAX_LINE);
    p->want = p->len + 1;
    return MORE;
  }
  size_t k = (size_t)(cr - s);
  if (k + 1 >= avail) {
    p->want = p->pos + k + 2;
    return MORE;
  }
  if (cr[1] != '\n') return bad("CR without LF", p->pos + k);
  if (memchr(s, '\n', k)) return bad("LF inside a line", p->pos);
  *l = s;
  *n = k;
  p->pos += k + 2;
  return DONE;
}

static int parse_i64(const char *l, size_t n, int64_t *out) {
  size_t i = 0;
  bool neg = false;
  if (n && l[0] == '-') neg = true, i = 1;
  if (i == n || n - i > 19) return -1;
  uint64_t v = 0;
  for (; i < n; i++) {
    if (l[i] < '0' || l[i] > '9') return -1;
    v = v * 10 + (uint64_t)(l[i] - '0');
  }
  if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

static int parse_double(const char *l, size_t n, double *out) {
  char tmp[80];
  if (!n || n >= sizeof tmp) return -1;
  memcpy(tmp, l, n);
  tmp[n] = 0;
  if (!strcmp(tmp, "inf") || !strcmp(tmp, "+inf")) return *out = INFINITY, 0;
  if (!strcmp(tmp, "-inf")) return *out = -INFINITY, 0;
  if (!strcmp(tmp, "nan") || !strcmp(tmp, "-nan")) return *out = NAN, 0;
  for (size_t i = 0; i < n; i++)
    if (!strchr("0123456789+-.eE", tmp[i])) return -1;
  char *end;
  errno = 0;
  double d = strtod(tmp, &end);
  if (end != tmp + n) return -1;
  *out = d;
  return 0;
}

static char *put_bytes(pass *p, const char *s, size_t n) {
  char *d = p->next_byte;
  memcpy(d, s, n);
  d[n] = 0;
  p->next_byte += n + 1;
  return d;
}

static int value(pass *p, unsigned depth, rstate__resp *out);

/* An aggregate of count items (already multiplied for maps). */
static int items(pass *p, unsigned depth, size_t count, rstate__resp *out, bool keep) {
  rstate__resp *elem = NULL;
  if (out && keep) {
    elem = p->next_node;
    p->next_node += count;
    out->elem = elem;
  } else if (!out && keep) {
    p->nodes += count;
  }
  for (size_t i = 0; i < count; i++) {
    int rc = value(p, depth + 1, elem ? &elem[i] : NULL);
    if (rc <= 0) return rc;
  }
  return DONE;
}

/* Skips an attribute's map when out is NULL or fills nothing from it. */
static int skip_items(pass *p, unsigned depth, size_t count) {
  for (size_t i = 0; i < count; i++) {
    size_t nodes = p->nodes, bytes = p->bytes;
    rstate__resp *nn = p->next_node;
    char *nb = p->next_byte;
    int rc;
    if (p->next_node) {
      /* building: parse without writing (counting mode on the side) */
      p->next_node = NULL;
      p->next_byte = NULL;
      rc = value(p, depth + 1, NULL);
      p->next_node = nn;
      p->next_byte = nb;
    } else {
      rc = value(p, depth + 1, NULL);
    }
    p->nodes = nodes;
    p->bytes = bytes;
    if (rc <= 0) return rc;
  }
  return DONE;
}

static int value(pass *p, unsigned depth, rstate__resp *out) {
  for (;;) {
    if (p->pos >= p->len) {
      p->want = p->pos + 1;
      return MORE;
    }
    size_t at = p->pos;
    char t = p->b[p->pos++];
    const char *l = NULL;
    size_t n = 0;
    int rc = line(p, &l, &n);
    if (rc <= 0) {
      if (rc == MORE) p->pos = at; /* want stays absolute */
      return rc;
    }
    int64_t num = 0;
    switch (t) {
    case '+':
    case '-':
    case '(':
      if (out) {
        out->type = t == '+' ? RSTATE_RESP_STATUS : t == '-' ? RSTATE_RESP_ERROR : RSTATE_RESP_STRING;
        out->str = put_bytes(p, l, n);
        out->len = n;
      } else {
        p->bytes += n + 1;
      }
      return DONE;
    case ':':
      if (parse_i64(l, n, &num)) return bad("integer expected", at + 1);
      if (out) out->type = RSTATE_RESP_INTEGER, out->integer = num;
      return DONE;
    case ',': {
      double d;
      if (parse_double(l, n, &d)) return bad("double expected", at + 1);
      if (out) {
        out->type = RSTATE_RESP_DOUBLE;
        out->dbl = d;
        out->str = put_bytes(p, l, n);
        out->len = n;
      } else {
        p->bytes += n + 1;
      }
      return DONE;
    }
    case '#':
      if (n != 1 || (l[0] != 't' && l[0] != 'f')) return bad("boolean expected", at + 1);
      if (out) out->type = RSTATE_RESP_BOOL, out->integer = l[0] == 't';
      return DONE;
    case '_':
      if (n) return bad("null with a payload", at + 1);
      if (out) out->type = RSTATE_RESP_NIL;
      return DONE;
    case '$':
    case '!':
    case '=': {
      if (parse_i64(l, n, &num) || num < -1 || (num == -1 && t != '$')) return bad("bulk length expected", at + 1);
      if (num == -1) {
        if (out) out->type = RSTATE_RESP_NIL;
        return DONE;
      }
      if ((uint64_t)num > p->lim->max_bulk)
        return rstate__err(RSTATE_ELIMIT, "redis: a reply string of %lld bytes is over the limit of %zu",
                           (long long)num, p->lim->max_bulk);
      size_t k = (size_t)num;
      if (p->len - p->pos < k + 2) {
        p->want = p->pos + k + 2;
        p->pos = at;
        return MORE;
      }
      const char *s = p->b + p->pos;
      if (s[k] != '\r' || s[k + 1] != '\n') return bad("bulk string not ended by CRLF", p->pos + k);
      p->pos += k + 2;
      if (t == '=') {
        if (k < 4 || s[3] != ':') return bad("verbatim string without its format", at + 1);
        s += 4, k -= 4;
      }
      if (out) {
        out->type = t == '!' ? RSTATE_RESP_ERROR : RSTATE_RESP_STRING;
        out->str = put_bytes(p, s, k);
        out->len = k;
      } else {
        p->bytes += k + 1;
      }
      return DONE;
    }
    case '*':
    case '~':
    case '>':
    case '%':
    case '|': {
      if (parse_i64(l, n, &num) || num < -1 || (num == -1 && t != '*')) return bad("aggregate count expected", at + 1);
      if (num == -1) {
        if (out) out->type = RSTATE_RESP_NIL;
        return DONE;
      }
      if ((uint64_t)num > p->lim->max_elements)
        return rstate__err(RSTATE_ELIMIT, "redis: a reply of %lld items is over the limit of %zu", (long long)num,
                           p->lim->max_elements);
      if (depth + 1 >= p->lim->max_depth)
        return rstate__err(RSTATE_ELIMIT, "redis: a reply nested deeper than %u", p->lim->max_depth);
      size_t count = (size_t)num * (t == '%' || t == '|' ? 2 : 1);
      if (t == '|') { /* an attribute: skipped, the reply it decorates follows */
        rc = skip_items(p, depth, count);
        if (rc <= 0) {
          if (rc == MORE) p->pos = at;
          return rc;
        }
        continue;
      }
      if (out) {
        out->type = t == '%' ? RSTATE_RESP_MAP : RSTATE_RESP_ARRAY;
        out->agg = t;
        out->n = (size_t)num;
      }
      rc = items(p, depth, count, out, true);
      if (rc == MORE) p->pos = at;
      return rc;
    }
    default:
      return bad(t == '?' ? "streamed aggregates are not supported" : "unknown type byte", at);
    }
  }
}

int rstate__resp_next(rstate__resp_reader *r, rstate__resp **out) {
  *out = NULL;
  if (r->failed) return rstate__err(r->failed, "redis: the reply stream was malformed earlier");
  size_t avail = r->len - r->pos;
  if (!avail || avail < r->want) return MORE;
  pass p = {.b = r->buf + r->pos, .len = avail, .lim = &r->lim, .nodes = 1};
  int rc = value(&p, 0, NULL);
  if (rc < 0) {
    r->failed = rc;
    return rc;
  }
  if (rc == MORE) {
    if (p.want > r->lim.max_reply) { /* it will not fit */
      r->failed = RSTATE_ELIMIT;
      return rstate__err(RSTATE_ELIMIT, "redis: a reply of more than %zu bytes is over the limit", r->lim.max_reply);
    }
    r->want = p.want;
    return MORE;
  }
  size_t used = p.pos;
  if (used > r->lim.max_reply) {
    r->failed = RSTATE_ELIMIT;
    return rstate__err(RSTATE_ELIMIT, "redis: a reply of %zu bytes is over the limit of %zu", used, r->lim.max_reply);
  }
  size_t size = p.nodes * sizeof(rstate__resp) + p.bytes;
  rstate__resp *block = calloc(1, size ? size : 1);
  if (!block) return rstate__err(RSTATE_ENOMEM, "redis: out of memory for a reply of %zu bytes", size);
  pass b = {.b = r->buf + r->pos, .len = avail, .lim = &r->lim};
  b.next_node = block + 1;
  b.next_byte = (char *)(block + p.nodes);
  value(&b, 0, block); /* cannot fail: the first pass checked it */
  r->pos += used;
  r->want = 0;
  if (r->pos == r->len) r->pos = r->len = 0;
  *out = block;
  return DONE;
}

void rstate__resp_free(rstate__resp *reply) { free(reply); }

/* ---- encoding ---- */

void rstate__resp_buf_free(rstate__resp_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

static int reserve(rstate__resp_buf *b, size_t more) {
  if (b->len + more <= b->cap) return RSTATE_OK;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more) cap *= 2;
  char *np = realloc(b->p, cap);
  if (!np) return rstate__err(RSTATE_ENOMEM, "redis: out of memory for a command of %zu bytes", b->len + more);
  b->p = np;
  b->cap = cap;
  return RSTATE_OK;
}

int rstate__resp_buf_put(rstate__resp_buf *b, const void *p, size_t n) {
  if (reserve(b, n)) return RSTATE_ENOMEM;
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
  return RSTATE_OK;
}

static void put_len(rstate__resp_buf *b, char t, size_t n) {
  b->len += (size_t)snprintf(b->p + b->len, 24, "%c%zu\r\n", t, n);
}

int rstate__resp_command(rstate__resp_buf *b, int argc, const char *const *argv, const size_t *lens) {
  size_t total = 24;
  for (int i = 0; i < argc; i++) total += 24 + 2 + (lens ? lens[i] : strlen(argv[i]));
  if (reserve(b, total)) return RSTATE_ENOMEM;
  put_len(b, '*', (size_t)argc);
  for (int i = 0; i < argc; i++) {
    size_t n = lens ? lens[i] : strlen(argv[i]);
    put_len(b, '$', n);
    if (n) memcpy(b->p + b->len, argv[i], n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
  }
  return RSTATE_OK;
}

/* ---- reading replies ---- */

const rstate__resp *rstate__resp_at(const rstate__resp *r, size_t i) {
  if (!r || (r->type != RSTATE_RESP_ARRAY && r->type != RSTATE_RESP_MAP)) return NULL;
  size_t n = r->type == RSTATE_RESP_MAP ? 2 * r->n : r->n;
  return i < n ? &r->elem[i] : NULL;
}

int rstate__resp_is(const rstate__resp *r, const char *s) {
  if (!r || (r->type != RSTATE_RESP_STATUS && r->type != RSTATE_RESP_ERROR && r->type != RSTATE_RESP_STRING))
    return 0;
  size_t n = strlen(s);
  return r->len == n && !memcmp(r->str, s, n);
}

int rstate__resp_u64(const rstate__resp *r, uint64_t *out) {
  if (!r) return 0;
  if (r->type == RSTATE_RESP_INTEGER) {
    if (r->integer < 0) return 0;
    *out = (uint64_t)r->integer;
    return 1;
  }
  if (r->type != RSTATE_RESP_STRING && r->type != RSTATE_RESP_STATUS) return 0;
  if (!r->len || r->len > 20) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < r->len; i++) {
    if (r->str[i] < '0' || r->str[i] > '9') return 0;
    uint64_t d = (uint64_t)(r->str[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  *out = v;
  return 1;
}
