/*
 * helpers.h — small helpers shared by the Criterion tests: macros that assert
 * an exact return code (printing both code names and rstate_last_error()),
 * and static inline shortcuts to open a "mem:" store and define variables.
 * Header-only on purpose: nothing here is linked, nothing is exported.
 */
#ifndef RSTATE_TEST_HELPERS_H
#define RSTATE_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reactivestate.h"

/* Asserts that an expression returned exactly the code want. */
#define ASSERT_RC(expr, want)                                                                          \
  do {                                                                                                 \
    int h_rc_ = (expr);                                                                                \
    int h_want_ = (want);                                                                              \
    cr_assert_eq(h_rc_, h_want_, "%s returned %s (%d), want %s (%d); last error: \"%s\"", #expr,       \
                 rstate_error_name(h_rc_), h_rc_, rstate_error_name(h_want_), h_want_, rstate_last_error()); \
  } while (0)

/* Asserts the code, and that rstate_last_error() mentions the variable name. */
#define ASSERT_FAIL_NAMES(expr, want, varname)                                                      \
  do {                                                                                              \
    ASSERT_RC(expr, want);                                                                          \
    cr_assert(strstr(rstate_last_error(), (varname)) != NULL,                                       \
              "%s: last error \"%s\" does not name the variable \"%s\"", #expr, rstate_last_error(), \
              (varname));                                                                           \
  } while (0)

/*
 * The transport the tests run over: RSTATE_TEST_TRANSPORT unset or "mem"
 * opens "mem:" stores; "unix" or "tcp" gives each h_open its own "mem:"
 * store served by an rstate_server, and returns a remote store connected to
 * it, so the same tests check that the remote stores keep every guarantee;
 * "file" opens a "file:" store in a fresh directory (removed by h_close).
 * rstate_close is redirected to h_close, which also stops that server.
 * "redis" opens "redis:$RSTATE_TEST_REDIS/STORE" with a store name of its
 * own per h_open (tests/redis.sh starts the Redis server and sets
 * RSTATE_TEST_REDIS to its HOST:PORT).
 */
typedef struct h_served {
  rstate_store *remote, *backing;
  rstate_server *server;
  char dir[96]; /* file: the store's directory */
} h_served;
static h_served h_served_stores[64];

static inline const char *h_transport(void) {
  const char *t = getenv("RSTATE_TEST_TRANSPORT");
  return t && *t ? t : "mem";
}

/* A served store (unix: or tcp:): callbacks run on the connection thread. */
static inline bool h_remote(void) { return strcmp(h_transport(), "mem") != 0 && strcmp(h_transport(), "file") != 0; }
static inline bool h_file(void) { return strcmp(h_transport(), "file") == 0; }

/* Removes a file: store's directory and the files a store keeps there (a
 * flat directory; no program is run, so valgrind follows nothing else). */
