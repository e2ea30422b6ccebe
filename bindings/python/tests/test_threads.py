"""Threads: several Python threads set while others watch."""

from __future__ import annotations

import threading
import unittest

from support import Recorder, rs

THREADS = 4
SETS = 500


class Threads(unittest.TestCase):
    def test_setting_from_several_threads_while_watching(self) -> None:
        with rs.Store() as s:
            for t in range(THREADS):
                s.define(f"c.{t}", "integer", 0)
            s.define("total", "integer", 0)
            rec = Recorder()
            s.watch("c.*", rec, include_initial=True)
            barrier = threading.Barrier(THREADS)

            def worker(t: int) -> None:
                barrier.wait()
                for i in range(1, SETS + 1):
                    s[f"c.{t}"] = i

            threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)
                self.assertFalse(th.is_alive(), "a setter thread hung")
            events = rec.wait(THREADS + THREADS * SETS)
            self.assertEqual(len(events), THREADS * (SETS + 1))
            revs = [e.revision for e in events[THREADS:]]
            self.assertEqual(revs, sorted(revs), "a watch saw revisions out of order")
            self.assertEqual(len(set(revs)), len(revs))
            for t in range(THREADS):
                vals = [e.new for e in events if e.name == f"c.{t}" and e.kind is rs.EventKind.CHANGED]
                self.assertEqual(vals, list(range(1, SETS + 1)), f"c.{t}")
            self.assertGreater(len(rec.threads), 1)

    def test_dispatch_thread_and_setters(self) -> None:
        with rs.Store(dispatch_thread=True) as s:
            s.define("x", "integer", 0)
            rec = Recorder()
            s.watch("x", rec, queued=True)

            def worker(base: int) -> None:
                for i in range(100):
                    s.set("x", base + i, source=f"t{base}")

            threads = [threading.Thread(target=worker, args=(b,)) for b in (1000, 2000, 3000)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)
            rec.wait(300)
            revs = [e.revision for e in rec.events]
            self.assertEqual(revs, sorted(revs))

    def test_watch_and_unwatch_while_others_set(self) -> None:
        # The setter does a bounded number of sets: the thread that holds a
        # watch's delivery drains events other threads queue for it, so an
        # endless setter could keep rstate_watch delivering for ever.
        with rs.Store() as s:
            s.define("x", "integer", 0)
            done = threading.Event()

            def setter() -> None:
                for i in range(1, 20001):
                    s["x"] = i
                done.set()

            th = threading.Thread(target=setter)
            th.start()
            rounds = 0
            try:
                while not done.is_set() or rounds < 20:
                    rounds += 1
                    rec = Recorder()
                    w = s.watch("x", rec, include_initial=True)
                    w.unwatch()
                    self.assertFalse(w.active)
                    self.assertIs(rec.events[0].kind, rs.EventKind.INITIAL)
                    vals = [e.new for e in rec.events]
                    self.assertEqual(vals, sorted(vals))
                    self.assertEqual(len(set(vals)), len(vals), "an event came twice")
            finally:
                th.join(60)
            self.assertFalse(th.is_alive(), "the setter hung")
            self.assertEqual(s.watcher_count("x"), 0)

if __name__ == "__main__":
    unittest.main()
