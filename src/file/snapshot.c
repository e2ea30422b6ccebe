/*
 * snapshot.c — reading a file: store's directory, and writing its snapshot.
 *
 * Reading writes nothing: it fills a local backend from the snapshot and the
 * journals that follow it, and any damage but a torn last record stops it
 * with RSTATE_EIO, naming the file and the byte offset, before a file is
 * touched. The caller zeroes the torn tail afterwards.
 *
 * Writing goes to "snapshot.tmp", which is synced, renamed over "snapshot",
 * and the directory synced: the old snapshot or the new one is there after a
 * crash, never a mix.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

static const uint8_t snap_magic[8] = {'R', 'S', 'T', 'S', 'N', 'A', 'P', '1'};
static const uint8_t jrnl_magic[8] = {'R', 'S', 'T', 'J', 'R', 'N', 'L', '1'};

void rstate__dirstate_free(rstate__dirstate *st) {
  free(st->gens);
  st->gens = NULL;
  st->n_gens = 0;
}

/* Reads a whole file; *buf NULL and RSTATE_OK when it does not exist. */
static int read_file(const char *path, uint8_t **buf, size_t *n) {
  *buf = NULL;
  *n = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return RSTATE_OK;
    return rstate__err(RSTATE_EIO, "%s: cannot open: %s", path, strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st)) {
    int e = errno;
    close(fd);
    return rstate__err(RSTATE_EIO, "%s: %s", path, strerror(e));
  }
  size_t size = (size_t)st.st_size;
  uint8_t *p = malloc(size ? size : 1);
  if (!p) {
    close(fd);
    return rstate__err(RSTATE_ENOMEM, "%s: out of memory reading %zu bytes", path, size);
  }
  size_t got = 0;
  while (got < size) {
    ssize_t r = read(fd, p + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? errno : 0;
      close(fd);
      free(p);
      return rstate__err(RSTATE_EIO, "%s: cannot read at byte %zu: %s", path, got, e ? strerror(e) : "end of file");
    }
    got += (size_t)r;
  }
  close(fd);
  *buf = p;
  *n = size;
  return RSTATE_OK;
}

/* A failure while applying a record: ENOMEM stays, anything else is damage. */
static int damaged(int rc, const char *path, size_t off, const char *what) {
  if (rc == RSTATE_ENOMEM) return rc;
  char why[512];
  snprintf(why, sizeof why, "%s", what ? what : rstate_last_error());
  return rstate__err(RSTATE_EIO, "%s: damaged at byte %zu: %s; nothing was changed", path, off, why);
}

static int define_from(rstate_backend *b, const rstate__rec *r, uint64_t revision, int64_t ts, const char *path,
                       size_t off) {
  rstate__spec *spec;
  int rc = rstate__spec_new(&spec, &r->def);
  if (rc) return damaged(rc, path, off, NULL);
  rc = rstate__local_restore_define(b, spec, revision, ts);
  return rc ? damaged(rc, path, off, NULL) : RSTATE_OK;
}

static int load_snapshot(rstate_backend *b, const char *dir, rstate__dirstate *st, rstate__arena *arena) {
  size_t plen = strlen(dir) + 16;
  char *path = malloc(plen);
  if (!path) return rstate__err(RSTATE_ENOMEM, "%s: out of memory", dir);
  snprintf(path, plen, "%s/snapshot", dir);
  uint8_t *buf;
  size_t n;
  int rc = read_file(path, &buf, &n);
  if (rc || !buf) {
    free(path);
    return rc;
  }
  st->snap_size = n;
  if (n < 8 || memcmp(buf, snap_magic, 8) != 0) rc = damaged(RSTATE_EIO, path, 0, "it is not a snapshot");
  size_t off = 8, vars = 0;
  uint64_t want = 0;
  int stage = 0; /* 0: head expected, 1: variables, 2: after the end */
  while (!rc) {
    const uint8_t *p;
    size_t len, next;
    rstate__frame_state fs = rstate__frame_at(buf, n, off, &p, &len, &next);
    if (fs == RSTATE_FRAME_END) {
      if (stage != 2) rc = damaged(RSTATE_EIO, path, off, "it ends before its last record");
      break;
    }
    if (fs != RSTATE_FRAME_OK) {
      rc = damaged(RSTATE_EIO, path, off, fs == RSTATE_FRAME_TORN ? "a record is cut short" : "a record fails its checksum");
      break;
    }
    rstate__rec r;
    const char *why;
    if (!rstate__rec_decode(p, len, &r, arena, &why)) {
      rc = strcmp(why, "out of memory") ? damaged(RSTATE_EIO, path, off, why)
                                        : rstate__err(RSTATE_ENOMEM, "%s: out of memory", path);
      break;
    }
    if (stage == 0 && r.kind == RSTATE_REC_SNAP_HEAD) {
      st->snap_gen = r.gen ? r.gen : 1;
      want = r.n_vars;
      rstate__local_restore_revision(b, r.revision);
      stage = 1;
    } else if (stage == 1 && r.kind == RSTATE_REC_SNAP_VAR) {
      rc = define_from(b, &r, r.revision, r.ts, path, off);
      if (!rc) rc = rstate__local_restore_state(b, r.def.name, &r.value, r.version, r.revision, r.ts);
      if (!rc) rc = rstate__local_restore_history(b, r.def.name, r.hist, r.n_hist);
      if (rc) rc = damaged(rc, path, off, NULL);
      vars++;
    } else if (stage == 1 && r.kind == RSTATE_REC_SNAP_END) {
      if (r.n_vars != vars || vars != want) rc = damaged(RSTATE_EIO, path, off, "it holds fewer variables than it says");
      stage = 2;
    } else {
      rc = damaged(RSTATE_EIO, path, off, "a record out of place");
    }
    off = next;
  }
  free(buf);
  free(path);
  return rc;
}

