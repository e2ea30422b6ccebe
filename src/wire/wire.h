/*
 * wire.h — the wire codec: frames of the client/server protocol
 * (docs/PROTOCOL.md is the specification; this header is the C view of it).
 * framing.c holds the buffers and the reader, codec.c the frame table and
 * the message codecs.
 *
 * Pure code: no I/O, no threads, no globals. Three parts:
 *
 *  - rstate__wire_buf: a growable byte buffer. Encoders append whole frames
 *    to one (the sender writes it out and drops what was written with
 *    rstate__wire_buf_consume); decoders use one as scratch memory.
 *  - rstate__wire_reader: hiredis-style framing. Fed bytes, it hands back
 *    whole frames (type + body) or "need more". A frame's declared length is
 *    checked against max_frame before a byte of its body is stored.
 *  - decoders: a frame body into C structs whose strings are NUL-terminated
 *    copies and whose arrays live in a caller-provided scratch buffer (one
 *    allocation per decode at most, bounded by a small multiple of the body
 *    length; none once the scratch is big enough), and encoders of the same
 *    structs. Decoding then encoding gives back the same bytes (the encoding
 *    is canonical; HELLO's trailing bytes aside).
 *
 * Every function returns RSTATE_OK or a negative RSTATE_E* code and sets the
 * rstate_last_error() sentence on failure (rstate__err). A failed encoder
 * leaves the buffer as it was; a failed decoder leaves *out zeroed.
 *
 * Nothing here checks names, UTF-8 or constraints: the receiver does that
 * with the library's own checks. The codec checks structure only: lengths
 * and counts against the bytes that remain, tags (value kinds, variable
 * types, event kinds, access, watch status) and flag bits against the ones
 * version 1 defines, no NUL byte inside a string, no trailing bytes.
 */
#ifndef RSTATE_WIRE_H
#define RSTATE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reactivestate.h"

/* ---- constants (docs/PROTOCOL.md, "Constants") ------------------------- */

/* The highest protocol version this library speaks (PROTOCOL.md, 9):
 * version 2 adds HISTORY and ROLLBACK. A connection speaks the lower of the
 * two sides' versions; a frame of a later version than the connection's is
 * never sent on it, and refused as malformed when received. */
#define RSTATE__WIRE_VERSION 2
/* The version that brought HISTORY, HISTORY_PART, ROLLBACK, ROLLBACK_REPLY. */
#define RSTATE__WIRE_VERSION_HISTORY 2
#define RSTATE__WIRE_MAGIC "RSTATE" /* 6 bytes, no NUL on the wire */
#define RSTATE__WIRE_MAGIC_LEN 6
/* max_frame of both readers until WELCOME has been received. */
#define RSTATE__WIRE_HANDSHAKE_MAX 65536u
/* The smallest max_frame a WELCOME may announce. */
#define RSTATE__WIRE_MIN_MAX_FRAME 4096u
/* The server's default max_frame (rstate_server_opts.max_frame 0). */
#define RSTATE__WIRE_DEFAULT_MAX_FRAME (1024u * 1024u)
/* ERROR.failed_index when no single item is to blame. */
#define RSTATE__WIRE_NO_INDEX UINT64_MAX
/* Bytes of a frame's length field, which counts the type byte and the body
 * after it (so it is at least 1), not itself. */
#define RSTATE__WIRE_HEADER 4

/* Little-endian 32-bit integers, as the length field and most fields are. */
static inline uint32_t rstate__wire_get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void rstate__wire_set_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* The limit a client's reader uses once WELCOME announced max_frame: one
 * frame carrying a single event whose old and new values both came through
 * the protocol fits in it (PROTOCOL.md, "Limits"). */
static inline uint32_t rstate__wire_client_limit(uint32_t max_frame) {
  uint64_t l = 2 * (uint64_t)max_frame + 65536;
  return l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
}

/* The frames of PROTOCOL.md, one row each, the one list of them (the enum
 * below, the names, who may send each, and the codec's table come from it):
 * X(NAME, type byte, sender, layout). Requests are 0x10-0x1D (0x1C and
 * 0x1D since version 2); their
 * specific replies are request|0x20; DEFINE, UNDEFINE and UNWATCH are
 * answered with OK; ERROR with request id 0 means the connection failed;
 * EVENT is pushed. sender: CLIENT, SERVER or BOTH. layout: the member of
 * rstate__wire_msg.u the frame decodes to (frames of one layout share it). */
