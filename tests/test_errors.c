/*
 * test_errors.c — error codes, their names and sentences, and the
 * thread-local rstate_last_error().
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

TestSuite(errors);

struct code_row {
  int code;
  int value; /* as written in API.md */
  const char *name;
};

static const struct code_row codes[] = {
    {RSTATE_OK, 0, "RSTATE_OK"},
    {RSTATE_EINVAL, -1, "RSTATE_EINVAL"},
    {RSTATE_ENOMEM, -2, "RSTATE_ENOMEM"},
    {RSTATE_ENOTFOUND, -3, "RSTATE_ENOTFOUND"},
    {RSTATE_EEXIST, -4, "RSTATE_EEXIST"},
    {RSTATE_ETYPE, -5, "RSTATE_ETYPE"},
    {RSTATE_ECONSTRAINT, -6, "RSTATE_ECONSTRAINT"},
    {RSTATE_ECONFLICT, -7, "RSTATE_ECONFLICT"},
    {RSTATE_EIO, -8, "RSTATE_EIO"},
    {RSTATE_ETIMEDOUT, -9, "RSTATE_ETIMEDOUT"},
    {RSTATE_EPROTO, -10, "RSTATE_EPROTO"},
    {RSTATE_EPERM, -11, "RSTATE_EPERM"},
    {RSTATE_ECLOSED, -12, "RSTATE_ECLOSED"},
    {RSTATE_ELIMIT, -13, "RSTATE_ELIMIT"},
    {RSTATE_ENOTSUP, -14, "RSTATE_ENOTSUP"},
    {RSTATE_EBUSY, -15, "RSTATE_EBUSY"},
};
#define N_CODES (sizeof codes / sizeof codes[0])

Test(errors, code_values_match_the_contract) {
  for (size_t i = 0; i < N_CODES; i++)
    cr_assert_eq(codes[i].code, codes[i].value, "%s is %d, API.md says %d", codes[i].name, codes[i].code,
                 codes[i].value);
}

Test(errors, error_names_are_exact) {
  for (size_t i = 0; i < N_CODES; i++) {
    const char *name = rstate_error_name(codes[i].code);
    cr_assert_not_null(name, "rstate_error_name(%d) is NULL", codes[i].code);
    cr_assert_str_eq(name, codes[i].name, "rstate_error_name(%d)", codes[i].code);
  }
}

Test(errors, strerror_for_every_code) {
  const char *unknown = rstate_strerror(-1000);
  for (size_t i = 0; i < N_CODES; i++) {
    const char *text = rstate_strerror(codes[i].code);
    cr_assert_not_null(text, "rstate_strerror(%s) is NULL", codes[i].name);
    cr_assert_neq(text[0], '\0', "rstate_strerror(%s) is empty", codes[i].name);
    cr_assert_str_neq(text, unknown, "rstate_strerror(%s) is the unknown-code sentence", codes[i].name);
  }
}

Test(errors, strerror_sentences_are_distinct) {
  for (size_t i = 0; i < N_CODES; i++)
    for (size_t j = i + 1; j < N_CODES; j++)
      cr_assert_str_neq(rstate_strerror(codes[i].code), rstate_strerror(codes[j].code),
                        "%s and %s share the sentence \"%s\"", codes[i].name, codes[j].name,
                        rstate_strerror(codes[i].code));
}

Test(errors, strerror_matches_contract_meaning) {
  cr_assert_str_eq(rstate_strerror(RSTATE_OK), "success");
  cr_assert_str_eq(rstate_strerror(RSTATE_ECONSTRAINT), "value breaks the variable's constraints");
}

Test(errors, unknown_codes) {
  const int unknown[] = {1, 42, -16, -100, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *text = rstate_strerror(unknown[i]);
    const char *name = rstate_error_name(unknown[i]);
    cr_assert_not_null(text, "rstate_strerror(%d) is NULL", unknown[i]);
    cr_assert_not_null(name, "rstate_error_name(%d) is NULL", unknown[i]);
    cr_assert_str_eq(text, "unknown error code", "rstate_strerror(%d)", unknown[i]);
    cr_assert_str_eq(name, "RSTATE_E?", "rstate_error_name(%d)", unknown[i]);
  }
}

