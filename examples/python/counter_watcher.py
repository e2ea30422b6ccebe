#!/usr/bin/env python3
"""The Python half of the shared_counter pair (counter_server.c hosts it).

Connects to unix:PATH and watches shared_counter from asyncio, with its
initial value: prints 0, then 1..5 as the C program sets them, and how long
each change took from being accepted in the C process to reaching this
coroutine. Exits 0 when it saw exactly 0, 1, 2, 3, 4, 5 in order; 1 on
anything else or after 10 s.

    build/examples/python/counter_server /tmp/counter.sock &
    python3 examples/python/counter_watcher.py /tmp/counter.sock

Either may start first: this half waits (up to 10 s) for the C half to serve.
"""

import asyncio
import statistics
import sys
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
                      f"start build/examples/python/counter_server with the same path", file=sys.stderr)
                sys.exit(1)
            if not said:
                print(f"waiting for a server at {uri}", flush=True)
                said = True
            time.sleep(0.02)


async def watch(store: rs.Store) -> list:
    seen, latencies = [], []
    stream = store.events("shared_counter", include_initial=True)
    store["consumer_ready"] = True  # the C side starts counting now
    async for ev in stream:
        lat_us = (time.time_ns() - ev.timestamp_ns) / 1000
        if ev.kind is rs.EventKind.CHANGED:
            latencies.append(lat_us)
        print(f"seen shared_counter {ev.new} ({ev.kind.name}, revision {ev.revision}"
              + (f", {lat_us:.0f} us after C set it)" if ev.kind is rs.EventKind.CHANGED else ")"), flush=True)
        seen.append(ev.new)
        if ev.new == 5:
            break
    if latencies:
        print(f"latency C set -> asyncio: p50 {statistics.median(latencies):.0f} us", flush=True)
    return seen


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} SOCKET_PATH", file=sys.stderr)
        return 2
    with connect(sys.argv[1]) as store:
        try:
            seen = asyncio.run(asyncio.wait_for(watch(store), TIMEOUT_S))
        except asyncio.TimeoutError:
            print(f"timed out after {TIMEOUT_S} s waiting for shared_counter to reach 5", file=sys.stderr)
            return 1
        store["consumer_done"] = True
    ok = seen == [0, 1, 2, 3, 4, 5]
    print("counter_watcher:", "saw 0, 1, 2, 3, 4, 5" if ok else f"saw {seen}, expected 0..5")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
