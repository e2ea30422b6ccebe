/*
 * test_file.c — the "file:" store: every point of the contract's "Durable
 * stores" section. What survives closing and reopening, one holder at a
 * time (in this process and from another), a torn last record dropped at
 * every byte, damage elsewhere refused with the file and the offset and no
 * file touched, compaction, a change on disk before a watcher sees it, and
 * kill -9 of a child process at random moments in every sync mode with
 * nothing acknowledged lost and no batch torn.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "file/file.h"
#include "helpers.h"

TestSuite(file);

/* ---- helpers ------------------------------------------------------------- */

static void fresh_dir(char *dir, size_t size) {
  static unsigned serial;
  snprintf(dir, size, "/tmp/rstate-test-file-%d-%u.d", (int)getpid(), serial++);
  h_rmdir(dir);
}

/* A new journal (generation 1) in a fresh directory, for the tests that
 * drive one directly. */
static rstate__journal *new_journal(char *dir, size_t size) {
  fresh_dir(dir, size);
  cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s: %s", dir, strerror(errno));
  rstate__journal *j = NULL;
  ASSERT_RC(rstate__journal_create(&j, dir, 1), RSTATE_OK);
  return j;
}

static int open_dir(rstate_store **s, const char *dir, const rstate_options *o) {
  char uri[300];
  snprintf(uri, sizeof uri, "file:%s", dir);
  return rstate_open(s, uri, o);
}

static rstate_store *open_ok(const char *dir, const rstate_options *o) {
  rstate_store *s = NULL;
  ASSERT_RC(open_dir(&s, dir, o), RSTATE_OK);
  return s;
}

static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc(size ? (size_t)size : 1);
  cr_assert_eq(fread(p, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  *n = (size_t)size;
  return p;
}

static void spit(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot write %s", path);
  cr_assert_eq(fwrite(p, 1, n, f), n);
  fclose(f);
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* Every file of a directory, names and bytes, as one buffer (to compare). */
static char *dir_image(const char *dir, size_t *n) {
  struct dirent **names;
  int k = scandir(dir, &names, NULL, by_name);
  cr_assert_geq(k, 0, "cannot list %s", dir);
  char *buf = NULL;
  size_t len = 0;
  for (int i = 0; i < k; i++) {
    if (names[i]->d_name[0] != '.') {
      char path[512];
      snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
      size_t fl;
      uint8_t *f = slurp(path, &fl);
      size_t nl = strlen(names[i]->d_name) + 1;
      buf = realloc(buf, len + nl + fl + 1);
      memcpy(buf + len, names[i]->d_name, nl);
      len += nl;
      if (fl) memcpy(buf + len, f, fl);
      len += fl;
      free(f);
    }
    free(names[i]);
  }
  free(names);
  *n = len;
  return buf;
}

static void journal_path(char *out, size_t size, const char *dir, uint64_t gen) {
  snprintf(out, size, "%s/journal.%016llx", dir, (unsigned long long)gen);
}

/* Offsets of the whole records of a journal image. */
static size_t records(const uint8_t *buf, size_t n, size_t *starts, size_t *ends, size_t max) {
  size_t off = RSTATE_JOURNAL_HEAD, k = 0;
  for (;;) {
    const uint8_t *p;
    size_t len, next;
    if (rstate__frame_at(buf, n, off, &p, &len, &next) != RSTATE_FRAME_OK) break;
    cr_assert_lt(k, max);
    starts[k] = off;
    ends[k++] = off + RSTATE_FRAME_HEAD + len;
    off = next;
  }
  return k;
}

/* Copies a store's (flat) directory, files and mode, in C: no program runs. */
static void copy_dir(const char *from, const char *to) {
  h_rmdir(to);
  cr_assert_eq(mkdir(to, 0700), 0, "cannot make %s", to);
  DIR *d = opendir(from);
  cr_assert_not_null(d, "cannot list %s", from);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/%s", from, e->d_name);
    snprintf(b, sizeof b, "%s/%s", to, e->d_name);
    size_t n;
    uint8_t *p = slurp(a, &n);
    spit(b, p, n);
    free(p);
  }
  closedir(d);
}

/* ---- records --------------------------------------------------------------- */

/* The checksum's known value, the frame checksum's one pass against the two
 * steps it stands for, at every length around the 8-byte steps. */
Test(file, crc32c_values) {
  cr_assert_eq(rstate__crc32c(0, "123456789", 9), 0xE3069283u, "the CRC-32C check value");
  uint8_t buf[80];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 37 + 11);
  for (uint32_t len = 0; len <= 64; len++) {
    uint8_t head[4] = {(uint8_t)len, 0, 0, 0};
    uint32_t want = rstate__crc32c(rstate__crc32c(0, head, 4), buf + 3, len);
    cr_assert_eq(rstate__frame_crc(len, buf + 3), want, "length %u", len);
  }
}

/* The SET frame written with its checksum taken on the way is the frame
 * written and then summed, byte for byte, and decodes to the change. */
Test(file, set_frame_fused_is_portable) {
  rstate_value vals[] = {rstate_int(-42), rstate_float(2.5), rstate_bool(true), rstate_string("a string of 19 b"),
                         rstate_string(""), rstate_string("seventeen bytes!!")};
  rstate_meta meta[] = {{"who", "the test"}, {"why", "x"}};
  const char *names[] = {"x", "a.long.name.of.some.length", "n"};
  for (size_t sv = 0; sv < 3; sv++) {
    for (size_t nm = 0; nm < 3; nm++) {
      for (size_t n = 1; n <= 3; n++) {
        rstate_change c[3];
        for (size_t i = 0; i < n; i++)
          c[i] = (rstate_change){.kind = RSTATE_EVENT_CHANGED,
                                 .name = names[i],
                                 .name_len = i == 1 ? 0 : strlen(names[i]),
                                 .new_value = &vals[(sv + nm + i) % 6],
                                 .version = 7 + i,
                                 .revision = 1234567,
                                 .timestamp_ns = -5,
                                 .source = sv == 0 ? NULL : sv == 1 ? "" : "a source, longer than 8",
                                 .meta = meta,
                                 .n_meta = nm};
        rstate__set_lens lens;
        size_t size = rstate__set_frame_size(c, n, &lens);
        cr_assert_gt(size, 0);
        uint8_t *a = malloc(size), *b = malloc(size);
        memset(a, 0xAA, size);
        memset(b, 0x55, size);
        rstate__set_frame_write(a, size, &lens, c, n);
        rstate__set_frame_write_portable(b, size, &lens, c, n);
        cr_assert(memcmp(a, b, size) == 0, "source %zu, %zu meta, %zu items: the frames differ", sv, nm, n);
        const uint8_t *payload;
        size_t len, next;
        cr_assert_eq(rstate__frame_at(a, size, 0, &payload, &len, &next), RSTATE_FRAME_OK);
        cr_assert_eq(next, size);
        rstate__rec rec;
        rstate__arena arena = {0};
        const char *why = NULL;
        cr_assert(rstate__rec_decode(payload, len, &rec, &arena, &why), "%s", why);
        cr_assert_eq(rec.n_items, n);
        cr_assert_eq(rec.n_meta, nm);
        for (size_t i = 0; i < n; i++) {
          cr_assert_str_eq(rec.items[i].name, names[i]);
          cr_assert(rstate_value_equal(&rec.items[i].value, c[i].new_value));
        }
        rstate__arena_free(&arena);
        free(a);
        free(b);
      }
    }
  }
}

/* ---- opening --------------------------------------------------------------- */

Test(file, creates_the_directory_0700) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_store *s = open_ok(dir, NULL);
  struct stat st;
  cr_assert_eq(stat(dir, &st), 0);
  cr_assert(S_ISDIR(st.st_mode));
  cr_assert_eq(st.st_mode & 0777, 0700, "mode %o, want 0700", st.st_mode & 0777);
  rstate_close(s);
  h_rmdir(dir);
}

Test(file, bad_uri_and_options) {
  rstate_store *s = NULL;
  ASSERT_RC(rstate_open(&s, "file:", NULL), RSTATE_EINVAL);
  cr_assert_null(s);
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = (rstate_sync)7;
  ASSERT_RC(open_dir(&s, dir, &o), RSTATE_EINVAL);
  o.sync = RSTATE_SYNC_INTERVAL;
  o.sync_interval_ms = -1;
  ASSERT_RC(open_dir(&s, dir, &o), RSTATE_EINVAL);
  ASSERT_RC(rstate_open(&s, "file:/proc/no/such/place", NULL), RSTATE_EIO);
  cr_assert_null(s);
}

/* ---- what survives ---------------------------------------------------------- */

