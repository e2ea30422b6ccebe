/*
 * test_server_stats.c — rstate_server_get_stats: a server's counters
 * (clients, events sent, coalesced, history held, requests refused by
 * code), as rstated's /metrics reads them. Through the public API only:
 * client stores on a Unix socket. The counters are published at the end of
 * each turn of the server's loop, so every check waits for them with a
 * deadline.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <reactivestate.h>

TestSuite(server_stats, .timeout = 60);

static int64_t ms_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Reads the stats until ok(st) holds, for 5 s at most. */
static rstate_server_stats wait_stats(rstate_server *srv, bool (*ok)(const rstate_server_stats *), const char *what) {
  rstate_server_stats st;
  int64_t deadline = ms_now() + 5000;
  for (;;) {
    cr_assert_eq(rstate_server_get_stats(srv, &st), RSTATE_OK);
    if (ok(&st)) return st;
    cr_assert(ms_now() < deadline, "timed out waiting for the stats to show %s", what);
    usleep(1000);
  }
}

static atomic_int seen;
static int count_cb(const rstate_event *ev, void *ud) {
  (void)ud;
  if (ev->kind == RSTATE_EVENT_CHANGED) seen++;
  return RSTATE_CONTINUE;
}

static bool five_sent(const rstate_server_stats *st) {
  return st->clients == 1 && st->events_sent >= 5 && st->history_events >= 5 && st->history_bytes > 0;
}
static bool one_notfound(const rstate_server_stats *st) { return st->refused[-RSTATE_ENOTFOUND] == 1; }
static bool one_perm(const rstate_server_stats *st) { return st->refused[-RSTATE_EPERM] == 1; }
static bool no_client(const rstate_server_stats *st) { return st->clients == 0; }

static const char *path(int n) {
  static char p[2][108];
  snprintf(p[n], sizeof p[n], "unix:/tmp/rstate-stats-%d-%d.sock", (int)getpid(), n);
  return p[n];
}

Test(server_stats, counts_clients_events_history_and_refusals) {
  rstate_store *s;
  cr_assert_eq(rstate_open(&s, "mem:", NULL), RSTATE_OK);
  rstate_var_def def = {.name = "temperature", .type = RSTATE_TYPE_FLOAT, .initial = rstate_float(0.5)};
  cr_assert_eq(rstate_define(s, &def), RSTATE_OK);
  rstate_server *srv;
  cr_assert_eq(rstate_server_start(&srv, s, path(0), NULL), RSTATE_OK);
  rstate_server_stats st;
  cr_assert_eq(rstate_server_get_stats(srv, &st), RSTATE_OK);
  cr_assert_eq(st.clients, 0);
  cr_assert_eq(st.events_sent, 0);

  rstate_store *c;
  cr_assert_eq(rstate_open(&c, rstate_server_uri(srv), NULL), RSTATE_OK);
  const char *names[] = {"temperature"};
  cr_assert_eq(rstate_watch(c, names, 1, count_cb, NULL, NULL, NULL), RSTATE_OK);
  for (int i = 1; i <= 5; i++) cr_assert_eq(rstate_set_float(s, "temperature", i * 0.1), RSTATE_OK);
  int64_t deadline = ms_now() + 5000;
  while (seen < 5) {
    cr_assert(ms_now() < deadline, "the client saw %d of 5 changes", (int)seen);
    usleep(1000);
  }
  st = wait_stats(srv, five_sent, "one client, 5 events sent and held");
  cr_assert_eq(st.events_coalesced, 0);

  /* a request the server refuses is counted under its code */
  cr_assert_eq(rstate_set_float(c, "nope", 1), RSTATE_ENOTFOUND);
  st = wait_stats(srv, one_notfound, "one RSTATE_ENOTFOUND");
  cr_assert_eq(st.refused[-RSTATE_ECONSTRAINT], 0);

  rstate_close(c);
  wait_stats(srv, no_client, "the client gone");
  rstate_server_stop(srv);

  /* a refused token */
  rstate_server_opts o = {.token = "secret"};
  cr_assert_eq(rstate_server_start(&srv, s, path(1), &o), RSTATE_OK);
  rstate_options co = {.token = "wrong", .no_reconnect = true};
  cr_assert_eq(rstate_open(&c, rstate_server_uri(srv), &co), RSTATE_EPERM);
  wait_stats(srv, one_perm, "one RSTATE_EPERM");
  rstate_server_stop(srv);
  rstate_close(s);
}

Test(server_stats, null_is_einval) {
  rstate_server_stats st;
  cr_assert_eq(rstate_server_get_stats(NULL, &st), RSTATE_EINVAL);
  cr_assert_str_eq(rstate_last_error(), "rstate_server_get_stats: server and out must not be NULL");
}
