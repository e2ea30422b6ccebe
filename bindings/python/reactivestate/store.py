"""Store, Watch and Event: the library's store API, the Python way."""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import sys
import threading
import traceback
import weakref
from ctypes import byref, c_bool, c_char_p, c_double, c_int64, c_size_t, c_uint64, c_void_p
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Optional

from . import _native as N
from ._values import _NAMES, KINDS, TYPES, ConnState, EventKind, Type, Value, bname, encode, fill, to_python, to_type
from .errors import Closed, InvalidArgument, NotFound, error

if TYPE_CHECKING:
    from .aio import EventStream

lib = N.lib
_set_float = N.raw.rstate_set_float
_set_int = N.raw.rstate_set_int
_set_bool = N.raw.rstate_set_bool
_set_string = N.raw.rstate_set_string
_get = N.raw.rstate_get
_value_clear = lib.rstate_value_clear
_Value = N.rstate_value
_KIND_FLOAT = N.KIND_FLOAT
_INT64_MIN = N.INT64_MIN
_INT64_MAX = N.INT64_MAX
_ENOTFOUND = NotFound.code


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"reactivestate.{self._name}"


#: Return this from a watch callback to end the watch (RSTATE_UNWATCH).
UNWATCH = _Sentinel("UNWATCH")

_dc = {"slots": True} if sys.version_info >= (3, 10) else {}


@dataclass(**_dc)
class Event:
    """One event delivered to a watch.

    ``old`` is the value before the first change the event covers (None for
    INITIAL and DEFINED), ``new`` the value after it (None for DELETED).
    ``coalesced`` is how many changes the event stands for: 1 normally, more
    after debounce, 0 for INITIAL. ``meta`` holds the pairs given to set().
    """

    kind: EventKind
    name: str
    type: Type
    old: Optional[Value]
    new: Optional[Value]
    version: int
    revision: int
    timestamp_ns: int
    source: Optional[str]
    meta: dict = field(default_factory=dict)
    coalesced: int = 1
    watch: int = 0


class VarInfo(NamedTuple):
    """What info() tells of a variable (rstate_var_info)."""

    type: Type
    version: int
    revision: int
    updated_ns: int


class HistoryEntry(NamedTuple):
    """One kept version of a variable (rstate_history_entry)."""

    version: int
    revision: int
    timestamp_ns: int
    value: Value
    source: Optional[str]
    meta: dict


_SYNC_MODES = {"interval": 0, "always": 1, "none": 2}


class WatchStats(NamedTuple):
    """Counters of a watch (rstate_watch_stats)."""

    delivered: int
    filtered: int
    coalesced: int
    pending: int


# --------------------------------------------------------------------------
# Callbacks. Three trampolines, made once and shared by every watch: a watch's
# userdata is a key into _entries, whose entry holds the Python callables.
# The library's destroy hook (called exactly once, however the watch ends)
# removes the entry, so the callables live exactly as long as the watch. The
# trampolines run on whatever thread the library delivers on; ctypes takes
# the GIL for them.
# --------------------------------------------------------------------------


class _Entry:
    __slots__ = ("callback", "filter", "on_end", "store")

    def __init__(self, callback: Callable, filter: Optional[Callable], on_end: Optional[Callable], store: int) -> None:
        self.callback = callback
        self.filter = filter
        self.on_end = on_end
        self.store = store  # the store's handle, for in_callback_of


_entries: dict[int, _Entry] = {}
_keys = itertools.count(1)
_tls = threading.local()  # .stores: the store handles whose callbacks run on this thread


class _Unraisable(NamedTuple):
    exc_type: Any
    exc_value: Any
    exc_traceback: Any
    err_msg: str
    object: Any