static void define_all(rstate_store *s) {
  rstate_constraints fc = {.min = rstate_float(0), .max = rstate_float(2)};
  h_define_ok(s, "temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &fc);
  rstate_constraints ic = {.min = rstate_int(1), .max = rstate_int(4096)};
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(256), &ic);
  h_define_ok(s, "verbose", RSTATE_TYPE_BOOLEAN, rstate_bool(false), NULL);
  rstate_constraints sc = {.max_length = 16, .pattern = "[a-z ]*"};
  rstate_var_def sd = {.name = "greeting", .type = RSTATE_TYPE_STRING, .initial = rstate_string("hello"),
                       .constraints = &sc, .description = "what it says first"};
  ASSERT_RC(rstate_define(s, &sd), RSTATE_OK);
  static const char *const models[] = {"gpt-4", "claude-3", "gemini"};
  rstate_constraints cc = {.choices = models, .n_choices = 3};
  h_define_ok(s, "model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &cc);
  static const char *const strategies[] = {"Default", "Optimized"};
  rstate_constraints mc = {.choices = strategies, .n_choices = 2, .module_namespace = "Strategies"};
  h_define_ok(s, "strategy", RSTATE_TYPE_MODULE, rstate_string("Strategies.Default"), &mc);
}

Test(file, everything_survives_reopening) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_store *s = open_ok(dir, NULL);
  define_all(s);
  ASSERT_RC(rstate_set_float(s, "temperature", 1.25), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "max_tokens", 1000), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "greeting", "hi there"), RSTATE_OK);
  rstate_assign items[] = {{"model", rstate_string("gemini")}, {"strategy", rstate_string("Strategies.Optimized")},
                           {"verbose", rstate_bool(true)}};
  ASSERT_RC(rstate_set_many(s, items, 3, NULL, NULL), RSTATE_OK);
  h_define_ok(s, "gone", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  ASSERT_RC(rstate_undefine(s, "gone"), RSTATE_OK);
  const char *names[] = {"temperature", "max_tokens", "verbose", "greeting", "model", "strategy"};
  rstate_var_info before[6];
  for (int i = 0; i < 6; i++) before[i] = h_info(s, names[i]);
  uint64_t rev = rstate_revision(s);
  rstate_close(s);

  s = open_ok(dir, NULL);
  cr_assert_eq(rstate_revision(s), rev, "revision %llu after reopening, want %llu",
               (unsigned long long)rstate_revision(s), (unsigned long long)rev);
  for (int i = 0; i < 6; i++) {
    rstate_var_info after = h_info(s, names[i]);
    cr_assert_eq(after.type, before[i].type, "%s: type", names[i]);
    cr_assert_eq(after.version, before[i].version, "%s: version", names[i]);
    cr_assert_eq(after.revision, before[i].revision, "%s: revision", names[i]);
    cr_assert_eq(after.updated_ns, before[i].updated_ns, "%s: updated_ns", names[i]);
  }
  cr_assert_float_eq(h_get_float(s, "temperature"), 1.25, 1e-12);
  cr_assert_eq(h_get_int(s, "max_tokens"), 1000);
  bool b = false;
  ASSERT_RC(rstate_get_bool(s, "verbose", &b), RSTATE_OK);
  cr_assert(b);
  h_assert_string(s, "greeting", "hi there");
  h_assert_string(s, "model", "gemini");
  h_assert_string(s, "strategy", "Strategies.Optimized");
  rstate_value v;
  ASSERT_RC(rstate_get(s, "gone", &v), RSTATE_ENOTFOUND);
  /* the definitions came back whole: the same one again is idempotent, the
   * constraints still hold */
  define_all(s);
  cr_assert_eq(rstate_revision(s), rev, "an identical re-define changed the store");
  ASSERT_RC(h_define(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(256), NULL), RSTATE_EEXIST);
  ASSERT_RC(rstate_set_int(s, "max_tokens", 5000), RSTATE_ECONSTRAINT);
  ASSERT_RC(rstate_set_string(s, "greeting", "HELLO"), RSTATE_ECONSTRAINT);
  ASSERT_RC(rstate_set_string(s, "strategy", "Other.Optimized"), RSTATE_ECONSTRAINT);
  ASSERT_RC(rstate_set_string(s, "model", "llama"), RSTATE_ECONSTRAINT);
  /* revisions continue */
  ASSERT_RC(rstate_set_int(s, "max_tokens", 7), RSTATE_OK);
  cr_assert_eq(h_info(s, "max_tokens").revision, rev + 1, "the first change after reopening takes revision %llu",
               (unsigned long long)rev + 1);
  rstate_close(s);
  h_rmdir(dir);
}

Test(file, revision_continues_after_an_undefine) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_store *s = open_ok(dir, NULL);
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  ASSERT_RC(rstate_undefine(s, "b"), RSTATE_OK);
  rstate_close(s);
  s = open_ok(dir, NULL);
  cr_assert_eq(rstate_revision(s), 3);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  cr_assert_eq(h_info(s, "b").revision, 4);
  cr_assert_eq(h_info(s, "b").version, 1);
  rstate_close(s);
  h_rmdir(dir);
}

/* ---- one holder ------------------------------------------------------------------ */

Test(file, ebusy_in_this_process) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_store *s = open_ok(dir, NULL), *t = NULL;
  ASSERT_RC(open_dir(&t, dir, NULL), RSTATE_EBUSY);
  cr_assert_null(t);
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  cr_assert(strstr(rstate_last_error(), pid), "\"%s\" does not name the holder %s", rstate_last_error(), pid);
  rstate_close(s);
  t = open_ok(dir, NULL); /* free again once closed */
  rstate_close(t);
  h_rmdir(dir);
}

/* The holder of ebusy_from_another_process: this test program run again
 * (so that the child carries none of Criterion's state, which valgrind
 * would count as leaked), told its part by RSTATE_TEST_FILE_HOLDER=
 * "DIR UPFD DOWNFD": it opens the store, says 'k' (or 'x'), holds the store
 * until told, and closes it. */
__attribute__((constructor)) static void holder_role(void) {
  const char *role = getenv("RSTATE_TEST_FILE_HOLDER");
  if (!role) return;
  char dir[256];
  int up, down;
  if (sscanf(role, "%255s %d %d", dir, &up, &down) != 3) _exit(3);
  rstate_store *s = NULL;
  char c = open_dir(&s, dir, NULL) == RSTATE_OK ? 'k' : 'x';
  if (write(up, &c, 1) != 1) _exit(1);
  if (read(down, &c, 1) != 1) _exit(1);
  rstate_close(s);
  exit(0);
}

Test(file, ebusy_from_another_process) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  int up[2], down[2];
  cr_assert_eq(pipe(up), 0);
  cr_assert_eq(pipe(down), 0);
  char self[512];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(sl, 0);
  self[sl] = '\0';
  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) {
    char role[400];
    snprintf(role, sizeof role, "%s %d %d", dir, up[1], down[0]);
    setenv("RSTATE_TEST_FILE_HOLDER", role, 1);
    execl(self, self, (char *)NULL);
    _exit(127);
  }
  char c = 0;
  cr_assert_eq(read(up[0], &c, 1), 1);
  cr_assert_eq(c, 'k', "the child could not open the store");
  rstate_store *s = NULL;
  ASSERT_RC(open_dir(&s, dir, NULL), RSTATE_EBUSY);
  char pid[32];
  snprintf(pid, sizeof pid, "process %d", (int)child);
  cr_assert(strstr(rstate_last_error(), pid), "\"%s\" does not name the holder (%s)", rstate_last_error(), pid);
  cr_assert(strstr(rstate_last_error(), dir), "\"%s\" does not name the directory", rstate_last_error());
  cr_assert_eq(write(down[1], "q", 1), 1);
  int status;
  cr_assert_eq(waitpid(child, &status, 0), child);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the holder ended with status %d", status);
  s = open_ok(dir, NULL); /* the holder is gone: its lock went with it */
  rstate_close(s);
  h_rmdir(dir);
}

/* ---- a torn last record ------------------------------------------------------------- */

/* A store of x defined and set to V(1)..V(5), closed: 6 records. The
 * values end a record, and have no zero byte: zeroing any byte of the last
 * record changes it. */
#define V(i) (INT64_C(0x0102030405060708) * (i))
static void make_six(const char *dir) {
  rstate_store *s = open_ok(dir, NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int i = 1; i <= 5; i++) ASSERT_RC(rstate_set_int(s, "x", V(i)), RSTATE_OK);
  rstate_close(s);
}

