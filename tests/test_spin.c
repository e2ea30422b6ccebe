/*
 * test_spin.c — how many threads may look before they sleep (src/util/spin.c):
 * the CPUs, capped by a cgroup CPU quota, and one looker fewer than them;
 * and a looker giving its CPU to a thread waiting for it.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"
#include "util/util.h"

TestSuite(spin);

/* cpus capped by a cpu.max file holding text */
static int capped(int cpus, const char *text) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/rstate-cpu-max-%d", (int)getpid());
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "cannot write %s", path);
  fputs(text, f);
  fclose(f);
  int n = rstate__spin_cpus_capped(cpus, path);
  unlink(path);
  return n;
}

Test(spin, a_quota_caps_the_cpus_at_its_whole_cpus) {
  cr_assert_eq(capped(8, "200000 100000\n"), 2);
  cr_assert_eq(capped(8, "150000 100000\n"), 1, "one and a half CPUs leave no room for a looker");
  cr_assert_eq(capped(8, "50000 100000\n"), 1, "a fraction of a CPU still counts as one");
  cr_assert_eq(capped(2, "800000 100000\n"), 2, "a quota above the CPUs changes nothing");
}

Test(spin, no_quota_or_an_unreadable_one_leaves_the_cpus) {
  cr_assert_eq(capped(4, "max 100000\n"), 4);
  cr_assert_eq(capped(4, "garbage\n"), 4);
  cr_assert_eq(capped(4, "12x 100000\n"), 4);
  cr_assert_eq(capped(4, "100000 0\n"), 4);
  cr_assert_eq(rstate__spin_cpus_capped(4, "/nonexistent/cpu.max"), 4);
  cr_assert_geq(rstate__spin_cpus(), 1);
}

Test(spin, one_looker_fewer_than_the_cpus) {
  cr_assert(!rstate__spin_begin(1), "on one CPU nobody looks");
  cr_assert(rstate__spin_begin(3));
  cr_assert(rstate__spin_begin(3));
  cr_assert(!rstate__spin_begin(3), "a third looker on three CPUs");
  rstate__spin_end();
  cr_assert(rstate__spin_begin(3), "a looker that stopped makes room");
  rstate__spin_end();
  rstate__spin_end();
}

/* The thread that makes the awaited thing happen may be queued on the
 * looker's own CPU (the others busy with other work): between two looks the
 * looker gives it the CPU, rather than holding it off for its whole look. */
static atomic_bool arrived;

static void *arrive(void *arg) {
  (void)arg;
  atomic_store(&arrived, true);
  return NULL;
}

Test(spin, a_looker_gives_its_cpu_to_a_thread_waiting_for_it) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
  cr_assert_eq(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0, "cannot pin the looker to one CPU");
  pthread_attr_t at;
  pthread_attr_init(&at);
  cr_assert_eq(pthread_attr_setaffinity_np(&at, sizeof one, &one), 0);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, &at, arrive, NULL), 0);
  pthread_attr_destroy(&at);
  /* a pause between looks took a whole time slice here (milliseconds,
   * tens of thousands of looks) before the other thread ran */
  long looks = 0;
  while (!atomic_load(&arrived) && looks < 1000000) {
    looks++;
    rstate__spin_yield();
  }
  pthread_join(t, NULL);
  cr_assert_leq(looks, 100, "the looker looked %ld times before the thread on its CPU ran: it does not give way",
                looks);
}
