/*
 * counter_server.c — the C half of the shared_counter pair (the Python half
 * is counter_watcher.py): hosts a store at unix:PATH with shared_counter = 0,
 * waits until the Python watcher says it is watching (consumer_ready), sets
 * shared_counter to 1, 2, 3, 4, 5, and waits until the watcher says it saw
 * them all (consumer_done) before it stops serving.
 *
 *   build/examples/python/counter_server /tmp/counter.sock &
 *   python3 examples/python/counter_watcher.py /tmp/counter.sock
 *
 * Either may start first: the Python half waits (up to 10 s) for this one.
 */
#include "wait.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  rstate_store *s;
  check(rstate_open(&s, "mem:", NULL), "open");
  rstate_var_def defs[] = {
      {"shared_counter", RSTATE_TYPE_INTEGER, rstate_int(0), NULL, "counted by C, watched by Python"},
      {"consumer_ready", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL, "the watcher is watching"},
      {"consumer_done", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL, "the watcher saw 5"},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) check(rstate_define(s, &defs[i]), defs[i].name);
  rstate_server *srv;
  check(rstate_server_start(&srv, s, unix_uri(argv[1]), NULL), "server");
  printf("ready %s\n", rstate_server_uri(srv));
  fflush(stdout);

  int status = 1;
  waiter ready, done;
  if (waiter_start(&ready, s, "consumer_ready") || waiter_start(&done, s, "consumer_done")) goto out;
  if (!waiter_wait(&ready, is_true, NULL, "consumer_ready (the Python watcher)")) goto stop;
  for (int64_t i = 1; i <= 5; i++) {
    check(rstate_set_int(s, "shared_counter", i), "set shared_counter");
    printf("set shared_counter %lld\n", (long long)i);
    fflush(stdout);
  }
  if (waiter_wait(&done, is_true, NULL, "consumer_done (the watcher to see 5)")) status = 0;
stop:
  waiter_stop(&ready, s);
  waiter_stop(&done, s);
out:
  rstate_server_stop(srv);
  rstate_close(s);
  printf("counter_server: %s\n", status == 0 ? "done" : "failed");
  return status;
}
