/*
 * test_threads.c — one "mem:" store used from several threads at once:
 * counts of versions and revisions after concurrent sets, atomic batches seen
 * by a concurrent reader, compare-and-set with rstate_set_if, thread-local
 * errors, and define/undefine/get racing on distinct names.
 *
 * Worker threads never call cr_assert (Criterion's assertions belong to the
 * test's own thread): they count what went wrong, and the test asserts on
 * the counts after joining them. Also run under ThreadSanitizer (make tsan).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

static rstate_store *s;

static void open_store(void) { s = h_open(); }
static void close_store(void) {
  rstate_close(s);
  s = NULL;
}

TestSuite(threads, .init = open_store, .fini = close_store);

#define N_THREADS 4

static pthread_barrier_t start_line;

static void start_threads(pthread_t *t, size_t n, void *(*fn)(void *), void *args, size_t arg_size) {
  cr_assert_eq(pthread_barrier_init(&start_line, NULL, (unsigned)n), 0);
  for (size_t k = 0; k < n; k++)
    cr_assert_eq(pthread_create(&t[k], NULL, fn, (char *)args + k * arg_size), 0, "pthread_create #%zu", k);
}

static void join_threads(pthread_t *t, size_t n) {
  for (size_t k = 0; k < n; k++) cr_assert_eq(pthread_join(t[k], NULL), 0);
  pthread_barrier_destroy(&start_line);
}

/* ---- concurrent sets: versions and revisions add up ------------------------- */

#define SETS_PER_THREAD 10000

struct setter {
  int id;
  char own[32];
  int failures;
  int first_rc;
  char first_error[256];
};

static void note_failure(struct setter *w, int rc) {
  if (w->failures++ == 0) {
    w->first_rc = rc;
    snprintf(w->first_error, sizeof w->first_error, "%s", rstate_last_error());
  }
}

static void *setter_main(void *arg) {
  struct setter *w = arg;
  pthread_barrier_wait(&start_line);
  for (int k = 1; k <= SETS_PER_THREAD; k++) {
    int rc = rstate_set_int(s, w->own, k);
    if (rc != RSTATE_OK) note_failure(w, rc);
    /* Values unique across threads: every set of "shared" is a change. */
    rc = rstate_set_int(s, "shared", (int64_t)w->id * 1000000 + k);
    if (rc != RSTATE_OK) note_failure(w, rc);
  }
  return NULL;
}

