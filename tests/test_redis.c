/*
 * test_redis.c — what redis: stores guarantee beyond the store suites (which
 * run over redis: too, RSTATE_TEST_TRANSPORT=redis): opening, passwords,
 * compare-and-set from several processes, RESYNC after a trimmed log and
 * after a store flushed and made again, resuming after lost connections,
 * and replicas. Every test starts the Redis servers it needs on loopback
 * (redisserver.h) and stops them at its end.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "core/store.h"
#include "recorder.h"
#include "redisserver.h"

static h_redis primary, replica, sentinel;

static void stop_all(void) {
  h_redis_stop(&sentinel, SIGKILL);
  h_redis_stop(&replica, SIGKILL);
  h_redis_stop(&primary, SIGKILL);
}

TestSuite(redis, .fini = stop_all, .timeout = 60);

static rstate_store *open_ok(const char *uri, const rstate_options *o) {
  rstate_store *s = NULL;
  int rc = rstate_open(&s, uri, o);
  cr_assert_eq(rc, RSTATE_OK, "rstate_open(%s): %s: %s", uri, rstate_error_name(rc), rstate_last_error());
  return s;
}

Test(redis, open_fails_clearly) {
  rstate_store *s = NULL;
  char uri[96];
  snprintf(uri, sizeof uri, "redis:127.0.0.1:%d/st", h_free_port()); /* nothing listens there */
  ASSERT_RC(rstate_open(&s, uri, NULL), RSTATE_EIO);
  cr_assert_null(s);
  ASSERT_RC(rstate_open(&s, "redis:127.0.0.1:6379", NULL), RSTATE_EINVAL);
  cr_assert(strstr(rstate_last_error(), "redis:HOST:PORT/STORE"), "%s", rstate_last_error());
  ASSERT_RC(rstate_open(&s, "redis:127.0.0.1:6379/a{b}", NULL), RSTATE_EINVAL);
  rstate_options o = {.replicas = -1};
  ASSERT_RC(rstate_open(&s, "redis:127.0.0.1:6379/st", &o), RSTATE_EINVAL);
}

Test(redis, token_is_the_password) {
  h_redis_start(&primary, "--requirepass", "s3cret", NULL);
  rstate_store *s = NULL;
  rstate_options bad = {.token = "wrong"};
  ASSERT_RC(rstate_open(&s, h_redis_uri(&primary, "pw"), &bad), RSTATE_EPERM);
  ASSERT_RC(rstate_open(&s, h_redis_uri(&primary, "pw"), NULL), RSTATE_EPERM);
  rstate_options good = {.token = "s3cret"};
  s = open_ok(h_redis_uri(&primary, "pw"), &good);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_OK);
  rstate_options user = {.token = "default:s3cret"}; /* "user:password" */
  rstate_store *t = open_ok(h_redis_uri(&primary, "pw"), &user);
  cr_assert_eq(h_get_int(t, "x"), 2);
  rstate_close(t);
  rstate_close(s);
}

Test(redis, two_clients_share_a_store_and_its_checks) {
  h_redis_start(&primary, NULL);
  rstate_store *a = open_ok(h_redis_uri(&primary, "shared"), NULL);
  rstate_store *b = open_ok(h_redis_uri(&primary, "shared"), NULL);
  rstate_value lo = rstate_float(0), hi = rstate_float(2);
  rstate_constraints c = {.min = lo, .max = hi};
  h_define_ok(a, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &c);
  /* the same definition from b, bounds written as integers: idempotent */
  rstate_constraints ci = {.min = rstate_int(0), .max = rstate_int(2)};
  h_define_ok(b, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &ci);
  ASSERT_RC(h_define(b, "temperature", RSTATE_TYPE_INTEGER, rstate_int(0), NULL), RSTATE_EEXIST);
  cr_assert_str_eq(rstate_last_error(), "temperature: already defined differently: its type is float, not integer");
  /* b checks a's definition: same code and sentence as mem: */
  ASSERT_FAIL_NAMES(rstate_set_float(b, "temperature", 2.5), RSTATE_ECONSTRAINT, "temperature");
  ASSERT_RC(rstate_set_float(b, "temperature", 1.5), RSTATE_OK);
  cr_assert_eq(h_get_float(a, "temperature"), 1.5);
  rstate_var_info ia = h_info(a, "temperature"), ib = h_info(b, "temperature");
  cr_assert_eq(ia.version, 2);
  cr_assert_eq(ia.revision, ib.revision);
  cr_assert_eq(ia.updated_ns, ib.updated_ns);
  /* a re-definition elsewhere: b's check follows it */
  ASSERT_RC(rstate_undefine(a, "temperature"), RSTATE_OK);
  h_define_ok(a, "temperature", RSTATE_TYPE_STRING, rstate_string("warm"), NULL);
  ASSERT_RC(rstate_set_float(b, "temperature", 1.0), RSTATE_ETYPE);
  ASSERT_RC(rstate_set_string(b, "temperature", "hot"), RSTATE_OK);
  char *v = NULL;
  ASSERT_RC(rstate_get_string(a, "temperature", &v), RSTATE_OK);
  cr_assert_str_eq(v, "hot");
  rstate_free(v);
  rstate_close(b);
  rstate_close(a);
}

/* ---- history and rollback, read back from the log ---- */

typedef struct hist_seen {
  size_t n;
  uint64_t version[16], revision[16];
  int64_t value[16], ts[16];
  char source[16][16];
  size_t n_meta[16];
  char meta0[16][16];
  size_t stop_after; /* 0: never */
} hist_seen;

static int hist_cb(const rstate_history_entry *e, void *ud) {
  hist_seen *h = ud;
  if (h->n < 16) {
    h->version[h->n] = e->version;
    h->revision[h->n] = e->revision;
    h->value[h->n] = e->value.kind == RSTATE_INT ? e->value.u.i : -1;
    h->ts[h->n] = e->timestamp_ns;
    snprintf(h->source[h->n], sizeof h->source[0], "%s", e->source ? e->source : "");
    h->n_meta[h->n] = e->n_meta;
    snprintf(h->meta0[h->n], sizeof h->meta0[0], "%s", e->n_meta ? e->meta[0].value : "");
  }
  h->n++;
  return h->stop_after && h->n >= h->stop_after;
}

static hist_seen history_of(rstate_store *s, const char *name, uint64_t after) {
  hist_seen h = {0};
  int rc = rstate_history(s, name, after, hist_cb, &h);
  cr_assert_eq(rc, RSTATE_OK, "rstate_history(%s): %s: %s", name, rstate_error_name(rc), rstate_last_error());
  return h;
}

/* A redis: store served like any other: a unix: client of the server sees
 * what another redis: client writes straight into Redis (with its
 * include_initial snapshot first), and its own writes land in Redis. */
Test(redis, a_redis_store_is_served_like_any_other) {
  h_redis_start(&primary, NULL);
  rstate_store *s = open_ok(h_redis_uri(&primary, "served"), NULL);
  rstate_store *other = open_ok(h_redis_uri(&primary, "served"), NULL);
  h_define_ok(other, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  ASSERT_RC(rstate_set_int(other, "x", 2), RSTATE_OK);
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-redis-served-%d.sock", (int)getpid());
  rstate_server *srv = NULL;
  int rc = rstate_server_start(&srv, s, uri, NULL);
  cr_assert_eq(rc, RSTATE_OK, "rstate_server_start: %s: %s", rstate_error_name(rc), rstate_last_error());
  rstate_store *c = open_ok(uri, NULL);
  cr_assert_eq(h_get_int(c, "x"), 2, "the client reads what Redis holds");

  recorder r;
  rec_init(&r);
  rstate_watch_opts o = {.include_initial = true};
  const char *all[] = {"*"};
  rec_watch(c, &r, all, 1, &o);
  rec_wait(&r, 1);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_INITIAL);
  cr_assert_str_eq(r.ev[0].name, "x");
  cr_assert_eq(r.ev[0].new_value.u.i, 2);
  /* changes made in Redis by another redis: client reach the server's client */
  ASSERT_RC(rstate_set_int(other, "x", 3), RSTATE_OK);
  h_define_ok(other, "y", RSTATE_TYPE_STRING, rstate_string("a"), NULL);
  rstate_assign batch[] = {{"x", rstate_int(4)}, {"y", rstate_string("b")}};
  ASSERT_RC(rstate_set_many(other, batch, 2, NULL, NULL), RSTATE_OK);
  ASSERT_RC(rstate_undefine(other, "y"), RSTATE_OK);
  rec_wait(&r, 6);
  cr_assert_eq(r.ev[1].kind, RSTATE_EVENT_CHANGED);
  cr_assert_eq(r.ev[1].new_value.u.i, 3);
  cr_assert_eq(r.ev[1].old_value.u.i, 2);
  cr_assert_eq(r.ev[1].version, 3);
  cr_assert_eq(r.ev[2].kind, RSTATE_EVENT_DEFINED);
  cr_assert_str_eq(r.ev[2].name, "y");
  cr_assert_eq(r.ev[3].revision, r.ev[4].revision, "a batch is one revision");
  cr_assert_eq(r.ev[5].kind, RSTATE_EVENT_DELETED);
  cr_assert_eq(r.ev[5].revision, rstate_revision(other), "the revisions are Redis's");

  /* a write through the server lands in Redis, with its checks */
  ASSERT_RC(rstate_set_int(c, "x", 10), RSTATE_OK);
  cr_assert_eq(h_get_int(other, "x"), 10);
  rstate_var_info info = h_info(other, "x");
  ASSERT_RC(rstate_set_if(c, "x", &(rstate_value){.kind = RSTATE_INT, .u.i = 11}, info.version - 1, NULL),
            RSTATE_ECONFLICT);
  ASSERT_RC(rstate_set_string(c, "x", "no"), RSTATE_ETYPE);
  rec_wait(&r, 7);
  cr_assert_eq(r.ev[6].new_value.u.i, 10);
  cr_assert_eq(r.n, 7, "refused writes change nothing");

  /* a second watch made later starts at the right revision */
  recorder r2;
  rec_init(&r2);
  rec_watch(c, &r2, all, 1, &o);
  rec_wait(&r2, 1);
  cr_assert_eq(r2.ev[0].new_value.u.i, 10);
  ASSERT_RC(rstate_set_int(other, "x", 12), RSTATE_OK);
  rec_wait(&r2, 2);
  cr_assert_eq(r2.ev[1].new_value.u.i, 12);
  cr_assert_eq(r2.n, 2);

  /* history through the server, read from the log */
  hist_seen hs = {0};
  ASSERT_RC(rstate_history(c, "x", 0, hist_cb, &hs), RSTATE_OK);
  cr_assert_eq(hs.n, 6, "x's versions through the server: got %zu", hs.n);
  cr_assert_eq(hs.value[5], 12);
  rstate_close(c);
  rstate_server_stop(srv);
  /* served no more: the store goes on, and can be served again */
  ASSERT_RC(rstate_set_int(other, "x", 13), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "x"), 13);
  srv = NULL;
  rc = rstate_server_start(&srv, s, uri, NULL);
  cr_assert_eq(rc, RSTATE_OK, "served again: %s", rstate_last_error());
  c = open_ok(uri, NULL);
  cr_assert_eq(h_get_int(c, "x"), 13);
  rstate_close(c);
  rstate_server_stop(srv);
  rstate_close(other);
  rstate_close(s);
  rec_free(&r2);
  rec_free(&r);
}

