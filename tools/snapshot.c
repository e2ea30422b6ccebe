/*
 * snapshot.c — rstated's snapshot file: every variable's value, version and
 * time of last change, and the store revision, written atomically
 * (temporary file, fsync, rename, fsync of the directory) with an end
 * record that proves the file whole, and restored exactly or not at all.
 * The format and the restore rules are in snapshot.h.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "eventfmt.h"
#include "private.h"
#include "textvalue.h"

#define HEADER "# reactivestate snapshot 2"
#define HEADER_1 "# reactivestate snapshot 1"
#define END_PREFIX "# end: "

/* ---- the checksum -------------------------------------------------------- */

uint32_t snapshot_crc32(uint32_t crc, const void *p, size_t n) {
  static uint32_t table[256];
  static bool ready;
  if (!ready) { /* computed twice at worst, to the same values */
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = true;
  }
  const unsigned char *b = p;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* ---- collecting the store's variables ------------------------------------ */

typedef struct var {
  char *name;
  rstate_type type;
  rstate_value value; /* an owned copy */
  uint64_t version;
  int64_t updated_ns;
} var;

typedef struct var_list {
  var *v;
  size_t n, cap;
} var_list;

/* Under the store's snapshot: copies each variable. */
static int collect(const rstate_snapshot_var *sv, void *ud) {
  var_list *l = ud;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    var *v = realloc(l->v, cap * sizeof *v);
    if (!v) return RSTATE_ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  var *v = &l->v[l->n];
  memset(v, 0, sizeof *v);
  if (!(v->name = strdup(sv->name))) return RSTATE_ENOMEM;
  if (rstate_value_copy(&v->value, sv->value) != RSTATE_OK) {
    free(v->name);
    return RSTATE_ENOMEM;
  }
  v->type = sv->type;
  v->version = sv->version;
  v->updated_ns = sv->updated_ns;
  l->n++;
  return RSTATE_OK;
}

static void var_list_free(var_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].name);
    rstate_value_clear(&l->v[i].value);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int by_name(const void *a, const void *b) { return strcmp(((const var *)a)->name, ((const var *)b)->name); }

/* ---- writing ------------------------------------------------------------- */

/* The whole file's text, end record included, into a memory stream. */
static int write_text(FILE *f, char **text, size_t *len, const var_list *l, uint64_t revision) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char when[40];
  eventfmt_time((int64_t)now.tv_sec * 1000000000 + now.tv_nsec, when);
  if (fprintf(f, HEADER "\n# written %s at store revision %" PRIu64 "\n", when, revision) < 0) return -1;
  for (size_t i = 0; i < l->n; i++) {
    const var *v = &l->v[i];
    if (fprintf(f, "%s\t%s\t%" PRIu64 "\t%" PRId64 "\t", v->name, rstate_type_name(v->type), v->version,
                v->updated_ns) < 0)
      return -1;
    int r = v->value.kind == RSTATE_STRING ? tv_escape(f, v->value.u.s.ptr, v->value.u.s.len, false)
                                           : tv_print(f, &v->value, TV_RAW);
    if (r < 0 || putc('\n', f) == EOF) return -1;
  }
  if (fflush(f) != 0) return -1;
  uint32_t crc = snapshot_crc32(0, *text, *len);
  if (fprintf(f, END_PREFIX "%zu variables, crc32 %08" PRIx32 "\n", l->n, crc) < 0 || fflush(f) != 0) return -1;
  return 0;
}

