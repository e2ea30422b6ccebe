/*
 * lockfile.h — one file, one daemon: rstated holds a lock on "FILE.lock"
 * beside its snapshot FILE for as long as it runs, so that a second rstated
 * given the same snapshot is refused instead of both writing it (the last
 * to stop erasing the other's changes).
 *
 * The lock is an fcntl write lock on the whole lock file, which the kernel
 * drops when the process ends, however it ends: a lock file left behind by
 * a killed daemon is not held, and the next start takes it. The file holds
 * the holder's pid, for people; the pid in a refusal comes from the kernel
 * (F_GETLK). The snapshot itself cannot carry the lock: each write replaces
 * it with a new file.
 */
#ifndef RSTATE_TOOLS_LOCKFILE_H
#define RSTATE_TOOLS_LOCKFILE_H

#include <stddef.h>

/* Takes the lock of the snapshot at path (creating "path.lock", mode 0600).
 * Returns the lock's file descriptor (close-on-exec), to keep open while
 * the daemon runs; -1 with a sentence in err: held by another process
 * ("... is in use by another rstated, pid 1234"), or the lock file cannot
 * be created. */
int lockfile_take(const char *path, char *err, size_t errlen);

#endif