Test(redis, history_is_read_back_from_the_log) {
  h_redis_start(&primary, NULL);
  rstate_store *s = open_ok(h_redis_uri(&primary, "hist"), NULL);
  rstate_store *other = open_ok(h_redis_uri(&primary, "hist"), NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(10), NULL);
  h_define_ok(s, "y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_meta meta[] = {{"why", "tuning"}};
  rstate_set_opts o = {.source = "ops", .meta = meta, .n_meta = 1};
  ASSERT_RC(rstate_set(s, "x", &(rstate_value){.kind = RSTATE_INT, .u.i = 11}, &o), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "y", 1), RSTATE_OK); /* another variable's changes are skipped */
  rstate_assign batch[] = {{"y", rstate_int(2)}, {"x", rstate_int(12)}};
  ASSERT_RC(rstate_set_many(other, batch, 2, NULL, NULL), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 12), RSTATE_OK); /* equal: no new version */
  ASSERT_RC(rstate_set_int(other, "x", 13), RSTATE_OK);
  rstate_var_info info = h_info(s, "x");
  cr_assert_eq(info.version, 4);

  hist_seen h = history_of(s, "x", 0);
  cr_assert_eq(h.n, 4, "every version, oldest first: got %zu", h.n);
  for (size_t i = 0; i < 4; i++) {
    cr_assert_eq(h.version[i], i + 1);
    cr_assert_eq(h.value[i], (int64_t)(10 + i));
  }
  cr_assert_eq(h.revision[3], info.revision, "the current one last, with its revision");
  cr_assert_eq(h.ts[3], info.updated_ns);
  cr_assert(h.revision[0] < h.revision[1] && h.revision[1] < h.revision[2] && h.revision[2] < h.revision[3]);
  cr_assert_str_eq(h.source[1], "ops");
  cr_assert_eq(h.n_meta[1], 1);
  cr_assert_str_eq(h.meta0[1], "tuning");
  cr_assert_str_eq(h.source[2], "");
  cr_assert_eq(h.revision[2], h_info(s, "y").revision, "x and y changed in one revision");
  /* from any client of the store */
  hist_seen ho = history_of(other, "x", 0);
  cr_assert_eq(ho.n, 4);
  cr_assert_eq(ho.revision[0], h.revision[0]);
  /* after_version, and fn stopping the walk */
  h = history_of(s, "x", 2);
  cr_assert_eq(h.n, 2);
  cr_assert_eq(h.version[0], 3);
  h = history_of(s, "x", 4);
  cr_assert_eq(h.n, 0);
  hist_seen stop = {.stop_after = 1};
  ASSERT_RC(rstate_history(s, "x", 0, hist_cb, &stop), RSTATE_OK);
  cr_assert_eq(stop.n, 1);
  cr_assert_eq(stop.version[0], 1);
  /* errors */
  ASSERT_FAIL_NAMES(rstate_history(s, "nope", 0, hist_cb, &stop), RSTATE_ENOTFOUND, "nope");
  cr_assert_str_eq(rstate_last_error(), "nope: no such variable");

  /* rollback: a new change with the old value, from the log */
  ASSERT_RC(rstate_rollback(s, "x", 2, &o), RSTATE_OK);
  cr_assert_eq(h_get_int(other, "x"), 11);
  info = h_info(other, "x");
  cr_assert_eq(info.version, 5);
  h = history_of(other, "x", 4);
  cr_assert_eq(h.n, 1);
  cr_assert_eq(h.value[0], 11);
  cr_assert_str_eq(h.source[0], "ops");
  ASSERT_RC(rstate_rollback(s, "x", 9, NULL), RSTATE_ECONFLICT);
  cr_assert_str_eq(rstate_last_error(), "rstate_rollback: x: version 9 is above the current version 5");
  ASSERT_RC(rstate_rollback(s, "x", 0, NULL), RSTATE_ENOTFOUND);

  /* history starts again at a re-definition */
  ASSERT_RC(rstate_undefine(other, "x"), RSTATE_OK);
  ASSERT_FAIL_NAMES(rstate_history(s, "x", 0, hist_cb, &stop), RSTATE_ENOTFOUND, "x");
  h_define_ok(other, "x", RSTATE_TYPE_INTEGER, rstate_int(20), NULL);
  ASSERT_RC(rstate_set_int(s, "x", 21), RSTATE_OK);
  h = history_of(s, "x", 0);
  cr_assert_eq(h.n, 2, "only the new definition's versions: got %zu", h.n);
  cr_assert_eq(h.value[0], 20);
  cr_assert_eq(h.value[1], 21);
  ASSERT_RC(rstate_rollback(s, "x", 3, NULL), RSTATE_ECONFLICT);

  /* a log trimmed past every change of x: the current version alone, from its record */
  ASSERT_RC(rstate_set_int(s, "y", 3), RSTATE_OK);
  char minid[32];
  snprintf(minid, sizeof minid, "%llu-0", (unsigned long long)h_info(s, "y").revision);
  h_redis_ok(primary.port, "XTRIM", "rs:{hist}:log", "MINID", minid, NULL);
  h = history_of(s, "x", 0);
  cr_assert_eq(h.n, 1);
  cr_assert_eq(h.version[0], 2);
  cr_assert_eq(h.value[0], 21);
  ASSERT_RC(rstate_rollback(s, "x", 1, NULL), RSTATE_ENOTFOUND);
  cr_assert_str_eq(rstate_last_error(), "rstate_rollback: x: version 1 is no longer kept");
  rstate_close(other);
  rstate_close(s);
}

Test(redis, keep_versions_bounds_the_history) {
  h_redis_start(&primary, NULL);
  rstate_options o = {.keep_versions = 2};
  rstate_store *s = open_ok(h_redis_uri(&primary, "keep"), &o);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int i = 1; i <= 5; i++) ASSERT_RC(rstate_set_int(s, "x", i), RSTATE_OK);
  hist_seen h = history_of(s, "x", 0);
  cr_assert_eq(h.n, 3, "the current version and 2 before it: got %zu", h.n);
  cr_assert_eq(h.version[0], 4);
  cr_assert_eq(h.value[2], 5);
  ASSERT_RC(rstate_rollback(s, "x", 3, NULL), RSTATE_ENOTFOUND);
  ASSERT_RC(rstate_rollback(s, "x", 4, NULL), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "x"), 3);
  rstate_close(s);
}

/* ---- compare-and-set from several processes ---- */

static int cas_child(const char *uri, int n) {
  rstate_store *s = NULL;
  if (rstate_open(&s, uri, NULL)) return 2;
  int conflicts = 0;
  for (int i = 0; i < n;) {
    rstate_var_info info;
    int64_t v;
    if (rstate_info(s, "counter", &info) || rstate_get_int(s, "counter", &v)) return 3;
    int rc = rstate_set_if(s, "counter", &(rstate_value){.kind = RSTATE_INT, .u.i = v + 1}, info.version, NULL);
    if (rc == RSTATE_OK)
      i++;
    else if (rc == RSTATE_ECONFLICT)
      conflicts++;
    else
      return 4;
  }
  rstate_close(s);
  return 0;
}

/* A writer is this program again (a fresh process, which valgrind and the
 * sanitizers follow as any other): RSTATE_TEST_CAS="URI N" runs cas_child
 * before Criterion starts. */
__attribute__((constructor)) static void cas_writer(void) {
  const char *arg = getenv("RSTATE_TEST_CAS");
  if (!arg) return;
  char uri[200];
  int n = 0;
  if (sscanf(arg, "%199s %d", uri, &n) != 2) _exit(6);
  _exit(cas_child(uri, n));
}

