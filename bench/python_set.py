#!/usr/bin/env python3
"""Python `set` through the binding beside a plain ctypes call.

The floor is one ctypes call of a C function taking one int (libc's abs,
argtypes and restype declared, the way a binding would call it): what any
call from Python into C costs on this machine. The target (issue 7) is a
Python Store.set within 3x of it.

The rows are timed in rounds, each round running every row once (N calls,
timeit), so that a noisy neighbour slows the floor and the binding alike.
Figures are ns per call: the minimum over REPEATS rounds (the least
disturbed run, as timeit recommends) and the median beside it. The ratio is
given both ways: min/min, and the median of the per-round ratios.

    make python-bench            or
    REACTIVESTATE_LIB=build/libreactivestate.so PYTHONPATH=bindings/python python3 bench/python_set.py
"""

from __future__ import annotations

import ctypes
import os
import statistics
import sys
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))

import reactivestate as rs  # noqa: E402
from reactivestate import _native  # noqa: E402

N = int(os.environ.get("BENCH_N", "200000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))


def rounds(stmts: list[str], env: dict) -> dict[str, list[float]]:
    """ns per call of each statement, one figure per round."""
    timers = {st: timeit.Timer(st, globals=env) for st in stmts}
    out: dict[str, list[float]] = {st: [] for st in stmts}
    for _ in range(REPEATS):
        for st, t in timers.items():
            out[st].append(t.timeit(N) / N * 1e9)
    return out


def main() -> int:
    libc = ctypes.CDLL(None)
    abs_ = libc.abs
    abs_.argtypes = [ctypes.c_int]
    abs_.restype = ctypes.c_int
    strerror = ctypes.CDLL(_native.lib._name).rstate_strerror
    strerror.argtypes = [ctypes.c_int]
    strerror.restype = ctypes.c_void_p  # the pointer, not a converted string

    s = rs.Store()
    s.define("temperature", "float", 0.0)
    s.define("count", "integer", 0)
    s.define("flag", "boolean", False)
    s.define("label", "string", "")
    s.define("watched", "float", 0.0)
    s.watch("watched", lambda ev: None)
    raw_set_float = _native.raw.rstate_set_float
    h = s._h
    c_double = ctypes.c_double
    env = dict(globals(), abs_=abs_, strerror=strerror, s=s, raw_set_float=raw_set_float, h=h, c_double=c_double)

    rows = [
        ("ctypes: libc abs(int)                    [floor]", "abs_(-5)"),
        ("ctypes: rstate_strerror(int)", "strerror(-6)"),
        ("ctypes: rstate_set_float(h, b'x', c_double)", "raw_set_float(h, b'temperature', c_double(1.5))"),
        ("binding: s.set('temperature', 1.5)", "s.set('temperature', 1.5)"),
        ("binding: s['temperature'] = 1.5", "s['temperature'] = 1.5"),
        ("binding: s.set('count', 7)", "s.set('count', 7)"),
        ("binding: s.set('flag', True)", "s.set('flag', True)"),
        ("binding: s.set('label', 'abc')", "s.set('label', 'abc')"),
        ("binding: s.set(..., source='py')", "s.set('temperature', 1.5, source='py')"),
        ("binding: s.get('temperature')", "s.get('temperature')"),
    ]
    # a set that changes the value each time, with one inline Python watcher
    env["i"] = [0.0]
    rows.append(("binding: set + one Python watcher (a change)", "i[0] += 1.0; s.set('watched', i[0])"))
    print(f"python {sys.version.split()[0]}, libreactivestate {rs.version()}, {REPEATS} rounds of {N} calls; ns per call")
    print(f"  {'':50s} {'min':>8s} {'median':>8s}")
    res = rounds([st for _, st in rows], env)
    for label, st in rows:
        print(f"  {label:50s} {min(res[st]):8.0f} {statistics.median(res[st]):8.0f}")
    s.close()

    floor, bset = res["abs_(-5)"], res["s.set('temperature', 1.5)"]
    by_min = min(bset) / min(floor)
    by_round = statistics.median(b / f for b, f in zip(bset, floor))
    verdict = "within" if max(by_min, by_round) <= 3.0 else "ABOVE"
    print(f"s.set / ctypes abs(int): {by_min:.2f}x (min/min), {by_round:.2f}x (median of rounds); target <= 3x: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
