/*
 * event_loop.c — queued watches driven from the host's own poll() loop with
 * rstate_fd() and rstate_timeout(): a "slider" thread moves a volume value
 * 50 times in quick bursts; a debounced watch reports it only once the
 * slider has rested for 100 ms, while a plain queued watch sees every step.
 *
 *   make build/examples/event_loop && build/examples/event_loop
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include <reactivestate.h>

static atomic_bool slider_done;

static void pause_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* A person dragging a slider: three bursts of quick moves, resting between. */
static void *slider(void *arg) {
  rstate_store *s = arg;
  int64_t v = 0;
  for (int burst = 0; burst < 3; burst++) {
    for (int step = 0; step < 17; step++) {
      rstate_set_int(s, "volume", v += 2);
      pause_ms(5);
    }
    pause_ms(300);
  }
  atomic_store(&slider_done, true);
  return NULL;
}

static int on_settled(const rstate_event *ev, void *ud) {
  (void)ud;
  printf("debounced: volume %lld -> %lld (%u moves in one event)\n", (long long)ev->old_value.u.i,
         (long long)ev->new_value.u.i, ev->coalesced);
  return RSTATE_CONTINUE;
}

static int on_step(const rstate_event *ev, void *ud) {
  (*(int *)ud)++;
  (void)ev;
  return RSTATE_CONTINUE;
}

int main(void) {
  rstate_store *s;
  if (rstate_open(&s, "mem:", NULL)) return 1;
  rstate_constraints c = {.min = rstate_int(0), .max = rstate_int(100)};
  rstate_var_def def = {"volume", RSTATE_TYPE_INTEGER, rstate_int(0), &c, "Output volume"};
  if (rstate_define(s, &def)) return 1;

  const char *names[] = {"volume"};
  int steps = 0;
  rstate_watch_opts debounced = {.debounce_ms = 100};
  rstate_watch_opts queued = {.queued = true};
  rstate_watch_id a, b;
  rstate_watch(s, names, 1, on_settled, NULL, &debounced, &a);
  rstate_watch(s, names, 1, on_step, &steps, &queued, &b);

  pthread_t th;
  pthread_create(&th, NULL, slider, s);
  /* the host's loop: sleep in poll() until the store has work or a
   * debounce deadline comes, then let rstate_dispatch run the callbacks */
  while (!atomic_load(&slider_done) || rstate_timeout(s) >= 0) {
    struct pollfd p = {.fd = rstate_fd(s), .events = POLLIN};
    int timeout = rstate_timeout(s);
    poll(&p, 1, timeout < 0 || timeout > 50 ? 50 : timeout);
    rstate_dispatch(s, 0);
  }
  pthread_join(th, NULL);
  rstate_dispatch(s, 0);
  int64_t v = 0;
  rstate_get_int(s, "volume", &v);
  printf("the queued watch saw all %d steps; final volume %lld\n", steps, (long long)v);
  rstate_close(s);
  return 0;
}