Test(redis, compare_and_set_counters_from_several_processes_are_exact) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "cas");
  /* the writers are forked before this process starts threads (a store's
   * reader), and start once the counter exists */
  enum { PROCS = 4 };
  const int EACH = getenv("RSTATE_TEST_QUICK") ? 25 : 150;
  char arg[256];
  snprintf(arg, sizeof arg, "%s %d", uri, EACH);
  char self[512];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(len, 0);
  self[len] = 0;
  int go[2];
  cr_assert_eq(pipe(go), 0);
  pid_t kids[PROCS];
  for (int k = 0; k < PROCS; k++) {
    kids[k] = fork();
    cr_assert_geq(kids[k], 0);
    if (!kids[k]) {
      char c;
      close(go[1]);
      if (read(go[0], &c, 1) != 0) _exit(5); /* EOF: go */
      setenv("RSTATE_TEST_CAS", arg, 1);
      execl(self, self, (char *)NULL);
      _exit(7);
    }
  }
  close(go[0]);
  rstate_store *s = open_ok(uri, NULL);
  h_define_ok(s, "counter", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  recorder r;
  rec_init(&r);
  rec_watch1(s, &r, "counter", NULL);
  close(go[1]);
  for (int k = 0; k < PROCS; k++) {
    int st = 0;
    waitpid(kids[k], &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer process %d failed (status %d)", k, st);
  }
  cr_assert_eq(h_get_int(s, "counter"), PROCS * EACH);
  cr_assert_eq(h_version(s, "counter"), (uint64_t)(PROCS * EACH + 1));
  /* the watcher saw every increment, in order, once */
  rec_wait(&r, (size_t)(PROCS * EACH));
  pthread_mutex_lock(&r.lock);
  for (size_t i = 0; i < r.n; i++) {
    cr_assert_eq(r.ev[i].kind, RSTATE_EVENT_CHANGED);
    cr_assert_eq(r.ev[i].new_value.u.i, (int64_t)i + 1, "event %zu", i);
    cr_assert_eq(r.ev[i].version, i + 2);
  }
  pthread_mutex_unlock(&r.lock);
  rstate_close(s);
  rec_free(&r);
}

/* A server's snapshot waits for the store's reader to have passed it every
 * change up to the snapshot's revision; when the reader is held up past
 * request_timeout_ms, the request fails with ETIMEDOUT and a sentence
 * saying so, instead of serving a snapshot its changes would not follow. */
static sem_t lag_in, lag_out;

static int lag_cb(const rstate_event *ev, void *ud) {
  (void)ud;
  if (ev->kind == RSTATE_EVENT_CHANGED && rstate_value_equal(&ev->new_value, &(rstate_value){.kind = RSTATE_INT, .u.i = 100})) {
    sem_post(&lag_in);
    sem_wait(&lag_out); /* holds the store's reader */
  }
  return 0;
}

Test(redis, a_served_snapshot_fails_clearly_when_the_reader_is_behind_past_the_request_timeout) {
  h_redis_start(&primary, NULL);
  rstate_options o = {.request_timeout_ms = 300};
  rstate_store *s = open_ok(h_redis_uri(&primary, "lag"), &o);
  rstate_store *other = open_ok(h_redis_uri(&primary, "lag"), NULL);
  h_define_ok(other, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-redis-lag-%d.sock", (int)getpid());
  rstate_server *srv = NULL;
  int rc = rstate_server_start(&srv, s, uri, NULL);
  cr_assert_eq(rc, RSTATE_OK, "rstate_server_start: %s: %s", rstate_error_name(rc), rstate_last_error());
  sem_init(&lag_in, 0, 0);
  sem_init(&lag_out, 0, 0);
  const char *x = "x";
  rstate_watch_id wid;
  ASSERT_RC(rstate_watch(s, &x, 1, lag_cb, NULL, NULL, &wid), RSTATE_OK);
  rstate_store *c = open_ok(uri, NULL);
  ASSERT_RC(rstate_set_int(other, "x", 100), RSTATE_OK);
  sem_wait(&lag_in);                                     /* s's reader is held in the callback */
  ASSERT_RC(rstate_set_int(other, "x", 101), RSTATE_OK); /* which it cannot read now */
  recorder r;
  rec_init(&r);
  rstate_watch_opts wo = {.include_initial = true, .destroy = rec_destroy};
  rstate_watch_id cid = 0;
  rc = rstate_watch(c, &x, 1, rec_cb, &r, &wo, &cid);
  cr_assert_eq(rc, RSTATE_ETIMEDOUT, "%s: %s", rstate_error_name(rc), rstate_last_error());
  cr_assert(strstr(rstate_last_error(), "WATCH: the store is at revision") &&
                strstr(rstate_last_error(), "reached the server only up to") &&
                strstr(rstate_last_error(), "within 300 ms (request_timeout_ms)"),
            "%s", rstate_last_error());
  sem_post(&lag_out);
  /* once the reader goes on, the same watch works */
  rec_watch1(c, &r, "x", &(rstate_watch_opts){.include_initial = true});
  rec_wait(&r, 1);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_INITIAL);
  cr_assert_eq(r.ev[0].new_value.u.i, 101);
  rstate_close(c);
  rstate_server_stop(srv);
  rstate_close(other);
  rstate_close(s);
  rec_free(&r);
  sem_destroy(&lag_in);
  sem_destroy(&lag_out);
}

/* ---- group commit: several writers' sets in one call ---- */

/* The group Function decides each request alone, in order: one refused
 * does not refuse the others, and each change has its own revision. */
Test(redis, one_call_of_the_group_function_decides_each_request_alone) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "grp");
  rstate_store *s = open_ok(uri, NULL), *w = open_ok(uri, NULL);
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  ASSERT_RC(rstate_set_int(s, "a", 1), RSTATE_OK); /* loads the library when missing */
  recorder r;
  rec_init(&r);
  const char *both[] = {"a", "b"};
  rec_watch(w, &r, both, 2, NULL);
  uint64_t rev = rstate_revision(s);
  rstate__resp *da = h_redis_cmd(primary.port, "HGET", "rs:{grp}:vars", "a", NULL);
  cr_assert(da && da->type == RSTATE_RESP_STRING);
  char defrev_a[24], defrev_b[24];
  unsigned long long v, rv, dr;
  cr_assert_eq(sscanf(da->str, "%llu %llu %*s %*s %llu", &v, &rv, &dr), 3, "%s", da->str);
  snprintf(defrev_a, sizeof defrev_a, "%llu", dr);
  rstate__resp_free(da);
  rstate__resp *db = h_redis_cmd(primary.port, "HGET", "rs:{grp}:vars", "b", NULL);
  cr_assert_eq(sscanf(db->str, "%*s %*s %*s %*s %llu", &dr), 1, "%s", db->str);
  snprintf(defrev_b, sizeof defrev_b, "%llu", dr);
  rstate__resp_free(db);
  /* a := 2; b with a wrong expected version; b := 5; no such variable; a := 2 again (same); a := 3 */
  rstate__resp *rep = h_redis_cmd(primary.port, "FCALL", RSTATE_REDIS_LIB "_sets", "4", "rs:{grp}:meta", "rs:{grp}:defs",
                                  "rs:{grp}:vars", "rs:{grp}:log", "100000", "6",
                                  "t1", "-", "", "1", "a", defrev_a, "0", "i2", "0",
                                  "t2", "-", "", "1", "b", defrev_b, "7", "i9", "0",
                                  "t3", "+grp", "", "1", "b", defrev_b, "0", "i5", "0",
                                  "t4", "-", "", "1", "nosuch", "1", "0", "i1", "0",
                                  "t5", "-", "", "1", "a", defrev_a, "0", "i2", "0",
                                  "t6", "-", "", "1", "a", defrev_a, "3", "i3", "0", NULL);
  cr_assert(rep && rep->type == RSTATE_RESP_ARRAY && rep->n == 6, "%s", rep && rep->str ? rep->str : "no array");
  char r1[24], r2[24], r3[24];
  snprintf(r1, sizeof r1, "%llu", (unsigned long long)rev + 1);
  snprintf(r2, sizeof r2, "%llu", (unsigned long long)rev + 2);
  snprintf(r3, sizeof r3, "%llu", (unsigned long long)rev + 3);
  const rstate__resp *e = rep->elem;
  cr_assert(rstate__resp_is(&e[0].elem[0], "OK") && rstate__resp_is(&e[0].elem[1], r1));
  cr_assert(rstate__resp_is(&e[1].elem[0], "CONFLICT") && rstate__resp_is(&e[1].elem[1], "0") &&
            rstate__resp_is(&e[1].elem[2], "1"));
  cr_assert(rstate__resp_is(&e[2].elem[0], "OK") && rstate__resp_is(&e[2].elem[1], r2));
  cr_assert(rstate__resp_is(&e[3].elem[0], "NOTFOUND"));
  cr_assert(rstate__resp_is(&e[4].elem[0], "SAME"));
  cr_assert(rstate__resp_is(&e[5].elem[0], "OK") && rstate__resp_is(&e[5].elem[1], r3));
  rstate__resp_free(rep);
  /* the store and its watchers: three revisions, one change each, old and new values right */
  cr_assert_eq(rstate_revision(s), rev + 3);
  cr_assert_eq(h_get_int(s, "a"), 3);
  cr_assert_eq(h_version(s, "a"), 4);
  cr_assert_eq(h_get_int(s, "b"), 5);
  cr_assert_eq(h_version(s, "b"), 2);
  rec_wait(&r, 3);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.n, 3);
  cr_assert_str_eq(r.ev[0].name, "a");
  cr_assert(r.ev[0].old_value.u.i == 1 && r.ev[0].new_value.u.i == 2 && r.ev[0].revision == rev + 1);
  cr_assert_str_eq(r.ev[1].name, "b");
  cr_assert(r.ev[1].old_value.u.i == 0 && r.ev[1].new_value.u.i == 5 && r.ev[1].revision == rev + 2);
  cr_assert(r.ev[1].has_source);
  cr_assert_str_eq(r.ev[1].source, "grp");
  cr_assert_str_eq(r.ev[2].name, "a");
  cr_assert(r.ev[2].old_value.u.i == 2 && r.ev[2].new_value.u.i == 3 && r.ev[2].revision == rev + 3);
  cr_assert(r.ev[0].timestamp_ns == r.ev[2].timestamp_ns, "one clock reading per call");
  pthread_mutex_unlock(&r.lock);
  rstate_close(w);
  rstate_close(s);
  rec_free(&r);
}

/* A variable's DEFREV, read from its record in Redis. */
static void defrev_of(int port, const char *vars, const char *name, char out[24]) {
  rstate__resp *d = h_redis_cmd(port, "HGET", vars, name, NULL);
  unsigned long long dr;
  cr_assert(d && d->type == RSTATE_RESP_STRING, "%s: no record", name);
  cr_assert_eq(sscanf(d->str, "%*s %*s %*s %*s %llu", &dr), 1, "%s", d->str);
  snprintf(out, 24, "%llu", dr);
  rstate__resp_free(d);
}

/* One field of the store's head (rs:{S}:meta), "" when absent. */
static void meta_of(int port, const char *meta, const char *field, char *out, size_t size) {
  rstate__resp *m = h_redis_cmd(port, "HGET", meta, field, NULL);
  cr_assert_not_null(m);
  snprintf(out, size, "%s", m->type == RSTATE_RESP_STRING ? m->str : "");
  rstate__resp_free(m);
}

/* The id of the log's last entry, "" when it has none. */
static void log_top(int port, const char *log, char *out, size_t size) {
  rstate__resp *e = h_redis_cmd(port, "XREVRANGE", log, "+", "-", "COUNT", "1", NULL);
  cr_assert(e && e->type == RSTATE_RESP_ARRAY);
  snprintf(out, size, "%s", e->n ? e->elem[0].elem[0].str : "");
  rstate__resp_free(e);
}

/* Redis keeps a function's writes when it raises: a request of a group
 * call that raises (here on a record the library did not write) is
 * answered ERR alone and wrote nothing; the requests before and after it
 * keep their changes and revisions, and the head, the log and the records
 * agree. A call whose arguments do not parse runs nothing. */
Test(redis, a_request_that_raises_in_a_group_call_writes_nothing_and_fails_alone) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "rz");
  rstate_store *s = open_ok(uri, NULL), *w = open_ok(uri, NULL);
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "c", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  ASSERT_RC(rstate_set_int(s, "a", 1), RSTATE_OK);
  recorder r;
  rec_init(&r);
  rec_watch1(w, &r, "*", NULL);
  uint64_t rev = rstate_revision(s);
  char da[24], db[24], dc[24];
  defrev_of(primary.port, "rs:{rz}:vars", "a", da);
  defrev_of(primary.port, "rs:{rz}:vars", "b", db);
  defrev_of(primary.port, "rs:{rz}:vars", "c", dc);
  rstate__resp *good = h_redis_cmd(primary.port, "HGET", "rs:{rz}:vars", "b", NULL);
  cr_assert(good && good->type == RSTATE_RESP_STRING);
  h_redis_ok(primary.port, "HSET", "rs:{rz}:vars", "b", "not a record", NULL);
  /* a := 2; b := 5 (raises); c := 7; set_many a := 3, b := 6 (raises at its item 1, a untouched) */
  rstate__resp *rep = h_redis_cmd(primary.port, "FCALL", RSTATE_REDIS_LIB "_sets", "4", "rs:{rz}:meta", "rs:{rz}:defs",
                                  "rs:{rz}:vars", "rs:{rz}:log", "100000", "4",
                                  "t1", "-", "", "1", "a", da, "0", "i2", "0",
                                  "t2", "-", "", "1", "b", db, "0", "i5", "0",
                                  "t3", "-", "", "1", "c", dc, "0", "i7", "0",
                                  "t4", "-", "", "2", "a", da, "0", "i3", "0", "b", db, "0", "i6", "0", NULL);
  cr_assert(rep && rep->type == RSTATE_RESP_ARRAY && rep->n == 4, "%s", rep && rep->str ? rep->str : "no array");
  char r1[24], r2[24];
  snprintf(r1, sizeof r1, "%llu", (unsigned long long)rev + 1);
  snprintf(r2, sizeof r2, "%llu", (unsigned long long)rev + 2);
  const rstate__resp *e = rep->elem;
  cr_assert(rstate__resp_is(&e[0].elem[0], "OK") && rstate__resp_is(&e[0].elem[1], r1));
  cr_assert(e[1].n == 3 && rstate__resp_is(&e[1].elem[0], "ERR") && rstate__resp_is(&e[1].elem[2], "0"));
  cr_assert_str_eq(e[1].elem[1].str, "ERR the record of b in rs:{rz}:vars is malformed");
  cr_assert(rstate__resp_is(&e[2].elem[0], "OK") && rstate__resp_is(&e[2].elem[1], r2));
  cr_assert(e[3].n == 3 && rstate__resp_is(&e[3].elem[0], "ERR") && rstate__resp_is(&e[3].elem[2], "1"));
  rstate__resp_free(rep);
  /* the head names the last applied change, and it is the log's last entry */
  char mrev[24], mtok[64], top[48], want_top[48];
  meta_of(primary.port, "rs:{rz}:meta", "rev", mrev, sizeof mrev);
  meta_of(primary.port, "rs:{rz}:meta", "tok", mtok, sizeof mtok);
  log_top(primary.port, "rs:{rz}:log", top, sizeof top);
  snprintf(want_top, sizeof want_top, "%s-0", r2);
  cr_assert_str_eq(mrev, r2);
  cr_assert_str_eq(mtok, "t3");
  cr_assert_str_eq(top, want_top);
  /* a call that does not parse (two requests announced, one given) runs nothing */
  rep = h_redis_cmd(primary.port, "FCALL", RSTATE_REDIS_LIB "_sets", "4", "rs:{rz}:meta", "rs:{rz}:defs",
                    "rs:{rz}:vars", "rs:{rz}:log", "100000", "2", "t5", "-", "", "1", "c", dc, "0", "i8", "0", NULL);
  cr_assert(rep && rep->type == RSTATE_RESP_ERROR && strstr(rep->str, "ERR malformed call of " RSTATE_REDIS_LIB "_sets"),
            "%s", rep ? rep->str : "no answer");
  rstate__resp_free(rep);
  cr_assert_eq(rstate_revision(s), rev + 2);
  /* b's record back: the store goes on, from the next revision */
  h_redis_ok(primary.port, "HSET", "rs:{rz}:vars", "b", good->str, NULL);
  rstate__resp_free(good);
  ASSERT_RC(rstate_set_int(s, "b", 9), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), rev + 3);
  cr_assert_eq(h_get_int(s, "a"), 2);
  cr_assert_eq(h_version(s, "a"), 3);
  cr_assert_eq(h_get_int(s, "c"), 7);
  cr_assert_eq(h_version(s, "c"), 2);
  cr_assert_eq(h_version(s, "b"), 2);
  /* the watcher: exactly the applied changes, in order, old and new values right */
  rec_wait(&r, 3);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.n, 3);
  cr_assert(!strcmp(r.ev[0].name, "a") && r.ev[0].kind == RSTATE_EVENT_CHANGED && r.ev[0].old_value.u.i == 1 &&
            r.ev[0].new_value.u.i == 2 && r.ev[0].revision == rev + 1);
  cr_assert(!strcmp(r.ev[1].name, "c") && r.ev[1].kind == RSTATE_EVENT_CHANGED && r.ev[1].old_value.u.i == 0 &&
            r.ev[1].new_value.u.i == 7 && r.ev[1].revision == rev + 2);
  cr_assert(!strcmp(r.ev[2].name, "b") && r.ev[2].kind == RSTATE_EVENT_CHANGED && r.ev[2].old_value.u.i == 0 &&
            r.ev[2].new_value.u.i == 9 && r.ev[2].revision == rev + 3);
  pthread_mutex_unlock(&r.lock);
  rstate_close(w);
  rstate_close(s);
  rec_free(&r);
}