#define RSTATE__WIRE_FRAMES(X)              \
  X(HELLO, 0x01, CLIENT, hello)             \
  X(WELCOME, 0x02, SERVER, welcome)         \
  X(PING, 0x03, BOTH, ping)                 \
  X(PONG, 0x04, BOTH, ping)                 \
  X(ERROR, 0x05, SERVER, error)             \
  X(OK, 0x06, SERVER, req)                  \
  X(DEFINE, 0x10, CLIENT, define)           \
  X(UNDEFINE, 0x11, CLIENT, name)           \
  X(GET, 0x12, CLIENT, name)                \
  X(GET_MANY, 0x13, CLIENT, names)          \
  X(SET_MANY, 0x14, CLIENT, set_many)       \
  X(INFO, 0x15, CLIENT, name)               \
  X(LIST, 0x16, CLIENT, names)              \
  X(SNAPSHOT, 0x17, CLIENT, names)          \
  X(WATCH, 0x18, CLIENT, watch)             \
  X(UNWATCH, 0x19, CLIENT, unwatch)         \
  X(STATS, 0x1A, CLIENT, req)               \
  X(REVISION, 0x1B, CLIENT, req)            \
  X(HISTORY, 0x1C, CLIENT, history)         \
  X(ROLLBACK, 0x1D, CLIENT, rollback)       \
  X(GET_REPLY, 0x32, SERVER, get_reply)     \
  X(GET_MANY_PART, 0x33, SERVER, values)    \
  X(SET_MANY_REPLY, 0x34, SERVER, rev)      \
  X(INFO_REPLY, 0x35, SERVER, info_reply)   \
  X(LIST_PART, 0x36, SERVER, list)          \
  X(SNAPSHOT_PART, 0x37, SERVER, snapshot)  \
  X(WATCH_REPLY, 0x38, SERVER, watch_reply) \
  X(STATS_REPLY, 0x3A, SERVER, stats)       \
  X(REVISION_REPLY, 0x3B, SERVER, rev)      \
  X(HISTORY_PART, 0x3C, SERVER, hist)       \
  X(ROLLBACK_REPLY, 0x3D, SERVER, rev)      \
  X(EVENT, 0x40, SERVER, events)

enum {
#define RSTATE__WIRE_TYPE_ENUM(name, code, from, layout) RSTATE__WIRE_##name = code,
  RSTATE__WIRE_FRAMES(RSTATE__WIRE_TYPE_ENUM)
#undef RSTATE__WIRE_TYPE_ENUM
};

/* Senders (the table's third column). */
enum { RSTATE__WIRE_FROM_CLIENT = 1, RSTATE__WIRE_FROM_SERVER = 2, RSTATE__WIRE_FROM_BOTH = 3 };

/* WELCOME.access */
enum { RSTATE__WIRE_READ_WRITE = 1, RSTATE__WIRE_READ_ONLY = 2 };
/* WATCH.flags */
enum { RSTATE__WIRE_WATCH_INITIAL = 0x01 };
/* *_PART.flags: more frames of this reply follow. EVENT.flags: more frames
 * of this group follow (a group is normally the events of one revision;
 * after server-side coalescing it may span several, see PROTOCOL.md 6.2). */
enum { RSTATE__WIRE_MORE = 0x01 };
/* WATCH_REPLY.status */
enum { RSTATE__WIRE_WATCH_NEW = 0, RSTATE__WIRE_WATCH_RESUMED = 1, RSTATE__WIRE_WATCH_GAP = 2 };

/* "HELLO", "GET_MANY_PART", ...; "unknown" for a type not listed above. */
const char *rstate__wire_type_name(uint8_t type);
/* True for the types listed above. */
bool rstate__wire_type_known(uint8_t type);
/* True when a server may receive this type (HELLO, PING, PONG, requests);
 * a client may receive the others, PING and PONG. */
bool rstate__wire_type_to_server(uint8_t type);
bool rstate__wire_type_to_client(uint8_t type);

/* ---- buffers ----------------------------------------------------------- */

typedef struct rstate__wire_buf {
  uint8_t *data;
  size_t len;     /* bytes in use */
  size_t cap;     /* bytes allocated */
  uint32_t limit; /* encoders: 0, or the largest length field a frame may have
                     (the peer's max_frame); a longer frame is RSTATE_ELIMIT */
} rstate__wire_buf;

