/*
 * leakcheck.h — asks the memory checker a test runs under (LeakSanitizer in
 * `make asan`, valgrind's memcheck in `make valgrind`) what it has found so
 * far, from inside the test process. Used by test_debounce.c and
 * test_dispatch.c around the tests that end watches with events pending.
 *
 * Why: a leak found only when a test process exits, or a valgrind error that
 * does not crash, is not reported as a failure by Criterion, so those tests
 * take a mem_now() before and check ASSERT_MEM_CLEAN_SINCE(before) after
 * rstate_close, which fails the very test that leaked. Without a checker,
 * both counts are always 0 and the check passes. Header-only, static inline.
 */
#ifndef RSTATE_TEST_LEAKCHECK_H
#define RSTATE_TEST_LEAKCHECK_H

#include <criterion/criterion.h>

#if defined(__SANITIZE_ADDRESS__)
#define LEAKCHECK_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEAKCHECK_LSAN 1
#endif
#endif
#ifdef LEAKCHECK_LSAN
#include <sanitizer/lsan_interface.h>
#elif defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define LEAKCHECK_MEMCHECK 1
#endif
#endif

/* What the checker has found so far in this process: definitely lost bytes
 * and (valgrind) memory errors such as invalid reads. Under LeakSanitizer,
 * leaked is 0 or 1 (use after free aborts by itself); without a checker,
 * both are 0. */
typedef struct mem_report {
  unsigned long leaked, errors;
} mem_report;

static inline mem_report mem_now(void) {
  mem_report r = {0, 0};
#if defined(LEAKCHECK_LSAN)
  r.leaked = __lsan_do_recoverable_leak_check() ? 1 : 0;
#elif defined(LEAKCHECK_MEMCHECK)
  if (RUNNING_ON_VALGRIND) {
    unsigned long dubious = 0, reachable = 0, suppressed = 0;
    VALGRIND_DO_QUICK_LEAK_CHECK;
    VALGRIND_COUNT_LEAKS(r.leaked, dubious, reachable, suppressed);
    (void)dubious;
    (void)reachable;
    (void)suppressed;
    r.errors = VALGRIND_COUNT_ERRORS;
  }
#endif
  return r;
}

/* Fails the test if the checker has found a memory error or more leaked
 * memory than it had in before (a mem_now() taken earlier in the test). A
 * macro, so a failure is reported at the test's line. */
#define ASSERT_MEM_CLEAN_SINCE(before)                                                                             \
  do {                                                                                                             \
    mem_report after_ = mem_now();                                                                                 \
    cr_assert_leq(after_.errors, (before).errors, "the memory checker found %lu memory error(s) (see its report)", \
                  after_.errors - (before).errors);                                                                \
    cr_assert_leq(after_.leaked, (before).leaked,                                                                  \
                  "the memory checker finds leaked memory after rstate_close (%lu, was %lu)", after_.leaked,       \
                  (before).leaked);                                                                                \
  } while (0)

#endif /* RSTATE_TEST_LEAKCHECK_H */
