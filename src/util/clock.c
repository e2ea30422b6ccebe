/*
 * clock.c — the library's clocks: wall time for event timestamps, monotonic
 * time for waits, and the debounce clock, which tests may replace through
 * rstate__clock_hook to drive time deterministically.
 *
 * Wall time is read on every change (timestamp_ns, updated_ns), and a full
 * clock_gettime(CLOCK_REALTIME) costs ~25–30 ns in a KVM guest, a third of a
 * set. Where the processor has an invariant time-stamp counter (x86-64,
 * CPUID 80000007H EDX bit 8: constant rate, running in every power state)
 * and the kernel's clocksource is that counter ("tsc": the kernel checked
 * that the CPUs' counters agree), rstate__realtime_ns reads the counter
 * (~11 ns) and converts it with a (counter, CLOCK_REALTIME) pair taken at
 * most CAL_SPAN_NS (200 µs) of counter ago and a rate measured over 10 ms to
 * 4 s, renewed from 2 s (the first one twice, used only when both agree). The pair is
 * republished by whichever thread first finds it stale (a try-lock: the
 * others read the clock themselves meanwhile), behind a sequence count, so
 * readers never block. A pair whose counter reads were preempted apart (more
 * than PAIR_MAX_TICKS) is not used; after IMPRECISE_MAX such pairs in a row
 * (valgrind) the counter is given up for good.
 *
 * What can still make a stamp wrong is the wall clock itself being moved
 * apart from the counter (settimeofday, an NTP step, a fast slew): only a
 * clock read sees that at once. On the firecracker guests of the benchmark
 * machine it happens when a snapshot of the VM is restored ("crng reseeded
 * due to virtual machine fork" in the kernel log). So every renewal checks
 * the new pair against what the published one predicts: more than STEP_NS
 * off, the wall clock moved, and the clock is read for HOLD_NS before the
 * rate is measured again from scratch. When there is nothing to predict
 * with (no pair for 2 s), a new rate that disagrees with the last one is
 * measured again instead of used. Stamps are therefore within 1 µs of
 * CLOCK_REALTIME except those converted, after a move of the wall clock, by
 * the pair in use when it moved: at most that pair's remaining life (≤ 200
 * µs of counter), off by the move. tests/test_clock.c moves the library's
 * wall clock through rstate__realtime_shift_ns to check that bound, and
 * excuses a bracket-test stamp only inside the window that
 * rstate__realtime_move reports. Elsewhere it is clock_gettime as before.
 */
#include <stdatomic.h>
#include <time.h>

#include "util.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define RSTATE_HAVE_TSC 1
#endif

_Atomic int64_t rstate__realtime_shift_ns;

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_REALTIME, moved by what a test set in rstate__realtime_shift_ns. */
static int64_t wall_ns(void) {
  return clock_ns(CLOCK_REALTIME) + atomic_load_explicit(&rstate__realtime_shift_ns, memory_order_relaxed);
}

int64_t rstate__monotonic_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

int64_t (*rstate__clock_hook)(void);

int64_t rstate__now_ns(void) { return rstate__clock_hook ? rstate__clock_hook() : clock_ns(CLOCK_MONOTONIC); }

#ifndef RSTATE_HAVE_TSC

int64_t rstate__realtime_ns(void) { return wall_ns(); }
bool rstate__realtime_fast(void) { return false; }
uint64_t rstate__realtime_steps(void) { return 0; }
bool rstate__realtime_move(uint64_t i, int64_t *from, int64_t *to) {
  (void)i, (void)from, (void)to;
  return false;
}

#else

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

enum {
  CAL_SPAN_NS = RSTATE__STAMP_SPAN_NS, /* a published pair converts for at most this much counter */
  RATE_MIN_NS = 10000000,      /* the rate is measured over at least 10 ms ... */
  RATE_RENEW_NS = 2000000000,  /* ... and its start moves on after 2 s (so NTP's slewing is followed) */
  PAIR_MAX_TICKS = 1000,       /* a pair's counter reads at most this far apart (~0.4 µs at 2.4 GHz) */
  IMPRECISE_MAX = 64,          /* this many such pairs in a row: the counter is given up */
  STEP_NS = 500,               /* a new pair this far from the last one's prediction: the wall clock moved */
  HOLD_NS = RSTATE__STAMP_HOLD_NS, /* then the clock is read for this long before the counter is trusted again */
  MOVES = 16                   /* the moves whose stamps' window tests can ask for */
};