static void expect_dropped(const char *dir, const char *how, size_t k) {
  rstate_store *s = NULL;
  int rc = open_dir(&s, dir, NULL);
  cr_assert_eq(rc, RSTATE_OK, "%s at byte %zu: open returned %s: %s", how, k, rstate_error_name(rc),
               rstate_last_error());
  cr_assert_eq(rstate_revision(s), 5, "%s at byte %zu: revision %llu, want 5", how, k,
               (unsigned long long)rstate_revision(s));
  cr_assert_eq(h_get_int(s, "x"), V(4), "%s at byte %zu: the torn change was not dropped", how, k);
  ASSERT_RC(rstate_set_int(s, "x", 40), RSTATE_OK);
  rstate_close(s);
  s = open_ok(dir, NULL); /* the new change replaced the torn one */
  cr_assert_eq(rstate_revision(s), 6, "%s at byte %zu: after a new change, revision %llu", how, k,
               (unsigned long long)rstate_revision(s));
  cr_assert_eq(h_get_int(s, "x"), 40);
  rstate_close(s);
}

Test(file, torn_last_record_dropped_at_every_byte) {
  char dir[96], work[128], jpath[256];
  fresh_dir(dir, sizeof dir);
  snprintf(work, sizeof work, "%s.work", dir);
  make_six(dir);
  journal_path(jpath, sizeof jpath, dir, 1);
  size_t n;
  uint8_t *img = slurp(jpath, &n);
  size_t starts[16], ends[16];
  size_t k = records(img, n, starts, ends, 16);
  cr_assert_eq(k, 6, "the journal holds %zu records, want 6", k);
  size_t start = starts[5], end = ends[5];
  char wj[256];
  journal_path(wj, sizeof wj, work, 1);
  for (size_t cut = 0; cut < end - start; cut++) {
    /* written up to cut, zeros after (what a kill mid-copy leaves) */
    copy_dir(dir, work);
    uint8_t *t = malloc(n);
    memcpy(t, img, n);
    memset(t + start + cut, 0, end - start - cut);
    spit(wj, t, n);
    expect_dropped(work, "cut", cut);
    /* the file itself ends at cut */
    copy_dir(dir, work);
    spit(wj, img, start + cut);
    expect_dropped(work, "file ends", cut);
    /* the payload written up to cut, its head not yet (the order appends use) */
    if (cut >= RSTATE_FRAME_HEAD) {
      copy_dir(dir, work);
      memcpy(t, img, n);
      memset(t + start, 0, RSTATE_FRAME_HEAD);
      memset(t + start + cut, 0, end - start - cut);
      spit(wj, t, n);
      expect_dropped(work, "headless", cut);
    }
    free(t);
  }
  free(img);
  h_rmdir(work);
  h_rmdir(dir);
}

/* ---- damage refused ------------------------------------------------------------------ */

static void expect_refused(const char *dir, const char *file, size_t off) {
  size_t n1, n2;
  char *before = dir_image(dir, &n1);
  rstate_store *s = NULL;
  ASSERT_RC(open_dir(&s, dir, NULL), RSTATE_EIO);
  cr_assert_null(s);
  const char *msg = rstate_last_error();
  cr_assert(strstr(msg, file), "\"%s\" does not name the file %s", msg, file);
  char at[64];
  snprintf(at, sizeof at, "byte %zu", off);
  cr_assert(strstr(msg, at), "\"%s\" does not name the offset (%s)", msg, at);
  char *after = dir_image(dir, &n2);
  cr_assert(n1 == n2 && memcmp(before, after, n1) == 0, "a refused open changed the files of %s", dir);
  free(before);
  free(after);
}

/* After a power loss a later page of the journal can be on disk while an
 * earlier one is not. Zeros where a record should be, with whole records
 * after them, are not a torn tail: the open is refused, naming the file
 * and the offset, and touches nothing (the records beyond would otherwise
 * stay behind the next appends). Here 400 sets, the records that start in
 * one page zeroed to its end. */
