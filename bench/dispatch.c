/*
 * dispatch.c — queued delivery through the store's dispatch thread
 * (rstate_options.dispatch_thread, a watch with .queued), beside a
 * cross-thread eventfd wakeup and a minimal cross-thread queue built from a
 * mutex and an eventfd.
 *
 *   dispatch.stream   the main thread sets a variable N times as fast as it
 *                     can; the dispatch thread delivers: events per second
 *                     from the first set to the last callback (both threads
 *                     busy, one core each)
 *   dispatch.stream.cpu  the setting thread's CPU time per set meanwhile
 *   dispatch.drain    the dispatch thread is held inside a callback while N
 *                     events queue up, then let go: events per second it
 *                     drains on its own (consumer-side capacity)
 *   dispatch.latency  one set, then wait for its callback on the dispatch
 *                     thread (asleep in poll before each set): one sample
 *                     per event, no batching (microseconds: the clock's
 *                     20 ns do not matter)
 *
 * Floors: floor.eventfd — write an eventfd, a thread blocked in read()
 * wakes and acknowledges; floor.handoff — events through a mutex-protected
 * list, the consumer woken by an eventfd only when the list was empty (the
 * same coalesced wakeups the library uses), taking the whole list at once.
 */
#include "bench.h"

#include <limits.h>

/* ---- the floor: a minimal cross-thread queue ------------------------------ */

typedef struct item {
  struct item *next;
  uint64_t x;
} item;

typedef struct handoff {
  pthread_mutex_t lock;
  item *head, **tail;
  bool sleeping;
  int fd;
  atomic_ulong done;
  uint64_t sum;
} handoff;

static void *handoff_consumer(void *arg) {
  handoff *h = arg;
  int (*volatile fn)(const void *, void *) = bench_nop_cb;
  for (;;) {
    pthread_mutex_lock(&h->lock);
    item *list = h->head;
    h->head = NULL;
    h->tail = &h->head;
    if (!list) h->sleeping = true;
    pthread_mutex_unlock(&h->lock);
    if (!list) {
      uint64_t x;
      if (read(h->fd, &x, sizeof x) < 0) bench_die("eventfd read");
      continue;
    }
    unsigned long n = 0;
    for (item *it = list; it; it = it->next) {
      if (it->x == UINT64_MAX) return NULL;
      fn(it, &h->sum);
      n++;
    }
    atomic_fetch_add_explicit(&h->done, n, memory_order_release);
  }
}

static double floor_handoff(size_t n, int rounds) {
  handoff h = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = eventfd(0, EFD_CLOEXEC)};
  h.tail = &h.head;
  item *items = calloc(n + 1, sizeof *items);
  pthread_t t;
  if (pthread_create(&t, NULL, handoff_consumer, &h)) bench_die("pthread_create");
  double best = 0, sum = 0;
  uint64_t one = 1;
  for (int r = 0; r < rounds; r++) {
    unsigned long start = atomic_load(&h.done);
    int64_t t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
      item *it = &items[i];
      it->next = NULL;
      it->x = i;
      pthread_mutex_lock(&h.lock);
      *h.tail = it;
      h.tail = &it->next;
      bool wake = h.sleeping;
      h.sleeping = false;
      pthread_mutex_unlock(&h.lock);
      if (wake && write(h.fd, &one, sizeof one) != sizeof one) bench_die("eventfd write");
    }
    while (atomic_load_explicit(&h.done, memory_order_acquire) - start < n) {
    }
    double ns = (double)(bench_now() - t0) / (double)n;
    sum += ns;
    (void)best;
  }
  items[n].x = UINT64_MAX; /* stop */
  pthread_mutex_lock(&h.lock);
  *h.tail = &items[n];
  bool wake = h.sleeping;
  pthread_mutex_unlock(&h.lock);
  if (wake && write(h.fd, &one, sizeof one) != sizeof one) bench_die("eventfd write");
  pthread_join(t, NULL);
  close(h.fd);
  free(items);
  return sum / rounds;
}

/* ---- the library ------------------------------------------------------------ */

typedef struct sink {
  atomic_ulong delivered;
  /* drain: the callback of the first event waits at the gate */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  atomic_bool gate_closed;
  bool held;
  atomic_ulong target; /* signal when delivered reaches it */
  int64_t cpu_first, cpu_last; /* the dispatch thread's CPU clock */
} sink;

static int sink_cb(const rstate_event *ev, void *ud) {
  (void)ev;
  sink *k = ud;
  unsigned long n = atomic_fetch_add_explicit(&k->delivered, 1, memory_order_release) + 1;
  if (atomic_load(&k->gate_closed) || n == atomic_load(&k->target)) {
    pthread_mutex_lock(&k->lock);
    if (atomic_load(&k->gate_closed)) {
      k->held = true;
      pthread_cond_broadcast(&k->cond);
      while (atomic_load(&k->gate_closed)) pthread_cond_wait(&k->cond, &k->lock);
      k->cpu_first = bench_cpu_now();
    }
    if (n == atomic_load(&k->target)) {
      k->cpu_last = bench_cpu_now();
      pthread_cond_broadcast(&k->cond);
    }
    pthread_mutex_unlock(&k->lock);
  }
  return RSTATE_CONTINUE;
}