/* Asserts that name's record in Redis is still want (nothing of a refused
 * write reached it). */
static void record_is(int port, const char *vars, const char *name, const char *want) {
  rstate__resp *v = h_redis_cmd(port, "HGET", vars, name, NULL);
  cr_assert_not_null(v);
  if (!want)
    cr_assert_eq(v->type, RSTATE_RESP_NIL, "%s: %s", name, v->str ? v->str : "a record");
  else
    cr_assert(v->type == RSTATE_RESP_STRING && !strcmp(v->str, want), "%s: %s, not %s", name, v->str ? v->str : "none",
              want);
  rstate__resp_free(v);
}

/* Every kind of write (set, set_many, define, undefine) against a store
 * whose log cannot take the entry: a log key of another type, then a log
 * that moved past the store's head. Redis would keep what a function wrote
 * before raising; here each write fails with Redis's sentence and leaves
 * the records, the definitions, the head and the log as they were. Once
 * the log is put back the store goes on from the next revision, and a
 * watcher that followed it all sees exactly the changes applied. */
Test(redis, writes_the_log_refuses_change_nothing) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "kt");
  rstate_store *s = open_ok(uri, NULL), *w = open_ok(uri, NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  uint64_t rev = rstate_revision(s);
  rstate__resp *xr = h_redis_cmd(primary.port, "HGET", "rs:{kt}:vars", "x", NULL);
  rstate__resp *yr = h_redis_cmd(primary.port, "HGET", "rs:{kt}:vars", "y", NULL);
  cr_assert(xr && yr && xr->type == RSTATE_RESP_STRING && yr->type == RSTATE_RESP_STRING);
  char mtok[64], top[48];
  meta_of(primary.port, "rs:{kt}:meta", "tok", mtok, sizeof mtok);
  log_top(primary.port, "rs:{kt}:log", top, sizeof top);
  recorder r;
  rec_init(&r);
  rec_watch1(w, &r, "*", NULL);
  char sentence[256];
  for (int fault = 0; fault < 2; fault++) {
    char ahead[48];
    if (fault == 0) { /* the log replaced by a string */
      h_redis_ok(primary.port, "RENAME", "rs:{kt}:log", "rs:{kt}:log.keep", NULL);
      h_redis_ok(primary.port, "SET", "rs:{kt}:log", "not a stream", NULL);
      snprintf(sentence, sizeof sentence, "%s: Redis answered: WRONGTYPE Operation against a key holding the wrong kind of value", uri);
    } else { /* the log's last id moved past the head */
      snprintf(ahead, sizeof ahead, "%llu-0", (unsigned long long)rev + 1);
      h_redis_ok(primary.port, "XSETID", "rs:{kt}:log", ahead, NULL);
      snprintf(sentence, sizeof sentence,
               "%s: Redis answered: ERR The ID specified in XADD is equal or smaller than the target stream top item", uri);
    }
    ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_EPROTO);
    cr_assert(!strncmp(rstate_last_error(), "x: not applied: ", 16) && !strcmp(rstate_last_error() + 16, sentence),
              "fault %d: %s", fault, rstate_last_error());
    rstate_assign both[] = {{"x", rstate_int(3)}, {"y", rstate_int(4)}};
    size_t failed = 0;
    ASSERT_RC(rstate_set_many(s, both, 2, NULL, &failed), RSTATE_EPROTO);
    cr_assert(!strncmp(rstate_last_error(), "set_many: not applied: ", 23) && !strcmp(rstate_last_error() + 23, sentence),
              "fault %d: %s", fault, rstate_last_error());
    cr_assert_eq(failed, SIZE_MAX, "no single item is to blame");
    ASSERT_RC(h_define(s, "z", RSTATE_TYPE_INTEGER, rstate_int(0), NULL), RSTATE_EPROTO);
    cr_assert(!strncmp(rstate_last_error(), "z: ", 3) && strstr(rstate_last_error(), sentence),
              "fault %d: %s", fault, rstate_last_error());
    ASSERT_RC(rstate_undefine(s, "y"), RSTATE_EPROTO);
    cr_assert(!strncmp(rstate_last_error(), "y: ", 3) && strstr(rstate_last_error(), sentence),
              "fault %d: %s", fault, rstate_last_error());
    /* nothing of them was written */
    record_is(primary.port, "rs:{kt}:vars", "x", xr->str);
    record_is(primary.port, "rs:{kt}:vars", "y", yr->str);
    record_is(primary.port, "rs:{kt}:vars", "z", NULL);
    rstate__resp *zd = h_redis_cmd(primary.port, "HEXISTS", "rs:{kt}:defs", "z", NULL);
    rstate__resp *yd = h_redis_cmd(primary.port, "HEXISTS", "rs:{kt}:defs", "y", NULL);
    cr_assert(zd && zd->integer == 0 && yd && yd->integer == 1, "fault %d: the definitions changed", fault);
    rstate__resp_free(zd);
    rstate__resp_free(yd);
    char now_rev[24], now_tok[64];
    meta_of(primary.port, "rs:{kt}:meta", "rev", now_rev, sizeof now_rev);
    meta_of(primary.port, "rs:{kt}:meta", "tok", now_tok, sizeof now_tok);
    cr_assert_eq(strtoull(now_rev, NULL, 10), rev, "fault %d: the head moved to %s", fault, now_rev);
    cr_assert_str_eq(now_tok, mtok);
    if (fault == 0) {
      h_redis_ok(primary.port, "DEL", "rs:{kt}:log", NULL);
      h_redis_ok(primary.port, "RENAME", "rs:{kt}:log.keep", "rs:{kt}:log", NULL);
    } else {
      h_redis_ok(primary.port, "XSETID", "rs:{kt}:log", top, NULL);
    }
    char now_top[48];
    log_top(primary.port, "rs:{kt}:log", now_top, sizeof now_top);
    cr_assert_str_eq(now_top, top, "fault %d: the log took an entry", fault);
  }
  rstate__resp_free(xr);
  rstate__resp_free(yr);
  /* the store goes on from the next revision, and the watcher saw just that */
  ASSERT_RC(rstate_set_int(s, "x", 5), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "y", 6), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), rev + 2);
  cr_assert_eq(h_version(s, "x"), 3);
  cr_assert_eq(h_version(s, "y"), 2);
  rec_wait(&r, 2);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.n, 2);
  cr_assert(!strcmp(r.ev[0].name, "x") && r.ev[0].kind == RSTATE_EVENT_CHANGED && r.ev[0].old_value.u.i == 1 &&
            r.ev[0].new_value.u.i == 5 && r.ev[0].version == 3 && r.ev[0].revision == rev + 1);
  cr_assert(!strcmp(r.ev[1].name, "y") && r.ev[1].kind == RSTATE_EVENT_CHANGED && r.ev[1].old_value.u.i == 0 &&
            r.ev[1].new_value.u.i == 6 && r.ev[1].version == 2 && r.ev[1].revision == rev + 2);
  pthread_mutex_unlock(&r.lock);
  rstate_close(w);
  rstate_close(s);
  rec_free(&r);
}

/* The head, the log's last entry and every record of the store "acl", as a
 * privileged connection reads them. */
typedef struct acl_state {
  char rev[24], tok[64], top[48];
  rstate__resp *vars, *defs;
} acl_state;

static void acl_read(int port, acl_state *a) {
  meta_of(port, "rs:{acl}:meta", "rev", a->rev, sizeof a->rev);
  meta_of(port, "rs:{acl}:meta", "tok", a->tok, sizeof a->tok);
  log_top(port, "rs:{acl}:log", a->top, sizeof a->top);
  a->vars = h_redis_cmd(port, "HGETALL", "rs:{acl}:vars", NULL);
  a->defs = h_redis_cmd(port, "HGETALL", "rs:{acl}:defs", NULL);
  cr_assert(a->vars && a->vars->type == RSTATE_RESP_ARRAY && a->defs && a->defs->type == RSTATE_RESP_ARRAY);
}

static bool resp_same(const rstate__resp *a, const rstate__resp *b) {
  if (a->n != b->n) return false;
  for (size_t i = 0; i < a->n; i++)
    if (a->elem[i].len != b->elem[i].len || memcmp(a->elem[i].str, b->elem[i].str, a->elem[i].len)) return false;
  return true;
}

/* Asserts that nothing of the store changed since was: head, log, records, definitions. */
static void acl_unchanged(int port, const acl_state *was, const char *after) {
  acl_state now;
  acl_read(port, &now);
  cr_assert_str_eq(now.rev, was->rev, "%s: the head moved from revision %s to %s", after, was->rev, now.rev);
  cr_assert_str_eq(now.tok, was->tok, "%s: the head's token changed", after);
  cr_assert_str_eq(now.top, was->top, "%s: the log took an entry (%s, was %s)", after, now.top, was->top);
  cr_assert(resp_same(now.vars, was->vars), "%s: a record changed", after);
  cr_assert(resp_same(now.defs, was->defs), "%s: a definition changed", after);
  rstate__resp_free(now.vars);
  rstate__resp_free(now.defs);
}

