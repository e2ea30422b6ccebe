/*
 * test_subindex.c — the index of which subscribers (a store's watches, a
 * server's subscriptions) cover a variable (src/types/subindex.c): exact names and
 * prefix patterns, names shared by several subscribers, a pattern given
 * twice, order, removal, and running out of memory halfway through an add.
 */
#include <string.h>

#include "failalloc.h" /* fail_in, live, injection_works() */
#include "helpers.h"
#include "types/types.h"

TestSuite(subindex);

/* How often each of the items a..e was called for one name. */
typedef struct calls {
  int n[5];
} calls;

static char items[5]; /* a..e: their addresses are the items */

static bool count(void *item, void *ud) {
  calls *c = ud;
  c->n[(char *)item - items]++;
  return true;
}

static calls lookup(const rstate__subindex *x, const char *name) {
  calls c = {{0}};
  rstate__subindex_each(x, name, strlen(name), rstate__hash(name, strlen(name)), count, &c);
  return c;
}

/* Asserts the calls for name, item by item (a..e). */
static void expect_calls(const rstate__subindex *x, const char *name, int a, int b, int c, int d, int e) {
  calls got = lookup(x, name);
  int want[5] = {a, b, c, d, e};
  for (int i = 0; i < 5; i++)
    cr_assert_eq(got.n[i], want[i], "%s: item %c called %d times, want %d", name, 'a' + i, got.n[i], want[i]);
}

#define ADD(x, item, ...)                                                                               \
  do {                                                                                                  \
    const char *p_[] = {__VA_ARGS__};                                                                   \
    cr_assert(rstate__subindex_add((x), &items[(item) - 'a'], p_, sizeof p_ / sizeof *p_), "add %c", (item)); \
  } while (0)
#define REMOVE(x, item, ...)                                                           \
  do {                                                                                 \
    const char *p_[] = {__VA_ARGS__};                                                  \
    rstate__subindex_remove((x), &items[(item) - 'a'], p_, sizeof p_ / sizeof *p_); \
  } while (0)

Test(subindex, each_name_finds_the_items_whose_patterns_cover_it) {
  rstate__subindex x;
  rstate__subindex_init(&x);
  ADD(&x, 'a', "motor.speed");
  ADD(&x, 'b', "motor.*");
  ADD(&x, 'c', "*");
  ADD(&x, 'd', "mot*", "pump.on");
  ADD(&x, 'e', "motor.speed", "motor.spe*"); /* two patterns covering one name: called twice */
  expect_calls(&x, "motor.speed", 1, 1, 1, 1, 2);
  expect_calls(&x, "motor.torque", 0, 1, 1, 1, 0);
  expect_calls(&x, "motor", 0, 0, 1, 1, 0); /* "motor.*" needs the dot */
  expect_calls(&x, "pump.on", 0, 0, 1, 1, 0);
  expect_calls(&x, "pump.off", 0, 0, 1, 0, 0);
  expect_calls(&x, "mo", 0, 0, 1, 0, 0); /* shorter than every prefix but "" */
  rstate__subindex_free(&x);
}

Test(subindex, a_pattern_given_twice_counts_once_and_removal_leaves_the_others) {
  rstate__subindex x;
  rstate__subindex_init(&x);
  ADD(&x, 'a', "v", "v", "g.*", "g.*");
  ADD(&x, 'b', "v", "g.*");
  ADD(&x, 'c', "v");
  expect_calls(&x, "v", 1, 1, 1, 0, 0);
  expect_calls(&x, "g.x", 1, 1, 0, 0, 0);
  REMOVE(&x, 'a', "v", "v", "g.*", "g.*");
  expect_calls(&x, "v", 0, 1, 1, 0, 0);
  expect_calls(&x, "g.x", 0, 1, 0, 0, 0);
  REMOVE(&x, 'b', "v", "g.*");
  expect_calls(&x, "v", 0, 0, 1, 0, 0);
  expect_calls(&x, "g.x", 0, 0, 0, 0, 0);
  cr_assert_eq(x.n_lens, 0, "the prefix length of g.* is still tried");
  cr_assert_eq(x.prefix.count, 0);
  REMOVE(&x, 'c', "v");
  cr_assert_eq(x.exact.count, 0, "an empty bucket was left behind");
  /* a prefix length given up and taken again */
  ADD(&x, 'd', "h.*");
  expect_calls(&x, "h.y", 0, 0, 0, 1, 0);
  rstate__subindex_free(&x);
}

static bool note_order(void *item, void *ud) {
  char *seq = ud;
  seq[strlen(seq)] = (char)('a' + ((char *)item - items));
  return true;
}

static bool stop_at_c(void *item, void *ud) {
  note_order(item, ud);
  return (char *)item - items != 2;
}

