"""Exceptions: one class per library error code, all ReactiveStateError.

The mapping follows RSTATE_ERRNO_MAP in include/reactivestate.h exactly. Each
class also derives from the builtin exception a Python programmer would
expect to catch (a broken constraint is a ValueError, a missing variable a
LookupError, a timeout a TimeoutError, ...), so generic handlers keep working.
"""

from __future__ import annotations

from . import _native


class ReactiveStateError(Exception):
    """An error reported by libreactivestate.

    ``code`` is the library's negative RSTATE_E* code, ``name`` its symbolic
    name ("RSTATE_ECONSTRAINT") and ``str(exc)`` the library's sentence for
    this failure, naming the variable and the rule broken.
    """

    code: int = 0

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def name(self) -> str:
        return _native.lib.rstate_error_name(self.code).decode()

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidArgument(ReactiveStateError, ValueError):
    """RSTATE_EINVAL: a bad argument (name, constraints, options, ...)."""

    code = -1


class OutOfMemory(ReactiveStateError, MemoryError):
    """RSTATE_ENOMEM."""

    code = -2


class NotFound(ReactiveStateError, KeyError):
    """RSTATE_ENOTFOUND: no such variable or watch (a KeyError, as store[name] would raise)."""

    code = -3


class AlreadyExists(ReactiveStateError):
    """RSTATE_EEXIST: a different variable of that name exists."""

    code = -4


class TypeMismatch(ReactiveStateError, TypeError):
    """RSTATE_ETYPE: a value of the wrong kind for the variable's type."""

    code = -5


class ConstraintError(ReactiveStateError, ValueError):
    """RSTATE_ECONSTRAINT: the value breaks the variable's constraints."""

    code = -6


class Conflict(ReactiveStateError):
    """RSTATE_ECONFLICT: ``set(..., if_version=)`` found another version."""

    code = -7


class TransportError(ReactiveStateError, ConnectionError):
    """RSTATE_EIO: transport failure (server unreachable, socket error)."""

    code = -8


class Timeout(ReactiveStateError, TimeoutError):
    """RSTATE_ETIMEDOUT."""

    code = -9


class ProtocolError(ReactiveStateError):
    """RSTATE_EPROTO: malformed or unexpected protocol data."""

    code = -10


class PermissionDenied(ReactiveStateError, PermissionError):
    """RSTATE_EPERM: bad token or read-only access."""

    code = -11


class Closed(ReactiveStateError):
    """RSTATE_ECLOSED: the store is closed or its connection lost."""

    code = -12


class LimitReached(ReactiveStateError):
    """RSTATE_ELIMIT: a configured limit was reached (e.g. a feedback loop)."""

    code = -13


class NotSupported(ReactiveStateError, NotImplementedError):
    """RSTATE_ENOTSUP: this store or build does not support the call."""

    code = -14


class Busy(ReactiveStateError):
    """RSTATE_EBUSY: held by another process or store (a file: directory)."""

    code = -15


#: code -> exception class, for every code of RSTATE_ERRNO_MAP but OK.
BY_CODE: dict[int, type[ReactiveStateError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        OutOfMemory,
        NotFound,
        AlreadyExists,
        TypeMismatch,
        ConstraintError,
        Conflict,
        TransportError,
        Timeout,
        ProtocolError,
        PermissionDenied,
        Closed,
        LimitReached,
        NotSupported,
        Busy,
    )
}


def error(code: int, detail: str | None = None) -> ReactiveStateError:
    """The exception for a failed call that returned ``code``.

    Must be called on the thread that made the call, before any other library
    call, so that rstate_last_error() still holds its sentence.
    """
    if detail is None:
        detail = _native.lib.rstate_last_error().decode("utf-8", "replace")
    if not detail:
        detail = _native.lib.rstate_strerror(code).decode()
    cls = BY_CODE.get(code)
    if cls is None:
        return ReactiveStateError(detail, code)
    return cls(detail)


__all__ = ["ReactiveStateError", "error", "BY_CODE"] + [c.__name__ for c in BY_CODE.values()]
