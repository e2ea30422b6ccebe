/*
 * snapshot.c — rstated's snapshot file: every variable's value, written
 * atomically (temporary file, fsync, rename, fsync of the directory) and
 * restored exactly. The format and the restore rules are in snapshot.h.
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

#include "eventfmt.h"
#include "textvalue.h"

#define HEADER "# reactivestate snapshot 1"

/* ---- collecting the store's variables ------------------------------------ */

typedef struct var_list {
  char **names;
  rstate_type *types;
  size_t n, cap;
  bool nomem;
} var_list;

static int collect(const char *name, rstate_type type, void *ud) {
  var_list *l = ud;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    char **names = realloc(l->names, cap * sizeof *names);
    if (names) l->names = names;
    rstate_type *types = realloc(l->types, cap * sizeof *types);
    if (types) l->types = types;
    if (!names || !types) {
      l->nomem = true;
      return 1;
    }
    l->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy) {
    l->nomem = true;
    return 1;
  }
  l->names[l->n] = copy;
  l->types[l->n] = type;
  l->n++;
  return 0;
}

static void var_list_free(var_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->names[i]);
  free(l->names);
  free(l->types);
  memset(l, 0, sizeof *l);
}

static bool kind_fits(rstate_type t, rstate_kind k) {
  switch (t) {
    case RSTATE_TYPE_FLOAT: return k == RSTATE_FLOAT;
    case RSTATE_TYPE_INTEGER: return k == RSTATE_INT;
    case RSTATE_TYPE_BOOLEAN: return k == RSTATE_BOOL;
    default: return k == RSTATE_STRING;
  }
}

/* Names and types from rstate_list, values from one rstate_get_many. A
 * variable undefined (or re-defined with another type) between the two
 * makes us take the list again; after a few tries we give up. */
static int read_store(rstate_store *s, var_list *l, rstate_value **values, uint64_t *revision, char *err,
                      size_t errlen) {
  for (int attempt = 0; attempt < 8; attempt++) {
    var_list_free(l);
    int rc = rstate_list(s, collect, l);
    if (l->nomem) rc = RSTATE_ENOMEM;
    if (rc != RSTATE_OK) {
      snprintf(err, errlen, "listing the variables: %s", rc == RSTATE_ENOMEM ? "out of memory" : rstate_last_error());
      return -1;
    }
    rstate_value *v = calloc(l->n ? l->n : 1, sizeof *v);
    if (!v) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    rc = l->n ? rstate_get_many(s, (const char *const *)l->names, l->n, v, revision) : RSTATE_OK;
    if (!l->n) *revision = rstate_revision(s);
    if (rc == RSTATE_OK) {
      bool fits = true;
      for (size_t i = 0; i < l->n; i++) fits = fits && kind_fits(l->types[i], v[i].kind);
      if (fits) {
        *values = v;
        return 0;
      }
      for (size_t i = 0; i < l->n; i++) rstate_value_clear(&v[i]);
    }
    free(v);
    if (rc != RSTATE_OK && rc != RSTATE_ENOTFOUND) {
      snprintf(err, errlen, "reading the values: %s", rstate_last_error());
      return -1;
    }
  }
  snprintf(err, errlen, "the variables kept changing while being read");
  return -1;
}

/* ---- writing ------------------------------------------------------------- */

