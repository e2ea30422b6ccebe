/*
 * test_values.c — rstate_value: the constructors, deep copy, clear, equality,
 * type names and the library version. No store involved.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

TestSuite(values);

/* ---- constructors ------------------------------------------------------- */

Test(values, float_constructor) {
  rstate_value v = rstate_float(2.5);
  cr_assert_eq(v.kind, RSTATE_FLOAT);
  cr_assert_eq(v.u.f, 2.5);
  v = rstate_float(-0.125);
  cr_assert_eq(v.kind, RSTATE_FLOAT);
  cr_assert_eq(v.u.f, -0.125);
}

Test(values, int_constructor) {
  rstate_value v = rstate_int(INT64_MAX);
  cr_assert_eq(v.kind, RSTATE_INT);
  cr_assert_eq(v.u.i, INT64_MAX);
  v = rstate_int(INT64_MIN);
  cr_assert_eq(v.kind, RSTATE_INT);
  cr_assert_eq(v.u.i, INT64_MIN);
  v = rstate_int(0);
  cr_assert_eq(v.kind, RSTATE_INT);
  cr_assert_eq(v.u.i, 0);
}

Test(values, bool_constructor) {
  rstate_value t = rstate_bool(true);
  rstate_value f = rstate_bool(false);
  cr_assert_eq(t.kind, RSTATE_BOOL);
  cr_assert_eq(f.kind, RSTATE_BOOL);
  cr_assert(t.u.b);
  cr_assert(!f.u.b);
}

Test(values, string_constructor_borrows) {
  const char *text = "gpt-4";
  rstate_value v = rstate_string(text);
  cr_assert_eq(v.kind, RSTATE_STRING);
  cr_assert_eq(v.u.s.ptr, text, "rstate_string must borrow the pointer, not copy it");
  cr_assert_eq(v.u.s.len, 5);

  rstate_value e = rstate_string("");
  cr_assert_eq(e.kind, RSTATE_STRING);
  cr_assert_eq(e.u.s.len, 0);
}

Test(values, string_constructor_null_is_empty) {
  rstate_value v = rstate_string(NULL);
  cr_assert_eq(v.kind, RSTATE_STRING);
  cr_assert_null(v.u.s.ptr);
  cr_assert_eq(v.u.s.len, 0);
}

Test(values, stringn_constructor_keeps_length) {
  static const char buf[] = "abc\0def";
  rstate_value v = rstate_stringn(buf, 7);
  cr_assert_eq(v.kind, RSTATE_STRING);
  cr_assert_eq(v.u.s.ptr, buf);
  cr_assert_eq(v.u.s.len, 7, "stringn must keep the given length, embedded NUL included");

  rstate_value p = rstate_stringn("abcdef", 3);
  cr_assert_eq(p.u.s.len, 3);
}

/* ---- rstate_value_copy ------------------------------------------------------ */

Test(values, copy_string_is_deep) {
  char src_buf[] = "hello, world";
  rstate_value src = rstate_string(src_buf);
  rstate_value dst;
  memset(&dst, 0, sizeof dst);
  ASSERT_RC(rstate_value_copy(&dst, &src), RSTATE_OK);
  cr_assert_eq(dst.kind, RSTATE_STRING);
  cr_assert_neq(dst.u.s.ptr, src.u.s.ptr, "the copy must own its own bytes");
  cr_assert_eq(dst.u.s.len, src.u.s.len);
  cr_assert_eq(memcmp(dst.u.s.ptr, "hello, world", 12), 0);
  cr_assert_eq(dst.u.s.ptr[dst.u.s.len], '\0', "a copied string is NUL-terminated");

  /* Changing the source afterwards does not touch the copy. */
  src_buf[0] = 'J';
  cr_assert_eq(dst.u.s.ptr[0], 'h');
  cr_assert(!rstate_value_equal(&dst, &src));

  rstate_value_clear(&dst);
  cr_assert_eq(dst.kind, RSTATE_NONE);
}

Test(values, copy_string_honours_length) {
  rstate_value src = rstate_stringn("abcdef", 3);
  rstate_value dst;
  memset(&dst, 0, sizeof dst);
  ASSERT_RC(rstate_value_copy(&dst, &src), RSTATE_OK);
  cr_assert_eq(dst.kind, RSTATE_STRING);
  cr_assert_eq(dst.u.s.len, 3);
  cr_assert_str_eq(dst.u.s.ptr, "abc", "copy of a 3-byte string must be NUL-terminated after 3 bytes");
  rstate_value_clear(&dst);
}

Test(values, copy_empty_string) {
  rstate_value src = rstate_string("");
  rstate_value dst;
  memset(&dst, 0, sizeof dst);
  ASSERT_RC(rstate_value_copy(&dst, &src), RSTATE_OK);
  cr_assert_eq(dst.kind, RSTATE_STRING);
  cr_assert_eq(dst.u.s.len, 0);
  cr_assert_not_null(dst.u.s.ptr);
  cr_assert_eq(dst.u.s.ptr[0], '\0');
  rstate_value_clear(&dst);
}

