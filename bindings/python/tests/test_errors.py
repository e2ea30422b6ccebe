"""Every error code maps to its exception class, with the library's sentence."""

from __future__ import annotations

import os
import re
import tempfile
import unittest

from support import REPO, rs

from reactivestate.errors import BY_CODE, error

EXPECTED = {
    "EINVAL": (rs.InvalidArgument, ValueError),
    "ENOMEM": (rs.OutOfMemory, MemoryError),
    "ENOTFOUND": (rs.NotFound, KeyError),
    "EEXIST": (rs.AlreadyExists, rs.ReactiveStateError),
    "ETYPE": (rs.TypeMismatch, TypeError),
    "ECONSTRAINT": (rs.ConstraintError, ValueError),
    "ECONFLICT": (rs.Conflict, rs.ReactiveStateError),
    "EIO": (rs.TransportError, OSError),
    "ETIMEDOUT": (rs.Timeout, TimeoutError),
    "EPROTO": (rs.ProtocolError, rs.ReactiveStateError),
    "EPERM": (rs.PermissionDenied, PermissionError),
    "ECLOSED": (rs.Closed, rs.ReactiveStateError),
    "ELIMIT": (rs.LimitReached, rs.ReactiveStateError),
    "ENOTSUP": (rs.NotSupported, NotImplementedError),
    "EBUSY": (rs.Busy, rs.ReactiveStateError),
}


class Mapping(unittest.TestCase):
    def test_matches_the_header_errno_map(self) -> None:
        text = (REPO / "include" / "reactivestate.h").read_text()
        codes = dict(re.findall(r"X\((\w+), (-?\d+),", text))
        self.assertEqual(set(codes) - {"OK"}, set(EXPECTED))
        for name, num in codes.items():
            if name == "OK":
                continue
            code = int(num)
            cls, builtin = EXPECTED[name]
            with self.subTest(code=name):
                self.assertIs(BY_CODE[code], cls)
                self.assertEqual(cls.code, code)
                self.assertTrue(issubclass(cls, rs.ReactiveStateError))
                self.assertTrue(issubclass(cls, builtin))
                exc = error(code, "x: the detail")
                self.assertIsInstance(exc, cls)
                self.assertEqual(str(exc), "x: the detail")
                self.assertEqual(exc.name, "RSTATE_" + name)

    def test_without_a_sentence_the_code_sentence(self) -> None:
        exc = error(-6, "")
        self.assertEqual(str(exc), "value breaks the variable's constraints")

    def test_unknown_code_is_the_base_class(self) -> None:
        exc = error(-99, "odd")
        self.assertIs(type(exc), rs.ReactiveStateError)
        self.assertEqual(exc.code, -99)


class Raised(unittest.TestCase):
    """Each error the library can produce in-process, from a real call."""

    def setUp(self) -> None:
        self.s = rs.Store()
        self.addCleanup(self.s.close)
        self.s.define("max_tokens", "integer", 1024, min=1, max=4096)

    def test_invalid_argument(self) -> None:
        with self.assertRaises(rs.InvalidArgument) as cm:
            self.s.define("bad name!", "integer", 1)
        self.assertIn("bad name!", str(cm.exception))
        with self.assertRaises(rs.InvalidArgument):
            self.s.define("s", "string", "x", min=1)  # a min on a string
        with self.assertRaises(rs.InvalidArgument):
            self.s.define("t", "no-such-type", 1)
        with self.assertRaises(rs.InvalidArgument):
            self.s.get("a\0b")
        with self.assertRaises(rs.InvalidArgument):
            rs.Store("nowhere:")

    def test_not_found(self) -> None:
        with self.assertRaises(rs.NotFound) as cm:
            self.s.get("nope")
        self.assertIn("nope", str(cm.exception))
        with self.assertRaises(KeyError):
            self.s["nope"]
        with self.assertRaises(rs.NotFound):
            self.s.set("nope", 1)
        with self.assertRaises(rs.NotFound):
            self.s.watch(["nope"], print)

    def test_already_exists(self) -> None:
        with self.assertRaises(rs.AlreadyExists):
            self.s.define("max_tokens", "integer", 2048)

    def test_type_mismatch(self) -> None:
        with self.assertRaises(rs.TypeMismatch) as cm:
            self.s.set("max_tokens", "many")
        self.assertIn("max_tokens", str(cm.exception))
        with self.assertRaises(rs.TypeMismatch):
            self.s.set("max_tokens", 1.5)
        with self.assertRaises(rs.TypeMismatch):
            self.s.set("max_tokens", [1])  # not a value at all
        with self.assertRaises(rs.TypeMismatch):
            self.s.set("max_tokens", 2**64)  # beyond int64: sent as a float, refused by the integer

    def test_constraint(self) -> None:
        with self.assertRaises(rs.ConstraintError) as cm:
            self.s["max_tokens"] = 5000
        self.assertEqual(str(cm.exception), "max_tokens: 5000 is above the maximum 4096")
        self.assertEqual(cm.exception.code, -6)
        self.assertEqual(self.s["max_tokens"], 1024)

    def test_conflict(self) -> None:
        with self.assertRaises(rs.Conflict):
            self.s.set("max_tokens", 5, if_version=7)

    def test_transport_error_from_schema_file(self) -> None:
        with self.assertRaises(rs.TransportError) as cm:
            self.s.load_schema("/nonexistent/schema.ini")
        self.assertIn("/nonexistent/schema.ini", str(cm.exception))

    def test_limit_reached_by_feedback_loop(self) -> None:
        self.s.define("ping", "integer", 0)
        self.s.define("pong", "integer", 0)
        limits = []

        def bounce(to: str):
            def cb(ev: rs.Event) -> None:
                try:
                    self.s.set(to, ev.new + 1)
                except rs.LimitReached as e:
                    limits.append(e)

            return cb

        self.s.watch("ping", bounce("pong"))
        self.s.watch("pong", bounce("ping"))
        self.s["ping"] = 1
        self.assertEqual(len(limits), 1)
        self.assertEqual(limits[0].code, -13)

    def test_closed(self) -> None:
        self.s.close()
        for call in (
            lambda: self.s.get("max_tokens"),
            lambda: self.s.set("max_tokens", 2),
            lambda: self.s.set("max_tokens", 2, source="x"),
            lambda: self.s.info("max_tokens"),
            lambda: self.s.watch("max_tokens", print),
            lambda: self.s.revision,
        ):
            with self.assertRaises(rs.Closed):
                call()

    def test_transport_error_for_nobody_listening(self) -> None:
        d = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, d)
        path = os.path.join(d, "nobody.sock")
        with self.assertRaises(rs.TransportError) as cm:
            rs.Store("unix:" + path, no_reconnect=True, connect_timeout_ms=200)
        self.assertIn(path, str(cm.exception))

    def test_set_many_names_the_item(self) -> None:
        self.s.define("a", "integer", 0)
        with self.assertRaises(rs.ConstraintError) as cm:
            self.s.set_many({"a": 1, "max_tokens": 9999})
        self.assertEqual(cm.exception.item, "max_tokens")
        self.assertEqual(cm.exception.index, 1)
        self.assertEqual(self.s["a"], 0)


if __name__ == "__main__":
    unittest.main()
