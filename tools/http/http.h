/*
 * http.h — rstated's HTTP side (`rstated --http HOST:PORT`): the JSON API,
 * the SSE watch, /metrics, /healthz and the live page of
 * ../shared/API.md "rstated over HTTP", served beside the socket from the
 * same store, through the public API only. The wire format is
 * docs/HTTP.md; the options are rstated(1).
 *
 * GNU libmicrohttpd does the protocol, on one thread of its own (epoll,
 * keep-alive, suspended responses for the streams); the hub (hub.h) feeds
 * the streams. Only rstated links it; the library links nothing new.
 */
#ifndef RSTATE_TOOLS_HTTP_H
#define RSTATE_TOOLS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <reactivestate.h>

typedef struct http_server http_server;

typedef struct http_opts {
  const char *listen;       /* "HOST:PORT" ("[::1]:PORT" for IPv6); PORT 0: any */
  const char *token;        /* read-write token; NULL: none */
  const char *read_token;   /* read-only token; NULL: none */
  size_t max_body;          /* request body bytes; 0 = 1 MiB */
  size_t max_header;        /* bytes of request line and headers; 0 = 16 KiB */
  unsigned max_connections; /* 0 = 1024 */
  unsigned idle_timeout_s;  /* 0 = 60 */
  int heartbeat_ms;         /* SSE comment line period; 0 = 1000 */
  size_t history;           /* events kept for resuming streams; 0 = 65536 */
  const char *const *schemas; /* schema files: descriptions and constraints shown by the page */
  size_t n_schemas;
  void (*log)(int level, const char *msg); /* 0 error, 1 warn, 2 info, 3 debug */
  rstate_server *server;    /* the socket server beside it, for /metrics (may be NULL) */
  int nice;                 /* the HTTP threads run this much below the daemon's priority; 0: same */
} http_opts;

/* Starts serving s. Returns 0, or -1 with the reason in err. */
int http_start(http_server **out, rstate_store *s, const http_opts *o, char *err, size_t errlen);
/* "http://HOST:PORT", the bound address. */
const char *http_url(const http_server *h);
/* Ends every stream, stops serving, frees everything. The store stays open. */
void http_stop(http_server *h);

#endif
