/*
 * redisserver.h — Redis servers of a test's own, for test_redis: started on
 * 127.0.0.1 on a free port in a temporary directory with nothing saved,
 * stopped by their pid (SIGKILL when asked, as a crash would), and killed
 * with the test process if it dies first. Raw commands go through the
 * library's own RESP connection (src/redis). Header-only, static inline.
 */
#ifndef RSTATE_TEST_REDISSERVER_H
#define RSTATE_TEST_REDISSERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "helpers.h"
#include "redis/redis.h"

typedef struct h_redis {
  pid_t pid;
  int port;
  char dir[64];
  char hostport[32];
} h_redis;

static inline int h_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  cr_assert(fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &len),
            "no free port");
  close(fd);
  return ntohs(a.sin_port);
}

/* Sends one command to the server; returns the reply (free it with
 * rstate__resp_free), or NULL when the server cannot be reached. */
static inline rstate__resp *h_redis_cmdv(int port, int argc, const char *const *argv) {
  char uri[64];
  snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", port);
  rstate__addr addr;
  if (rstate__addr_parse(&addr, uri, "test")) return NULL;
  rstate__redis_conn c;
  rstate__redis_conn_init(&c);
  rstate__resp *rep = NULL;
  if (!rstate__redis_connect(&c, &addr, uri, NULL, NULL, 1000))
    rstate__redis_command(&c, uri, 5000, &rep, argc, argv, NULL);
  rstate__redis_conn_free(&c);
  return rep;
}

/* h_redis_cmd(port, "SET", "k", "v", NULL) */
static inline rstate__resp *h_redis_cmd(int port, ...) {
  const char *argv[80];
  int argc = 0;
  va_list ap;
  va_start(ap, port);
  const char *a;
  while ((a = va_arg(ap, const char *)) && argc < 80) argv[argc++] = a;
  va_end(ap);
  return h_redis_cmdv(port, argc, argv);
}

/* Runs a command that must succeed (no error reply). */
static inline void h_redis_ok(int port, ...) {
  const char *argv[32];
  int argc = 0;
  va_list ap;
  va_start(ap, port);
  const char *a;
  while ((a = va_arg(ap, const char *)) && argc < 32) argv[argc++] = a;
  va_end(ap);
  rstate__resp *rep = h_redis_cmdv(port, argc, argv);
  cr_assert_not_null(rep, "%s: no answer from the Redis server on port %d", argv[0], port);
  cr_assert_neq(rep->type, RSTATE_RESP_ERROR, "%s: %s", argv[0], rep->str);
  rstate__resp_free(rep);
}

/* Starts redis-server with argv (NULL-terminated) and waits, at most 10 s,
 * until it answers PING (or asks for a password). */
static inline void h_redis_spawn(h_redis *r, const char *const *argv) {
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (!pid) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
    if (getppid() != parent) _exit(1);
    execvp("redis-server", (char *const *)argv);
    _exit(127);
  }
  r->pid = pid;
  for (int i = 0; i < 1000; i++) {
    rstate__resp *rep = h_redis_cmd(r->port, "PING", NULL);
    bool up = rep && (rep->type == RSTATE_RESP_STATUS || (rep->type == RSTATE_RESP_ERROR && strstr(rep->str, "NOAUTH")));
    rstate__resp_free(rep);
    if (up) return;
    int st;
    cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "redis-server exited at start (see %s/redis.log)", r->dir);
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL); /* polling a process we cannot be told about */
  }
  cr_assert_fail("redis-server on port %d did not answer within 10 s", r->port);
}

static inline void h_redis_prepare(h_redis *r) {
  memset(r, 0, sizeof *r);
  snprintf(r->dir, sizeof r->dir, "/tmp/rstate-redis-XXXXXX");
  cr_assert_not_null(mkdtemp(r->dir), "mkdtemp: %s", strerror(errno));
  r->port = h_free_port();
  snprintf(r->hostport, sizeof r->hostport, "127.0.0.1:%d", r->port);
}

/* Starts a server; extra arguments (NULL-terminated) go to redis-server.
 * h_redis_restart starts a stopped one again on its port and directory. */
#define h_redis_start(r, ...) (h_redis_prepare(r), h_redis_run(r, __VA_ARGS__))
#define h_redis_restart(r, ...) h_redis_run(r, __VA_ARGS__)
static inline void h_redis_run(h_redis *r, ...) {
  char port[16], log[96];
  snprintf(port, sizeof port, "%d", r->port);
  snprintf(log, sizeof log, "%s/redis.log", r->dir);
  const char *argv[48] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", r->dir, "--logfile", log, "--repl-diskless-sync-delay", "0"};
  int argc = 15;
  va_list ap;
  va_start(ap, r);
  const char *a;
  while ((a = va_arg(ap, const char *)) && argc < 46) argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  h_redis_spawn(r, argv);
}

/* Starts a Sentinel watching the primary on master_port as "mymaster",
 * quick to act: down after 1 s (less is flaky on a loaded machine), quorum 1. */
static inline void h_sentinel_start(h_redis *r, int master_port) {
  h_redis_prepare(r);
  char conf[96];
  snprintf(conf, sizeof conf, "%s/sentinel.conf", r->dir);
  FILE *f = fopen(conf, "w");
  cr_assert_not_null(f);
  fprintf(f,
          "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s/redis.log\n"
          "sentinel monitor mymaster 127.0.0.1 %d 1\n"
          "sentinel down-after-milliseconds mymaster 1000\n"
          "sentinel failover-timeout mymaster 15000\n",
          r->port, r->dir, r->dir, master_port);
  fclose(f);
  const char *argv[] = {"redis-server", conf, "--sentinel", NULL};
  h_redis_spawn(r, argv);
}

/* Kills the server (as a crash would), keeping its port and directory. */
static inline void h_redis_kill(h_redis *r) {
  if (r->pid > 0) {
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
  }
}

/* Stops the server (sig: SIGTERM, or SIGKILL for a crash) and removes its
 * directory; safe on a zeroed or stopped one. */
static inline void h_redis_stop(h_redis *r, int sig) {
  if (r->pid > 0) {
    kill(r->pid, sig);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
  }
  if (r->dir[0] && !getenv("RSTATE_TEST_KEEP")) { /* RSTATE_TEST_KEEP: logs stay */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd)) {
    }
    r->dir[0] = 0;
  }
}

/* A fresh store name for this test process. */
static inline const char *h_redis_uri(const h_redis *r, const char *store) {
  static char uri[4][160];
  static int k;
  char *u = uri[k++ % 4];
  snprintf(u, 160, "redis:%s/%s", r->hostport, store);
  return u;
}

#endif
