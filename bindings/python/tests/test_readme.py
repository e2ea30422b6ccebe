"""The README's example runs and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
import unittest

from support import PYROOT


class Readme(unittest.TestCase):
    def test_example(self) -> None:
        text = (PYROOT / "README.md").read_text()
        code = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        promised = re.findall(r"# (?:prints: )?(.+)$", code, re.M)
        promised = [p for p in promised if not p.startswith("or ")]
        self.assertEqual(out.getvalue().splitlines(), promised)


if __name__ == "__main__":
    unittest.main()