Test(file, records_beyond_a_lost_page_refuse_the_open) {
  char dir[96], jpath[256];
  fresh_dir(dir, sizeof dir);
  rstate_store *s = open_ok(dir, NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  for (int i = 1; i <= 400; i++) ASSERT_RC(rstate_set_int(s, "x", i), RSTATE_OK);
  rstate_close(s);
  journal_path(jpath, sizeof jpath, dir, 1);
  size_t n;
  uint8_t *img = slurp(jpath, &n);
  size_t starts[512], ends[512];
  size_t k = records(img, n, starts, ends, 512);
  cr_assert_eq(k, 401, "the journal holds %zu records, want 401", k);
  size_t page = (starts[100] + 4095) & ~(size_t)4095, j = 100;
  while (starts[j] < page) j++; /* the first record that starts in the page */
  memset(img + starts[j], 0, page + 4096 - starts[j]);
  spit(jpath, img, n);
  free(img);
  expect_refused(dir, "journal.0000000000000001", starts[j]);
  h_rmdir(dir);
}

Test(file, damage_in_the_middle_refused_nothing_touched) {
  char dir[96], work[128], jpath[256], wj[256];
  fresh_dir(dir, sizeof dir);
  snprintf(work, sizeof work, "%s.work", dir);
  make_six(dir);
  journal_path(jpath, sizeof jpath, dir, 1);
  journal_path(wj, sizeof wj, work, 1);
  size_t n;
  uint8_t *img = slurp(jpath, &n);
  size_t starts[16], ends[16];
  cr_assert_eq(records(img, n, starts, ends, 16), 6);
  uint8_t *t = malloc(n);
  for (size_t r = 0; r < 5; r++) {
    /* one byte of the head, one of the payload, and the last byte */
    size_t spots[] = {starts[r], starts[r] + 4, starts[r] + RSTATE_FRAME_HEAD + 3, ends[r] - 1};
    for (size_t i = 0; i < 4; i++) {
      copy_dir(dir, work);
      memcpy(t, img, n);
      t[spots[i]] ^= 0x40;
      spit(wj, t, n);
      expect_refused(work, wj, starts[r]);
    }
  }
  /* a damaged journal head */
  copy_dir(dir, work);
  memcpy(t, img, n);
  t[2] ^= 1;
  spit(wj, t, n);
  expect_refused(work, wj, 0);
  free(t);
  free(img);
  h_rmdir(work);
  h_rmdir(dir);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Waits (bounded) until the store has compacted journal 1 away. */
static void wait_compacted(const char *dir, uint64_t gen) {
  char snap[256], j[256];
  snprintf(snap, sizeof snap, "%s/snapshot", dir);
  journal_path(j, sizeof j, dir, gen);
  for (int i = 0; i < 10000 && !(exists(snap) && !exists(j)); i++) usleep(1000);
  cr_assert(exists(snap) && !exists(j), "no compaction of %s within 10 s", j);
}

Test(file, damaged_snapshot_refused) {
  char dir[96], work[128], sp[256];
  fresh_dir(dir, sizeof dir);
  snprintf(work, sizeof work, "%s.work", dir);
  atomic_store(&rstate__file_compact_bytes, 4096);
  rstate_store *s = open_ok(dir, NULL);
  define_all(s);
  for (int i = 0; i < 200; i++) ASSERT_RC(rstate_set_int(s, "max_tokens", i + 1), RSTATE_OK);
  wait_compacted(dir, 1);
  rstate_close(s);
  atomic_store(&rstate__file_compact_bytes, 0);
  snprintf(sp, sizeof sp, "%s/snapshot", work);
  copy_dir(dir, work);
  size_t n;
  uint8_t *img = slurp(sp, &n);
  /* a byte flipped anywhere: refused at that record */
  for (size_t at = 0; at < n; at += 97) {
    copy_dir(dir, work);
    uint8_t *t = malloc(n);
    memcpy(t, img, n);
    t[at] ^= 0x10;
    spit(sp, t, n);
    rstate_store *x = NULL;
    ASSERT_RC(open_dir(&x, work, NULL), RSTATE_EIO);
    cr_assert(strstr(rstate_last_error(), sp), "\"%s\" does not name %s", rstate_last_error(), sp);
    cr_assert(strstr(rstate_last_error(), "byte "), "\"%s\" names no offset", rstate_last_error());
    free(t);
  }
  /* cut short: refused, at the offset where it ends */
  copy_dir(dir, work);
  spit(sp, img, n - 8);
  expect_refused(work, sp, n - 24); /* the last record: 8 bytes of head, 9 of payload, 7 of padding */
  free(img);
  h_rmdir(work);
  h_rmdir(dir);
}

/* ---- compaction ------------------------------------------------------------------------- */

static int count_hist(const rstate_history_entry *e, void *ud) {
  (void)e;
  (*(size_t *)ud)++;
  return 0;
}

Test(file, compaction_keeps_everything) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  atomic_store(&rstate__file_compact_bytes, 16384);
  rstate_store *s = open_ok(dir, NULL);
  char name[32];
  for (int v = 0; v < 50; v++) {
    snprintf(name, sizeof name, "v%02d", v);
    h_define_ok(s, name, RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  }
  for (int i = 1; i <= 3000; i++) {
    snprintf(name, sizeof name, "v%02d", i % 50);
    ASSERT_RC(rstate_set_int(s, name, i), RSTATE_OK);
  }
  ASSERT_RC(rstate_undefine(s, "v49"), RSTATE_OK);
  wait_compacted(dir, 1);
  uint64_t rev = rstate_revision(s);
  rstate_close(s);
  atomic_store(&rstate__file_compact_bytes, 0);
  s = open_ok(dir, NULL);
  cr_assert_eq(rstate_revision(s), rev);
  for (int v = 0; v < 49; v++) {
    snprintf(name, sizeof name, "v%02d", v);
    int64_t want = 2950 + v;
    if (v == 0) want = 3000;
    cr_assert_eq(h_get_int(s, name), want, "%s", name);
    cr_assert_eq(h_version(s, name), 61, "%s: version %llu", name, (unsigned long long)h_version(s, name));
    size_t n = 0;
    ASSERT_RC(rstate_history(s, name, 0, count_hist, &n), RSTATE_OK);
    cr_assert_eq(n, 61, "%s: %zu history entries survived, want 61", name, n);
  }
  rstate_value x;
  ASSERT_RC(rstate_get(s, "v49", &x), RSTATE_ENOTFOUND);
  rstate_close(s);
  h_rmdir(dir);
}

/* ---- written before a watcher sees it ------------------------------------------------------ */

typedef struct copier {
  const char *dir;
  char copy[128];
  int checked;
} copier;

static int copy_and_check(const rstate_event *ev, void *ud) {
  copier *c = ud;
  if (ev->kind != RSTATE_EVENT_CHANGED) return RSTATE_CONTINUE;
  copy_dir(c->dir, c->copy);
  char lock[256];
  snprintf(lock, sizeof lock, "%s/lock", c->copy);
  unlink(lock);
  rstate_store *t = open_ok(c->copy, NULL);
  cr_assert_eq(h_get_int(t, "x"), ev->new_value.u.i, "a watcher saw a change the files do not hold yet");
  cr_assert_eq(rstate_revision(t), ev->revision);
  rstate_close(t);
  c->checked++;
  return RSTATE_CONTINUE;
}

Test(file, written_before_a_watcher_sees_it) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_NONE;
  rstate_store *s = open_ok(dir, &o);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  copier c = {.dir = dir};
  snprintf(c.copy, sizeof c.copy, "%s.copy", dir);
  const char *names[] = {"x"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(s, names, 1, copy_and_check, &c, NULL, &id), RSTATE_OK);
  for (int i = 1; i <= 3; i++) ASSERT_RC(rstate_set_int(s, "x", i), RSTATE_OK);
  cr_assert_eq(c.checked, 3);
  rstate_close(s);
  h_rmdir(c.copy);
  h_rmdir(dir);
}

/* ---- SYNC_ALWAYS: group commit ------------------------------------------------------------- */

typedef struct gc_arg {
  rstate_store *s;
  int id;
} gc_arg;

static void *gc_writer(void *p) {
  gc_arg *a = p;
  char name[16];
  snprintf(name, sizeof name, "t%d", a->id);
  for (int i = 1; i <= 40; i++)
    if (rstate_set_int(a->s, name, i)) return (void *)1;
  return NULL;
}

/* n threads, the i-th setting "t<i>" 40 times through stores[i]; the
 * fdatasyncs they made. */
static uint64_t gc_run(rstate_store *const *stores, int n) {
  uint64_t before = atomic_load(&rstate__file_syncs);
  pthread_t th[16];
  gc_arg args[16];
  cr_assert_leq(n, 16);
  for (int t = 0; t < n; t++) {
    args[t] = (gc_arg){stores[t], t};
    pthread_create(&th[t], NULL, gc_writer, &args[t]);
  }
  for (int t = 0; t < n; t++) {
    void *r;
    pthread_join(th[t], &r);
    cr_assert_null(r, "a set failed: %s", rstate_last_error());
  }
  return atomic_load(&rstate__file_syncs) - before;
}

/* 8 threads of one process setting with SYNC_ALWAYS share fdatasyncs (group
 * commit): at least two sets a sync, where one each would make 320. */
Test(file, sync_always_shares_syncs) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_ALWAYS;
  rstate_store *s = open_ok(dir, &o);
  enum { T = 8 };
  char name[16];
  for (int t = 0; t < T; t++) {
    snprintf(name, sizeof name, "t%d", t);
    h_define_ok(s, name, RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  }
  rstate_store *each[T];
  for (int t = 0; t < T; t++) each[t] = s;
  uint64_t syncs = gc_run(each, T);
  cr_assert_gt(syncs, 0, "SYNC_ALWAYS made no sync");
  cr_log_info("%llu fdatasyncs for %d sets by %d threads", (unsigned long long)syncs, T * 40, T);
  cr_assert_leq(syncs * 2, T * 40, "%llu fdatasyncs for %d sets by %d threads: fewer than two sets a sync",
                (unsigned long long)syncs, T * 40, T);
  rstate_close(s);
  s = open_ok(dir, NULL);
  for (int t = 0; t < T; t++) {
    snprintf(name, sizeof name, "t%d", t);
    cr_assert_eq(h_get_int(s, name), 40);
  }
  rstate_close(s);
  h_rmdir(dir);
}

/* Through a server, the writes of its clients share fdatasyncs: the server
 * answers the writes of one turn of its loop after one wait for them all.
 * 16 clients of a served SYNC_ALWAYS store set 40 values each; a set with
 * its own fdatasync each would make 640 of them. Every set answered OK is
 * in the store opened again. */
Test(file, sync_always_through_a_server_shares_syncs_between_clients) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_ALWAYS;
  rstate_store *s = open_ok(dir, &o);
  enum { T = 16, SETS = 40 };
  char name[16];
  for (int t = 0; t < T; t++) {
    snprintf(name, sizeof name, "t%d", t);
    h_define_ok(s, name, RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  }
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-test-file-%d.sock", (int)getpid());
  rstate_server *srv = NULL;
  ASSERT_RC(rstate_server_start(&srv, s, uri, NULL), RSTATE_OK);
  rstate_store *cl[T];
  for (int t = 0; t < T; t++) ASSERT_RC(rstate_open(&cl[t], uri, NULL), RSTATE_OK);
  uint64_t syncs = gc_run(cl, T);
  cr_assert_gt(syncs, 0, "SYNC_ALWAYS made no sync");
  cr_log_info("%llu fdatasyncs for %d sets through the server", (unsigned long long)syncs, T * SETS);
  cr_assert_leq(syncs * 2, T * SETS, "%llu fdatasyncs for %d sets made by %d clients through the server: fewer than two sets a sync",
                (unsigned long long)syncs, T * SETS, T);
  for (int t = 0; t < T; t++) rstate_close(cl[t]);
  rstate_server_stop(srv);
  rstate_close(s);
  s = open_ok(dir, NULL);
  for (int t = 0; t < T; t++) {
    snprintf(name, sizeof name, "t%d", t);
    cr_assert_eq(h_get_int(s, name), SETS);
  }
  rstate_close(s);
  h_rmdir(dir);
}

/* ---- SYNC_INTERVAL: what is written reaches the disk within the interval ---- */

static pthread_mutex_t synced_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t synced_cond = PTHREAD_COND_INITIALIZER;
static const rstate__journal *synced_j;
static size_t synced_to;
static int synced_n;

static void on_synced(const rstate__journal *j, size_t synced) {
  pthread_mutex_lock(&synced_lock);
  synced_j = j;
  synced_to = synced;
  synced_n++;
  pthread_cond_broadcast(&synced_cond);
  pthread_mutex_unlock(&synced_lock);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A writer setting 300 values a millisecond (some 20 MB/s) asks the store's
 * thread to prefault ahead every 100 ms once the journal passes 8 MB (a
 * quarter of the 8 MiB it keeps ahead), and more often before; the
 * interval's syncs go on meanwhile (they once waited for a pause of a
 * whole interval that never came), and once the writer stops, everything
 * it wrote is synced within the interval. Without compactions: their syncs
 * would hide the interval's. */
Test(file, sync_interval_keeps_its_pace_and_reaches_the_end) {
  enum { INTERVAL_MS = 200, WRITE_MS = 1200, PER_MS = 300 };
  atomic_store(&rstate__file_compact_bytes, (size_t)1 << 40);
  rstate__file_synced_hook = on_synced;
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_INTERVAL;
  o.sync_interval_ms = INTERVAL_MS;
  rstate_store *s = open_ok(dir, &o);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  pthread_mutex_lock(&synced_lock);
  int before = synced_n;
  pthread_mutex_unlock(&synced_lock);
  int64_t t0 = mono_ms(), v = 0;
  struct timespec tick;
  clock_gettime(CLOCK_MONOTONIC, &tick);
  while (mono_ms() - t0 < WRITE_MS) {
    for (int i = 0; i < PER_MS; i++) ASSERT_RC(rstate_set_int(s, "x", ++v), RSTATE_OK);
    tick.tv_nsec += 1000000; /* the pace, not a wait for a condition */
    if (tick.tv_nsec >= 1000000000L) {
      tick.tv_sec++;
      tick.tv_nsec -= 1000000000L;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
  }
  pthread_mutex_lock(&synced_lock);
  int during = synced_n - before;
  const rstate__journal *j = synced_j;
  pthread_mutex_unlock(&synced_lock);
  /* about WRITE_MS / INTERVAL_MS of them; a loaded machine may delay some */
  cr_assert_geq(during, 2, "%d syncs in %d ms of writing with an interval of %d ms (%lld sets)", during, WRITE_MS,
                INTERVAL_MS, (long long)v);
  cr_assert_not_null(j);
  size_t end = atomic_load(&((rstate__journal *)j)->published);
  /* idle now: the last bytes reach the disk at the next sync */
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock(&synced_lock);
  int e = 0;
  while (!(synced_j == j && synced_to >= end) && e != ETIMEDOUT)
    e = pthread_cond_timedwait(&synced_cond, &synced_lock, &dl);
  size_t got = synced_j == j ? synced_to : 0;
  pthread_mutex_unlock(&synced_lock);
  cr_assert_geq(got, end, "10 s after the last set, the journal is synced up to byte %zu of %zu", got, end);
  rstate_close(s);
  rstate__file_synced_hook = NULL;
  atomic_store(&rstate__file_compact_bytes, 0);
  s = open_ok(dir, NULL);
  cr_assert_eq(h_get_int(s, "x"), v);
  rstate_close(s);
  h_rmdir(dir);
}

/* A change taken back after a sync covered it (its announcement failed):
 * the record written over its bytes next is synced again, though it ends
 * before what the sync covered. */
Test(file, a_record_over_an_undone_one_is_synced_again) {
  char dir[96];
  rstate__journal *j = new_journal(dir, sizeof dir);
  uint8_t big[256], small[64];
  memset(big, 0xAB, sizeof big);
  memset(small, 0xCD, sizeof small);
  size_t start = atomic_load(&j->published);
  ASSERT_RC(rstate__journal_append(j, big, sizeof big), RSTATE_OK);
  rstate__file_synced_hook = on_synced;
  ASSERT_RC(rstate__journal_sync(j), RSTATE_OK);
  cr_assert_eq(synced_to, start + sizeof big);
  rstate__journal_undo(j);
  ASSERT_RC(rstate__journal_append(j, small, sizeof small), RSTATE_OK);
  int n = synced_n;
  ASSERT_RC(rstate__journal_sync(j), RSTATE_OK);
  cr_assert_eq(synced_n, n + 1, "the record written over the undone one was not synced");
  cr_assert_eq(synced_to, start + sizeof small);
  rstate__file_synced_hook = NULL;
  rstate__journal_close(j, true);
  h_rmdir(dir);
}

/* A change taken back after a sync put its record on disk, and nothing
 * appended after it: the next sync writes the zeros over the record,
 * though the journal's end is where that sync began (after a power loss
 * the record of a change whose call failed would be read back); the one
 * after has nothing to do. The file holds zeros there. */
Test(file, the_zeros_over_an_undone_record_are_synced) {
  char dir[96];
  rstate__journal *j = new_journal(dir, sizeof dir);
  uint8_t rec[256];
  memset(rec, 0xAB, sizeof rec);
  size_t start = atomic_load(&j->published);
  ASSERT_RC(rstate__journal_append(j, rec, sizeof rec), RSTATE_OK);
  rstate__file_synced_hook = on_synced;
  ASSERT_RC(rstate__journal_sync(j), RSTATE_OK);
  cr_assert_eq(synced_to, start + sizeof rec);
  rstate__journal_undo(j);
  uint64_t before = atomic_load(&rstate__file_syncs);
  ASSERT_RC(rstate__journal_sync(j), RSTATE_OK);
  cr_assert_eq(atomic_load(&rstate__file_syncs), before + 1, "the zeros over the undone record were not synced");
  cr_assert_eq(synced_to, start, "synced moved past the end");
  ASSERT_RC(rstate__journal_sync(j), RSTATE_OK);
  cr_assert_eq(atomic_load(&rstate__file_syncs), before + 1, "a sync with nothing to sync");
  rstate__file_synced_hook = NULL;
  char path[256];
  journal_path(path, sizeof path, dir, 1);
  size_t n;
  uint8_t *file = slurp(path, &n);
  cr_assert_geq(n, start + sizeof rec);
  for (size_t i = start; i < start + sizeof rec; i++) cr_assert_eq(file[i], 0, "byte %zu of the undone record", i);
  free(file);
  rstate__journal_close(j, true);
  h_rmdir(dir);
}

/* ---- a sync that fails ------------------------------------------------------------------- */

/* The next sync of a journal fails with fault_errno (once); the syncs
 * failed so far, and a condition to wait for them. */
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fault_cond = PTHREAD_COND_INITIALIZER;
static int fault_errno, faults_made, failures_kept;

static int inject_fault(const rstate__journal *j) {
  (void)j;
  pthread_mutex_lock(&fault_lock);
  int e = fault_errno;
  fault_errno = 0;
  if (e) faults_made++;
  pthread_cond_broadcast(&fault_cond);
  pthread_mutex_unlock(&fault_lock);
  return e;
}

/* The failure kept by the journal (after the sync the fault failed). */
static void note_failure(const rstate__journal *j) {
  (void)j;
  pthread_mutex_lock(&fault_lock);
  failures_kept++;
  pthread_cond_broadcast(&fault_cond);
  pthread_mutex_unlock(&fault_lock);
}

static void arm_fault(int e) {
  pthread_mutex_lock(&fault_lock);
  fault_errno = e;
  pthread_mutex_unlock(&fault_lock);
}

/* Waits (10 s at most) until n syncs failed and their journals kept it
 * (note_failure, set with inject_fault). */
static void wait_faults(int n) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock(&fault_lock);
  int e = 0;
  while ((faults_made < n || failures_kept < n) && e != ETIMEDOUT)
    e = pthread_cond_timedwait(&fault_cond, &fault_lock, &dl);
  int made = faults_made, kept = failures_kept;
  pthread_mutex_unlock(&fault_lock);
  cr_assert_geq(made, n, "10 s on, %d syncs failed of the %d injected", made, n);
  cr_assert_geq(kept, n, "10 s on, %d of %d failed syncs were kept by their journal", kept, n);
}

/* The sentence of a change refused after a failed sync of journal gen. */
static void assert_refused(int rc, const char *name, const char *dir, uint64_t gen) {
  char want[512];
  snprintf(want, sizeof want,
           "%s: file:%s: a sync of journal.%016llx failed: %s; the store takes no more changes until it is opened "
           "again (changes made before may not be on disk)",
           name, dir, (unsigned long long)gen, strerror(EIO));
  cr_assert_eq(rc, RSTATE_EIO, "%s: %s", rstate_error_name(rc), rstate_last_error());
  cr_assert_str_eq(rstate_last_error(), want);
}

/* A change that got past the store's refusal just before another thread's
 * sync failed, then was taken back: the sync its call makes still writes
 * the zeros over its record back (an msync of them runs), though it
 * fails, and what the failed sync did not write is not marked synced;
 * the next sync has nothing to write. */
Test(file, the_zeros_of_an_undo_after_a_failed_sync_are_still_synced) {
  char dir[96];
  rstate__journal *j = new_journal(dir, sizeof dir);
  uint8_t rec[256];
  memset(rec, 0xAB, sizeof rec);
  size_t start = atomic_load(&j->published);
  ASSERT_RC(rstate__journal_append(j, rec, sizeof rec), RSTATE_OK);
  rstate__file_sync_fault = inject_fault;
  arm_fault(EIO);
  char want[300];
  snprintf(want, sizeof want, "a sync of %s/journal.%016llx failed: %s", dir, 1ull, strerror(EIO));
  ASSERT_RC(rstate__journal_sync(j), RSTATE_EIO);
  cr_assert_str_eq(rstate_last_error(), want);
  rstate__journal_undo(j);
  uint64_t before = atomic_load(&rstate__file_syncs);
  ASSERT_RC(rstate__journal_sync(j), RSTATE_EIO);
  cr_assert_str_eq(rstate_last_error(), want);
  cr_assert_eq(atomic_load(&rstate__file_syncs), before + 1, "the zeros over the undone record were not synced");
  cr_assert_eq(j->synced, start, "synced moved after a failed sync");
  rstate__file_sync_fault = NULL;
  char path[256];
  journal_path(path, sizeof path, dir, 1);
  size_t n;
  uint8_t *file = slurp(path, &n);
  cr_assert_geq(n, start + sizeof rec);
  for (size_t i = start; i < start + sizeof rec; i++) cr_assert_eq(file[i], 0, "byte %zu of the undone record", i);
  free(file);
  before = atomic_load(&rstate__file_syncs);
  ASSERT_RC(rstate__journal_append(j, rec, sizeof rec), RSTATE_OK);
  ASSERT_RC(rstate__journal_sync(j), RSTATE_EIO);
  cr_assert_eq(atomic_load(&rstate__file_syncs), before, "a sync after the failed one, with no zeros to write");
  rstate__journal_close(j, true);
  h_rmdir(dir);
}

/* A failed interval sync is told by every change after it, refused with
 * RSTATE_EIO naming the journal and the error, and nothing changed; the
 * later syncs do not lift it (a write-back that failed may leave its pages
 * marked clean, and a sync then succeeds without them): reopening does. */
Test(file, a_failed_interval_sync_refuses_every_change_until_reopened) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_INTERVAL;
  o.sync_interval_ms = 10;
  rstate__file_sync_fault = inject_fault; /* before the store's threads start */
  rstate__file_sync_failed_hook = note_failure;
  rstate_store *s = open_ok(dir, &o);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  arm_fault(EIO);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK); /* something for the next sync */
  wait_faults(1);
  assert_refused(rstate_set_int(s, "x", 2), "x", dir, 1);
  assert_refused(rstate_define(s, &(rstate_var_def){.name = "y", .type = RSTATE_TYPE_INTEGER, .initial = rstate_int(0)}), "y", dir, 1);
  assert_refused(rstate_undefine(s, "x"), "x", dir, 1);
  cr_assert_eq(h_get_int(s, "x"), 1, "a refused change was made");
  cr_assert_eq(rstate_revision(s), 2);
  /* five intervals on (nothing to wait for: the store's thread tries and
   * fails again) it is still refused */
  nanosleep(&(struct timespec){0, 50000000}, NULL);
  assert_refused(rstate_set_int(s, "x", 3), "x", dir, 1);
  rstate_close(s);
  rstate__file_sync_fault = NULL;
  s = open_ok(dir, &o);
  cr_assert_eq(h_get_int(s, "x"), 1);
  ASSERT_RC(rstate_set_int(s, "x", 4), RSTATE_OK);
  rstate_close(s);
  h_rmdir(dir);
}