/* Expects rc EPERM and the sentence "PREFIX" + the store's uri + ": Redis refused: NOPERM this user may not run
 * CMD on KEY, which WHAT writes: nothing was written". */
static void refused_as(int rc, const char *prefix, const char *uri, const char *cmd, const char *key, const char *what) {
  char want[512];
  snprintf(want, sizeof want, "%s%s: Redis refused: NOPERM this user may not run %s on %s, which %s writes: nothing was written",
           prefix, uri, cmd, key, what);
  cr_assert_eq(rc, RSTATE_EPERM, "%s: %s (%s)", prefix, rstate_error_name(rc), rstate_last_error());
  cr_assert_str_eq(rstate_last_error(), want);
}

/* A Redis user allowed to call the library's functions but not every write
 * they make (here: HSET and HDEL only on the head, or no XADD), or not
 * every read (no HGET: refused before any write). Redis checks
 * the ACL at each command a function runs and keeps what was written before
 * one it refuses, so each write checks its own commands first: it fails with
 * RSTATE_EPERM naming the command and the key refused, and the head, the
 * log, the records and the definitions are as they were. A set that changes
 * nothing writes nothing and needs no write permission. Writes of a user
 * allowed them all go on from the next revision, and a watcher sees exactly
 * those. */
Test(redis, a_user_whose_acl_refuses_a_write_fails_before_writing_anything) {
  h_redis_start(&primary, NULL);
  /* "partial": everything on the store's keys, but HSET and HDEL on the head alone; "nolog": no XADD */
  h_redis_ok(primary.port, "ACL", "SETUSER", "partial", "on", ">pw", "~rs:{acl}:*", "+@all", "-hset", "-hdel",
             "(+hset +hdel ~rs:{acl}:meta)", NULL);
  h_redis_ok(primary.port, "ACL", "SETUSER", "nolog", "on", ">pw", "~rs:{acl}:*", "+@all", "-xadd", NULL);
  h_redis_ok(primary.port, "ACL", "SETUSER", "noread", "on", ">pw", "~rs:{acl}:*", "+@all", "-hget", NULL);
  char uri[160];
  snprintf(uri, sizeof uri, "%s", h_redis_uri(&primary, "acl"));
  char where[160];
  snprintf(where, sizeof where, "redis:%s/acl", primary.hostport);
  rstate_store *s = open_ok(uri, NULL), *w = open_ok(uri, NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  uint64_t rev = rstate_revision(s);
  recorder r;
  rec_init(&r);
  rec_watch1(w, &r, "*", NULL);
  acl_state was;
  acl_read(primary.port, &was);

  rstate_options po = {.token = "partial:pw"}, no = {.token = "nolog:pw"};
  rstate_store *p = open_ok(uri, &po), *n = open_ok(uri, &no);
  /* reads need no write */
  cr_assert_eq(h_get_int(p, "x"), 1);
  cr_assert_eq(h_get_int(n, "x"), 1);
  ASSERT_RC(rstate_set_int(p, "x", 1), RSTATE_OK); /* changes nothing: writes nothing */
  refused_as(rstate_set_int(p, "x", 2), "x: not applied: ", where, "HSET", "rs:{acl}:vars", "a set");
  acl_unchanged(primary.port, &was, "set");
  rstate_assign both[] = {{"x", rstate_int(3)}, {"y", rstate_int(4)}};
  size_t failed = 0;
  refused_as(rstate_set_many(p, both, 2, NULL, &failed), "set_many: not applied: ", where, "HSET", "rs:{acl}:vars",
             "a set");
  cr_assert_eq(failed, SIZE_MAX, "no single item is to blame");
  acl_unchanged(primary.port, &was, "set_many");
  refused_as(h_define(p, "z", RSTATE_TYPE_INTEGER, rstate_int(0), NULL), "z: ", where, "HSET", "rs:{acl}:defs",
             "a define");
  acl_unchanged(primary.port, &was, "define");
  refused_as(rstate_undefine(p, "y"), "y: ", where, "HDEL", "rs:{acl}:defs", "an undefine");
  acl_unchanged(primary.port, &was, "undefine");
  refused_as(rstate_set_int(n, "x", 5), "x: not applied: ", where, "XADD", "rs:{acl}:log", "a set");
  refused_as(rstate_undefine(n, "y"), "y: ", where, "XADD", "rs:{acl}:log", "an undefine");
  acl_unchanged(primary.port, &was, "no XADD");
  /* one group call of that user: the set that changes nothing answers SAME, each of the others NOPERM alone */
  {
    char dx[24], dy[24], tcp[64];
    defrev_of(primary.port, "rs:{acl}:vars", "x", dx);
    defrev_of(primary.port, "rs:{acl}:vars", "y", dy);
    snprintf(tcp, sizeof tcp, "tcp:%s", primary.hostport);
    rstate__addr addr;
    cr_assert_eq(rstate__addr_parse(&addr, tcp, "test"), RSTATE_OK);
    rstate__redis_conn c;
    rstate__redis_conn_init(&c);
    cr_assert_eq(rstate__redis_connect(&c, &addr, tcp, "partial", "pw", 1000), RSTATE_OK, "%s", rstate_last_error());
    const char *call[] = {"FCALL", RSTATE_REDIS_LIB "_sets", "4", "rs:{acl}:meta", "rs:{acl}:defs", "rs:{acl}:vars",
                          "rs:{acl}:log", "100000", "3",
                          "t1", "-", "", "1", "x", dx, "0", "i1", "0",
                          "t2", "-", "", "1", "x", dx, "0", "i8", "0",
                          "t3", "-", "", "1", "y", dy, "0", "i9", "0"};
    rstate__resp *rep = NULL;
    cr_assert_eq(rstate__redis_command(&c, tcp, 5000, &rep, (int)(sizeof call / sizeof *call), call, NULL), RSTATE_OK);
    cr_assert(rep->type == RSTATE_RESP_ARRAY && rep->n == 3, "%s", rep->str ? rep->str : "not 3 answers");
    cr_assert(rep->elem[0].n == 1 && rstate__resp_is(&rep->elem[0].elem[0], "SAME"));
    for (size_t i = 1; i < 3; i++) {
      cr_assert(rep->elem[i].n == 2 && rstate__resp_is(&rep->elem[i].elem[0], "ERR"), "request %zu", i);
      cr_assert_str_eq(rep->elem[i].elem[1].str,
                       "NOPERM this user may not run HSET on rs:{acl}:vars, which a set writes: nothing was written");
    }
    rstate__resp_free(rep);
    rstate__redis_conn_free(&c);
    acl_unchanged(primary.port, &was, "group call");
  }
  /* a read refused inside a function raises before any write: Redis's own
   * sentence (its words differ between 7.0 and 7.2), RSTATE_EPERM too */
  rstate_options ro = {.token = "noread:pw"};
  rstate_store *q = open_ok(uri, &ro);
  int rc = rstate_set_int(q, "x", 7);
  cr_assert(rc == RSTATE_EPERM && strstr(rstate_last_error(), "Redis refused: ERR "), "%s: %s", rstate_error_name(rc),
            rstate_last_error());
  rc = rstate_undefine(q, "y");
  cr_assert(rc == RSTATE_EPERM && !strncmp(rstate_last_error(), "y: ", 3) &&
                strstr(rstate_last_error(), "Redis refused: ERR "),
            "%s: %s", rstate_error_name(rc), rstate_last_error());
  acl_unchanged(primary.port, &was, "no HGET");
  rstate_close(q);
  rstate_close(n);
  rstate_close(p);
  rstate__resp_free(was.vars);
  rstate__resp_free(was.defs);

  /* a writer allowed everything goes on from the next revision; the watcher saw only that */
  ASSERT_RC(rstate_set_int(s, "x", 6), RSTATE_OK);
  cr_assert_eq(rstate_revision(s), rev + 1);
  cr_assert_eq(h_version(s, "x"), 3);
  rec_wait(&r, 1);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.n, 1);
  cr_assert(!strcmp(r.ev[0].name, "x") && r.ev[0].kind == RSTATE_EVENT_CHANGED && r.ev[0].old_value.u.i == 1 &&
            r.ev[0].new_value.u.i == 6 && r.ev[0].revision == rev + 1);
  pthread_mutex_unlock(&r.lock);
  rstate_close(w);
  rstate_close(s);
  rec_free(&r);
}

/* Several writers' sets in one group call, one of them raising inside the
 * Function (the record of its variable was overwritten by someone else
 * after the writer read its definition): that writer alone gets the error,
 * the others their changes, with consecutive revisions, and a watcher sees
 * exactly those changes. The call is made up deterministically: Redis is
 * paused (CLIENT PAUSE WRITE) while the overwrite waits in Redis, then the
 * first writer's call, then the others' requests queue one by one behind
 * it; unpaused, Redis runs the overwrite, the first call, then the rest
 * as one call (Redis's SLOWLOG shows it). */
typedef struct cw_writer {
  pthread_t th;
  rstate_store *s;
  const char *name;
  int64_t value;
  int rc;
  char sentence[512];
} cw_writer;

static void *cw_write(void *arg) {
  cw_writer *c = arg;
  c->rc = rstate_set_int(c->s, c->name, c->value);
  snprintf(c->sentence, sizeof c->sentence, "%s", c->rc ? rstate_last_error() : "");
  return NULL;
}

static void *cw_overwrite(void *arg) {
  rstate__resp *rep = h_redis_cmd(*(int *)arg, "HSET", "rs:{cw}:vars", "bad", "not a record", NULL);
  rstate__resp_free(rep);
  return NULL;
}

/* Waits (10 s at most) until n clients of the server are held by CLIENT
 * PAUSE with cmd as their command. */
static void wait_paused(int port, const char *cmd, int n) {
  char want[32];
  snprintf(want, sizeof want, " cmd=%s ", cmd);
  for (int i = 0; i < 1000; i++) {
    rstate__resp *l = h_redis_cmd(port, "CLIENT", "LIST", NULL);
    cr_assert(l && l->type == RSTATE_RESP_STRING);
    int k = 0;
    for (const char *p = l->str; (p = strstr(p, want)); p++) {
      const char *line = p;
      while (line > l->str && line[-1] != '\n') line--;
      if (strstr(line, " flags=b ") && strstr(line, " flags=b ") < p) k++;
    }
    rstate__resp_free(l);
    if (k >= n) return;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL); /* polling another process */
  }
  cr_assert_fail("no %d paused %s within 10 s", n, cmd);
}

/* Waits (10 s at most) until the store's group commit holds n requests not sent yet. */
static void wait_queued(rstate_store *s, size_t n) {
  rstate__redis_commit *q = rstate__redis_commit_of(((struct rstate_store *)s)->backend);
  for (int i = 0; i < 10000; i++) {
    if (rstate__redis_commit_queued(q) >= n) return;
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL); /* the queue has no one to tell */
  }
  cr_assert_fail("the group commit did not hold %zu requests within 10 s", n);
}

