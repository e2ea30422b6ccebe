/*
 * private.h — the library's private front-end calls that rstated's
 * snapshot needs (every variable with its version and change time out of a
 * store, and back in with them), declared here again because the tools see
 * only the public headers. They are not exported from the shared library;
 * the tools link the static one. src/core/core.h has the reference
 * documentation; tests/test_tools.c includes both headers, so a change to
 * one that the other lacks does not compile.
 */
#ifndef RSTATE_TOOLS_PRIVATE_H
#define RSTATE_TOOLS_PRIVATE_H

#include <reactivestate.h>
#include <reactivestate/backend.h>

/* Every variable from one consistent snapshot; fn must not call the store. */
int rstate__dump(rstate_store *s, rstate_snapshot_fn fn, void *ud, uint64_t *revision);
/* Variables back with their versions and change times, the store revision
 * at least at revision; all or nothing, *failed_index the item to blame. */
int rstate__restore(rstate_store *s, const rstate_snapshot_var *vars, size_t n, uint64_t revision,
                    size_t *failed_index);

#endif
