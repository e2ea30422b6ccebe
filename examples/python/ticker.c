/*
 * ticker.c — hosts a store at unix:PATH and sets the integer "tick" to 1..N,
 * one every PERIOD_US microseconds, once a consumer has set consumer_ready;
 * then waits for consumer_done. Each event's timestamp_ns is when the set
 * was accepted here, so a consumer in another process measures how long a
 * change takes to reach it (bench/python_latency.py does, from asyncio).
 *
 *   build/examples/python/ticker /tmp/tick.sock 1000 2000 &
 */
#include "wait.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s SOCKET_PATH N PERIOD_US\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]), period_us = atol(argv[3]);
  rstate_store *s;
  check(rstate_open(&s, "mem:", NULL), "open");
  rstate_var_def defs[] = {
      {"tick", RSTATE_TYPE_INTEGER, rstate_int(0), NULL, NULL},
      {"consumer_ready", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL, NULL},
      {"consumer_done", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL, NULL},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) check(rstate_define(s, &defs[i]), defs[i].name);
  rstate_server *srv;
  check(rstate_server_start(&srv, s, unix_uri(argv[1]), NULL), "server");
  printf("ready %s\n", rstate_server_uri(srv));
  fflush(stdout);
  int status = 1;
  waiter ready, done;
  if (waiter_start(&ready, s, "consumer_ready") || waiter_start(&done, s, "consumer_done")) return 1;
  if (waiter_wait(&ready, is_true, NULL, "consumer_ready")) {
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long i = 1; i <= n; i++) {
      next.tv_nsec += period_us * 1000;
      while (next.tv_nsec >= 1000000000L) {
        next.tv_nsec -= 1000000000L;
        next.tv_sec++;
      }
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
      check(rstate_set_int(s, "tick", i), "set tick");
    }
    if (waiter_wait(&done, is_true, NULL, "consumer_done")) status = 0;
  }
  waiter_stop(&ready, s);
  waiter_stop(&done, s);
  rstate_server_stop(srv);
  rstate_close(s);
  return status;
}
