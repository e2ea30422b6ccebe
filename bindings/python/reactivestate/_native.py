"""The C side: loading libreactivestate and declaring its structs and calls.

Every struct here mirrors include/reactivestate.h field for field; the test
``test_layout`` compiles a C program that prints sizeof and offsetof of each
and compares them with ctypes, so a drift in the header fails the tests.

Nothing in this module is public: the rest of the package wraps it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    c_bool,
    c_char_p,
    c_double,
    c_int,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# rstate_kind
KIND_NONE, KIND_FLOAT, KIND_INT, KIND_BOOL, KIND_STRING = range(5)


class _Str(Structure):
    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class _ValueUnion(Union):
    _fields_ = [("f", c_double), ("i", c_int64), ("b", c_bool), ("s", _Str)]


class rstate_value(Structure):
    _fields_ = [("kind", c_int), ("u", _ValueUnion)]


class rstate_constraints(Structure):
    _fields_ = [
        ("min", rstate_value),
        ("max", rstate_value),
        ("min_length", c_size_t),
        ("max_length", c_size_t),
        ("choices", POINTER(c_char_p)),
        ("n_choices", c_size_t),
        ("module_namespace", c_char_p),
        ("pattern", c_char_p),
    ]


class rstate_var_def(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("type", c_int),
        ("initial", rstate_value),
        ("constraints", POINTER(rstate_constraints)),
        ("description", c_char_p),
    ]


ON_STATE_FN = CFUNCTYPE(None, c_void_p, c_int, c_void_p)


class rstate_options(Structure):
    _fields_ = [
        ("dispatch_thread", c_bool),
        ("token", c_char_p),
        ("connect_timeout_ms", c_int),
        ("request_timeout_ms", c_int),
        ("heartbeat_ms", c_int),
        ("no_reconnect", c_bool),
        ("on_state", ON_STATE_FN),
        ("state_userdata", c_void_p),
        ("sync", c_int),
        ("sync_interval_ms", c_int),
        ("keep_versions", c_size_t),
        ("replicas", c_int),
        ("replica_timeout_ms", c_int),
        ("peer_uid", c_int64),
    ]


class rstate_var_info(Structure):
    _fields_ = [("type", c_int), ("version", c_uint64), ("revision", c_uint64), ("updated_ns", c_int64)]


class rstate_meta(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class rstate_set_opts(Structure):
    _fields_ = [("source", c_char_p), ("meta", POINTER(rstate_meta)), ("n_meta", c_size_t)]


class rstate_history_entry(Structure):
    _fields_ = [
        ("version", c_uint64),
        ("revision", c_uint64),
        ("timestamp_ns", c_int64),
        ("value", rstate_value),
        ("source", c_char_p),
        ("meta", POINTER(rstate_meta)),
        ("n_meta", c_size_t),
    ]


class rstate_assign(Structure):
    _fields_ = [("name", c_char_p), ("value", rstate_value)]


class rstate_event(Structure):
    _fields_ = [
        ("kind", c_int),
        ("store", c_void_p),
        ("watch", c_uint64),
        ("name", c_char_p),
        ("type", c_int),
        ("old_value", rstate_value),
        ("new_value", rstate_value),
        ("version", c_uint64),
        ("revision", c_uint64),
        ("timestamp_ns", c_int64),
        ("source", c_char_p),
        ("meta", POINTER(rstate_meta)),
        ("n_meta", c_size_t),
        ("coalesced", c_uint32),
    ]


WATCH_FN = CFUNCTYPE(c_int, POINTER(rstate_event), c_void_p)
FILTER_FN = CFUNCTYPE(c_bool, POINTER(rstate_event), c_void_p)
DESTROY_FN = CFUNCTYPE(None, c_void_p)
LIST_FN = CFUNCTYPE(c_int, c_char_p, c_int, c_void_p)
HISTORY_FN = CFUNCTYPE(c_int, POINTER(rstate_history_entry), c_void_p)


class rstate_watch_opts(Structure):
    _fields_ = [
        ("include_initial", c_bool),
        ("filter", FILTER_FN),
        ("debounce_ms", c_uint32),
        ("max_wait_ms", c_uint32),
        ("queued", c_bool),
        ("ignore_source", c_char_p),
        ("destroy", DESTROY_FN),
    ]


class rstate_watch_stats(Structure):
    _fields_ = [("delivered", c_uint64), ("filtered", c_uint64), ("coalesced", c_uint64), ("pending", c_uint64)]


ON_CLIENT_FN = CFUNCTYPE(None, c_void_p, c_char_p, c_bool, c_char_p, c_void_p)
ON_LOG_FN = CFUNCTYPE(None, c_void_p, c_char_p, c_void_p)


class rstate_server_opts(Structure):
    _fields_ = [
        ("token", c_char_p),
        ("read_token", c_char_p),
        ("heartbeat_ms", c_int),
        ("history", c_size_t),
        ("max_clients", c_size_t),
        ("max_frame", c_size_t),
        ("max_queue_bytes", c_size_t),
        ("on_client", ON_CLIENT_FN),
        ("client_userdata", c_void_p),
        ("history_bytes", c_size_t),
        ("max_handshakes", c_size_t),
        ("handshake_ms", c_int),
        ("on_log", ON_LOG_FN),
        ("log_userdata", c_void_p),
    ]


class rstate_server_stats(Structure):
    _fields_ = [
        ("clients", c_uint64),
        ("events_sent", c_uint64),
        ("events_coalesced", c_uint64),
        ("history_events", c_uint64),
        ("history_bytes", c_uint64),
        ("refused", c_uint64 * 32),
    ]


#: Every struct the binding mirrors, by its C name (used by the layout test).
STRUCTS = {
    cls.__name__: cls
    for cls in (
        rstate_value,
        rstate_constraints,
        rstate_var_def,
        rstate_options,
        rstate_var_info,
        rstate_meta,
        rstate_set_opts,
        rstate_history_entry,
        rstate_assign,
        rstate_event,
        rstate_watch_opts,
        rstate_watch_stats,
        rstate_server_opts,
        rstate_server_stats,
    )
}


def candidates() -> list[str]:
    """Where the library is looked for, in order.

    1. the file named by the environment variable REACTIVESTATE_LIB;
    2. libreactivestate.so next to this package (an installed wheel or copy);
    3. build/libreactivestate.so of the repository, when the package is run
       from a checkout (bindings/python/reactivestate/ -> ../../../build);
    4. the system's search path: ctypes.util.find_library, then the soname.
    """
    found = []
    env = os.environ.get("REACTIVESTATE_LIB")
    if env:
        return [env]  # named explicitly: no silent fallback to another copy
    here = Path(__file__).resolve().parent
    for p in (here / "libreactivestate.so", here / "libreactivestate.so.0", here.parents[2] / "build" / "libreactivestate.so"):
        if p.exists():
            found.append(str(p))
    sys_name = ctypes.util.find_library("reactivestate")
    if sys_name:
        found.append(sys_name)
    found.append("libreactivestate.so.0")
    return found


def _load() -> ctypes.CDLL:
    errors = []
    for path in candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError(
        "reactivestate: cannot load libreactivestate (set REACTIVESTATE_LIB to its path): " + "; ".join(errors)
    )


lib = _load()
#: The same library with no argtypes on its functions: the hot paths call
#: these with explicit ctypes objects, which is about twice as fast as
#: letting ctypes convert through argtypes.
raw = ctypes.CDLL(lib._name, handle=lib._handle)

_P = c_void_p
_S = c_char_p
_PROTOS = {
    "rstate_strerror": (c_char_p, [c_int]),
    "rstate_error_name": (c_char_p, [c_int]),
    "rstate_last_error": (c_char_p, []),
    "rstate_version": (c_char_p, []),
    "rstate_value_copy": (c_int, [POINTER(rstate_value), POINTER(rstate_value)]),
    "rstate_value_clear": (None, [POINTER(rstate_value)]),
    "rstate_type_name": (c_char_p, [c_int]),
    "rstate_open": (c_int, [POINTER(c_void_p), _S, POINTER(rstate_options)]),
    "rstate_close": (None, [_P]),
    "rstate_define": (c_int, [_P, POINTER(rstate_var_def)]),
    "rstate_undefine": (c_int, [_P, _S]),
    "rstate_get": (c_int, [_P, _S, POINTER(rstate_value)]),
    "rstate_get_many": (c_int, [_P, POINTER(c_char_p), c_size_t, POINTER(rstate_value), POINTER(c_uint64)]),
    "rstate_info": (c_int, [_P, _S, POINTER(rstate_var_info)]),
    "rstate_list": (c_int, [_P, LIST_FN, _P]),
    "rstate_revision": (c_uint64, [_P]),
    "rstate_set": (c_int, [_P, _S, POINTER(rstate_value), POINTER(rstate_set_opts)]),
    "rstate_set_if": (c_int, [_P, _S, POINTER(rstate_value), c_uint64, POINTER(rstate_set_opts)]),
    "rstate_set_many": (c_int, [_P, POINTER(rstate_assign), c_size_t, POINTER(rstate_set_opts), POINTER(c_size_t)]),
    "rstate_free": (None, [_P]),
    "rstate_watch": (c_int, [_P, POINTER(c_char_p), c_size_t, WATCH_FN, _P, POINTER(rstate_watch_opts), POINTER(c_uint64)]),
    "rstate_unwatch": (c_int, [_P, c_uint64]),
    "rstate_get_watch_stats": (c_int, [_P, c_uint64, POINTER(rstate_watch_stats)]),
    "rstate_watcher_count": (c_size_t, [_P, _S]),
    "rstate_fd": (c_int, [_P]),
    "rstate_timeout": (c_int, [_P]),
    "rstate_dispatch": (c_int, [_P, c_int]),
    "rstate_server_start": (c_int, [POINTER(c_void_p), _P, _S, POINTER(rstate_server_opts)]),
    "rstate_server_uri": (c_char_p, [_P]),
    "rstate_server_stop": (None, [_P]),
    "rstate_load_schema": (c_int, [_P, _S]),
    "rstate_history": (c_int, [_P, _S, c_uint64, HISTORY_FN, _P]),
    "rstate_rollback": (c_int, [_P, _S, c_uint64, POINTER(rstate_set_opts)]),
}
for _name, (_res, _args) in _PROTOS.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

# rstate_set_float/int/bool/string and rstate_get_* are called through `raw`
# only, with explicit c_double/c_int64/c_bool/c_char_p arguments; their
# restype is the default, int.

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