Test(threads, concurrent_sets_count_exactly) {
  struct setter w[N_THREADS];
  memset(w, 0, sizeof w);
  h_define_ok(s, "shared", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int k = 0; k < N_THREADS; k++) {
    w[k].id = k + 1;
    snprintf(w[k].own, sizeof w[k].own, "own.%d", k + 1);
    h_define_ok(s, w[k].own, RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  }
  uint64_t defines = rstate_revision(s);
  cr_assert_eq(defines, N_THREADS + 1);

  pthread_t t[N_THREADS];
  start_threads(t, N_THREADS, setter_main, w, sizeof w[0]);
  join_threads(t, N_THREADS);

  for (int k = 0; k < N_THREADS; k++)
    cr_assert_eq(w[k].failures, 0, "thread %d: %d sets failed, the first with %s: %s", w[k].id, w[k].failures,
                 rstate_error_name(w[k].first_rc), w[k].first_error);
  for (int k = 0; k < N_THREADS; k++) {
    rstate_var_info info = h_info(s, w[k].own);
    cr_assert_eq(info.version, 1 + SETS_PER_THREAD, "%s has version %llu", w[k].own, (unsigned long long)info.version);
    cr_assert_eq(h_get_int(s, w[k].own), SETS_PER_THREAD);
  }
  rstate_var_info shared = h_info(s, "shared");
  cr_assert_eq(shared.version, 1 + (uint64_t)N_THREADS * SETS_PER_THREAD, "shared has version %llu",
               (unsigned long long)shared.version);
  int64_t last = h_get_int(s, "shared");
  cr_assert_eq(last % 1000000, SETS_PER_THREAD, "shared ends at %lld: not some thread's last value", (long long)last);
  uint64_t want = defines + 2 * (uint64_t)N_THREADS * SETS_PER_THREAD;
  cr_assert_eq(rstate_revision(s), want, "revision %llu, want %llu", (unsigned long long)rstate_revision(s),
               (unsigned long long)want);
  /* Every thread's last call sets "shared", so the newest change is one of those. */
  cr_assert_eq(shared.revision, rstate_revision(s), "shared's revision %llu is not the newest",
               (unsigned long long)shared.revision);
}

/* ---- batches are atomic for a concurrent reader --------------------------------- */

/* Writers set every variable of the group to the same number in one
 * rstate_set_many (the last one, a string, to its decimal text); a reader
 * reading the group with rstate_get_many must never see two numbers. */
#define BATCHES_PER_WRITER 5000
#define N_WRITERS 2
#define GROUP 8

static const char *const group_names[GROUP] = {"batch.0", "batch.1", "batch.2", "batch.3",
                                               "batch.4", "batch.5", "batch.6", "batch.label"};

static atomic_int writers_left;

struct batch_writer {
  int id;
  int failures;
  int first_rc;
};

static void *batch_writer_main(void *arg) {
  struct batch_writer *w = arg;
  pthread_barrier_wait(&start_line);
  for (int k = 1; k <= BATCHES_PER_WRITER; k++) {
    int64_t v = (int64_t)w->id * 1000000 + k;
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)v);
    rstate_assign items[GROUP];
    for (int j = 0; j < GROUP - 1; j++) {
      items[j].name = group_names[j];
      items[j].value = rstate_int(v);
    }
    items[GROUP - 1].name = group_names[GROUP - 1];
    items[GROUP - 1].value = rstate_string(text);
    int rc = rstate_set_many(s, items, GROUP, NULL, NULL);
    if (rc != RSTATE_OK && w->failures++ == 0) w->first_rc = rc;
  }
  atomic_fetch_sub(&writers_left, 1);
  return NULL;
}

struct batch_reader {
  long reads;
  long torn;            /* snapshots mixing two batches */
  long went_back;       /* snapshot revisions lower than one seen before */
  long store_went_back; /* rstate_revision() lower than one seen before, or behind a snapshot */
  long failures;
  char torn_example[128];
};

static void read_group(struct batch_reader *r, uint64_t *last_rev, uint64_t *last_store_rev) {
  rstate_value out[GROUP];
  uint64_t rev = 0;
  int rc = rstate_get_many(s, group_names, GROUP, out, &rev);
  r->reads++;
  if (rc != RSTATE_OK) {
    r->failures++;
    return;
  }
  int bad_kind = out[GROUP - 1].kind != RSTATE_STRING;
  for (int j = 0; j < GROUP - 1; j++) bad_kind |= out[j].kind != RSTATE_INT;
  if (bad_kind) {
    r->failures++;
  } else {
    int64_t first = out[0].u.i;
    int torn = 0;
    for (int j = 1; j < GROUP - 1; j++) torn |= out[j].u.i != first;
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)first);
    torn |= strcmp(out[GROUP - 1].u.s.ptr, text) != 0;
    if (torn && r->torn++ == 0)
      snprintf(r->torn_example, sizeof r->torn_example, "%s=%lld but %s=%lld, label \"%s\"", group_names[0],
               (long long)first, group_names[GROUP - 2], (long long)out[GROUP - 2].u.i, out[GROUP - 1].u.s.ptr);
  }
  for (int j = 0; j < GROUP; j++) rstate_value_clear(&out[j]);
  if (rev < *last_rev) r->went_back++;
  *last_rev = rev;
  uint64_t store_rev = rstate_revision(s);
  if (store_rev < *last_store_rev || store_rev < rev) r->store_went_back++;
  *last_store_rev = store_rev;
}

static void *batch_reader_main(void *arg) {
  struct batch_reader *r = arg;
  uint64_t last_rev = 0, last_store_rev = 0;
  pthread_barrier_wait(&start_line);
  while (atomic_load(&writers_left) > 0) read_group(r, &last_rev, &last_store_rev);
  read_group(r, &last_rev, &last_store_rev);
  return NULL;
}

