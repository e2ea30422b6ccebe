"""The ctypes structs have the C structs' size, alignment and field offsets.

Compiles a small C program against include/reactivestate.h that prints
sizeof, _Alignof and offsetof of every struct and field the binding mirrors,
and compares each with ctypes.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import unittest

from support import REPO

from reactivestate import _native as N

HEADER = REPO / "include" / "reactivestate.h"


def _fields(cls):
    """(path, ctypes offset) of every field, descending into the value union."""
    out = []
    for name, typ in cls._fields_:
        off = getattr(cls, name).offset
        out.append((name, off))
    return out


class Layout(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cc = os.environ.get("CC", "cc")
        if not HEADER.exists() or not shutil.which(cc):
            raise unittest.SkipTest("needs the source tree's header and a C compiler")
        lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <reactivestate.h>", "int main(void) {"]
        for sname, st in N.STRUCTS.items():
            lines.append(f'  printf("{sname} size %zu\\n", sizeof({sname}));')
            lines.append(f'  printf("{sname} align %zu\\n", _Alignof({sname}));')
            for fname, _ in st._fields_:
                lines.append(f'  printf("{sname}.{fname} %zu\\n", offsetof({sname}, {fname}));')
        for fname in ("f", "i", "b", "s", "s.ptr", "s.len"):
            lines.append(f'  printf("rstate_value.u.{fname} %zu\\n", offsetof(rstate_value, u.{fname}));')
        lines.append('  printf("rstate_value.u size %zu\\n", sizeof(((rstate_value *)0)->u));')
        lines.append("  return 0;\n}")
        tmp = tempfile.mkdtemp()
        cls.addClassCleanup(shutil.rmtree, tmp)
        src = os.path.join(tmp, "layout.c")
        exe = os.path.join(tmp, "layout")
        with open(src, "w") as f:
            f.write("\n".join(lines))
        subprocess.run([cc, "-std=c11", "-Wall", "-I", str(REPO / "include"), src, "-o", exe], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        cls.c = {}
        for line in out.splitlines():
            key, _, num = line.rpartition(" ")
            cls.c[key] = int(num)

    def test_every_struct_size_and_alignment(self) -> None:
        for sname, cls in N.STRUCTS.items():
            with self.subTest(struct=sname):
                self.assertEqual(ctypes.sizeof(cls), self.c[f"{sname} size"], "sizeof")
                self.assertEqual(ctypes.alignment(cls), self.c[f"{sname} align"], "alignment")

    def test_every_field_offset(self) -> None:
        for sname, cls in N.STRUCTS.items():
            for fname, off in _fields(cls):
                with self.subTest(field=f"{sname}.{fname}"):
                    self.assertEqual(off, self.c[f"{sname}.{fname}"])

    def test_value_union(self) -> None:
        u = N.rstate_value.u.offset
        self.assertEqual(ctypes.sizeof(N._ValueUnion), self.c["rstate_value.u size"])
        for fname in ("f", "i", "b", "s"):
            self.assertEqual(u + getattr(N._ValueUnion, fname).offset, self.c[f"rstate_value.u.{fname}"])
        s = u + N._ValueUnion.s.offset
        self.assertEqual(s + N._Str.ptr.offset, self.c["rstate_value.u.s.ptr"])
        self.assertEqual(s + N._Str.len.offset, self.c["rstate_value.u.s.len"])

    def test_every_struct_is_checked(self) -> None:
        # the structs of the header that cross the API, by name
        text = HEADER.read_text()
        import re

        declared = set(re.findall(r"typedef struct (rstate_\w+) \{", text))
        self.assertEqual(declared, set(N.STRUCTS))


if __name__ == "__main__":
    unittest.main()