/* With SYNC_ALWAYS, the writer whose fdatasync failed is told its change is
 * made but may not be on disk; every change after it is refused. */
Test(file, a_failed_fdatasync_refuses_every_change_until_reopened) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_ALWAYS;
  rstate__file_sync_fault = inject_fault; /* before the store's threads start */
  rstate__file_sync_failed_hook = note_failure;
  rstate_store *s = open_ok(dir, &o);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  arm_fault(EIO);
  int rc = rstate_set_int(s, "x", 1);
  cr_assert_eq(rc, RSTATE_EIO, "%s: %s", rstate_error_name(rc), rstate_last_error());
  char want[512];
  snprintf(want, sizeof want, "a sync of %s/journal.%016llx failed: %s (the change is made but may not be on disk)",
           dir, 1ull, strerror(EIO));
  cr_assert_str_eq(rstate_last_error(), want);
  cr_assert_eq(h_get_int(s, "x"), 1);
  assert_refused(rstate_set_int(s, "x", 2), "x", dir, 1);
  cr_assert_eq(h_get_int(s, "x"), 1);
  rstate_close(s);
  rstate__file_sync_fault = NULL;
  s = open_ok(dir, &o);
  cr_assert_eq(h_get_int(s, "x"), 1);
  ASSERT_RC(rstate_set_int(s, "x", 3), RSTATE_OK);
  rstate_close(s);
  h_rmdir(dir);
}

