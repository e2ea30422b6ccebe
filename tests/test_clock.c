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
 * inline watch receives and rstate_info's updated_ns. A stamp outside is
 * excused only when it was taken within the life of a conversion pair that
 * a move of the wall clock (a restored VM snapshot, an NTP step) made wrong
 * and the library then saw; where the counter qualifies, the stamps must
 * come from it, at most one move may be seen, and a move only when the
 * test's own CLOCK_REALTIME - CLOCK_MONOTONIC_RAW jumped too (a wrong rate
 * looks like moves). The moving tests move the library's wall clock.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

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

static int64_t clock_of(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether this machine qualifies for the counter stamp, decided here as
 * clock.c decides it (invariant counter, the kernel's clocksource `tsc`),
 * and not under valgrind (whose pairs are never precise enough) nor TSan
 * (whose clock reads are too slow for one). */
static bool qualifies(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__SANITIZE_THREAD__)
  return false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return false;
#endif
#endif
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload")) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u || !__get_cpuid(0x80000007u, &a, &b, &c, &d) || !((d >> 8) & 1))
    return false;
  FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  char buf[16] = "";
  if (f) {
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
  }
  return !strcmp(buf, "tsc\n");
#else
  return false;
#endif
}

/* The test's own view of the wall clock moving apart from the counter:
 * CLOCK_REALTIME - CLOCK_MONOTONIC_RAW (the latter the counter at the
 * kernel's fixed rate), sampled between two RAW reads at most 300 ns apart,
 * jumping by more than 200 ns plus 20 ppm of the time between samples (a
 * slewing NTP looks like a jump: that only excuses more). */
static atomic_bool jump_seen;
typedef struct drift {
  bool have;
  int64_t raw, off;
} drift;

static void sample(drift *dr) {
  int64_t best = INT64_MAX, raw = 0, off = 0;
  for (int i = 0; i < 20; i++) {
    int64_t r0 = clock_of(CLOCK_MONOTONIC_RAW), rt = clock_of(CLOCK_REALTIME), r1 = clock_of(CLOCK_MONOTONIC_RAW);
    if (r1 - r0 < best) best = r1 - r0, raw = r0 + (r1 - r0) / 2, off = rt - raw;
  }
  if (best > 300) return; /* too slow a read to compare: the next one is compared with the last */
  if (dr->have && llabs(off - dr->off) > 200 + (raw - dr->raw) / 50000) atomic_store(&jump_seen, true);
  dr->have = true, dr->raw = raw, dr->off = off;
}

/* What a thread saw: the number of stamps checked, the worst of them, and
 * the CLOCK_MONOTONIC brackets of those more than 1 µs outside. */
#define BAD_MAX 4096
typedef struct tally {
  int cpu;
  rstate_store *s;
  const char *name;
  long checked, outside;
  long excused; /* stamps outside in the window of a move of the wall clock the library saw */
  long nbad;
  int64_t bad[BAD_MAX][2];
  int64_t worst_early, worst_late; /* ns before `before`, after `after` */
  int64_t stamp; /* the event's timestamp_ns, written by the inline watch on this thread */
  drift dr;
} tally;

static void judge(tally *t, int64_t mono0, int64_t before, int64_t stamp, int64_t after, int64_t mono1) {
  t->checked++;
  if (before - stamp > t->worst_early) t->worst_early = before - stamp;
  if (stamp - after > t->worst_late) t->worst_late = stamp - after;
  if (stamp >= before - SLACK_NS && stamp <= after + SLACK_NS) return;
  if (t->nbad == BAD_MAX) {
    t->outside++;
    return;
  }
  t->bad[t->nbad][0] = mono0, t->bad[t->nbad][1] = mono1, t->nbad++;
}

/* After the threads ended: a stamp outside counts unless it was taken
 * (between mono0 and mono1) within the life of a conversion pair that the
 * library later found made wrong by a move of the wall clock. */
static void verdict(tally *t, uint64_t steps0) {
  uint64_t steps1 = rstate__realtime_steps();
  for (long k = 0; k < t->nbad; k++) {
    bool excused = false;
    for (uint64_t i = steps0; i < steps1 && !excused; i++) {
      int64_t from, to;
      if (rstate__realtime_move(i, &from, &to)) excused = t->bad[k][0] <= to && t->bad[k][1] >= from;
    }
    if (excused) t->excused++;
    else t->outside++;
  }
}

static void report(const tally *t, const char *what) {
  cr_log_info("%s, CPU %d: %ld stamps, worst %lld ns early, %lld ns late, %ld excused by a move of the wall clock", what,
              t->cpu, t->checked, (long long)t->worst_early, (long long)t->worst_late, t->excused);
  cr_expect_eq(t->outside, 0,
               "%s, CPU %d: %ld of %ld stamps more than 1 us outside [before, after] (worst: %lld ns early, %lld "
               "ns late)",
               what, t->cpu, t->outside, t->checked, (long long)t->worst_early, (long long)t->worst_late);
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

/* Before the bracket tests: where the machine qualifies, the counter must
 * be in use. Returns the moves seen so far. */
static uint64_t begin(bool *fast) {
  atomic_store(&jump_seen, false);
  *fast = qualifies();
  if (*fast) cr_assert(until_fast(2000000000), "the counter qualifies here (invariant, clocksource tsc) but stamps are not taken from it");
  else cr_log_info("stamps from the clock_gettime fallback (no counter qualifies here, or valgrind/TSan)");
  return rstate__realtime_steps();
}

/* After them: at most one move seen, only one the test saw too, and when
 * none was seen the counter still in use (a wrong rate would look like
 * moves, and a counter never used like none). */
static void end(bool fast, uint64_t steps0) {
  uint64_t n = rstate__realtime_steps() - steps0;
  cr_log_info("moves of the wall clock seen by the library: %llu, by the test: %s", (unsigned long long)n, atomic_load(&jump_seen) ? "yes" : "no");
  if (!fast) return;
  cr_expect_eq(n <= 1, true, "the library saw the wall clock move %llu times", (unsigned long long)n);
  if (n) cr_expect_eq(atomic_load(&jump_seen), true, "the library saw the wall clock move, but CLOCK_REALTIME - CLOCK_MONOTONIC_RAW never jumped");
  else cr_expect_eq(rstate__realtime_fast(), true, "the stamps are no longer from the counter, and no move was seen");
}

static void *clock_thread(void *arg) {
  tally *t = arg;
  pin(t->cpu);
  sample(&t->dr);
  for (int round = 0; round < 60; round++) {
    for (int i = 0; i < 2000; i++) {
      int64_t mono0 = clock_of(CLOCK_MONOTONIC);
      int64_t before = wall_ns();
      int64_t stamp = rstate__realtime_ns();
      int64_t after = wall_ns();
      judge(t, mono0, before, stamp, after, clock_of(CLOCK_MONOTONIC));
    }
    sample(&t->dr);
    /* Longer than a conversion pair lasts, on alternate rounds per thread,
     * so that each thread renews pairs the other one then uses; every
     * fifth round the gap is shorter than a pair's life. */
    if ((round + t->cpu) % 2) quiet_ns(round % 5 ? 1500000 : RSTATE__STAMP_SPAN_NS / 2);
  }
  sample(&t->dr);
  return NULL;
}

Test(clock, realtime_ns_within_a_microsecond_on_every_cpu) {
  static tally t[2];
  t[0].cpu = 0, t[1].cpu = 1;
  bool fast;
  uint64_t steps0 = begin(&fast);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, clock_thread, &t[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    verdict(&t[i], steps0);
    report(&t[i], "rstate__realtime_ns");
  }
  end(fast, steps0);
}

static _Thread_local tally *mine; /* the tally of the thread whose set is being delivered inline */

static int on_change(const rstate_event *ev, void *userdata) {
  (void)userdata;
  if (mine && ev->kind == RSTATE_EVENT_CHANGED) mine->stamp = ev->timestamp_ns;
  return RSTATE_OK;
}

typedef struct store_arg {
  tally *t, *info;
} store_arg;

static void *store_thread(void *arg) {
  store_arg *a = arg;
  tally *t = a->t, *info = a->info;
  pin(t->cpu);
  mine = t;
  sample(&t->dr);
  for (int round = 0; round < 40; round++) {
    for (int i = 0; i < 500; i++) {
      t->stamp = 0;
      int64_t mono0 = clock_of(CLOCK_MONOTONIC);
      int64_t before = wall_ns();
      int rc = rstate_set_float(t->s, t->name, (double)(round * 1000 + i + 1));
      int64_t after = wall_ns();
      int64_t mono1 = clock_of(CLOCK_MONOTONIC);
      if (rc != RSTATE_OK || !t->stamp) {
        t->outside++; /* counted as a failure: no event, no stamp */
        continue;
      }
      judge(t, mono0, before, t->stamp, after, mono1);
      rstate_var_info vi;
      if (rstate_info(t->s, t->name, &vi) == RSTATE_OK)
        judge(info, mono0, before, vi.updated_ns, after, mono1);
      else
        info->outside++;
    }
    sample(&t->dr);
    if ((round + t->cpu) % 2) quiet_ns(round % 5 ? 1500000 : RSTATE__STAMP_SPAN_NS / 2);
  }
  sample(&t->dr);
  return NULL;
}

Test(clock, event_and_info_stamps_within_a_microsecond_across_threads) {
  rstate_store *s = h_open();
  const char *names[2] = {"clock.a", "clock.b"};
  for (int i = 0; i < 2; i++) {
    h_define_ok(s, names[i], RSTATE_TYPE_FLOAT, rstate_float(0), NULL);
    ASSERT_RC(rstate_watch(s, &names[i], 1, on_change, NULL, NULL, NULL), RSTATE_OK);
  }
  static tally t[2], info[2];
  store_arg args[2];
  for (int i = 0; i < 2; i++) {
    t[i].cpu = info[i].cpu = i, t[i].s = s, t[i].name = names[i];
    args[i] = (store_arg){&t[i], &info[i]};
  }
  bool fast;
  uint64_t steps0 = begin(&fast);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, store_thread, &args[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    verdict(&t[i], steps0);
    verdict(&info[i], steps0);
    report(&t[i], "timestamp_ns");
    report(&info[i], "updated_ns");
  }
  end(fast, steps0);
  rstate_close(s);
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
  atomic_store(&rstate__realtime_shift_ns, 0);
}

static void sleep_ns(int64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  nanosleep(&ts, NULL);
}

/* Moves the library's wall clock by `by` ns while no conversion pair is in
 * use, and stamps for 100 ms: every stamp must be on the moved clock (no
 * stamp was converted across the move, so none may follow the old clock),
 * no move is counted (nothing was wrong), and the counter is in use again
 * within a second. */
static void unseen_move(int64_t by, const char *when) {
  uint64_t steps = rstate__realtime_steps();
  atomic_fetch_add(&rstate__realtime_shift_ns, by);
  int64_t shift = atomic_load(&rstate__realtime_shift_ns);
  long checked = 0, wrong = 0;
  int64_t worst = 0;
  for (int64_t end = wall_ns() + 100000000; wall_ns() < end;) {
    int64_t before = wall_ns() + shift;
    int64_t stamp = rstate__realtime_ns();
    int64_t after = wall_ns() + shift;
    checked++;
    if (stamp >= before - SLACK_NS && stamp <= after + SLACK_NS) continue;
    wrong++;
    if (llabs(stamp - before) > worst) worst = llabs(stamp - before);
  }
  cr_log_info("wall clock moved by %lld ns %s: %ld of %ld stamps off (worst %lld ns)", (long long)by, when, wrong, checked, (long long)worst);
  cr_expect_eq(wrong, 0, "moved by %lld ns %s: %ld of %ld stamps more than 1 us off the moved clock (worst %lld ns)", (long long)by, when,
               wrong, checked, (long long)worst);
  cr_expect_eq(rstate__realtime_steps(), steps, "moved by %lld ns %s: counted as a move of a pair in use", (long long)by, when);
  cr_expect_eq(until_fast(1000000000), true, "moved by %lld ns %s: the counter is not used again within 1 s", (long long)by, when);
}

Test(clock, a_wall_clock_moved_while_no_pair_is_checked_is_not_in_the_rate) {
  pin(0);
  if (!until_fast(2000000000)) {
    cr_log_info("stamps from the clock_gettime fallback: nothing to check");
    return;
  }
  /* After a gap longer than the published pair can predict over (10,000
   * lives, 2 s), the rate is measured across the gap: −50 ms in it would
   * make it ~2.4 % off, 5 µs at the end of a pair's life. */
  sleep_ns(2100000000);
  unseen_move(-50000000, "in a 2.1 s gap");
  /* While the first rate is measured (after the hold that follows a seen
   * move, the rate is measured from scratch): +2 ms in its 10 ms would make
   * it 20 % off (a move back is seen as the clock going back). */
  step(500000, true);
  sleep_ns((int64_t)RSTATE__STAMP_HOLD_NS + 50000000);
  (void)rstate__realtime_ns(); /* the first pair of the new rate */
  unseen_move(2000000, "while the first rate is measured");
  atomic_store(&rstate__realtime_shift_ns, 0);
}

/* The first rate is measured in two halves, each checked on its own: with
 * stamps 2.1 s apart, each half is under the longest span a rate is taken
 * over (4 s) and the whole is not. The rate then comes from the second
 * half, and the counter is used again. */
Test(clock, a_first_rate_over_two_slow_halves_is_taken_from_the_second) {
  pin(0);
  if (!until_fast(2000000000)) {
    cr_log_info("stamps from the clock_gettime fallback: nothing to check");
    return;
  }
  step(500000, true); /* a seen move: the rate is measured again after the hold */
  atomic_store(&rstate__realtime_shift_ns, 0);
  sleep_ns((int64_t)RSTATE__STAMP_HOLD_NS + 50000000);
  for (int i = 0; i < 3; i++) { /* the anchor, the middle, the end */
    int64_t before = wall_ns(), stamp = rstate__realtime_ns(), after = wall_ns();
    cr_expect_eq(stamp >= before - SLACK_NS && stamp <= after + SLACK_NS, true, "stamp %d is %lld ns off", i,
              (long long)(stamp < before ? before - stamp : stamp - after));
    if (i < 2) sleep_ns(2100000000);
  }
  cr_expect_eq(until_fast(1000000000), true, "the counter is not used again after a first rate over 4.2 s");
}
