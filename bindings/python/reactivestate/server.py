"""Serving a store to other processes over a Unix or TCP socket."""

from __future__ import annotations

from ctypes import byref, c_void_p
from typing import Any, Callable, Optional

from . import _native as N
from ._values import encode
from .errors import error
from .store import Store, report_exception


class Server:
    """Serves ``store`` at ``uri`` ("unix:/path", socket mode 0600, or
    "tcp:127.0.0.1:PORT", PORT 0 picking a free port) on a library thread.

    token is required for read-write access (None: none needed); read_token
    grants get/watch only. on_client(peer, connected, why) is told, on the
    server thread, of each client that connects (connected True, why None)
    and goes (False, with the reason); peer is "pid 4242 uid 1000" on a Unix
    socket, "127.0.0.1:54321" over TCP. on_log(line) is told, on the server
    thread, each line the server says when a limit bites or something is
    refused (a refused token, a handshake too slow, history forgotten).
    heartbeat_ms, history, history_bytes, max_clients, max_handshakes,
    handshake_ms, max_frame and max_queue_bytes are rstate_server_opts'
    fields (0: the default). Use the server as a context manager,
    or call stop(). It keeps its store open; closing the store stops its
    servers first.
    """

    def __init__(
        self,
        store: Store,
        uri: str,
        token: Optional[str] = None,
        read_token: Optional[str] = None,
        *,
        heartbeat_ms: int = 0,
        history: int = 0,
        max_clients: int = 0,
        max_frame: int = 0,
        max_queue_bytes: int = 0,
        history_bytes: int = 0,
        max_handshakes: int = 0,
        handshake_ms: int = 0,
        on_client: Optional[Callable[[str, bool, Optional[str]], Any]] = None,
        on_log: Optional[Callable[[str], Any]] = None,
    ) -> None:
        self._srv: Optional[c_void_p] = None
        self._on_client_c = None
        self._on_log_c = None
        self.store = store
        opts = N.rstate_server_opts()
        opts.token = None if token is None else encode(token, "token")
        opts.read_token = None if read_token is None else encode(read_token, "read_token")
        opts.heartbeat_ms = heartbeat_ms
        opts.history = history
        opts.max_clients = max_clients
        opts.max_frame = max_frame
        opts.max_queue_bytes = max_queue_bytes
        opts.history_bytes = history_bytes
        opts.max_handshakes = max_handshakes
        opts.handshake_ms = handshake_ms
        if on_log is not None:

            def log(_srv: Any, line: bytes, _ud: Any) -> None:
                try:
                    on_log(line.decode("utf-8", "replace"))
                except BaseException:
                    report_exception(on_log, "on_log callback")

            # kept until rstate_server_stop has returned, as on_client's
            self._on_log_c = N.ON_LOG_FN(log)
            opts.on_log = self._on_log_c
        if on_client is not None:

            def client(_srv: Any, peer: bytes, connected: bool, why: Optional[bytes], _ud: Any) -> None:
                try:
                    on_client(peer.decode("utf-8", "replace"), bool(connected),
                              None if why is None else why.decode("utf-8", "replace"))
                except BaseException:
                    report_exception(on_client, "on_client callback")

            # kept until rstate_server_stop has returned: no call comes after
            self._on_client_c = N.ON_CLIENT_FN(client)
            opts.on_client = self._on_client_c
        srv = c_void_p()
        rc = N.lib.rstate_server_start(byref(srv), store._handle(), encode(uri, "uri"), byref(opts))
        if rc:
            raise error(rc)
        self._srv = srv
        store._servers.add(self)

    @property
    def uri(self) -> str:
        """The bound address, as a URI Store() accepts ("" once stopped)."""
        if self._srv is None:
            return ""
        return N.lib.rstate_server_uri(self._srv).decode()

    @property
    def running(self) -> bool:
        return self._srv is not None

    def stop(self) -> None:
        """Closes every client and the listening socket; the store stays
        open. Stopping twice does nothing."""
        srv, self._srv = self._srv, None
        if srv is not None:
            self.store._servers.discard(self)
            N.lib.rstate_server_stop(srv)
            self._on_client_c = self._on_log_c = None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            self.stop()
        except BaseException:
            pass

    def __repr__(self) -> str:
        return f"<reactivestate.Server {self.uri!r}>"
