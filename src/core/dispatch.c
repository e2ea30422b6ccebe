/*
 * dispatch.c — queued delivery: the ready list, the pollable fd, debounce
 * deadlines, rstate_dispatch and the optional dispatch thread.
 *
 * A queued (or debounced) watch with work is put on the store's ready list
 * by whichever thread claimed it: a lock-free stack, one compare-and-swap.
 * The consumer (the dispatch thread, or rstate_dispatch) takes the whole
 * list at once and drains it oldest first; only when it finds the list
 * empty does it say it is idle, and only then does a push write the eventfd,
 * so a consumer that keeps up is never woken per event (and wakeups
 * coalesce, like uv_async_send). The dispatch thread, having delivered
 * something, lingers LINGER_NS on its CPU before it looks again, when
 * another CPU is free (util/spin.c): a setter streaming changes meanwhile
 * pushes them without any wakeup, and the thread takes them as one list
 * instead of being woken for each.
 * A watch's drain is a turn of at most 256 changes (watch.c, DRAIN_RUN),
 * and due debounce deadlines are looked at between turns, so a watch with
 * a long backlog holds up no other.
 * Debounce deadlines arm a timerfd. Both sit in an epoll set whose fd is
 * rstate_fd(), so a host's poll loop wakes exactly when rstate_dispatch has
 * work. With dispatch_thread, a library thread waits on the same fd.
 * Setters only queue and signal: a slow callback never blocks them.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "store.h"

struct rstate__dispatch {
  rstate_store *store;
  _Atomic(rstate__watch *) ready; /* claimed watches with work, newest first (through drain_next) */
  /* a consumer found the ready list empty and may sleep: the next push
   * writes evfd (sequentially consistent with the push and the look) */
  atomic_bool idle;
  pthread_mutex_t lock;       /* the timers and the timerfd */
  rstate__watch **timers;     /* debounced watches */
  size_t n_timers, cap_timers;
  int epfd, evfd, tfd;
  int64_t armed;               /* deadline the timerfd is set to, INT64_MAX: none (written under lock) */
  pthread_mutex_t timers_lock; /* one run_timers at a time (it links due watches) */
  bool has_thread;
  int cpus; /* the dispatch thread's, for util/spin.c */
  atomic_bool stop;
  pthread_t thread;
};

static void *thread_main(void *arg);

/* How long the dispatch thread waits, after a round that delivered, for
 * more to accumulate before it looks again and, finding nothing, sleeps:
 * the most a change arriving then waits for it, and the CPU a stream's
 * end costs. 20-40 sets of the setting thread in that time. */
#define LINGER_NS 5000

int rstate__dispatch_new(rstate__dispatch **out, rstate_store *s, bool thread) {
  rstate__dispatch *d = calloc(1, sizeof *d);
  if (!d) return rstate__err(RSTATE_ENOMEM, "rstate_open: out of memory");
  d->store = s;
  d->armed = INT64_MAX;
  atomic_init(&d->ready, NULL);
  atomic_init(&d->idle, true); /* nobody has looked yet: the first push signals */
  d->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  d->epfd = epoll_create1(EPOLL_CLOEXEC);
  int rc = RSTATE_OK;
  if (d->evfd < 0 || d->tfd < 0 || d->epfd < 0) {
    rc = rstate__err(errno == ENOMEM ? RSTATE_ENOMEM : RSTATE_EIO, "rstate_open: cannot create the dispatch fds: %s",
                     strerror(errno));
  } else {
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = d->evfd;
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->evfd, &ev);
    ev.data.fd = d->tfd;
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->tfd, &ev);
  }
  pthread_mutex_init(&d->lock, NULL);
  pthread_mutex_init(&d->timers_lock, NULL);
  if (!rc && thread) {
    d->cpus = rstate__spin_cpus();
    if (pthread_create(&d->thread, NULL, thread_main, d))
      rc = rstate__err(RSTATE_ENOMEM, "rstate_open: cannot start the dispatch thread");
    else
      d->has_thread = true;
  }
  if (rc) {
    rstate__dispatch_free(d);
    return rc;
  }
  *out = d;
  return RSTATE_OK;
}

static void wake(rstate__dispatch *d) {
  uint64_t one = 1;
  ssize_t n = write(d->evfd, &one, sizeof one);
  (void)n; /* a full counter is still readable: nothing is lost */
}

void rstate__dispatch_stop(rstate__dispatch *d) {
  if (!d) return;
  if (d->has_thread) {
    atomic_store(&d->stop, true);
    wake(d);
    pthread_join(d->thread, NULL);
    d->has_thread = false;
  }
  /* what is still queued will not be delivered: release the claims */
  rstate__watch *w = atomic_exchange(&d->ready, NULL);
  while (w) {
    rstate__watch *next = w->drain_next;
    rstate__watch_unclaim(w);
    w = next;
  }
}

