/*
 * snapshot.h — the snapshot file of rstated: every variable's name, type
 * and value, written atomically and read back exactly.
 *
 * Format (text, UTF-8, one variable a line, in name order):
 *
 *     # reactivestate snapshot 1
 *     # written 2026-11-22T11:15:02.123456Z at store revision 42
 *     model<TAB>choice<TAB>claude-3
 *     temperature<TAB>float<TAB>0.7
 *     greeting<TAB>string<TAB>hello\tworld\n
 *
 * The first line must be "# reactivestate snapshot 1"; other lines starting
 * with '#', and blank lines, are ignored. A value is written as:
 *   float    the shortest decimal that reads back to the same double
 *            (at most 17 significant digits), e.g. 0.7, 1.0, 1e+300
 *   integer  decimal
 *   boolean  true or false
 *   string, choice, module  the bytes, with "\\" for a backslash, "\t",
 *            "\n", "\r", and "\xHH" (two lowercase hex digits) for every
 *            other byte below 0x20 and for 0x7f; nothing else is escaped.
 * Only values are kept: constraints and descriptions come from the schema.
 *
 * Writing: a temporary file ".NAME.XXXXXX" in the same directory (mode
 * 0600), fsync, rename over the path, fsync of the directory: a reader sees
 * the old snapshot or the new one, never half of one.
 */
#ifndef RSTATE_TOOLS_SNAPSHOT_H
#define RSTATE_TOOLS_SNAPSHOT_H

#include <stddef.h>

#include <reactivestate.h>

/* Writes every variable of s. *count (may be NULL) is how many. Returns 0 or
 * -1 with a sentence in err naming the path and the failure. */
int snapshot_write(rstate_store *s, const char *path, size_t *count, char *err, size_t errlen);

typedef void (*snapshot_warn_fn)(void *ud, const char *sentence);

/*
 * Restores a snapshot into s. The whole file is read and checked first: a
 * malformed file changes nothing and returns -1 with "path:line: ..." in
 * err. Then each variable, in file order:
 *   - defined in s with the same type: its value is set (a value the
 *     definition now refuses, e.g. after a schema's max was lowered, is
 *     skipped with a warning, keeping the current value);
 *   - defined with another type: skipped with a warning;
 *   - not defined: defined from the snapshot, with its type, the value as
 *     default and no constraints (a choice gets its value as its only
 *     choice, since a choice needs choices);
 * Warnings go to warn(ud, sentence), which may be NULL. *set and *defined
 * (may be NULL) count what was done. Returns 0; 1 when the file does not
 * exist (nothing to restore); -1 on a read error or a malformed file, or
 * when the store fails other than by refusing a value.
 */
int snapshot_restore(rstate_store *s, const char *path, snapshot_warn_fn warn, void *ud, size_t *set,
                     size_t *defined, char *err, size_t errlen);

#endif