/* The published conversion: ns = base_ns + ((tsc - base_tsc) * mult >> 32),
 * valid while tsc - base_tsc <= limit. seq is odd while it is rewritten. */
static struct {
  _Alignas(RSTATE__CACHE_LINE) _Atomic uint64_t seq; /* read by every stamp: a line of its own */
  _Atomic uint64_t base_tsc, limit, mult;
  _Atomic int64_t base_ns;
} pub;

/* 0 not yet known, 1 the counter is usable, -1 it is not. */
static _Atomic int usable;
/* From hold_from until the counter reaches hold_tsc, stamps are clock reads
 * (a move of the wall clock was seen at hold_from). */
static _Atomic uint64_t hold_from, hold_tsc;
static _Atomic uint64_t steps;
/* For each move seen, the CLOCK_MONOTONIC window of the pair it made wrong. */
static _Atomic int64_t move_from[MOVES], move_to[MOVES];
/* The calibrating thread's own state, guarded by the flag: the rate is
 * measured from the anchor; the first rate is measured twice (anchor to
 * mid, mid to a third pair) and used only when both agree. */
static atomic_flag calibrating = ATOMIC_FLAG_INIT;
static uint64_t anchor_tsc, mid_tsc, mid_mult;
static int64_t anchor_ns, mid_ns;
static bool have_anchor, have_mid, have_rate;
static int imprecise; /* pairs too imprecise to use, in a row */

static inline uint64_t tsc(void) { return __builtin_ia32_rdtsc(); }

static bool invariant_tsc(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u) return false;
  if (!__get_cpuid(0x80000007u, &a, &b, &c, &d)) return false;
  return (d >> 8) & 1;
}

/* Whether the kernel's clocksource is the counter: then the kernel has
 * checked that the CPUs' counters agree, which CPUID's invariant bit does
 * not say. Read once, at the first stamp: a later change of clocksource
 * (the kernel finding the counters apart) is not followed. */
static bool kernel_reads_tsc(void) {
  int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[16];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  return n == 4 && !memcmp(buf, "tsc\n", 4);
}

/* One (counter, wall) pair: the counter read on both sides of the clock,
best of two (the narrower window: no preemption in between). */
static uint64_t pair(uint64_t *t, int64_t *ns) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 2; i++) {
    uint64_t t0 = tsc();
    int64_t n = wall_ns();
    uint64_t t1 = tsc();
    if (t1 >= t0 && t1 - t0 < best) {
      best = t1 - t0;
      *t = t0 + (t1 - t0) / 2;
      *ns = n;
    }
  }
  if (best == UINT64_MAX) { /* the counter went back: take the clock alone */
    *t = tsc();
    *ns = wall_ns();
  }
  return best;
}

static void publish(uint64_t t, int64_t ns, uint64_t mult, uint64_t limit) {
  uint64_t s = atomic_load_explicit(&pub.seq, memory_order_relaxed);
  atomic_store_explicit(&pub.seq, s + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&pub.base_tsc, t, memory_order_relaxed);
  atomic_store_explicit(&pub.base_ns, ns, memory_order_relaxed);
  atomic_store_explicit(&pub.mult, mult, memory_order_relaxed);
  atomic_store_explicit(&pub.limit, limit, memory_order_relaxed);
  atomic_store_explicit(&pub.seq, s + 2, memory_order_release);
}

/* Whether the pair (t, ns) lies where the published conversion says: off by
 * more than STEP_NS (plus 100 ppm of the time since, for the rate's own
 * error), the wall clock was set or slewed apart from the counter, and the
 * stamps given since the step were wrong by that much. Nothing stops that
 * (only a clock read sees a step at once), but it stops at the first
 * renewal after it: the counter is set aside for HOLD_NS and the rate is
 * measured again from scratch. 1 moved, 0 not, -1 nothing to compare with
 * (no rate, or the published pair more than 10,000 lives old). */
