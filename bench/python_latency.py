#!/usr/bin/env python3
"""How long a change made in C takes to reach Python in another process.

examples/python/ticker hosts a store on a Unix socket and sets "tick" N
times, one every PERIOD_US; this process connects and receives the events
two ways in turn: by a plain watch callback (on the connection thread) and
by `async for` over store.events() in an asyncio loop. For each event the
latency is time.time_ns() at arrival minus the event's timestamp_ns (the
CLOCK_REALTIME at which the C process accepted the set; both processes
read the same clock). The target (issue 7) is p50 <= 200 us for asyncio.

    make python-bench     (runs this after bench/python_set.py)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python"))

import reactivestate as rs  # noqa: E402

N = int(os.environ.get("BENCH_EVENTS", "2000"))
PERIOD_US = int(os.environ.get("BENCH_PERIOD_US", "1000"))
TICKER = Path(os.environ.get("RSTATE_EXAMPLES", REPO / "build" / "examples" / "python")) / "ticker"
TIMEOUT_S = 10 + N * PERIOD_US / 1e6 * 3


def start_ticker(sock: str) -> subprocess.Popen:
    p = subprocess.Popen([str(TICKER), sock, str(N), str(PERIOD_US)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line.startswith("ready"):
        p.kill()
        raise SystemExit(f"ticker did not start: {line!r}")
    return p


def by_callback(store: rs.Store) -> list[float]:
    lat: list[float] = []
    done = threading.Event()

    def on(ev: rs.Event):
        lat.append((time.time_ns() - ev.timestamp_ns) / 1000)
        if ev.new == N:
            done.set()

    with store.watch("tick", on):
        store["consumer_ready"] = True
        if not done.wait(TIMEOUT_S):
            raise SystemExit(f"callback: {len(lat)} of {N} events after {TIMEOUT_S:.0f} s")
    return lat


async def by_asyncio(store: rs.Store) -> list[float]:
    lat: list[float] = []
    async with store.events("tick") as events:
        store["consumer_ready"] = True
        async for ev in events:
            lat.append((time.time_ns() - ev.timestamp_ns) / 1000)
            if ev.new == N:
                break
    return lat


def summary(name: str, lat: list[float]) -> None:
    q = statistics.quantiles(lat, n=100)
    print(f"  {name:28s} p50 {q[49]:7.0f} us   p90 {q[89]:7.0f} us   p99 {q[98]:7.0f} us   ({len(lat)} events)")


def main() -> int:
    if not TICKER.exists():
        print(f"{TICKER} is not built (make python-check builds it)", file=sys.stderr)
        return 1
    print(f"C set -> Python in another process over a Unix socket, {N} events, one every {PERIOD_US} us")
    results = {}
    for name in ("watch callback", "asyncio async for"):
        with tempfile.TemporaryDirectory() as d:
            sock = os.path.join(d, "tick.sock")
            p = start_ticker(sock)
            try:
                with rs.Store("unix:" + sock, no_reconnect=True) as store:
                    if name == "watch callback":
                        lat = by_callback(store)
                    else:
                        lat = asyncio.run(asyncio.wait_for(by_asyncio(store), TIMEOUT_S))
                    store["consumer_done"] = True
                p.wait(10)
            finally:
                if p.poll() is None:
                    p.kill()
        results[name] = lat
        summary(name, lat)
    p50 = statistics.median(results["asyncio async for"])
    print(f"asyncio p50 {p50:.0f} us; target <= 200 us: {'met' if p50 <= 200 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
