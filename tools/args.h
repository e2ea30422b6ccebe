/*
 * args.h — command-line parsing shared by rstate and rstated.
 *
 * Long options ("--source S", "--source=S") may come anywhere among the
 * arguments; "-h" is the one short option (help). "--" ends the options.
 * An argument that starts with '-' followed by a digit or '.' ("-5",
 * "-0.5") is an argument, not an option, so negative numbers need no "--";
 * any other argument starting with '-' is an unknown option.
 */
#ifndef RSTATE_TOOLS_ARGS_H
#define RSTATE_TOOLS_ARGS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tool_opt {
  const char *name; /* without the dashes: "source"; NULL ends a table */
  bool has_arg;
} tool_opt;

typedef struct tool_optval {
  size_t index;      /* into the spec table */
  const char *value; /* the argument; "" for options without one */
} tool_optval;

typedef struct tool_args {
  tool_optval *opts; /* in command-line order */
  size_t n_opts;
  const char **pos;  /* positional arguments, in order */
  size_t n_pos;
} tool_args;

/* Parses argv[0..argc-1] (no program name) against specs. Returns 0, or -1
 * with a sentence in err ("unknown option --foo", "option --source needs a
 * value") for a usage error, or -2 when out of memory. out is always safe to
 * pass to tool_args_free. Strings point into argv. */
int tool_args_parse(int argc, char **argv, const tool_opt *specs, tool_args *out, char *err, size_t errlen);
/* The last value given for spec index i, or NULL when absent. */
const char *tool_args_get(const tool_args *a, size_t i);
/* How many times spec index i was given. */
size_t tool_args_count(const tool_args *a, size_t i);
void tool_args_free(tool_args *a);

/* Strict unsigned decimal: digits only, no sign, no blanks, within max.
 * Returns 0 or -1. */
int tool_parse_u64(const char *s, unsigned long long max, unsigned long long *out);

#endif
