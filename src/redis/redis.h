/*
 * redis.h — the redis: backend's private header: RESP2/RESP3, the protocol
 * Redis speaks (resp.c), and the backend's shared pieces.
 *
 * The reader is pure, in the style of hiredis's redisReader: it is fed
 * bytes and hands back whole replies, or "need more"; it does no I/O. Every
 * length a peer declares (a bulk string, an array's count) is checked
 * against the reader's limits before anything is allocated, and a whole
 * reply is one allocation, freed with rstate__resp_free. The encoder writes
 * commands as RESP arrays of bulk strings.
 */
#ifndef RSTATE_REDIS_H
#define RSTATE_REDIS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"
#include "types/types.h"
#include "util/util.h"

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
/* Appends n bytes. RSTATE_ENOMEM. */
int rstate__resp_buf_put(rstate__resp_buf *b, const void *p, size_t n);
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

/* ---- conn.c: one blocking connection to Redis ---- */

typedef struct rstate__redis_conn {
  int fd;   /* -1: not connected */
  int wake; /* -1, or an fd whose readability ends a wait for a reply (not owned) */
  rstate__resp_reader rd;
  rstate__resp_buf out;
} rstate__redis_conn;

void rstate__redis_conn_init(rstate__redis_conn *c);
/* Drops the connection (the reader starts again); c can connect again. */
void rstate__redis_conn_close(rstate__redis_conn *c);
void rstate__redis_conn_free(rstate__redis_conn *c);
/* Connects within timeout_ms and authenticates when pass is set (user may
 * be NULL). RSTATE_EIO, RSTATE_ETIMEDOUT, RSTATE_EPERM (password refused). */
int rstate__redis_connect(rstate__redis_conn *c, const rstate__addr *addr, const char *uri, const char *user,
                          const char *pass, int timeout_ms);
/* Sends c->out and reads one reply within timeout_ms. A failure closes the
 * connection: RSTATE_ECLOSED (lost), RSTATE_ETIMEDOUT, RSTATE_EPROTO. */
int rstate__redis_roundtrip(rstate__redis_conn *c, const char *uri, int timeout_ms, rstate__resp **reply);
/* The two halves, for pipelining (several requests in flight, their
 * replies read in order): send writes len bytes to fd (another thread may
 * be in recv on the same connection); recv reads the next reply within
 * timeout_ms. Neither closes the connection: RSTATE_ECLOSED (lost, or the
 * wake fd fired), RSTATE_ETIMEDOUT, RSTATE_EPROTO, RSTATE_ELIMIT. */
int rstate__redis_send(int fd, const char *p, size_t len, const char *uri);
int rstate__redis_recv(rstate__redis_conn *c, const char *uri, int timeout_ms, rstate__resp **reply);
int rstate__redis_command(rstate__redis_conn *c, const char *uri, int timeout_ms, rstate__resp **reply, int argc,
                          const char *const *argv, const size_t *lens);
/* The code and sentence for an error reply: EPERM (auth, or the ACL refused
 * a command, inside a function too), ECLOSED (not the primary now), ELIMIT
 * (Redis out of memory), EPROTO (anything else). */
int rstate__redis_error(const rstate__resp *e, const char *uri);
/* Calls the library's function fn (FCALL, or FCALL_RO when ro) on the four
 * keys, loading the library first when the server lacks it. An error reply
 * is turned into its code (rstate__redis_error); *reply is never an error. */
int rstate__redis_fcall(rstate__redis_conn *c, const char *uri, int timeout_ms, bool ro, const char *fn,
                        const char *const *keys, int argc, const char *const *argv, const size_t *lens,
                        rstate__resp **reply);

/* ---- commit.c: group commit of sets, pipelined ---- */

typedef struct rstate__redis_batch rstate__redis_batch;

/* One set request: its arguments to the group Function (token, source,
 * meta, count, then five per item; they stay valid until the call
 * returns), and its answer. */
typedef struct rstate__redis_req {
  struct rstate__redis_req *next;
  const char *const *argv;
  const size_t *lens;
  int argc;
  pthread_cond_t cond; /* its caller waits on it */
  /* the answer */
  bool done;
  int rc, tries;
  char err[512];               /* rc's sentence */
  const rstate__resp *answer;  /* this request's part of the reply (rc 0); valid until released */
  rstate__redis_batch *batch;  /* the reply it is part of */
  long long acked;             /* replicas that confirmed (replicas > 0); -1: not asked (why) */
  char why[256];
} rstate__redis_req;