/* The directory of path, for the temporary file and the final fsync. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

int snapshot_write(rstate_store *s, const char *path, size_t *count, char *err, size_t errlen) {
  var_list l = {0};
  uint64_t revision = 0;
  int rc = rstate__dump(s, collect, &l, &revision);
  if (rc != RSTATE_OK) {
    snprintf(err, errlen, "%s: reading the store: %s", path,
             rc == RSTATE_ENOMEM ? "out of memory" : rstate_last_error());
    var_list_free(&l);
    return -1;
  }
  if (l.n) qsort(l.v, l.n, sizeof *l.v, by_name);
  int result = -1;
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  if (!mem || write_text(mem, &text, &len, &l, revision) != 0) {
    snprintf(err, errlen, "%s: out of memory", path);
    if (mem) fclose(mem);
    free(text);
    var_list_free(&l);
    return -1;
  }
  fclose(mem);
  char *dir = dir_of(path);
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  char *tmp = NULL;
  int fd = -1;
  if (!dir || asprintf(&tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
    tmp = NULL;
    snprintf(err, errlen, "%s: out of memory", path);
    goto out;
  }
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "%s: cannot create a temporary file in %s: %s", path, dir, strerror(errno));
    goto out;
  }
  for (size_t off = 0; off < len;) {
    ssize_t k = write(fd, text + off, len - off);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      snprintf(err, errlen, "%s: writing: %s", tmp, strerror(k < 0 ? errno : EIO));
      close(fd);
      unlink(tmp);
      goto out;
    }
    off += (size_t)k;
  }
  if (fsync(fd) != 0) {
    snprintf(err, errlen, "%s: writing: %s", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    goto out;
  }
  if (close(fd) != 0) {
    snprintf(err, errlen, "%s: closing: %s", tmp, strerror(errno));
    unlink(tmp);
    goto out;
  }
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
    unlink(tmp);
    goto out;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    snprintf(err, errlen, "%s: written, but the directory %s could not be synced: %s", path, dir, strerror(errno));
    if (dfd >= 0) close(dfd);
    goto out;
  }
  close(dfd);
  if (count) *count = l.n;
  result = 0;
out:
  free(text);
  var_list_free(&l);
  free(tmp);
  free(dir);
  return result;
}

/* Whether name is one of path's temporary files: "." base "." and the six
 * characters mkstemp puts in place of XXXXXX. */
static bool is_partial(const char *name, const char *base) {
  size_t bl = strlen(base);
  if (name[0] != '.' || strncmp(name + 1, base, bl) != 0 || name[1 + bl] != '.') return false;
  const char *x = name + bl + 2;
  if (strlen(x) != 6) return false;
  for (int i = 0; i < 6; i++)
    if (!((x[i] >= 'a' && x[i] <= 'z') || (x[i] >= 'A' && x[i] <= 'Z') || (x[i] >= '0' && x[i] <= '9')))
      return false;
  return true;
}

int snapshot_remove_partial(const char *path, size_t *removed, char *err, size_t errlen) {
  if (removed) *removed = 0;
  char *dir = dir_of(path);
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  if (!dir) {
    snprintf(err, errlen, "%s: out of memory", path);
    return -1;
  }
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, errlen, "%s: cannot read its directory %s: %s", path, dir, strerror(errno));
    free(dir);
    return -1;
  }
  int result = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!is_partial(e->d_name, base)) continue;
    if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT) {
      snprintf(err, errlen, "%s/%s: cannot remove this partial snapshot: %s", dir, e->d_name, strerror(errno));
      result = -1;
      break;
    }
    if (removed) (*removed)++;
  }
  closedir(d);
  free(dir);
  return result;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct entry {
  char *name;
  rstate_type type;
  uint64_t version;
  int64_t updated_ns;
  rstate_value value; /* strings point into text */
  char *text;         /* the unescaped string, or NULL */
  size_t line;
} entry;

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Unescapes in place; returns the new length, or -1 on a bad escape. */
static long unescape(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r != '\\') {
      *w++ = *r;
      continue;
    }
    r++;
    switch (*r) {
      case '\\': *w++ = '\\'; break;
      case 't': *w++ = '\t'; break;
      case 'n': *w++ = '\n'; break;
      case 'r': *w++ = '\r'; break;
      case 'x': {
        int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -1;
        *w++ = (char)(hi * 16 + lo);
        r += 2;
        break;
      }
      default: return -1;
    }
  }
  *w = '\0';
  return (long)(w - s);
}

static int by_entry_name(const void *a, const void *b) {
  return strcmp((*(const entry *const *)a)->name, (*(const entry *const *)b)->name);
}

/* A decimal number exactly as we write it: digits, no sign, no leading
 * zero, in range; parse_i64 takes a '-' first as well (not "-0"). */
static bool parse_u64(const char *s, uint64_t *out) {
  if (!*s || (s[0] == '0' && s[1])) return false;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return false;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return true;
}

static bool parse_i64(const char *s, int64_t *out) {
  bool neg = *s == '-';
  uint64_t u;
  if (!parse_u64(s + neg, &u) || (neg && u == 0)) return false;
  if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX) return false;
  *out = neg ? (int64_t)(0 - u) : (int64_t)u;
  return true;
}

