/*
 * optimizer.c — the C half of the strategy pair (the Python half,
 * strategy_worker.py, is a worker that connects to it): hosts a store at
 * unix:PATH whose worker.strategy is a module variable (namespace
 * Strategies, choices Default and Optimized). Once the worker has done 3
 * tasks the optimizer switches it to Strategies.Optimized, waits until the
 * worker reports using it (worker.strategy_in_use) and until it finishes,
 * then stops serving.
 *
 *   build/examples/python/optimizer /tmp/opt.sock &
 *   python3 examples/python/strategy_worker.py /tmp/opt.sock
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
  const char *strategies[] = {"Default", "Optimized"};
  rstate_constraints mc = {.choices = strategies, .n_choices = 2, .module_namespace = "Strategies"};
  rstate_var_def defs[] = {
      {"worker.strategy", RSTATE_TYPE_MODULE, rstate_string("Strategies.Default"), &mc, "how the worker reasons"},
      {"worker.tasks_done", RSTATE_TYPE_INTEGER, rstate_int(0), NULL, "tasks the worker finished"},
      {"worker.strategy_in_use", RSTATE_TYPE_STRING, rstate_string(""), NULL, "the strategy of its last task"},
      {"worker.finished", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL, "the worker is done"},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) check(rstate_define(s, &defs[i]), defs[i].name);
  rstate_server *srv;
  check(rstate_server_start(&srv, s, unix_uri(argv[1]), NULL), "server");
  printf("ready %s\n", rstate_server_uri(srv));
  fflush(stdout);

  int status = 1;
  waiter done, in_use, finished;
  if (waiter_start(&done, s, "worker.tasks_done") || waiter_start(&in_use, s, "worker.strategy_in_use") ||
      waiter_start(&finished, s, "worker.finished"))
    goto out;
  int64_t three = 3;
  if (!waiter_wait(&done, int_at_least, &three, "the worker to finish 3 tasks")) goto stop;
  rstate_value v = rstate_string("Strategies.Optimized");
  rstate_set_opts so = {.source = "optimizer"};
  check(rstate_set(s, "worker.strategy", &v, &so), "set worker.strategy");
  printf("optimizer: worker.strategy = Strategies.Optimized\n");
  fflush(stdout);
  if (!waiter_wait(&in_use, string_is, "Strategies.Optimized", "the worker to use Strategies.Optimized")) goto stop;
  printf("optimizer: the worker uses Strategies.Optimized\n");
  fflush(stdout);
  if (waiter_wait(&finished, is_true, NULL, "worker.finished")) status = 0;
stop:
  waiter_stop(&done, s);
  waiter_stop(&in_use, s);
  waiter_stop(&finished, s);
out:
  rstate_server_stop(srv);
  rstate_close(s);
  printf("optimizer: %s\n", status == 0 ? "done" : "failed");
  return status;
}