void rstate__wire_buf_init(rstate__wire_buf *b); /* empty, no limit, nothing allocated */
void rstate__wire_buf_free(rstate__wire_buf *b); /* frees the bytes; b is empty again (limit kept) */
/* Room for extra more bytes. RSTATE_ENOMEM (b unchanged). */
int rstate__wire_buf_reserve(rstate__wire_buf *b, size_t extra);
/* Drops the first n bytes (n <= len), e.g. after writing them to a socket. */
void rstate__wire_buf_consume(rstate__wire_buf *b, size_t n);

/* ---- framing ----------------------------------------------------------- */

/* A whole frame: the type byte and the body after it. */
typedef struct rstate__wire_frame {
  uint8_t type;
  const uint8_t *body;
  size_t len; /* body bytes: the length field minus 1 */
} rstate__wire_frame;

/*
 * The reader. Set max_frame at init; it may be changed between calls (the
 * client raises it from RSTATE__WIRE_HANDSHAKE_MAX once WELCOME is in).
 * Framing errors are reported by next(), after every whole frame before the
 * bad one has been returned, and are sticky: the connection is to be closed.
 * The bytes of a frame whose length field is refused are never stored.
 * One reader per connection; no locking (one thread at a time).
 */
typedef struct rstate__wire_reader {
  rstate__wire_buf buf; /* bytes received, from pos on not yet returned */
  size_t pos;           /* start of the next frame in buf */
  size_t scan;          /* start of the first frame header not yet checked */
  uint32_t max_frame;   /* the largest length field accepted */
  int err;              /* 0, or the error next() returns once the frames before it are out */
  uint32_t bad_len;     /* the refused length field, for the sentence */
} rstate__wire_reader;

void rstate__wire_reader_init(rstate__wire_reader *r, uint32_t max_frame);
void rstate__wire_reader_free(rstate__wire_reader *r);
/* Takes n bytes (copied). Each frame header is checked as soon as its four
 * bytes are in, before anything after it is stored: only the bytes up to the
 * start of a frame whose length is refused are kept, so a refused length
 * never causes an allocation, and once a header has been refused every
 * later byte is dropped. RSTATE_OK, or RSTATE_ENOMEM (nothing taken, the
 * reader as before). Framing errors come from next(). */
int rstate__wire_reader_feed(rstate__wire_reader *r, const void *bytes, size_t n);
/* Zero-copy alternative to feed, for read(2) straight into the reader:
 * prepare returns room for at least want bytes (NULL on ENOMEM; *room gets
 * the room available), commit(n) takes the n bytes written there (n <= *room,
 * else RSTATE_EINVAL). Same checks and returns as feed; the room is made
 * before any bytes are seen, so it depends on want and on what is buffered,
 * never on a declared length. After an error, committed bytes are dropped. */
uint8_t *rstate__wire_reader_prepare(rstate__wire_reader *r, size_t want, size_t *room);
int rstate__wire_reader_commit(rstate__wire_reader *r, size_t n);
/* How much a connection asks prepare for: RSTATE__WIRE_READ_FIRST at first,
 * doubling up to max after each read that filled all the room it had (got ==
 * room), so an idle connection holds a small buffer and a busy one reads in
 * large batches. Returns the next read size. */
#define RSTATE__WIRE_READ_FIRST 4096u
static inline size_t rstate__wire_read_size(size_t size, size_t got, size_t room, size_t max) {
  return got == room && size < max ? (2 * size < max ? 2 * size : max) : size;
}
/* 1: *out is the next whole frame (its body stays valid until the next
 * feed, prepare, commit or free: next() itself moves nothing, so several
 * frames may be held at once); 0: need more bytes; RSTATE_ELIMIT: a length
 * field above max_frame; RSTATE_EPROTO: a length field of 0. Frames of any
 * type byte come out: the caller refuses types it does not take. */
int rstate__wire_reader_next(rstate__wire_reader *r, rstate__wire_frame *out);

/* ---- messages ---------------------------------------------------------- */

/* Strings are NUL-terminated; a decoder never yields a NULL string except
 * where marked "NULL: absent" (optional strings). */

