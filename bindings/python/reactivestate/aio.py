"""asyncio: a store's events as an async iterator.

The watch's callback runs on a library thread (or whichever thread set the
variable); it hands each event to the loop with loop.call_soon_threadsafe,
which wakes the loop through its self-pipe: no polling, no thread of ours.
Wakeups coalesce: events arriving while one is pending ride along with it.
An event from the loop's own thread (a set made by a coroutine) is queued
directly.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any, AsyncGenerator, Callable, Iterable, Optional

from .store import UNWATCH, Event, Store, Watch

_END = object()
_running_loop = asyncio._get_running_loop  # low-level, public: None outside a running loop

# (loop, store) -> [count, fd]: attach() is shared by every stream of a
# store in a loop, and the reader goes when the last one detaches.
_attached: dict = {}


def attach(store: Store, loop: Optional[asyncio.AbstractEventLoop] = None) -> Callable[[], None]:
    """Runs the store's queued and debounced callbacks from an asyncio loop
    (the running one by default): the loop watches store.fileno(), which
    is readable whenever dispatch() has work, debounce deadlines included,
    and calls dispatch(0) then. Returns the function that undoes it; calls
    nest. Not for a store with a dispatch thread, which needs none of it.
    """
    loop = loop or asyncio.get_running_loop()
    key = (loop, store)
    entry = _attached.get(key)
    if entry is None:
        fd = store.fileno()

        def ready() -> None:
            if store.closed:
                loop.remove_reader(fd)
                return
            store.dispatch(0)

        loop.add_reader(fd, ready)
        entry = _attached[key] = [0, fd]
    entry[0] += 1
    done = False

    def detach() -> None:
        nonlocal done
        if done:
            return
        done = True
        entry[0] -= 1
        if entry[0] == 0:
            _attached.pop(key, None)
            if loop.is_closed() or store.closed:
                return
            if _running_loop() is loop:
                loop.remove_reader(entry[1])
            else:  # a collection on another thread: the loop removes it
                loop.call_soon_threadsafe(loop.remove_reader, entry[1])

    return detach


class EventStream:
    """``async for event in store.events(names, ...)``.

    The watch is registered when the stream is made. It ends — and the
    callback with its reference to the loop is released — when the ``async
    for`` loop ends (break, return, exception, cancellation), when aclose()
    is called or the stream is used as ``async with`` and left, when the
    stream is garbage collected, when the event loop is shut down (asyncio
    closes the async generator the iteration runs on) or closed (the next
    event finds it closed and ends the watch). When the store closes, the
    iteration ends.
    """

    def __init__(self, store: Store, names: "Iterable[str] | str", **options: Any) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        put = self._queue.put_nowait
        loop_thread = threading.get_ident()
        pending: collections.deque = collections.deque()
        scheduled = [False]

        # Closures over the queue and the loop only, never over self, so the
        # stream can be collected while the watch still holds them. Under
        # the GIL, deque operations and the flag are atomic: an event
        # appended after drain() cleared the flag schedules another drain.
        def drain() -> None:
            scheduled[0] = False
            while pending:
                put(pending.popleft())

        def hand_over(item: Any) -> bool:
            if not pending and threading.get_ident() == loop_thread and _running_loop() is loop:
                put(item)  # inside the loop already (a coroutine's set)
                return True
            pending.append(item)
            if not scheduled[0]:
                scheduled[0] = True
                try:
                    loop.call_soon_threadsafe(drain)
                except RuntimeError:  # the loop is closed: nobody will read
                    scheduled[0] = False
                    pending.clear()
                    return False
            return True

        def deliver(event: Event) -> Any:
            return None if hand_over(event) else UNWATCH

        def ended() -> None:
            hand_over(_END)

        self._detach: Optional[Callable[[], None]] = None
        if (options.get("queued") or options.get("debounce_ms")) and not store.dispatch_thread:
            self._detach = attach(store, loop)
        try:
            self._watch: Optional[Watch] = store.watch(names, deliver, _on_end=ended, **options)
        except BaseException:
            self._undo_attach()
            raise
        self._agen = self._iterate()

    def _undo_attach(self) -> None:
        d, self._detach = self._detach, None
        if d is not None:
            try:
                d()
            except RuntimeError:  # the loop is gone (a collection on another thread)
                pass

    @property
    def watch(self) -> Optional[Watch]:
        """The underlying watch (for stats()); None once closed."""
        return self._watch

    def _end_watch(self) -> None:
        w, self._watch = self._watch, None
        if w is not None:
            w.unwatch()
        self._undo_attach()

    async def _iterate(self) -> AsyncGenerator[Event, None]:
        try:
            while True:
                ev = await self._queue.get()
                if ev is _END:
                    return
                yield ev
        finally:
            self._end_watch()

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        return self._agen

    async def __anext__(self) -> Event:
        return await self._agen.__anext__()

    async def aclose(self) -> None:
        """Ends the watch and the iteration."""
        self._end_watch()
        await self._agen.aclose()

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not hasattr(self, "_agen"):
            return  # __init__ failed: it cleaned up
        try:
            self._end_watch()
        except BaseException:
            pass