static void wait_for(sink *k, unsigned long target) {
  pthread_mutex_lock(&k->lock);
  while (atomic_load(&k->delivered) < target) pthread_cond_wait(&k->cond, &k->lock);
  pthread_mutex_unlock(&k->lock);
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "dispatch");
  size_t n = bench_n(200000, 10000);
  int rounds = 5;

  bsum fe = floor_eventfd(bench_n(5000, 500));
  bench_floor_row("floor.eventfd", "floor: cross-thread eventfd wakeup", fe);
  double fh = floor_handoff(n, rounds);
  bench_floor_row("floor.handoff", "floor: mutex+eventfd queue between two threads (per event)",
                  (bsum){fh, fh, NAN, NAN, NAN});

  rstate_store *s = bench_open(true);
  bench_define_float(s, BENCH_VAR);
  sink k = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  atomic_init(&k.target, ULONG_MAX);
  bench_watch(s, BENCH_VAR, sink_cb, &k, true);
  rstate_value v = rstate_float(0);

  /* stream */
  double stream_ns = 0, stream_cpu = 0;
  for (int r = 0; r < rounds; r++) {
    unsigned long start = atomic_load(&k.delivered);
    pthread_mutex_lock(&k.lock);
    atomic_store(&k.target, start + n);
    pthread_mutex_unlock(&k.lock);
    int64_t t0 = bench_now(), c0 = bench_cpu_now();
    for (size_t i = 0; i < n; i++) {
      v.u.f += 1;
      BENCH_OK(rstate_set(s, BENCH_VAR, &v, NULL));
    }
    stream_cpu += (double)(bench_cpu_now() - c0) / (double)n;
    wait_for(&k, start + n);
    stream_ns += (double)(bench_now() - t0) / (double)n;
  }
  stream_ns /= rounds;
  stream_cpu /= rounds;
  bench_rate("dispatch.stream", "queued delivery, set -> dispatch thread, streaming", "events/s", 1e9 / stream_ns,
             bench_nopct, "floor.handoff", fh, '>', 5e6);
  /* the setter's own share: CPU time, so it holds on a loaded machine where
   * the wall-clock rate above mostly measures the scheduler */
  bench_latency("dispatch.stream.cpu", "setting thread CPU time per queued set while streaming", "ns/set",
                (bsum){stream_cpu, stream_ns, NAN, NAN, NAN}, "floor.handoff", fh, 0, 0);

  /* drain */
  double drain_ns = 0, drain_cpu = 0;
  for (int r = 0; r < rounds; r++) {
    unsigned long start = atomic_load(&k.delivered);
    pthread_mutex_lock(&k.lock);
    atomic_store(&k.gate_closed, true);
    k.held = false;
    atomic_store(&k.target, start + 1 + n);
    pthread_mutex_unlock(&k.lock);
    v.u.f += 1;
    BENCH_OK(rstate_set(s, BENCH_VAR, &v, NULL)); /* its callback holds the thread */
    pthread_mutex_lock(&k.lock);
    while (!k.held) pthread_cond_wait(&k.cond, &k.lock);
    pthread_mutex_unlock(&k.lock);
    for (size_t i = 0; i < n; i++) {
      v.u.f += 1;
      BENCH_OK(rstate_set(s, BENCH_VAR, &v, NULL));
    }
    pthread_mutex_lock(&k.lock);
    int64_t t0 = bench_now();
    atomic_store(&k.gate_closed, false);
    pthread_cond_broadcast(&k.cond);
    pthread_mutex_unlock(&k.lock);
    wait_for(&k, start + 1 + n);
    drain_ns += (double)(bench_now() - t0) / (double)n;
    pthread_mutex_lock(&k.lock); /* cpu_last is written under the lock */
    drain_cpu += (double)(k.cpu_last - k.cpu_first) / (double)n;
    pthread_mutex_unlock(&k.lock);
  }
  drain_ns /= rounds;
  drain_cpu /= rounds;
  bench_rate("dispatch.drain", "queued delivery, dispatch thread draining a full queue", "events/s", 1e9 / drain_ns,
             bench_nopct, "floor.handoff", fh, '>', 5e6);
  bench_latency("dispatch.drain.cpu", "dispatch thread CPU time per queued event drained", "ns/event",
                (bsum){drain_cpu, drain_ns, NAN, NAN, NAN}, "floor.handoff", fh, 0, 0);

  /* latency */
  size_t lat = bench_n(5000, 500);
  bstats st = {0};
  for (size_t i = 0; i < lat + 100; i++) {
    usleep(20); /* the dispatch thread goes back to sleep in poll */
    unsigned long before = atomic_load(&k.delivered);
    v.u.f += 1;
    int64_t t0 = bench_now();
    rstate_set(s, BENCH_VAR, &v, NULL);
    while (atomic_load_explicit(&k.delivered, memory_order_acquire) == before) {
    }
    int64_t t1 = bench_now();
    if (i >= 100) bs_add(&st, (double)(t1 - t0), 1);
  }
  bench_latency("dispatch.latency", "queued delivery latency: set -> callback on dispatch thread", "ns/event",
                bs_sum(&st), "floor.eventfd", fe.mean, 0, 0);
  bs_free(&st);
  rstate_close(s);
  return 0;
}