typedef struct rstate__wire_hello {
  uint16_t version;      /* the highest version the client speaks */
  uint32_t heartbeat_ms; /* wanted; 0: the server's */
  const char *token;     /* "" when none (encoder: NULL is "") */
  uint8_t flags;         /* none defined in version 1: send 0, ignore on receipt */
} rstate__wire_hello;

typedef struct rstate__wire_welcome {
  uint16_t version;      /* the version of this connection, >= 1 */
  uint64_t instance_id;  /* random per server start */
  uint32_t heartbeat_ms; /* interval in force, >= 1 */
  uint64_t revision;     /* store revision at the handshake */
  uint32_t max_frame;    /* >= RSTATE__WIRE_MIN_MAX_FRAME */
  uint8_t access;        /* RSTATE__WIRE_READ_WRITE or _READ_ONLY */
} rstate__wire_welcome;

typedef struct rstate__wire_error {
  uint32_t req;          /* the failed request; 0: the connection (closed after) */
  int32_t code;          /* a negative RSTATE_E* code */
  const char *sentence;  /* rstate_last_error() on the server; may be "" */
  uint64_t failed_index; /* SET_MANY: the item to blame; else RSTATE__WIRE_NO_INDEX */
} rstate__wire_error;

/* OK, STATS, REVISION: a request id alone. */
typedef struct rstate__wire_req {
  uint32_t req;
} rstate__wire_req;

/* PING, PONG. */
typedef struct rstate__wire_ping {
  uint64_t payload;
} rstate__wire_ping;

/* DEFINE. Decoded: def.constraints always points to constraints in the
 * scratch (all zero: none); def.description NULL when absent; the
 * constraints' choices NULL when there are none, module_namespace and
 * pattern NULL when absent. Encoded: def.constraints may be NULL. */
typedef struct rstate__wire_define {
  uint32_t req;
  rstate_var_def def;
} rstate__wire_define;

/* UNDEFINE, GET, INFO. */
typedef struct rstate__wire_name {
  uint32_t req;
  const char *name;
} rstate__wire_name;

/* GET_MANY (names, n >= 0), LIST and SNAPSHOT (patterns; n 0: everything). */
typedef struct rstate__wire_names {
  uint32_t req;
  const char *const *names;
  size_t n;
} rstate__wire_names;

/* SET_MANY. Decoded: expected always has n entries; opts.source NULL when
 * absent. Encoded: expected may be NULL (all 0: any version). */
typedef struct rstate__wire_set_many {
  uint32_t req;
  const rstate_assign *items;
  const uint64_t *expected; /* per item; 0: any version */
  size_t n;
  rstate_set_opts opts;
} rstate__wire_set_many;

typedef struct rstate__wire_watch {
  uint32_t req;
  uint64_t sub;          /* chosen by the client, nonzero, unique on the connection */
  uint8_t flags;         /* RSTATE__WIRE_WATCH_INITIAL */
  uint64_t resume_after; /* 0: no resume */
  const char *const *patterns;
  size_t n;
} rstate__wire_watch;

typedef struct rstate__wire_unwatch {
  uint32_t req;
  uint64_t sub;
} rstate__wire_unwatch;

typedef struct rstate__wire_get_reply {
  uint32_t req;
  rstate_type type;
  rstate_value value;
  uint64_t version;
  uint64_t revision;
  int64_t updated_ns;
} rstate__wire_get_reply;

/* HISTORY (version 2): the kept versions of name above after_version. */
typedef struct rstate__wire_history {
  uint32_t req;
  const char *name;
  uint64_t after_version;
} rstate__wire_history;

/* ROLLBACK (version 2): name back to the value it had at version, as a new
 * change with opts' source (NULL: absent) and meta. */
typedef struct rstate__wire_rollback {
  uint32_t req;
  const char *name;
  uint64_t version;
  rstate_set_opts opts;
} rstate__wire_rollback;

/* HISTORY_PART (version 2): entries oldest first; value, source and meta of
 * each live in the scratch (decoded) or are borrowed (encoded). revision:
 * the store revision when the history was read. */
typedef struct rstate__wire_hist_part {
  uint32_t req;
  uint8_t flags; /* RSTATE__WIRE_MORE */
  uint64_t revision;
  const rstate_history_entry *entries;
  size_t n;
} rstate__wire_hist_part;

