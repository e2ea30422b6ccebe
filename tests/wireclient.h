/*
 * wireclient.h — a raw protocol client for tests (wireclient.c): a socket,
 * the codec's reader and buffers, and nothing of the library's remote store,
 * so server tests see exactly the frames the server sends. The same end,
 * accepted instead of connected, plays a scripted server for client tests.
 */
#ifndef RSTATE_TEST_WIRECLIENT_H
#define RSTATE_TEST_WIRECLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "wire/wire.h"

typedef struct wc {
  int fd;
  bool auto_pong; /* answer PING with PONG inside wc_next (default true) */
  rstate__wire_reader rd;
  rstate__wire_buf out;     /* frames to send: encode here, then wc_flush */
  rstate__wire_buf scratch; /* where m's strings and arrays live */
  rstate__wire_msg m;       /* the last frame wc_next decoded */
  uint32_t pings;           /* PINGs received */
} wc;

/* Connects to "unix:/path" or "tcp:HOST:PORT". 0, or -errno. */
int wc_connect(wc *c, const char *uri);
/* The server's end instead: accepts a connection on the listening socket
 * lfd, for a test that plays a scripted server. 0, or -errno. */
int wc_accept(wc *c, int lfd);
void wc_close(wc *c);
/* Writes c->out whole (blocking); 0, or -errno. */
int wc_flush(wc *c);
/* Sends bytes as they are; 0, or -errno. */
int wc_send_raw(wc *c, const void *p, size_t n);
/* The next frame other than PING and PONG, decoded into c->m: its type;
 * 0 when nothing came within timeout_ms; -1 when the server closed the
 * connection; -2 on a framing or decoding error. */
int wc_next(wc *c, int timeout_ms);
/* HELLO with this token (NULL: none) and heartbeat; then the answer:
 * 0 with *w filled on WELCOME, or the ERROR's code. */
int wc_hello(wc *c, const char *token, uint32_t heartbeat_ms, rstate__wire_welcome *w);

#endif