Test(redis, a_set_that_raises_in_a_group_call_of_several_writers_fails_alone) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "cw");
  rstate_store *a = open_ok(uri, NULL), *w = open_ok(uri, NULL), *x = open_ok(uri, NULL);
  const char *names[] = {"own0", "own1", "bad", "own2", "own3"};
  for (int i = 0; i < 5; i++) h_define_ok(a, names[i], RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  recorder r;
  rec_init(&r);
  rec_watch1(x, &r, "*", NULL);
  uint64_t rev = rstate_revision(a);
  rstate__resp *good = h_redis_cmd(primary.port, "HGET", "rs:{cw}:vars", "bad", NULL);
  cr_assert(good && good->type == RSTATE_RESP_STRING);
  h_redis_ok(primary.port, "CONFIG", "SET", "slowlog-log-slower-than", "0", NULL);
  h_redis_ok(primary.port, "CONFIG", "SET", "slowlog-max-len", "1000", NULL);
  h_redis_ok(primary.port, "SLOWLOG", "RESET", NULL);
  h_redis_ok(primary.port, "CLIENT", "PAUSE", "30000", "WRITE", NULL);
  pthread_t over;
  cr_assert_eq(pthread_create(&over, NULL, cw_overwrite, &primary.port), 0);
  wait_paused(primary.port, "hset", 1);
  cw_writer c[5];
  for (int i = 0; i < 5; i++) {
    c[i] = (cw_writer){.s = w, .name = names[i], .value = 10 + i};
    cr_assert_eq(pthread_create(&c[i].th, NULL, cw_write, &c[i]), 0);
    if (i == 0)
      wait_paused(primary.port, "fcall", 1); /* w's first call (it loads the library when missing) */
    else
      wait_queued(w, (size_t)i);
  }
  h_redis_ok(primary.port, "CLIENT", "UNPAUSE", NULL);
  pthread_join(over, NULL);
  for (int i = 0; i < 5; i++) pthread_join(c[i].th, NULL);
  /* one call carried the four queued requests */
  rstate__resp *sl = h_redis_cmd(primary.port, "SLOWLOG", "GET", "1000", NULL);
  cr_assert(sl && sl->type == RSTATE_RESP_ARRAY);
  int grouped = 0;
  for (size_t i = 0; i < sl->n; i++) {
    const rstate__resp *argv = &sl->elem[i].elem[3];
    if (argv->n > 8 && rstate__resp_is(&argv->elem[1], RSTATE_REDIS_LIB "_sets") && rstate__resp_is(&argv->elem[8], "4"))
      grouped++;
  }
  rstate__resp_free(sl);
  cr_assert_eq(grouped, 1, "one call of four requests");
  /* bad's writer alone failed, with the sentence; nothing of it was written */
  char want[256];
  snprintf(want, sizeof want, "bad: not applied: %s: Redis answered: ERR the record of bad in rs:{cw}:vars is malformed",
           uri);
  for (int i = 0; i < 5; i++) {
    if (i == 2) continue;
    cr_assert_eq(c[i].rc, RSTATE_OK, "%s: %s", names[i], c[i].sentence);
  }
  cr_assert_eq(c[2].rc, RSTATE_EPROTO, "%s", c[2].sentence);
  cr_assert_str_eq(c[2].sentence, want);
  record_is(primary.port, "rs:{cw}:vars", "bad", "not a record");
  cr_assert_eq(rstate_revision(a), rev + 4);
  for (int i = 0; i < 5; i++)
    if (i != 2) cr_assert_eq(h_version(a, names[i]), 2, "%s", names[i]);
  /* the watcher: the four changes, one revision each, in the order of the requests */
  rec_wait(&r, 4);
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.n, 4);
  const int order[] = {0, 1, 3, 4};
  for (int k = 0; k < 4; k++) {
    rec_event *e = &r.ev[k];
    cr_assert_str_eq(e->name, names[order[k]]);
    cr_assert(e->kind == RSTATE_EVENT_CHANGED && e->old_value.u.i == 0 && e->new_value.u.i == 10 + order[k] &&
                  e->version == 2 && e->revision == rev + 1 + (uint64_t)k,
              "event %d: %s %lld -> %lld, version %llu, revision %llu", k, e->name, (long long)e->old_value.u.i,
              (long long)e->new_value.u.i, (unsigned long long)e->version, (unsigned long long)e->revision);
  }
  pthread_mutex_unlock(&r.lock);
  /* in a set_many, the item whose record raised is the one to blame, and the batch changes nothing */
  rstate_assign two[] = {{"own0", rstate_int(20)}, {"bad", rstate_int(21)}};
  size_t failed = 0;
  ASSERT_RC(rstate_set_many(w, two, 2, NULL, &failed), RSTATE_EPROTO);
  cr_assert_str_eq(rstate_last_error(), want);
  cr_assert_eq(failed, 1);
  cr_assert_eq(h_version(a, "own0"), 2);
  cr_assert_eq(rstate_revision(a), rev + 4);
  /* bad's record back: the store goes on */
  h_redis_ok(primary.port, "HSET", "rs:{cw}:vars", "bad", good->str, NULL);
  rstate__resp_free(good);
  ASSERT_RC(rstate_set_int(w, "bad", 7), RSTATE_OK);
  cr_assert_eq(rstate_revision(a), rev + 5);
  cr_assert_eq(h_version(a, "bad"), 2);
  rec_wait(&r, 5);
  pthread_mutex_lock(&r.lock);
  cr_assert(!strcmp(r.ev[4].name, "bad") && r.ev[4].old_value.u.i == 0 && r.ev[4].new_value.u.i == 7 &&
            r.ev[4].revision == rev + 5);
  pthread_mutex_unlock(&r.lock);
  rstate_close(x);
  rstate_close(w);
  rstate_close(a);
  rec_free(&r);
}

/* A group call that finds the library gone (FUNCTION FLUSH, or a
 * FUNCTION DELETE) ran nothing: its sets are sent again once the library
 * is loaded, each applied once. */
Test(redis, sets_load_the_library_again_when_it_is_gone) {
  h_redis_start(&primary, NULL);
  rstate_store *s = open_ok(h_redis_uri(&primary, "flushfn"), NULL);
  h_define_ok(s, "n", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  ASSERT_RC(rstate_set_int(s, "n", 1), RSTATE_OK);
  h_redis_ok(primary.port, "FUNCTION", "FLUSH", NULL);
  ASSERT_RC(rstate_set_int(s, "n", 2), RSTATE_OK);
  cr_assert_eq(h_get_int(s, "n"), 2);
  cr_assert_eq(h_version(s, "n"), 3, "each set applied once");
  h_redis_ok(primary.port, "FUNCTION", "FLUSH", NULL);
  rstate_assign two[] = {{"n", rstate_int(3)}};
  ASSERT_RC(rstate_set_many(s, two, 1, NULL, NULL), RSTATE_OK);
  cr_assert_eq(h_version(s, "n"), 4);
  rstate_close(s);
}

/* Several threads writing through one store: their sets share calls and
 * the connection; every watcher sees every change of each variable in
 * order, once, with the right old and new values, and refused sets keep
 * the codes and sentences of a mem: store. */
enum { GC_THREADS = 4 };
static rstate_store *gc_store, *gc_mem;
static int gc_each;

static void *gc_writer(void *arg) {
  int k = (int)(intptr_t)arg;
  char own[16];
  snprintf(own, sizeof own, "own%d", k);
  for (int i = 1; i <= gc_each; i++) {
    int rc = rstate_set_int(gc_store, own, i);
    if (rc) return (void *)"own set failed";
    if ((rc = rstate_set_int(gc_store, "shared", (int64_t)k * 1000000 + i))) return (void *)"shared set failed";
    if (i % 5 == 0) { /* refused sets, between the others */
      rc = rstate_set_int(gc_store, "small", 1000 + i);
      char mine[512];
      snprintf(mine, sizeof mine, "%s", rstate_last_error());
      if (rc != RSTATE_ECONSTRAINT) return (void *)"out of range: not ECONSTRAINT";
      static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
      pthread_mutex_lock(&mem_lock);
      int mrc = rstate_set_int(gc_mem, "small", 1000 + i);
      bool same = mrc == rc && !strcmp(mine, rstate_last_error());
      pthread_mutex_unlock(&mem_lock);
      if (!same) return (void *)"out of range: not mem:'s sentence";
      rc = rstate_set_if(gc_store, own, &(rstate_value){.kind = RSTATE_INT, .u.i = -1}, 1, NULL);
      if (rc != RSTATE_ECONFLICT) return (void *)"set_if: not ECONFLICT";
      char want[128];
      snprintf(want, sizeof want, "%s: version is %d, not the expected 1", own, i + 1);
      if (strcmp(rstate_last_error(), want)) return (void *)"set_if: not the sentence";
    }
  }
  return NULL;
}

/* Checks one variable's events in r: CHANGED, versions first+1, first+2,
 * ..., each old value the previous new value, revisions increasing. */
static size_t gc_check_chain(recorder *r, const char *name, int64_t first_old) {
  size_t n = 0;
  int64_t last = first_old;
  uint64_t version = 1, revision = 0;
  for (size_t i = 0; i < r->n; i++) {
    rec_event *e = &r->ev[i];
    if (strcmp(e->name, name)) continue;
    cr_assert_eq(e->kind, RSTATE_EVENT_CHANGED, "%s event %zu", name, n);
    cr_assert_eq(e->old_value.u.i, last, "%s event %zu: old %lld, expected %lld", name, n, (long long)e->old_value.u.i,
                 (long long)last);
    cr_assert_eq(e->version, version + 1, "%s event %zu: version %llu after %llu", name, n,
                 (unsigned long long)e->version, (unsigned long long)version);
    cr_assert_gt(e->revision, revision, "%s event %zu: revision %llu after %llu", name, n,
                 (unsigned long long)e->revision, (unsigned long long)revision);
    last = e->new_value.u.i, version = e->version, revision = e->revision;
    n++;
  }
  return n;
}

Test(redis, concurrent_writers_share_calls_and_every_watcher_sees_every_change_in_order) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "gc");
  gc_each = getenv("RSTATE_TEST_QUICK") ? 40 : 300;
  gc_store = open_ok(uri, NULL);
  cr_assert_eq(rstate_open(&gc_mem, "mem:", NULL), RSTATE_OK);
  rstate_store *b = open_ok(uri, NULL);
  rstate_constraints small = {.min = rstate_int(0), .max = rstate_int(100)};
  h_define_ok(gc_store, "shared", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(gc_store, "small", RSTATE_TYPE_INTEGER, rstate_int(0), &small);
  h_define_ok(gc_mem, "small", RSTATE_TYPE_INTEGER, rstate_int(0), &small);
  for (int k = 0; k < GC_THREADS; k++) {
    char own[16];
    snprintf(own, sizeof own, "own%d", k);
    h_define_ok(gc_store, own, RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  }
  recorder all, one, local;
  rec_init(&all);
  rec_init(&one);
  rec_init(&local);
  rec_watch1(b, &all, "*", NULL);           /* another client, every variable */
  rec_watch1(b, &one, "shared", NULL);      /* another client, one variable */
  rec_watch1(gc_store, &local, "own*", NULL); /* the writers' own store */
  uint64_t rev0 = rstate_revision(gc_store);
  pthread_t th[GC_THREADS];
  for (int k = 0; k < GC_THREADS; k++) cr_assert_eq(pthread_create(&th[k], NULL, gc_writer, (void *)(intptr_t)k), 0);
  for (int k = 0; k < GC_THREADS; k++) {
    void *why = NULL;
    pthread_join(th[k], &why);
    cr_assert_null(why, "writer %d: %s", k, (const char *)why);
  }
  size_t changes = (size_t)GC_THREADS * (size_t)gc_each * 2;
  cr_assert_eq(rstate_revision(gc_store), rev0 + changes, "one revision per change");
  rec_wait(&all, changes);
  rec_wait(&one, changes / 2);
  rec_wait(&local, changes / 2);
  pthread_mutex_lock(&all.lock);
  cr_assert_eq(all.n, changes);
  for (size_t i = 0; i < all.n; i++) /* every revision once, in order */
    cr_assert_eq(all.ev[i].revision, rev0 + 1 + i, "event %zu: revision %llu", i, (unsigned long long)all.ev[i].revision);
  cr_assert_eq(gc_check_chain(&all, "shared", 0), changes / 2);
  for (int k = 0; k < GC_THREADS; k++) {
    char own[16];
    snprintf(own, sizeof own, "own%d", k);
    cr_assert_eq(gc_check_chain(&all, own, 0), (size_t)gc_each);
    int64_t want = 1; /* each thread's own values in its order */
    for (size_t i = 0; i < all.n; i++)
      if (!strcmp(all.ev[i].name, own)) cr_assert_eq(all.ev[i].new_value.u.i, want++);
  }
  pthread_mutex_unlock(&all.lock);
  pthread_mutex_lock(&one.lock);
  cr_assert_eq(gc_check_chain(&one, "shared", 0), changes / 2);
  pthread_mutex_unlock(&one.lock);
  pthread_mutex_lock(&local.lock);
  for (int k = 0; k < GC_THREADS; k++) {
    char own[16];
    snprintf(own, sizeof own, "own%d", k);
    cr_assert_eq(gc_check_chain(&local, own, 0), (size_t)gc_each);
  }
  pthread_mutex_unlock(&local.lock);
  cr_assert_eq(h_get_int(gc_store, "small"), 0);
  rstate_close(b);
  rstate_close(gc_store);
  rstate_close(gc_mem);
  rec_free(&all);
  rec_free(&one);
  rec_free(&local);
}

/* A store nobody watches leaves the log alone; its first watch (or a watch
 * after the last one went) catches up first: from a snapshot when the
 * store moved far (over 1,000 revisions), else from the log. */
Test(redis, a_store_without_watches_catches_up_for_its_next_watch) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "rest");
  rstate_store *w = open_ok(uri, NULL), *x = open_ok(uri, NULL);
  h_define_ok(x, "n", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int i = 1; i <= 1200; i++) ASSERT_RC(rstate_set_int(x, "n", i), RSTATE_OK);
  recorder r;
  rec_init(&r);
  rstate_watch_id id = rec_watch1(w, &r, "n", &(rstate_watch_opts){.include_initial = true});
  rec_wait(&r, 1);
  cr_assert_eq(r.ev[0].kind, RSTATE_EVENT_INITIAL);
  cr_assert_eq(r.ev[0].new_value.u.i, 1200);
  cr_assert_eq(r.ev[0].version, 1201);
  ASSERT_RC(rstate_set_int(x, "n", 1201), RSTATE_OK);
  rec_wait(&r, 2);
  cr_assert_eq(r.ev[1].kind, RSTATE_EVENT_CHANGED);
  cr_assert(r.ev[1].old_value.u.i == 1200 && r.ev[1].new_value.u.i == 1201);
  ASSERT_RC(rstate_unwatch(w, id), RSTATE_OK);
  ASSERT_RC(rstate_set_int(x, "n", 1202), RSTATE_OK);
  ASSERT_RC(rstate_set_int(x, "n", 1203), RSTATE_OK);
  recorder r2;
  rec_init(&r2);
  rec_watch1(w, &r2, "n", &(rstate_watch_opts){.include_initial = true});
  ASSERT_RC(rstate_set_int(x, "n", 1204), RSTATE_OK);
  rec_wait(&r2, 2);
  pthread_mutex_lock(&r2.lock);
  cr_assert_eq(r2.n, 2);
  cr_assert_eq(r2.ev[0].kind, RSTATE_EVENT_INITIAL);
  cr_assert_eq(r2.ev[0].new_value.u.i, 1203);
  cr_assert_eq(r2.ev[1].kind, RSTATE_EVENT_CHANGED);
  cr_assert(r2.ev[1].old_value.u.i == 1203 && r2.ev[1].new_value.u.i == 1204 && r2.ev[1].version == 1205);
  pthread_mutex_unlock(&r2.lock);
  rstate_close(x);
  rstate_close(w);
  rec_free(&r);
  rec_free(&r2);
}