/* SET_MANY_REPLY, REVISION_REPLY, ROLLBACK_REPLY. */
typedef struct rstate__wire_rev {
  uint32_t req;
  uint64_t revision;
} rstate__wire_rev;

typedef struct rstate__wire_info_reply {
  uint32_t req;
  rstate_var_info info;
} rstate__wire_info_reply;

/* GET_MANY_PART. */
typedef struct rstate__wire_values_part {
  uint32_t req;
  uint8_t flags; /* RSTATE__WIRE_MORE */
  uint64_t revision;
  const rstate_value *values;
  size_t n;
} rstate__wire_values_part;

typedef struct rstate__wire_list_item {
  const char *name;
  rstate_type type;
} rstate__wire_list_item;

typedef struct rstate__wire_list_part {
  uint32_t req;
  uint8_t flags;
  uint64_t revision;
  const rstate__wire_list_item *items;
  size_t n;
} rstate__wire_list_part;

typedef struct rstate__wire_var {
  const char *name;
  rstate_type type;
  rstate_value value;
  uint64_t version;
  int64_t updated_ns;
} rstate__wire_var;

typedef struct rstate__wire_snapshot_part {
  uint32_t req;
  uint8_t flags;
  uint64_t revision;
  const rstate__wire_var *vars;
  size_t n;
} rstate__wire_snapshot_part;

typedef struct rstate__wire_watch_reply {
  uint32_t req;
  uint64_t sub;
  uint8_t status;     /* RSTATE__WIRE_WATCH_NEW, _RESUMED, _GAP */
  uint64_t revision;  /* NEW, GAP: the registration revision; RESUMED: resume_after */
  uint64_t n_initial; /* INITIAL events that follow for this sub */
} rstate__wire_watch_reply;

typedef struct rstate__wire_stat {
  const char *key;
  uint64_t value;
} rstate__wire_stat;

typedef struct rstate__wire_stats_reply {
  uint32_t req;
  const rstate__wire_stat *stats;
  size_t n;
} rstate__wire_stats_reply;

/* One event of an EVENT frame. kind: INITIAL, CHANGED, DEFINED or DELETED
 * (RESYNC never travels: the client makes those). */
typedef struct rstate__wire_event {
  rstate_event_kind kind;
  const char *name;
  rstate_type type;
  rstate_value old_value; /* RSTATE_NONE when there is none */
  rstate_value new_value;
  uint64_t version;
  int64_t timestamp_ns;
  uint32_t coalesced;
} rstate__wire_event;

/* EVENT: n >= 1 events of one subscription and one store revision, which
 * share source and meta. */
typedef struct rstate__wire_events {
  uint64_t sub;
  uint64_t revision;
  uint8_t flags;      /* RSTATE__WIRE_MORE: more frames of this group follow */
  const char *source; /* NULL: absent */
  const rstate_meta *meta;
  size_t n_meta;
  const rstate__wire_event *events;
  size_t n;
} rstate__wire_events;

/* Any frame, decoded. type says which member is set:
 *   hello: HELLO            welcome: WELCOME        ping: PING, PONG
 *   error: ERROR            req: OK, STATS, REVISION
 *   define: DEFINE          name: UNDEFINE, GET, INFO
 *   names: GET_MANY, LIST, SNAPSHOT                 set_many: SET_MANY
 *   watch: WATCH            unwatch: UNWATCH        get_reply: GET_REPLY
 *   rev: SET_MANY_REPLY, REVISION_REPLY             info_reply: INFO_REPLY
 *   values: GET_MANY_PART   list: LIST_PART         snapshot: SNAPSHOT_PART
 *   watch_reply: WATCH_REPLY                        stats: STATS_REPLY
 *   events: EVENT */
typedef struct rstate__wire_msg {
  uint8_t type;
  union {
    rstate__wire_hello hello;
    rstate__wire_welcome welcome;
    rstate__wire_ping ping;
    rstate__wire_error error;
    rstate__wire_req req;
    rstate__wire_define define;
    rstate__wire_name name;
    rstate__wire_names names;
    rstate__wire_set_many set_many;
    rstate__wire_watch watch;
    rstate__wire_unwatch unwatch;
    rstate__wire_get_reply get_reply;
    rstate__wire_rev rev;
    rstate__wire_info_reply info_reply;
    rstate__wire_values_part values;
    rstate__wire_list_part list;
    rstate__wire_snapshot_part snapshot;
    rstate__wire_watch_reply watch_reply;
    rstate__wire_stats_reply stats;
    rstate__wire_events events;
    rstate__wire_history history;
    rstate__wire_rollback rollback;
    rstate__wire_hist_part hist;
  } u;
} rstate__wire_msg;