struct batch_thread_args {
  struct batch_writer w;
  struct batch_reader r;
};

static void *batch_thread_main(void *arg) {
  struct batch_thread_args *a = arg;
  return a->w.id ? batch_writer_main(&a->w) : batch_reader_main(&a->r);
}

Test(threads, readers_never_see_half_a_batch) {
  for (int j = 0; j < GROUP - 1; j++) h_define_ok(s, group_names[j], RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, group_names[GROUP - 1], RSTATE_TYPE_STRING, rstate_string("0"), NULL);
  uint64_t defines = rstate_revision(s);

  /* Thread 0 reads, threads 1..N_WRITERS write. */
  struct batch_thread_args args[N_WRITERS + 1];
  memset(args, 0, sizeof args);
  for (int k = 1; k <= N_WRITERS; k++) args[k].w.id = k;
  atomic_store(&writers_left, N_WRITERS);
  pthread_t t[N_WRITERS + 1];
  start_threads(t, N_WRITERS + 1, batch_thread_main, args, sizeof args[0]);
  join_threads(t, N_WRITERS + 1);

  struct batch_reader *r = &args[0].r;
  for (int k = 1; k <= N_WRITERS; k++)
    cr_assert_eq(args[k].w.failures, 0, "writer %d: %d batches failed, the first with %s", k, args[k].w.failures,
                 rstate_error_name(args[k].w.first_rc));
  cr_assert_eq(r->failures, 0, "%ld of %ld reads failed", r->failures, r->reads);
  cr_assert_eq(r->torn, 0, "%ld of %ld snapshots mixed two batches (first: %s)", r->torn, r->reads, r->torn_example);
  cr_assert_eq(r->went_back, 0, "the snapshot revision went backwards %ld times", r->went_back);
  cr_assert_eq(r->store_went_back, 0, "rstate_revision went backwards (or behind a snapshot) %ld times",
               r->store_went_back);
  cr_assert_geq(r->reads, 1);

  cr_assert_eq(rstate_revision(s), defines + (uint64_t)N_WRITERS * BATCHES_PER_WRITER,
               "each batch takes one revision");
  for (int j = 0; j < GROUP; j++)
    cr_assert_eq(h_version(s, group_names[j]), 1 + (uint64_t)N_WRITERS * BATCHES_PER_WRITER, "%s", group_names[j]);
}

/* ---- compare-and-set ------------------------------------------------------- */

#define INCREMENTS_PER_THREAD 2000

struct incrementer {
  int done;
  long conflicts;
  int failures;
  int first_rc;
};

static void *incrementer_main(void *arg) {
  struct incrementer *w = arg;
  pthread_barrier_wait(&start_line);
  while (w->done < INCREMENTS_PER_THREAD) {
    rstate_var_info info;
    int64_t v = 0;
    /* Version first, then value: a value newer than the version makes set_if conflict. */
    int rc = rstate_info(s, "counter", &info);
    if (rc == RSTATE_OK) rc = rstate_get_int(s, "counter", &v);
    if (rc == RSTATE_OK) {
      rstate_value next = rstate_int(v + 1);
      rc = rstate_set_if(s, "counter", &next, info.version, NULL);
    }
    if (rc == RSTATE_OK) {
      w->done++;
    } else if (rc == RSTATE_ECONFLICT) {
      w->conflicts++;
    } else {
      if (w->failures++ == 0) w->first_rc = rc;
      if (w->failures > 100) break;
    }
  }
  return NULL;
}

