"""httpd.py — what the HTTP tests share: rstated started with --http on a
temporary Unix socket and a loopback port, curl, SSE readers, checks.

Used by tests/tools/http_api.py (the API with curl) and tests/tools/browser.py
(the live page in headless chromium). Every wait has a deadline.
"""
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time

RUNNER = shlex.split(os.environ.get("TOOL_RUNNER", ""))
TIMEOUT = 10.0 * (4 if RUNNER else 1)

passed = 0
failures = []


def check(cond, what, detail=""):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print(f"FAIL: {what}" + (f"\n  {detail}" if detail else ""), flush=True)
    return cond


def wait_for(cond, what, timeout=None):
    deadline = time.monotonic() + (timeout or TIMEOUT)
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return check(False, f"timed out waiting for {what}")


def finish(name):
    print(f"{name}: {passed} checks passed, {len(failures)} failed", flush=True)
    if failures:
        for f in failures:
            print(f"  failed: {f}")
        raise SystemExit(1)


SCHEMA = """\
[model]
type = choice
choices = gpt-4, claude-3, gemini
default = gpt-4
description = Which model answers

[temperature]
type = float
default = 0.7
min = 0
max = 2
description = Sampling temperature

[max_tokens]
type = integer
default = 1024
min = 1
max = 4096
description = Longest answer, in tokens

[verbose]
type = boolean
default = false
description = Log every request

[greeting]
type = string
default = hello
max_length = 4000

[app.retries]
type = integer
default = 3
min = 0
max = 10

[app.strategy]
type = module
namespace = Strategies
choices = Default, Optimized
default = Strategies.Default
"""


class Daemon:
    """rstated with --http 127.0.0.1:0; ready once it logs the HTTP URL."""

    def __init__(self, bindir, *args):
        self.bindir = bindir
        self.work = tempfile.mkdtemp(prefix="rstate-http-")
        self.sock = os.path.join(self.work, "s.sock")
        self.uri = "unix:" + self.sock
        schema = os.path.join(self.work, "schema.ini")
        with open(schema, "w") as f:
            f.write(SCHEMA)
        self.log_path = os.path.join(self.work, "rstated.log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(RUNNER + [os.path.join(bindir, "rstated"), "--listen", self.uri, "--schema", schema,
                                            "--http", "127.0.0.1:0"] + list(args), stdout=self.log, stderr=self.log)
        self.url = None
        wait_for(lambda: self.p.poll() is not None or self._url(), "rstated to log its http address")
        check(self.url is not None and self.p.poll() is None, "rstated starts with --http", self.text())

    def _url(self):
        m = re.search(r"http listening on (http://\S+)", self.text())
        if m:
            self.url = m.group(1)
            host, port = self.url[len("http://"):].rsplit(":", 1)
            self.host, self.port = host, int(port)
        return self.url

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def rstate(self, *args):
        return subprocess.run([os.path.join(self.bindir, "rstate"), "--connect", self.uri] + list(args),
                              capture_output=True, text=True, timeout=TIMEOUT)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            code = self.p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            code = self.p.wait()
            check(False, "rstated exits on SIGTERM")
        self.log.close()
        return code


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        return f"HTTP {self.status} {self.body!r}"


def curl(d, method, path, body=None, headers=(), extra=()):
    """One request with curl; the status, headers (lowercased) and body."""
    args = ["curl", "-sS", "-X", method, "-D", "-", "--max-time", str(TIMEOUT)] + list(extra)
    for h in headers:
        args += ["-H", h]
    if body is not None:
        args += ["--data-binary", "@-"]
    p = subprocess.run(args + [d.url + path], input=body.encode() if isinstance(body, str) else body,
                       capture_output=True, timeout=TIMEOUT + 5)
    out = p.stdout.decode("utf-8", "replace")
    head, _, rest = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    m = re.match(r"HTTP/\S+ (\d+)", lines[0]) if lines else None
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return Answer(int(m.group(1)) if m else 0, hdrs, rest)


class Stream:
    """`curl -N` on /v1/watch: SSE events (id, data as JSON) and comment
    lines arrive in a queue."""

    def __init__(self, d, query, headers=()):
        args = ["curl", "-sN"]
        for h in headers:
            args += ["-H", h]
        self.p = subprocess.Popen(args + [d.url + "/v1/watch" + query], stdout=subprocess.PIPE, text=True)
        self.q = queue.Queue()
        self.comments = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        ev = {}
        for line in self.p.stdout:
            line = line.rstrip("\n")
            if line == "":
                if "data" in ev:  # a block without data (retry:) dispatches nothing
                    self.q.put(ev)
                ev = {}
            elif line.startswith(":"):
                self.comments.append(line)
            else:
                k, _, v = line.partition(":")
                ev[k] = v[1:] if v.startswith(" ") else v
        self.q.put(None)

    def next(self, what, timeout=None):
        try:
            ev = self.q.get(timeout=timeout or TIMEOUT)
        except queue.Empty:
            check(False, f"stream: an event for {what}")
            return None
        if ev is None:
            check(False, f"stream: an event for {what}, but the stream ended")
            return None
        try:
            ev["json"] = json.loads(ev.get("data", ""))
        except ValueError:
            check(False, f"stream: {what}: data is one JSON object", repr(ev))
            ev["json"] = {}
        return ev

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=TIMEOUT)


class RawStream:
    """An SSE stream read over a plain socket (HTTP/1.0: no chunking), with
    a fixed 64 KiB receive buffer, that can stop reading for a while: a slow
    client."""

    def __init__(self, d, query):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect: a fixed window
        self.s.settimeout(TIMEOUT)
        self.s.connect((d.host, d.port))
        self.s.sendall(f"GET /v1/watch{query} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode()

    def events(self, until, timeout=None):
        """Reads events until until(event_json) is true; returns them."""
        out = []
        deadline = time.monotonic() + (timeout or TIMEOUT)
        while time.monotonic() < deadline:
            while b"\n\n" in self.buf:
                rec, _, self.buf = self.buf.partition(b"\n\n")
                data = [l[6:] for l in rec.decode().split("\n") if l.startswith("data: ")]
                if data:
                    ev = json.loads(data[0])
                    out.append(ev)
                    if until(ev):
                        return out
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        check(False, "raw stream: the awaited event within the deadline", f"{len(out)} events read")
        return out

    def close(self):
        self.s.close()
