/*
 * basics.c — the first program to run: defines a variable of each of the
 * six types, sets good and bad values, and prints what happens.
 *
 *   make example
 */
#include <stdio.h>
#include <stdlib.h>

#include <reactivestate.h>

static void try_set(rstate_store *s, const char *name, rstate_value v, const char *shown) {
  int rc = rstate_set(s, name, &v, NULL);
  if (rc == RSTATE_OK)
    printf("  set %-12s = %-22s ok\n", name, shown);
  else
    printf("  set %-12s = %-22s %s: %s\n", name, shown, rstate_error_name(rc), rstate_last_error());
}

static int print_var(const char *name, rstate_type type, void *ud) {
  rstate_store *s = ud;
  rstate_value v;
  rstate_var_info info;
  if (rstate_get(s, name, &v) || rstate_info(s, name, &info)) return 1;
  printf("  %-12s %-8s version %llu  ", name, rstate_type_name(type), (unsigned long long)info.version);
  switch (v.kind) {
    case RSTATE_FLOAT: printf("%g\n", v.u.f); break;
    case RSTATE_INT: printf("%lld\n", (long long)v.u.i); break;
    case RSTATE_BOOL: printf("%s\n", v.u.b ? "true" : "false"); break;
    case RSTATE_STRING: printf("\"%s\"\n", v.u.s.ptr); break;
    default: printf("?\n");
  }
  rstate_value_clear(&v);
  return 0;
}

int main(void) {
  rstate_store *s;
  if (rstate_open(&s, "mem:", NULL) != RSTATE_OK) {
    fprintf(stderr, "open: %s\n", rstate_last_error());
    return 1;
  }
  printf("libreactivestate %s\n\nDefining six variables:\n", rstate_version());

  rstate_constraints temp_c = {.min = rstate_float(0), .max = rstate_float(2)};
  rstate_constraints tokens_c = {.min = rstate_int(1), .max = rstate_int(4096)};
  rstate_constraints name_c = {.min_length = 1, .max_length = 32, .pattern = "[a-z][a-z0-9-]*"};
  const char *models[] = {"gpt-4", "claude-3", "gemini"};
  rstate_constraints model_c = {.choices = models, .n_choices = 3};
  const char *strategies[] = {"Default", "Optimized"};
  rstate_constraints strat_c = {.choices = strategies, .n_choices = 2, .module_namespace = "Strategies"};
  rstate_var_def defs[] = {
      {"temperature", RSTATE_TYPE_FLOAT, rstate_float(0.7), &temp_c, "Sampling temperature"},
      {"max_tokens", RSTATE_TYPE_INTEGER, rstate_int(1024), &tokens_c, "Answer length limit"},
      {"streaming", RSTATE_TYPE_BOOLEAN, rstate_bool(true), NULL, NULL},
      {"session", RSTATE_TYPE_STRING, rstate_string("demo"), &name_c, NULL},
      {"model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &model_c, "Which model answers"},
      {"strategy", RSTATE_TYPE_MODULE, rstate_string("Strategies.Default"), &strat_c, NULL},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    int rc = rstate_define(s, &defs[i]);
    printf("  define %-12s %-8s %s\n", defs[i].name, rstate_type_name(defs[i].type),
           rc ? rstate_last_error() : "ok");
  }

  printf("\nSetting good and bad values:\n");
  try_set(s, "temperature", rstate_float(1.2), "1.2");
  try_set(s, "temperature", rstate_float(3.5), "3.5");
  try_set(s, "temperature", rstate_int(1), "1 (an integer)");
  try_set(s, "max_tokens", rstate_int(5000), "5000");
  try_set(s, "max_tokens", rstate_float(2048.5), "2048.5");
  try_set(s, "streaming", rstate_string("yes"), "\"yes\"");
  try_set(s, "session", rstate_string("Demo Run"), "\"Demo Run\"");
  try_set(s, "model", rstate_string("claude-3"), "\"claude-3\"");
  try_set(s, "model", rstate_string("gpt-5"), "\"gpt-5\"");
  try_set(s, "strategy", rstate_string("Strategies.Optimized"), "\"Strategies.Optimized\"");
  try_set(s, "strategy", rstate_string("Strategies.Custom"), "\"Strategies.Custom\"");
  try_set(s, "nonexistent", rstate_int(1), "1");

  printf("\nAn atomic batch (the second item is bad, so nothing changes):\n");
  rstate_assign batch[] = {{"temperature", rstate_float(0.2)}, {"max_tokens", rstate_int(0)}};
  size_t failed;
  int rc = rstate_set_many(s, batch, 2, NULL, &failed);
  printf("  set_many: %s at item %zu: %s\n", rstate_error_name(rc), failed, rstate_last_error());

  printf("\nThe store now (revision %llu):\n", (unsigned long long)rstate_revision(s));
  rstate_list(s, print_var, s);
  rstate_close(s);
  return 0;
}