/* A server answers a turn's writes after one wait for their fdatasync
 * (defer_durability); when that fails, the clients that wrote in the turn
 * are closed unanswered (their calls fail with RSTATE_ECLOSED: the change
 * may have been made), the operator is told once through on_log, and every
 * change after it is refused with the store's sentence. */
static pthread_mutex_t srvlog_lock = PTHREAD_MUTEX_INITIALIZER;
static char srvlog_line[512];
static int srvlog_lines;

static void on_srv_log(rstate_server *srv, const char *line, void *ud) {
  (void)srv;
  (void)ud;
  pthread_mutex_lock(&srvlog_lock);
  if (strstr(line, "unanswered")) {
    snprintf(srvlog_line, sizeof srvlog_line, "%s", line);
    srvlog_lines++;
  }
  pthread_mutex_unlock(&srvlog_lock);
}

Test(file, a_failed_fdatasync_in_a_server_closes_the_turns_writers_unanswered) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_ALWAYS;
  rstate__file_sync_fault = inject_fault; /* before the store's threads start */
  rstate__file_sync_failed_hook = note_failure;
  rstate_store *s = open_ok(dir, &o);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  char uri[128];
  snprintf(uri, sizeof uri, "unix:/tmp/rstate-test-file-%d-fail.sock", (int)getpid());
  rstate_server_opts so = {.on_log = on_srv_log};
  rstate_server *srv = NULL;
  ASSERT_RC(rstate_server_start(&srv, s, uri, &so), RSTATE_OK);
  rstate_store *cl = NULL;
  ASSERT_RC(rstate_open(&cl, uri, NULL), RSTATE_OK);
  ASSERT_RC(rstate_set_int(cl, "x", 1), RSTATE_OK);
  arm_fault(EIO);
  int rc = rstate_set_int(cl, "x", 2);
  cr_assert_eq(rc, RSTATE_ECLOSED, "the writer was answered %s: %s", rstate_error_name(rc), rstate_last_error());
  wait_faults(1);
  cr_assert_eq(h_get_int(s, "x"), 2, "the change was not made");
  char want[512];
  snprintf(want, sizeof want,
           "a sync of %s/journal.%016llx failed: %s (the change is made but may not be on disk): closed 1 clients "
           "unanswered: their changes are made but may not be on disk",
           dir, 1ull, strerror(EIO));
  pthread_mutex_lock(&srvlog_lock);
  cr_assert_eq(srvlog_lines, 1);
  cr_assert_str_eq(srvlog_line, want);
  pthread_mutex_unlock(&srvlog_lock);
  rstate_close(cl);
  ASSERT_RC(rstate_open(&cl, uri, NULL), RSTATE_OK);
  rc = rstate_set_int(cl, "x", 3);
  cr_assert_eq(rc, RSTATE_EIO, "%s: %s", rstate_error_name(rc), rstate_last_error());
  cr_assert(strstr(rstate_last_error(), "a sync of journal.0000000000000001 failed"), "%s", rstate_last_error());
  cr_assert_eq(h_get_int(s, "x"), 2);
  rstate_close(cl);
  rstate_server_stop(srv);
  rstate_close(s);
  rstate__file_sync_fault = NULL;
  h_rmdir(dir);
}

/* ---- a file system that cannot allocate ------------------------------------------------ */

/* Makes fallocate(2) fail with EOPNOTSUPP in this process (the test's own,
 * forked by Criterion), as on a file system that cannot allocate ahead
 * (NFSv3, ext4 without extents, some FUSE ones): a seccomp filter, which
 * no_new_privs lets any process install. false where the kernel has none. */
static bool fallocate_unsupported(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fallocate, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EOPNOTSUPP & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) return false;
  int fd = open("/dev/null", O_RDONLY);
  errno = 0;
  long r = syscall(__NR_fallocate, fd, 0, (off_t)0, (off_t)4096);
  int e = errno;
  close(fd);
  return r == -1 && e == EOPNOTSUPP;
}

