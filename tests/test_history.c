/*
 * test_history.c — rstate_history and rstate_rollback, every sentence of the
 * contract, on "mem:" (keep_versions), on "file:" (kept by default), and
 * through a served store over unix: and tcp: (protocol version 2's HISTORY;
 * rollback is the front end's, over HISTORY and SET_MANY). Each scenario
 * runs once per store kind (BOTH below).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"

TestSuite(history);

typedef struct hstore {
  rstate_store *s;
  char dir[96];
  rstate_store *backing; /* served kinds: the store the server serves */
  rstate_server *server;
} hstore;

/* Store kinds: a mem: or file: store, or a mem: store keeping keep
 * versions, served, and the client's store connected to it. */
enum { K_MEM, K_FILE, K_UNIX, K_TCP };

static hstore hs_open(int file, size_t keep) {
  hstore h;
  memset(&h, 0, sizeof h);
  rstate_options o;
  memset(&o, 0, sizeof o);
  o.keep_versions = keep;
  if (file == K_UNIX || file == K_TCP) {
    static unsigned sserial;
    ASSERT_RC(rstate_open(&h.backing, "mem:", &o), RSTATE_OK);
    char uri[128];
    if (file == K_TCP)
      snprintf(uri, sizeof uri, "tcp:127.0.0.1:0");
    else
      snprintf(uri, sizeof uri, "unix:/tmp/rstate-test-hist-%d-%u.sock", (int)getpid(), sserial++);
    ASSERT_RC(rstate_server_start(&h.server, h.backing, uri, NULL), RSTATE_OK);
    ASSERT_RC(rstate_open(&h.s, rstate_server_uri(h.server), NULL), RSTATE_OK);
  } else if (file == K_FILE) {
    static unsigned serial;
    snprintf(h.dir, sizeof h.dir, "/tmp/rstate-test-hist-%d-%u.d", (int)getpid(), serial++);
    h_rmdir(h.dir);
    char uri[128];
    snprintf(uri, sizeof uri, "file:%s", h.dir);
    ASSERT_RC(rstate_open(&h.s, uri, &o), RSTATE_OK);
  } else {
    ASSERT_RC(rstate_open(&h.s, "mem:", &o), RSTATE_OK);
  }
  return h;
}

static void hs_close(hstore *h) {
  rstate_close(h->s);
  if (h->dir[0]) h_rmdir(h->dir);
  if (h->server) rstate_server_stop(h->server);
  if (h->backing) rstate_close(h->backing);
}

/* every entry of a walk, copied */
typedef struct entry {
  uint64_t version, revision;
  int64_t ts;
  int64_t i;
  char str[32];
  char source[32];
  bool has_source;
  size_t n_meta;
  char meta0[64];
} entry;

typedef struct walk {
  entry e[256];
  size_t n;
  size_t stop_after; /* 0: never */
} walk;

static int collect(const rstate_history_entry *e, void *ud) {
  walk *w = ud;
  cr_assert_lt(w->n, 256, "more than 256 entries");
  entry *x = &w->e[w->n++];
  memset(x, 0, sizeof *x);
  x->version = e->version;
  x->revision = e->revision;
  x->ts = e->timestamp_ns;
  if (e->value.kind == RSTATE_INT) x->i = e->value.u.i;
  if (e->value.kind == RSTATE_STRING) snprintf(x->str, sizeof x->str, "%s", e->value.u.s.ptr);
  if (e->source) {
    x->has_source = true;
    snprintf(x->source, sizeof x->source, "%s", e->source);
  }
  x->n_meta = e->n_meta;
  if (e->n_meta) snprintf(x->meta0, sizeof x->meta0, "%s=%s", e->meta[0].key, e->meta[0].value);
  return w->stop_after && w->n == w->stop_after;
}