static int moved(uint64_t t, int64_t ns) {
  if (!have_rate) return -1;
  uint64_t base = atomic_load_explicit(&pub.base_tsc, memory_order_relaxed);
  uint64_t mult = atomic_load_explicit(&pub.mult, memory_order_relaxed);
  uint64_t limit = atomic_load_explicit(&pub.limit, memory_order_relaxed);
  if (!limit || t < base || t - base > limit * 10000) return -1;
  int64_t since = (int64_t)(((t - base) * mult) >> 32); /* at most 10,000 spans: no overflow */
  int64_t off = ns - (atomic_load_explicit(&pub.base_ns, memory_order_relaxed) + since);
  if (off <= STEP_NS + since / 10000 && -off <= STEP_NS + since / 10000) return 0;
  /* The stamps that may be wrong are those of the published pair's life:
   * where it lay on CLOCK_MONOTONIC (give or take 1,000 ppm of its age and
   * 1 µs, for the two clocks' rates), for tests to excuse them. */
  int64_t mono = clock_ns(CLOCK_MONOTONIC), slack = since / 1000 + 1000;
  uint64_t n = atomic_load_explicit(&steps, memory_order_relaxed);
  atomic_store_explicit(&move_from[n % MOVES], mono - since - slack, memory_order_relaxed);
  atomic_store_explicit(&move_to[n % MOVES], mono - since + CAL_SPAN_NS + slack, memory_order_relaxed);
  atomic_store_explicit(&steps, n + 1, memory_order_release);
  return 1;
}

/* Whether two rates (32.32 ns per tick), one measured over span_ns, agree
 * within 100 ppm and the STEP_NS a pair may be off by. */
static bool agree(uint64_t a, uint64_t b, int64_t span_ns) {
  uint64_t d = a > b ? a - b : b - a;
  return d <= b / 10000 + b * STEP_NS / (uint64_t)span_ns;
}

/* The rate from (t0, n0) to (t, ns), 0 when it is not that of a counter
 * (outside 100 MHz–20 GHz, or a span too long to compute it). */
static uint64_t rate(uint64_t t0, int64_t n0, uint64_t t, int64_t ns) {
  int64_t span_ns = ns - n0;
  uint64_t span_tsc = t - t0;
  if (span_ns > (int64_t)4000000000 || span_tsc / (uint64_t)span_ns > 20 || (uint64_t)span_ns / span_tsc > 10) return 0;
  return ((uint64_t)span_ns << 32) / span_tsc;
}

/* Whether counter value t falls in a hold (the clock read after a move);
 * a counter that restarted below the hold's start (a restored snapshot)
 * ends it. */
static bool held(uint64_t t) {
  return t < atomic_load_explicit(&hold_tsc, memory_order_relaxed) && t >= atomic_load_explicit(&hold_from, memory_order_relaxed);
}

static void anchor(uint64_t t, int64_t ns) {
  anchor_tsc = t, anchor_ns = ns, have_anchor = true, have_mid = have_rate = false;
  atomic_store_explicit(&pub.limit, 0, memory_order_relaxed); /* read the clock until a rate is known */
}

/* Takes a new pair and republishes; returns the pair's wall time. Called
 * with the flag held. */
