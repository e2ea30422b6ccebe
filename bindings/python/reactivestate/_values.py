"""Conversions between Python values and rstate_value, and the enums."""

from __future__ import annotations

import ctypes
import enum
from typing import Any, Union

from . import _native as N
from .errors import InvalidArgument, TypeMismatch

#: What a variable can hold, as Python sees it.
Value = Union[float, int, bool, str]


class Type(enum.IntEnum):
    """A variable's type (rstate_type)."""

    FLOAT = 1
    INTEGER = 2
    BOOLEAN = 3
    STRING = 4
    CHOICE = 5
    MODULE = 6

    def __str__(self) -> str:
        return self.name.lower()


class EventKind(enum.IntEnum):
    """What an event reports (rstate_event_kind). Prints as its name
    (``INITIAL``, ``CHANGED``, ...); compares equal to the C number."""

    INITIAL = 1
    CHANGED = 2
    DEFINED = 3
    DELETED = 4
    RESYNC = 5

    def __str__(self) -> str:
        return self.name


class ConnState(enum.IntEnum):
    """A remote store's connection state (rstate_conn_state); prints as its
    name."""

    CONNECTED = 1
    DISCONNECTED = 2
    CLOSED = 3

    def __str__(self) -> str:
        return self.name


_TYPE_NAMES = {t.name.lower(): t for t in Type}
_TYPE_NAMES.update({"int": Type.INTEGER, "bool": Type.BOOLEAN, "str": Type.STRING})
_TYPE_PY = {float: Type.FLOAT, int: Type.INTEGER, bool: Type.BOOLEAN, str: Type.STRING}

# Plain tuples index faster than Enum(value) in the event path.
TYPES: tuple = (None,) + tuple(Type)
KINDS: tuple = (None,) + tuple(EventKind)


def to_type(t: Any) -> Type:
    """Accepts a Type, its number, its name ("float", "integer", "int", ...)
    or the Python type float/int/bool/str."""
    if isinstance(t, Type):
        return t
    if isinstance(t, str):
        try:
            return _TYPE_NAMES[t.lower()]
        except KeyError:
            pass
    elif isinstance(t, int) and not isinstance(t, bool):
        try:
            return Type(t)
        except ValueError:
            pass
    elif t in _TYPE_PY:
        return _TYPE_PY[t]
    raise InvalidArgument(f"{t!r} is not a variable type (one of {', '.join(_TYPE_NAMES)})")


def encode(text: str, what: str = "name") -> bytes:
    """UTF-8 bytes of a str argument; a NUL byte inside would silently cut a
    C string short, so it is refused."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be a str, not {type(text).__name__}")
    if "\0" in text:
        raise InvalidArgument(f"{what} {text!r} contains a NUL character")
    return text.encode("utf-8", "surrogatepass")


class _NameCache(dict):
    """name -> its encode()d bytes, filled on first use: names repeat, and a
    dict lookup is cheaper than encoding and checking each time. Bounded,
    so a program making up names cannot grow it without end."""

    def __missing__(self, name: str) -> bytes:
        b = encode(name)
        if len(self) < 65536:
            self[name] = b
        return b


_NAMES = _NameCache()
#: bname(name) -> bytes: encode() for variable names, remembered.
bname = _NAMES.__getitem__


def fill(v: N.rstate_value, obj: Any, what: str = "value") -> Any:
    """Writes obj into v; returns what must stay alive while v is used.

    bool, int, float and str map to BOOL, INT, FLOAT and STRING; None to
    NONE (an unbounded min/max). An int outside int64_t goes as a float, so
    a float variable takes it and an integer variable refuses it with the
    library's own sentence. Strings go with their exact length: invalid text
    (lone surrogates) reaches the library, which rejects it as bad UTF-8.
    """
    t = type(obj)
    if obj is None:
        v.kind = N.KIND_NONE
    elif t is bool or isinstance(obj, bool):
        v.kind = N.KIND_BOOL
        v.u.b = bool(obj)
    elif isinstance(obj, int):
        if N.INT64_MIN <= obj <= N.INT64_MAX:
            v.kind = N.KIND_INT
            v.u.i = int(obj)
        else:
            v.kind = N.KIND_FLOAT
            v.u.f = float(obj)
    elif isinstance(obj, float):
        v.kind = N.KIND_FLOAT
        v.u.f = float(obj)
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        buf = ctypes.create_string_buffer(data, len(data) + 1)
        v.kind = N.KIND_STRING
        v.u.s.ptr = ctypes.addressof(buf)
        v.u.s.len = len(data)
        return buf
    else:
        raise TypeMismatch(f"{what}: a Python {t.__name__} is not a value (float, int, bool or str)")
    return None


def to_python(v: N.rstate_value) -> Value | None:
    """The Python value of an rstate_value (copied; v may be freed after)."""
    k = v.kind
    if k == N.KIND_FLOAT:
        return v.u.f
    if k == N.KIND_INT:
        return v.u.i
    if k == N.KIND_BOOL:
        return v.u.b
    if k == N.KIND_STRING:
        return ctypes.string_at(v.u.s.ptr, v.u.s.len).decode("utf-8", "replace")
    return None
