"""A "file:" store from Python: sync modes, what survives reopening, one
holder, history and rollback (on file:, on mem: with keep_versions, and
through a served store)."""

import os
import shutil
import tempfile
import unittest

from support import rs


class FileStoreTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="rstate-py-file-")
        self.uri = "file:" + os.path.join(self.tmp, "store")

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_survives_reopening_in_every_sync_mode(self) -> None:
        for sync in ("always", "interval", "none"):
            uri = f"{self.uri}-{sync}"
            with rs.Store(uri, sync=sync) as s:
                s.define("temperature", "float", 0.7, min=0, max=2)
                s["temperature"] = 1.5
                rev = s.revision
            with rs.Store(uri) as s:
                self.assertEqual(s["temperature"], 1.5, sync)
                self.assertEqual(s.revision, rev, sync)

    def test_bad_sync_mode(self) -> None:
        with self.assertRaises(rs.InvalidArgument):
            rs.Store(self.uri, sync="sometimes")

    def test_one_holder(self) -> None:
        with rs.Store(self.uri):
            with self.assertRaises(rs.Busy) as cm:
                rs.Store(self.uri)
            self.assertIn(str(os.getpid()), str(cm.exception))

    def test_history_and_rollback(self) -> None:
        with rs.Store(self.uri, sync="always") as s:
            s.define("model", "choice", "gpt-4", choices=["gpt-4", "claude-3", "gemini"])
            s.set("model", "claude-3", source="py", meta={"why": "test"})
            s["model"] = "gemini"
            h = s.history("model")
            self.assertEqual([e.version for e in h], [1, 2, 3])
            self.assertEqual([e.value for e in h], ["gpt-4", "claude-3", "gemini"])
            self.assertEqual(h[1].source, "py")
            self.assertEqual(h[1].meta, {"why": "test"})
            self.assertIsNone(h[0].source)
            self.assertEqual([e.version for e in s.history("model", after_version=2)], [3])
            s.rollback("model", 2, source="undo")
            self.assertEqual(s["model"], "claude-3")
            self.assertEqual(s.info("model").version, 4)
            with self.assertRaises(rs.Conflict):
                s.rollback("model", 9)
            with self.assertRaises(rs.NotFound):
                s.history("nope")
        with rs.Store(self.uri) as s:
            self.assertEqual([e.value for e in s.history("model")], ["gpt-4", "claude-3", "gemini", "claude-3"])

    def test_mem_history_needs_keep_versions(self) -> None:
        with rs.Store() as s:
            s.define("x", "integer", 1)
            with self.assertRaises(rs.NotSupported):
                s.history("x")
        with rs.Store(keep_versions=2) as s:
            s.define("x", "integer", 1)
            for i in range(2, 6):
                s["x"] = i
            self.assertEqual([e.value for e in s.history("x")], [3, 4, 5])
            with self.assertRaises(rs.NotFound):
                s.rollback("x", 1)

    def test_history_and_rollback_through_a_served_store(self) -> None:
        sock = os.path.join(self.tmp, "s.sock")
        with rs.Store(self.uri) as backing, rs.Server(backing, "unix:" + sock, "rw", "ro") as srv:
            backing.define("x", "integer", 1)
            backing.set("x", 2, source="py")
            with rs.Store(srv.uri, token="rw") as s:
                h = s.history("x")
                self.assertEqual([(e.version, e.value) for e in h], [(1, 1), (2, 2)])
                self.assertEqual(h[1].source, "py")
                s.rollback("x", 1, source="undo")
                self.assertEqual(backing["x"], 1)
                self.assertEqual(backing.history("x")[-1].source, "undo")
                with self.assertRaises(rs.NotFound):
                    s.history("nope")
            with rs.Store(srv.uri, token="ro") as ro:
                self.assertEqual(len(ro.history("x")), 3)
                with self.assertRaises(rs.PermissionDenied):
                    ro.rollback("x", 2)
            self.assertEqual(backing["x"], 1)


if __name__ == "__main__":
    unittest.main()
