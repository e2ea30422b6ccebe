/*
 * fan_controller.c — the C half of the fan/temperature loop (the Python
 * half, fan_room.py, hosts the store and plays the room): connects to
 * unix:PATH, watches temperature, and sets fan_speed to the tenths of a
 * degree above 15.0 (at most 100). The room cools by half the fan speed
 * (rounded up) in tenths each time the fan changes, so the fan strictly
 * slows and the loop settles at 15.0 with the fan at 0, where the
 * controller exits.
 *
 *   python3 examples/python/fan_room.py /tmp/fan.sock &
 *   build/examples/python/fan_controller /tmp/fan.sock
 *
 * Either may start first: the controller waits (up to 10 s) for the room.
 *
 * The callback only hands the temperature to the main thread, which sets
 * the fan: a callback should not wait on the connection it is called from.
 */
#include "wait.h"

#include <math.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  rstate_options o = {.no_reconnect = true};
  rstate_store *s = open_waiting(argv[1], &o, "the room: python3 examples/python/fan_room.py with the same path");
  waiter temp;
  if (waiter_start(&temp, s, "temperature")) return 1;

  int status = 1;
  double handled = NAN;
  for (int step = 0; step < 1000; step++) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&temp.mu);
    while (temp.value.kind != RSTATE_FLOAT || temp.value.u.f == handled)
      if (pthread_cond_timedwait(&temp.cv, &temp.mu, &until) == ETIMEDOUT) break;
    bool fresh = temp.value.kind == RSTATE_FLOAT && temp.value.u.f != handled;
    double t = temp.value.u.f;
    pthread_mutex_unlock(&temp.mu);
    if (!fresh) {
      fprintf(stderr, "timed out after %d ms waiting for a new temperature (last %.1f)\n", WAIT_MS, handled);
      break;
    }
    handled = t;
    long fan = lround((t - 15.0) * 10);
    if (fan < 0) fan = 0;
    if (fan > 100) fan = 100;
    check(rstate_set_int(s, "fan_speed", fan), "set fan_speed");
    printf("temperature %.1f -> fan_speed %ld\n", t, fan);
    fflush(stdout);
    if (fan == 0) {
      status = 0;
      break;
    }
  }
  waiter_stop(&temp, s);
  rstate_close(s);
  printf("fan_controller: %s\n", status == 0 ? "settled, fan off" : "failed");
  return status;
}
