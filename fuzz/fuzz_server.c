/*
 * fuzz_server.c — libFuzzer target for the server's connection handling
 * (src/server/): a real rstate_server over a "mem:" store, on a Unix socket,
 * and up to four clients whose bytes come from the input. Not only the
 * codec: the handshake, the request table, subscriptions and their events,
 * coalescing, the output bound, closing, with several clients at once.
 *
 * Input: byte 0 is the setup:
 *   bits 0-1  clients - 1 (1 to 4)
 *   bit 2     the harness sends each client a valid HELLO first
 *   bit 3     that HELLO gives the read token (else the read-write one)
 *   bit 4     small limits: max_frame 4096, max_queue_bytes 4096, history 4,
 *             history_bytes 2048 (else the defaults)
 *   bit 5     max_clients 2, max_handshakes 2
 * then records, each one byte op and, for a send, a length byte and that
 * many bytes:
 *   op bit 7 set    the store sets "a" (an integer) to op & 0x7f from the
 *                   harness's thread: events for those watching (refused
 *                   when a client undefined or redefined "a")
 *   op bit 6 set    client (op & 3) half-closes (no more bytes from it)
 *   otherwise       send the next (length byte) bytes to client (op & 3)
 * Between records the harness reads whatever the server sent, so a client
 * is never stuck behind its own unread answers. At the end every client
 * half-closes and is read until the server closes it.
 *
 * Checked (abort() on a breach): everything the server sends frames and
 * decodes (a type the server may send, a body its decoder takes), the first
 * frame is WELCOME or ERROR, and the server closes every connection once
 * its client half-closed (within 5 s). Memory errors, leaks and undefined
 * behaviour are the sanitizers' to find.
 *
 * Seeds: the same file built without libFuzzer and with FUZZ_SERVER_SEEDS
 * defined writes a few scripted sessions into the directory it is given:
 *
 *   cc -DFUZZ_SERVER_SEEDS -Iinclude -Isrc -D_GNU_SOURCE fuzz/fuzz_server.c src/wire/[a-z]*.c \
 *     src/util/[a-z]*.c src/types/value.c -o /tmp/server_seeds -pthread -lm
 *   /tmp/server_seeds fuzz/seeds/fuzz_server
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "reactivestate.h"
#include "util/util.h"
#include "wire/wire.h"

#define MAX_CLIENTS 4

#define CHECK(cond)                                                                                         \
  do {                                                                                                      \
    if (!(cond)) {                                                                                          \
      fprintf(stderr, "fuzz_server: %s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
              rstate_last_error());                                                                         \
      abort();                                                                                              \
    }                                                                                                       \
  } while (0)

/* The setup byte's HELLO, as the harness sends it. */
static void put_hello(rstate__wire_buf *b, bool read_only) {
  rstate__wire_hello h = {RSTATE__WIRE_VERSION, 0, read_only ? "rtok" : "tok", 0};
  CHECK(rstate__wire_put_hello(b, &h) == RSTATE_OK);
}