Test(values, copy_scalars) {
  rstate_value srcs[] = {rstate_float(-1.5), rstate_int(-42), rstate_bool(true)};
  for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
    rstate_value dst = rstate_string("garbage");
    ASSERT_RC(rstate_value_copy(&dst, &srcs[i]), RSTATE_OK);
    cr_assert_eq(dst.kind, srcs[i].kind, "item %zu", i);
    cr_assert(rstate_value_equal(&dst, &srcs[i]), "item %zu: copy differs", i);
    rstate_value_clear(&dst);
  }
}

Test(values, copy_none) {
  rstate_value src;
  memset(&src, 0, sizeof src);
  rstate_value dst = rstate_int(5);
  ASSERT_RC(rstate_value_copy(&dst, &src), RSTATE_OK);
  cr_assert_eq(dst.kind, RSTATE_NONE);
}

Test(values, copy_null_src_is_einval) {
  rstate_value dst = rstate_int(5);
  ASSERT_RC(rstate_value_copy(&dst, NULL), RSTATE_EINVAL);
  cr_assert_eq(dst.kind, RSTATE_NONE, "on failure dst is set to RSTATE_NONE");
  cr_assert_neq(rstate_last_error()[0], '\0', "a failure leaves a sentence in rstate_last_error()");
}

Test(values, copy_null_dst_is_einval) {
  rstate_value src = rstate_int(5);
  ASSERT_RC(rstate_value_copy(NULL, &src), RSTATE_EINVAL);
}

Test(values, copy_bad_kind_is_einval) {
  rstate_value src;
  memset(&src, 0, sizeof src);
  src.kind = (rstate_kind)99;
  rstate_value dst = rstate_int(5);
  ASSERT_RC(rstate_value_copy(&dst, &src), RSTATE_EINVAL);
  cr_assert_eq(dst.kind, RSTATE_NONE);
}

Test(values, copy_string_with_null_ptr_is_einval) {
  rstate_value src = rstate_stringn(NULL, 3);
  rstate_value dst = rstate_int(5);
  ASSERT_RC(rstate_value_copy(&dst, &src), RSTATE_EINVAL);
  cr_assert_eq(dst.kind, RSTATE_NONE);
}

/* The header: "RSTATE_EINVAL (NULL, bad kind, string with NULL ptr)" —
 * without an exception for length 0. */
Test(values, copy_empty_string_with_null_ptr_is_einval) {
  rstate_value src = rstate_string(NULL);
  rstate_value dst = rstate_int(5);
  int rc = rstate_value_copy(&dst, &src);
  if (rc == RSTATE_OK) rstate_value_clear(&dst);
  cr_assert_eq(rc, RSTATE_EINVAL, "copy of a string with a NULL ptr returned %s, want RSTATE_EINVAL",
               rstate_error_name(rc));
  cr_assert_eq(dst.kind, RSTATE_NONE);
}

/* ---- rstate_value_clear ----------------------------------------------------- */

Test(values, clear_zeroed) {
  rstate_value v;
  memset(&v, 0, sizeof v);
  rstate_value_clear(&v);
  cr_assert_eq(v.kind, RSTATE_NONE);
  rstate_value_clear(&v); /* twice is fine */
  cr_assert_eq(v.kind, RSTATE_NONE);
}

Test(values, clear_scalar) {
  rstate_value vs[] = {rstate_float(1.5), rstate_int(7), rstate_bool(true)};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
    rstate_value_clear(&vs[i]);
    cr_assert_eq(vs[i].kind, RSTATE_NONE, "item %zu", i);
  }
}

Test(values, clear_null) {
  rstate_value_clear(NULL);
  cr_assert(true, "rstate_value_clear(NULL) returned");
}

Test(values, clear_copied_string) {
  rstate_value src = rstate_string("a string long enough to be allocated separately");
  rstate_value dst;
  memset(&dst, 0, sizeof dst);
  ASSERT_RC(rstate_value_copy(&dst, &src), RSTATE_OK);
  rstate_value_clear(&dst); /* valgrind / ASan report the leak if it did not free */
  cr_assert_eq(dst.kind, RSTATE_NONE);
  rstate_value_clear(&dst); /* clearing a cleared value is safe */
  cr_assert_eq(dst.kind, RSTATE_NONE);
}

/* ---- rstate_value_equal ----------------------------------------------------- */

Test(values, equal_same_kind) {
  rstate_value a = rstate_int(1), b = rstate_int(1), c = rstate_int(2);
  cr_assert(rstate_value_equal(&a, &b));
  cr_assert(!rstate_value_equal(&a, &c));

  rstate_value f1 = rstate_float(0.5), f2 = rstate_float(0.5), f3 = rstate_float(0.25);
  cr_assert(rstate_value_equal(&f1, &f2));
  cr_assert(!rstate_value_equal(&f1, &f3));

  rstate_value t1 = rstate_bool(true), t2 = rstate_bool(true), f = rstate_bool(false);
  cr_assert(rstate_value_equal(&t1, &t2));
  cr_assert(!rstate_value_equal(&t1, &f));
}