def report_exception(obj: Any, what: str) -> None:
    """Reports the exception being handled the way Python reports an
    exception it cannot raise: through sys.unraisablehook when the program
    installed one, else as a traceback on stderr. Never raises."""
    exc_type, exc, tb = sys.exc_info()
    msg = f"Exception ignored in reactivestate {what}"
    try:
        hook = sys.unraisablehook
        if hook is not sys.__unraisablehook__:
            hook(_Unraisable(exc_type, exc, tb, msg, obj))
            return
    except BaseException:  # a failing hook: fall back to stderr
        pass
    try:
        print(f"{msg}: {obj!r}", file=sys.stderr)
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
    except BaseException:
        pass


def _event(e: N.rstate_event) -> Event:
    meta = {}
    n = e.n_meta
    if n:
        m = e.meta
        for i in range(n):
            meta[m[i].key.decode("utf-8", "replace")] = m[i].value.decode("utf-8", "replace")
    src = e.source
    k = e.kind
    t = e.type
    return Event(
        KINDS[k] if 0 < k < len(KINDS) else k,
        e.name.decode("utf-8", "replace"),
        TYPES[t] if 0 < t < len(TYPES) else t,
        to_python(e.old_value),
        to_python(e.new_value),
        e.version,
        e.revision,
        e.timestamp_ns,
        None if src is None else src.decode("utf-8", "replace"),
        meta,
        e.coalesced,
        e.watch,
    )


def _enter(store_ptr: int) -> list:
    stack = getattr(_tls, "stores", None)
    if stack is None:
        stack = _tls.stores = []
    stack.append(store_ptr)
    return stack


@N.WATCH_FN
def _on_event(ev, key):  # type: ignore[no-untyped-def]
    entry = _entries.get(key)
    if entry is None:  # cannot happen: destroy runs after the last call
        return 0
    e = ev[0]
    stack = _enter(e.store)
    try:
        result = entry.callback(_event(e))
    except BaseException:
        report_exception(entry.callback, "watch callback")
        return 0
    finally:
        stack.pop()
    return 1 if result is UNWATCH else 0


@N.FILTER_FN
def _on_filter(ev, key):  # type: ignore[no-untyped-def]
    entry = _entries.get(key)
    if entry is None or entry.filter is None:
        return True
    e = ev[0]
    stack = _enter(e.store)
    try:
        return bool(entry.filter(_event(e)))
    except BaseException:
        # a failing filter lets the event through: nothing is lost unseen
        report_exception(entry.filter, "watch filter")
        return True
    finally:
        stack.pop()


@N.DESTROY_FN
def _on_destroy(key):  # type: ignore[no-untyped-def]
    entry = _entries.pop(key, None)
    if entry is None:
        return
    # Counts as a callback of the store: dropping the callables may drop the
    # last reference to the Store, whose __del__ must then not close it here.
    stack = _enter(entry.store)
    try:
        if entry.on_end is not None:
            try:
                entry.on_end()
            except BaseException:
                report_exception(entry.on_end, "watch end hook")
        entry.callback = entry.filter = entry.on_end = None
    finally:
        stack.pop()


def in_callback_of(ptr: Optional[int]) -> bool:
    """True when this thread is inside a callback of the store ptr."""
    return ptr in getattr(_tls, "stores", ())


# --------------------------------------------------------------------------


class Watch:
    """A registered watch, as returned by Store.watch().

    The watch lives until unwatch() (also on leaving a ``with`` block), until
    its callback returns UNWATCH, or until the store closes — not until this
    handle is garbage collected: dropping the handle leaves the watch
    running, as a subscription would.
    """

    __slots__ = ("_store", "_id", "_key", "__weakref__")

    def __init__(self, store: "Store", wid: int, key: int) -> None:
        self._store = store
        self._id = wid
        self._key = key

    @property
    def id(self) -> int:
        """The library's watch id (never 0)."""
        return self._id

    @property
    def active(self) -> bool:
        """False once the watch has ended (its destroy hook has run)."""
        return self._key in _entries

    def unwatch(self) -> None:
        """Ends the watch: no call of its callback starts after this returns.

        From another thread it waits for a running call to finish; from
        inside the watch's own callback it returns at once. Ending a watch
        that has already ended does nothing.
        """
        h = self._store._h
        if h is None or self._key not in _entries:
            return
        rc = lib.rstate_unwatch(h, self._id)
        if rc and rc != _ENOTFOUND:
            raise error(rc)

    def stats(self) -> WatchStats:
        """The watch's counters: delivered, filtered, coalesced, pending."""
        st = N.rstate_watch_stats()
        rc = lib.rstate_get_watch_stats(self._store._handle(), self._id, byref(st))
        if rc:
            raise error(rc)
        return WatchStats(st.delivered, st.filtered, st.coalesced, st.pending)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unwatch()

    def __repr__(self) -> str:
        return f"<reactivestate.Watch id={self._id} {'active' if self.active else 'ended'}>"