static int apply(rstate_backend *b, const rstate__rec *r, const char *path, size_t off, uint64_t *last) {
  if (r->kind != RSTATE_REC_DEFINE && r->kind != RSTATE_REC_UNDEFINE && r->kind != RSTATE_REC_SET)
    return damaged(RSTATE_EIO, path, off, "a snapshot record in a journal");
  if (r->revision <= *last) return damaged(RSTATE_EIO, path, off, "its revision does not follow the one before");
  *last = r->revision;
  int rc = RSTATE_OK;
  switch (r->kind) {
  case RSTATE_REC_DEFINE: return define_from(b, r, r->revision, r->ts, path, off);
  case RSTATE_REC_UNDEFINE: rc = rstate__local_restore_undefine(b, r->name, r->revision); break;
  default:
    for (size_t i = 0; !rc && i < r->n_items; i++)
      rc = rstate__local_restore_set(b, r->items[i].name, &r->items[i].value, r->items[i].version, r->revision, r->ts,
                                     r->source, r->meta, r->n_meta);
    break;
  }
  return rc ? damaged(rc, path, off, NULL) : RSTATE_OK;
}

static int load_journal(rstate_backend *b, const char *dir, uint64_t gen, bool last, rstate__dirstate *st,
                        rstate__arena *arena, uint64_t *last_rev) {
  char *path = rstate__journal_path(dir, gen);
  if (!path) return rstate__err(RSTATE_ENOMEM, "%s: out of memory", dir);
  uint8_t *buf;
  size_t n;
  int rc = read_file(path, &buf, &n);
  if (rc || !buf) {
    free(path);
    return rc;
  }
  uint8_t head[RSTATE_JOURNAL_HEAD];
  memcpy(head, jrnl_magic, 8);
  for (int i = 0; i < 8; i++) head[8 + i] = (uint8_t)(gen >> (8 * i));
  if (n < RSTATE_JOURNAL_HEAD || memcmp(buf, head, RSTATE_JOURNAL_HEAD) != 0) {
    /* cut short when it was being created: a prefix of its head, then zeros */
    bool prefix = true;
    for (size_t i = 0; i < RSTATE_JOURNAL_HEAD && i < n && prefix; i++) prefix = buf[i] == head[i] || buf[i] == 0;
    for (size_t i = RSTATE_JOURNAL_HEAD; i < n && prefix; i++) prefix = buf[i] == 0;
    if (!last || !prefix) rc = damaged(RSTATE_EIO, path, 0, "its head is missing or damaged");
    st->last_headless = true;
    st->last_end = RSTATE_JOURNAL_HEAD;
    free(buf);
    free(path);
    return rc;
  }
  size_t off = RSTATE_JOURNAL_HEAD;
  while (!rc) {
    const uint8_t *p;
    size_t len, next;
    rstate__frame_state fs = rstate__frame_at(buf, n, off, &p, &len, &next);
    if (fs == RSTATE_FRAME_OK) {
      rstate__rec r;
      const char *why;
      if (!rstate__rec_decode(p, len, &r, arena, &why))
        rc = strcmp(why, "out of memory") ? damaged(RSTATE_EIO, path, off, why)
                                          : rstate__err(RSTATE_ENOMEM, "%s: out of memory", path);
      else
        rc = apply(b, &r, path, off, last_rev);
      st->records++;
      off = next;
      continue;
    }
    /* the end, or a record that is not whole: the torn tail of the last
     * journal when nothing whole follows it; damage otherwise */
    bool follows = rstate__frame_any(buf, n, off + RSTATE_FRAME_HEAD);
    if (fs == RSTATE_FRAME_END && follows)
      rc = damaged(RSTATE_EIO, path, off, "zeros where a record should be, with whole records after them");
    else if (fs == RSTATE_FRAME_BAD && follows)
      rc = damaged(RSTATE_EIO, path, off, "a record fails its checksum, with whole records after it");
    else if (fs != RSTATE_FRAME_END && !last)
      rc = damaged(RSTATE_EIO, path, off, "a record is cut short in a journal that is not the last");
    break;
  }
  if (last) st->last_end = off;
  free(buf);
  free(path);
  return rc;
}

