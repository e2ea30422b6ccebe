/*
 * spin.c — looking before sleeping. A thread that expects what it waits for
 * within microseconds can look for it for a bounded time before it sleeps:
 * what then arrives costs it no wakeup, which on an idle virtual CPU costs
 * tens of microseconds. That pays only while another CPU is free to make it
 * arrive, so at most one thread fewer than the CPUs looks at a time.
 */
#include <sched.h>
#include <stdatomic.h>

#include "internal.h"

static atomic_int spinners; /* threads of the process looking now */

int rstate__spin_cpus(void) {
  cpu_set_t set;
  return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

bool rstate__spin_begin(int cpus) {
  int n = atomic_load_explicit(&spinners, memory_order_relaxed);
  while (n < cpus - 1)
    if (atomic_compare_exchange_weak_explicit(&spinners, &n, n + 1, memory_order_relaxed, memory_order_relaxed))
      return true;
  return false;
}

void rstate__spin_end(void) { atomic_fetch_sub_explicit(&spinners, 1, memory_order_relaxed); }

void rstate__spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