_live_stores: "weakref.WeakSet[Store]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Library threads (dispatch, connections) must not call into Python
    # while the interpreter shuts down: close what the program left open.
    for s in list(_live_stores):
        try:
            s.close()
        except BaseException:
            pass


def _names_array(names: Iterable[str] | str) -> tuple[Any, int]:
    if isinstance(names, str):
        names = [names]
    enc = [encode(n) for n in names]
    return (c_char_p * len(enc))(*enc), len(enc)


def _set_opts(source: Optional[str], meta: Optional[Mapping[str, str]]) -> tuple[Any, Any]:
    if source is None and not meta:
        return None, None
    opts = N.rstate_set_opts()
    keep: list = []
    if source is not None:
        opts.source = encode(source, "source")
    if meta:
        items = list(meta.items()) if hasattr(meta, "items") else list(meta)
        arr = (N.rstate_meta * len(items))()
        for i, (k, v) in enumerate(items):
            arr[i].key = encode(k, "meta key")
            arr[i].value = encode(v, "meta value")
        opts.meta = arr
        opts.n_meta = len(items)
        keep.append(arr)
    return byref(opts), (opts, keep)


class Store:
    """A store of typed variables: in-process ("mem:") or remote
    ("unix:/path", "tcp:host:port").

    Use it as a context manager, or call close(). Every method may be called
    from any thread; close() must not race with other calls, and must not be
    called from a callback of the store.

    >>> with Store() as s:
    ...     s.define("temperature", "float", 0.7, min=0, max=2)
    ...     s["temperature"] = 1.2
    ...     s["temperature"]
    1.2
    """

    def __init__(
        self,
        uri: str = "mem:",
        token: Optional[str] = None,
        dispatch_thread: bool = False,
        *,
        connect_timeout_ms: int = 0,
        request_timeout_ms: int = 0,
        heartbeat_ms: int = 0,
        no_reconnect: bool = False,
        on_state: Optional[Callable[[ConnState], Any]] = None,
        sync: Optional[str] = None,
        sync_interval_ms: int = 0,
        keep_versions: int = 0,
        peer_uid: int = 0,
    ) -> None:
        """Opens the store; raises the library's error if it cannot
        (NotSupported, TransportError, PermissionDenied, Timeout, Busy, ...).

        A "file:/dir" store keeps its variables in that directory: sync is
        "interval" (the default: on disk every sync_interval_ms, 1000),
        "always" (a write returns once its change is on disk) or "none".
        keep_versions: past versions kept per variable for history() (0: the
        store's default; mem: keeps none, file: 100).

        dispatch_thread: queued and debounced callbacks run on a library
        thread instead of from dispatch(). on_state(state) is told of a
        remote store's connection changes, on its connection thread.
        peer_uid: on a Unix socket the server must run as this process's
        uid or root, or as peer_uid when above 0 (-1: anyone); another is
        refused with PermissionDenied before anything is sent to it.
        """
        self._h: Optional[c_void_p] = None
        self._servers: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._on_state_c = None
        self.uri = uri
        self.dispatch_thread = bool(dispatch_thread)
        opts = N.rstate_options()
        opts.dispatch_thread = bool(dispatch_thread)
        opts.token = None if token is None else encode(token, "token")
        opts.connect_timeout_ms = connect_timeout_ms
        opts.request_timeout_ms = request_timeout_ms
        opts.heartbeat_ms = heartbeat_ms
        opts.no_reconnect = bool(no_reconnect)
        if sync is not None:
            if sync not in _SYNC_MODES:
                raise InvalidArgument(f"sync must be one of {', '.join(_SYNC_MODES)}, not {sync!r}")
            opts.sync = _SYNC_MODES[sync]
        opts.sync_interval_ms = sync_interval_ms
        opts.keep_versions = keep_versions
        opts.peer_uid = peer_uid
        if on_state is not None:

            def state_changed(store_ptr: Any, state: int, _ud: Any) -> None:
                stack = _enter(store_ptr)  # close() from here is refused
                try:
                    on_state(ConnState(state))
                except BaseException:
                    report_exception(on_state, "on_state callback")
                finally:
                    stack.pop()

            # kept until after rstate_close, which reports CLOSED through it
            self._on_state_c = N.ON_STATE_FN(state_changed)
            opts.on_state = self._on_state_c
        h = c_void_p()
        rc = lib.rstate_open(byref(h), encode(uri, "uri"), byref(opts))
        if rc:
            raise error(rc)
        self._h = h
        _live_stores.add(self)

    # -- life ---------------------------------------------------------------

    def _handle(self) -> c_void_p:
        h = self._h
        if h is None:
            raise Closed("the store is closed")
        return h

    @property
    def closed(self) -> bool:
        return self._h is None

    def close(self) -> None:
        """Stops the servers of this store, ends every watch (their destroy
        hooks run, releasing the callbacks) and closes the store. Closing
        twice does nothing."""
        h = self._h
        if h is None:
            return
        if in_callback_of(h.value):
            raise InvalidArgument("close: called from a callback of this store")
        for srv in list(self._servers):
            srv.stop()
        self._h = None
        _live_stores.discard(self)
        lib.rstate_close(h)
        self._on_state_c = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        h = getattr(self, "_h", None)
        if h is None:
            return
        if not in_callback_of(h.value):
            try:
                self.close()
            except BaseException:
                pass
            return
        # Collected inside one of its own callbacks (the last reference was
        # the callback's): rstate_close may not run here, so a helper thread
        # runs it, waiting for this callback to return. Nothing else can
        # call the store any more.
        self._h = None
        _live_stores.discard(self)
        threading.Thread(target=lib.rstate_close, args=(h,), name="reactivestate-close", daemon=True).start()

    def __repr__(self) -> str:
        return f"<reactivestate.Store {self.uri!r}{' closed' if self._h is None else ''}>"

    # -- variables ------------------------------------------------------------

    def define(
        self,
        name: str,
        type: Any,
        default: Value,
        *,
        min: Optional[float] = None,
        max: Optional[float] = None,
        choices: Optional[Iterable[str]] = None,
        namespace: Optional[str] = None,
        pattern: Optional[str] = None,
        min_length: Optional[int] = None,
        max_length: Optional[int] = None,
        description: Optional[str] = None,
    ) -> None:
        """Defines a variable of a type ("float", "integer", "boolean",
        "string", "choice", "module", or a Type) with its default value and
        constraints. Defining it again identically does nothing; differently
        raises AlreadyExists. Constraints that do not apply to the type raise
        InvalidArgument; a default that breaks them ConstraintError."""
        t = to_type(type)
        d = N.rstate_var_def()
        d.name = bname(name)
        d.type = int(t)
        keep: list = [fill(d.initial, default, name)]
        if description is not None:
            d.description = encode(description, "description")
        if any(x is not None for x in (min, max, choices, namespace, pattern, min_length, max_length)):
            c = N.rstate_constraints()
            keep.append(fill(c.min, min, "min"))
            keep.append(fill(c.max, max, "max"))
            c.min_length = min_length or 0
            c.max_length = max_length or 0
            if choices is not None:
                if isinstance(choices, str):
                    choices = [x.strip() for x in choices.split(",")]
                enc = [encode(x, "choice") for x in choices]
                arr = (c_char_p * len(enc))(*enc)
                keep.append(arr)
                c.choices = ctypes.cast(arr, ctypes.POINTER(c_char_p))
                c.n_choices = len(enc)
            if namespace is not None:
                c.module_namespace = encode(namespace, "namespace")
            if pattern is not None:
                c.pattern = encode(pattern, "pattern")
            keep.append(c)
            d.constraints = ctypes.pointer(c)
        rc = lib.rstate_define(self._handle(), byref(d))
        if rc:
            raise error(rc)

    def undefine(self, name: str) -> None:
        """Removes a variable (watches of it get DELETED)."""
        rc = lib.rstate_undefine(self._handle(), bname(name))
        if rc:
            raise error(rc)

    def load_schema(self, path: "str | os.PathLike[str]") -> None:
        """Defines every variable of an INI-style schema file, all or
        nothing; errors name file:line."""
        rc = lib.rstate_load_schema(self._handle(), os.fsencode(path))
        if rc:
            raise error(rc)

    def get(self, name: str) -> Value:
        """The current value: float, int, bool or str."""
        v = _Value()
        rc = _get(self._h, _NAMES[name], byref(v))
        if rc:
            raise error(rc) if self._h is not None else Closed("the store is closed")
        k = v.kind
        if k == _KIND_FLOAT:
            return v.u.f
        out = to_python(v)
        if k == N.KIND_STRING:
            _value_clear(byref(v))
        return out  # type: ignore[return-value]

    def snapshot(self, names: Iterable[str]) -> tuple[dict, int]:
        """Reads several variables as one consistent snapshot: returns
        ({name: value}, the store revision the snapshot reflects)."""
        names = [names] if isinstance(names, str) else list(names)
        arr, n = _names_array(names)
        vals = (N.rstate_value * n)()
        rev = c_uint64()
        rc = lib.rstate_get_many(self._handle(), arr, n, vals, byref(rev))
        if rc:
            raise error(rc)
        out = {}
        for i, name in enumerate(names):
            out[name] = to_python(vals[i])
            _value_clear(byref(vals[i]))
        return out, rev.value

    def get_many(self, names: Iterable[str]) -> dict:
        """{name: value} for several variables, read as one snapshot."""
        return self.snapshot(names)[0]

    def set(
        self,
        name: str,
        value: Value,
        *,
        source: Optional[str] = None,
        meta: Optional[Mapping[str, str]] = None,
        if_version: Optional[int] = None,
    ) -> None:
        """Sets a variable. The value is checked against its type and
        constraints (TypeMismatch, ConstraintError). source names who changed
        it (watchers see it, and ignore_source filters on it); meta pairs go
        with the events; with if_version the set happens only when the
        variable is at that version, else Conflict. Inline watchers have run
        when this returns (on this thread, for a mem: store)."""
        if source is None and meta is None and if_version is None:
            # Fast path: the scalar setters, no struct built.
            n = _NAMES[name]
            t = type(value)
            if t is float:
                rc = _set_float(self._h, n, c_double(value))
            elif t is int and _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
                rc = _set_int(self._h, n, c_int64(value))
            elif t is bool:
                rc = _set_bool(self._h, n, c_bool(value))
            elif t is str and "\0" not in value:  # type: ignore[operator]
                try:
                    rc = _set_string(self._h, n, value.encode())  # type: ignore[union-attr]
                except UnicodeEncodeError:
                    return self._set(name, value, None, None, None)
            else:
                return self._set(name, value, None, None, None)
            if rc:
                raise error(rc) if self._h is not None else Closed("the store is closed")
            return
        self._set(name, value, source, meta, if_version)

    def _set(self, name: str, value: Any, source: Any, meta: Any, if_version: Optional[int]) -> None:
        v = N.rstate_value()
        keep = fill(v, value, name)
        opts, keep2 = _set_opts(source, meta)
        h = self._handle()
        if if_version is None:
            rc = lib.rstate_set(h, bname(name), byref(v), opts)
        else:
            rc = lib.rstate_set_if(h, bname(name), byref(v), if_version, opts)
        del keep, keep2
        if rc:
            raise error(rc)

    def set_many(
        self,
        values: Mapping[str, Value],
        *,
        source: Optional[str] = None,
        meta: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Sets several variables at once, all or nothing, under one store
        revision. On failure nothing changed, and the exception's ``item``
        and ``index`` attributes name the item to blame (None when no
        single one is)."""
        items = list(values.items())
        arr = (N.rstate_assign * len(items))()
        keep = []
        for i, (name, value) in enumerate(items):
            arr[i].name = bname(name)
            keep.append(fill(arr[i].value, value, name))
        opts, keep2 = _set_opts(source, meta)
        failed = c_size_t()
        rc = lib.rstate_set_many(self._handle(), arr, len(items), opts, byref(failed))
        if rc:
            exc = error(rc)
            idx = failed.value
            exc.index = idx if idx < len(items) else None  # type: ignore[attr-defined]
            exc.item = items[idx][0] if idx < len(items) else None  # type: ignore[attr-defined]
            raise exc

    def history(self, name: str, after_version: int = 0) -> list[HistoryEntry]:
        """The kept versions of a variable above after_version, oldest
        first, the current one last. NotSupported when the store keeps no
        history (a mem: store opened with keep_versions 0)."""
        found: list[HistoryEntry] = []

        def each(e: Any, _ud: Any) -> int:
            x = e.contents
            meta = {}
            for i in range(x.n_meta):
                m = x.meta[i]
                meta[m.key.decode("utf-8", "replace")] = m.value.decode("utf-8", "replace")
            src = x.source.decode("utf-8", "replace") if x.source is not None else None
            found.append(HistoryEntry(x.version, x.revision, x.timestamp_ns, to_python(x.value), src, meta))
            return 0

        rc = lib.rstate_history(self._handle(), bname(name), after_version, N.HISTORY_FN(each), None)
        if rc:
            raise error(rc)
        return found

    def rollback(
        self, name: str, version: int, *, source: Optional[str] = None, meta: Optional[Mapping[str, str]] = None
    ) -> None:
        """Sets a variable back to the value it had at version, as a new
        change. NotFound when that version is not kept, Conflict for a
        version above the current one."""
        opts, keep = _set_opts(source, meta)
        rc = lib.rstate_rollback(self._handle(), bname(name), version, opts)
        del keep
        if rc:
            raise error(rc)

    def info(self, name: str) -> VarInfo:
        """type, version, revision and updated_ns of a variable."""
        out = N.rstate_var_info()
        rc = lib.rstate_info(self._handle(), bname(name), byref(out))
        if rc:
            raise error(rc)
        t = out.type
        return VarInfo(TYPES[t] if 0 < t < len(TYPES) else t, out.version, out.revision, out.updated_ns)

    def names(self) -> list[str]:
        """Every variable's name, in name order (one consistent snapshot)."""
        found: list[str] = []

        def each(name: bytes, _t: int, _ud: Any) -> int:
            found.append(name.decode("utf-8", "replace"))
            return 0

        rc = lib.rstate_list(self._handle(), N.LIST_FN(each), None)
        if rc:
            raise error(rc)
        return found

    @property
    def revision(self) -> int:
        """The store revision: the count of accepted changes."""
        return lib.rstate_revision(self._handle())

    def __getitem__(self, name: str) -> Value:
        return self.get(name)

    #: store[name] = value is set(name, value), called directly (hot path)
    __setitem__ = set

    def __delitem__(self, name: str) -> None:
        self.undefine(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.info(name)
        except NotFound:
            return False
        except InvalidArgument:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    # -- watching ----------------------------------------------------------

    def watch(
        self,
        names: "Iterable[str] | str",
        callback: Callable[[Event], Any],
        *,
        include_initial: bool = False,
        filter: Optional[Callable[[Event], bool]] = None,
        debounce_ms: int = 0,
        max_wait_ms: int = 0,
        queued: bool = False,
        ignore_source: Optional[str] = None,
        _on_end: Optional[Callable[[], Any]] = None,
    ) -> Watch:
        """Calls callback(event) for every change of the named variables (a
        name ending in '*' covers a prefix, "*" everything).

        callback returns None to go on, or UNWATCH to end the watch. An
        exception in it is reported (sys.unraisablehook, else stderr) and the
        watch goes on. Inline watches run on the thread that made the change
        (or a remote store's connection thread); queued and debounced ones
        from dispatch() or the dispatch thread. filter(event) -> bool runs at
        delivery; ignore_source skips changes made with that source. The
        callables are held exactly as long as the watch lives.
        """
        if not callable(callback):
            raise InvalidArgument("watch: callback is not callable")
        if filter is not None and not callable(filter):
            raise InvalidArgument("watch: filter is not callable")
        arr, n = _names_array(names)
        opts = N.rstate_watch_opts()
        opts.include_initial = bool(include_initial)
        if filter is not None:
            opts.filter = _on_filter
        opts.debounce_ms = debounce_ms
        opts.max_wait_ms = max_wait_ms
        opts.queued = bool(queued)
        opts.ignore_source = None if ignore_source is None else encode(ignore_source, "ignore_source")
        opts.destroy = _on_destroy
        key = next(_keys)
        # registered before the call: INITIAL events arrive inside it
        h = self._handle()
        _entries[key] = _Entry(callback, filter, _on_end, h.value)
        wid = c_uint64()
        try:
            rc = lib.rstate_watch(h, arr, n, _on_event, key, byref(opts), byref(wid))
        except BaseException:
            _entries.pop(key, None)
            raise
        if rc:
            _entries.pop(key, None)  # a failed rstate_watch never calls destroy
            raise error(rc)
        return Watch(self, wid.value, key)

    def watcher_count(self, name: str) -> int:
        """Live watches covering this name."""
        return lib.rstate_watcher_count(self._handle(), bname(name))

    def events(self, names: "Iterable[str] | str", **options: Any) -> "EventStream":
        """An asyncio iterator of the named variables' events, to use inside
        a running event loop: ``async for event in store.events(["x"]):``.

        Takes watch()'s options. The watch is registered at once (so nothing
        set after this call is missed) and ends when the iteration ends, the
        iterator is closed or collected, the loop closes, or the store
        closes (which also ends the iteration). A queued or debounced
        stream on a store without a dispatch thread is dispatched by the
        loop itself (aio.attach).
        """
        from .aio import EventStream

        return EventStream(self, names, **options)

    # -- event-loop integration -------------------------------------------------

    def dispatch(self, timeout_ms: int = 0) -> int:
        """Runs queued and due debounced callbacks; with none ready waits up
        to timeout_ms (0: not at all, -1: until one is). Returns how many
        ran. InvalidArgument with a dispatch thread, from a callback, or for
        a timeout_ms below -1."""
        rc = lib.rstate_dispatch(self._handle(), timeout_ms)
        if rc < 0:
            raise error(rc)
        return rc

    def fileno(self) -> int:
        """An fd readable when dispatch() has work (for select/selectors/
        asyncio's add_reader). Owned by the store: do not close or read it."""
        rc = lib.rstate_fd(self._handle())
        if rc < 0:
            raise error(rc)
        return rc

    def timeout(self) -> int:
        """Milliseconds until the next debounce deadline; 0 when work is
        ready now, -1 when nothing is pending."""
        return lib.rstate_timeout(self._handle())


def version() -> str:
    """The C library's version, e.g. "0.1.0" (RSTATE_VERSION_* of
    include/reactivestate.h); also the package's ``__version__``."""
    return lib.rstate_version().decode()
