#!/usr/bin/env python3
"""The Python half of the python_state pair (state_watcher.c watches).

Hosts a store at unix:PATH with python_state, waits until the C watcher
says it watches (watcher_ready), then sets python_state to "connecting",
"processing", "complete" with source "python", and waits until the watcher
confirms it saw them (watcher_done). Every wait gives up after 10 s.

    python3 examples/python/state_publisher.py /tmp/state.sock &
    build/examples/python/state_watcher /tmp/state.sock

Either may start first: the C watcher waits (up to 10 s) for this half.
"""

import os
import sys
import threading
from pathlib import Path

try:
    import reactivestate as rs
except ImportError:  # run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import reactivestate as rs

TIMEOUT_S = 10


def flag(store: rs.Store, name: str) -> threading.Event:
    """A threading.Event set once the boolean variable becomes true."""
    ev = threading.Event()

    def on(e: rs.Event):
        if e.new is True:
            ev.set()
            return rs.UNWATCH
        return None

    store.watch(name, on, include_initial=True)
    return ev


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} SOCKET_PATH", file=sys.stderr)
        return 2
    path = sys.argv[1]
    with rs.Store() as store:
        store.define("python_state", "string", "idle", description="set by Python, watched by C")
        store.define("watcher_ready", "boolean", False)
        store.define("watcher_done", "boolean", False)
        ready, done = flag(store, "watcher_ready"), flag(store, "watcher_done")
        with rs.Server(store, "unix:" + os.path.abspath(path)) as server:
            print("ready", server.uri, flush=True)
            if not ready.wait(TIMEOUT_S):
                print(f"timed out after {TIMEOUT_S} s waiting for the C watcher (watcher_ready)", file=sys.stderr)
                return 1
            for i, state in enumerate(("connecting", "processing", "complete"), 1):
                store.set("python_state", state, source="python", meta={"step": str(i)})
                print("set python_state", state, flush=True)
            if not done.wait(TIMEOUT_S):
                print(f"timed out after {TIMEOUT_S} s waiting for the C watcher to confirm (watcher_done)",
                      file=sys.stderr)
                return 1
    print("state_publisher: the C watcher saw all three")
    return 0


if __name__ == "__main__":
    sys.exit(main())