void rstate__dispatch_free(rstate__dispatch *d) {
  if (!d) return;
  rstate__dispatch_stop(d);
  if (d->evfd >= 0) close(d->evfd);
  if (d->tfd >= 0) close(d->tfd);
  if (d->epfd >= 0) close(d->epfd);
  free(d->timers);
  pthread_mutex_destroy(&d->lock);
  pthread_mutex_destroy(&d->timers_lock);
  free(d);
}

void rstate__dispatch_ready(rstate__dispatch *d, rstate__watch *w) {
  rstate__watch *old = atomic_load_explicit(&d->ready, memory_order_relaxed);
  do {
    w->drain_next = old;
  } while (!atomic_compare_exchange_weak(&d->ready, &old, w));
  if (atomic_load(&d->idle) && atomic_exchange(&d->idle, false)) wake(d);
}

/* Takes the whole ready list, oldest first. */
static rstate__watch *take_ready(rstate__dispatch *d) {
  if (!atomic_load_explicit(&d->ready, memory_order_relaxed)) return NULL;
  rstate__watch *w = atomic_exchange(&d->ready, NULL), *oldest = NULL;
  while (w) {
    rstate__watch *next = w->drain_next;
    w->drain_next = oldest;
    oldest = w;
    w = next;
  }
  return oldest;
}

