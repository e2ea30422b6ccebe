/*
 * snapshot.h — the snapshot file of rstated: every variable's name, type,
 * version, time of last change and value, and the store revision, written
 * atomically and read back exactly — or refused whole.
 *
 * Format 2 (text, UTF-8, one variable a line, in name order):
 *
 *     # reactivestate snapshot 2
 *     # written 2026-11-22T11:15:02.123456Z at store revision 42
 *     greeting<TAB>string<TAB>1<TAB>1763810102123456789<TAB>hello\tworld\n
 *     model<TAB>choice<TAB>4<TAB>1763810090000000001<TAB>claude-3
 *     temperature<TAB>float<TAB>3<TAB>1763810101999999999<TAB>0.7
 *     # end: 3 variables, crc32 6946de31
 *
 * Line 1 says the format; line 2 the time of writing and the store
 * revision; then one line per variable: name, type, version (1 or more),
 * time of its last change (CLOCK_REALTIME nanoseconds; 0: unknown) and
 * value, separated by one tab; the last line is the end record: how many
 * variable lines there are, and the CRC-32 (the zlib/PNG one, 8 lowercase
 * hex digits) of every byte of the file before the end record. Nothing
 * may follow its newline. A value is written as:
 *   float    the shortest decimal that reads back to the same double
 *            (at most 17 significant digits), e.g. 0.7, 1.0, 1e+300
 *   integer  decimal
 *   boolean  true or false
 *   string, choice, module  the bytes, with "\\" for a backslash, "\t",
 *            "\n", "\r", and "\xHH" (two lowercase hex digits) for every
 *            other byte below 0x20 and for 0x7f; nothing else is escaped.
 * Only values are kept: constraints and descriptions come from the schema.
 *
 * A file that is not whole is refused: cut anywhere (no end record, or a
 * last line without its newline), altered anywhere (the checksum, or a
 * line that does not parse), a count that differs, a variable given twice.
 * Format 1 (rstated 0.1.0: no versions, no end record) is refused too,
 * since a cut copy of it reads like a whole one.
 *
 * Writing: a temporary file ".NAME.XXXXXX" in the same directory (mode
 * 0600), fsync, rename over the path, fsync of the directory: a reader sees
 * the old snapshot or the new one, never half of one. A temporary file
 * left by a process killed while writing is removed by
 * snapshot_remove_partial.
 */
#ifndef RSTATE_TOOLS_SNAPSHOT_H
#define RSTATE_TOOLS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include <reactivestate.h>

/* Writes every variable of s. *count (may be NULL) is how many. Returns 0 or
 * -1 with a sentence in err naming the path and the failure. */
int snapshot_write(rstate_store *s, const char *path, size_t *count, char *err, size_t errlen);

typedef void (*snapshot_warn_fn)(void *ud, const char *sentence);

/*
 * Restores a snapshot into s. The whole file is read and checked first: a
 * file that is not whole (above) changes nothing and returns -1 with
 * "path:line: ..." in err. Then each variable, in file order:
 *   - defined in s with the same type: kept for the restore;
 *   - defined with another type: skipped with a warning;
 *   - not defined: defined from the snapshot, with its type, the value as
 *     default and no constraints (a choice gets its value as its only
 *     choice, since a choice needs choices), and kept for the restore;
 * and every variable kept gets its value, version and time of last change
 * back, and the store revision continues from the snapshot's, in one
 * restore through the front end. A value the definition now refuses (e.g.
 * after a schema's max was lowered) is skipped with a warning, keeping the
 * current value and version. Warnings go to warn(ud, sentence), which may
 * be NULL. *set and *defined (may be NULL) count the variables restored
 * that were defined before, and those defined from the snapshot. Returns 0;
 * 1 when the file does not exist (nothing to restore); -1 on a read error
 * or a file that is not whole, or when the store fails other than by
 * refusing a value.
 */
int snapshot_restore(rstate_store *s, const char *path, snapshot_warn_fn warn, void *ud, size_t *set,
                     size_t *defined, char *err, size_t errlen);

/* Removes the temporary files ".NAME.XXXXXX" a writer of path killed while
 * writing left in its directory; *removed (may be NULL) counts them.
 * Returns 0, or -1 with a sentence when the directory cannot be read or a
 * file cannot be removed. Only for the holder of the path's lock. */
int snapshot_remove_partial(const char *path, size_t *removed, char *err, size_t errlen);

/* The CRC-32 of the end record (zlib's crc32: crc 0 to start, then the
 * result of the previous call to go on). */
uint32_t snapshot_crc32(uint32_t crc, const void *p, size_t n);

#endif
