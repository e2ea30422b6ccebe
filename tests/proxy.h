/*
 * proxy.h — a byte-forwarding proxy for the remote tests (proxy.c): clients
 * connect to its Unix socket, it connects each to the server behind it and
 * copies bytes both ways on its own thread. proxy_cut() breaks every
 * connection at once, as a network failure would, while the server and the
 * client stay up; proxy_hold() stops forwarding (a silent peer).
 */
#ifndef RSTATE_TEST_PROXY_H
#define RSTATE_TEST_PROXY_H

#include <stdbool.h>

typedef struct proxy proxy;

/* Listens on a fresh Unix socket and forwards to target (a "unix:" or
 * "tcp:" URI). NULL on failure. */
proxy *proxy_start(const char *target);
/* The URI clients connect to. */
const char *proxy_uri(const proxy *p);
/* Closes every connection made so far; new ones are forwarded again. */
void proxy_cut(proxy *p);
/* true: bytes are no longer forwarded (connections stay open); false: again. */
void proxy_hold(proxy *p, bool hold);
/* How many connections have been accepted. */
int proxy_accepted(proxy *p);
void proxy_stop(proxy *p);

#endif
