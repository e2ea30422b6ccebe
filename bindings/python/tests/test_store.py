"""Every store call: define, get, set, set_many, info, names, schema, ..."""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import unittest

from support import REPO, rs


class Store(unittest.TestCase):
    def setUp(self) -> None:
        self.s = rs.Store()
        self.addCleanup(self.s.close)

    def test_library_version(self) -> None:
        # one place for the version: the header's RSTATE_VERSION_* numbers
        header = (REPO / "include" / "reactivestate.h").read_text()
        parts = [re.search(r"^#define RSTATE_VERSION_%s (\d+)" % p, header, re.M).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
        self.assertEqual(rs.version(), ".".join(parts))
        self.assertEqual(rs.__version__, rs.version())

    def test_context_manager_closes(self) -> None:
        with rs.Store("mem:") as s:
            s.define("x", "integer", 1)
            self.assertFalse(s.closed)
        self.assertTrue(s.closed)
        s.close()  # twice: nothing
        self.assertIn("closed", repr(s))

    def test_every_type_round_trips_as_python(self) -> None:
        s = self.s
        s.define("f", "float", 0.5)
        s.define("i", rs.Type.INTEGER, 3)
        s.define("b", "boolean", True)
        s.define("str", "string", "héllo")
        s.define("c", "choice", "gpt-4", choices=["gpt-4", "claude-3"])
        s.define("m", "module", "Strategies.Default", namespace="Strategies", choices=["Default", "Optimized"])
        s.define("alias", "int", 1)
        self.assertEqual((s["f"], s["i"], s["b"], s["str"], s["c"], s["m"]),
                         (0.5, 3, True, "héllo", "gpt-4", "Strategies.Default"))
        self.assertIs(type(s["f"]), float)
        self.assertIs(type(s["i"]), int)
        self.assertIs(type(s["b"]), bool)
        s["f"] = 2  # an int into a float variable: converted
        self.assertEqual(s["f"], 2.0)
        self.assertIs(type(s["f"]), float)
        s["i"] = 7.0  # an integral float into an integer variable
        self.assertEqual(s["i"], 7)
        s["b"] = False
        s["str"] = "ünïcode ✓"
        s["c"] = "claude-3"
        s["m"] = "Strategies.Optimized"
        self.assertEqual(s.get_many(["f", "i", "b", "str", "c", "m"]),
                         {"f": 2.0, "i": 7, "b": False, "str": "ünïcode ✓", "c": "claude-3", "m": "Strategies.Optimized"})
        self.assertEqual(s.info("alias").type, rs.Type.INTEGER)

    def test_types_by_every_spelling(self) -> None:
        for i, t in enumerate(("float", "FLOAT", rs.Type.FLOAT, 1, float)):
            self.s.define(f"v{i}", t, 1.0)
            self.assertEqual(self.s.info(f"v{i}").type, rs.Type.FLOAT)
        self.assertEqual(str(rs.Type.MODULE), "module")

    def test_int64_limits(self) -> None:
        self.s.define("i", "integer", 0)
        for v in (2**63 - 1, -(2**63)):
            self.s["i"] = v
            self.assertEqual(self.s["i"], v)
        self.s.define("f", "float", 0.0)
        self.s["f"] = 2**70  # too big for int64: goes as a float
        self.assertEqual(self.s["f"], float(2**70))
        with self.assertRaises(rs.TypeMismatch):
            self.s["f"] = math.inf

    def test_strings_with_odd_content(self) -> None:
        self.s.define("t", "string", "")
        with self.assertRaises(rs.TypeMismatch):
            self.s["t"] = "a\0b"  # the library refuses NUL bytes, it is not cut short
        with self.assertRaises(rs.TypeMismatch):
            self.s["t"] = "\udc80"  # a lone surrogate is not UTF-8
        self.assertEqual(self.s["t"], "")
        self.s["t"] = "x" * 100000
        self.assertEqual(len(self.s["t"]), 100000)

    def test_constraints(self) -> None:
        s = self.s
        s.define("t", "float", 0.7, min=0, max=2, description="sampling temperature")
        s.define("name", "string", "abc", min_length=2, max_length=5, pattern="[a-z]+")
        s.define("c", "choice", "a", choices="a, b, c")
        with self.assertRaises(rs.ConstraintError):
            s["t"] = 2.5
        with self.assertRaises(rs.ConstraintError):
            s["name"] = "a"
        with self.assertRaises(rs.ConstraintError):
            s["name"] = "abcdef"
        with self.assertRaises(rs.ConstraintError):
            s["name"] = "ABC"
        with self.assertRaises(rs.ConstraintError):
            s["c"] = "d"
        s["c"] = "c"
        with self.assertRaises(rs.ConstraintError):
            s.define("u", "integer", 10, max=5)

    def test_define_is_idempotent(self) -> None:
        self.s.define("x", "integer", 1, min=0, description="d")
        rev = self.s.revision
        self.s.define("x", "integer", 1, min=0, description="d")
        self.assertEqual(self.s.revision, rev)

    def test_set_with_source_meta_and_if_version(self) -> None:
        self.s.define("x", "integer", 0)
        self.s.set("x", 1, source="python", meta={"why": "test"})
        info = self.s.info("x")
        self.assertEqual(info.version, 2)
        self.s.set("x", 2, if_version=2)
        with self.assertRaises(rs.Conflict):
            self.s.set("x", 3, if_version=2)
        self.s.set("x", 3, if_version=3, source="s", meta=[("k", "v")])
        self.assertEqual(self.s["x"], 3)

    def test_set_equal_value_changes_nothing(self) -> None:
        self.s.define("x", "integer", 5)
        rev = self.s.revision
        self.s["x"] = 5
        self.assertEqual(self.s.revision, rev)
        self.assertEqual(self.s.info("x").version, 1)

    def test_set_many_is_atomic_with_one_revision(self) -> None:
        s = self.s
        s.define("a", "integer", 0)
        s.define("b", "string", "x")
        s.define("c", "float", 0.0, max=1)
        rev = s.revision
        s.set_many({"a": 1, "b": "y", "c": 0.5}, source="batch", meta={"k": "v"})
        self.assertEqual(s.revision, rev + 1)
        self.assertEqual({n: s.info(n).revision for n in "abc"}, {n: rev + 1 for n in "abc"})
        with self.assertRaises(rs.ConstraintError):
            s.set_many({"a": 2, "b": "z", "c": 5.0})
        self.assertEqual(s.get_many(list("abc")), {"a": 1, "b": "y", "c": 0.5})
        s.set_many({})

    def test_info(self) -> None:
        before = time.time_ns()
        self.s.define("x", "boolean", False)
        info = self.s.info("x")
        self.assertIsInstance(info, rs.VarInfo)
        self.assertEqual((info.type, info.version, info.revision), (rs.Type.BOOLEAN, 1, self.s.revision))
        self.assertGreaterEqual(info.updated_ns, before - 10**9)
        self.s["x"] = True
        self.assertEqual(self.s.info("x").version, 2)

    def test_names_and_mapping_protocol(self) -> None:
        s = self.s
        self.assertEqual(s.names(), [])
        for n in ("b", "a", "c.d"):
            s.define(n, "integer", 0)
        self.assertEqual(s.names(), ["a", "b", "c.d"])
        self.assertEqual(list(s), ["a", "b", "c.d"])
        self.assertEqual(len(s), 3)
        self.assertIn("a", s)
        self.assertNotIn("zz", s)
        self.assertNotIn("bad name", s)
        self.assertNotIn(3, s)
        del s["a"]
        self.assertEqual(s.names(), ["b", "c.d"])
        with self.assertRaises(rs.NotFound):
            s.undefine("a")

    def test_revision_counts_changes(self) -> None:
        self.assertEqual(self.s.revision, 0)
        self.s.define("x", "integer", 0)
        self.s["x"] = 1
        self.s.undefine("x")
        self.assertEqual(self.s.revision, 3)

    def test_snapshot(self) -> None:
        self.s.define("a", "integer", 1)
        self.s.define("b", "integer", 2)
        values, rev = self.s.snapshot(["a", "b"])
        self.assertEqual(values, {"a": 1, "b": 2})
        self.assertEqual(rev, self.s.revision)
        with self.assertRaises(rs.NotFound):
            self.s.snapshot(["a", "nope"])

    def test_load_schema(self) -> None:
        self.s.load_schema(REPO / "tests" / "schemas" / "models.ini")
        self.assertIn("model", self.s)
        with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
            f.write("[t]\ntype = float\ndefault = 1\nmin = 3\nmax = 2\n")
        self.addCleanup(os.unlink, f.name)
        with self.assertRaises(rs.InvalidArgument) as cm:
            self.s.load_schema(f.name)
        self.assertIn(f"{f.name}:", str(cm.exception))

    def test_unsupported_python_values(self) -> None:
        self.s.define("x", "integer", 0)
        for bad in (None, [1], b"bytes", object()):
            with self.subTest(value=bad), self.assertRaises(rs.TypeMismatch):
                self.s.set("x", bad)
        with self.assertRaises(rs.InvalidArgument):
            self.s.get(3)  # type: ignore[arg-type]

    def test_dispatch_fileno_timeout(self) -> None:
        fd = self.s.fileno()
        self.assertGreaterEqual(fd, 0)
        self.assertEqual(self.s.timeout(), -1)
        self.assertEqual(self.s.dispatch(0), 0)
        with rs.Store(dispatch_thread=True) as t, self.assertRaises(rs.InvalidArgument):
            t.dispatch(0)

    def test_peer_uid_reaches_the_library(self) -> None:
        with self.assertRaises(rs.InvalidArgument) as cm:
            rs.Store("unix:/nonexistent/s.sock", peer_uid=-2)
        self.assertIn("peer_uid -2 is not a uid", str(cm.exception))
        with self.assertRaises(rs.TransportError):
            rs.Store("unix:/nonexistent/s.sock", peer_uid=-1)


if __name__ == "__main__":
    unittest.main()
