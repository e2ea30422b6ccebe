/*
 * failalloc.h — allocation failure injection for the out-of-memory tests
 * (test_schema.c, test_types.c), written once here so both run the same
 * allocator.
 *
 * malloc, calloc, realloc, free and strdup are replaced in the program that
 * includes this (glibc supports that; its own calls, such as regcomp's, come
 * here too), and the next allocation fails, once, when fail_in reaches zero.
 * Not under sanitizers, which bring their own allocator, nor under valgrind,
 * which replaces these functions again: injection_works() tells.
 *
 * Leaks are counted for the blocks allocated by code in this program (the
 * library is linked in statically), strdup's included: glibc's regcomp leaks
 * a block on some of its own out-of-memory paths (2.36), which is not ours
 * to fix, so the C library's internal blocks are left out. live is how many
 * such blocks are allocated now (-1 once tracking overflowed), allocs how
 * many allocations anyone made.
 *
 * Header-only like the other test helpers, with one exception: malloc and
 * the others must be real external definitions to replace the C library's.
 * Each test program is built from one test_X.c plus the helper .c files
 * (testbackend.c), so include this from that one test file and nowhere else.
 */
#ifndef RSTATE_TEST_FAILALLOC_H
#define RSTATE_TEST_FAILALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FAILALLOC_UNAVAILABLE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define FAILALLOC_UNAVAILABLE 1
#endif
#endif

#if !defined(FAILALLOC_UNAVAILABLE) && defined(__GLIBC__)
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern char __executable_start[], etext[]; /* this program's code, from the linker */

static long fail_in = -1; /* allocations left before one fails; -1: never */
static long allocs;       /* allocations made, by anyone */
enum { FAILALLOC_MAX_TRACKED = 8192 };
static void *failalloc_tracked[FAILALLOC_MAX_TRACKED]; /* live blocks allocated by this program's code */
static long live;                                      /* how many; -1 once tracking overflowed */

static inline bool failalloc_inject(void) {
  if (fail_in < 0) return false;
  if (fail_in == 0) {
    fail_in = -1;
    return true;
  }
  fail_in--;
  return false;
}

static inline void failalloc_track(void *p, void *caller) {
  if (!p) return;
  allocs++;
  if ((char *)caller < __executable_start || (char *)caller >= etext || live < 0) return;
  if (live == FAILALLOC_MAX_TRACKED) {
    live = -1;
    return;
  }
  failalloc_tracked[live++] = p;
}

static inline bool failalloc_untrack(void *p) {
  for (long i = live - 1; p && i >= 0; i--)
    if (failalloc_tracked[i] == p) {
      failalloc_tracked[i] = failalloc_tracked[--live];
      return true;
    }
  return false;
}

__attribute__((noinline)) void *malloc(size_t n) {
  if (failalloc_inject()) return NULL;
  void *p = __libc_malloc(n);
  failalloc_track(p, __builtin_return_address(0));
  return p;
}

__attribute__((noinline)) void *calloc(size_t n, size_t size) {
  if (failalloc_inject()) return NULL;
  void *p = __libc_calloc(n, size);
  failalloc_track(p, __builtin_return_address(0));
  return p;
}

__attribute__((noinline)) void *realloc(void *old, size_t n) {
  if (failalloc_inject()) return NULL;
  void *p = __libc_realloc(old, n);
  if (p || n == 0) {
    bool was = failalloc_untrack(old);
    failalloc_track(p, was ? (void *)__executable_start : __builtin_return_address(0));
  }
  return p;
}

void free(void *p) {
  failalloc_untrack(p);
  __libc_free(p);
}

#undef strdup
char *strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n); /* called from here: tracked */
  if (p) memcpy(p, s, n);
  return p;
}

/* Whether a failure can be injected in this build (and under this runner). */
static inline bool injection_works(void) {
  void *(*volatile alloc)(size_t) = malloc; /* so the compiler cannot drop the call */
  fail_in = 0;
  void *p = alloc(16);
  fail_in = -1;
  free(p);
  return p == NULL;
}
#else
static long fail_in = -1, live, allocs;
static inline bool injection_works(void) { return false; }
#endif

#endif /* RSTATE_TEST_FAILALLOC_H */
