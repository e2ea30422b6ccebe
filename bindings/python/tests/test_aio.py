"""asyncio: async for over a store's events, and how the watch ends."""

from __future__ import annotations

import asyncio
import gc
import threading
import unittest

from support import WAIT_S, rs


async def take(stream, n: int) -> list:
    out = []
    async for ev in stream:
        out.append(ev)
        if len(out) == n:
            break
    return out


class Aio(unittest.TestCase):
    def setUp(self) -> None:
        self.s = rs.Store()
        self.addCleanup(self.s.close)
        self.s.define("x", "integer", 0)

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, WAIT_S))

    def test_initial_then_changes_from_another_thread(self) -> None:
        async def main():
            stream = self.s.events(["x"], include_initial=True)
            loop_thread = threading.get_ident()

            def setter():
                for i in range(1, 6):
                    self.s["x"] = i

            t = threading.Thread(target=setter)
            t.start()
            events = await take(stream, 6)
            t.join()
            return loop_thread, events

        _, events = self.run_async(main())
        self.assertEqual([e.new for e in events], [0, 1, 2, 3, 4, 5])
        self.assertIs(events[0].kind, rs.EventKind.INITIAL)
        self.assertEqual(self.s.watcher_count("x"), 0, "break did not end the watch")

    def test_burst_from_threads_arrives_whole_and_in_order(self) -> None:
        # wakeups coalesce: a burst rides on few loop wakeups, none is lost
        async def main():
            stream = self.s.events("x")

            def setter():
                for i in range(1, 2001):
                    self.s["x"] = i

            t = threading.Thread(target=setter)
            t.start()
            events = await take(stream, 2000)
            t.join()
            return [e.new for e in events]

        self.assertEqual(self.run_async(main()), list(range(1, 2001)))

    def test_set_from_the_loop_itself(self) -> None:
        async def main():
            async with self.s.events("x") as stream:
                self.s["x"] = 7
                ev = await stream.__anext__()
                self.assertEqual(ev.new, 7)
                self.assertEqual(stream.watch.stats().delivered, 1)
            return self.s.watcher_count("x")

        self.assertEqual(self.run_async(main()), 0)

    def test_registered_at_once(self) -> None:
        # a change made after events() but before the first await is seen
        async def main():
            stream = self.s.events("x")
            self.s["x"] = 1
            return (await take(stream, 1))[0].new

        self.assertEqual(self.run_async(main()), 1)

    def test_store_close_ends_the_iteration(self) -> None:
        s = rs.Store()
        s.define("x", "integer", 0)

        async def main():
            got = []
            stream = s.events("x")
            asyncio.get_running_loop().call_later(0.05, s.close)
            async for ev in stream:
                got.append(ev)
            return got

        self.assertEqual(self.run_async(main()), [])

    def test_loop_shutdown_ends_the_watch(self) -> None:
        async def forever(started: asyncio.Event):
            stream = self.s.events("x")
            started.set()
            async for _ in stream:
                pass

        async def main():
            started = asyncio.Event()
            asyncio.get_running_loop().create_task(forever(started))
            await started.wait()
            self.assertEqual(self.s.watcher_count("x"), 1)
            # main returns with forever() suspended inside the iteration

        asyncio.run(main())
        self.assertEqual(self.s.watcher_count("x"), 0, "the watch outlived its event loop")

    def test_closed_loop_ends_the_watch_on_next_event(self) -> None:
        loop = asyncio.new_event_loop()

        async def make():
            return self.s.events("x")

        stream = loop.run_until_complete(make())
        w = stream.watch
        loop.close()
        self.s["x"] = 1  # the callback finds the loop closed and returns UNWATCH
        self.assertFalse(w.active)
        del stream

    def test_unstarted_stream_collected_ends_the_watch(self) -> None:
        async def main():
            stream = self.s.events("x")
            self.assertEqual(self.s.watcher_count("x"), 1)
            del stream
            gc.collect()
            return self.s.watcher_count("x")

        self.assertEqual(self.run_async(main()), 0)

    def test_debounced_on_a_dispatch_thread(self) -> None:
        with rs.Store(dispatch_thread=True) as s:
            s.define("x", "integer", 0)

            async def main():
                stream = s.events("x", debounce_ms=300)  # long: a loaded machine may pause the setter
                for i in range(1, 11):
                    s["x"] = i
                (ev,) = await take(stream, 1)
                return ev

            ev = self.run_async(main())
            self.assertEqual((ev.old, ev.new, ev.coalesced), (0, 10, 10))

    def test_debounced_dispatched_by_the_loop(self) -> None:
        # no dispatch thread: the loop watches the store's fd and dispatches
        async def main():
            stream = self.s.events("x", debounce_ms=300)
            for i in range(1, 11):
                self.s["x"] = i
            (ev,) = await take(stream, 1)
            return ev

        ev = self.run_async(main())
        self.assertEqual((ev.old, ev.new, ev.coalesced), (0, 10, 10))
        self.assertEqual(self.s.watcher_count("x"), 0)
        self.assertEqual(rs.aio._attached, {})

    def test_attach_runs_queued_watches(self) -> None:
        async def main():
            got = asyncio.Queue()
            detach = rs.attach(self.s)
            detach2 = rs.attach(self.s)  # nests
            w = self.s.watch("x", got.put_nowait, queued=True)
            self.s["x"] = 5
            ev = await got.get()
            detach2()
            detach()
            detach()  # twice: nothing
            w.unwatch()
            return ev.new

        self.assertEqual(self.run_async(main()), 5)
        self.assertEqual(rs.aio._attached, {})

    def test_needs_a_running_loop(self) -> None:
        with self.assertRaises(RuntimeError):
            self.s.events("x")
        self.assertEqual(self.s.watcher_count("x"), 0)


if __name__ == "__main__":
    unittest.main()