/* ---- gaps: a trimmed log, a flushed store ---- */

static sem_t entered, release;
static recorder held;

/* Records, and holds the reader inside the first CHANGED until released. */
static int hold_first(const rstate_event *ev, void *ud) {
  static int calls;
  rec_cb(ev, ud);
  if (ev->kind == RSTATE_EVENT_CHANGED && calls++ == 0) {
    sem_post(&entered);
    sem_wait(&release);
  }
  return RSTATE_CONTINUE;
}

Test(redis, a_log_trimmed_past_a_watcher_gives_resync_with_the_changes_it_spans) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "trim");
  rstate_store *w = open_ok(uri, NULL), *s = open_ok(uri, NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  sem_init(&entered, 0, 0);
  sem_init(&release, 0, 0);
  rec_init(&held);
  const char *names[] = {"x"};
  rstate_watch_id id;
  rstate_watch_opts o = {.destroy = rec_destroy};
  ASSERT_RC(rstate_watch(w, names, 1, hold_first, &held, &o, &id), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  uint64_t r1 = h_info(s, "x").revision;
  sem_wait(&entered); /* the watcher's reader is inside the callback of x = 1 */
  for (int v = 2; v <= 6; v++) ASSERT_RC(rstate_set_int(s, "x", v), RSTATE_OK);
  /* the log loses r1+1 .. r1+3: the reader finds r1+4 after r1 */
  char minid[32];
  snprintf(minid, sizeof minid, "%llu-0", (unsigned long long)r1 + 4);
  h_redis_ok(primary.port, "XTRIM", "rs:{trim}:log", "MINID", minid, NULL);
  sem_post(&release);
  rec_wait(&held, 2);
  pthread_mutex_lock(&held.lock);
  cr_assert_eq(held.n, 2, "%zu events", held.n);
  rec_event *e = &held.ev[1];
  cr_assert_eq(e->kind, RSTATE_EVENT_RESYNC);
  cr_assert_eq(e->old_value.u.i, 1);
  cr_assert_eq(e->new_value.u.i, 6);
  cr_assert_eq(e->version, 7);
  cr_assert_eq(e->coalesced, 5, "RESYNC spans versions 3..7: coalesced %u", e->coalesced);
  pthread_mutex_unlock(&held.lock);
  /* and the watch goes on from there */
  ASSERT_RC(rstate_set_int(s, "x", 7), RSTATE_OK);
  rec_wait(&held, 3);
  cr_assert_eq(held.ev[2].kind, RSTATE_EVENT_CHANGED);
  cr_assert_eq(held.ev[2].old_value.u.i, 6);
  rstate_close(s);
  rstate_close(w);
  rec_free(&held);
}

Test(redis, a_store_flushed_and_made_again_gives_resync_for_everything) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "flush");
  rstate_store *w = open_ok(uri, NULL), *s = open_ok(uri, NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(s, "y", RSTATE_TYPE_INTEGER, rstate_int(2), NULL);
  ASSERT_RC(rstate_set_int(s, "x", 5), RSTATE_OK);
  recorder r;
  rec_init(&r);
  rstate_watch_opts o = {.include_initial = true};
  const char *all[] = {"*"};
  rec_watch(w, &r, all, 1, &o);
  rec_wait(&r, 2);
  h_redis_ok(primary.port, "FLUSHALL", NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(7), NULL);
  rec_wait(&r, 4); /* RESYNC x, DELETED y */
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.n, 4);
  rec_event *x = &r.ev[2], *y = &r.ev[3];
  if (strcmp(x->name, "x")) {
    rec_event *t = x;
    x = y, y = t;
  }
  cr_assert_eq(x->kind, RSTATE_EVENT_RESYNC);
  cr_assert_eq(x->old_value.u.i, 5);
  cr_assert_eq(x->new_value.u.i, 7);
  cr_assert_eq(x->version, 1);
  cr_assert_eq(x->coalesced, 1, "a re-defined variable: coalesced 1");
  cr_assert_eq(y->kind, RSTATE_EVENT_DELETED);
  cr_assert_str_eq(y->name, "y");
  pthread_mutex_unlock(&r.lock);
  rstate_close(s);
  rstate_close(w);
  rec_free(&r);
}

/* ---- lost connections ---- */

static int states[8], n_states;
static void on_state(rstate_store *s, rstate_conn_state st, void *ud) {
  (void)s, (void)ud;
  if (n_states < 8) states[n_states++] = st;
}

Test(redis, killed_connections_fail_calls_then_resume_every_watch) {
  h_redis_start(&primary, NULL);
  const char *uri = h_redis_uri(&primary, "kill");
  rstate_options o = {.on_state = on_state};
  rstate_store *w = open_ok(uri, &o), *s = open_ok(uri, NULL);
  cr_assert_eq(n_states, 1);
  cr_assert_eq(states[0], RSTATE_STATE_CONNECTED);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  recorder r;
  rec_init(&r);
  rec_watch1(w, &r, "x", NULL);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  rec_wait(&r, 1);
  h_redis_ok(primary.port, "CLIENT", "KILL", "TYPE", "normal", NULL);
  /* a call on a dropped connection fails once, never retried behind the caller's back */
  int rc = rstate_set_int(s, "x", 2);
  if (rc == RSTATE_ECLOSED) {
    cr_assert(strstr(rstate_last_error(), "lost") != NULL, "%s", rstate_last_error());
    ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_OK);
  } else {
    ASSERT_RC(rc, RSTATE_OK);
  }
  ASSERT_RC(rstate_set_int(s, "x", 3), RSTATE_OK);
  rec_wait(&r, 3); /* every change, as CHANGED: the log still holds them */
  pthread_mutex_lock(&r.lock);
  for (size_t i = 0; i < 3; i++) {
    cr_assert_eq(r.ev[i].kind, RSTATE_EVENT_CHANGED);
    cr_assert_eq(r.ev[i].new_value.u.i, (int64_t)i + 1);
  }
  pthread_mutex_unlock(&r.lock);
  rstate_close(s);
  rstate_close(w);
  cr_assert_geq(n_states, 4, "CONNECTED, DISCONNECTED, CONNECTED, CLOSED");
  cr_assert_eq(states[1], RSTATE_STATE_DISCONNECTED);
  cr_assert_eq(states[2], RSTATE_STATE_CONNECTED);
  cr_assert_eq(states[n_states - 1], RSTATE_STATE_CLOSED);
  rec_free(&r);
}

/* ---- replicas ---- */

Test(redis, a_detached_replica_makes_writes_time_out_on_the_primary_only) {
  h_redis_start(&primary, NULL);
  char port[16];
  snprintf(port, sizeof port, "%d", primary.port);
  h_redis_start(&replica, "--replicaof", "127.0.0.1", port, NULL);
  rstate_options o = {.replicas = 1, .replica_timeout_ms = 2000};
  rstate_store *s = open_ok(h_redis_uri(&primary, "rep"), &o);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL); /* waits for the replica's first sync */
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  h_redis_ok(replica.port, "REPLICAOF", "127.0.0.1", "1", NULL); /* a dead primary: detached */
  rstate_close(s);
  o.replica_timeout_ms = 200;
  s = open_ok(h_redis_uri(&primary, "rep"), &o);
  ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_ETIMEDOUT);
  cr_assert(strstr(rstate_last_error(), "x: 0 of 1 replicas confirmed within 200 ms") != NULL, "%s",
            rstate_last_error());
  cr_assert(strstr(rstate_last_error(), "applied on the primary only") != NULL, "%s", rstate_last_error());
  cr_assert_eq(h_get_int(s, "x"), 2, "the change is on the primary");
  rstate_close(s);
}

