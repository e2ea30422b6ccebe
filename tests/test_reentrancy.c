/*
 * test_reentrancy.c — guarantee 5 and the in-callback half of guarantee 6:
 * callbacks may call the store; what they cause is delivered after they
 * return, without recursion; a runaway feedback loop ends with
 * RSTATE_ELIMIT; unwatching from inside a callback returns at once and
 * destroy runs right after the callback.
 */
#include "recorder.h"

static rstate_store *s;
static char log_buf[4096];

static void logf_(const char *what) {
  size_t n = strlen(log_buf);
  snprintf(log_buf + n, sizeof log_buf - n, "%s%s", n ? " " : "", what);
}

static void setup(void) {
  s = h_open();
  log_buf[0] = '\0';
  h_define_ok(s, "model", RSTATE_TYPE_STRING, rstate_string("gpt-4"), NULL);
  h_define_ok(s, "max_tokens", RSTATE_TYPE_INTEGER, rstate_int(8192), NULL);
  h_define_ok(s, "x", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
  h_define_ok(s, "y", RSTATE_TYPE_INTEGER, rstate_int(0), NULL);
}

static void teardown(void) { rstate_close(s); }

TestSuite(reentrancy, .init = setup, .fini = teardown);

static int on_model(const rstate_event *ev, void *ud) {
  (void)ud;
  logf_("model-start");
  int64_t tokens = strcmp(ev->new_value.u.s.ptr, "claude-3") == 0 ? 4096 : 8192;
  cr_assert_eq(rstate_set_int(ev->store, "max_tokens", tokens), RSTATE_OK, "%s", rstate_last_error());
  int64_t now = 0;
  cr_assert_eq(rstate_get_int(ev->store, "max_tokens", &now), RSTATE_OK);
  cr_assert_eq(now, tokens, "a get inside the callback sees the callback's own set");
  logf_("model-end");
  return RSTATE_CONTINUE;
}

static int on_tokens(const rstate_event *ev, void *ud) {
  (void)ev;
  (void)ud;
  logf_("tokens");
  return RSTATE_CONTINUE;
}

Test(reentrancy, events_caused_in_a_callback_come_after_it_returns) {
  const char *m[] = {"model"}, *t[] = {"max_tokens"};
  rstate_watch_id a, b;
  ASSERT_RC(rstate_watch(s, m, 1, on_model, NULL, NULL, &a), RSTATE_OK);
  ASSERT_RC(rstate_watch(s, t, 1, on_tokens, NULL, NULL, &b), RSTATE_OK);
  ASSERT_RC(rstate_set_string(s, "model", "claude-3"), RSTATE_OK);
  cr_assert_str_eq(log_buf, "model-start model-end tokens");
  cr_assert_eq(h_get_int(s, "max_tokens"), 4096);
}

static int depth, max_depth;

static int count_up(const rstate_event *ev, void *ud) {
  (void)ud;
  depth++;
  if (depth > max_depth) max_depth = depth;
  if (ev->new_value.u.i < 5) cr_assert_eq(rstate_set_int(ev->store, "x", ev->new_value.u.i + 1), RSTATE_OK);
  depth--;
  return RSTATE_CONTINUE;
}

Test(reentrancy, a_callback_setting_its_own_variable_does_not_recurse) {
  recorder r;
  rec_init(&r);
  rec_watch1(s, &r, "x", NULL);
  const char *x[] = {"x"};
  rstate_watch_id id;
  ASSERT_RC(rstate_watch(s, x, 1, count_up, NULL, NULL, &id), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_eq(max_depth, 1, "the callback was re-entered (depth %d)", max_depth);
  cr_assert_eq(h_get_int(s, "x"), 5);
  cr_assert_eq(r.n, 5);
  for (size_t i = 0; i < r.n; i++) cr_assert_eq(r.ev[i].new_value.u.i, (int64_t)i + 1);
  rstate_close(s); /* ends the watch before its recorder goes */
  s = NULL;
  rec_free(&r);
}

static int limit_hits;
static char limit_msg[512];

static int ping(const rstate_event *ev, void *ud) {
  const char *other = ud;
  int rc = rstate_set_int(ev->store, other, ev->new_value.u.i + 1);
  if (rc == RSTATE_ELIMIT) {
    limit_hits++;
    snprintf(limit_msg, sizeof limit_msg, "%s", rstate_last_error());
  } else {
    cr_assert_eq(rc, RSTATE_OK, "%s", rstate_last_error());
  }
  return RSTATE_CONTINUE;
}

Test(reentrancy, a_feedback_loop_is_stopped_with_elimit) {
  const char *x[] = {"x"}, *y[] = {"y"};
  rstate_watch_id a, b;
  ASSERT_RC(rstate_watch(s, x, 1, ping, "y", NULL, &a), RSTATE_OK);
  ASSERT_RC(rstate_watch(s, y, 1, ping, "x", NULL, &b), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_eq(limit_hits, 1, "the loop should end once, with RSTATE_ELIMIT");
  cr_assert(strstr(limit_msg, "feedback") != NULL, "sentence: %s", limit_msg);
  /* each link adds 1 to the value it passes on: the top-level set made 1,
   * and exactly 1000 changes were made inside callbacks */
  int64_t top = h_get_int(s, "x") > h_get_int(s, "y") ? h_get_int(s, "x") : h_get_int(s, "y");
  cr_assert_eq(top, 1001, "the chain ran %lld links, want 1000 inside callbacks", (long long)top - 1);
  /* the store still works afterwards */
  ASSERT_RC(rstate_unwatch(s, a), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 0), RSTATE_OK);
}

static recorder inner;
static rstate_watch_id self_id;
static int self_destroyed, destroyed_seen_in_cb = -1;

static void self_destroy(void *ud) {
  (void)ud;
  self_destroyed++;
}

static int unwatch_self(const rstate_event *ev, void *ud) {
  (void)ud;
  cr_assert_eq(rstate_unwatch(ev->store, self_id), RSTATE_OK, "%s", rstate_last_error());
  destroyed_seen_in_cb = self_destroyed;
  /* a new watch made inside a callback gets its INITIAL after we return */
  rstate_watch_opts o = {.include_initial = true};
  rec_watch1(ev->store, &inner, "y", &o);
  cr_assert_eq(inner.n, 0, "INITIAL was delivered inside another callback");
  return RSTATE_CONTINUE;
}

Test(reentrancy, unwatch_from_inside_returns_at_once_and_destroys_after) {
  rec_init(&inner);
  const char *x[] = {"x"};
  rstate_watch_opts o = {.destroy = self_destroy};
  ASSERT_RC(rstate_watch(s, x, 1, unwatch_self, NULL, &o, &self_id), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_eq(destroyed_seen_in_cb, 0, "destroy ran inside the callback");
  cr_assert_eq(self_destroyed, 1, "destroy runs right after the callback returns");
  cr_assert_eq(inner.n, 1);
  cr_assert_eq(inner.ev[0].kind, RSTATE_EVENT_INITIAL);
  ASSERT_RC(rstate_set_int(s, "x", 2), RSTATE_OK);
  cr_assert_eq(self_destroyed, 1);
  rstate_close(s); /* ends the watch before its recorder goes */
  s = NULL;
  rec_free(&inner);
}

static rstate_watch_id victim;

static int unwatch_other(const rstate_event *ev, void *ud) {
  (void)ud;
  cr_assert_eq(rstate_unwatch(ev->store, victim), RSTATE_OK);
  return RSTATE_CONTINUE;
}

Test(reentrancy, unwatching_another_watch_drops_its_pending_events) {
  recorder r;
  rec_init(&r);
  const char *x[] = {"x"};
  rstate_watch_id a;
  ASSERT_RC(rstate_watch(s, x, 1, unwatch_other, NULL, NULL, &a), RSTATE_OK);
  victim = rec_watch1(s, &r, "x", NULL); /* registered after: its event is queued behind */
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_eq(r.destroyed, 1);
  cr_assert_eq(r.n, 0, "a watch unwatched before its turn still got an event");
  rec_free(&r);
}

static int dispatch_rc;

static int call_dispatch(const rstate_event *ev, void *ud) {
  (void)ud;
  dispatch_rc = rstate_dispatch(ev->store, 0);
  return RSTATE_CONTINUE;
}

Test(reentrancy, dispatch_from_a_callback_is_einval) {
  const char *x[] = {"x"};
  rstate_watch_id a;
  ASSERT_RC(rstate_watch(s, x, 1, call_dispatch, NULL, NULL, &a), RSTATE_OK);
  ASSERT_RC(rstate_set_int(s, "x", 1), RSTATE_OK);
  cr_assert_eq(dispatch_rc, RSTATE_EINVAL);
}
