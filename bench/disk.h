/*
 * disk.h — the disk's own floor for the durable benchmarks (file.c,
 * peers_file.c): a pwrite of n bytes appended to a file in dir, then
 * fdatasync, timed on the wall clock (waiting for the disk is the cost).
 */
#ifndef RSTATE_BENCH_DISK_H
#define RSTATE_BENCH_DISK_H

#include <fcntl.h>

#include "bench.h"

static inline bsum bench_floor_fdatasync(const char *dir, size_t samples, size_t n) {
  char path[512], buf[256];
  if (n > sizeof buf) bench_die("bench_floor_fdatasync: at most 256 bytes");
  snprintf(path, sizeof path, "%s/floor.bin", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) bench_die("cannot create the floor file");
  memset(buf, 'x', sizeof buf);
  bstats st = {0};
  off_t off = 0;
  BENCH_LOOP(&st, samples, 1, {
    if (pwrite(fd, buf, n, off) != (ssize_t)n || fdatasync(fd)) bench_die("pwrite/fdatasync failed");
    off += (off_t)n;
  });
  st.cpu = 0;
  close(fd);
  unlink(path);
  bsum r = bs_sum(&st);
  bs_free(&st);
  return r;
}

#endif
