/*
 * testbackend.h — a tiny backend written only against the public backend
 * interface (reactivestate/backend.h), to prove the front end (watches,
 * filters, queued delivery, debounce) works over any backend, not just the
 * local one behind "mem:".
 *
 * It keeps a fixed number of float variables in an array under one mutex,
 * and announces every accepted change with rstate_host_emit before applying
 * it, under that mutex, as backend.h requires. Only the float type is
 * supported; defining anything else is RSTATE_ENOTSUP. Constraints are not
 * supported either (RSTATE_ENOTSUP). Its snapshots give updated_ns 0, as a
 * backend that does not keep the time of each change. Open it with
 *
 *     rstate_open_backend(&s, &testbackend_ops, "test:", NULL);
 *
 * Linked into every test program (the Makefile links each non-test_ file of
 * tests/), so it depends on nothing but the library.
 */
#ifndef RSTATE_TESTBACKEND_H
#define RSTATE_TESTBACKEND_H

#include "reactivestate/backend.h"

/* Variables one test backend can hold; a define beyond it is RSTATE_ELIMIT. */
#define TESTBACKEND_CAPACITY 64

/* The operations table. */
extern const rstate_backend_ops testbackend_ops;

/* How the backend reports a change: rstate_host_emit unless a test replaces
 * it (e.g. with a function that returns RSTATE_ENOMEM, to check that the
 * change is then abandoned). Reset it to NULL (meaning rstate_host_emit)
 * when done; tests run in their own processes. */
extern int (*testbackend_emit_hook)(rstate_host *h, const rstate_change *changes, size_t n);

/* How many times open and close ran in this process (successful opens). */
unsigned testbackend_opens(void);
unsigned testbackend_closes(void);

#endif /* RSTATE_TESTBACKEND_H */