/* ---- Sentinel ---- */

static void pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* Waits until the Sentinel knows a replica it could promote. */
static void sentinel_knows_replica(void) {
  for (int i = 0; i < 750; i++) {
    rstate__resp *rep = h_redis_cmd(sentinel.port, "SENTINEL", "replicas", "mymaster", NULL);
    bool known = rep && rep->type == RSTATE_RESP_ARRAY && rep->n > 0;
    rstate__resp_free(rep);
    if (known) return;
    pause_ms(20); /* polling: a Sentinel tells no one */
  }
  cr_assert_fail("the Sentinel did not learn of the replica within 15 s");
}

Test(redis, sentinel_follows_a_failover_after_kill_9_of_the_primary) {
  h_redis_start(&primary, NULL);
  char port[16];
  snprintf(port, sizeof port, "%d", primary.port);
  h_redis_start(&replica, "--replicaof", "127.0.0.1", port, NULL);
  h_sentinel_start(&sentinel, primary.port);
  sentinel_knows_replica();
  char uri[160];
  snprintf(uri, sizeof uri, "redis-sentinel:127.0.0.1:%d/mymaster/fo", sentinel.port);
  rstate_options safe = {.replicas = 1, .replica_timeout_ms = 3000};
  rstate_store *w = open_ok(uri, &safe), *s = open_ok(uri, NULL);
  h_define_ok(w, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  recorder r;
  rec_init(&r);
  rec_watch1(s, &r, "x", NULL);
  enum { CONFIRMED = 20 };
  for (int i = 1; i <= CONFIRMED; i++) ASSERT_RC(rstate_set_int(w, "x", i), RSTATE_OK);
  rstate_close(w); /* with the primary gone, replicas=1 could not be confirmed again */

  h_redis_stop(&primary, SIGKILL);
  /* during the switch calls fail fast with ECLOSED, then work on the new primary */
  int closed = 0, tries = 0;
  int rc;
  while ((rc = rstate_set_int(s, "x", CONFIRMED + 1)) != RSTATE_OK) {
    cr_assert_eq(rc, RSTATE_ECLOSED, "%s: %s", rstate_error_name(rc), rstate_last_error());
    closed++;
    cr_assert_lt(++tries, 600, "no new primary within 30 s");
    pause_ms(50); /* polling: the failover is Redis's to tell, not ours */
  }
  cr_assert_gt(closed, 0, "no call failed during the switch");
  rstate__resp *role = h_redis_cmd(replica.port, "ROLE", NULL);
  cr_assert(role && rstate__resp_is(rstate__resp_at(role, 0), "master"), "the replica was not promoted");
  rstate__resp_free(role);
  /* every confirmed write survived, and the watcher ends at the final value */
  cr_assert_eq(h_version(s, "x"), CONFIRMED + 2);
  cr_assert_eq(h_get_int(s, "x"), CONFIRMED + 1);
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&r.lock);
    bool done = r.n && r.ev[r.n - 1].new_value.u.i == CONFIRMED + 1;
    pthread_mutex_unlock(&r.lock);
    if (done) break;
    rec_wait(&r, r.n + 1);
  }
  pthread_mutex_lock(&r.lock);
  cr_assert_eq(r.ev[r.n - 1].new_value.u.i, CONFIRMED + 1);
  uint32_t total = 0;
  for (size_t i = 0; i < r.n; i++) total += r.ev[i].coalesced;
  cr_assert_eq(total, CONFIRMED + 1, "coalesced sums to every change the watch covered");
  pthread_mutex_unlock(&r.lock);
  rstate_close(s);
  rec_free(&r);
}

/* ---- soak: writers and a watcher through failovers every few seconds ----
 * Runs only with RSTATE_TEST_SOAK=SECONDS (make soak-redis: 40); without it
 * the test returns at once. */

typedef struct soaker {
  const char *uri;
  atomic_bool stop;
  atomic_long confirmed, unknown, conflicts, closed;
  atomic_int bad; /* an unexpected code */
  char why[256];
} soaker;

static void *soak_writer(void *arg) {
  soaker *k = arg;
  rstate_options o = {.replicas = 1, .replica_timeout_ms = 500, .connect_timeout_ms = 500, .request_timeout_ms = 2000};
  rstate_store *s = NULL;
  while (rstate_open(&s, k->uri, &o)) {
    if (atomic_load(&k->stop)) return NULL;
    pause_ms(50);
  }
  while (!atomic_load(&k->stop)) {
    rstate_var_info info;
    int64_t v;
    if (rstate_info(s, "counter", &info) || rstate_get_int(s, "counter", &v)) {
      pause_ms(20);
      continue;
    }
    int rc = rstate_set_if(s, "counter", &(rstate_value){.kind = RSTATE_INT, .u.i = v + 1}, info.version, NULL);
    if (rc == RSTATE_OK) {
      atomic_fetch_add(&k->confirmed, 1);
    } else if (rc == RSTATE_ETIMEDOUT) {
      atomic_fetch_add(&k->unknown, 1); /* applied on a primary, maybe lost */
    } else if (rc == RSTATE_ECONFLICT) {
      atomic_fetch_add(&k->conflicts, 1);
    } else if (rc == RSTATE_ECLOSED) {
      atomic_fetch_add(&k->closed, 1); /* maybe sent before the loss: unknown too */
      pause_ms(20);
    } else if (!atomic_exchange(&k->bad, 1)) {
      snprintf(k->why, sizeof k->why, "%s: %s", rstate_error_name(rc), rstate_last_error());
    }
  }
  rstate_close(s);
  return NULL;
}

typedef struct last_seen {
  pthread_mutex_t mu;
  int64_t value;
  uint64_t changed, resync;
} last_seen;

static int soak_watch(const rstate_event *ev, void *ud) {
  last_seen *l = ud;
  pthread_mutex_lock(&l->mu);
  if (ev->new_value.kind == RSTATE_INT) l->value = ev->new_value.u.i;
  if (ev->kind == RSTATE_EVENT_CHANGED) l->changed++;
  if (ev->kind == RSTATE_EVENT_RESYNC) l->resync++;
  pthread_mutex_unlock(&l->mu);
  return RSTATE_CONTINUE;
}

/* The port the Sentinel names as primary now (0: none). */
static int sentinel_primary(void) {
  rstate__resp *rep = h_redis_cmd(sentinel.port, "SENTINEL", "get-master-addr-by-name", "mymaster", NULL);
  const rstate__resp *port = rstate__resp_at(rep, 1);
  int p = port && port->type == RSTATE_RESP_STRING ? atoi(port->str) : 0;
  rstate__resp_free(rep);
  return p;
}

/* Waits until the server on port is a primary with a connected replica the
 * Sentinel knows of (at most 30 s); false when it did not happen. */
static bool settled(int port) {
  for (int i = 0; i < 1500; i++) {
    rstate__resp *role = h_redis_cmd(port, "ROLE", NULL);
    const rstate__resp *reps = rstate__resp_at(role, 2);
    bool ok = role && rstate__resp_is(rstate__resp_at(role, 0), "master") && reps && reps->n > 0 &&
              sentinel_primary() == port;
    rstate__resp_free(role);
    if (ok) return true;
    pause_ms(20);
  }
  return false;
}

Test(redis, soak_writers_and_a_watcher_through_failovers, .timeout = 600) {
  const char *secs = getenv("RSTATE_TEST_SOAK");
  if (!secs) return; /* not cr_skip_test: a skip leaves Criterion's memory for valgrind to report */
  int seconds = atoi(secs) > 0 ? atoi(secs) : 40;
  h_redis_start(&primary, NULL);
  char port[16];
  snprintf(port, sizeof port, "%d", primary.port);
  h_redis_start(&replica, "--replicaof", "127.0.0.1", port, NULL);
  h_sentinel_start(&sentinel, primary.port);
  sentinel_knows_replica();
  char uri[160];
  snprintf(uri, sizeof uri, "redis-sentinel:127.0.0.1:%d/mymaster/soak", sentinel.port);
  rstate_options wo = {.connect_timeout_ms = 500};
  rstate_store *w = open_ok(uri, &wo);
  h_define_ok(w, "counter", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  last_seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
  const char *names[] = {"counter"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(w, names, 1, soak_watch, &seen, NULL, &id), RSTATE_OK);

  soaker k = {.uri = uri};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, soak_writer, &k);
  int64_t end = rstate__monotonic_ns() + (int64_t)seconds * 1000000000;
  int failovers = 0;
  while (rstate__monotonic_ns() < end) {
    pause_ms(2500);
    int p = sentinel_primary();
    h_redis *now = p == primary.port ? &primary : &replica, *other = now == &primary ? &replica : &primary;
    if (!settled(p)) {
      rstate__resp *a = h_redis_cmd(primary.port, "ROLE", NULL), *b = h_redis_cmd(replica.port, "ROLE", NULL);
      cr_assert_fail("no primary with a replica 30 s after failover %d: Sentinel names %d; %d is %s, %d is %s",
                     failovers, p, primary.port, a ? a->elem[0].str : "down", replica.port,
                     b ? b->elem[0].str : "down");
    }
    h_redis_kill(now); /* kill -9 of the primary */
    failovers++;
    bool promoted = false;
    for (int i = 0; i < 1500 && !promoted; i++) {
      pause_ms(20);
      rstate__resp *role = h_redis_cmd(other->port, "ROLE", NULL);
      promoted = sentinel_primary() == other->port && role && rstate__resp_is(rstate__resp_at(role, 0), "master");
      rstate__resp_free(role);
    }
    cr_assert(promoted, "the Sentinel did not promote the replica within 30 s");
    char np[16];
    snprintf(np, sizeof np, "%d", other->port);
    h_redis_restart(now, "--replicaof", "127.0.0.1", np, NULL); /* back, as the new primary's replica */
  }
  atomic_store(&k.stop, true);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  cr_assert_eq(atomic_load(&k.bad), 0, "a writer got %s", k.why);

  /* a last change through the watcher's store, once a primary takes it */
  int64_t final = 0;
  for (int i = 0;; i++) {
    int64_t v;
    int rc = rstate_get_int(w, "counter", &v);
    if (!rc) rc = rstate_set_int(w, "counter", v + 1);
    if (!rc) {
      final = v + 1;
      break;
    }
    cr_assert_eq(rc, RSTATE_ECLOSED, "%s", rstate_last_error());
    cr_assert_lt(i, 600, "no primary took the last change within 30 s");
    pause_ms(50);
  }
  long confirmed = atomic_load(&k.confirmed), unknown = atomic_load(&k.unknown) + atomic_load(&k.closed);
  cr_assert_geq(final - 1, confirmed, "a confirmed write was lost: %lld counted, %ld confirmed", (long long)final - 1,
                confirmed);
  cr_assert_leq(final - 1, confirmed + unknown);
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&seen.mu);
    bool at = seen.value == final;
    pthread_mutex_unlock(&seen.mu);
    if (at) break;
    pause_ms(20);
  }
  pthread_mutex_lock(&seen.mu);
  cr_assert_eq(seen.value, final, "the watcher ended at %lld, the store at %lld", (long long)seen.value,
               (long long)final);
  cr_log_info("soak: %d s, %d failovers (kill -9 of the primary), %ld confirmed, %ld unknown, %ld conflicts, %llu CHANGED, "
              "%llu RESYNC",
              seconds, failovers, confirmed, unknown, (long)atomic_load(&k.conflicts),
              (unsigned long long)seen.changed, (unsigned long long)seen.resync);
  pthread_mutex_unlock(&seen.mu);
  rstate_close(w);
}
