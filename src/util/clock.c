/*
 * clock.c — the library's clocks: wall time for event timestamps, monotonic
 * time for waits, and the debounce clock, which tests may replace through
 * rstate__clock_hook to drive time deterministically.
 *
 * Wall time is read on every change (timestamp_ns, updated_ns), and a full
 * clock_gettime(CLOCK_REALTIME) costs ~25–30 ns in a KVM guest, a third of a
 * set. Where the processor has an invariant time-stamp counter (x86-64,
 * CPUID 80000007H EDX bit 8: constant rate, running in every power state, the
 * counter the kernel's own "tsc" clocksource reads), rstate__realtime_ns
 * reads the counter (~11 ns) and converts it with a (counter, CLOCK_REALTIME)
 * pair taken at most CAL_SPAN_NS ago and a rate measured over 1 ms to 4 s:
 * nanosecond meaning is kept, the error stays far below 1 µs (tests/
 * test_clock.c checks it against clock_gettime across threads and CPUs), and
 * a step of the wall clock (settimeofday, NTP) is followed within
 * CAL_SPAN_NS. The pair is republished by whichever thread first finds it
 * stale (a try-lock: the others read the clock themselves meanwhile), behind
 * a sequence count, so readers never block. A pair whose counter reads
 * were preempted apart is not used, and a rate 500 ppm off the known one
 * (the wall clock was set) is measured again. Elsewhere, or when the
 * counter's rate looks wrong, it is clock_gettime as before.
 */
#include <stdatomic.h>
#include <time.h>

#include "util.h"

/* The counter stamp is built only with -DRSTATE_TSC_STAMP for now: in 1 of
 * 3 full test runs (and once under valgrind) test_clock found stamps of a
 * whole conversion pair's life up to 0.5 ms early on both CPUs, never
 * late; the cause is not found yet, and a timestamp must mean
 * CLOCK_REALTIME. Without it every stamp is clock_gettime. */
#if defined(RSTATE_TSC_STAMP) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define RSTATE_HAVE_TSC 1
#endif

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rstate__monotonic_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

int64_t (*rstate__clock_hook)(void);

int64_t rstate__now_ns(void) { return rstate__clock_hook ? rstate__clock_hook() : clock_ns(CLOCK_MONOTONIC); }

#ifndef RSTATE_HAVE_TSC

int64_t rstate__realtime_ns(void) { return clock_ns(CLOCK_REALTIME); }
bool rstate__realtime_fast(void) { return false; }

#else

enum {
  CAL_SPAN_NS = 1000000,     /* a published pair converts for at most 1 ms of counter */
  RATE_MIN_NS = 1000000,     /* the rate is measured over at least 1 ms ... */
  RATE_RENEW_NS = 2000000000, /* ... and its start moves on after 2 s (so NTP's slewing is followed) */
  PAIR_MAX_TICKS = 2000        /* a pair's counter reads at most this far apart (~0.7 µs at 3 GHz) */
};

/* The published conversion: ns = base_ns + ((tsc - base_tsc) * mult >> 32),
 * valid while tsc - base_tsc <= limit. seq is odd while it is rewritten. */
static struct {
  _Atomic uint64_t seq;
  _Atomic uint64_t base_tsc, limit, mult;
  _Atomic int64_t base_ns;
} pub;

/* 0 not yet known, 1 the counter is usable, -1 it is not. */
static _Atomic int usable;
/* The calibrating thread's own state, guarded by the flag. */
static atomic_flag calibrating = ATOMIC_FLAG_INIT;
static uint64_t anchor_tsc;
static int64_t anchor_ns;
static bool have_anchor, have_rate;

static inline uint64_t tsc(void) { return __builtin_ia32_rdtsc(); }

static bool invariant_tsc(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u) return false;
  if (!__get_cpuid(0x80000007u, &a, &b, &c, &d)) return false;
  return (d >> 8) & 1;
}

