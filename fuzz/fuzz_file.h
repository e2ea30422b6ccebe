/*
 * fuzz_file.h — what the journal and snapshot targets share: a scratch
 * store directory holding one file made of the input, opened as a file:
 * store.
 *
 * Invariants checked on every input (abort() on a breach):
 *  - the open returns RSTATE_OK, RSTATE_EIO or RSTATE_ENOMEM, nothing else;
 *  - RSTATE_EIO: the sentence names the file and a byte offset, and every
 *    file of the directory is as it was (compared byte for byte);
 *  - with the first input byte odd, the target rewrites every frame's
 *    checksum first, so that the record decoder sees the mutations;
 *  - RSTATE_OK: every variable listed reads back with the kind of its type,
 *    its history walks, a set of its current value is accepted, and the
 *    store closes and opens again to the same revision.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file/file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_dir[128];

static void fz_write(const char *name, const uint8_t *p, size_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", fz_dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) abort();
  if (n && write(fd, p, n) != (ssize_t)n) abort();
  close(fd);
}

/* Removes every file of the directory. */
static void fz_clear(void) {
  if (!fz_dir[0]) {
    snprintf(fz_dir, sizeof fz_dir, "/dev/shm/rstate-fuzz-%d", (int)getpid());
    mkdir(fz_dir, 0700);
  }
  DIR *d = opendir(fz_dir);
  if (!d) abort();
  struct dirent *e;
  char path[512];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", fz_dir, e->d_name);
    unlink(path);
  }
  closedir(d);
}

/* The directory's files (but the lock file), names and bytes, in one buffer. */
static uint8_t *fz_image(size_t *n) {
  uint8_t *buf = NULL;
  size_t len = 0;
  const char *names[] = {"snapshot", "journal.0000000000000001", "journal.0000000000000002"};
  for (size_t i = 0; i < 3; i++) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fz_dir, names[i]);
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
      if (fd >= 0) close(fd);
      continue;
    }
    buf = realloc(buf, len + (size_t)st.st_size + 64);
    if (!buf) abort();
    len += (size_t)snprintf((char *)buf + len, 64, "%s:%lld:", names[i], (long long)st.st_size);
    if (st.st_size && read(fd, buf + len, (size_t)st.st_size) != st.st_size) abort();
    len += (size_t)st.st_size;
    close(fd);
  }
  *n = len;
  return buf;
}

/* Rewrites the checksum of every frame from off on, so that mutations reach
 * the record decoder instead of stopping at the checksum. */
static void fz_fix_crcs(uint8_t *buf, size_t n, size_t off) {
  while (off + RSTATE_FRAME_HEAD <= n) {
    uint32_t len = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8 | (uint32_t)buf[off + 2] << 16 |
                   (uint32_t)buf[off + 3] << 24;
    if (len == 0 || len > n - off - RSTATE_FRAME_HEAD) return;
    uint32_t crc = rstate__crc32c(0, buf + off, 4);
    crc = rstate__crc32c(crc, buf + off + RSTATE_FRAME_HEAD, len);
    for (int i = 0; i < 4; i++) buf[off + 4 + i] = (uint8_t)(crc >> (8 * i));
    off += RSTATE_FRAME_HEAD + (((size_t)len + 7) & ~(size_t)7);
  }
}

static rstate_kind fz_kind(rstate_type t) {
  switch (t) {
  case RSTATE_TYPE_FLOAT: return RSTATE_FLOAT;
  case RSTATE_TYPE_INTEGER: return RSTATE_INT;
  case RSTATE_TYPE_BOOLEAN: return RSTATE_BOOL;
  default: return RSTATE_STRING;
  }
}

static int fz_hist(const rstate_history_entry *e, void *ud) {
  (void)ud;
  if (e->value.kind == RSTATE_STRING && strlen(e->value.u.s.ptr) != e->value.u.s.len) abort();
  return 0;
}

static int fz_var(const char *name, rstate_type type, void *ud) {
  rstate_store *s = ud;
  rstate_value v;
  if (rstate_get(s, name, &v) != RSTATE_OK) {
    fprintf(stderr, "get %s: %s\n", name, rstate_last_error());
    abort();
  }
  if (v.kind != fz_kind(type)) abort();
  if (rstate_history(s, name, 0, fz_hist, NULL) != RSTATE_OK) abort();
  int rc = rstate_set(s, name, &v, NULL);
  if (rc != RSTATE_OK && rc != RSTATE_ENOMEM) abort();
  rstate_value_clear(&v);
  return 0;
}

/* Opens the directory and checks the invariants; file names the file fed. */
static void fz_check(const char *file) {
  size_t n1, n2;
  uint8_t *before = fz_image(&n1);
  char uri[160];
  snprintf(uri, sizeof uri, "file:%s", fz_dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_NONE;
  rstate_store *s = NULL;
  int rc = rstate_open(&s, uri, &o);
  if (rc == RSTATE_EIO) {
    const char *msg = rstate_last_error();
    if (!strstr(msg, file) || !strstr(msg, "byte ")) {
      fprintf(stderr, "EIO sentence without file or offset: %s\n", msg);
      abort();
    }
    uint8_t *after = fz_image(&n2);
    if (n1 != n2 || memcmp(before, after, n1)) {
      fprintf(stderr, "a refused open changed the files: %s\n", msg);
      abort();
    }
    free(after);
  } else if (rc == RSTATE_OK) {
    if (rstate_list(s, fz_var, s) != RSTATE_OK) abort();
    uint64_t rev = rstate_revision(s);
    rstate_close(s);
    if (rstate_open(&s, uri, &o) != RSTATE_OK) {
      fprintf(stderr, "reopening failed: %s\n", rstate_last_error());
      abort();
    }
    if (rstate_revision(s) != rev) abort();
    rstate_close(s);
  } else if (rc != RSTATE_ENOMEM) {
    fprintf(stderr, "open returned %s: %s\n", rstate_error_name(rc), rstate_last_error());
    abort();
  }
  free(before);
}
