#!/usr/bin/env python3
"""The Python half of the strategy pair (optimizer.c hosts the store).

A worker that reasons with a strategy named by the module variable
worker.strategy ("Strategies.Default", "Strategies.Optimized"): a watch
resolves the name to a class of the Strategies namespace below and swaps
it in the moment the C optimizer changes it; the next task already uses
it. The worker reports worker.tasks_done and worker.strategy_in_use, and
finishes after 3 tasks with Strategies.Optimized. Gives up after 10 s.

    build/examples/python/optimizer /tmp/opt.sock &
    python3 examples/python/strategy_worker.py /tmp/opt.sock

Either may start first: this half waits (up to 10 s) for the C half to serve.
"""

import sys
import threading
import time
from pathlib import Path

try:
    import reactivestate as rs
except ImportError:  # run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import reactivestate as rs

TIMEOUT_S = 10


def connect(path: str) -> rs.Store:
    """The store served at unix:PATH, waiting up to TIMEOUT_S for the C half
    to serve it, so that either half may start first. Says once that it
    waits; exits 1 with the reason when nobody serves it in time."""
    uri = "unix:" + path
    deadline = time.monotonic() + TIMEOUT_S
    said = False
    while True:
        try:
            return rs.Store(uri, no_reconnect=True)
        except rs.TransportError as e:  # no socket yet, or nobody listening on it
            if time.monotonic() >= deadline:
                print(f"gave up waiting for a server: {e}\nnothing served {uri} within {TIMEOUT_S} s: "
                      f"start build/examples/python/optimizer with the same path", file=sys.stderr)
                sys.exit(1)
            if not said:
                print(f"waiting for a server at {uri}", flush=True)
                said = True
            time.sleep(0.02)


class Strategies:
    """The namespace module values name: Strategies.<class>."""

    class Default:
        @staticmethod
        def solve(task: int) -> int:
            return sum(range(task + 1))  # the slow way

    class Optimized:
        @staticmethod
        def solve(task: int) -> int:
            return task * (task + 1) // 2  # Gauss


_out = threading.Lock()


def say(line: str) -> None:
    """One whole line at a time: the callback and the worker both print."""
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def resolve(module_value: str) -> type:
    """"Strategies.Optimized" -> the class Strategies.Optimized."""
    ns, _, name = module_value.partition(".")
    if ns != "Strategies":
        raise LookupError(module_value)
    return getattr(Strategies, name)


class Worker:
    def __init__(self, store: rs.Store) -> None:
        self.store = store
        self.strategy_name = "Strategies.Default"
        self.strategy = Strategies.Default
        self.lock = threading.Lock()  # the callback runs on the connection thread
        self.watch = store.watch("worker.strategy", self.on_strategy, include_initial=True)

    def on_strategy(self, ev: rs.Event) -> None:
        cls = resolve(ev.new)
        with self.lock:  # held for two assignments only, never across a store call
            self.strategy_name, self.strategy = ev.new, cls
        say(f"strategy -> {ev.new} ({ev.kind.name}, source {ev.source})")

    def run(self) -> bool:
        deadline = time.monotonic() + TIMEOUT_S
        optimized = 0
        in_use = None
        task = 0
        while time.monotonic() < deadline:
            task += 1
            with self.lock:
                name, strategy = self.strategy_name, self.strategy
            result = strategy.solve(task * 1000)
            if name != in_use:
                in_use = name
                self.store.set("worker.strategy_in_use", name, source="worker")
            self.store.set("worker.tasks_done", task, source="worker")
            say(f"task {task} by {name}: {result}")
            if strategy is Strategies.Optimized:
                optimized += 1
                if optimized == 3:
                    self.store.set("worker.finished", True, source="worker")
                    return True
            time.sleep(0.02)
        print(f"timed out after {TIMEOUT_S} s: {task} tasks, {optimized} with Strategies.Optimized", file=sys.stderr)
        return False


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} SOCKET_PATH", file=sys.stderr)
        return 2
    with connect(sys.argv[1]) as store:
        worker = Worker(store)
        ok = worker.run()
        worker.watch.unwatch()
    print("strategy_worker:", "switched to Strategies.Optimized and finished" if ok else "failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
