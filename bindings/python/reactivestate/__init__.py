"""reactivestate — typed variables and their watchers, from Python.

A binding of libreactivestate through ctypes (standard library only). The
library is found through REACTIVESTATE_LIB, next to this package, in the
build/ directory of a source checkout, or on the system's library path.

    import reactivestate as rs

    with rs.Store() as store:
        store.define("temperature", "float", 20.0, min=-50, max=100)
        with store.watch("temperature", lambda ev: print(ev.name, ev.old, "->", ev.new)):
            store["temperature"] = 21.5      # prints: temperature 20.0 -> 21.5

See bindings/python/README.md, and include/reactivestate.h for the contract.
"""

from ._values import ConnState, EventKind, Type, Value
from .errors import (
    AlreadyExists,
    Closed,
    Conflict,
    ConstraintError,
    InvalidArgument,
    LimitReached,
    NotFound,
    NotSupported,
    Busy,
    OutOfMemory,
    PermissionDenied,
    ProtocolError,
    ReactiveStateError,
    Timeout,
    TransportError,
    TypeMismatch,
)
from .aio import EventStream, attach
from .server import Server
from .store import UNWATCH, Event, HistoryEntry, Store, VarInfo, Watch, WatchStats, version

# The package is the binding of the library it loads, so its version is that
# library's: written once, in include/reactivestate.h (RSTATE_VERSION_*).
__version__ = version()

__all__ = [
    "Store",
    "Server",
    "Watch",
    "Event",
    "EventStream",
    "attach",
    "VarInfo",
    "HistoryEntry",
    "WatchStats",
    "Type",
    "EventKind",
    "ConnState",
    "Value",
    "UNWATCH",
    "version",
    "ReactiveStateError",
    "InvalidArgument",
    "OutOfMemory",
    "NotFound",
    "AlreadyExists",
    "TypeMismatch",
    "ConstraintError",
    "Conflict",
    "TransportError",
    "Timeout",
    "ProtocolError",
    "PermissionDenied",
    "Closed",
    "LimitReached",
    "NotSupported",
    "Busy",
]
