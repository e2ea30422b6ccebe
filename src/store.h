/*
 * store.h — the front end's store object, shared by the files that make up
 * the front end (store.c, and the watching files).
 */
#ifndef RSTATE_STORE_H
#define RSTATE_STORE_H

#include "internal.h"
#include "watch.h"

struct rstate_host {
  rstate_store *store;
};

struct rstate_store {
  rstate_host host; /* what the backend reports changes to */
  const rstate_backend_ops *ops;
  rstate_backend *backend;
  rstate_options opts; /* a copy; strings owned below */
  char *token;
  rstate__registry *registry;
  rstate__dispatch *dispatch;
};

#endif