/* Splits line at its tabs into at most max fields; returns how many. */
static int split_tabs(char *line, char **fields, int max) {
  int n = 0;
  fields[n++] = line;
  for (char *p = line; *p; p++) {
    if (*p != '\t') continue;
    if (n == max) return max + 1;
    *p = '\0';
    fields[n++] = p + 1;
  }
  return n;
}

/* Parses one variable line (no newline) into e; -1 with a sentence in msg. */
static int parse_line(char *line, entry *e, char *msg, size_t msglen) {
  char *f[5];
  if (split_tabs(line, f, 5) != 5) {
    snprintf(msg, msglen, "expected name<TAB>type<TAB>version<TAB>updated_ns<TAB>value");
    return -1;
  }
  const char *name = f[0], *type = f[1];
  char *value = f[4];
  if (!*name) {
    snprintf(msg, msglen, "empty variable name");
    return -1;
  }
  if (tv_parse_type(type, &e->type) != 0) {
    snprintf(msg, msglen, "%s: unknown type \"%s\"", name, type);
    return -1;
  }
  if (!parse_u64(f[2], &e->version) || e->version == 0) {
    snprintf(msg, msglen, "%s: version \"%s\" is not a whole number from 1", name, f[2]);
    return -1;
  }
  if (!parse_i64(f[3], &e->updated_ns)) {
    snprintf(msg, msglen, "%s: time of last change \"%s\" is not a whole number of nanoseconds", name, f[3]);
    return -1;
  }
  e->name = strdup(name);
  if (!e->name) {
    snprintf(msg, msglen, "out of memory");
    return -1;
  }
  if (e->type == RSTATE_TYPE_STRING || e->type == RSTATE_TYPE_CHOICE || e->type == RSTATE_TYPE_MODULE) {
    long len = unescape(value);
    if (len < 0) {
      snprintf(msg, msglen, "%s: bad escape in the value (\\\\, \\t, \\n, \\r or \\xHH, not \\x00)", name);
      return -1;
    }
    e->text = malloc((size_t)len + 1);
    if (!e->text) {
      snprintf(msg, msglen, "out of memory");
      return -1;
    }
    memcpy(e->text, value, (size_t)len + 1);
    e->value = rstate_stringn(e->text, (size_t)len);
    return 0;
  }
  if (e->type == RSTATE_TYPE_INTEGER) {
    int64_t i;
    if (!parse_i64(value, &i)) {
      snprintf(msg, msglen, "%s: \"%s\" is not an integer as written in a snapshot", name, value);
      return -1;
    }
  }
  char why[256];
  if (tv_parse(e->type, name, value, &e->value, why, sizeof why) != 0) {
    snprintf(msg, msglen, "%s", why);
    return -1;
  }
  return 0;
}

static void entries_free(entry *es, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(es[i].name);
    free(es[i].text);
  }
  free(es);
}

/* The whole file into *buf (NUL-terminated, *len bytes). 1: no such file. */
static int slurp(const char *path, char **buf, size_t *len, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 1;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  size_t cap = 65536, n = 0;
  char *b = malloc(cap + 1);
  for (;;) {
    if (!b) {
      snprintf(err, errlen, "%s: out of memory", path);
      close(fd);
      return -1;
    }
    ssize_t k = read(fd, b + n, cap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      snprintf(err, errlen, "%s: reading: %s", path, strerror(errno));
      free(b);
      close(fd);
      return -1;
    }
    if (k == 0) break;
    n += (size_t)k;
    if (n == cap) {
      char *nb = cap > SIZE_MAX / 4 ? NULL : realloc(b, 2 * cap + 1);
      if (!nb) free(b);
      b = nb;
      cap *= 2;
    }
  }
  close(fd);
  b[n] = '\0';
  *buf = b;
  *len = n;
  return 0;
}

#define DAMAGED "the file is damaged"

/* Reads and checks the whole file: every line parsed, the end record's
 * count and checksum, no name twice. */
