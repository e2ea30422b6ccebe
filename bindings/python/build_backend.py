"""The PEP 517 build backend of the reactivestate package (pyproject.toml).

The package is pure Python over ctypes; what it needs besides is the C
library. Building a wheel therefore runs the checkout's Makefile (two
directories up: bindings/python -> the repository) into a scratch build
directory, and puts the shared library into the wheel as
reactivestate/libreactivestate.so, where reactivestate._native looks first
after REACTIVESTATE_LIB. Only the standard library is used, so pip needs no
package index (--no-build-isolation) and no setuptools or wheel.

The wheel is tagged py3-none-<platform>: the library is native code, but
it is loaded through ctypes, so any Python 3 of that platform can use it.
CC, CFLAGS and MAKE are honoured; REACTIVESTATE_SOURCE names the checkout
when the package directory was copied away from it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "reactivestate"


def _checkout() -> Path:
    root = Path(os.environ.get("REACTIVESTATE_SOURCE") or HERE.parent.parent).resolve()
    if not (root / "Makefile").is_file() or not (root / "include" / "reactivestate.h").is_file():
        raise RuntimeError(
            f"reactivestate: the C library's sources are not at {root}: build from a checkout "
            "(pip install ./bindings/python) or set REACTIVESTATE_SOURCE to one"
        )
    return root


def _version() -> str:
    """The C library's version, written once in the header
    (RSTATE_VERSION_MAJOR, _MINOR, _PATCH), as the Makefile reads it."""
    text = (_checkout() / "include" / "reactivestate.h").read_text()
    parts = [re.search(rf"^#define RSTATE_VERSION_{p} ([0-9]+)", text, re.M) for p in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise RuntimeError("reactivestate: no RSTATE_VERSION_MAJOR/MINOR/PATCH in include/reactivestate.h")
    return ".".join(m.group(1) for m in parts)


def _project() -> dict:
    """The [project] table's plain string fields (tomllib is 3.11+, so a
    small reader of `key = "value"` lines)."""
    out, inside = {}, False
    for line in (HERE / "pyproject.toml").read_text().splitlines():
        if line.startswith("["):
            inside = line.strip() == "[project]"
        elif inside:
            m = re.match(r'^([a-z-]+)\s*=\s*"(.*)"\s*$', line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def _tag() -> str:
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"py3-none-{plat}"


def _metadata(version: str) -> str:
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p.get('name', PACKAGE)}",
        f"Version: {version}",
        f"Summary: {p.get('description', '')}",
        "License: MIT",
        f"Requires-Python: {p.get('requires-python', '>=3.8')}",
        "Description-Content-Type: text/markdown",
    ]
    readme = HERE / "README.md"
    return "\n".join(lines) + "\n\n" + (readme.read_text() if readme.exists() else "")


def _build_library(scratch: Path) -> Path:
    """Builds libreactivestate.so.VERSION with the checkout's Makefile into
    scratch; returns its path."""
    root = _checkout()
    version = _version()
    target = scratch / f"libreactivestate.so.{version}"
    cmd = [os.environ.get("MAKE", "make"), "-C", str(root), f"BUILD={scratch}", str(target)]
    for var in ("CC", "CFLAGS"):
        if os.environ.get(var):
            cmd.append(f"{var}={os.environ[var]}")
    print("reactivestate: building the C library:", " ".join(cmd), file=sys.stderr, flush=True)
    # a make of its own: not a sub-make of one that pip may run under (its
    # MAKEFLAGS would carry that make's variables and job slots)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if p.returncode != 0 or not target.is_file():
        raise RuntimeError(f"reactivestate: building the C library failed (exit {p.returncode}):\n{p.stdout}")
    return target


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _files(library: Path) -> list:
    """(arcname, bytes) of everything the wheel holds but its dist-info."""
    out = []
    pkg = HERE / PACKAGE
    for path in sorted(pkg.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".so"):
            out.append((f"{PACKAGE}/{path.relative_to(pkg).as_posix()}", path.read_bytes()))
    out.append((f"{PACKAGE}/libreactivestate.so", library.read_bytes()))
    return out


def _write_wheel(wheel_directory: str, files: list, version: str) -> str:
    dist_info = f"{PACKAGE}-{version}.dist-info"
    name = f"{PACKAGE}-{version}-{_tag()}.whl"
    meta = [
        (f"{dist_info}/METADATA", _metadata(version).encode()),
        (f"{dist_info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: reactivestate build_backend\n"
                                f"Root-Is-Purelib: false\nTag: {_tag()}\n").encode()),
        (f"{dist_info}/top_level.txt", f"{PACKAGE}\n".encode()),
    ]
    record = [_record_line(a, d) for a, d in files + meta] + [f"{dist_info}/RECORD,,"]
    path = Path(wheel_directory) / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files + meta:
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if arcname.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
        z.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return name


# ---- PEP 517 hooks -----------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    version = _version()
    dist_info = Path(metadata_directory) / f"{PACKAGE}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(_metadata(version))
    return dist_info.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    scratch = Path(tempfile.mkdtemp(prefix="reactivestate-build-"))
    try:
        library = _build_library(scratch)
        return _write_wheel(wheel_directory, _files(library), _version())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("reactivestate: no source distribution: the C library builds from a checkout "
                       "(pip install ./bindings/python)")
