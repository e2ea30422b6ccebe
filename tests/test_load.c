/*
 * test_load.c — many clients at once, over loopback: 200 remote stores,
 * each watching 10 variables of a served store, while 4 threads make
 * 100,000 changes. Every client must see every change of its variables, in
 * order (each event's old value is the previous event's new value), and end
 * at the final values; a change it did not see one by one is counted in
 * `coalesced`. RSTATE_TEST_QUICK (set by `make valgrind`) scales the load
 * down to what runs in reasonable time under valgrind.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>

#include "helpers.h"

#define CLIENTS 200
#define VARS 100
#define PER_CLIENT 10
#define SETTERS 4

typedef struct seen {
  int64_t last;      /* the last new value */
  uint64_t covered;  /* changes seen: the sum of coalesced */
  uint64_t events;
  bool broken;       /* an event whose old value was not the last new one */
} seen;

typedef struct client {
  rstate_store *store;
  pthread_mutex_t lock;
  seen vars[VARS];
  int first; /* its variables: first .. first + PER_CLIENT - 1 (mod VARS) */
} client;

static client clients[CLIENTS];
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int n_done; /* clients at the final value of every variable */
static rstate_store *backing;
static int64_t per_var; /* changes per variable */
static int n_clients;

static int on_change(const rstate_event *ev, void *ud) {
  client *c = ud;
  int v = atoi(ev->name + 1);
  pthread_mutex_lock(&c->lock);
  seen *s = &c->vars[v];
  if (ev->old_value.u.i != s->last || ev->new_value.u.i <= s->last) s->broken = true;
  s->last = ev->new_value.u.i;
  s->covered += ev->coalesced;
  s->events++;
  bool finished = false;
  if (s->last == per_var) {
    finished = true;
    for (int i = 0; i < PER_CLIENT && finished; i++) finished = c->vars[(c->first + i) % VARS].last == per_var;
  }
  pthread_mutex_unlock(&c->lock);
  if (finished) {
    pthread_mutex_lock(&done_lock);
    n_done++;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
  }
  return RSTATE_CONTINUE;
}

static void *setter(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int64_t k = 1; k <= per_var; k++)
    for (int v = t; v < VARS; v += SETTERS) {
      char name[16];
      snprintf(name, sizeof name, "v%d", v);
      if (rstate_set_int(backing, name, k) != RSTATE_OK) return (void *)1;
    }
  return NULL;
}

TestSuite(load); /* the TSan stand-in (tests/tsan/criterion/criterion.h) needs the suite declared */

Test(load, every_client_sees_every_change_of_its_variables_in_order, .timeout = 600) {
  bool quick = getenv("RSTATE_TEST_QUICK") != NULL;
  n_clients = quick ? 20 : CLIENTS;
  per_var = quick ? 100 : 100000 / VARS;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) { /* a few descriptors per client and server side */
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ASSERT_RC(rstate_open(&backing, "mem:", NULL), RSTATE_OK);
  for (int v = 0; v < VARS; v++) {
    char name[16];
    snprintf(name, sizeof name, "v%d", v);
    h_define_ok(backing, name, RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  }
  rstate_server *srv;
  char uri[96];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-load-%d.sock", (int)getpid());
  rstate_server_opts so = {.max_clients = CLIENTS + 8};
  ASSERT_RC(rstate_server_start(&srv, backing, uri, &so), RSTATE_OK);

  for (int i = 0; i < n_clients; i++) {
    client *c = &clients[i];
    pthread_mutex_init(&c->lock, NULL);
    c->first = (i * PER_CLIENT) % VARS;
    ASSERT_RC(rstate_open(&c->store, uri, NULL), RSTATE_OK);
    char names[PER_CLIENT][16];
    const char *p[PER_CLIENT];
    for (int k = 0; k < PER_CLIENT; k++) {
      snprintf(names[k], sizeof names[k], "v%d", (c->first + k) % VARS);
      p[k] = names[k];
    }
    rstate_watch_id id;
    ASSERT_RC(rstate_watch(c->store, p, PER_CLIENT, on_change, c, NULL, &id), RSTATE_OK);
  }

  pthread_t t[SETTERS];
  for (int i = 0; i < SETTERS; i++) pthread_create(&t[i], NULL, setter, (void *)(intptr_t)i);
  for (int i = 0; i < SETTERS; i++) {
    void *rc;
    pthread_join(t[i], &rc);
    cr_assert_null(rc, "a setter failed: %s", rstate_last_error());
  }

  /* every client reaches the final values, within 300 s */
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 300;
  pthread_mutex_lock(&done_lock);
  while (n_done < n_clients)
    if (pthread_cond_timedwait(&done_cond, &done_lock, &deadline)) break;
  int finished = n_done;
  pthread_mutex_unlock(&done_lock);
  cr_assert_eq(finished, n_clients, "only %d of %d clients reached the final values within 300 s", finished,
               n_clients);
  uint64_t events = 0;
  for (int i = 0; i < n_clients; i++) {
    client *c = &clients[i];
    rstate_close(c->store);
    for (int k = 0; k < PER_CLIENT; k++) {
      seen *s = &c->vars[(c->first + k) % VARS];
      cr_assert(!s->broken, "client %d, v%d: an event did not follow the one before it", i, (c->first + k) % VARS);
      cr_assert_eq(s->covered, (uint64_t)per_var, "client %d, v%d: events cover %llu changes, want %lld", i,
                   (c->first + k) % VARS, (unsigned long long)s->covered, (long long)per_var);
      events += s->events;
    }
    pthread_mutex_destroy(&c->lock);
  }
  cr_log_info("%d clients, %lld changes, %llu events delivered", n_clients, (long long)per_var * VARS,
              (unsigned long long)events);
  rstate_server_stop(srv);
  rstate_close(backing);
}
