/*
 * args.c — command-line parsing shared by rstate and rstated: long options
 * anywhere, "-h", "--" to end options, negative numbers as arguments. See
 * args.h for the rules.
 */
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_option(const char *arg) {
  if (arg[0] != '-' || arg[1] == '\0') return false; /* "-" alone is an argument (stdin, by convention) */
  if (arg[1] == '.' || (arg[1] >= '0' && arg[1] <= '9')) return false;
  return true;
}

int tool_args_parse(int argc, char **argv, const tool_opt *specs, tool_args *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (argc <= 0) return 0;
  out->opts = calloc((size_t)argc, sizeof *out->opts);
  out->pos = calloc((size_t)argc, sizeof *out->pos);
  if (!out->opts || !out->pos) {
    snprintf(err, errlen, "out of memory");
    return -2;
  }
  bool options_over = false;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (options_over || !is_option(arg)) {
      out->pos[out->n_pos++] = arg;
      continue;
    }
    if (strcmp(arg, "--") == 0) {
      options_over = true;
      continue;
    }
    const char *name;
    size_t name_len;
    const char *inline_value = NULL;
    if (strcmp(arg, "-h") == 0) {
      name = "help";
      name_len = 4;
    } else if (arg[1] != '-') {
      snprintf(err, errlen, "unknown option %s", arg);
      return -1;
    } else {
      name = arg + 2;
      const char *eq = strchr(name, '=');
      name_len = eq ? (size_t)(eq - name) : strlen(name);
      if (eq) inline_value = eq + 1;
    }
    size_t k = 0;
    while (specs[k].name && !(strlen(specs[k].name) == name_len && memcmp(specs[k].name, name, name_len) == 0)) k++;
    if (!specs[k].name) {
      snprintf(err, errlen, "unknown option --%.*s", (int)name_len, name);
      return -1;
    }
    const char *value = "";
    if (specs[k].has_arg) {
      if (inline_value) {
        value = inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        snprintf(err, errlen, "option --%s needs a value", specs[k].name);
        return -1;
      }
    } else if (inline_value) {
      snprintf(err, errlen, "option --%s takes no value", specs[k].name);
      return -1;
    }
    out->opts[out->n_opts].index = k;
    out->opts[out->n_opts].value = value;
    out->n_opts++;
  }
  return 0;
}

const char *tool_args_get(const tool_args *a, size_t i) {
  const char *v = NULL;
  for (size_t k = 0; k < a->n_opts; k++)
    if (a->opts[k].index == i) v = a->opts[k].value;
  return v;
}

size_t tool_args_count(const tool_args *a, size_t i) {
  size_t n = 0;
  for (size_t k = 0; k < a->n_opts; k++)
    if (a->opts[k].index == i) n++;
  return n;
}

void tool_args_free(tool_args *a) {
  free(a->opts);
  free(a->pos);
  memset(a, 0, sizeof *a);
}

int tool_parse_u64(const char *s, unsigned long long max, unsigned long long *out) {
  if (!s || !*s) return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno == ERANGE || *end || v > max) return -1;
  *out = v;
  return 0;
}
