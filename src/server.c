/*
 * server.c — serving a store over a socket stream. Not available in this
 * build yet: every call fails with RSTATE_ENOTSUP and a sentence.
 */
#include "internal.h"

int rstate_server_start(rstate_server **out, rstate_store *store, const char *listen_uri,
                        const rstate_server_opts *opts) {
  (void)store;
  (void)opts;
  if (out) *out = NULL;
  return rstate__err(RSTATE_ENOTSUP, "rstate_server_start: %s: serving a store is not available in this build",
                     listen_uri ? listen_uri : "(null)");
}

const char *rstate_server_uri(const rstate_server *srv) {
  (void)srv;
  return "";
}

void rstate_server_stop(rstate_server *srv) { (void)srv; }