#ifndef FUZZ_SERVER_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct peer {
  int fd;
  bool closed_w; /* half-closed by us */
  bool eof;      /* the server closed it */
  bool framed;   /* a framing error: the rest is not checked */
  size_t frames;
  rstate__wire_reader rd;
  rstate__wire_buf scratch;
} peer;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool server_may_send(uint8_t type) {
  switch (type) {
#define RSTATE__FUZZ_FROM(name, code, from, layout) \
  case code:                                        \
    return (RSTATE__WIRE_FROM_##from & RSTATE__WIRE_FROM_SERVER) != 0;
    RSTATE__WIRE_FRAMES(RSTATE__FUZZ_FROM)
#undef RSTATE__FUZZ_FROM
  }
  return false;
}

/* Every frame the server may send, decoded. */
static void check_frames(peer *p) {
  rstate__wire_frame f;
  int rc;
  while ((rc = rstate__wire_reader_next(&p->rd, &f)) == 1) {
    rstate__wire_msg m;
    int drc = rstate__wire_decode_frame(&f, &p->scratch, &m);
    if (drc != RSTATE_OK)
      fprintf(stderr, "fuzz_server: frame 0x%02x (%s) of %u bytes does not decode: %s\n", f.type,
              rstate__wire_type_name(f.type), (unsigned)f.len, rstate_last_error());
    CHECK(drc == RSTATE_OK);
    CHECK(server_may_send(f.type));
    if (p->frames == 0) CHECK(f.type == RSTATE__WIRE_WELCOME || f.type == RSTATE__WIRE_ERROR);
    if (f.type == RSTATE__WIRE_WELCOME) p->rd.max_frame = rstate__wire_client_limit(m.u.welcome.max_frame);
    p->frames++;
  }
  CHECK(rc == 0);
}

/* Reads what the server sent to p without waiting. */
static void drain(peer *p) {
  while (!p->eof) {
    size_t room = 0;
    uint8_t *buf = rstate__wire_reader_prepare(&p->rd, 65536, &room);
    CHECK(buf != NULL);
    ssize_t r = recv(p->fd, buf, room, MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r <= 0) { /* closed, or reset after the server closed with our bytes unread */
      p->eof = true;
      return;
    }
    CHECK(rstate__wire_reader_commit(&p->rd, (size_t)r) == RSTATE_OK);
    check_frames(p);
  }
}

/* Sends bytes to p, reading every client meanwhile, so none blocks the
 * server; gives up on a client the server closed. */
static void send_all(peer *peers, size_t n, peer *p, const uint8_t *b, size_t len) {
  int64_t deadline = now_ms() + 5000;
  while (len && !p->eof && !p->closed_w) {
    ssize_t w = send(p->fd, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      b += w;
      len -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return; /* the server closed it */
    for (size_t i = 0; i < n; i++) drain(&peers[i]);
    CHECK(now_ms() < deadline);
    struct pollfd pf = {p->fd, POLLOUT | POLLIN, 0};
    poll(&pf, 1, 10);
  }
}

static char sock_path[108];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t setup = data[0];
  size_t n = (size_t)(setup & 3) + 1;
  if (!sock_path[0]) snprintf(sock_path, sizeof sock_path, "/tmp/rstate-fuzz-server-%d.sock", (int)getpid());

  rstate_store *s = NULL;
  CHECK(rstate_open(&s, "mem:", NULL) == RSTATE_OK);
  CHECK(rstate_define(s, &(rstate_var_def){.name = "a", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(0)}) ==
        RSTATE_OK);
  CHECK(rstate_define(s, &(rstate_var_def){.name = "s", .type = RSTATE_TYPE_STRING, .initial = rstate_string("x")}) ==
        RSTATE_OK);
  rstate_server_opts o = {.token = "tok", .read_token = "rtok", .heartbeat_ms = 60000};
  if (setup & 0x10) {
    o.max_frame = 4096;
    o.max_queue_bytes = 4096;
    o.history = 4;
    o.history_bytes = 2048;
  }
  if (setup & 0x20) o.max_clients = o.max_handshakes = 2;
  char uri[128];
  snprintf(uri, sizeof uri, "unix:%s", sock_path);
  rstate_server *srv = NULL;
  CHECK(rstate_server_start(&srv, s, uri, &o) == RSTATE_OK);

  peer peers[MAX_CLIENTS];
  memset(peers, 0, sizeof peers);
  for (size_t i = 0; i < n; i++) {
    peer *p = &peers[i];
    rstate__wire_reader_init(&p->rd, RSTATE__WIRE_HANDSHAKE_MAX);
    rstate__wire_buf_init(&p->scratch);
    p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(p->fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, sock_path, strlen(sock_path) + 1);
    CHECK(connect(p->fd, (struct sockaddr *)&a, sizeof a) == 0);
  }
  if (setup & 4) {
    rstate__wire_buf b;
    rstate__wire_buf_init(&b);
    put_hello(&b, setup & 8);
    for (size_t i = 0; i < n; i++) send_all(peers, n, &peers[i], b.data, b.len);
    rstate__wire_buf_free(&b);
  }

  size_t pos = 1;
  while (pos < size) {
    uint8_t op = data[pos++];
    peer *p = &peers[(op & 3) % n];
    if (op & 0x80) {
      /* a client may have undefined or redefined "a": refused then, with a sentence */
      int rc = rstate_set_int(s, "a", op & 0x7f);
      CHECK(rc == RSTATE_OK || (rc < 0 && rstate_last_error()[0]));
    } else if (op & 0x40) {
      if (!p->closed_w) shutdown(p->fd, SHUT_WR);
      p->closed_w = true;
    } else {
      size_t len = pos < size ? data[pos++] : 0;
      if (len > size - pos) len = size - pos;
      send_all(peers, n, p, data + pos, len);
      pos += len;
    }
    for (size_t i = 0; i < n; i++) drain(&peers[i]);
  }

  /* every client half-closes; the server must close each one */
  for (size_t i = 0; i < n; i++)
    if (!peers[i].closed_w) shutdown(peers[i].fd, SHUT_WR);
  int64_t deadline = now_ms() + 5000;
  for (;;) {
    struct pollfd pf[MAX_CLIENTS];
    nfds_t k = 0;
    for (size_t i = 0; i < n; i++) {
      drain(&peers[i]);
      if (!peers[i].eof) pf[k++] = (struct pollfd){peers[i].fd, POLLIN, 0};
    }
    if (!k) break;
    if (now_ms() >= deadline) fprintf(stderr, "fuzz_server: a half-closed client was not closed within 5 s\n");
    CHECK(now_ms() < deadline);
    poll(pf, k, 50);
  }
  for (size_t i = 0; i < n; i++) {
    close(peers[i].fd);
    rstate__wire_reader_free(&peers[i].rd);
    rstate__wire_buf_free(&peers[i].scratch);
  }
  rstate_server_stop(srv);
  rstate_close(s);
  return 0;
}

#else /* FUZZ_SERVER_SEEDS */

/* ---- seed generator: `cc -DFUZZ_SERVER_SEEDS ...` (see the top) ------------------------------ */

typedef struct seed {
  rstate__wire_buf b;
} seed;

static int append(rstate__wire_buf *b, const void *p, size_t n) {
  int rc = rstate__wire_buf_reserve(b, n);
  if (rc) return rc;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return RSTATE_OK;
}

static void op_send(seed *s, unsigned client, const rstate__wire_buf *frames) {
  for (size_t off = 0; off < frames->len;) {
    size_t len = frames->len - off > 255 ? 255 : frames->len - off;
    uint8_t hdr[2] = {(uint8_t)client, (uint8_t)len};
    CHECK(append(&s->b, hdr, 2) == RSTATE_OK);
    CHECK(append(&s->b, frames->data + off, len) == RSTATE_OK);
    off += len;
  }
}

static void op_byte(seed *s, uint8_t op) { CHECK(append(&s->b, &op, 1) == RSTATE_OK); }

static void write_seed(const char *dir, const char *name, const seed *s) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(s->b.data, 1, s->b.len, f) != s->b.len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  static const char *const all[] = {"*"}, *const a[] = {"a"};
  rstate__wire_buf f;
  rstate__wire_buf_init(&f);
  seed s;

  /* one client: its own HELLO, then every kind of request */
  rstate__wire_buf_init(&s.b);
  op_byte(&s, 0x00);
  put_hello(&f, false);
  rstate__wire_put_watch(&f, &(rstate__wire_watch){1, 1, RSTATE__WIRE_WATCH_INITIAL, 0, all, 1});
  rstate__wire_put_name(&f, RSTATE__WIRE_GET, &(rstate__wire_name){2, "a"});
  rstate__wire_put_names(&f, RSTATE__WIRE_GET_MANY, &(rstate__wire_names){3, a, 1});
  rstate__wire_put_names(&f, RSTATE__WIRE_SNAPSHOT, &(rstate__wire_names){4, NULL, 0});
  rstate__wire_put_names(&f, RSTATE__WIRE_LIST, &(rstate__wire_names){5, NULL, 0});
  rstate_assign set[] = {{"a", rstate_int(7)}, {"s", rstate_string("yy")}};
  rstate__wire_put_set_many(&f, &(rstate__wire_set_many){6, set, NULL, 2, {0}});
  rstate__wire_put_name(&f, RSTATE__WIRE_INFO, &(rstate__wire_name){7, "s"});
  rstate__wire_put_req(&f, RSTATE__WIRE_STATS, 8);
  rstate__wire_put_req(&f, RSTATE__WIRE_REVISION, 9);
  rstate__wire_put_ping(&f, RSTATE__WIRE_PING, 10);
  rstate_var_def def = {.name = "n", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(1)};
  rstate__wire_put_define(&f, &(rstate__wire_define){11, def});
  rstate__wire_put_name(&f, RSTATE__WIRE_UNDEFINE, &(rstate__wire_name){12, "n"});
  rstate__wire_put_unwatch(&f, &(rstate__wire_unwatch){13, 1});
  op_send(&s, 0, &f);
  write_seed(dir, "requests", &s);

  /* three clients, the harness's HELLO, small limits: two watch, the store
   * changes, one resumes, one asks for snapshots */
  s.b.len = 0;
  f.len = 0;
  op_byte(&s, 0x10 | 0x04 | 2);
  rstate__wire_put_watch(&f, &(rstate__wire_watch){1, 1, 0, 0, all, 1});
  op_send(&s, 0, &f);
  f.len = 0;
  rstate__wire_put_watch(&f, &(rstate__wire_watch){1, 2, 0, 1, a, 1});
  op_send(&s, 1, &f);
  for (int i = 0; i < 12; i++) op_byte(&s, (uint8_t)(0x80 | i));
  f.len = 0;
  for (uint32_t i = 0; i < 20; i++)
    rstate__wire_put_names(&f, RSTATE__WIRE_SNAPSHOT, &(rstate__wire_names){i, NULL, 0});
  op_send(&s, 2, &f);
  op_byte(&s, 0x40 | 1);
  write_seed(dir, "watchers", &s);

  /* read token, a write refused, a bad frame */
  s.b.len = 0;
  f.len = 0;
  op_byte(&s, 0x08 | 0x04 | 1);
  rstate__wire_put_set_many(&f, &(rstate__wire_set_many){1, set, NULL, 1, {0}});
  op_send(&s, 0, &f);
  uint8_t bad[] = {2, 6, 0x05, 0x00, 0x00, 0x00, 0x12, 0xff};
  CHECK(append(&s.b, bad, sizeof bad) == RSTATE_OK);
  write_seed(dir, "readonly", &s);

  rstate__wire_buf_free(&f);
  rstate__wire_buf_free(&s.b);
  return 0;
}

#endif
