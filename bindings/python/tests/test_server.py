"""A server started from Python: its limits passed through, and its log
lines (on_log) told to a Python callable."""

import os
import shutil
import socket
import tempfile
import threading
import unittest

from support import rs


class ServerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="rstate-py-server-")
        self.sock = "unix:" + os.path.join(self.tmp, "s.sock")

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_on_log_tells_a_refused_token(self) -> None:
        lines = []
        told = threading.Event()

        def on_log(line: str) -> None:
            lines.append(line)
            told.set()

        with rs.Store() as backing, rs.Server(backing, self.sock, "rw", on_log=on_log) as srv:
            with self.assertRaises(rs.PermissionDenied):
                rs.Store(srv.uri, token="wrong")
            self.assertTrue(told.wait(10), "no log line within 10 s of a refused token")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("its token matches neither token", lines[0])

    def test_handshake_ms_closes_a_silent_connection(self) -> None:
        lines = []
        told = threading.Event()

        def on_log(line: str) -> None:
            lines.append(line)
            told.set()

        with rs.Store() as backing, rs.Server(backing, self.sock, handshake_ms=100, max_handshakes=4,
                                              history_bytes=1 << 20, on_log=on_log):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(self.sock[len("unix:"):])
                s.settimeout(10)
                while s.recv(4096):  # until the server closes it (socket.timeout after 10 s)
                    pass
            self.assertTrue(told.wait(10), "no log line within 10 s of a silent connection")
        self.assertTrue(any("handshake" in l for l in lines), lines)

    def test_limits_out_of_range(self) -> None:
        with rs.Store() as backing:
            with self.assertRaises(rs.InvalidArgument):
                rs.Server(backing, self.sock, handshake_ms=-1)


if __name__ == "__main__":
    unittest.main()