/* One (counter, wall) pair: the counter read on both sides of the clock,
best of two (the narrower window: no preemption in between). */
static uint64_t pair(uint64_t *t, int64_t *ns) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 2; i++) {
    uint64_t t0 = tsc();
    int64_t n = clock_ns(CLOCK_REALTIME);
    uint64_t t1 = tsc();
    if (t1 >= t0 && t1 - t0 < best) {
      best = t1 - t0;
      *t = t0 + (t1 - t0) / 2;
      *ns = n;
    }
  }
  if (best == UINT64_MAX) { /* the counter went back: take the clock alone */
    *t = tsc();
    *ns = clock_ns(CLOCK_REALTIME);
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

/* Takes a new pair and republishes; returns the pair's wall time. Called
 * with the flag held. */
static int64_t calibrate(void) {
  uint64_t t;
  int64_t ns;
  if (have_anchor && !have_rate) { /* waiting for the rate's first span: no pair needed before it */
    ns = clock_ns(CLOCK_REALTIME);
    if (ns >= anchor_ns && ns - anchor_ns < RATE_MIN_NS) return ns;
  }
  uint64_t window = pair(&t, &ns);
  /* Both tries preempted between their counter reads (~120 ticks apart
   * here): the pair is not precise enough to convert with. The clock read
   * itself is right for this caller; the next one tries again. */
  if (window > PAIR_MAX_TICKS) return ns;
  if (!have_anchor || ns <= anchor_ns || t <= anchor_tsc) { /* the first pair, or the wall clock went back */
    anchor_tsc = t, anchor_ns = ns, have_anchor = true, have_rate = false;
    atomic_store_explicit(&pub.limit, 0, memory_order_relaxed); /* read the clock until a rate is known */
    return ns;
  }
  int64_t span_ns = ns - anchor_ns;
  uint64_t span_tsc = t - anchor_tsc;
  if (span_ns < RATE_MIN_NS && !have_rate) return ns;
  uint64_t mult = atomic_load_explicit(&pub.mult, memory_order_relaxed);
  if (span_ns >= RATE_MIN_NS) {
    /* 32.32 fixed-point ns per tick; a rate outside 100 MHz–20 GHz (or a
     * span too long to compute it) means the counter is not what we think. */
    if (span_ns > (int64_t)4000000000 || span_tsc / (uint64_t)span_ns > 20 || (uint64_t)span_ns / span_tsc > 10) {
      anchor_tsc = t, anchor_ns = ns, have_rate = false;
      atomic_store_explicit(&pub.limit, 0, memory_order_relaxed);
      return ns;
    }
    uint64_t m = ((uint64_t)span_ns << 32) / span_tsc;
    if (have_rate && (m > mult + mult / 2000 || m < mult - mult / 2000)) {
      /* more than 500 ppm (NTP's fastest slew) from the rate known: the wall
       * clock was set meanwhile. Keep the rate, measure it again from here. */
      anchor_tsc = t, anchor_ns = ns;
    } else {
      mult = m;
      have_rate = true;
      if (span_ns >= RATE_RENEW_NS) anchor_tsc = t, anchor_ns = ns;
    }
  }
  /* limit: CAL_SPAN_NS in ticks (mult ≥ 2^32/20, so this stays small). */
  uint64_t limit = ((uint64_t)CAL_SPAN_NS << 32) / mult;
  publish(t, ns, mult, limit);
  return ns;
}

static int64_t slow(void) {
  int u = atomic_load_explicit(&usable, memory_order_relaxed);
  if (u == 0) {
    u = invariant_tsc() ? 1 : -1;
    atomic_store_explicit(&usable, u, memory_order_relaxed);
  }
  if (u < 0 || atomic_flag_test_and_set_explicit(&calibrating, memory_order_acquire)) return clock_ns(CLOCK_REALTIME);
  int64_t ns = calibrate();
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
  if ((s & 1) || atomic_load_explicit(&pub.seq, memory_order_relaxed) != s) return clock_ns(CLOCK_REALTIME);
  uint64_t d = t - base; /* huge when t < base: another thread republished after t was read */
  if (d > limit) return slow();
  return ns + (int64_t)((d * mult) >> 32);
}

bool rstate__realtime_fast(void) {
  (void)rstate__realtime_ns();
  return atomic_load_explicit(&usable, memory_order_relaxed) > 0;
}

#endif