static int read_file(const char *path, entry **out, size_t *n_out, uint64_t *revision, char *err, size_t errlen) {
  char *buf;
  size_t len;
  int r = slurp(path, &buf, &len, err, errlen);
  if (r != 0) return r;
  entry *es = NULL;
  size_t n = 0, cap = 0, lineno = 0;
  int result = -1;
  char msg[512];
  bool ended = false;
  uint32_t running = 0;
  char *p = buf;
  if (len == 0) {
    snprintf(err, errlen, "%s: empty file, not a snapshot (or one cut short before its first line)", path);
    goto out;
  }
  while (p < buf + len) {
    char *line = p;
    lineno++;
    char *nl = memchr(p, '\n', (size_t)(buf + len - p));
    if (!nl) {
      snprintf(err, errlen, "%s:%zu: the line has no newline at its end: the file was cut short", path, lineno);
      goto out;
    }
    /* the checksum of every byte before this line, then with it (before
     * the line is cut up in place) */
    uint32_t before = running;
    running = snapshot_crc32(running, line, (size_t)(nl - line) + 1);
    *nl = '\0';
    p = nl + 1;
    if (strlen(line) != (size_t)(nl - line)) {
      snprintf(err, errlen, "%s:%zu: a NUL byte in the line: " DAMAGED, path, lineno);
      goto out;
    }
    if (ended) {
      snprintf(err, errlen, "%s:%zu: a line after the end record: " DAMAGED, path, lineno);
      goto out;
    }
    if (lineno == 1) {
      if (strcmp(line, HEADER_1) == 0) {
        snprintf(err, errlen,
                 "%s:1: a snapshot in format 1 (rstated 0.1.0), which has no end record, so that a copy cut short "
                 "cannot be told from a whole one: refused (its values, one a line, can be set again with rstate "
                 "set once the daemon runs without it)",
                 path);
        goto out;
      }
      if (strcmp(line, HEADER) != 0) {
        snprintf(err, errlen, "%s:1: not a snapshot file (the first line must be \"" HEADER "\")", path);
        goto out;
      }
      continue;
    }
    if (lineno == 2) {
      char when[64];
      int used = -1;
      if (sscanf(line, "# written %63s at store revision %n", when, &used) != 1 || used < 0 ||
          !parse_u64(line + used, revision)) {
        snprintf(err, errlen, "%s:2: expected \"# written TIME at store revision N\": " DAMAGED, path);
        goto out;
      }
      continue;
    }
    if (strncmp(line, END_PREFIX, strlen(END_PREFIX)) == 0) {
      size_t count = 0;
      unsigned crc = 0;
      int used = -1;
      char again[128];
      if (sscanf(line, END_PREFIX "%zu variables, crc32 %8x%n", &count, &crc, &used) != 2 || used < 0 ||
          (snprintf(again, sizeof again, END_PREFIX "%zu variables, crc32 %08x", count, crc), strcmp(again, line))) {
        snprintf(err, errlen, "%s:%zu: expected \"" END_PREFIX "N variables, crc32 HHHHHHHH\": " DAMAGED, path, lineno);
        goto out;
      }
      if (count != n) {
        snprintf(err, errlen, "%s:%zu: the end record counts %zu variables, the file holds %zu: " DAMAGED, path,
                 lineno, count, n);
        goto out;
      }
      if (before != crc) {
        snprintf(err, errlen,
                 "%s:%zu: the checksum of the file (crc32 %08" PRIx32 ") is not the end record's (%08x): " DAMAGED
                 " or was altered",
                 path, lineno, before, crc);
        goto out;
      }
      ended = true;
      continue;
    }
    if (n == cap) {
      size_t ncap = cap ? 2 * cap : 64;
      entry *nes = realloc(es, ncap * sizeof *nes);
      if (!nes) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
      }
      es = nes;
      cap = ncap;
    }
    memset(&es[n], 0, sizeof es[n]);
    es[n].line = lineno;
    n++;
    if (parse_line(line, &es[n - 1], msg, sizeof msg) != 0) {
      snprintf(err, errlen, "%s:%zu: %s", path, lineno, msg);
      goto out;
    }
  }
  if (!ended) {
    snprintf(err, errlen, "%s:%zu: no end record after line %zu: the file was cut short", path, lineno + 1, lineno);
    goto out;
  }
  /* a name given twice: the writer never does it */
  entry **sorted = malloc((n ? n : 1) * sizeof *sorted);
  if (!sorted) {
    snprintf(err, errlen, "%s: out of memory", path);
    goto out;
  }
  for (size_t i = 0; i < n; i++) sorted[i] = &es[i];
  qsort(sorted, n, sizeof *sorted, by_entry_name);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
      const entry *a = sorted[i - 1]->line < sorted[i]->line ? sorted[i - 1] : sorted[i];
      const entry *b = a == sorted[i] ? sorted[i - 1] : sorted[i];
      snprintf(err, errlen, "%s:%zu: %s: given twice (also at line %zu)", path, b->line, b->name, a->line);
      free(sorted);
      goto out;
    }
  }
  free(sorted);
  result = 0;
