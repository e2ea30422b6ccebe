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
#include <stdatomic.h>
#include <stdlib.h>
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
  long excused;             /* stamps outside in rounds where the wall clock was seen moved */
  long round_outside;       /* outside in the current round, until it is judged */
  uint64_t round_steps;     /* rstate__realtime_steps() at the start of the round before */
  int64_t worst_early, worst_late; /* ns before `before`, after `after` */
  int64_t stamp; /* the event's timestamp_ns, written by the inline watch on this thread */
} tally;

static void judge(tally *t, int64_t before, int64_t stamp, int64_t after) {
  t->checked++;
  if (before - stamp > t->worst_early) t->worst_early = before - stamp;
  if (stamp - after > t->worst_late) t->worst_late = stamp - after;
  if (stamp < before - SLACK_NS || stamp > after + SLACK_NS) t->round_outside++;
}

/* Ends a round: its stamps outside count, unless the wall clock was seen
 * moved during it or the round before (the step can be seen only at the
 * next renewal, which may fall in the next round). */
static void end_round(tally *t, uint64_t *prev_steps) {
  uint64_t now = rstate__realtime_steps();
  if (now != t->round_steps) {
    if (t->round_outside) cr_log_info("CPU %d: the wall clock moved apart from the counter (%llu times so far); %ld stamps of this round off", t->cpu, (unsigned long long)now, t->round_outside);
    t->excused += t->round_outside;
  } else {
    t->outside += t->round_outside;
  }
  t->round_outside = 0;
  t->round_steps = *prev_steps;
  *prev_steps = now;
}

static void report(const tally *t, const char *what) {
  cr_log_info("%s, CPU %d: %ld stamps, worst %lld ns early, %lld ns late, %ld excused by a move of the wall clock", what,
              t->cpu, t->checked, (long long)t->worst_early, (long long)t->worst_late, t->excused);
  cr_expect_eq(t->outside, 0,
               "%s, CPU %d: %ld of %ld stamps more than 1 us outside [before, after] (worst: %lld ns early, %lld "
               "ns late)",
               what, t->cpu, t->outside, t->checked, (long long)t->worst_early, (long long)t->worst_late);
}

static void *clock_thread(void *arg) {
  tally *t = arg;
  pin(t->cpu);
  uint64_t steps = t->round_steps = rstate__realtime_steps();
  for (int round = 0; round < 60; round++) {
    for (int i = 0; i < 2000; i++) {
      int64_t before = wall_ns();
      int64_t stamp = rstate__realtime_ns();
      int64_t after = wall_ns();
      judge(t, before, stamp, after);
    }
    end_round(t, &steps);
    /* Longer than a conversion pair lasts, on alternate rounds per thread,
     * so that each thread renews pairs the other one then uses; every
     * fifth round the gap is shorter than a pair's life. */
    if ((round + t->cpu) % 2) quiet_ns(round % 5 ? 1500000 : RSTATE__STAMP_SPAN_NS / 2);
  }
  end_round(t, &steps);
  return NULL;
}

