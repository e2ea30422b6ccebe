/*
 * proxy.c — see proxy.h. One thread, poll(2) over every socket, and a pipe
 * to wake it when the test asks for something.
 */
#include "proxy.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PAIRS 64

struct proxy {
  char uri[128], path[108], target[128];
  int listen_fd, wake[2];
  pthread_t thread;
  pthread_mutex_t lock;
  int pairs[MAX_PAIRS][2]; /* client, server; -1 when free */
  bool cut, hold, stop;
  int accepted;
};

static int connect_target(const char *target) {
  int fd = -1;
  if (!strncmp(target, "unix:", 5)) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", target + 5);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
      close(fd);
      fd = -1;
    }
  } else if (!strncmp(target, "tcp:", 4)) {
    char host[64];
    snprintf(host, sizeof host, "%s", target + 4);
    char *colon = strrchr(host, ':');
    if (!colon) return -1;
    *colon = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai)) return -1;
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      close(fd);
      fd = -1;
    }
    freeaddrinfo(ai);
  }
  return fd;
}

static void close_pair(proxy *p, int i) {
  close(p->pairs[i][0]);
  close(p->pairs[i][1]);
  p->pairs[i][0] = p->pairs[i][1] = -1;
}

static void *run(void *arg) {
  proxy *p = arg;
  for (;;) {
    struct pollfd fds[2 + 2 * MAX_PAIRS];
    int idx[2 + 2 * MAX_PAIRS];
    int n = 0;
    pthread_mutex_lock(&p->lock);
    if (p->stop) {
      pthread_mutex_unlock(&p->lock);
      break;
    }
    if (p->cut) {
      for (int i = 0; i < MAX_PAIRS; i++)
        if (p->pairs[i][0] >= 0) close_pair(p, i);
      p->cut = false;
    }
    bool hold = p->hold;
    fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
    for (int i = 0; i < MAX_PAIRS && !hold; i++)
      for (int k = 0; k < 2; k++)
        if (p->pairs[i][k] >= 0) {
          idx[n] = i * 2 + k;
          fds[n++] = (struct pollfd){.fd = p->pairs[i][k], .events = POLLIN};
        }
    pthread_mutex_unlock(&p->lock);
    if (poll(fds, (nfds_t)n, -1) < 0 && errno != EINTR) break;
    if (fds[0].revents) {
      char buf[64];
      if (read(p->wake[0], buf, sizeof buf) < 0) { /* nothing: woken anyway */
      }
    }
    pthread_mutex_lock(&p->lock);
    if (fds[1].revents) {
      int c = accept(p->listen_fd, NULL, NULL);
      int s = c >= 0 ? connect_target(p->target) : -1;
      int slot = -1;
      for (int i = 0; i < MAX_PAIRS && slot < 0; i++)
        if (p->pairs[i][0] < 0) slot = i;
      if (c >= 0 && s >= 0 && slot >= 0) {
        p->pairs[slot][0] = c;
        p->pairs[slot][1] = s;
        p->accepted++;
      } else {
        if (c >= 0) close(c);
        if (s >= 0) close(s);
      }
    }
    for (int j = 2; j < n; j++) {
      if (!fds[j].revents) continue;
      int i = idx[j] / 2, k = idx[j] % 2;
      if (p->pairs[i][k] != fds[j].fd) continue; /* closed meanwhile */
      char buf[65536];
      ssize_t got = read(fds[j].fd, buf, sizeof buf);
      bool ok = got > 0;
      for (ssize_t off = 0; ok && off < got;) {
        ssize_t w = write(p->pairs[i][1 - k], buf + off, (size_t)(got - off));
        if (w <= 0) ok = false;
        off += w;
      }
      if (!ok) close_pair(p, i);
    }
    pthread_mutex_unlock(&p->lock);
  }
  return NULL;
}

static void poke(proxy *p) {
  if (write(p->wake[1], "x", 1) < 0) { /* a full pipe wakes it anyway */
  }
}

proxy *proxy_start(const char *target) {
  static int serial;
  proxy *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  snprintf(p->target, sizeof p->target, "%s", target);
  snprintf(p->path, sizeof p->path, "/tmp/rstate-proxy-%d-%d.sock", (int)getpid(), serial++);
  snprintf(p->uri, sizeof p->uri, "unix:%s", p->path);
  for (int i = 0; i < MAX_PAIRS; i++) p->pairs[i][0] = p->pairs[i][1] = -1;
  pthread_mutex_init(&p->lock, NULL);
  unlink(p->path);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", p->path);
  p->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(p->listen_fd, 64) < 0 ||
      pipe(p->wake) < 0 || pthread_create(&p->thread, NULL, run, p)) {
    free(p);
    return NULL;
  }
  return p;
}

const char *proxy_uri(const proxy *p) { return p->uri; }

void proxy_cut(proxy *p) {
  pthread_mutex_lock(&p->lock);
  p->cut = true;
  pthread_mutex_unlock(&p->lock);
  poke(p);
}

void proxy_hold(proxy *p, bool hold) {
  pthread_mutex_lock(&p->lock);
  p->hold = hold;
  pthread_mutex_unlock(&p->lock);
  poke(p);
}

int proxy_accepted(proxy *p) {
  pthread_mutex_lock(&p->lock);
  int n = p->accepted;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void proxy_stop(proxy *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  pthread_mutex_unlock(&p->lock);
  poke(p);
  pthread_join(p->thread, NULL);
  for (int i = 0; i < MAX_PAIRS; i++)
    if (p->pairs[i][0] >= 0) close_pair(p, i);
  close(p->listen_fd);
  close(p->wake[0]);
  close(p->wake[1]);
  unlink(p->path);
  pthread_mutex_destroy(&p->lock);
  free(p);
}
