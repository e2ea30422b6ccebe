"""Watches: events, options, delivery, lifetimes of callbacks and handles."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
import unittest
import weakref

from support import CHILD_ENV, WAIT_S, Recorder, Unraisable, rs

from reactivestate import store as store_mod


class Callback:
    """A callable whose lifetime a weakref can follow."""

    def __init__(self) -> None:
        self.events: list = []

    def __call__(self, ev: rs.Event) -> None:
        self.events.append(ev)


class Events(unittest.TestCase):
    def setUp(self) -> None:
        self.s = rs.Store()
        self.addCleanup(self.s.close)
        self.s.define("model", "choice", "gpt-4", choices=["gpt-4", "claude-3"])
        self.s.define("n", "integer", 0)

    def test_changed_event_fields(self) -> None:
        rec = Recorder()
        w = self.s.watch(["model"], rec)
        before = time.time_ns()
        self.s.set("model", "claude-3", source="python", meta={"reason": "cheaper", "by": "me"})
        (ev,) = rec.events
        self.assertIsInstance(ev, rs.Event)
        self.assertIs(ev.kind, rs.EventKind.CHANGED)
        self.assertEqual((str(ev.kind), f"{ev.kind}", ev.kind), ("CHANGED", "CHANGED", 2))
        self.assertEqual([str(k) for k in rs.EventKind], ["INITIAL", "CHANGED", "DEFINED", "DELETED", "RESYNC"])
        self.assertEqual(str(rs.ConnState.CONNECTED), "CONNECTED")
        self.assertEqual((ev.name, ev.type, ev.old, ev.new), ("model", rs.Type.CHOICE, "gpt-4", "claude-3"))
        self.assertEqual((ev.version, ev.revision, ev.coalesced, ev.watch), (2, self.s.revision, 1, w.id))
        self.assertEqual(ev.source, "python")
        self.assertEqual(ev.meta, {"reason": "cheaper", "by": "me"})
        self.assertGreaterEqual(ev.timestamp_ns, before - 10**9)
        self.assertEqual(rec.threads, {threading.get_ident()})  # inline: on the setting thread

    def test_include_initial_then_changes(self) -> None:
        rec = Recorder()
        self.s.watch(["model", "n"], rec, include_initial=True)
        self.s["n"] = 1
        kinds = [(e.kind, e.name, e.old, e.new, e.coalesced) for e in rec.events]
        self.assertEqual(kinds, [
            (rs.EventKind.INITIAL, "model", None, "gpt-4", 0),
            (rs.EventKind.INITIAL, "n", None, 0, 0),
            (rs.EventKind.CHANGED, "n", 0, 1, 1),
        ])

    def test_prefix_defined_deleted(self) -> None:
        rec = Recorder()
        self.s.watch("cfg.*", rec)
        self.s.define("cfg.a", "boolean", False)
        self.s["cfg.a"] = True
        self.s.undefine("cfg.a")
        self.s["n"] = 3  # not covered
        self.assertEqual([(e.kind, e.old, e.new) for e in rec.events], [
            (rs.EventKind.DEFINED, None, False),
            (rs.EventKind.CHANGED, False, True),
            (rs.EventKind.DELETED, True, None),
        ])

    def test_filter_and_ignore_source(self) -> None:
        rec = Recorder()
        w = self.s.watch("n", rec, filter=lambda ev: ev.new % 2 == 0, ignore_source="me")
        for i in range(1, 7):
            self.s.set("n", i, source="me" if i == 4 else "other")
        self.assertEqual(rec.values(), [2, 6])
        self.assertEqual(w.stats(), rs.WatchStats(delivered=2, filtered=4, coalesced=0, pending=0))

    def test_queued_runs_from_dispatch(self) -> None:
        rec = Recorder()
        w = self.s.watch("n", rec, queued=True)
        self.s["n"] = 1
        self.s["n"] = 2
        self.assertEqual(rec.events, [])
        self.assertEqual(w.stats().pending, 2)
        self.assertEqual(self.s.dispatch(0), 2)
        self.assertEqual(rec.values(), [1, 2])

    def test_debounce_coalesces(self) -> None:
        rec = Recorder()
        w = self.s.watch("n", rec, debounce_ms=300, max_wait_ms=10000)  # a loaded machine may pause us
        for i in range(1, 6):
            self.s["n"] = i
        self.assertGreaterEqual(self.s.timeout(), 0)
        deadline = time.monotonic() + 10
        while not rec.events and time.monotonic() < deadline:
            self.s.dispatch(100)
        (ev,) = rec.events
        self.assertEqual((ev.old, ev.new, ev.coalesced), (0, 5, 5))
        self.assertEqual(w.stats().coalesced, 4)

    def test_dispatch_thread_delivers_on_another_thread(self) -> None:
        with rs.Store(dispatch_thread=True) as s:
            s.define("x", "integer", 0)
            rec = Recorder()
            s.watch("x", rec, queued=True)
            for i in range(1, 4):
                s["x"] = i
            rec.wait(3)
            self.assertEqual(rec.values(), [1, 2, 3])
            self.assertNotIn(threading.get_ident(), rec.threads)

    def test_unwatch_return_value(self) -> None:
        seen = []

        def once(ev: rs.Event):
            seen.append(ev.new)
            return rs.UNWATCH

        w = self.s.watch("n", once)
        self.s["n"] = 1
        self.s["n"] = 2
        self.assertEqual(seen, [1])
        self.assertFalse(w.active)
        self.assertEqual(self.s.watcher_count("n"), 0)
        self.assertEqual(repr(rs.UNWATCH), "reactivestate.UNWATCH")

    def test_truthy_return_is_not_unwatch(self) -> None:
        rec = []
        self.s.watch("n", lambda ev: rec.append(ev) or True)
        self.s["n"] = 1
        self.s["n"] = 2
        self.assertEqual(len(rec), 2)

    def test_watch_handle_context_and_stats(self) -> None:
        rec = Recorder()
        with self.s.watch("n", rec, include_initial=True) as w:
            self.assertTrue(w.active)
            self.assertEqual(self.s.watcher_count("n"), 1)
            self.s["n"] = 9
            self.assertEqual(w.stats().delivered, 2)
            self.assertIn("active", repr(w))
        self.assertFalse(w.active)
        self.assertEqual(self.s.watcher_count("n"), 0)
        w.unwatch()  # already ended: nothing
        with self.assertRaises(rs.NotFound):
            w.stats()

    def test_callback_may_call_the_store(self) -> None:
        self.s.define("double", "integer", 0)
        self.s.watch("n", lambda ev: self.s.set("double", ev.new * 2))
        self.s["n"] = 21
        self.assertEqual(self.s["double"], 42)

    def test_unwatch_from_inside_the_callback(self) -> None:
        seen = []
        holder = {}

        def cb(ev: rs.Event) -> None:
            seen.append(ev.new)
            holder["w"].unwatch()

        holder["w"] = self.s.watch("n", cb)
        self.s["n"] = 1
        self.s["n"] = 2
        self.assertEqual(seen, [1])

    def test_close_from_a_callback_is_refused(self) -> None:
        errors = []

        def cb(ev: rs.Event) -> None:
            try:
                self.s.close()
            except rs.InvalidArgument as e:
                errors.append(e)

        self.s.watch("n", cb)
        self.s["n"] = 1
        self.assertEqual(len(errors), 1)
        self.assertFalse(self.s.closed)

    def test_bad_watch_arguments(self) -> None:
        with self.assertRaises(rs.InvalidArgument):
            self.s.watch("n", "not callable")  # type: ignore[arg-type]
        with self.assertRaises(rs.InvalidArgument):
            self.s.watch("n", print, filter=3)  # type: ignore[arg-type]
        with self.assertRaises(rs.InvalidArgument):
            self.s.watch("n", print, max_wait_ms=10)  # max_wait without debounce
        with self.assertRaises(rs.InvalidArgument):
            self.s.watch([], print)


class Exceptions(unittest.TestCase):
    def test_exception_in_callback_is_reported_and_the_watch_goes_on(self) -> None:
        with rs.Store() as s, Unraisable() as un:
            s.define("n", "integer", 0)
            seen = []

            def cb(ev: rs.Event) -> None:
                seen.append(ev.new)
                if ev.new == 1:
                    raise RuntimeError("boom in callback")

            w = s.watch("n", cb)
            s["n"] = 1  # does not raise here
            s["n"] = 2
            self.assertEqual(seen, [1, 2])
            self.assertTrue(w.active)
            (report,) = un.seen
            self.assertIsInstance(report.exc_value, RuntimeError)
            self.assertIn("watch callback", report.err_msg)
            self.assertIs(report.object, cb)

    def test_exception_in_filter_lets_the_event_through(self) -> None:
        with rs.Store() as s, Unraisable() as un:
            s.define("n", "integer", 0)
            rec = Recorder()
            s.watch("n", rec, filter=lambda ev: 1 / 0)
            s["n"] = 1
            self.assertEqual(rec.values(), [1])
            self.assertIsInstance(un.seen[0].exc_value, ZeroDivisionError)

    def test_exception_on_a_library_thread_goes_to_stderr(self) -> None:
        code = (
            "import reactivestate as rs, threading\n"
            "done = threading.Event()\n"
            "def cb(ev):\n"
            "    if ev.new == 1: raise ValueError('raised on the dispatch thread')\n"
            "    done.set()\n"
            "with rs.Store(dispatch_thread=True) as s:\n"
            "    s.define('n', 'integer', 0)\n"
            "    s.watch('n', cb, queued=True)\n"
            "    s['n'] = 1; s['n'] = 2\n"
            "    assert done.wait(10), 'second event not delivered'\n"
            "print('survived')\n"
        )
        env = CHILD_ENV
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("survived", p.stdout)
        self.assertIn("Exception ignored in reactivestate watch callback", p.stderr)
        self.assertIn("ValueError: raised on the dispatch thread", p.stderr)


class Shutdown(unittest.TestCase):
    def test_exit_with_stores_left_open(self) -> None:
        # atexit closes them, so no library thread calls into a finalizing
        # interpreter; every destroy hook runs before Python goes away
        code = (
            "import reactivestate as rs\n"
            "stores = [rs.Store(dispatch_thread=True) for _ in range(3)]\n"
            "for s in stores:\n"
            "    s.define('n', 'integer', 0)\n"
            "    s.watch('n', lambda ev: None, queued=True)\n"
            "    s.watch('n', lambda ev: None, debounce_ms=50)\n"
            "    for i in range(100): s['n'] = i\n"
            "print('leaving')\n"
        )
        env = CHILD_ENV
        for _ in range(3):
            p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "leaving\n", ""))


class Lifetimes(unittest.TestCase):
    """The callables live exactly as long as their watch."""

    def watched(self, s: rs.Store, **kw) -> tuple:
        cb = Callback()
        ref = weakref.ref(cb)
        w = s.watch("n", cb, **kw)
        return w, ref

    def assertCollected(self, ref: weakref.ref, when: str) -> None:
        gc.collect()
        self.assertIsNone(ref(), f"callback still alive after {when}")

    def setUp(self) -> None:
        self.s = rs.Store()
        self.addCleanup(self.s.close)
        self.s.define("n", "integer", 0)
        self.entries = len(store_mod._entries)

    def test_unwatch_releases(self) -> None:
        w, ref = self.watched(self.s)
        gc.collect()
        self.assertIsNotNone(ref(), "collected while the watch lives")
        w.unwatch()
        self.assertCollected(ref, "unwatch")
        self.assertEqual(len(store_mod._entries), self.entries)

    def test_filter_released_too(self) -> None:
        flt = Callback()
        fref = weakref.ref(flt)
        w = self.s.watch("n", print, filter=flt)
        del flt
        gc.collect()
        self.assertIsNotNone(fref())
        w.unwatch()
        self.assertCollected(fref, "unwatch (filter)")

    def test_unwatch_return_releases(self) -> None:
        class Once:
            def __call__(self, ev):
                return rs.UNWATCH

        cb = Once()
        ref = weakref.ref(cb)
        self.s.watch("n", cb)
        del cb
        self.s["n"] = 1
        self.assertCollected(ref, "returning UNWATCH")

    def test_store_close_releases(self) -> None:
        with rs.Store() as s:
            s.define("n", "integer", 0)
            w, ref = self.watched(s)
        self.assertCollected(ref, "store close")
        self.assertFalse(w.active)
        w.unwatch()  # on a closed store: nothing

    def test_dropped_handle_keeps_the_watch(self) -> None:
        cb = Callback()
        ref = weakref.ref(cb)
        self.s.watch("n", cb)
        del cb
        gc.collect()
        self.s["n"] = 5
        self.assertEqual([e.new for e in ref().events], [5])  # type: ignore[union-attr]
        self.s.close()
        self.assertCollected(ref, "store close of a watch without handle")

    def test_failed_watch_holds_nothing(self) -> None:
        cb = Callback()
        ref = weakref.ref(cb)
        with self.assertRaises(rs.NotFound):
            self.s.watch(["n", "missing"], cb)
        del cb
        self.assertCollected(ref, "a failed watch")
        self.assertEqual(len(store_mod._entries), self.entries)

    def test_garbage_store_closes_and_releases(self) -> None:
        s = rs.Store()
        s.define("n", "integer", 0)
        cb = Callback()
        ref = weakref.ref(cb)
        w = s.watch("n", cb)
        wref = weakref.ref(w)
        sref = weakref.ref(s)
        del cb, w, s
        gc.collect()
        self.assertIsNone(wref())
        self.assertIsNone(sref(), "the store was not collected")
        self.assertCollected(ref, "the store was collected")

    def test_store_collected_by_its_own_destroy_hook(self) -> None:
        # The callback holds the last reference to the store; it returns
        # UNWATCH on the dispatch thread, whose destroy hook drops it: the
        # store is closed from a helper thread, not inside its own thread.
        go, closed = threading.Event(), threading.Event()
        s = rs.Store(dispatch_thread=True)
        s.define("n", "integer", 0)

        def cb(ev: rs.Event, s: rs.Store = s):
            go.wait(WAIT_S)
            return rs.UNWATCH

        s.watch("n", cb, queued=True)
        s.watch("n", lambda ev: None, _on_end=closed.set)
        ref = weakref.ref(s)
        s["n"] = 1
        del s, cb
        gc.collect()
        self.assertIsNotNone(ref(), "the callback should hold the store")
        go.set()
        self.assertTrue(closed.wait(WAIT_S), "the store was not closed once collected")
        self.assertIsNone(ref())

    def test_unwatch_from_another_thread_waits_for_the_running_call(self) -> None:
        with rs.Store(dispatch_thread=True) as s:
            s.define("n", "integer", 0)
            started = threading.Event()
            finished = threading.Event()

            def slow(ev: rs.Event) -> None:
                started.set()
                time.sleep(0.2)
                finished.set()

            w = s.watch("n", slow, queued=True)
            s["n"] = 1
            self.assertTrue(started.wait(10), "callback did not start")
            w.unwatch()  # releases the GIL while it waits: no deadlock
            self.assertTrue(finished.is_set(), "unwatch returned while the callback ran")
            self.assertFalse(w.active)


if __name__ == "__main__":
    unittest.main()
