/*
 * util.h — what every part of the library may use: the last-error sentence,
 * the clocks, growing arrays, looking before sleeping. Names are rstate__name (double
 * underscore); none of them is exported. It includes the hash map (map.h).
 */
#ifndef RSTATE_UTIL_H
#define RSTATE_UTIL_H

#include <stdarg.h>

#include "reactivestate.h"
#include "reactivestate/backend.h"
#include "map.h"

/* Data written by one thread and read by another on every change sits on
 * cache lines of its own (_Alignas(RSTATE__CACHE_LINE) on a struct's first
 * member: the struct then fills whole lines): otherwise whatever the linker
 * or the allocator puts beside it misses the cache each time it is written
 * (bench/notes.md, dispatch.stream). */
#define RSTATE__CACHE_LINE 64

/* ---- error.c: the thread-local last-error sentence ---------------------- */

/* Sets the sentence and returns code (printf format). */
int rstate__err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rstate__verr(int code, const char *fmt, va_list ap);

/* ---- clock.c ------------------------------------------------------------ */

/* CLOCK_REALTIME in ns, from the time-stamp counter where it can be (clock.c). */
int64_t rstate__realtime_ns(void);
/* Whether rstate__realtime_ns reads the counter rather than the clock (tests). */
bool rstate__realtime_fast(void);
/* Tests: how often the wall clock was found moved apart from the counter
 * (each time the clock is read for RSTATE__STAMP_HOLD_NS). */
uint64_t rstate__realtime_steps(void);
/* Tests: the CLOCK_MONOTONIC window [*from, *to] in which stamps may have
 * been wrong by the i-th move seen (counting from 0; the last 16 are kept);
 * false when it is not known. */
bool rstate__realtime_move(uint64_t i, int64_t *from, int64_t *to);
/* Tests: an offset added to every CLOCK_REALTIME read of clock.c, to move
 * the wall clock under it. */
extern _Atomic int64_t rstate__realtime_shift_ns;
/* How long a conversion pair lasts, in ns of counter. */
#define RSTATE__STAMP_SPAN_NS 200000
#define RSTATE__STAMP_HOLD_NS 1000000000
int64_t rstate__monotonic_ns(void);
/* The debounce clock: monotonic ns, or what rstate__clock_hook returns when
 * set (tests only; set it before opening stores). */
int64_t rstate__now_ns(void);
extern int64_t (*rstate__clock_hook)(void);

/* ---- grow.c: arrays that grow ----------------------------------------- */

/* Makes room for need elements in the array *arrayp (a T **, elements of
 * size bytes) of capacity *cap, reallocating it to double its capacity (or
 * first, when it has none) as many times as needed. false on ENOMEM, with
 * the array and *cap unchanged. Use RSTATE__GROW, which answers true without
 * a call when there is room already (hot paths append through it); it
 * evaluates need and cap twice, so they must have no side effects. */
bool rstate__grow_to(void *arrayp, size_t *cap, size_t need, size_t size, size_t first);
#define RSTATE__GROW(array, cap, need, first) \
  ((need) <= (cap) || rstate__grow_to(&(array), &(cap), (need), sizeof *(array), (first)))

/* ---- spin.c: looking before sleeping ------------------------------------ */

/* The CPUs the calling thread may run on (threads it starts inherit them),
 * at most the whole CPUs of the quota in /sys/fs/cgroup/cpu.max. */
int rstate__spin_cpus(void);
/* cpus, capped by the quota a cpu.max file gives ("QUOTA PERIOD": QUOTA /
 * PERIOD whole CPUs, at least 1); cpus when it is missing, "max" or not
 * understood. */
int rstate__spin_cpus_capped(int cpus, const char *cpu_max);
/* Whether the caller may look now: true, and counted until rstate__spin_end,
 * while fewer than cpus - 1 threads of the process look. */
bool rstate__spin_begin(int cpus);
void rstate__spin_end(void);
/* Between two looks: the CPU to any thread waiting for it (the ones that
 * make the awaited thing happen may be), else straight back (sched_yield). */
void rstate__spin_yield(void);
/* Between two looks for what a thread already running will make: a pause
 * instruction, the CPU kept (the dispatch thread's linger). */
void rstate__spin_pause(void);

#endif /* RSTATE_UTIL_H */