/* Exact names first, then prefixes from the shortest; within each, the
 * order items were added, also after one in the middle or the newest went
 * (removal takes the newest at once, and looks for any other). A callback
 * returning false ends the lookup. */
Test(subindex, items_come_in_the_order_added_and_a_lookup_can_stop) {
  rstate__subindex x;
  rstate__subindex_init(&x);
  ADD(&x, 'e', "m.*");
  ADD(&x, 'd', "*");
  ADD(&x, 'a', "m.x");
  ADD(&x, 'b', "m.x");
  ADD(&x, 'c', "m.x");
  REMOVE(&x, 'a', "m.x");
  ADD(&x, 'a', "m.x");
  char seq[8] = "";
  cr_assert(rstate__subindex_each(&x, "m.x", 3, rstate__hash("m.x", 3), note_order, seq));
  cr_assert_str_eq(seq, "bcade");
  memset(seq, 0, sizeof seq);
  cr_assert_not(rstate__subindex_each(&x, "m.x", 3, rstate__hash("m.x", 3), stop_at_c, seq));
  cr_assert_str_eq(seq, "bc");
  /* the newest of a name goes, then one that is not there: the rest stay */
  REMOVE(&x, 'a', "m.x");
  REMOVE(&x, 'e', "m.x");
  memset(seq, 0, sizeof seq);
  cr_assert(rstate__subindex_each(&x, "m.x", 3, rstate__hash("m.x", 3), note_order, seq));
  cr_assert_str_eq(seq, "bcde");
  rstate__subindex_free(&x);
}

/* The prefix lengths stay sorted and counted when prefixes of several
 * lengths come and go in any order. */
Test(subindex, prefix_lengths_come_and_go) {
  rstate__subindex x;
  rstate__subindex_init(&x);
  ADD(&x, 'a', "abc.*");
  ADD(&x, 'b', "a*");
  ADD(&x, 'c', "ab*");
  ADD(&x, 'd', "xyz.*"); /* same length as abc.* */
  expect_calls(&x, "abc.d", 1, 1, 1, 0, 0);
  cr_assert_eq(x.n_lens, 3);
  REMOVE(&x, 'a', "abc.*");
  cr_assert_eq(x.n_lens, 3, "xyz.* still has length 4");
  REMOVE(&x, 'b', "a*");
  expect_calls(&x, "abc.d", 0, 0, 1, 0, 0);
  expect_calls(&x, "xyz.w", 0, 0, 0, 1, 0);
  cr_assert_eq(x.n_lens, 2);
  for (size_t i = 1; i < x.n_lens; i++) cr_assert_lt(x.lens[i - 1].len, x.lens[i].len);
  rstate__subindex_free(&x);
}

/* Adds a under five patterns, failing its k-th allocation for k = 0, 1, ...
 * until it succeeds, into an index that is empty or holds b; returns how
 * many allocations failed. */
static int fail_each_allocation(bool with_b) {
  const char *p[] = {"n1", "n2", "p1.*", "pre*", "*"};
  int failures = 0;
  for (long k = 0;; k++) {
    long before = live;
    rstate__subindex x;
    rstate__subindex_init(&x);
    if (with_b) ADD(&x, 'b', "n1", "pre*");
    size_t lens = x.n_lens;
    fail_in = k;
    bool ok = rstate__subindex_add(&x, &items[0], p, 5);
    fail_in = -1;
    if (ok) {
      expect_calls(&x, "n1", 2, with_b, 0, 0, 0); /* a by "n1" and by "*" */
      expect_calls(&x, "prefix", 2, with_b, 0, 0, 0);
      rstate__subindex_free(&x);
      return failures;
    }
    expect_calls(&x, "n1", 0, with_b, 0, 0, 0);
    expect_calls(&x, "prefix", 0, with_b, 0, 0, 0);
    expect_calls(&x, "p1.x", 0, 0, 0, 0, 0);
    cr_assert_eq(x.n_lens, lens, "failing allocation %ld left a prefix length behind", k);
    rstate__subindex_free(&x);
    cr_assert_eq(live, before, "failing allocation %ld leaks %ld blocks", k, live - before);
    failures++;
  }
}

/* An add that runs out of memory at any of its allocations adds nothing
 * (the tables may keep the room they grew), leaks nothing, and what was
 * there stays. */
Test(subindex, an_add_that_runs_out_of_memory_adds_nothing) {
  if (!injection_works()) { /* not cr_skip_test: under valgrind it leaks Criterion's own state */
    cr_log_info("allocation failure injection is not available in this build");
    return;
  }
  /* each new bucket, its item array, each table's slots, the prefix lengths */
  int n = fail_each_allocation(false);
  cr_assert_geq(n, 10, "only %d allocations were tried", n);
  n = fail_each_allocation(true);
  cr_assert_geq(n, 5, "only %d allocations were tried", n);
}
