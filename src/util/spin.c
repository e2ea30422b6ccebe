/*
 * spin.c — looking before sleeping. A thread that expects what it waits for
 * within microseconds can look for it for a bounded time before it sleeps:
 * what then arrives costs it no wakeup, which on an idle virtual CPU costs
 * tens of microseconds. That pays only while another CPU is free to make it
 * arrive, so at most one thread fewer than the CPUs looks at a time. The
 * CPUs are those the thread may run on, capped by a CPU quota of the
 * process's cgroup (cgroup v2's cpu.max, as a container sees its own).
 *
 * Those CPUs may still be busy with other processes' work, and then the
 * threads that make the awaited thing happen wait in the looker's own run
 * queue: between two looks it yields (rstate__spin_yield), so they run at
 * once, and its CPU still never goes idle (a halted virtual CPU is what
 * costs the wakeup). A pause instruction between looks held them off until
 * the look ran out (bench/notes.md, remote.unix.p50). The dispatch thread
 * lingering for the next change pauses instead (rstate__spin_pause): what
 * it waits for comes from a setter already running, and a yield could give
 * its CPU away for a time slice (bench/notes.md, dispatch.latency).
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

/* threads of the process looking now (on a line of its own: a dispatch
 * thread changes it at each linger) */
static struct {
  _Alignas(RSTATE__CACHE_LINE) atomic_int n;
} spinners;

int rstate__spin_cpus_capped(int cpus, const char *cpu_max) {
  FILE *f = fopen(cpu_max, "re");
  if (!f) return cpus;
  char quota[32];
  long long period = 0;
  int n = fscanf(f, "%31s %lld", quota, &period);
  fclose(f);
  char *end;
  long long q = n == 2 ? strtoll(quota, &end, 10) : 0;
  if (n != 2 || *end || q <= 0 || period <= 0) return cpus; /* "max": no quota */
  long long whole = q / period;
  if (whole < 1) whole = 1;
  return whole < cpus ? (int)whole : cpus;
}

int rstate__spin_cpus(void) {
  cpu_set_t set;
  int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  return rstate__spin_cpus_capped(cpus, "/sys/fs/cgroup/cpu.max");
}

bool rstate__spin_begin(int cpus) {
  int n = atomic_load_explicit(&spinners.n, memory_order_relaxed);
  while (n < cpus - 1)
    if (atomic_compare_exchange_weak_explicit(&spinners.n, &n, n + 1, memory_order_relaxed, memory_order_relaxed))
      return true;
  return false;
}

void rstate__spin_end(void) { atomic_fetch_sub_explicit(&spinners.n, 1, memory_order_relaxed); }

void rstate__spin_yield(void) { sched_yield(); }

void rstate__spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