/* The descriptor this process holds open on path, -1 if none. */
static int fd_of(const char *path) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int fd = -1;
  struct dirent *e;
  while (fd < 0 && (e = readdir(d))) {
    char link[300], target[300];
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (!strcmp(target, path)) fd = atoi(e->d_name);
  }
  closedir(d);
  return fd;
}

/* Makes pwrite64 and write on fd fail with EPERM below byte below (a
 * seccomp filter, in this forked test process only). */
static bool no_writes_below(int fd, size_t below) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const unsigned lo = 0, hi = 4;
#else
  const unsigned lo = 4, hi = 0;
#endif
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 0, 2),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]) + lo),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)fd, 7, 8), /* write on fd: refused */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pwrite64, 0, 7),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]) + lo),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)fd, 0, 5),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3]) + hi),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3), /* at 4 GiB or more: allowed */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3]) + lo),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)below, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  if (below >= (size_t)1 << 32 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) return false;
  errno = 0;
  long r = syscall(__NR_pwrite64, fd, "", (size_t)0, (off_t)0); /* writes nothing where allowed */
  return r == -1 && errno == EPERM;
}

/* Where the file system cannot allocate, the blocks past the end of the
 * journal are written (a zero byte each, so that a full disk is an error
 * when the journal grows, and the file is not sparse) and nothing below it
 * but the records: glibc's
 * posix_fallocate emulates an allocation there by writing a zero byte into
 * every block of the range that reads as zero, which raced with the writer
 * filling those blocks through the mapping (a record's byte read as zero
 * just before the writer wrote it, then overwritten: a checksum failure in
 * the middle of the journal at the next open). A seccomp filter refuses a
 * write below the journal's end of file as it is once the store is open
 * (the room allocated ahead of the records is all zeros there, so such a
 * write comes at the first grow); then a writer going flat out while the
 * store's thread allocates ahead of it, and every record read back. */
Test(file, without_fallocate_nothing_but_records_is_written, .timeout = 120) {
  if (!fallocate_unsupported()) cr_skip_test("no seccomp filter here to make fallocate unsupported");
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_options o = {0};
  o.sync = RSTATE_SYNC_NONE;
  atomic_store(&rstate__file_compact_bytes, (size_t)1 << 40); /* one journal, allocated ahead many times */
  rstate_store *s = open_ok(dir, &o);
  h_define_ok(s, "x", RSTATE_TYPE_STRING, rstate_string(""), NULL);
  char path[256];
  journal_path(path, sizeof path, dir, 1);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
  int jfd = fd_of(path);
  cr_assert_geq(jfd, 0, "no descriptor open on %s", path);
  cr_assert(no_writes_below(jfd, (size_t)st.st_size), "the seccomp filter on writes was not installed");
  /* records of nonzero bytes almost only, so that a zero written over one
   * of them is damage */
  char v[1001];
  memset(v, 'x', sizeof v - 1);
  v[sizeof v - 1] = '\0';
  int n = getenv("RSTATE_TEST_QUICK") ? 20000 : 200000;
  for (int i = 1; i <= n; i++) {
    snprintf(v, 16, "%014d", i);
    v[14] = 'x';
    int rc = rstate_set_string(s, "x", v);
    cr_assert_eq(rc, RSTATE_OK, "set %d of %d returned %s: %s", i, n, rstate_error_name(rc), rstate_last_error());
  }
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_geq((size_t)st.st_size, (size_t)n * 1000, "the journal is %zu bytes", (size_t)st.st_size);
  /* and allocated to its end, zeros ahead included: a sparse file finds a
   * full disk as a SIGBUS at an append */
  cr_assert_geq((size_t)st.st_blocks * 512 + 4096, (size_t)st.st_size, "%zu of the journal's %zu bytes allocated",
                (size_t)st.st_blocks * 512, (size_t)st.st_size);
  rstate_close(s);
  atomic_store(&rstate__file_compact_bytes, 0);
  s = NULL;
  int rc = open_dir(&s, dir, NULL);
  cr_assert_eq(rc, RSTATE_OK, "reopening returned %s: %s", rstate_error_name(rc), rstate_last_error());
  rstate_value got;
  ASSERT_RC(rstate_get(s, "x", &got), RSTATE_OK);
  cr_assert_str_eq(got.u.s.ptr, v);
  rstate_value_clear(&got);
  cr_assert_eq(rstate_revision(s), (uint64_t)n + 1);
  rstate_close(s);
  h_rmdir(dir);
}

/* Where the file system cannot allocate, a disk with no more room is an
 * error when the journal grows, not a SIGBUS at an append: the change
 * that needs the room is refused with RSTATE_EIO, naming the journal and
 * the error, and not made. (A file size limit stands for the full disk.) */
Test(file, without_fallocate_no_room_is_an_error) {
  if (!fallocate_unsupported()) cr_skip_test("no seccomp filter here to make fallocate unsupported");
  char dir[96];
  fresh_dir(dir, sizeof dir);
  atomic_store(&rstate__file_compact_bytes, (size_t)1 << 40);
  rstate_store *s = open_ok(dir, NULL);
  h_define_ok(s, "x", RSTATE_TYPE_STRING, rstate_string(""), NULL);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = {4 << 20, 4 << 20};
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0, "%s", strerror(errno));
  static char v[100001];
  memset(v, 'x', sizeof v - 1);
  int rc = RSTATE_OK, i;
  for (i = 0; i < 100 && rc == RSTATE_OK; i++) {
    v[0] = (char)('a' + i % 26);
    rc = rstate_set_string(s, "x", v);
  }
  cr_assert_eq(rc, RSTATE_EIO, "after %d sets of 100 kB: %s: %s", i, rstate_error_name(rc), rstate_last_error());
  char path[256], want[400];
  journal_path(path, sizeof path, dir, 1);
  snprintf(want, sizeof want, "%s: cannot grow the journal to ", path);
  cr_assert(strstr(rstate_last_error(), want) && strstr(rstate_last_error(), strerror(EFBIG)), "%s",
            rstate_last_error());
  rstate_value got;
  ASSERT_RC(rstate_get(s, "x", &got), RSTATE_OK);
  cr_assert_eq(got.u.s.ptr[0], 'a' + (i - 2) % 26, "the refused change was made");
  rstate_value_clear(&got);
  rstate_close(s);
  atomic_store(&rstate__file_compact_bytes, 0);
  h_rmdir(dir);
}

/* ---- a remap while a sync runs ------------------------------------------------------------- */

/* A sync that blocks, holding the journal's mapping as an msync would, until
 * released (5 s at most: slow_state 3 then). */
static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cond = PTHREAD_COND_INITIALIZER;
static int slow_state; /* 0 before, 1 in the sync, 2 released, 3 gave up waiting */

static int slow_sync(const rstate__journal *j) {
  (void)j;
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 5;
  pthread_mutex_lock(&slow_lock);
  slow_state = 1;
  pthread_cond_broadcast(&slow_cond);
  int e = 0;
  while (slow_state == 1 && e != ETIMEDOUT) e = pthread_cond_timedwait(&slow_cond, &slow_lock, &dl);
  if (slow_state == 1) slow_state = 3;
  pthread_mutex_unlock(&slow_lock);
  return 0;
}

static void *syncer(void *p) { return (void *)(intptr_t)rstate__journal_sync(p); }

/* While an msync runs (up to 100 ms on a busy disk) the sync holds the
 * mapping; a writer whose journal passes the 1 GiB mapped at once must
 * remap, and it does so without waiting for the sync: the file is mapped
 * anew and the old mapping unmapped once the sync is done with it. Both
 * mappings write the same file. (Extended sparse by the test beforehand,
 * and fallocate made unsupported, so that the 1 GiB takes no room: the
 * journal finds the file long enough and writes nothing into it.) */