Test(clock, realtime_ns_within_a_microsecond_on_every_cpu) {
  tally t[2] = {{.cpu = 0}, {.cpu = 1}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, clock_thread, &t[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  cr_log_info("stamps from the %s", rstate__realtime_fast() ? "time-stamp counter" : "clock_gettime fallback");
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
  uint64_t steps = t->round_steps = info.round_steps = rstate__realtime_steps(), info_steps = steps;
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
    end_round(t, &steps);
    end_round(&info, &info_steps);
    if ((round + t->cpu) % 2) quiet_ns(round % 5 ? 1500000 : RSTATE__STAMP_SPAN_NS / 2);
  }
  end_round(t, &steps);
  end_round(&info, &info_steps);
  t->checked += info.checked, t->outside += info.outside, t->excused += info.excused; /* one verdict per thread */
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

/* Stamps until the counter is in use again (a rate known, no hold), at most
 * `within` ns; false if it never is (no usable counter here, or pairs never
 * precise enough, as under valgrind). */
static bool until_fast(int64_t within) {
  int64_t end = wall_ns() + within;
  while (wall_ns() < end) {
    for (int i = 0; i < 1000; i++) (void)rstate__realtime_ns();
    if (rstate__realtime_fast()) return true;
  }
  return false;
}

/* Moves the library's wall clock by `by` ns and stamps on past two pair
 * lives: every stamp must follow the moved clock once a pair's life has
 * passed since the move, and the move must have been seen (the clock is
 * then read, not the counter). Returns how many stamps still followed the
 * old clock. */
static long step(int64_t by, bool fast) {
  uint64_t steps = rstate__realtime_steps();
  int64_t moved_at = wall_ns();
  atomic_fetch_add(&rstate__realtime_shift_ns, by);
  int64_t shift = atomic_load(&rstate__realtime_shift_ns);
  long old = 0, checked = 0, wrong = 0, late = 0; /* late: stamps begun after two pair lives */
  int64_t worst = 0;
  /* Until 100 stamps were begun after two pair lives (a preempted loop may
   * not have stamped then yet), for at most 10 s. */
  for (int64_t now = moved_at; late < 100 && now < moved_at + 10000000000; now = wall_ns()) {
    if (now >= moved_at + 2 * RSTATE__STAMP_SPAN_NS) late++;
    int64_t before = wall_ns() + shift;
    int64_t stamp = rstate__realtime_ns();
    int64_t after = wall_ns() + shift;
    if (stamp >= before - SLACK_NS && stamp <= after + SLACK_NS) {
      checked++;
      continue;
    }
    if (stamp >= before - by - SLACK_NS && stamp <= after - by + SLACK_NS && before - shift < moved_at + RSTATE__STAMP_SPAN_NS) {
      old++; /* the pair made before the move, within its life */
      continue;
    }
    wrong++;
    if (llabs(stamp - before) > worst) worst = llabs(stamp - before);
  }
  cr_log_info("wall clock moved by %lld ns: %ld stamps on the moved clock, %ld on the old one within a pair's life (%lld ns, steps %llu -> %llu)",
              (long long)by, checked, old, (long long)(wall_ns() - moved_at), (unsigned long long)steps, (unsigned long long)rstate__realtime_steps());
  cr_expect_eq(wrong, 0, "moved by %lld ns: %ld stamps neither on the moved clock nor on the old one within %d ns of the move (worst %lld ns off)",
               (long long)by, wrong, RSTATE__STAMP_SPAN_NS, (long long)worst);
  if (fast) {
    cr_expect_eq(rstate__realtime_steps(), steps + 1, "moved by %lld ns: the move was seen %llu times, not once", (long long)by,
                 (unsigned long long)(rstate__realtime_steps() - steps));
    cr_expect_eq(rstate__realtime_fast(), false, "moved by %lld ns: the clock is not read after the move was seen", (long long)by);
  }
  return old;
}

Test(clock, a_moved_wall_clock_is_followed_within_a_pair_life_then_read_for_a_while) {
  pin(0);
  bool fast = until_fast(2000000000);
  cr_log_info("stamps from the %s", fast ? "time-stamp counter" : "clock_gettime fallback (no precise counter pairs here)");
  step(500000, fast); /* what a restored VM snapshot did: 0.5 ms ahead */
  if (fast) {
    cr_assert(until_fast((int64_t)RSTATE__STAMP_HOLD_NS * 3), "the counter is not used again %lld ms after a move", 3LL * RSTATE__STAMP_HOLD_NS / 1000000);
  }
  step(-500000, fast); /* and back */
  if (!fast) cr_expect_eq(rstate__realtime_steps(), 0, "without a counter in use no move is ever seen");
  atomic_store(&rstate__realtime_shift_ns, 0);
}