static inline void h_rmdir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  if (rmdir(dir) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Opens a fresh store over the test transport with options o (may be NULL). */
static inline rstate_store *h_open_opts(const rstate_options *o) {
  rstate_store *s = NULL;
  if (h_file()) {
    h_served *slot = NULL;
    for (size_t i = 0; i < sizeof h_served_stores / sizeof h_served_stores[0] && !slot; i++)
      if (!h_served_stores[i].remote) slot = &h_served_stores[i];
    cr_assert_not_null(slot, "more than 64 test stores open at once");
    static unsigned fserial;
    snprintf(slot->dir, sizeof slot->dir, "/tmp/rstate-test-%d-%u.d", (int)getpid(), fserial++);
    h_rmdir(slot->dir);
    char uri[128];
    snprintf(uri, sizeof uri, "file:%s", slot->dir);
    int rc = rstate_open(&s, uri, o);
    cr_assert_eq(rc, RSTATE_OK, "rstate_open(\"%s\") returned %s: %s", uri, rstate_error_name(rc), rstate_last_error());
    slot->remote = s;
    return s;
  }
  if (!h_remote()) {
    int rc = rstate_open(&s, "mem:", o);
    cr_assert_eq(rc, RSTATE_OK, "rstate_open(\"mem:\") returned %s: %s", rstate_error_name(rc), rstate_last_error());
    cr_assert_not_null(s, "rstate_open(\"mem:\") returned RSTATE_OK but no store");
    return s;
  }
  static unsigned serial;
  if (!strcmp(h_transport(), "redis")) {
    const char *hp = getenv("RSTATE_TEST_REDIS");
    cr_assert(hp && *hp, "RSTATE_TEST_TRANSPORT=redis needs RSTATE_TEST_REDIS=HOST:PORT (tests/redis.sh sets it)");
    char uri[256];
    snprintf(uri, sizeof uri, "redis:%s/t%d-%u-%ld", hp, (int)getpid(), serial++, (long)random());
    int rc = rstate_open(&s, uri, o);
    cr_assert_eq(rc, RSTATE_OK, "rstate_open(\"%s\") returned %s: %s", uri, rstate_error_name(rc), rstate_last_error());
    return s;
  }
  h_served *slot = NULL;
  for (size_t i = 0; i < sizeof h_served_stores / sizeof h_served_stores[0] && !slot; i++)
    if (!h_served_stores[i].remote) slot = &h_served_stores[i];
  cr_assert_not_null(slot, "more than 64 remote test stores open at once");
  int rc = rstate_open(&slot->backing, "mem:", NULL);
  cr_assert_eq(rc, RSTATE_OK, "rstate_open(\"mem:\") returned %s: %s", rstate_error_name(rc), rstate_last_error());
  char uri[128];
  if (!strcmp(h_transport(), "tcp"))
    snprintf(uri, sizeof uri, "tcp:127.0.0.1:0");
  else
    snprintf(uri, sizeof uri, "unix:/tmp/rstate-test-%d-%u.sock", (int)getpid(), serial++);
  rc = rstate_server_start(&slot->server, slot->backing, uri, NULL);
  cr_assert_eq(rc, RSTATE_OK, "rstate_server_start(%s) returned %s: %s", uri, rstate_error_name(rc),
               rstate_last_error());
  rc = rstate_open(&s, rstate_server_uri(slot->server), o);
  cr_assert_eq(rc, RSTATE_OK, "rstate_open(\"%s\") returned %s: %s", rstate_server_uri(slot->server),
               rstate_error_name(rc), rstate_last_error());
  slot->remote = s;
  return s;
}

/* Opens a fresh store over the test transport; the test fails when it cannot. */
static inline rstate_store *h_open(void) { return h_open_opts(NULL); }

/* Closes a store, and the server and store behind it when remote. */
static inline void h_close(rstate_store *s) {
  rstate_close(s);
  for (size_t i = 0; s && i < sizeof h_served_stores / sizeof h_served_stores[0]; i++) {
    h_served *slot = &h_served_stores[i];
    if (slot->remote != s) continue;
    if (slot->dir[0]) h_rmdir(slot->dir);
    if (slot->server) rstate_server_stop(slot->server);
    if (slot->backing) rstate_close(slot->backing);
    memset(slot, 0, sizeof *slot);
  }
}
#define rstate_close(s) h_close(s)

/* rstate_define with the fields spelled out; returns its code. */
static inline int h_define(rstate_store *s, const char *name, rstate_type type, rstate_value initial,
                           const rstate_constraints *c) {
  rstate_var_def def;
  memset(&def, 0, sizeof def);
  def.name = name;
  def.type = type;
  def.initial = initial;
  def.constraints = c;
  return rstate_define(s, &def);
}

/* Defines a variable and fails the test unless that returns RSTATE_OK. */
static inline void h_define_ok(rstate_store *s, const char *name, rstate_type type, rstate_value initial,
                               const rstate_constraints *c) {
  int rc = h_define(s, name, type, initial, c);
  cr_assert_eq(rc, RSTATE_OK, "defining %s returned %s: %s", name, rstate_error_name(rc), rstate_last_error());
}

/* rstate_info, failing the test unless it returns RSTATE_OK. */
static inline rstate_var_info h_info(rstate_store *s, const char *name) {
  rstate_var_info info;
  memset(&info, 0, sizeof info);
  int rc = rstate_info(s, name, &info);
  cr_assert_eq(rc, RSTATE_OK, "rstate_info(%s) returned %s: %s", name, rstate_error_name(rc), rstate_last_error());
  return info;
}

static inline uint64_t h_version(rstate_store *s, const char *name) { return h_info(s, name).version; }

/* Reads an integer variable (must succeed). */
static inline int64_t h_get_int(rstate_store *s, const char *name) {
  int64_t v = 0;
  int rc = rstate_get_int(s, name, &v);
  cr_assert_eq(rc, RSTATE_OK, "rstate_get_int(%s) returned %s: %s", name, rstate_error_name(rc), rstate_last_error());
  return v;
}

/* Reads a float or integer variable as a double (must succeed). */
static inline double h_get_float(rstate_store *s, const char *name) {
  double v = 0;
  int rc = rstate_get_float(s, name, &v);
  cr_assert_eq(rc, RSTATE_OK, "rstate_get_float(%s) returned %s: %s", name, rstate_error_name(rc),
               rstate_last_error());
  return v;
}

/* Asserts that a string variable (string, choice, module) reads back as want. */
static inline void h_assert_string(rstate_store *s, const char *name, const char *want) {
  rstate_value v;
  memset(&v, 0, sizeof v);
  int rc = rstate_get(s, name, &v);
  cr_assert_eq(rc, RSTATE_OK, "rstate_get(%s) returned %s: %s", name, rstate_error_name(rc), rstate_last_error());
  cr_assert_eq(v.kind, RSTATE_STRING, "%s read back as kind %d, not RSTATE_STRING", name, (int)v.kind);
  int same = v.u.s.len == strlen(want) && (v.u.s.len == 0 || memcmp(v.u.s.ptr, want, v.u.s.len) == 0);
  char got[128];
  size_t n = v.u.s.len < sizeof got - 1 ? v.u.s.len : sizeof got - 1;
  if (n) memcpy(got, v.u.s.ptr, n);
  got[n] = '\0';
  rstate_value_clear(&v);
  cr_assert(same, "%s is \"%s\", want \"%s\"", name, got, want);
}

#endif /* RSTATE_TEST_HELPERS_H */
