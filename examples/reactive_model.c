/*
 * reactive_model.c — the classic reactive configuration: when the model
 * changes, a watcher updates max_tokens and cost_per_1k to match, and a
 * second watcher reports every change with its old and new value.
 *
 *   make build/examples/reactive_model && build/examples/reactive_model
 */
#include <stdio.h>
#include <string.h>

#include <reactivestate.h>

static const struct {
  const char *model;
  int64_t max_tokens;
  double cost_per_1k;
} catalogue[] = {
    {"gpt-4", 8192, 0.03},
    {"claude-3", 200000, 0.015},
    {"gemini", 32768, 0.0005},
};

/* Runs on the thread that changed "model", after the store's locks are
 * released; the two sets it makes are delivered after it returns. */
static int on_model(const rstate_event *ev, void *ud) {
  (void)ud;
  for (size_t i = 0; i < sizeof catalogue / sizeof catalogue[0]; i++) {
    if (strcmp(ev->new_value.u.s.ptr, catalogue[i].model) != 0) continue;
    rstate_assign items[] = {{"max_tokens", rstate_int(catalogue[i].max_tokens)},
                             {"cost_per_1k", rstate_float(catalogue[i].cost_per_1k)}};
    rstate_set_opts opts = {.source = "model-watcher"};
    if (rstate_set_many(ev->store, items, 2, &opts, NULL) != RSTATE_OK)
      fprintf(stderr, "update failed: %s\n", rstate_last_error());
  }
  return RSTATE_CONTINUE;
}

static void print_value(const rstate_value *v) {
  switch (v->kind) {
    case RSTATE_FLOAT: printf("%g", v->u.f); break;
    case RSTATE_INT: printf("%lld", (long long)v->u.i); break;
    case RSTATE_BOOL: printf("%s", v->u.b ? "true" : "false"); break;
    case RSTATE_STRING: printf("\"%s\"", v->u.s.ptr); break;
    default: printf("-");
  }
}

static int report(const rstate_event *ev, void *ud) {
  (void)ud;
  printf("  [rev %2llu] %-12s ", (unsigned long long)ev->revision, ev->name);
  if (ev->kind == RSTATE_EVENT_INITIAL) {
    printf("is ");
  } else {
    print_value(&ev->old_value);
    printf(" -> ");
  }
  print_value(&ev->new_value);
  printf("  (version %llu%s%s)\n", (unsigned long long)ev->version, ev->source ? ", by " : "",
         ev->source ? ev->source : "");
  return RSTATE_CONTINUE;
}

int main(void) {
  rstate_store *s;
  if (rstate_open(&s, "mem:", NULL)) return 1;
  const char *models[] = {"gpt-4", "claude-3", "gemini"};
  rstate_constraints model_c = {.choices = models, .n_choices = 3};
  rstate_var_def defs[] = {
      {"model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &model_c, "Which model answers"},
      {"max_tokens", RSTATE_TYPE_INTEGER, rstate_int(8192), NULL, NULL},
      {"cost_per_1k", RSTATE_TYPE_FLOAT, rstate_float(0.03), NULL, NULL},
  };
  for (size_t i = 0; i < 3; i++)
    if (rstate_define(s, &defs[i])) {
      fprintf(stderr, "%s\n", rstate_last_error());
      return 1;
    }

  const char *model[] = {"model"};
  const char *all[] = {"*"};
  rstate_watch_opts initial = {.include_initial = true};
  rstate_watch_id a, b;
  printf("Watching every variable (current values first):\n");
  rstate_watch(s, all, 1, report, NULL, &initial, &b);
  rstate_watch(s, model, 1, on_model, NULL, NULL, &a);

  const char *choices[] = {"claude-3", "gemini", "gpt-5", "gpt-4"};
  for (size_t i = 0; i < 4; i++) {
    printf("set model = %s\n", choices[i]);
    if (rstate_set_string(s, "model", choices[i]) != RSTATE_OK)
      printf("  refused: %s\n", rstate_last_error());
  }
  rstate_close(s);
  return 0;
}
