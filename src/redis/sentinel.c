/*
 * sentinel.c — finding a store's primary through Redis Sentinel
 * ("redis-sentinel:H1:P1,H2:P2/MASTER/STORE"): each Sentinel in turn is
 * asked for MASTER's address (SENTINEL get-master-addr-by-name), and the
 * server there must say it is a primary (ROLE) before it is used: during a
 * failover a Sentinel may still name the old one, or a demoted server may
 * still answer. Every connection of a store is made this way, so a store
 * follows a failover by reconnecting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

/* Asks one Sentinel; "tcp:IP:PORT" into out. */
static int ask(const rstate__addr *sentinel, const char *master, const char *uri, int timeout_ms, char *out,
               size_t cap) {
  rstate__redis_conn s;
  rstate__redis_conn_init(&s);
  int rc = rstate__redis_connect(&s, sentinel, uri, NULL, NULL, timeout_ms);
  rstate__resp *rep = NULL;
  const char *argv[] = {"SENTINEL", "get-master-addr-by-name", master};
  if (!rc) rc = rstate__redis_command(&s, uri, timeout_ms, &rep, 3, argv, NULL);
  if (!rc) {
    const rstate__resp *ip = rstate__resp_at(rep, 0), *port = rstate__resp_at(rep, 1);
    if (!ip || !port || ip->type != RSTATE_RESP_STRING || port->type != RSTATE_RESP_STRING)
      rc = rstate__err(RSTATE_EIO, "%s: the Sentinel knows no primary named %s", uri, master);
    else if (strchr(ip->str, ':'))
      snprintf(out, cap, "tcp:[%s]:%s", ip->str, port->str);
    else
      snprintf(out, cap, "tcp:%s:%s", ip->str, port->str);
  }
  rstate__resp_free(rep);
  rstate__redis_conn_free(&s);
  return rc;
}

int rstate__redis_sentinel_connect(rstate__redis_conn *c, const rstate__addr *sentinels, size_t n,
                                   const char *master, const char *uri, const char *user, const char *pass,
                                   int timeout_ms) {
  int rc = rstate__err(RSTATE_EIO, "%s: no Sentinel answered", uri);
  char why[256] = "";
  for (size_t i = 0; i < n; i++) {
    char where[300];
    rstate__addr primary;
    rc = ask(&sentinels[i], master, uri, timeout_ms, where, sizeof where);
    if (!rc) rc = rstate__addr_parse(&primary, where, uri);
    if (!rc) rc = rstate__redis_connect(c, &primary, uri, user, pass, timeout_ms);
    if (rc == RSTATE_EPERM) return rc;
    rstate__resp *rep = NULL;
    const char *role[] = {"ROLE"};
    if (!rc) rc = rstate__redis_command(c, uri, timeout_ms, &rep, 1, role, NULL);
    if (!rc && !rstate__resp_is(rstate__resp_at(rep, 0), "master")) {
      rstate__redis_conn_close(c);
      rc = rstate__err(RSTATE_EIO, "%s: %s is not a primary (yet)", uri, where + 4);
    }
    rstate__resp_free(rep);
    if (!rc) return RSTATE_OK;
    snprintf(why, sizeof why, "%s", rstate_last_error());
  }
  return rstate__err(rc == RSTATE_ETIMEDOUT ? rc : RSTATE_EIO, "%s", why);
}