static int64_t calibrate(uint64_t t) {
  if (held(t))
    return wall_ns(); /* a move was seen since this thread looked */
  int64_t ns;
  if (have_anchor && !have_rate) { /* waiting for a first-rate span: no pair needed before it */
    int64_t from = have_mid ? mid_ns : anchor_ns;
    ns = wall_ns();
    if (ns >= from && ns - from < RATE_MIN_NS) return ns;
  }
  uint64_t window = pair(&t, &ns);
  /* Both tries preempted between their counter reads (~120 ticks apart
   * here): the pair is not precise enough to convert with. The clock read
   * itself is right for this caller; the next one tries again. Where no
   * pair ever is (valgrind, a guest whose clock_gettime is a system call),
   * trying costs twice the clock read it would save: the counter is given
   * up after IMPRECISE_MAX in a row. */
  if (window > PAIR_MAX_TICKS) {
    if (++imprecise >= IMPRECISE_MAX) {
      atomic_store_explicit(&usable, -1, memory_order_relaxed);
      atomic_store_explicit(&pub.limit, 0, memory_order_relaxed);
    }
    return ns;
  }
  imprecise = 0;
  int m = moved(t, ns);
  if (m > 0) {
    uint64_t mult = atomic_load_explicit(&pub.mult, memory_order_relaxed);
    atomic_store_explicit(&pub.limit, 0, memory_order_relaxed); /* read the clock ... */
    atomic_store_explicit(&hold_from, t, memory_order_relaxed);
    atomic_store_explicit(&hold_tsc, t + (((uint64_t)HOLD_NS << 32) / mult), memory_order_relaxed); /* ... for HOLD_NS */
    have_anchor = have_mid = have_rate = false;
    return ns;
  }
  if (!have_anchor || ns <= anchor_ns || t <= anchor_tsc) { /* the first pair, or the wall clock went back */
    anchor(t, ns);
    return ns;
  }
  uint64_t mult;
  if (!have_rate) {
    /* The first rate: nothing checks a pair against a prediction yet, so a
     * move of the wall clock while it is measured would be in it. It is
     * measured twice, over RATE_MIN_NS each, and used only when both agree;
     * otherwise it is measured again from here. */
    uint64_t t0 = have_mid ? mid_tsc : anchor_tsc;
    int64_t n0 = have_mid ? mid_ns : anchor_ns;
    if (ns <= n0 || t <= t0) {
      anchor(t, ns);
      return ns;
    }
    if (ns - n0 < RATE_MIN_NS) return ns;
    uint64_t r = rate(t0, n0, t, ns);
    if (!r || (have_mid && !agree(r, mid_mult, ns - n0))) {
      anchor(t, ns);
      return ns;
    }
    if (!have_mid) {
      mid_tsc = t, mid_ns = ns, mid_mult = r, have_mid = true;
      return ns;
    }
    mult = rate(anchor_tsc, anchor_ns, t, ns);
    if (!mult) { /* the whole span is over what a rate is taken across: the second half's */
      mult = r;
      anchor_tsc = mid_tsc, anchor_ns = mid_ns;
    }
    have_rate = true, have_mid = false;
  } else {
    mult = atomic_load_explicit(&pub.mult, memory_order_relaxed);
    int64_t span_ns = ns - anchor_ns;
    if (span_ns >= RATE_MIN_NS) {
      uint64_t r = rate(anchor_tsc, anchor_ns, t, ns);
      /* With nothing to compare the pair with (no pair for 2 s), a move of
       * the wall clock since the anchor would be in the new rate: one that
       * disagrees with the last is measured again from scratch. */
      if (!r || (m < 0 && !agree(r, mult, span_ns))) {
        anchor(t, ns);
        return ns;
      }
      mult = r;
      if (span_ns >= RATE_RENEW_NS) anchor_tsc = t, anchor_ns = ns;
    }
  }
  /* limit: CAL_SPAN_NS in ticks (mult ≥ 2^32/20, so this stays small). */
  uint64_t limit = ((uint64_t)CAL_SPAN_NS << 32) / mult;
  publish(t, ns, mult, limit);
  return ns;
}

static int64_t slow(uint64_t t) {
  int u = atomic_load_explicit(&usable, memory_order_relaxed);
  if (u == 0) {
    u = invariant_tsc() && kernel_reads_tsc() ? 1 : -1;
    atomic_store_explicit(&usable, u, memory_order_relaxed);
  }
  /* During a hold the clock is read (held) */
  if (u < 0 ||
      held(t) ||
      atomic_flag_test_and_set_explicit(&calibrating, memory_order_acquire))
    return wall_ns();
  int64_t ns = calibrate(t);
  atomic_flag_clear_explicit(&calibrating, memory_order_release);
  return ns;
}

int64_t rstate__realtime_ns(void) {
  uint64_t t = tsc();
  uint64_t s = atomic_load_explicit(&pub.seq, memory_order_acquire);
  uint64_t base = atomic_load_explicit(&pub.base_tsc, memory_order_relaxed);
  int64_t ns = atomic_load_explicit(&pub.base_ns, memory_order_relaxed);
  uint64_t mult = atomic_load_explicit(&pub.mult, memory_order_relaxed);
  uint64_t limit = atomic_load_explicit(&pub.limit, memory_order_relaxed);
  atomic_thread_fence(memory_order_acquire);
  if ((s & 1) || atomic_load_explicit(&pub.seq, memory_order_relaxed) != s) return wall_ns();
  uint64_t d = t - base; /* huge when t < base: another thread republished after t was read */
  if (d > limit) return slow(t);
  return ns + (int64_t)((d * mult) >> 32);
}

bool rstate__realtime_fast(void) {
  (void)rstate__realtime_ns();
  uint64_t t = tsc();
  return atomic_load_explicit(&usable, memory_order_relaxed) > 0 && atomic_load_explicit(&pub.limit, memory_order_relaxed) &&
         !held(t);
}

uint64_t rstate__realtime_steps(void) { return atomic_load_explicit(&steps, memory_order_acquire); }

bool rstate__realtime_move(uint64_t i, int64_t *from, int64_t *to) {
  if (i >= rstate__realtime_steps() || i + MOVES <= rstate__realtime_steps()) return false;
  *from = atomic_load_explicit(&move_from[i % MOVES], memory_order_relaxed);
  *to = atomic_load_explicit(&move_to[i % MOVES], memory_order_relaxed);
  return true;
}

#endif