out:
  free(buf);
  if (result != 0) {
    entries_free(es, n);
    return -1;
  }
  *out = es;
  *n_out = n;
  return 0;
}

static void warnf(snapshot_warn_fn warn, void *ud, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warnf(snapshot_warn_fn warn, void *ud, const char *fmt, ...) {
  if (!warn) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  warn(ud, buf);
}

/* A store failure that is not about the value: the store itself is in
 * trouble, and restoring cannot go on meaningfully. */
static bool store_failure(int rc) {
  return rc == RSTATE_ENOMEM || rc == RSTATE_EIO || rc == RSTATE_ECLOSED || rc == RSTATE_ETIMEDOUT ||
         rc == RSTATE_EPROTO || rc == RSTATE_EPERM || rc == RSTATE_ENOTSUP || rc == RSTATE_ELIMIT;
}

int snapshot_restore(rstate_store *s, const char *path, snapshot_warn_fn warn, void *ud, size_t *set,
                     size_t *defined, char *err, size_t errlen) {
  entry *es = NULL;
  size_t n = 0, n_set = 0, n_defined = 0;
  uint64_t revision = 0;
  int r = read_file(path, &es, &n, &revision, err, errlen);
  if (set) *set = 0;
  if (defined) *defined = 0;
  if (r != 0) return r;
  int result = -1;
  rstate_snapshot_var *vars = calloc(n ? n : 1, sizeof *vars);
  entry **from = calloc(n ? n : 1, sizeof *from);  /* vars[k] comes from from[k] */
  bool *fresh = calloc(n ? n : 1, sizeof *fresh); /* defined from the snapshot */
  if (!vars || !from || !fresh) {
    snprintf(err, errlen, "%s: out of memory", path);
    goto out;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    entry *e = &es[i];
    rstate_var_info info;
    int rc = rstate_info(s, e->name, &info);
    if (rc == RSTATE_OK && info.type != e->type) {
      warnf(warn, ud, "%s:%zu: %s: not restored: its type is %s in the snapshot, %s in the store", path, e->line,
            e->name, rstate_type_name(e->type), rstate_type_name(info.type));
      continue;
    }
    if (rc == RSTATE_ENOTFOUND) {
      const char *only[1] = {e->text};
      rstate_constraints c = {.choices = only, .n_choices = 1};
      rstate_var_def def = {.name = e->name, .type = e->type, .initial = e->value};
      if (e->type == RSTATE_TYPE_CHOICE) def.constraints = &c;
      rc = rstate_define(s, &def);
      fresh[k] = rc == RSTATE_OK;
    }
    if (rc == RSTATE_OK) {
      vars[k] = (rstate_snapshot_var){e->name, e->type, &e->value, e->version, e->updated_ns};
      from[k++] = e;
      continue;
    }
    if (store_failure(rc)) {
      snprintf(err, errlen, "%s:%zu: %s", path, e->line, rstate_last_error());
      goto out;
    }
    warnf(warn, ud, "%s:%zu: %s: not restored: %s", path, e->line, e->name, rstate_last_error());
  }
  /* one restore: a value the store refuses is dropped with a warning, and
   * the rest tried again */
  for (;;) {
    size_t failed = SIZE_MAX;
    int rc = rstate__restore(s, vars, k, revision, &failed);
    if (rc == RSTATE_OK) break;
    if (store_failure(rc) || failed >= k) {
      snprintf(err, errlen, "%s: %s", path, rstate_last_error());
      goto out;
    }
    warnf(warn, ud, "%s:%zu: %s: not restored: %s", path, from[failed]->line, from[failed]->name,
          rstate_last_error());
    memmove(&vars[failed], &vars[failed + 1], (k - failed - 1) * sizeof *vars);
    memmove(&from[failed], &from[failed + 1], (k - failed - 1) * sizeof *from);
    memmove(&fresh[failed], &fresh[failed + 1], (k - failed - 1) * sizeof *fresh);
    k--;
  }
  for (size_t i = 0; i < k; i++) fresh[i] ? n_defined++ : n_set++;
  result = 0;
out:
  free(vars);
  free(from);
  free(fresh);
  entries_free(es, n);
  if (set) *set = n_set;
  if (defined) *defined = n_defined;
  return result;
}