#define BOTH(name)                                 \
  static void name(int file);                      \
  Test(history, name##_mem) { name(K_MEM); }       \
  Test(history, name##_file) { name(K_FILE); }     \
  Test(history, name##_unix) { name(K_UNIX); }     \
  Test(history, name##_tcp) { name(K_TCP); }       \
  static void name(int file)

/* ---- rstate_history ------------------------------------------------------ */

Test(history, mem_keeps_none_by_default) {
  rstate_store *s;
  ASSERT_RC(rstate_open(&s, "mem:", NULL), RSTATE_OK);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  walk w = {0};
  ASSERT_FAIL_NAMES(rstate_history(s, "x", 0, collect, &w), RSTATE_ENOTSUP, "x");
  ASSERT_FAIL_NAMES(rstate_rollback(s, "x", 1, NULL), RSTATE_ENOTSUP, "x");
  /* a store that keeps no history says so whatever the name */
  ASSERT_FAIL_NAMES(rstate_history(s, "nope", 0, collect, &w), RSTATE_ENOTSUP, "nope");
  ASSERT_FAIL_NAMES(rstate_rollback(s, "nope", 1, NULL), RSTATE_ENOTSUP, "nope");
  ASSERT_FAIL_NAMES(rstate_rollback(s, "x", 0, NULL), RSTATE_ENOTSUP, "x");
  cr_assert_eq(w.n, 0);
  rstate_close(s);
}

/* A served store that keeps none says so through the protocol, with the
 * server's sentence. */
Test(history, served_store_keeping_none_says_so) {
  hstore h = hs_open(K_UNIX, 0);
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  walk w = {0};
  ASSERT_FAIL_NAMES(rstate_history(h.s, "x", 0, collect, &w), RSTATE_ENOTSUP, "x");
  ASSERT_FAIL_NAMES(rstate_rollback(h.s, "x", 1, NULL), RSTATE_ENOTSUP, "x");
  ASSERT_FAIL_NAMES(rstate_history(h.s, "nope", 0, collect, &w), RSTATE_ENOTSUP, "nope");
  cr_assert_eq(w.n, 0);
  hs_close(&h);
}

/* A client of a served store with a read token reads the history but
 * cannot roll back. */
Test(history, served_read_token_reads_history_but_cannot_roll_back) {
  rstate_store *backing;
  rstate_options o = {.keep_versions = 4};
  ASSERT_RC(rstate_open(&backing, "mem:", &o), RSTATE_OK);
  h_define_ok(backing, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  ASSERT_RC(rstate_set_int(backing, "x", 1), RSTATE_OK);
  rstate_server *srv;
  rstate_server_opts so = {.token = "rw", .read_token = "ro"};
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-test-hist-ro-%d.sock", (int)getpid());
  ASSERT_RC(rstate_server_start(&srv, backing, uri, &so), RSTATE_OK);
  rstate_store *s;
  rstate_options co = {.token = "ro"};
  ASSERT_RC(rstate_open(&s, uri, &co), RSTATE_OK);
  walk w = {0};
  ASSERT_RC(rstate_history(s, "x", 0, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 2);
  ASSERT_FAIL_NAMES(rstate_rollback(s, "x", 1, NULL), RSTATE_EPERM, "x");
  cr_assert_eq(h_get_int(backing, "x"), 1, "a read-only client rolled back");
  rstate_close(s);
  rstate_server_stop(srv);
  rstate_close(backing);
}

BOTH(unknown_and_bad_arguments) {
  hstore h = hs_open(file, 4);
  walk w = {0};
  ASSERT_FAIL_NAMES(rstate_history(h.s, "nope", 0, collect, &w), RSTATE_ENOTFOUND, "nope");
  ASSERT_FAIL_NAMES(rstate_rollback(h.s, "nope", 1, NULL), RSTATE_ENOTFOUND, "nope");
  ASSERT_RC(rstate_history(NULL, "x", 0, collect, &w), RSTATE_EINVAL);
  ASSERT_RC(rstate_history(h.s, NULL, 0, collect, &w), RSTATE_EINVAL);
  ASSERT_RC(rstate_history(h.s, "x", 0, NULL, &w), RSTATE_EINVAL);
  ASSERT_RC(rstate_rollback(NULL, "x", 1, NULL), RSTATE_EINVAL);
  ASSERT_RC(rstate_rollback(h.s, NULL, 1, NULL), RSTATE_EINVAL);
  hs_close(&h);
}

BOTH(oldest_first_current_last) {
  hstore h = hs_open(file, 10);
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_meta meta[] = {{"why", "test"}};
  rstate_set_opts so = {.source = "tester", .meta = meta, .n_meta = 1};
  for (int i = 1; i <= 5; i++) {
    rstate_value v = rstate_int(i * 10);
    ASSERT_RC(rstate_set(h.s, "x", &v, i == 3 ? &so : NULL), RSTATE_OK);
  }
  walk w = {0};
  ASSERT_RC(rstate_history(h.s, "x", 0, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 6, "history holds %zu entries, want the definition and 5 changes", w.n);
  for (size_t i = 0; i < w.n; i++) {
    cr_assert_eq(w.e[i].version, i + 1, "entry %zu is version %llu", i, (unsigned long long)w.e[i].version);
    cr_assert_eq(w.e[i].revision, i + 1, "entry %zu has revision %llu", i, (unsigned long long)w.e[i].revision);
    cr_assert_eq(w.e[i].i, (int64_t)i * 10, "entry %zu has value %lld", i, (long long)w.e[i].i);
    if (i) cr_assert_geq(w.e[i].ts, w.e[i - 1].ts, "timestamps go back");
    cr_assert_eq(w.e[i].has_source, i == 3, "entry %zu: source %s", i, w.e[i].has_source ? "set" : "unset");
  }
  cr_assert_str_eq(w.e[3].source, "tester");
  cr_assert_eq(w.e[3].n_meta, 1);
  cr_assert_str_eq(w.e[3].meta0, "why=test");
  /* the current one last, with the variable's own info */
  rstate_var_info info = h_info(h.s, "x");
  cr_assert_eq(w.e[5].version, info.version);
  cr_assert_eq(w.e[5].revision, info.revision);
  cr_assert_eq(w.e[5].ts, info.updated_ns);
  hs_close(&h);
}

BOTH(after_version_and_stop) {
  hstore h = hs_open(file, 10);
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int i = 1; i <= 5; i++) ASSERT_RC(rstate_set_int(h.s, "x", i), RSTATE_OK);
  walk w = {0};
  ASSERT_RC(rstate_history(h.s, "x", 4, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 2, "above version 4 there are versions 5 and 6, not %zu entries", w.n);
  cr_assert_eq(w.e[0].version, 5);
  cr_assert_eq(w.e[1].version, 6);
  memset(&w, 0, sizeof w);
  ASSERT_RC(rstate_history(h.s, "x", 6, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 0, "nothing is above the current version");
  memset(&w, 0, sizeof w);
  w.stop_after = 2;
  ASSERT_RC(rstate_history(h.s, "x", 0, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 2, "fn returning nonzero stops the walk (got %zu calls)", w.n);
  hs_close(&h);
}

BOTH(keeps_keep_versions_past_ones) {
  hstore h = hs_open(file, 3);
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int i = 1; i <= 20; i++) ASSERT_RC(rstate_set_int(h.s, "x", i), RSTATE_OK);
  walk w = {0};
  ASSERT_RC(rstate_history(h.s, "x", 0, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 4, "keep_versions 3 keeps the current version and 3 before it, not %zu", w.n);
  for (size_t i = 0; i < 4; i++) cr_assert_eq(w.e[i].version, 18 + i);
  ASSERT_FAIL_NAMES(rstate_rollback(h.s, "x", 17, NULL), RSTATE_ENOTFOUND, "x");
  ASSERT_RC(rstate_rollback(h.s, "x", 18, NULL), RSTATE_OK);
  cr_assert_eq(h_get_int(h.s, "x"), 17);
  hs_close(&h);
}

BOTH(strings_and_batches) {
  hstore h = hs_open(file, 5);
  h_define_ok(h.s, "a", RSTATE_TYPE_STRING, rstate_string("one"), NULL);
  h_define_ok(h.s, "b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_assign items[] = {{"a", rstate_string("two")}, {"b", rstate_int(2)}};
  ASSERT_RC(rstate_set_many(h.s, items, 2, NULL, NULL), RSTATE_OK);
  walk wa = {0}, wb = {0};
  ASSERT_RC(rstate_history(h.s, "a", 0, collect, &wa), RSTATE_OK);
  ASSERT_RC(rstate_history(h.s, "b", 0, collect, &wb), RSTATE_OK);
  cr_assert_eq(wa.n, 2);
  cr_assert_eq(wb.n, 2);
  cr_assert_str_eq(wa.e[0].str, "one");
  cr_assert_str_eq(wa.e[1].str, "two");
  cr_assert_eq(wa.e[1].revision, wb.e[1].revision, "one batch, one revision in both histories");
  /* a set of the same value adds nothing */
  ASSERT_RC(rstate_set_string(h.s, "a", "two"), RSTATE_OK);
  memset(&wa, 0, sizeof wa);
  ASSERT_RC(rstate_history(h.s, "a", 0, collect, &wa), RSTATE_OK);
  cr_assert_eq(wa.n, 2, "an unchanged set adds no history");
  hs_close(&h);
}

BOTH(starts_again_when_redefined) {
  hstore h = hs_open(file, 10);
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int i = 1; i <= 3; i++) ASSERT_RC(rstate_set_int(h.s, "x", i), RSTATE_OK);
  ASSERT_RC(rstate_undefine(h.s, "x"), RSTATE_OK);
  walk w = {0};
  ASSERT_FAIL_NAMES(rstate_history(h.s, "x", 0, collect, &w), RSTATE_ENOTFOUND, "x");
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(7), NULL);
  ASSERT_RC(rstate_history(h.s, "x", 0, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 1, "a re-defined variable's history starts again (got %zu entries)", w.n);
  cr_assert_eq(w.e[0].version, 1);
  cr_assert_eq(w.e[0].i, 7);
  ASSERT_FAIL_NAMES(rstate_rollback(h.s, "x", 3, NULL), RSTATE_ECONFLICT, "x");
  hs_close(&h);
}

/* ---- rstate_rollback ----------------------------------------------------- */

typedef struct seen {
  int n;
  rstate_event_kind kind;
  int64_t old_i, new_i;
  uint64_t version, revision;
  char source[32];
  char meta0[64];
} seen;

static int on_event(const rstate_event *ev, void *ud) {
  seen *s = ud;
  s->n++;
  s->kind = ev->kind;
  s->old_i = ev->old_value.u.i;
  s->new_i = ev->new_value.u.i;
  s->version = ev->version;
  s->revision = ev->revision;
  snprintf(s->source, sizeof s->source, "%s", ev->source ? ev->source : "");
  if (ev->n_meta) snprintf(s->meta0, sizeof s->meta0, "%s=%s", ev->meta[0].key, ev->meta[0].value);
  return RSTATE_CONTINUE;
}

BOTH(rollback_is_a_new_change) {
  hstore h = hs_open(file, 10);
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int i = 1; i <= 4; i++) ASSERT_RC(rstate_set_int(h.s, "x", i * 100), RSTATE_OK);
  seen ev = {0};
  const char *names[] = {"x"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(h.s, names, 1, on_event, &ev, NULL, &id), RSTATE_OK);
  uint64_t rev = rstate_revision(h.s);
  rstate_meta meta[] = {{"reason", "bad deploy"}};
  rstate_set_opts so = {.source = "ops", .meta = meta, .n_meta = 1};
  ASSERT_RC(rstate_rollback(h.s, "x", 2, &so), RSTATE_OK);
  cr_assert_eq(h_get_int(h.s, "x"), 100, "rolled back to version 2's value");
  cr_assert_eq(h_version(h.s, "x"), 6, "the rollback is version 6");
  cr_assert_eq(rstate_revision(h.s), rev + 1, "the rollback takes the next revision");
  cr_assert_eq(ev.n, 1, "the watch got %d events", ev.n);
  cr_assert_eq(ev.kind, RSTATE_EVENT_CHANGED);
  cr_assert_eq(ev.old_i, 400);
  cr_assert_eq(ev.new_i, 100);
  cr_assert_eq(ev.version, 6);
  cr_assert_eq(ev.revision, rev + 1);
  cr_assert_str_eq(ev.source, "ops");
  cr_assert_str_eq(ev.meta0, "reason=bad deploy");
  walk w = {0};
  ASSERT_RC(rstate_history(h.s, "x", 5, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 1);
  cr_assert_eq(w.e[0].i, 100);
  cr_assert_str_eq(w.e[0].source, "ops");
  hs_close(&h);
}

BOTH(rollback_errors) {
  hstore h = hs_open(file, 10);
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  ASSERT_RC(rstate_set_int(h.s, "x", 1), RSTATE_OK);
  uint64_t rev = rstate_revision(h.s);
  ASSERT_FAIL_NAMES(rstate_rollback(h.s, "x", 3, NULL), RSTATE_ECONFLICT, "x");
  ASSERT_FAIL_NAMES(rstate_rollback(h.s, "x", 99, NULL), RSTATE_ECONFLICT, "x");
  ASSERT_FAIL_NAMES(rstate_rollback(h.s, "x", 0, NULL), RSTATE_ENOTFOUND, "x");
  rstate_meta bad[] = {{"k", NULL}};
  rstate_set_opts so = {.meta = bad, .n_meta = 1};
  ASSERT_RC(rstate_rollback(h.s, "x", 1, &so), RSTATE_EINVAL);
  cr_assert_eq(rstate_revision(h.s), rev, "a failed rollback changed the store");
  cr_assert_eq(h_get_int(h.s, "x"), 1);
  /* to the current version: the value is the same, so nothing changes, as for a set */
  ASSERT_RC(rstate_rollback(h.s, "x", 2, NULL), RSTATE_OK);
  cr_assert_eq(rstate_revision(h.s), rev);
  hs_close(&h);
}

/* ---- file: history survives reopening ------------------------------------- */

Test(history, file_survives_reopen) {
  hstore h = hs_open(K_FILE, 0); /* the default: 100 */
  h_define_ok(h.s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_set_opts so = {.source = "me"};
  for (int i = 1; i <= 150; i++) {
    rstate_value v = rstate_int(i);
    ASSERT_RC(rstate_set(h.s, "x", &v, &so), RSTATE_OK);
  }
  rstate_close(h.s);
  char uri[128];
  snprintf(uri, sizeof uri, "file:%s", h.dir);
  ASSERT_RC(rstate_open(&h.s, uri, NULL), RSTATE_OK);
  walk w = {0};
  ASSERT_RC(rstate_history(h.s, "x", 0, collect, &w), RSTATE_OK);
  cr_assert_eq(w.n, 101, "file: keeps 100 past versions by default and the current one, not %zu", w.n);
  cr_assert_eq(w.e[0].version, 51);
  cr_assert_eq(w.e[100].version, 151);
  cr_assert_eq(w.e[100].i, 150);
  cr_assert_str_eq(w.e[100].source, "me");
  ASSERT_RC(rstate_rollback(h.s, "x", 51, NULL), RSTATE_OK);
  cr_assert_eq(h_get_int(h.s, "x"), 50);
  hs_close(&h);
}