Test(values, equal_across_kinds_is_false) {
  rstate_value i1 = rstate_int(1), f1 = rstate_float(1.0), b1 = rstate_bool(true), s1 = rstate_string("1");
  cr_assert(!rstate_value_equal(&i1, &f1), "int 1 and float 1.0 are different values");
  cr_assert(!rstate_value_equal(&f1, &i1));
  cr_assert(!rstate_value_equal(&i1, &b1), "int 1 and true are different values");
  cr_assert(!rstate_value_equal(&i1, &s1), "int 1 and \"1\" are different values");

  rstate_value none;
  memset(&none, 0, sizeof none);
  rstate_value zero = rstate_int(0);
  cr_assert(!rstate_value_equal(&none, &zero), "NONE and int 0 are different values");
  rstate_value none2;
  memset(&none2, 0, sizeof none2);
  cr_assert(rstate_value_equal(&none, &none2));
}

Test(values, equal_strings_by_bytes) {
  char buf1[] = "claude-3";
  char buf2[] = "claude-3";
  rstate_value a = rstate_string(buf1), b = rstate_string(buf2);
  cr_assert(rstate_value_equal(&a, &b), "equal contents in different buffers are equal");

  rstate_value c = rstate_string("claude-4");
  cr_assert(!rstate_value_equal(&a, &c));

  rstate_value longer = rstate_string("claude-3x");
  cr_assert(!rstate_value_equal(&a, &longer), "a prefix is not equal");
  cr_assert(!rstate_value_equal(&longer, &a));

  /* The length decides, not a NUL terminator. */
  rstate_value head = rstate_stringn("claude-3 and more", 8);
  cr_assert(rstate_value_equal(&a, &head));

  static const char x1[] = "a\0b";
  static const char x2[] = "a\0c";
  static const char x3[] = "a\0b";
  rstate_value e1 = rstate_stringn(x1, 3), e2 = rstate_stringn(x2, 3), e3 = rstate_stringn(x3, 3);
  cr_assert(!rstate_value_equal(&e1, &e2), "bytes after an embedded NUL count");
  cr_assert(rstate_value_equal(&e1, &e3));

  rstate_value empty1 = rstate_string(""), empty2 = rstate_stringn("xyz", 0);
  cr_assert(rstate_value_equal(&empty1, &empty2));
}

Test(values, equal_zero_signs) {
  rstate_value pz = rstate_float(0.0), nz = rstate_float(-0.0);
  cr_assert(rstate_value_equal(&pz, &nz), "0.0 and -0.0 are equal");
}

Test(values, equal_nan_is_never_equal) {
  rstate_value a = rstate_float(NAN), b = rstate_float(NAN);
  cr_assert(!rstate_value_equal(&a, &b), "floats compare by ==, so NaN != NaN");
}

Test(values, equal_null) {
  rstate_value a = rstate_int(1);
  cr_assert(rstate_value_equal(NULL, NULL), "NULL equals NULL");
  cr_assert(!rstate_value_equal(&a, NULL));
  cr_assert(!rstate_value_equal(NULL, &a));
}

/* ---- type names and version ------------------------------------------ */

Test(values, type_names) {
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_FLOAT), "float");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_INTEGER), "integer");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_BOOLEAN), "boolean");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_STRING), "string");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_CHOICE), "choice");
  cr_assert_str_eq(rstate_type_name(RSTATE_TYPE_MODULE), "module");
}

Test(values, type_name_unknown) {
  cr_assert_str_eq(rstate_type_name((rstate_type)0), "unknown");
  cr_assert_str_eq(rstate_type_name((rstate_type)7), "unknown");
  cr_assert_str_eq(rstate_type_name((rstate_type)-1), "unknown");
  cr_assert_str_eq(rstate_type_name((rstate_type)1000), "unknown");
}

Test(values, type_enum_values) {
  cr_assert_eq(RSTATE_TYPE_FLOAT, 1);
  cr_assert_eq(RSTATE_TYPE_INTEGER, 2);
  cr_assert_eq(RSTATE_TYPE_BOOLEAN, 3);
  cr_assert_eq(RSTATE_TYPE_STRING, 4);
  cr_assert_eq(RSTATE_TYPE_CHOICE, 5);
  cr_assert_eq(RSTATE_TYPE_MODULE, 6);
  cr_assert_eq(RSTATE_NONE, 0);
  cr_assert_eq(RSTATE_FLOAT, 1);
  cr_assert_eq(RSTATE_INT, 2);
  cr_assert_eq(RSTATE_BOOL, 3);
  cr_assert_eq(RSTATE_STRING, 4);
}

Test(values, version_string) {
  const char *v = rstate_version();
  cr_assert_not_null(v);
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", RSTATE_VERSION_MAJOR, RSTATE_VERSION_MINOR, RSTATE_VERSION_PATCH);
  cr_assert_str_eq(v, want, "rstate_version() disagrees with the RSTATE_VERSION_* macros");
  /* the soname follows MAJOR; the numbers themselves are the header's alone */
  cr_assert(RSTATE_VERSION_MAJOR >= 0 && RSTATE_VERSION_MINOR >= 0 && RSTATE_VERSION_PATCH >= 0);
}