/* ---- rstate_last_error ---------------------------------------------------- */

struct thread_report {
  rstate_store *store;
  const char *name; /* the variable this thread fails on, or NULL: only read */
  int rc;
  char before[512]; /* rstate_last_error() at thread start */
  char after[512];  /* rstate_last_error() after the thread's failure */
};

static void *fail_on_thread(void *arg) {
  struct thread_report *r = arg;
  snprintf(r->before, sizeof r->before, "%s", rstate_last_error());
  if (r->name) {
    rstate_value v;
    r->rc = rstate_get(r->store, r->name, &v);
    if (r->rc == RSTATE_OK) rstate_value_clear(&v);
    snprintf(r->after, sizeof r->after, "%s", rstate_last_error());
  }
  return NULL;
}

Test(errors, last_error_is_empty_in_a_new_thread) {
  /* Fail on this thread first, so a global buffer would show through. */
  rstate_value dst;
  ASSERT_RC(rstate_value_copy(&dst, NULL), RSTATE_EINVAL);
  cr_assert_neq(rstate_last_error()[0], '\0', "the failure left no sentence");

  struct thread_report r;
  memset(&r, 0, sizeof r);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, fail_on_thread, &r), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_str_eq(r.before, "", "a new thread saw \"%s\" before any failure of its own", r.before);
}

Test(errors, last_error_is_thread_local) {
  rstate_store *s = h_open();
  rstate_value v;
  ASSERT_FAIL_NAMES(rstate_get(s, "main_thread_var", &v), RSTATE_ENOTFOUND, "main_thread_var");
  char mine[512];
  snprintf(mine, sizeof mine, "%s", rstate_last_error());

  struct thread_report r;
  memset(&r, 0, sizeof r);
  r.store = s;
  r.name = "other_thread_var";
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, fail_on_thread, &r), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  rstate_close(s);

  cr_assert_eq(r.rc, RSTATE_ENOTFOUND, "the other thread got %s", rstate_error_name(r.rc));
  cr_assert_str_eq(r.before, "", "the other thread saw this thread's error \"%s\"", r.before);
  cr_assert(strstr(r.after, "other_thread_var") != NULL, "the other thread's error \"%s\" does not name its variable",
            r.after);
  cr_assert_str_eq(rstate_last_error(), mine, "another thread's failure changed this thread's last error to \"%s\"",
                   rstate_last_error());
}

Test(errors, success_leaves_last_error_alone) {
  rstate_value dst;
  ASSERT_RC(rstate_value_copy(&dst, NULL), RSTATE_EINVAL);
  char before[512];
  snprintf(before, sizeof before, "%s", rstate_last_error());
  cr_assert_neq(before[0], '\0');

  rstate_value src = rstate_int(3);
  ASSERT_RC(rstate_value_copy(&dst, &src), RSTATE_OK);
  rstate_store *s = h_open();
  h_define_ok(s, "ok_var", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  ASSERT_RC(rstate_set_int(s, "ok_var", 2), RSTATE_OK);
  rstate_close(s);
  cr_assert_str_eq(rstate_last_error(), before, "successful calls changed the last error to \"%s\"",
                   rstate_last_error());
}

Test(errors, last_error_follows_the_latest_failure) {
  rstate_store *s = h_open();
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(1), NULL);
  ASSERT_FAIL_NAMES(rstate_set_bool(s, "max_tokens", true), RSTATE_ETYPE, "max_tokens");
  ASSERT_FAIL_NAMES(rstate_set_int(s, "no_such_var", 1), RSTATE_ENOTFOUND, "no_such_var");
  cr_assert_null(strstr(rstate_last_error(), "max_tokens"), "stale sentence: \"%s\"", rstate_last_error());
  rstate_close(s);
}
