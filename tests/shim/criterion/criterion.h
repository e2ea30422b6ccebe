/*
 * criterion.h — a small stand-in for Criterion, used by the ThreadSanitizer
 * and the valgrind builds of the tests.
 *
 * Criterion 2.4 cannot start under ThreadSanitizer (its inheritable arena
 * cannot be mapped: Snaipe/Criterion#274), and under valgrind it costs a
 * second of CPU a test: it starts every test by executing the program again,
 * and valgrind starts over in each, reading the twenty libraries Criterion
 * links (libgit2, krb5, OpenSSL, ...). So these builds compile the very same
 * test files against this header instead, which links nothing. It provides
 * the subset the tests use — Test, TestSuite with .init/.fini/.timeout, the
 * cr_assert family, cr_expect_eq, cr_log_info, cr_skip_test — runs every test
 * in its own forked process as Criterion does, and ends with Criterion's
 * "Synthesis:" line so tests/run.sh counts it the same way.
 */
#ifndef RSTATE_SHIM_CRITERION_H
#define RSTATE_SHIM_CRITERION_H

/* Test(s, n) and cr_assert(c) leave a variadic macro's "..." empty, as
 * Criterion's own macros allow; that is fine for this build's compilers. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wgnu-zero-variadic-macro-arguments"
#pragma clang diagnostic ignored "-Wgnu-empty-initializer"
#else
#pragma GCC diagnostic ignored "-Wpedantic"
#endif

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct shim_opts {
  void (*init)(void);
  void (*fini)(void);
  double timeout;
  const char *description;
  bool disabled;
};

struct shim_test {
  const struct shim_opts *suite;
  const char *suite_name, *name;
  void (*fn)(void);
  struct shim_opts opts;
};

static struct shim_test shim_tests[512];
static int shim_n, shim_expect_failed;

static inline void shim_register(const struct shim_opts *suite, const char *suite_name, const char *name,
                                 void (*fn)(void), struct shim_opts opts) {
  if (shim_n < (int)(sizeof shim_tests / sizeof shim_tests[0]))
    shim_tests[shim_n++] = (struct shim_test){suite, suite_name, name, fn, opts};
}

__attribute__((format(printf, 5, 6))) static inline void shim_report(bool fatal, const char *file, int line,
                                                                     const char *text, const char *fmt, ...) {
  fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n[----]   ", file, line, text);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  if (fatal) _exit(1);
  shim_expect_failed = 1;
}

#define TestSuite(s, ...) static const struct shim_opts shim_suite_##s = {__VA_ARGS__}
#define Test(s, n, ...)                                                                           \
  static void shim_test_##s##_##n(void);                                                          \
  __attribute__((constructor)) static void shim_reg_##s##_##n(void) {                             \
    shim_register(&shim_suite_##s, #s, #n, shim_test_##s##_##n, (struct shim_opts){__VA_ARGS__}); \
  }                                                                                               \
  static void shim_test_##s##_##n(void)

#define SHIM_CHECK(fatal, cond, text, ...)                                                          \
  do {                                                                                              \
    if (!(cond)) shim_report(fatal, __FILE__, __LINE__, text, "" __VA_ARGS__);                      \
  } while (0)

#define cr_assert(cond, ...) SHIM_CHECK(true, cond, #cond, __VA_ARGS__)
#define cr_assert_not(cond, ...) SHIM_CHECK(true, !(cond), "not " #cond, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) SHIM_CHECK(true, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) SHIM_CHECK(true, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) SHIM_CHECK(true, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) SHIM_CHECK(true, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) SHIM_CHECK(true, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) SHIM_CHECK(true, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(a, ...) SHIM_CHECK(true, (a) == NULL, #a " == NULL", __VA_ARGS__)
#define cr_assert_not_null(a, ...) SHIM_CHECK(true, (a) != NULL, #a " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) SHIM_CHECK(true, strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) SHIM_CHECK(true, strcmp((a), (b)) != 0, #a " differs from " #b, __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...) \
  SHIM_CHECK(true, fabs((double)(a) - (double)(b)) <= (eps), #a " ~= " #b, __VA_ARGS__)
#define cr_assert_fail(...) SHIM_CHECK(true, false, "cr_assert_fail", __VA_ARGS__)
#define cr_expect_eq(a, b, ...) SHIM_CHECK(false, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_log_info(...) (fprintf(stderr, "[----] " __VA_ARGS__), fprintf(stderr, "\n"))
#define cr_skip_test(...) _exit(0)

int main(void) {
  int passed = 0, failed = 0, crashed = 0;
  for (int i = 0; i < shim_n; i++) {
    struct shim_test *t = &shim_tests[i];
    if (t->opts.disabled || t->suite->disabled) continue;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      double timeout = t->opts.timeout ? t->opts.timeout : t->suite->timeout;
      alarm(timeout > 0 ? (unsigned)timeout : 300);
      if (t->suite->init) t->suite->init();
      t->fn();
      if (t->suite->fini) t->suite->fini();
      fflush(NULL);
      _exit(shim_expect_failed);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      passed++;
    } else if (WIFEXITED(status)) {
      failed++;
      fprintf(stderr, "[FAIL] %s::%s (exit %d)\n", t->suite_name, t->name, WEXITSTATUS(status));
    } else {
      crashed++;
      fprintf(stderr, "[FAIL] %s::%s: CRASH (signal %d)\n", t->suite_name, t->name, WTERMSIG(status));
    }
  }
  fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d \n",
          passed + failed + crashed, passed, failed, crashed);
  return failed || crashed;
}

#endif