static void arm(rstate__dispatch *d, int64_t deadline) {
  __atomic_store_n(&d->armed, deadline, __ATOMIC_RELAXED); /* run_once peeks at it unlocked */
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (deadline != INT64_MAX) {
    if (deadline <= 0) deadline = 1; /* zero would disarm */
    its.it_value.tv_sec = deadline / 1000000000;
    its.it_value.tv_nsec = deadline % 1000000000;
  }
  timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

void rstate__dispatch_deadline(rstate__dispatch *d, int64_t deadline) {
  pthread_mutex_lock(&d->lock);
  if (deadline < d->armed) arm(d, deadline);
  pthread_mutex_unlock(&d->lock);
}

int rstate__dispatch_add_timer(rstate__dispatch *d, rstate__watch *w) {
  pthread_mutex_lock(&d->lock);
  if (!RSTATE__GROW(d->timers, d->cap_timers, d->n_timers + 1, 8)) {
    pthread_mutex_unlock(&d->lock);
    return rstate__err(RSTATE_ENOMEM, "rstate_watch: out of memory");
  }
  d->timers[d->n_timers] = w;
  __atomic_store_n(&d->n_timers, d->n_timers + 1, __ATOMIC_RELAXED); /* run_once peeks at it unlocked */
  pthread_mutex_unlock(&d->lock);
  return RSTATE_OK;
}

void rstate__dispatch_remove_timer(rstate__dispatch *d, rstate__watch *w) {
  pthread_mutex_lock(&d->lock);
  for (size_t i = 0; i < d->n_timers; i++) {
    if (d->timers[i] == w) {
      d->timers[i] = d->timers[d->n_timers - 1];
      __atomic_store_n(&d->n_timers, d->n_timers - 1, __ATOMIC_RELAXED);
      break;
    }
  }
  if (!d->n_timers) {
    arm(d, INT64_MAX); /* disarmed, and any expiration already counted is cleared */
    uint64_t expirations;
    if (read(d->tfd, &expirations, sizeof expirations) < 0) { /* was not readable */
    }
  }
  pthread_mutex_unlock(&d->lock);
}

/* Earliest debounce deadline, INT64_MAX: none (under d->lock). */
static int64_t next_deadline(rstate__dispatch *d) {
  int64_t next = INT64_MAX;
  for (size_t i = 0; i < d->n_timers; i++) {
    int64_t x = atomic_load(&d->timers[i]->deadline);
    if (x < next) next = x;
  }
  return next;
}

/* Moves due debounce bursts to their ready queues, and sets the timerfd to
 * the next deadline. Serialized by timers_lock: the due list is linked
 * through the watches themselves. */
static void run_timers(rstate__dispatch *d) {
  pthread_mutex_lock(&d->timers_lock);
  int64_t now = rstate__now_ns();
  rstate__watch *due = NULL;
  pthread_mutex_lock(&d->lock);
  uint64_t expirations;
  if (read(d->tfd, &expirations, sizeof expirations) < 0) { /* not fired: nothing to clear */
  }
  for (size_t i = 0; i < d->n_timers; i++) {
    rstate__watch *w = d->timers[i];
    if (atomic_load(&w->deadline) <= now) {
      rstate__watch_ref(w);
      w->pass_next = due;
      due = w;
    }
  }
  pthread_mutex_unlock(&d->lock);
  while (due) {
    rstate__watch *w = due;
    due = w->pass_next;
    rstate__watch_flush_due(w, now, false);
    rstate__watch_unref(w);
  }
  pthread_mutex_lock(&d->lock);
  int64_t next = next_deadline(d);
  if (next != d->armed) arm(d, next);
  pthread_mutex_unlock(&d->lock);
  pthread_mutex_unlock(&d->timers_lock);
}

/* Waits LINGER_NS on this CPU if another one is free; false if not. */
static bool linger(rstate__dispatch *d) {
  if (!rstate__spin_begin(d->cpus)) return false;
  int64_t end = rstate__monotonic_ns() + LINGER_NS;
  do {
    /* pauses, not yields: on a busy machine a yield can hand the CPU away
     * for a whole time slice, and a change arriving meanwhile would wait
     * for it (dispatch.latency 44 -> 341 us in an A/B) */
    for (int i = 0; i < 64; i++) rstate__spin_pause();
  } while (rstate__monotonic_ns() < end && !atomic_load_explicit(&d->stop, memory_order_relaxed));
  rstate__spin_end();
  return true;
}

/* Runs every due and queued delivery; *did: whether any event was handled.
 * With may_linger (the dispatch thread), having delivered, it waits once for
 * more before it calls the list empty. */
static int run_once(rstate__dispatch *d, bool *did, bool may_linger) {
  int ran = 0;
  bool lingered = false;
  *did = false;
  if (__atomic_load_n(&d->n_timers, __ATOMIC_RELAXED)) run_timers(d);
  for (;;) {
    /* a watch with a long backlog (or a setter that never pauses) comes
     * back to the ready list after each run of its changes and keeps this
     * loop going: a debounce deadline that passes meanwhile is looked at
     * between the runs */
    if (*did && __atomic_load_n(&d->n_timers, __ATOMIC_RELAXED) &&
        __atomic_load_n(&d->armed, __ATOMIC_RELAXED) <= rstate__now_ns())
      run_timers(d);
    rstate__watch *w = take_ready(d);
    if (!w && may_linger && *did && !lingered) {
      lingered = true;
      if (linger(d)) continue;
    }
    if (!w) {
      /* nothing: clear the fd, say so, and look once more (a push between
       * the two looks either is seen here or sees idle and writes the fd) */
      uint64_t count;
      if (read(d->evfd, &count, sizeof count) < 0) { /* already clear */
      }
      atomic_store(&d->idle, true);
      if (!atomic_load(&d->ready)) break;
      atomic_store(&d->idle, false);
      continue;
    }
    *did = true;
    lingered = false;
    while (w) {
      rstate__watch *next = w->drain_next; /* a drain may put w on the ready list again */
      ran += rstate__watch_drain(w);
      rstate__deliver_claimed(); /* inline watches the callbacks' changes reached */
      w = next;
    }
  }
  return ran;
}

static int timeout_ms(rstate__dispatch *d) {
  pthread_mutex_lock(&d->lock);
  int64_t next = atomic_load(&d->ready) ? 0 : next_deadline(d);
  pthread_mutex_unlock(&d->lock);
  if (next == INT64_MAX) return -1;
  int64_t left = next - rstate__now_ns();
  if (left <= 0) return 0;
  int64_t ms = (left + 999999) / 1000000;
  return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

void (*rstate__dispatch_round_hook)(int fd);

static void *thread_main(void *arg) {
  rstate__dispatch *d = arg;
  while (!atomic_load(&d->stop)) {
    if (rstate__dispatch_round_hook) rstate__dispatch_round_hook(d->epfd);
    bool did;
    run_once(d, &did, true);
    if (did) continue;
    /* a round that found nothing cleared the fd: a stop asked since the
     * loop's look may have been the wakeup it cleared */
    if (atomic_load(&d->stop)) break;
    rstate__batch_trim(); /* the stream stopped: the batches kept for the setters go */
    struct pollfd p = {.fd = d->epfd, .events = POLLIN};
    poll(&p, 1, timeout_ms(d));
  }
  return NULL;
}

int rstate_fd(rstate_store *s) {
  if (!s) return rstate__err(RSTATE_EINVAL, "rstate_fd: store is NULL");
  return s->dispatch->epfd;
}

int rstate_timeout(rstate_store *s) { return s ? timeout_ms(s->dispatch) : -1; }

int rstate_dispatch(rstate_store *s, int timeout) {
  if (!s) return rstate__err(RSTATE_EINVAL, "rstate_dispatch: store is NULL");
  rstate__dispatch *d = s->dispatch;
  if (d->has_thread)
    return rstate__err(RSTATE_EINVAL, "rstate_dispatch: this store has a dispatch thread, which runs its callbacks");
  if (rstate__in_callback()) return rstate__err(RSTATE_EINVAL, "rstate_dispatch: called from a callback");
  if (timeout < -1)
    return rstate__err(RSTATE_EINVAL, "rstate_dispatch: timeout_ms %d is neither -1 (no limit) nor 0 or more", timeout);
  int64_t end = timeout < 0 ? INT64_MAX : rstate__monotonic_ns() + (int64_t)timeout * 1000000;
  for (;;) {
    bool did;
    int ran = run_once(d, &did, false);
    if (did || timeout == 0) return ran;
    int wait = timeout_ms(d);
    if (timeout > 0) {
      int64_t left = end - rstate__monotonic_ns();
      if (left <= 0) return ran;
      int left_ms = (int)((left + 999999) / 1000000);
      if (wait < 0 || left_ms < wait) wait = left_ms;
    }
    struct pollfd p = {.fd = d->epfd, .events = POLLIN};
    poll(&p, 1, wait);
  }
}