/* ---- decoding ---------------------------------------------------------- */

/*
 * Decodes a frame body into *out. Strings and arrays are written to scratch
 * (reset, then grown once if it is too small for the worst case of a body
 * of len bytes of this type: at most 25 * len + 256 bytes for GET_MANY_PART,
 * whose NONE values take 1 byte on the wire and 24 in memory, and at most
 * 7 * len + 256 for the others; the worst case is reserved, not touched,
 * so only what is used becomes resident) and stay valid until
 * scratch is used again or freed; nothing points into body, so the frame may
 * be dropped at once. Errors: RSTATE_EPROTO (an unknown type; a body that is
 * truncated, has trailing bytes (except HELLO, whose later bytes are for
 * later versions), a count larger than the bytes left could hold, a bad tag
 * or flag bit, a NUL byte inside a string, a number out of its range),
 * RSTATE_ENOMEM, RSTATE_EINVAL (NULL arguments). On failure *out is zeroed
 * except out->type.
 */
int rstate__wire_decode(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                        rstate__wire_msg *out);
static inline int rstate__wire_decode_frame(const rstate__wire_frame *f, rstate__wire_buf *scratch,
                                            rstate__wire_msg *out) {
  return rstate__wire_decode(f->type, f->body, f->len, scratch, out);
}

/* The same, one body layout each (type chooses among the types sharing a
 * layout, for the sentences; the decoders of layouts without strings or
 * arrays take no scratch). */
int rstate__wire_decode_hello(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_hello *out);
int rstate__wire_decode_welcome(const uint8_t *body, size_t len, rstate__wire_welcome *out);
int rstate__wire_decode_ping(uint8_t type, const uint8_t *body, size_t len, rstate__wire_ping *out);
int rstate__wire_decode_error(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_error *out);
int rstate__wire_decode_req(uint8_t type, const uint8_t *body, size_t len, rstate__wire_req *out);
int rstate__wire_decode_define(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_define *out);
int rstate__wire_decode_name(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                             rstate__wire_name *out);
int rstate__wire_decode_names(uint8_t type, const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                              rstate__wire_names *out);
int rstate__wire_decode_set_many(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                 rstate__wire_set_many *out);
int rstate__wire_decode_watch(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_watch *out);
int rstate__wire_decode_unwatch(const uint8_t *body, size_t len, rstate__wire_unwatch *out);
int rstate__wire_decode_get_reply(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                  rstate__wire_get_reply *out);
int rstate__wire_decode_rev(uint8_t type, const uint8_t *body, size_t len, rstate__wire_rev *out);
int rstate__wire_decode_info_reply(const uint8_t *body, size_t len, rstate__wire_info_reply *out);
int rstate__wire_decode_values_part(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                    rstate__wire_values_part *out);
int rstate__wire_decode_list_part(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                  rstate__wire_list_part *out);
int rstate__wire_decode_snapshot_part(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                      rstate__wire_snapshot_part *out);
int rstate__wire_decode_watch_reply(const uint8_t *body, size_t len, rstate__wire_watch_reply *out);
int rstate__wire_decode_stats_reply(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                    rstate__wire_stats_reply *out);
int rstate__wire_decode_events(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_events *out);
int rstate__wire_decode_history(const uint8_t *body, size_t len, rstate__wire_buf *scratch, rstate__wire_history *out);
int rstate__wire_decode_rollback(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                 rstate__wire_rollback *out);
int rstate__wire_decode_hist_part(const uint8_t *body, size_t len, rstate__wire_buf *scratch,
                                  rstate__wire_hist_part *out);

/* ---- encoding ---------------------------------------------------------- */

/*
 * Each encoder appends one whole frame (length, type, body) to b. Errors:
 * RSTATE_EINVAL (NULL where a string or array is required, a string value
 * with a NULL pointer or a NUL byte inside, a tag or flag the decoder would
 * refuse, a type that does not use this layout), RSTATE_ELIMIT (the length
 * field would exceed b->limit, or 2^32 - 1), RSTATE_ENOMEM. On failure b is
 * as it was.
 */