typedef struct rstate__redis_commit_conf {
  const char *uri;
  const char *const *keys; /* the store's four keys */
  const char *maxlen;      /* the log's length */
  int request_timeout_ms, replicas, replica_timeout_ms;
  int (*connect)(void *ud, rstate__redis_conn *c); /* to the primary */
  void *ud;
} rstate__redis_commit_conf;

typedef struct rstate__redis_commit {
  rstate__redis_commit_conf conf;
  pthread_mutex_t lock;
  rstate__redis_conn c;
  rstate__redis_req *pending, *pending_tail; /* not sent yet */
  size_t n_pending;
  rstate__redis_batch *flights, *flights_tail; /* sent, oldest first */
  size_t n_flights;
  bool sending, reading, broken, reload;
} rstate__redis_commit;

void rstate__redis_commit_init(rstate__redis_commit *q, const rstate__redis_commit_conf *conf);
void rstate__redis_commit_free(rstate__redis_commit *q);
/* Sends r (with other threads' requests) and waits for its answer: 0 and
 * r->answer (release it), or the code and sentence of a call that got no
 * answer: RSTATE_ECLOSED (lost or not connected: the outcome is unknown),
 * RSTATE_ETIMEDOUT, RSTATE_EPROTO, RSTATE_EPERM, RSTATE_ELIMIT, RSTATE_ENOMEM. */
int rstate__redis_commit_call(rstate__redis_commit *q, rstate__redis_req *r);
void rstate__redis_commit_release(rstate__redis_commit *q, rstate__redis_req *r);
/* The requests queued and not sent yet (tests wait on it to know a group
 * call's content), and a redis: backend's queue (backend.c). */
size_t rstate__redis_commit_queued(rstate__redis_commit *q);
rstate__redis_commit *rstate__redis_commit_of(struct rstate_backend *b);

/* ---- sentinel.c ---- */

/* Connects c to MASTER's primary as the Sentinels name it (each asked in
 * turn), once it says it is a primary. RSTATE_EIO, RSTATE_ETIMEDOUT,
 * RSTATE_EPERM. */
int rstate__redis_sentinel_connect(rstate__redis_conn *c, const rstate__addr *sentinels, size_t n,
                                   const char *master, const char *uri, const char *user, const char *pass,
                                   int timeout_ms);

/* ---- library.c: the Redis Function library ---- */

#define RSTATE_REDIS_LIB "rstate_3" /* library and function prefix: the version of the functions (keys: fmt) */
/* The library's text, line by line, NULL-terminated (C11 bounds one string
 * literal at 4095 bytes). */
extern const char *const rstate__redis_library[];

/* ---- codec.c: values, definitions and records as kept in Redis ---- */

/* A value as text: "f" and %.17g, "i" and the decimal, "b0"/"b1", "s" and
 * the bytes. Appends to b. RSTATE_ENOMEM. */
int rstate__redis_put_value(rstate__resp_buf *b, const rstate_value *v);
/* Reads one back; a string borrows p (NUL-terminated at n). RSTATE_EPROTO. */
int rstate__redis_get_value(const char *p, size_t n, rstate_value *out);
/* A length-prefixed item, "LEN:BYTES", and reading one: false at the end or
 * when malformed (*bad set). */
int rstate__redis_pack(rstate__resp_buf *b, const char *p, size_t n);
bool rstate__redis_unpack(const char **p, const char *end, const char **s, size_t *n, bool *bad);

/* A definition read back: def and its constraints point into mem. */
typedef struct rstate__redis_def {
  rstate_var_def def;
  rstate_constraints c;
  const char **choices;
  char *mem;
} rstate__redis_def;
/* The canonical text of a definition that rstate__spec_new accepted (two
 * definitions rstate__spec_same calls the same give the same text). */
int rstate__redis_put_def(rstate__resp_buf *b, const rstate_var_def *def, const rstate__spec *spec);
int rstate__redis_get_def(const char *p, size_t n, rstate__redis_def *out);
void rstate__redis_def_free(rstate__redis_def *d);

/* A variable's record ("VERSION REVISION TIME TYPE DEFREV VALUE"); the value
 * borrows p. RSTATE_EPROTO. */
typedef struct rstate__redis_rec {
  uint64_t version, revision, defrev;
  int64_t ts;
  rstate_type type;
  rstate_value value;
} rstate__redis_rec;
int rstate__redis_get_rec(const char *p, size_t n, rstate__redis_rec *out);

#endif