Test(threads, set_if_is_a_compare_and_set) {
  h_define_ok(s, "counter", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  struct incrementer w[N_THREADS];
  memset(w, 0, sizeof w);
  pthread_t t[N_THREADS];
  start_threads(t, N_THREADS, incrementer_main, w, sizeof w[0]);
  join_threads(t, N_THREADS);
  for (int k = 0; k < N_THREADS; k++)
    cr_assert_eq(w[k].failures, 0, "thread %d: %d failures, the first %s", k, w[k].failures,
                 rstate_error_name(w[k].first_rc));
  const int64_t total = (int64_t)N_THREADS * INCREMENTS_PER_THREAD;
  cr_assert_eq(h_get_int(s, "counter"), total, "lost updates: counter is %lld, want %lld",
               (long long)h_get_int(s, "counter"), (long long)total);
  cr_assert_eq(h_version(s, "counter"), 1 + (uint64_t)total);
  cr_assert_eq(rstate_revision(s), 1 + (uint64_t)total);
}

/* ---- last error stays per thread under contention ---------------------------- */

#define FAILURES_PER_THREAD 2000

static const char *const error_vars[N_THREADS] = {"alpha_var", "bravo_var", "charlie_var", "delta_var"};

struct failer {
  int index;
  int wrong_code;
  int wrong_text;
  char bad_text[256];
};

static void *failer_main(void *arg) {
  struct failer *w = arg;
  const char *mine = error_vars[w->index];
  pthread_barrier_wait(&start_line);
  for (int k = 0; k < FAILURES_PER_THREAD; k++) {
    int rc = rstate_set_int(s, mine, 1000 + k); /* above the maximum */
    if (rc != RSTATE_ECONSTRAINT) w->wrong_code++;
    const char *e = rstate_last_error();
    int others = 0;
    for (int j = 0; j < N_THREADS; j++)
      if (j != w->index && strstr(e, error_vars[j])) others = 1;
    if ((!strstr(e, mine) || others) && w->wrong_text++ == 0) snprintf(w->bad_text, sizeof w->bad_text, "%s", e);
  }
  return NULL;
}

Test(threads, last_error_is_per_thread_under_contention) {
  rstate_constraints c = {.min = rstate_int(0), .max = rstate_int(10)};
  for (int k = 0; k < N_THREADS; k++) h_define_ok(s, error_vars[k], RSTATE_TYPE_INTEGER, rstate_int(0), &c);
  uint64_t rev = rstate_revision(s);
  struct failer w[N_THREADS];
  memset(w, 0, sizeof w);
  for (int k = 0; k < N_THREADS; k++) w[k].index = k;
  pthread_t t[N_THREADS];
  start_threads(t, N_THREADS, failer_main, w, sizeof w[0]);
  join_threads(t, N_THREADS);
  for (int k = 0; k < N_THREADS; k++) {
    cr_assert_eq(w[k].wrong_code, 0, "%s: %d sets did not return RSTATE_ECONSTRAINT", error_vars[k], w[k].wrong_code);
    cr_assert_eq(w[k].wrong_text, 0, "%s: %d times the last error was another thread's, e.g. \"%s\"", error_vars[k],
                 w[k].wrong_text, w[k].bad_text);
    cr_assert_eq(h_version(s, error_vars[k]), 1);
  }
  cr_assert_eq(rstate_revision(s), rev, "rejected sets took revisions");
}

/* ---- define, undefine, get and list on distinct names ------------------------- */

#define CYCLES_PER_THREAD 1000

struct cycler {
  int id;
  int failures;
  int first_rc;
  int first_step;
  char first_error[256];
};

static void *cycler_main(void *arg) {
  struct cycler *w = arg;
  char name[32];
  snprintf(name, sizeof name, "cycle/%d", w->id);
  pthread_barrier_wait(&start_line);
  for (int k = 0; k < CYCLES_PER_THREAD; k++) {
    int step = 0, rc;
    rstate_var_def def = {.name = name, .type = RSTATE_TYPE_STRING, .initial = rstate_string("born")};
    rc = rstate_define(s, &def);
    if (rc == RSTATE_OK) {
      step = 1;
      rstate_value v;
      rc = rstate_get(s, name, &v);
      if (rc == RSTATE_OK) {
        if (v.kind != RSTATE_STRING || strcmp(v.u.s.ptr, "born") != 0) rc = RSTATE_EPROTO;
        rstate_value_clear(&v);
      }
    }
    if (rc == RSTATE_OK) {
      step = 2;
      rc = rstate_set_string(s, name, "grown");
    }
    if (rc == RSTATE_OK) {
      step = 3;
      rstate_var_info info;
      rc = rstate_info(s, name, &info);
      if (rc == RSTATE_OK && info.version != 2) rc = RSTATE_EPROTO;
    }
    if (rc == RSTATE_OK) {
      step = 4;
      rc = rstate_undefine(s, name);
    }
    if (rc == RSTATE_OK) {
      step = 5;
      rstate_value v;
      int got = rstate_get(s, name, &v);
      if (got == RSTATE_OK) rstate_value_clear(&v);
      rc = got == RSTATE_ENOTFOUND ? RSTATE_OK : RSTATE_EPROTO;
    }
    if (rc != RSTATE_OK && w->failures++ == 0) {
      w->first_rc = rc;
      w->first_step = step;
      snprintf(w->first_error, sizeof w->first_error, "%s", rstate_last_error());
    }
  }
  return NULL;
}

struct lister {
  long walks;
  int failures;
  int unsorted;
};

struct walk_state {
  char prev[64];
  int unsorted;
  int get_failures;
};

static int check_order(const char *name, rstate_type type, void *ud) {
  struct walk_state *st = ud;
  (void)type;
  if (st->prev[0] && strcmp(st->prev, name) >= 0) st->unsorted++;
  snprintf(st->prev, sizeof st->prev, "%s", name);
  /* The variable may be gone by now (another thread undefines it): either answer is fine,
     but nothing else is. */
  rstate_value v;
  int rc = rstate_get(s, name, &v);
  if (rc == RSTATE_OK)
    rstate_value_clear(&v);
  else if (rc != RSTATE_ENOTFOUND)
    st->get_failures++;
  return 0;
}

static atomic_int cyclers_left;

static void *lister_main(void *arg) {
  struct lister *l = arg;
  pthread_barrier_wait(&start_line);
  while (atomic_load(&cyclers_left) > 0) {
    struct walk_state st;
    memset(&st, 0, sizeof st);
    if (rstate_list(s, check_order, &st) != RSTATE_OK) l->failures++;
    l->unsorted += st.unsorted;
    l->failures += st.get_failures;
    l->walks++;
  }
  return NULL;
}

struct churn_args {
  struct cycler c;
  struct lister l;
  int is_lister;
};

static void *churn_main(void *arg) {
  struct churn_args *a = arg;
  if (a->is_lister) return lister_main(&a->l);
  void *ret = cycler_main(&a->c);
  atomic_fetch_sub(&cyclers_left, 1);
  return ret;
}

Test(threads, define_undefine_get_on_distinct_names) {
  h_define_ok(s, "cycle/keep", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  uint64_t rev = rstate_revision(s);
  struct churn_args args[N_THREADS + 1];
  memset(args, 0, sizeof args);
  for (int k = 0; k < N_THREADS; k++) args[k].c.id = k;
  args[N_THREADS].is_lister = 1;
  atomic_store(&cyclers_left, N_THREADS);
  pthread_t t[N_THREADS + 1];
  start_threads(t, N_THREADS + 1, churn_main, args, sizeof args[0]);
  join_threads(t, N_THREADS + 1);

  for (int k = 0; k < N_THREADS; k++)
    cr_assert_eq(args[k].c.failures, 0, "thread %d: %d cycles failed, the first at step %d with %s: %s", k,
                 args[k].c.failures, args[k].c.first_step, rstate_error_name(args[k].c.first_rc),
                 args[k].c.first_error);
  cr_assert_eq(args[N_THREADS].l.failures, 0, "rstate_list or a get inside it failed %d times",
               args[N_THREADS].l.failures);
  cr_assert_eq(args[N_THREADS].l.unsorted, 0, "rstate_list visited names out of order");
  /* define + set + undefine per cycle */
  cr_assert_eq(rstate_revision(s), rev + 3 * (uint64_t)N_THREADS * CYCLES_PER_THREAD);
  cr_assert_eq(h_version(s, "cycle/keep"), 1);
  rstate_value v;
  for (int k = 0; k < N_THREADS; k++) {
    char name[32];
    snprintf(name, sizeof name, "cycle/%d", k);
    ASSERT_RC(rstate_get(s, name, &v), RSTATE_ENOTFOUND);
  }
}

/* ---- a watch ended by another thread while this one holds its claim ----------- */

/* A's callback sets x, which B watches: this thread claims B and will deliver
 * to it only after A's callback returns. Meanwhile another thread ends B. That
 * must not wait for this thread (B's fn is not running), B's destroy must run
 * once, and the pending change must not reach B afterwards; the claim then
 * drops the last reference (ASan, TSan and valgrind check the memory). For a
 * queued B the claim is the dispatcher's, released by rstate_dispatch. */
typedef struct orphan {
  rstate_watch_id b;
  bool queued;
  atomic_int b_calls, b_destroyed, unwatch_rc;
  atomic_bool unwatched;
} orphan;

static int orphan_b(const rstate_event *ev, void *ud) {
  (void)ev;
  atomic_fetch_add(&((orphan *)ud)->b_calls, 1);
  return RSTATE_OK;
}

static void orphan_b_destroy(void *ud) { atomic_fetch_add(&((orphan *)ud)->b_destroyed, 1); }

static void *orphan_unwatcher(void *arg) {
  orphan *o = arg;
  atomic_store(&o->unwatch_rc, rstate_unwatch(s, o->b));
  atomic_store(&o->unwatched, true);
  return NULL;
}

static int orphan_a(const rstate_event *ev, void *ud) {
  orphan *o = ud;
  if (ev->kind != RSTATE_EVENT_CHANGED) return RSTATE_OK;
  cr_assert_eq(rstate_set_int(s, "x", 1), RSTATE_OK, "%s", rstate_last_error()); /* claims B, delivered later */
  pthread_t u;
  cr_assert_eq(pthread_create(&u, NULL, orphan_unwatcher, o), 0);
  for (int i = 0; i < 5000 && !atomic_load(&o->unwatched); i++) usleep(1000);
  cr_assert(atomic_load(&o->unwatched),
            "rstate_unwatch from another thread waited 5 s for a watch whose fn was not running");
  pthread_join(u, NULL);
  return RSTATE_OK;
}

static void orphan_case(bool queued) {
  /* Local stores only: on a remote store the claiming thread is the
   * connection thread, which the unwatch needs. Not cr_skip_test: under
   * valgrind a skip leaks Criterion's own state. */
  if (h_remote()) return;
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "trigger", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  orphan o = {.queued = queued};
  const char *x = "x", *trigger = "trigger";
  rstate_watch_opts bo = {.queued = queued, .destroy = orphan_b_destroy};
  ASSERT_RC(rstate_watch(s, &x, 1, orphan_b, &o, &bo, &o.b), RSTATE_OK);
  ASSERT_RC(rstate_watch(s, &trigger, 1, orphan_a, &o, NULL, NULL), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "trigger", 1), RSTATE_OK);
  if (queued) ASSERT_RC(rstate_dispatch(s, 0), RSTATE_OK);
  cr_assert_eq(atomic_load(&o.unwatch_rc), RSTATE_OK);
  cr_assert_eq(atomic_load(&o.b_destroyed), 1, "B's destroy ran %d times", atomic_load(&o.b_destroyed));
  cr_assert_eq(atomic_load(&o.b_calls), 0, "B got %d events after rstate_unwatch returned", atomic_load(&o.b_calls));
}

Test(threads, unwatch_of_a_watch_claimed_by_another_thread_inline) { orphan_case(false); }

/* A and B watch the same variable: one set claims both on this thread and
 * takes B's change off its queue at once, but B's callback comes only after
 * A's. Ending B meanwhile, from A's callback or from another thread that
 * A's callback waits for, must not wait for B's delivery (it has not begun),
 * and B must get nothing more. */
typedef struct behind {
  rstate_watch_id b;
  bool other_thread;
  orphan o;
  atomic_int b_pending; /* B's stats.pending seen from A's callback, before B ends */
} behind;

static void *behind_unwatcher(void *arg) {
  behind *k = arg;
  atomic_store(&k->o.unwatch_rc, rstate_unwatch(s, k->b));
  atomic_store(&k->o.unwatched, true);
  return NULL;
}

static int behind_a(const rstate_event *ev, void *ud) {
  behind *k = ud;
  if (ev->kind != RSTATE_EVENT_CHANGED) return RSTATE_OK;
  rstate_watch_stats st;
  atomic_store(&k->b_pending, rstate_get_watch_stats(s, k->b, &st) == RSTATE_OK ? (int)st.pending : -1);
  if (!k->other_thread) {
    atomic_store(&k->o.unwatch_rc, rstate_unwatch(s, k->b));
    return RSTATE_OK;
  }
  pthread_t u;
  cr_assert_eq(pthread_create(&u, NULL, behind_unwatcher, k), 0);
  for (int i = 0; i < 5000 && !atomic_load(&k->o.unwatched); i++) usleep(1000);
  cr_assert(atomic_load(&k->o.unwatched),
            "rstate_unwatch from another thread waited 5 s for a watch whose callback had not begun");
  pthread_join(u, NULL);
  return RSTATE_OK;
}

static void behind_case(bool other_thread) {
  if (h_remote()) return; /* see orphan_case */
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  behind k = {.other_thread = other_thread};
  const char *x = "x";
  rstate_watch_opts bo = {.destroy = orphan_b_destroy};
  ASSERT_RC(rstate_watch(s, &x, 1, behind_a, &k, NULL, NULL), RSTATE_OK); /* first: delivered first */
  ASSERT_RC(rstate_watch(s, &x, 1, orphan_b, &k.o, &bo, &k.b), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_eq(atomic_load(&k.b_pending), 1, "B's change, waiting behind A's callback, counted %d pending",
               atomic_load(&k.b_pending));
  cr_assert_eq(atomic_load(&k.o.unwatch_rc), RSTATE_OK, "%s", rstate_last_error());
  cr_assert_eq(atomic_load(&k.o.b_destroyed), 1, "B's destroy ran %d times", atomic_load(&k.o.b_destroyed));
  cr_assert_eq(atomic_load(&k.o.b_calls), 0, "B got %d events after rstate_unwatch returned",
               atomic_load(&k.o.b_calls));
  ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_OK);
  cr_assert_eq(atomic_load(&k.o.b_calls), 0, "B got an event after it ended");
}

Test(threads, unwatch_from_a_callback_of_a_watch_claimed_behind_it) { behind_case(false); }

/* Three watches on x: A's callback ends C, with B between them. B gets its
 * event, C nothing, C's destroy runs once (and C's taken node is freed:
 * ASan, valgrind). */
static atomic_int third_b_calls;
static rstate_watch_id third_c;

static int third_a(const rstate_event *ev, void *ud) {
  (void)ud;
  if (ev->kind == RSTATE_EVENT_CHANGED) rstate_unwatch(s, third_c);
  return RSTATE_OK;
}

static int third_b(const rstate_event *ev, void *ud) {
  (void)ev;
  (void)ud;
  atomic_fetch_add(&third_b_calls, 1);
  return RSTATE_OK;
}

Test(threads, unwatch_from_a_callback_of_a_watch_claimed_two_behind_it) {
  if (h_remote()) return; /* see orphan_case */
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  orphan c = {0};
  const char *x = "x";
  rstate_watch_opts co = {.destroy = orphan_b_destroy};
  ASSERT_RC(rstate_watch(s, &x, 1, third_a, NULL, NULL, NULL), RSTATE_OK);
  ASSERT_RC(rstate_watch(s, &x, 1, third_b, NULL, NULL, NULL), RSTATE_OK);
  ASSERT_RC(rstate_watch(s, &x, 1, orphan_b, &c, &co, &third_c), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_eq(atomic_load(&third_b_calls), 1, "B, between A and C, got %d events", atomic_load(&third_b_calls));
  cr_assert_eq(atomic_load(&c.b_calls), 0, "C got %d events after A's callback ended it", atomic_load(&c.b_calls));
  cr_assert_eq(atomic_load(&c.b_destroyed), 1, "C's destroy ran %d times", atomic_load(&c.b_destroyed));
  ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_OK);
  cr_assert_eq(atomic_load(&third_b_calls), 2);
  cr_assert_eq(atomic_load(&c.b_calls), 0);
}

Test(threads, unwatch_from_another_thread_of_a_watch_claimed_behind_a_running_callback) { behind_case(true); }
Test(threads, unwatch_of_a_watch_claimed_by_the_dispatcher) { orphan_case(true); }