Test(file, a_remap_does_not_wait_for_a_sync) {
  if (sizeof(size_t) < 8) cr_skip_test("the mapping is 1 GiB on 64-bit machines only");
  if (!fallocate_unsupported()) cr_skip_test("no seccomp filter here to keep the journal sparse");
  char dir[96];
  rstate__journal *j = new_journal(dir, sizeof dir);
  uint8_t rec[64];
  memset(rec, 0xAB, sizeof rec);
  ASSERT_RC(rstate__journal_append(j, rec, sizeof rec), RSTATE_OK);
  rstate__file_sync_fault = slow_sync;
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, syncer, j), 0);
  pthread_mutex_lock(&slow_lock);
  while (slow_state == 0) pthread_cond_wait(&slow_cond, &slow_lock); /* slow_sync gives up after 5 s */
  pthread_mutex_unlock(&slow_lock);
  size_t at = atomic_load(&j->published), len = ((size_t)1 << 30) + ((size_t)1 << 20);
  char path[256];
  journal_path(path, sizeof path, dir, 1);
  cr_assert_eq(truncate(path, (off_t)(at + len) + (128 << 20)), 0, "%s", strerror(errno));
  uint8_t *p = rstate__journal_reserve(j, len);
  cr_assert_not_null(p, "%s", rstate_last_error());
  cr_assert_geq(j->size, (size_t)2 << 30, "the new mapping has no room ahead (%zu bytes)", j->size);
  pthread_mutex_lock(&slow_lock);
  int state = slow_state;
  slow_state = 2;
  pthread_cond_broadcast(&slow_cond);
  pthread_mutex_unlock(&slow_lock);
  cr_assert_eq(state, 1, "the remap waited for the sync to end");
  void *rc;
  pthread_join(th, &rc);
  cr_assert_eq((int)(intptr_t)rc, RSTATE_OK);
  rstate__file_sync_fault = NULL;
  memset(p, 0xCD, 8);
  p[len - 1] = 0xEF;
  rstate__journal_commit(j, len);
  ASSERT_RC(rstate__journal_sync(j), RSTATE_OK);
  int fd = open(path, O_RDONLY);
  cr_assert_geq(fd, 0);
  uint8_t b[8];
  cr_assert_eq(pread(fd, b, 8, (off_t)(at - sizeof rec)), 8);
  cr_assert_eq(b[0], 0xAB, "the record written through the old mapping");
  cr_assert_eq(pread(fd, b, 8, (off_t)at), 8);
  cr_assert_eq(b[0], 0xCD, "the bytes written through the new mapping");
  cr_assert_eq(pread(fd, b, 1, (off_t)(at + len - 1)), 1);
  cr_assert_eq(b[0], 0xEF);
  close(fd);
  rstate__journal_close(j, true);
  h_rmdir(dir);
}

/* A journal longer than the address space mapped at once (1 GiB; 1 MiB
 * here) grows under a mapping with room ahead: remapped when it passes
 * the mapping, to twice what was mapped, so a journal grown step by step (the
 * store's thread allocating ahead of the writer, 8 MiB at a time here) is
 * remapped about log2(its length / the window) times, not once a step.
 * The bytes written through every mapping are in the file. (Kept sparse
 * as above: the steps take no room.) */
Test(file, a_journal_past_its_mapping_is_remapped_rarely) {
  if (sizeof(size_t) < 8) cr_skip_test("a 1 GiB journal is for 64-bit machines");
  if (!fallocate_unsupported()) cr_skip_test("no seccomp filter here to keep the journal sparse");
  char dir[96];
  const size_t window = (size_t)1 << 20, last = (size_t)1 << 30, step = (size_t)1 << 20;
  atomic_store(&rstate__file_map_window, window);
  rstate__journal *j = new_journal(dir, sizeof dir);
  atomic_store(&rstate__file_map_window, 0);
  char path[256];
  journal_path(path, sizeof path, dir, 1);
  cr_assert_eq(truncate(path, (off_t)(last + ((size_t)64 << 20))), 0, "%s", strerror(errno));
  uint64_t before = atomic_load(&rstate__file_remaps);
  size_t allocated = atomic_load(&j->allocated);
  int steps = 0, marks = 0;
  size_t marked[32];
  uint64_t seen = before - 1;
  while (atomic_load(&j->published) + step <= last) {
    rstate__journal_allocate_ahead(j); /* as the store's thread does */
    size_t now = atomic_load(&j->allocated);
    if (now != allocated) steps++;
    allocated = now;
    size_t at = atomic_load(&j->published);
    uint8_t *p = rstate__journal_reserve(j, step);
    cr_assert_not_null(p, "%s", rstate_last_error());
    cr_assert_leq(at + step, j->size, "the room reserved is not mapped");
    uint64_t r = atomic_load(&rstate__file_remaps);
    if (r != seen && marks < 32) { /* a byte through each mapping */
      p[0] = (uint8_t)(0x80 + marks);
      marked[marks++] = at;
      seen = r;
    }
    rstate__journal_commit(j, step);
  }
  uint64_t remaps = atomic_load(&rstate__file_remaps) - before;
  cr_assert_geq(steps, 100, "the journal grew in %d steps only", steps);
  cr_assert_leq(remaps, 11, /* log2(1 GiB / 1 MiB), and one */
                "a journal grown to 1 GiB in %d steps past a 1 MiB mapping was remapped %llu times", steps,
                (unsigned long long)remaps);
  cr_assert_geq(remaps, 1, "the journal was never remapped");
  cr_assert_eq(marks, (int)remaps + 1);
  ASSERT_RC(rstate__journal_sync(j), RSTATE_OK);
  int fd = open(path, O_RDONLY);
  cr_assert_geq(fd, 0);
  for (int i = 0; i < marks; i++) {
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, (off_t)marked[i]), 1);
    cr_assert_eq(b, 0x80 + i, "the byte written at %zu", marked[i]);
  }
  close(fd);
  rstate__journal_close(j, true);
  h_rmdir(dir);
}

/* ---- kill -9 at random moments --------------------------------------------------------------- */

/* The child: opens the store, and sets a, b and c together to 1, 2, ...
 * after what they hold, reporting each value whose call returned OK. */
static void child_writer(const char *dir, rstate_sync mode, int ack_fd) {
  atomic_store(&rstate__file_compact_bytes, 32768); /* compactions happen, and get killed too */
  rstate_options o = {0};
  o.sync = mode;
  o.sync_interval_ms = 5;
  rstate_store *s;
  if (open_dir(&s, dir, &o)) _exit(2);
  int64_t v = 0;
  if (rstate_get_int(s, "a", &v)) _exit(3);
  for (;;) {
    v++;
    rstate_assign items[] = {{"a", rstate_int(v)}, {"b", rstate_int(v)}, {"c", rstate_int(v)}};
    if (rstate_set_many(s, items, 3, NULL, NULL)) _exit(4);
    if (write(ack_fd, &v, sizeof v) != sizeof v) _exit(5);
  }
}

/* RSTATE_TEST_QUICK (make valgrind) runs a tenth of the rounds. */
static void kill_rounds(rstate_sync mode, int rounds) {
  if (getenv("RSTATE_TEST_QUICK")) rounds /= 10;
  char dir[96];
  fresh_dir(dir, sizeof dir);
  rstate_store *s = open_ok(dir, NULL);
  h_define_ok(s, "a", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "b", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "c", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  rstate_close(s);
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  int64_t acked = 0;
  for (int r = 0; r < rounds; r++) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
      close(p[0]);
      child_writer(dir, mode, p[1]);
    }
    close(p[1]);
    /* a random number of acknowledgements (0: none), then a random spin */
    int want = rand_r(&seed) % 40;
    for (int i = 0; i < want; i++) {
      int64_t v;
      if (read(p[0], &v, sizeof v) != sizeof v) break;
      acked = v;
    }
    for (volatile int spin = rand_r(&seed) % 200000; spin > 0; spin--) {
    }
    kill(child, SIGKILL);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFSIGNALED(status), "round %d: the child ended on its own (status %d)", r, status);
    int64_t v; /* acknowledgements sent before it died count too */
    while (read(p[0], &v, sizeof v) == sizeof v) acked = v;
    close(p[0]);
    s = NULL;
    int rc = open_dir(&s, dir, NULL);
    cr_assert_eq(rc, RSTATE_OK, "round %d: reopening after kill -9 returned %s: %s", r, rstate_error_name(rc),
                 rstate_last_error());
    int64_t a = h_get_int(s, "a"), b = h_get_int(s, "b"), c = h_get_int(s, "c");
    cr_assert(a == b && b == c, "round %d: a batch was torn: a=%lld b=%lld c=%lld", r, (long long)a, (long long)b,
              (long long)c);
    cr_assert_geq(a, acked, "round %d: %lld was acknowledged, the store holds %lld", r, (long long)acked,
                  (long long)a);
    acked = a;
    rstate_close(s);
  }
  if (rounds >= 20) /* the children made progress (a quick run is too short to say) */
    cr_assert_gt(acked, rounds / 4, "only %lld changes were made in %d rounds", (long long)acked, rounds);
  h_rmdir(dir);
}

Test(file, kill9_sync_none, .timeout = 120) { kill_rounds(RSTATE_SYNC_NONE, 40); }
Test(file, kill9_sync_interval, .timeout = 120) { kill_rounds(RSTATE_SYNC_INTERVAL, 40); }
Test(file, kill9_sync_always, .timeout = 120) { kill_rounds(RSTATE_SYNC_ALWAYS, 40); }
