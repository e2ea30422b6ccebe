"""Cross-language end-to-end tests: a Python process and a C process over a
Unix socket, the four pairs of examples/python (issue 7), plus Server and
remote Store from Python alone.

Run by `make python-e2e` (which builds the C programs) and `make
python-check`. Every wait is bounded: a process that does not say "ready",
or does not exit, fails the test with its output.
"""

from __future__ import annotations

import faulthandler
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYROOT = HERE.parent
REPO = PYROOT.parent.parent
sys.path.insert(0, str(PYROOT))

import reactivestate as rs  # noqa: E402

EXAMPLES = REPO / "examples" / "python"
BIN = Path(os.environ.get("RSTATE_EXAMPLES", REPO / "build" / "examples" / "python"))
WAIT_S = float(os.environ.get("RSTATE_TEST_WAIT_S", "20"))
# the whole run is bounded too: a hang prints every thread's stack and exits
faulthandler.dump_traceback_later(float(os.environ.get("RSTATE_TEST_RUN_S", "600")), exit=True)
ENV = dict(os.environ, PYTHONPATH=str(PYROOT), PYTHONUNBUFFERED="1")


class Proc:
    """A child process whose stdout is read line by line on a thread."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.out: list[str] = []
        self.err = ""
        self._readers = [threading.Thread(target=f, daemon=True) for f in (self._read, self._read_err)]
        for t in self._readers:
            t.start()

    def _read_err(self) -> None:
        assert self.p.stderr is not None
        self.err = self.p.stderr.read()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.out.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, prefix: str, timeout: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"{self.name}: no line starting {prefix!r} within {timeout:.0f} s; "
                                     f"{self.report()}") from None
            if line is None:
                self.p.wait(5)
                self._collect()
                raise AssertionError(f"{self.name}: exited ({self.p.returncode}) before printing {prefix!r}; "
                                     f"{self.report()}")
            if line.startswith(prefix):
                return line

    def finish(self, timeout: float = WAIT_S) -> int:
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
            self._collect()
            raise AssertionError(f"{self.name}: still running after {timeout:.0f} s, killed; {self.report()}")
        self._collect()
        return self.p.returncode

    def _collect(self) -> None:
        """After exit: every line of stdout and stderr read."""
        for t in self._readers:
            t.join(5)
        for f in (self.p.stdout, self.p.stderr):
            if f is not None:
                f.close()

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)
        self._collect()

    @property
    def name(self) -> str:
        return Path(self.argv[-2] if self.argv[0] == sys.executable else self.argv[0]).name

    def report(self) -> str:
        return f"stdout: {self.out!r}; stderr: {self.err or '(not read yet)'}"


def c(name: str) -> str:
    exe = BIN / name
    if not exe.exists():
        raise unittest.SkipTest(f"{exe} is not built: run `make python-e2e`")
    return str(exe)


def py(name: str) -> str:
    return str(EXAMPLES / name)


class Pair(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="rstate-e2e-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sock = os.path.join(self.dir, "store.sock")
        self.procs: list[Proc] = []
        self.addCleanup(lambda: [p.kill() for p in self.procs])

    def start(self, argv: list[str]) -> Proc:
        p = Proc(argv)
        self.procs.append(p)
        return p

    #: set by each generated test (below): which half starts first
    client_first = False

    def run_pair(self, host: list[str], client: list[str]) -> tuple[Proc, Proc]:
        """Starts both halves, one straight after the other as the README
        does: the host first, or (client_first) the client first, and the
        host once the client says it waits for the socket. Both must exit 0
        within the bound."""
        if self.client_first:
            cl = self.start(client)
            cl.wait_line(f"waiting for a server at unix:{self.sock}")
            h = self.start(host)
        else:
            h = self.start(host)
            cl = self.start(client)
        rc_client = cl.finish()
        rc_host = h.finish()
        self.assertEqual(rc_client, 0, f"{cl.name} failed; {cl.report()}\n{h.name}: {h.report()}")
        self.assertEqual(rc_host, 0, f"{h.name} failed; {h.report()}\n{cl.name}: {cl.report()}")
        return h, cl

    def pair_shared_counter_c_sets_python_sees(self) -> None:
        h, cl = self.run_pair([c("counter_server"), self.sock], [sys.executable, py("counter_watcher.py"), self.sock])
        seen = [int(line.split()[2]) for line in cl.out if line.startswith("seen shared_counter")]
        self.assertEqual(seen, [0, 1, 2, 3, 4, 5])
        self.assertIn("INITIAL", next(line for line in cl.out if line.startswith("seen")))
        print("\n  " + next((x for x in cl.out if x.startswith("latency")), "no latency line"), file=sys.stderr)

    def pair_python_state_python_sets_c_sees_with_source(self) -> None:
        h, cl = self.run_pair([sys.executable, py("state_publisher.py"), self.sock], [c("state_watcher"), self.sock])
        lines = [x for x in cl.out if x.startswith("python_state:")]
        self.assertEqual([x.split()[1] for x in lines], ["connecting", "processing", "complete"])
        for x in lines:
            self.assertIn("(source python,", x)

    def pair_fan_loop_settles_at_15_with_fan_off(self) -> None:
        h, cl = self.run_pair([sys.executable, py("fan_room.py"), self.sock], [c("fan_controller"), self.sock])
        self.assertIn("fan_room: settled at 15.0 with the fan at 0", h.out)
        self.assertEqual(cl.out[-2], "temperature 15.0 -> fan_speed 0")
        fans = [int(x.split()[-1]) for x in cl.out if x.startswith("temperature")]
        self.assertEqual(fans, sorted(fans, reverse=True))
        self.assertGreater(len(fans), 3, "the loop should take several steps")

    def pair_module_variable_switches_python_strategy(self) -> None:
        h, cl = self.run_pair([c("optimizer"), self.sock], [sys.executable, py("strategy_worker.py"), self.sock])
        switched = [x for x in cl.out if x.startswith("strategy -> Strategies.Optimized")]
        self.assertEqual(len(switched), 1, cl.out)
        self.assertIn("source optimizer", switched[0])
        tasks = [x for x in cl.out if x.startswith("task ")]
        by = [x.split()[3].rstrip(":") for x in tasks]
        self.assertEqual(by[-3:], ["Strategies.Optimized"] * 3)
        self.assertIn("Strategies.Default", by)
        # the moment it changed: no Default task after the first Optimized one
        first = by.index("Strategies.Optimized")
        self.assertNotIn("Strategies.Default", by[first:])

    def test_a_half_gives_up_with_a_message(self) -> None:
        """With nobody serving, a client half waits its 10 s, then exits 1
        naming the socket and the command to start."""
        procs = [self.start(argv) for argv in ([c("fan_controller"), self.sock],
                                               [sys.executable, py("counter_watcher.py"), self.sock])]
        for p in procs:  # side by side: the wait is 10 s each
            with self.subTest(p.name):
                p.wait_line(f"waiting for a server at unix:{self.sock}")
                self.assertEqual(p.finish(), 1, p.report())
                self.assertIn(f"nothing served unix:{self.sock} within 10", p.err)
                self.assertIn("with the same path", p.err)


# every pair in both start orders: test_<pair>_host_first, test_<pair>_client_first
for _name in [n for n in vars(Pair) if n.startswith("pair_")]:
    for _order, _client_first in (("host_first", False), ("client_first", True)):
        def _test(self: Pair, _f=getattr(Pair, _name), _cf=_client_first) -> None:
            self.client_first = _cf
            _f(self)
        _test.__name__ = f"test_{_name[5:]}_{_order}"
        _test.__doc__ = f"{_name[5:]}, the {_order.replace('_', ' ')}"
        setattr(Pair, _test.__name__, _test)


class PythonRemote(unittest.TestCase):
    """Server and remote Store from Python (both ends in this process, and a
    Python client in another process)."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="rstate-e2e-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.uri = "unix:" + os.path.join(self.dir, "s.sock")
        self.store = rs.Store()
        self.addCleanup(self.store.close)
        self.store.define("x", "integer", 0, min=0, max=100)

    def test_server_uri_and_remote_calls(self) -> None:
        with rs.Server(self.store, self.uri) as srv:
            self.assertEqual(srv.uri, self.uri)
            states = []
            with rs.Store(srv.uri, on_state=states.append, no_reconnect=True) as remote:
                self.assertEqual(remote["x"], 0)
                remote.set("x", 5, source="remote", meta={"k": "v"})
                self.assertEqual(self.store["x"], 5)
                self.assertEqual(remote.info("x").version, 2)
                self.assertEqual(remote.names(), ["x"])
                with self.assertRaises(rs.ConstraintError) as cm:
                    remote["x"] = 500
                self.assertIn("x", str(cm.exception))
                with self.assertRaises(rs.NotFound):
                    remote.get("nope")
                events = queue.Queue()
                with remote.watch("x", events.put, include_initial=True):
                    self.assertEqual(events.get(timeout=WAIT_S).new, 5)
                    self.store.set("x", 6, source="local")
                    ev = events.get(timeout=WAIT_S)
                    self.assertEqual((ev.new, ev.source), (6, "local"))
            self.assertEqual(states[0], rs.ConnState.CONNECTED)
            self.assertEqual(states[-1], rs.ConnState.CLOSED)
        self.assertFalse(srv.running)

    def test_on_client(self) -> None:
        seen: "queue.Queue[tuple]" = queue.Queue()
        with rs.Server(self.store, self.uri, on_client=lambda *a: seen.put(a)) as srv:
            with rs.Store(srv.uri, no_reconnect=True):
                peer, connected, why = seen.get(timeout=WAIT_S)
                self.assertTrue(connected)
                self.assertIsNone(why)
                self.assertIn(f"pid {os.getpid()}", peer)
            peer2, connected, why = seen.get(timeout=WAIT_S)
            self.assertEqual((peer2, connected), (peer, False))
            self.assertTrue(why)

    def test_tcp(self) -> None:
        with rs.Server(self.store, "tcp:127.0.0.1:0") as srv:
            self.assertRegex(srv.uri, r"^tcp:127\.0\.0\.1:[1-9][0-9]*$")
            with rs.Store(srv.uri, no_reconnect=True) as remote:
                remote.set_many({"x": 9}, source="tcp")
                self.assertEqual(self.store["x"], 9)

    def test_exit_with_a_remote_store_left_open(self) -> None:
        code = (
            "import sys, reactivestate as rs\n"
            "s = rs.Store(sys.argv[1], no_reconnect=True)\n"
            "s.watch('x', lambda ev: None, include_initial=True)\n"
            "s['x'] = 7\n"
            "print('leaving')\n"
        )
        with rs.Server(self.store, self.uri):
            p = subprocess.run([sys.executable, "-c", code, self.uri], env=ENV, capture_output=True, text=True,
                               timeout=WAIT_S)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "leaving\n", ""))
        self.assertEqual(self.store["x"], 7)

    def test_tokens(self) -> None:
        with rs.Server(self.store, self.uri, token="rw", read_token="ro") as srv:
            with self.assertRaises(rs.PermissionDenied):
                rs.Store(srv.uri, token="wrong", no_reconnect=True)
            with rs.Store(srv.uri, token="ro", no_reconnect=True) as reader:
                self.assertEqual(reader["x"], 0)
                with self.assertRaises(rs.PermissionDenied):
                    reader["x"] = 1
            with rs.Store(srv.uri, token="rw", no_reconnect=True) as writer:
                writer["x"] = 1

    def test_unreachable_is_transport_error(self) -> None:
        with self.assertRaises(rs.TransportError):
            rs.Store(self.uri, no_reconnect=True, connect_timeout_ms=500)

    def test_closing_the_store_stops_its_server(self) -> None:
        s = rs.Store()
        srv = rs.Server(s, self.uri)
        s.close()
        self.assertFalse(srv.running)

    def test_remote_watch_lifetimes_and_callback_errors(self) -> None:
        import gc
        import weakref

        class Cb:
            def __init__(self) -> None:
                self.q: "queue.Queue[rs.Event]" = queue.Queue()

            def __call__(self, ev: rs.Event) -> None:
                self.q.put(ev)
                if ev.new == 1:
                    raise RuntimeError("raised on the connection thread")

        reports = []  # the exception's type only: its traceback would keep the callback alive
        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda u: reports.append(u.exc_type)
        self.addCleanup(setattr, sys, "unraisablehook", old_hook)
        with rs.Server(self.store, self.uri):
            remote = rs.Store(self.uri, no_reconnect=True)
            cb = Cb()
            ref = weakref.ref(cb)
            w = remote.watch("x", cb)
            q = cb.q
            del cb
            self.store["x"] = 1
            self.store["x"] = 2
            self.assertEqual([q.get(timeout=WAIT_S).new for _ in range(2)], [1, 2], "the watch died with the exception")
            self.assertEqual(len(reports), 1)
            self.assertIs(reports[0], RuntimeError)
            gc.collect()
            self.assertIsNotNone(ref())
            w.unwatch()
            gc.collect()
            self.assertIsNone(ref(), "unwatch on a remote store did not release the callback")
            cb2 = Cb()
            ref2 = weakref.ref(cb2)
            remote.watch("x", cb2)
            del cb2
            remote.close()
            gc.collect()
            self.assertIsNone(ref2(), "closing a remote store did not release the callback")

    def test_server_stop_is_seen_by_the_client(self) -> None:
        states: "queue.Queue[rs.ConnState]" = queue.Queue()
        srv = rs.Server(self.store, self.uri)
        with rs.Store(self.uri, no_reconnect=True, on_state=states.put) as remote:
            self.assertEqual(states.get(timeout=WAIT_S), rs.ConnState.CONNECTED)
            srv.stop()
            self.assertEqual(states.get(timeout=WAIT_S), rs.ConnState.DISCONNECTED)
            with self.assertRaises(rs.Closed):
                remote.set("x", 3)

    def test_asyncio_debounced_over_a_remote_store(self) -> None:
        import asyncio

        async def run(remote: rs.Store) -> rs.Event:
            stream = remote.events("x", debounce_ms=300)  # registered when this returns
            for i in range(1, 11):
                self.store["x"] = i

            async def first() -> rs.Event:
                async for ev in stream:
                    return ev
                raise AssertionError("the stream ended")

            return await asyncio.wait_for(first(), WAIT_S)

        with rs.Server(self.store, self.uri), rs.Store(self.uri, no_reconnect=True) as remote:
            ev = asyncio.run(run(remote))
        self.assertEqual((ev.old, ev.new), (0, 10))
        self.assertEqual(ev.coalesced, 10)

    def test_asyncio_consumer_in_another_process(self) -> None:
        code = (
            "import asyncio, sys, reactivestate as rs\n"
            "async def main(s):\n"
            "    got = []\n"
            "    async for ev in s.events('x', include_initial=True):\n"
            "        got.append(ev.new)\n"
            "        if ev.new == 0: s['x'] = 1\n"
            "        if ev.new == 3: return got\n"
            "with rs.Store(sys.argv[1], no_reconnect=True) as s:\n"
            "    print(asyncio.run(asyncio.wait_for(main(s), 10)))\n"
        )
        def bump(ev: rs.Event) -> None:  # the client sets 1; the server side counts on to 3
            if ev.new < 3:
                self.store.set("x", ev.new + 1)

        self.store.watch("x", bump)
        with rs.Server(self.store, self.uri):
            p = subprocess.run([sys.executable, "-c", code, self.uri], env=ENV, capture_output=True, text=True,
                               timeout=WAIT_S)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "[0, 1, 2, 3]")


if __name__ == "__main__":
    unittest.main()
