/*
 * lockfile.c — the lock rstated holds beside its snapshot (lockfile.h).
 */
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lockfile_take(const char *path, char *err, size_t errlen) {
  char *lock = NULL;
  if (asprintf(&lock, "%s.lock", path) < 0) {
    snprintf(err, errlen, "%s: out of memory", path);
    return -1;
  }
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "%s: the snapshot could not be written: cannot open its lock file %s: %s", path, lock,
             strerror(errno));
    free(lock);
    return -1;
  }
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_SETLK, &fl) != 0) {
    int e = errno;
    if (e == EACCES || e == EAGAIN) {
      struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
      if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK && who.l_pid > 0)
        snprintf(err, errlen, "%s: in use by another rstated, pid %ld (it holds %s)", path, (long)who.l_pid, lock);
      else
        snprintf(err, errlen, "%s: in use by another rstated (it holds %s)", path, lock);
    } else {
      snprintf(err, errlen, "%s: cannot lock %s: %s", path, lock, strerror(e));
    }
    close(fd);
    free(lock);
    return -1;
  }
  /* the pid, for people looking at the file */
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    /* the lock holds all the same */
  }
  free(lock);
  return fd;
}
