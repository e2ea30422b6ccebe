/*
 * resp.h — the redis: backend's private header: RESP2/RESP3, the protocol
 * Redis speaks (resp.c), and the backend's shared pieces.
 *
 * The reader is pure, in the style of hiredis's redisReader: it is fed
 * bytes and hands back whole replies, or "need more"; it does no I/O. Every
 * length a peer declares (a bulk string, an array's count) is checked
 * against the reader's limits before anything is allocated, and a whole
 * reply is one allocation, freed with rstate__resp_free. The encoder writes
 * commands as RESP arrays of bulk strings.
 */
#ifndef RSTATE_REDIS_RESP_H
#define RSTATE_REDIS_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

typedef enum rstate__resp_type {
  RSTATE_RESP_STATUS = 1, /* +OK */
  RSTATE_RESP_ERROR,      /* -ERR ... and RESP3's !blob errors */
  RSTATE_RESP_INTEGER,    /* :42 */
  RSTATE_RESP_STRING,     /* $ bulk strings, = verbatim strings (without their "txt:"), ( big numbers */
  RSTATE_RESP_NIL,        /* $-1, *-1, _ */
  RSTATE_RESP_ARRAY,      /* * arrays, ~ sets, > pushes */
  RSTATE_RESP_MAP,        /* % maps: elem holds 2 * n items, key then value */
  RSTATE_RESP_DOUBLE,     /* ,3.5 */
  RSTATE_RESP_BOOL        /* #t, #f (integer 1 or 0) */
} rstate__resp_type;

typedef struct rstate__resp {
  rstate__resp_type type;
  char agg;        /* the aggregate's first byte ('*', '~', '>', '%'); 0 otherwise */
  int64_t integer; /* INTEGER, BOOL */
  double dbl;      /* DOUBLE */
  const char *str; /* STATUS, ERROR, STRING, DOUBLE's text: NUL-terminated, len bytes */
  size_t len;
  struct rstate__resp *elem; /* ARRAY: n items; MAP: 2 * n items */
  size_t n;
} rstate__resp;

typedef struct rstate__resp_limits {
  size_t max_bulk;     /* one bulk string's bytes; 0 = 64 MiB */
  size_t max_elements; /* one aggregate's declared count; 0 = 16 Mi */
  size_t max_reply;    /* bytes of one whole reply; 0 = 256 MiB */
  unsigned max_depth;  /* nesting of aggregates; 0 = 16 */
} rstate__resp_limits;

typedef struct rstate__resp_reader {
  char *buf; /* received bytes not consumed yet: buf[pos..len) */
  size_t pos, len, cap;
  size_t want; /* do not scan again before len - pos reaches this */
  rstate__resp_limits lim;
  int failed; /* once a reply is malformed the stream cannot be resynchronised */
} rstate__resp_reader;

/* A reader with these limits (NULL: the defaults). */
void rstate__resp_reader_init(rstate__resp_reader *r, const rstate__resp_limits *lim);
void rstate__resp_reader_free(rstate__resp_reader *r);
/* Appends n received bytes. RSTATE_ENOMEM, or RSTATE_ELIMIT when the reply
 * being received would outgrow max_reply (each with a sentence). */
int rstate__resp_feed(rstate__resp_reader *r, const void *p, size_t n);
/* Takes the next whole reply: 1 and *out (free it with rstate__resp_free),
 * 0 when more bytes are needed, or an error with a sentence: RSTATE_EPROTO
 * (malformed), RSTATE_ELIMIT (a declared length over a limit),
 * RSTATE_ENOMEM. After EPROTO or ELIMIT the reader keeps failing: the
 * connection must be dropped. */
int rstate__resp_next(rstate__resp_reader *r, rstate__resp **out);
void rstate__resp_free(rstate__resp *reply);

/* ---- encoding ---- */

typedef struct rstate__resp_buf {
  char *p;
  size_t len, cap;
} rstate__resp_buf;

void rstate__resp_buf_free(rstate__resp_buf *b);
/* Appends one command: an array of argc bulk strings (lens[i] bytes each;
 * lens NULL: NUL-terminated). RSTATE_ENOMEM. */
int rstate__resp_command(rstate__resp_buf *b, int argc, const char *const *argv, const size_t *lens);

/* ---- reading replies ---- */

/* The element i of an array reply, or NULL. */
const rstate__resp *rstate__resp_at(const rstate__resp *r, size_t i);
/* A string-like reply (STATUS, ERROR, STRING) equals s. */
int rstate__resp_is(const rstate__resp *r, const char *s);
/* Reads an unsigned decimal from a STRING, STATUS or non-negative INTEGER;
 * false when it is not one. */
int rstate__resp_u64(const rstate__resp *r, uint64_t *out);

#endif
