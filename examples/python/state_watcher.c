/*
 * state_watcher.c — the C half of the python_state pair (the Python half,
 * state_publisher.py, hosts the store): connects to unix:PATH, watches
 * python_state, says so (watcher_ready), and prints every change with its
 * source. Once "complete" came it checks it saw connecting, processing,
 * complete in that order, each from source "python", says so
 * (watcher_done) and exits 0.
 *
 *   python3 examples/python/state_publisher.py /tmp/state.sock &
 *   build/examples/python/state_watcher /tmp/state.sock
 *
 * Either may start first: the watcher waits (up to 10 s) for the publisher.
 */
#include "wait.h"

static const char *const want[] = {"connecting", "processing", "complete"};

typedef struct seen {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n;        /* events received */
  bool in_order; /* each was want[i], from source "python" */
} seen;

static int on_state(const rstate_event *ev, void *ud) {
  seen *sn = ud;
  const char *src = ev->source ? ev->source : "(none)";
  printf("python_state: %s (source %s, revision %llu)\n", ev->new_value.u.s.ptr, src,
         (unsigned long long)ev->revision);
  fflush(stdout);
  pthread_mutex_lock(&sn->mu);
  if (sn->n >= 3 || strcmp(ev->new_value.u.s.ptr, want[sn->n]) != 0 || strcmp(src, "python") != 0)
    sn->in_order = false;
  sn->n++;
  pthread_cond_broadcast(&sn->cv);
  pthread_mutex_unlock(&sn->mu);
  return RSTATE_CONTINUE;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  rstate_options o = {.no_reconnect = true};
  rstate_store *s =
      open_waiting(argv[1], &o, "the publisher: python3 examples/python/state_publisher.py with the same path");
  seen sn = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, true};
  const char *name = "python_state";
  rstate_watch_id id;
  check(rstate_watch(s, &name, 1, on_state, &sn, NULL, &id), "watch python_state");
  check(rstate_set_bool(s, "watcher_ready", true), "set watcher_ready");

  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += WAIT_MS / 1000;
  pthread_mutex_lock(&sn.mu);
  while (sn.n < 3)
    if (pthread_cond_timedwait(&sn.cv, &sn.mu, &until) == ETIMEDOUT) break;
  int n = sn.n;
  bool ok = sn.n == 3 && sn.in_order;
  pthread_mutex_unlock(&sn.mu);
  rstate_unwatch(s, id);
  if (n < 3) fprintf(stderr, "timed out after %d ms: %d of 3 python_state changes\n", WAIT_MS, n);
  else if (!ok) fprintf(stderr, "python_state changes out of order or not from source python\n");
  else check(rstate_set_bool(s, "watcher_done", true), "set watcher_done");
  rstate_close(s);
  printf("state_watcher: %s\n", ok ? "saw connecting, processing, complete from python" : "failed");
  return ok ? 0 : 1;
}
