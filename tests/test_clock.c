/*
 * test_clock.c — timestamp_ns and updated_ns mean CLOCK_REALTIME to the
 * nanosecond, within 1 µs of the truth, although the library stamps changes
 * from the processor's time-stamp counter where it can (src/util/clock.c).
 *
 * Each check brackets a stamp between two clock_gettime(CLOCK_REALTIME)
 * reads taken by the same thread just before and just after it, and
 * requires before - 1 µs <= stamp <= after + 1 µs: a wrong rate, a stale
 * conversion pair or counters that differ between CPUs would all push a
 * stamp outside its bracket. Two threads, each pinned to its own CPU where
 * the machine has two, take turns at going quiet for longer than a
 * conversion pair lasts (so pairs are renewed by either thread, and used by
 * the other), through the clock itself and through the store: the event an
 * inline watch receives and rstate_info's updated_ns.
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "helpers.h"
#include "util/util.h"

#define SLACK_NS 1000 /* the guarantee: within 1 µs */

TestSuite(clock, .timeout = 60);

static int64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort: a restricted runner may refuse */
}

static void quiet_ns(long ns) {
  struct timespec ts = {0, ns};
  nanosleep(&ts, NULL);
}

/* What a thread saw: the number of stamps checked and the worst of them. */
typedef struct tally {
  int cpu;
  rstate_store *s;
  const char *name;
  long checked, outside;
  int64_t worst_early, worst_late; /* ns before `before`, after `after` */
  int64_t stamp; /* the event's timestamp_ns, written by the inline watch on this thread */
} tally;

static void judge(tally *t, int64_t before, int64_t stamp, int64_t after) {
  t->checked++;
  if (before - stamp > t->worst_early) t->worst_early = before - stamp;
  if (stamp - after > t->worst_late) t->worst_late = stamp - after;
  if (stamp < before - SLACK_NS || stamp > after + SLACK_NS) t->outside++;
}

static void report(const tally *t, const char *what) {
  cr_log_info("%s, CPU %d: %ld stamps, worst %lld ns early, %lld ns late", what, t->cpu, t->checked,
              (long long)t->worst_early, (long long)t->worst_late);
  cr_expect_eq(t->outside, 0,
               "%s, CPU %d: %ld of %ld stamps more than 1 us outside [before, after] (worst: %lld ns early, %lld "
               "ns late)",
               what, t->cpu, t->outside, t->checked, (long long)t->worst_early, (long long)t->worst_late);
}

static void *clock_thread(void *arg) {
  tally *t = arg;
  pin(t->cpu);
  for (int round = 0; round < 60; round++) {
    for (int i = 0; i < 2000; i++) {
      int64_t before = wall_ns();
      int64_t stamp = rstate__realtime_ns();
      int64_t after = wall_ns();
      judge(t, before, stamp, after);
    }
    /* Longer than a conversion pair lasts (1 ms), on alternate rounds per
     * thread, so that each thread renews pairs the other one then uses. */
    if ((round + t->cpu) % 2) quiet_ns(1500000);
  }
  return NULL;
}

Test(clock, realtime_ns_within_a_microsecond_on_every_cpu) {
  cr_log_info("stamps from the %s", rstate__realtime_fast() ? "time-stamp counter" : "clock_gettime fallback");
  tally t[2] = {{.cpu = 0}, {.cpu = 1}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, clock_thread, &t[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) report(&t[i], "rstate__realtime_ns");
}

static _Thread_local tally *mine; /* the tally of the thread whose set is being delivered inline */

static int on_change(const rstate_event *ev, void *userdata) {
  (void)userdata;
  if (mine && ev->kind == RSTATE_EVENT_CHANGED) mine->stamp = ev->timestamp_ns;
  return RSTATE_OK;
}

static void *store_thread(void *arg) {
  tally *t = arg;
  tally info = *t;
  pin(t->cpu);
  mine = t;
  for (int round = 0; round < 40; round++) {
    for (int i = 0; i < 500; i++) {
      t->stamp = 0;
      int64_t before = wall_ns();
      int rc = rstate_set_float(t->s, t->name, (double)(round * 1000 + i + 1));
      int64_t after = wall_ns();
      if (rc != RSTATE_OK || !t->stamp) {
        t->outside++; /* counted as a failure: no event, no stamp */
        continue;
      }
      judge(t, before, t->stamp, after);
      rstate_var_info vi;
      if (rstate_info(t->s, t->name, &vi) == RSTATE_OK)
        judge(&info, before, vi.updated_ns, after);
      else
        info.outside++;
    }
    if ((round + t->cpu) % 2) quiet_ns(1500000);
  }
  t->checked += info.checked, t->outside += info.outside; /* one verdict per thread */
  if (info.worst_early > t->worst_early) t->worst_early = info.worst_early;
  if (info.worst_late > t->worst_late) t->worst_late = info.worst_late;
  return NULL;
}

Test(clock, event_and_info_stamps_within_a_microsecond_across_threads) {
  rstate_store *s = h_open();
  const char *names[2] = {"clock.a", "clock.b"};
  for (int i = 0; i < 2; i++) {
    h_define_ok(s, names[i], RSTATE_TYPE_FLOAT, rstate_float(0), NULL);
    ASSERT_RC(rstate_watch(s, &names[i], 1, on_change, NULL, NULL, NULL), RSTATE_OK);
  }
  tally t[2] = {{.cpu = 0, .s = s, .name = names[0]}, {.cpu = 1, .s = s, .name = names[1]}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, store_thread, &t[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) report(&t[i], "timestamp_ns and updated_ns");
  rstate_close(s);
}