int rstate__wire_encode(rstate__wire_buf *b, const rstate__wire_msg *m);

int rstate__wire_put_hello(rstate__wire_buf *b, const rstate__wire_hello *m);
int rstate__wire_put_welcome(rstate__wire_buf *b, const rstate__wire_welcome *m);
int rstate__wire_put_ping(rstate__wire_buf *b, uint8_t type, uint64_t payload); /* PING or PONG */
int rstate__wire_put_error(rstate__wire_buf *b, const rstate__wire_error *m);
int rstate__wire_put_req(rstate__wire_buf *b, uint8_t type, uint32_t req); /* OK, STATS, REVISION */
int rstate__wire_put_define(rstate__wire_buf *b, const rstate__wire_define *m);
int rstate__wire_put_name(rstate__wire_buf *b, uint8_t type, const rstate__wire_name *m);
int rstate__wire_put_names(rstate__wire_buf *b, uint8_t type, const rstate__wire_names *m);
int rstate__wire_put_set_many(rstate__wire_buf *b, const rstate__wire_set_many *m);
int rstate__wire_put_watch(rstate__wire_buf *b, const rstate__wire_watch *m);
int rstate__wire_put_unwatch(rstate__wire_buf *b, const rstate__wire_unwatch *m);
int rstate__wire_put_get_reply(rstate__wire_buf *b, const rstate__wire_get_reply *m);
int rstate__wire_put_rev(rstate__wire_buf *b, uint8_t type, const rstate__wire_rev *m);
int rstate__wire_put_info_reply(rstate__wire_buf *b, const rstate__wire_info_reply *m);
int rstate__wire_put_values_part(rstate__wire_buf *b, const rstate__wire_values_part *m);
int rstate__wire_put_list_part(rstate__wire_buf *b, const rstate__wire_list_part *m);
int rstate__wire_put_snapshot_part(rstate__wire_buf *b, const rstate__wire_snapshot_part *m);
int rstate__wire_put_watch_reply(rstate__wire_buf *b, const rstate__wire_watch_reply *m);
int rstate__wire_put_stats_reply(rstate__wire_buf *b, const rstate__wire_stats_reply *m);
int rstate__wire_put_events(rstate__wire_buf *b, const rstate__wire_events *m);
int rstate__wire_put_history(rstate__wire_buf *b, const rstate__wire_history *m);
int rstate__wire_put_rollback(rstate__wire_buf *b, const rstate__wire_rollback *m);
int rstate__wire_put_hist_part(rstate__wire_buf *b, const rstate__wire_hist_part *m);
/* HISTORY_PART frames of at most max_frame each, as the other *_parts. */
int rstate__wire_put_hist_parts(rstate__wire_buf *b, const rstate__wire_hist_part *m, uint32_t max_frame,
                                size_t *frames);

/*
 * Splitting encoders, for the server: the whole answer as as many frames as
 * it takes for each length field to stay within max_frame (0: no
 * splitting), every frame but the last flagged RSTATE__WIRE_MORE. The last
 * frame of a part answer has flags 0 (m->flags is ignored); the last EVENT
 * frame has m->flags, so RSTATE__WIRE_MORE there continues the group with
 * the next revision's frames (coalescing, PROTOCOL.md 6.2). An item too
 * large to fit even alone goes alone in a larger frame (PROTOCOL.md,
 * "Limits"). The list, snapshot and values answers of n == 0 are one frame
 * with no items; events need n >= 1 (EINVAL otherwise). All or nothing, as
 * above; *frames (may be NULL) gets the count of frames.
 */
int rstate__wire_put_values_parts(rstate__wire_buf *b, const rstate__wire_values_part *m, uint32_t max_frame,
                                  size_t *frames);
int rstate__wire_put_list_parts(rstate__wire_buf *b, const rstate__wire_list_part *m, uint32_t max_frame,
                                size_t *frames);
int rstate__wire_put_snapshot_parts(rstate__wire_buf *b, const rstate__wire_snapshot_part *m, uint32_t max_frame,
                                    size_t *frames);
int rstate__wire_put_events_split(rstate__wire_buf *b, const rstate__wire_events *m, uint32_t max_frame,
                                  size_t *frames);

#endif /* RSTATE_WIRE_H */
