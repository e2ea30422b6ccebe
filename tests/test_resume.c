/*
 * test_resume.c — a client that watched through a server of a file: store
 * (what rstated --data runs) that was killed with SIGKILL and started again
 * on the same data resumes with CHANGED events for what it missed, with the
 * right old and new values, and no RESYNC, while the store still keeps those
 * changes (every revision since the client's resume point whole in its
 * kept versions); and gets RESYNC once it no longer does. The server runs
 * in a child process, killed for real; the watcher is the library's remote
 * store, reconnecting by itself.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "recorder.h"

static char dir[96], sock[108], uri[128];

/* The server process: this test program run again (so that it starts with
 * one thread and none of Criterion's state, which ThreadSanitizer and
 * valgrind need), told its part by RSTATE_TEST_RESUME_SERVER="FD KEEP DIR
 * SOCK V1 V2 ...": opens file:DIR keeping KEEP versions, sets x to each
 * value (the changes a client misses), serves it at unix:SOCK, says 'r' on
 * FD, and waits to be killed. */
__attribute__((constructor)) static void server_role(void) {
  const char *role = getenv("RSTATE_TEST_RESUME_SERVER");
  if (!role) return;
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
  int fd, used;
  size_t keep;
  char d[96], k[108];
  if (sscanf(role, "%d %zu %95s %107s%n", &fd, &keep, d, k, &used) != 4) _exit(9);
  rstate_store *s;
  rstate_options o = {.keep_versions = keep, .sync = RSTATE_SYNC_NONE};
  char furi[128], suri[128];
  snprintf(furi, sizeof furi, "file:%s", d);
  snprintf(suri, sizeof suri, "unix:%s", k);
  if (rstate_open(&s, furi, &o)) _exit(10);
  rstate_var_def def = {.name = "x", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(0)};
  if (rstate_define(s, &def)) _exit(11);
  const char *rest = role + used;
  long long v;
  int n;
  while (sscanf(rest, "%lld%n", &v, &n) == 1) {
    if (rstate_set_int(s, "x", v)) _exit(12);
    rest += n;
  }
  rstate_server *srv;
  unlink(k);
  if (rstate_server_start(&srv, s, suri, NULL)) _exit(13);
  if (write(fd, "r", 1) != 1) _exit(14);
  for (;;) pause();
}

static pid_t serve(size_t keep, const int64_t *sets, size_t n) {
  char self[512];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(sl, 0);
  self[sl] = '\0';
  int p[2];
  cr_assert_eq(pipe(p), 0);
  char role[512];
  int len = snprintf(role, sizeof role, "%d %zu %s %s", p[1], keep, dir, sock);
  for (size_t i = 0; i < n; i++) len += snprintf(role + len, sizeof role - (size_t)len, " %lld", (long long)sets[i]);
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork");
  if (pid == 0) {
    close(p[0]);
    setenv("RSTATE_TEST_RESUME_SERVER", role, 1);
    execl(self, self, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char c;
  cr_assert_eq(read(p[0], &c, 1), 1, "the server process did not start");
  close(p[0]);
  return pid;
}

static void kill9(pid_t pid) {
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the server process died of something else");
}

static void expect_changed(recorder *r, size_t i, int64_t old, int64_t now, uint64_t version) {
  pthread_mutex_lock(&r->lock);
  rec_event e = r->ev[i];
  pthread_mutex_unlock(&r->lock);
  cr_assert_eq(e.kind, RSTATE_EVENT_CHANGED, "event %zu is of kind %d, want CHANGED (RESYNC is %d)", i, (int)e.kind,
               (int)RSTATE_EVENT_RESYNC);
  cr_assert_eq(e.old_value.u.i, old, "event %zu: old %lld, want %lld", i, (long long)e.old_value.u.i, (long long)old);
  cr_assert_eq(e.new_value.u.i, now, "event %zu: new %lld, want %lld", i, (long long)e.new_value.u.i,
               (long long)now);
  cr_assert_eq(e.version, version, "event %zu: version %llu, want %llu", i, (unsigned long long)e.version,
               (unsigned long long)version);
}

TestSuite(resume, .timeout = 60);

Test(resume, across_a_killed_server_from_the_kept_changes_then_resync_when_they_are_gone) {
  snprintf(dir, sizeof dir, "/tmp/rstate-test-resume-%d.d", (int)getpid());
  snprintf(sock, sizeof sock, "/tmp/rstate-test-resume-%d.sock", (int)getpid());
  snprintf(uri, sizeof uri, "unix:%s", sock);
  h_rmdir(dir);
  pid_t pid = serve(10, NULL, 0);

  rstate_store *c;
  rstate_options o = {0};
  ASSERT_RC(rstate_open(&c, uri, &o), RSTATE_OK);
  recorder r;
  rec_init(&r);
  rec_watch1(c, &r, "x", NULL);
  ASSERT_RC(rstate_set_int(c, "x", 1), RSTATE_OK);
  rec_wait(&r, 1);
  expect_changed(&r, 0, 0, 1, 2);

  /* killed; started again after two changes the client does not see */
  kill9(pid);
  int64_t missed[] = {2, 3};
  pid = serve(10, missed, 2);
  rec_wait(&r, 3);
  expect_changed(&r, 1, 1, 2, 3);
  expect_changed(&r, 2, 2, 3, 4);
  /* and it goes on from the server's own memory */
  ASSERT_RC(rstate_set_int(c, "x", 4), RSTATE_OK);
  rec_wait(&r, 4);
  expect_changed(&r, 3, 3, 4, 5);

  /* killed again; this time the store keeps 2 versions back and 10 changes
   * come: what the client missed is gone, so RESYNC with the value now */
  kill9(pid);
  int64_t many[] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  pid = serve(2, many, 10);
  rec_wait(&r, 5);
  pthread_mutex_lock(&r.lock);
  rec_event e = r.ev[4];
  pthread_mutex_unlock(&r.lock);
  cr_assert_eq(e.kind, RSTATE_EVENT_RESYNC, "event 4 is of kind %d, want RESYNC", (int)e.kind);
  cr_assert_eq(e.new_value.u.i, 14);

  rstate_close(c);
  rec_free(&r);
  kill9(pid);
  h_rmdir(dir);
  unlink(sock);
}
