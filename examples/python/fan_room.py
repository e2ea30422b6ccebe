#!/usr/bin/env python3
"""The Python half of the fan/temperature loop (fan_controller.c is the
controller): hosts a store at unix:PATH with temperature (24.0) and
fan_speed (0), and plays the room. Each time the fan changes, the room
cools by half the fan speed (rounded up) in tenths of a degree, never below
15.0. The C controller sets the fan from the temperature; the loop settles
at 15.0 with the fan at 0, and both sides exit on their own. Gives up after
10 s.

    python3 examples/python/fan_room.py /tmp/fan.sock &
    build/examples/python/fan_controller /tmp/fan.sock

Either may start first: the C controller waits (up to 10 s) for this half.
"""

import asyncio
import math
import os
import sys
from pathlib import Path

try:
    import reactivestate as rs
except ImportError:  # run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import reactivestate as rs

TIMEOUT_S = 10
TARGET = 15.0


async def room(store: rs.Store, uri: str) -> float:
    # the fan is watched before the store is served: a controller that was
    # waiting for the socket connects the moment it appears and sets the fan
    async with store.events("fan_speed") as fan_events:
        with rs.Server(store, uri) as server:
            print("ready", server.uri, flush=True)
            async for ev in fan_events:
                fan = ev.new
                temp = store["temperature"]
                if fan == 0:
                    print(f"fan 0 at {temp:.1f}", flush=True)
                    if temp == TARGET:
                        return temp
                    continue
                cooled = max(TARGET, round(temp - math.ceil(fan / 2) / 10, 1))
                store.set("temperature", cooled, source="room")
                print(f"fan {fan} -> temperature {temp:.1f} -> {cooled:.1f}", flush=True)
    raise RuntimeError("the fan_speed watch ended")


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} SOCKET_PATH", file=sys.stderr)
        return 2
    with rs.Store() as store:
        store.define("temperature", "float", 24.0, min=-50, max=100, description="degrees C, the room")
        store.define("fan_speed", "integer", 0, min=0, max=100, description="set by the controller")

        async def run() -> float:
            return await asyncio.wait_for(room(store, "unix:" + os.path.abspath(sys.argv[1])), TIMEOUT_S)

        try:
            temp = asyncio.run(run())
        except asyncio.TimeoutError:
            print(f"timed out after {TIMEOUT_S} s: temperature {store['temperature']}, "
                  f"fan {store['fan_speed']}", file=sys.stderr)
            return 1
    print(f"fan_room: settled at {temp:.1f} with the fan at 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