static int gen_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int list_journals(const char *dir, rstate__dirstate *st) {
  DIR *d = opendir(dir);
  if (!d) return rstate__err(RSTATE_EIO, "%s: cannot read the directory: %s", dir, strerror(errno));
  size_t cap = 0;
  struct dirent *e;
  int rc = RSTATE_OK;
  while (!rc && (e = readdir(d))) {
    const char *nm = e->d_name;
    if (strncmp(nm, "journal.", 8) != 0 || strlen(nm) != 24) continue;
    char *end;
    uint64_t gen = strtoull(nm + 8, &end, 16);
    if (*end || gen == 0) continue;
    if (st->n_gens == cap) {
      cap = cap ? cap * 2 : 8;
      uint64_t *g = realloc(st->gens, cap * sizeof *g);
      if (!g) {
        rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory", dir);
        break;
      }
      st->gens = g;
    }
    st->gens[st->n_gens++] = gen;
  }
  closedir(d);
  if (!rc && st->n_gens) qsort(st->gens, st->n_gens, sizeof *st->gens, gen_cmp);
  return rc;
}

int rstate__dir_load(rstate_backend *b, const char *dir, uint64_t max_gen, rstate__dirstate *st) {
  memset(st, 0, sizeof *st);
  st->snap_gen = 1;
  rstate__arena arena = {0};
  int rc = list_journals(dir, st);
  if (!rc) rc = load_snapshot(b, dir, st, &arena);
  uint64_t last_rev = rstate__local_ops.revision(b);
  size_t first = 0, end = 0;
  while (first < st->n_gens && st->gens[first] < st->snap_gen) first++;
  end = first;
  while (end < st->n_gens && st->gens[end] <= max_gen) end++;
  for (size_t i = first; !rc && i < end; i++)
    rc = load_journal(b, dir, st->gens[i], i + 1 == end, st, &arena, &last_rev);
  rstate__arena_free(&arena);
  return rc;
}

/* ---- writing ------------------------------------------------------------ */

static int put_var(const rstate__local_view *v, void *ud) {
  rstate__buf *b = ud;
  size_t at = rstate__frame_begin(b);
  rstate__enc_snap_var(b, v);
  if (!rstate__frame_end(b, at))
    return rstate__err(b->oom ? RSTATE_ENOMEM : RSTATE_ELIMIT, "%s: its record is too large for a snapshot",
                       rstate__spec_name(v->spec));
  return RSTATE_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int rstate__snapshot_write(rstate_backend *b, const char *dir, uint64_t gen, size_t *size) {
  rstate__buf buf = {0};
  size_t count = rstate__local_count(b);
  if (!(buf.p = malloc(256))) return rstate__err(RSTATE_ENOMEM, "%s: out of memory writing the snapshot", dir);
  buf.cap = 256;
  memcpy(buf.p, snap_magic, 8);
  buf.len = 8;
  size_t at = rstate__frame_begin(&buf);
  rstate__enc_snap_head(&buf, rstate__local_ops.revision(b), gen, count);
  rstate__frame_end(&buf, at);
  int rc = rstate__local_walk(b, put_var, &buf, NULL);
  at = rstate__frame_begin(&buf);
  rstate__enc_snap_end(&buf, count);
  if (!rc && !rstate__frame_end(&buf, at)) rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory writing the snapshot", dir);
  size_t plen = strlen(dir) + 32;
  char *tmp = malloc(plen), *final = malloc(plen);
  if (!rc && (!tmp || !final)) rc = rstate__err(RSTATE_ENOMEM, "%s: out of memory", dir);
  if (!rc) {
    snprintf(tmp, plen, "%s/snapshot.tmp", dir);
    snprintf(final, plen, "%s/snapshot", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int e = fd < 0 ? errno : write_all(fd, buf.p, buf.len);
    if (!e && fsync(fd)) e = errno;
    if (fd >= 0 && close(fd) && !e) e = errno;
    if (!e && rename(tmp, final)) e = errno;
    if (e) {
      unlink(tmp);
      rc = rstate__err(RSTATE_EIO, "%s: cannot write the snapshot: %s", tmp, strerror(e));
    } else {
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
      }
      if (size) *size = buf.len;
    }
  }
  free(tmp);
  free(final);
  rstate__buf_free(&buf);
  return rc;
}
