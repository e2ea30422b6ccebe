/*
 * spin.c — looking before sleeping. A thread that expects what it waits for
 * within microseconds can look for it for a bounded time before it sleeps:
 * what then arrives costs it no wakeup, which on an idle virtual CPU costs
 * tens of microseconds. That pays only when another CPU can make it arrive
 * meanwhile.
 */
#include <sched.h>

#include "internal.h"

bool rstate__spin_pays(void) {
  cpu_set_t set;
  return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1;
}

void rstate__spin_pause(void) {
  for (int i = 0; i < 16; i++) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
  }
}