static int write_body(FILE *f, const var_list *l, const rstate_value *v, uint64_t revision) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char when[40];
  eventfmt_time((int64_t)now.tv_sec * 1000000000 + now.tv_nsec, when);
  if (fprintf(f, HEADER "\n# written %s at store revision %" PRIu64 "\n", when, revision) < 0) return -1;
  for (size_t i = 0; i < l->n; i++) {
    if (fprintf(f, "%s\t%s\t", l->names[i], rstate_type_name(l->types[i])) < 0) return -1;
    int r = v[i].kind == RSTATE_STRING ? tv_escape(f, v[i].u.s.ptr, v[i].u.s.len, false) : tv_print(f, &v[i], TV_RAW);
    if (r < 0 || putc('\n', f) == EOF) return -1;
  }
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
  rstate_value *v = NULL;
  uint64_t revision = 0;
  char msg[512];
  if (read_store(s, &l, &v, &revision, msg, sizeof msg) != 0) {
    snprintf(err, errlen, "%s: %s", path, msg);
    var_list_free(&l);
    return -1;
  }
  int result = -1;
  char *dir = dir_of(path);
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  char *tmp = NULL;
  FILE *f = NULL;
  int fd = -1;
  if (!dir || asprintf(&tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
    tmp = NULL;
    snprintf(err, errlen, "%s: out of memory", path);
    goto out;
  }
  fd = mkstemp(tmp);
  if (fd < 0) {
    snprintf(err, errlen, "%s: cannot create a temporary file in %s: %s", path, dir, strerror(errno));
    goto out;
  }
  f = fdopen(fd, "w");
  if (!f) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    goto out;
  }
  errno = 0;
  if (write_body(f, &l, v, revision) != 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
    snprintf(err, errlen, "%s: writing: %s", tmp, strerror(errno ? errno : EIO));
    fclose(f);
    unlink(tmp);
    goto out;
  }
  if (fclose(f) != 0) {
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
  for (size_t i = 0; i < l.n; i++) rstate_value_clear(&v[i]);
  free(v);
  var_list_free(&l);
  free(tmp);
  free(dir);
  return result;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct entry {
  char *name;
  rstate_type type;
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

/* Parses one line (no newline) into e; -1 with a sentence in msg. */
static int parse_line(char *line, entry *e, char *msg, size_t msglen) {
  char *tab1 = strchr(line, '\t');
  char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
  if (!tab1 || !tab2) {
    snprintf(msg, msglen, "expected name<TAB>type<TAB>value");
    return -1;
  }
  *tab1 = *tab2 = '\0';
  const char *type = tab1 + 1;
  char *value = tab2 + 1;
  if (!*line) {
    snprintf(msg, msglen, "empty variable name");
    return -1;
  }
  if (tv_parse_type(type, &e->type) != 0) {
    snprintf(msg, msglen, "%s: unknown type \"%s\"", line, type);
    return -1;
  }
  e->name = strdup(line);
  if (!e->name) {
    snprintf(msg, msglen, "out of memory");
    return -1;
  }
  if (e->type == RSTATE_TYPE_STRING || e->type == RSTATE_TYPE_CHOICE || e->type == RSTATE_TYPE_MODULE) {
    long len = unescape(value);
    if (len < 0) {
      snprintf(msg, msglen, "%s: bad escape in the value (\\\\, \\t, \\n, \\r or \\xHH, not \\x00)", line);
      return -1;
    }
    e->text = strdup(value);
    if (!e->text) {
      snprintf(msg, msglen, "out of memory");
      return -1;
    }
    e->value = rstate_stringn(e->text, (size_t)len);
    return 0;
  }
  if (e->type == RSTATE_TYPE_INTEGER) {
    /* exactly what we write: a decimal integer (tv_parse would let a float through) */
    const char *p = value + (*value == '-');
    bool ok = *p != '\0';
    for (; *p; p++) ok = ok && *p >= '0' && *p <= '9';
    if (!ok) {
      snprintf(msg, msglen, "%s: \"%s\" is not an integer", line, value);
      return -1;
    }
  }
  char why[256];
  if (tv_parse(e->type, line, value, &e->value, why, sizeof why) != 0) {
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

static int read_file(const char *path, entry **out, size_t *n_out, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    if (errno == ENOENT) return 1;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  entry *es = NULL;
  size_t n = 0, cap = 0, lineno = 0;
  char *line = NULL;
  size_t linecap = 0;
  ssize_t len;
  int result = 0;
  char msg[512];
  while ((len = getline(&line, &linecap, f)) >= 0) {
    lineno++;
    if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
    if ((size_t)len != strlen(line)) {
      snprintf(err, errlen, "%s:%zu: a NUL byte in the line", path, lineno);
      result = -1;
      break;
    }
    if (lineno == 1) {
      if (strcmp(line, HEADER) != 0) {
        snprintf(err, errlen, "%s:1: not a snapshot file (the first line must be \"" HEADER "\")", path);
        result = -1;
        break;
      }
      continue;
    }
    if (len == 0 || line[0] == '#') continue;
    if (n == cap) {
      size_t ncap = cap ? 2 * cap : 64;
      entry *nes = realloc(es, ncap * sizeof *nes);
      if (!nes) {
        snprintf(err, errlen, "%s: out of memory", path);
        result = -1;
        break;
      }
      es = nes;
      cap = ncap;
    }
    memset(&es[n], 0, sizeof es[n]);
    es[n].line = lineno;
    n++;
    if (parse_line(line, &es[n - 1], msg, sizeof msg) != 0) {
      snprintf(err, errlen, "%s:%zu: %s", path, lineno, msg);
      result = -1;
      break;
    }
  }
  if (result == 0 && ferror(f)) {
    snprintf(err, errlen, "%s: reading: %s", path, strerror(errno));
    result = -1;
  }
  if (result == 0 && lineno == 0) {
    snprintf(err, errlen, "%s: empty file, not a snapshot", path);
    result = -1;
  }
  free(line);
  fclose(f);
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
         rc == RSTATE_EPROTO || rc == RSTATE_EPERM;
}

int snapshot_restore(rstate_store *s, const char *path, snapshot_warn_fn warn, void *ud, size_t *set,
                     size_t *defined, char *err, size_t errlen) {
  entry *es = NULL;
  size_t n = 0, n_set = 0, n_defined = 0;
  int r = read_file(path, &es, &n, err, errlen);
  if (set) *set = 0;
  if (defined) *defined = 0;
  if (r != 0) return r;
  int result = 0;
  for (size_t i = 0; i < n; i++) {
    entry *e = &es[i];
    rstate_var_info info;
    int rc = rstate_info(s, e->name, &info);
    if (rc == RSTATE_OK) {
      if (info.type != e->type) {
        warnf(warn, ud, "%s:%zu: %s: not restored: its type is %s in the snapshot, %s in the store", path, e->line,
              e->name, rstate_type_name(e->type), rstate_type_name(info.type));
        continue;
      }
      rc = rstate_set(s, e->name, &e->value, NULL);
      if (rc == RSTATE_OK) {
        n_set++;
        continue;
      }
    } else if (rc == RSTATE_ENOTFOUND) {
      const char *only[1] = {e->text};
      rstate_constraints c = {.choices = only, .n_choices = 1};
      rstate_var_def def = {.name = e->name, .type = e->type, .initial = e->value};
      if (e->type == RSTATE_TYPE_CHOICE) def.constraints = &c;
      rc = rstate_define(s, &def);
      if (rc == RSTATE_OK) {
        n_defined++;
        continue;
      }
    }
    if (store_failure(rc)) {
      snprintf(err, errlen, "%s:%zu: %s", path, e->line, rstate_last_error());
      result = -1;
      break;
    }
    warnf(warn, ud, "%s:%zu: %s: not restored: %s", path, e->line, e->name, rstate_last_error());
  }
  entries_free(es, n);
  if (set) *set = n_set;
  if (defined) *defined = n_defined;
  return result;
}
