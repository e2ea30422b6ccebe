#!/usr/bin/env python3
"""integration.py — rstated and rstate driven as a user drives them.

Starts the real rstated on a temporary Unix socket with a schema, tokens and
a snapshot file; runs `rstate watch --json` (and a human-format watch) in the
background while `rstate set`, `set-many`, `define` and `undefine` change
values from other processes, and checks the watchers' output line by line;
then bad values (exit 1 and the library's sentence), tokens (a wrong token
exits 3, a read-only token cannot write), a missing daemon (exit 3), usage
errors (exit 2); SIGTERM and SIGINT (exit 0, the snapshot written, the
watcher told the connection ended), damaged snapshots refused and left as
they were, a restart that restores the snapshot with its versions and
revision (and removes a partial file), a second daemon on the same
snapshot refused with the first's pid, the periodic snapshot, SIGHUP
reopening --log-file, other ending signals writing the snapshot,
--max-clients refusing with its sentence, and the fallback socket
directory. Every wait polls with a deadline; nothing sleeps blindly.

Usage: integration.py BINDIR
Environment: TOOL_RUNNER, a command prefix for every tool process (for
example "valgrind -q --leak-check=full --error-exitcode=99").
Run by `make tools-integration` and by `make check`.
"""
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BINDIR = sys.argv[1] if len(sys.argv) > 1 else "build/tools"
RUNNER = shlex.split(os.environ.get("TOOL_RUNNER", ""))
TIMEOUT = 10.0 * (4 if RUNNER else 1)  # seconds for any one wait

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


def tool(name):
    return RUNNER + [os.path.join(BINDIR, name)]


class Result:
    def __init__(self, p):
        self.code, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return f"exit {self.code}, stdout {self.out!r}, stderr {self.err!r}"


def rstate(*args, env=None, token=None):
    e = dict(ENV)
    if token is not None:
        e["RSTATE_TOKEN"] = token
    if env:
        e.update(env)
    p = subprocess.run(tool("rstate") + list(args), capture_output=True, text=True, env=e, timeout=TIMEOUT)
    return Result(p)


def expect(args, code, out=None, err=None, token=None, what=None):
    r = rstate(*args, token=token)
    what = what or "rstate " + " ".join(args)
    ok = r.code == code
    if out is not None:
        ok = ok and (r.out == out if isinstance(out, str) else re.search(out.pattern, r.out, re.M) is not None)
    if err is not None:
        ok = ok and err in r.err
    if code != 0:
        ok = ok and r.err.strip() != ""
    check(ok, f"{what}: want exit {code}" + (f", stderr with {err!r}" if err else ""), repr(r))
    return r


def wait_for(cond, what):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return check(False, f"timed out waiting for {what}")


class Daemon:
    """rstated in the background. It is ready when its log says "listening
    on" (logged once rstate_server_start has returned); at a log level that
    hides it, when the socket file exists. (Probing with a connection would
    take a client's place, which --max-clients counts.)"""

    def __init__(self, *args):
        self.log_path = os.path.join(WORK, f"rstated-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        if os.path.exists(SOCK):
            os.unlink(SOCK)
        self.p = subprocess.Popen(tool("rstated") + ["--listen", URI] + list(args), stdout=self.log,
                                  stderr=self.log, env=ENV)
        quiet = "warn" in args or "error" in args
        up = wait_for(lambda: self.p.poll() is not None or
                      (os.path.exists(SOCK) if quiet else "listening on" in self.text()), "rstated to listen")
        check(up and self.p.poll() is None, "rstated starts and listens", self.text())

    def text(self):
        args = self.p.args
        path = args[args.index("--log-file") + 1] if "--log-file" in args else self.log_path
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        try:
            code = self.p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            code = self.p.wait()
            check(False, f"rstated exits within {TIMEOUT} s of {sig.name}")
        self.log.close()
        return code


class Watcher:
    """rstate watch in the background; its stdout lines arrive in a queue."""

    def __init__(self, *args):
        self.p = subprocess.Popen(tool("rstate") + ["watch"] + list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=ENV)
        self.lines = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, what):
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            check(False, f"watcher: a line for {what} within {TIMEOUT} s")
            return None
        if line is None:
            check(False, f"watcher: a line for {what}, but it ended: {self.p.stderr.read()!r}")
        return line

    def next_json(self, what):
        line = self.next(what)
        if line is None:
            return {}
        try:
            return json.loads(line)
        except ValueError:
            check(False, f"watcher: {what}: a JSON line", line)
            return {}

    def no_more_lines(self):
        try:
            line = self.lines.get_nowait()
        except queue.Empty:
            return True
        return check(False, "watcher: no unexpected line", repr(line))

    def stop(self, sig=signal.SIGINT):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            check(False, "watcher exits on a signal")
            return self.p.wait()


def event_is(ev, what, **want):
    bad = {k: (ev.get(k), v) for k, v in want.items() if ev.get(k) != v or type(ev.get(k)) is not type(v)}
    check(not bad, f"event {what}", f"got {ev}, differs in {bad}")


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

[max_tokens]
type = integer
default = 1024
min = 1
max = 4096
"""


def main():
    global WORK, SOCK, URI, ENV
    WORK = tempfile.mkdtemp(prefix="rstate-it-")
    SOCK = os.path.join(WORK, "s.sock")
    URI = "unix:" + SOCK
    ENV = dict(os.environ, RSTATE_URI=URI, XDG_RUNTIME_DIR=WORK)
    ENV.pop("RSTATE_TOKEN", None)
    schema = os.path.join(WORK, "models.ini")
    snap = os.path.join(WORK, "state.snap")
    with open(schema, "w") as f:
        f.write(SCHEMA)
    for name, token in (("rw.token", "s3cret\n"), ("ro.token", "look-only\r\n")):
        with open(os.path.join(WORK, name), "w") as f:
            f.write(token)
        os.chmod(os.path.join(WORK, name), 0o600)
    RW, RO = "s3cret", "look-only"

    d = Daemon("--schema", schema, "--snapshot", snap, "--token-file", os.path.join(WORK, "rw.token"),
               "--read-token-file", os.path.join(WORK, "ro.token"), "--log-level", "debug")
    check(f"schema {schema} loaded" in d.text(), "the log names the schema", d.text())
    check("no snapshot at" in d.text(), "the first start says there is no snapshot yet", d.text())
    ENV["RSTATE_TOKEN"] = RW

    # reading
    expect(["get", "model", "temperature", "max_tokens"], 0, out="gpt-4\n0.7\n1024\n")
    expect(["list"], 0, out="NAME         TYPE     VALUE    VERSION\n"
                            "max_tokens   integer  1024     1\n"
                            "model        choice   \"gpt-4\"  1\n"
                            "temperature  float    0.7      1\n")
    expect(["list", "m*"], 0, out=re.compile(r"\A(NAME .*\n)(max_tokens .*\n)(model .*\n)\Z"))
    expect(["info", "temperature"], 0, out=re.compile(r"\Aname      temperature\ntype      float\nvalue     0.7\n"
                                                       r"version   1\nrevision  2\nupdated   \d{4}-\d\d-\d\dT.*Z\n\Z"))
    expect(["stats"], 0, out=re.compile(r"^revision   3\nvariables  3$"))

    # watchers: JSON of everything, and the human format of one variable
    wj = Watcher("*", "--json", "--initial", "--no-reconnect")
    initial = sorted((wj.next_json("initial"), wj.next_json("initial"), wj.next_json("initial")),
                     key=lambda e: e.get("name", ""))
    event_is(initial[0], "initial max_tokens", kind="initial", name="max_tokens", type="integer", old=None, new=1024,
             version=1, revision=3, source=None, meta={}, coalesced=0)
    event_is(initial[1], "initial model", kind="initial", name="model", type="choice", new="gpt-4", version=1)
    event_is(initial[2], "initial temperature", kind="initial", name="temperature", type="float", new=0.7)
    wh = Watcher("temperature", "--initial")
    line = wh.next("initial temperature (human)")
    check(line is not None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z initial temperature - -> 0\.7 "
                                            r"version 1", line), "human initial line", repr(line))

    # the daemon logs each client that connects and disconnects
    wait_for(lambda: re.search(r"client pid \d+ uid \d+ disconnected: ", d.text()), "a disconnect in the log")
    check(re.search(r"debug: client pid \d+ uid \d+ connected\n", d.text()), "the log has a line per connect", d.text())
    check(re.search(r"debug: client pid \d+ uid \d+ disconnected: .+\n", d.text()),
          "the log has a line per disconnect, with the reason", d.text())

    # a change from another process
    expect(["set", "temperature", "0.9", "--source", "cli"], 0, out="")
    ev = wj.next_json("set temperature")
    event_is(ev, "changed temperature", kind="changed", name="temperature", type="float", old=0.7, new=0.9, version=2,
             revision=4, source="cli", meta={}, coalesced=1)
    check(isinstance(ev.get("timestamp_ns"), int) and abs(ev["timestamp_ns"] / 1e9 - time.time()) < 60,
          "timestamp_ns is now, in nanoseconds", repr(ev))
    line = wh.next("set temperature (human)")
    check(line is not None and re.fullmatch(r"\S+Z changed temperature 0\.7 -> 0\.9 version 2 source cli", line),
          "human changed line", repr(line))

    # rejected values: exit 1, the sentence, no event
    expect(["set", "temperature", "3"], 1, err="temperature: 3 is above the maximum 2")
    expect(["set", "temperature", "warm"], 1, err='temperature: "warm" is not a number')
    expect(["set", "max_tokens", "1.5"], 1, err="max_tokens")
    expect(["set", "model", "gpt-5"], 1, err="model: ")
    expect(["set", "nosuch", "1"], 1, err="nosuch")
    expect(["set", "temperature", "1.5", "--if-version", "1"], 1, err="temperature")
    expect(["set-many", "model=gemini", "max_tokens=99999"], 1, err="max_tokens")
    expect(["get", "model", "max_tokens"], 0, out="gpt-4\n1024\n", what="a refused set-many changed nothing")
    expect(["define", "temperature", "integer", "1"], 1, err="temperature")
    expect(["define", "x.bad", "integer", "5", "--max", "4"], 1, err="x.bad")
    expect(["undefine", "nosuch"], 1, err="nosuch")

    # set --if-version at the right version; set-many: one revision
    expect(["set", "max_tokens", "2048", "--if-version", "1"], 0)
    event_is(wj.next_json("set --if-version"), "set --if-version", name="max_tokens", old=1024, new=2048, version=2,
             revision=5)
    expect(["set-many", "model=claude-3", "temperature=1", "--source", "batch"], 0)
    a, b = wj.next_json("set-many"), wj.next_json("set-many")
    event_is(a, "set-many model", kind="changed", name="model", old="gpt-4", new="claude-3", revision=6,
             source="batch")
    event_is(b, "set-many temperature", kind="changed", name="temperature", old=0.9, new=1.0, revision=6,
             source="batch")
    line = wh.next("set-many temperature (human)")
    check(line is not None and line.endswith(" changed temperature 0.9 -> 1.0 version 3 source batch"),
          "human set-many line", repr(line))

    # define and undefine, seen by the '*' watch
    expect(["define", "greeting", "string", "hello\tworld", "--max-length", "20", "--description", "Hi"], 0)
    event_is(wj.next_json("define"), "defined greeting", kind="defined", name="greeting", type="string", old=None,
             new="hello\tworld", version=1, revision=7)
    expect(["set", "greeting", 'say "hi"\\'], 0)
    event_is(wj.next_json("set greeting"), "greeting escaped", new='say "hi"\\', old="hello\tworld")
    expect(["undefine", "greeting"], 0)
    event_is(wj.next_json("undefine"), "deleted greeting", kind="deleted", name="greeting", new=None, revision=9)
    # variables the schema does not know, to be kept by the snapshot
    expect(["define", "extra.flag", "boolean", "yes"], 0)
    expect(["define", "extra.mode", "choice", "slow", "--choices", "slow, fast"], 0)
    expect(["set", "extra.mode", "fast"], 0)
    expect(["define", "extra.neg", "integer", "-5"], 0)
    expect(["set", "extra.neg", "-9"], 0, what="a negative value needs no --")
    for what in ("extra.flag", "extra.mode", "extra.mode set", "extra.neg", "extra.neg set"):
        wj.next_json(what)
    wj.no_more_lines()
    wh.no_more_lines()

    # tokens
    expect(["get", "model"], 3, token="wrong", err="refused")
    expect(["get", "model"], 3, token="", what="rstate without a token", err="")
    expect(["get", "model"], 0, token=RO, out="claude-3\n", what="a read-only token reads")
    expect(["set", "model", "gemini"], 1, token=RO, what="a read-only token cannot write", err="")
    expect(["get", "model"], 0, out="claude-3\n", what="the read-only set changed nothing")
    # no daemon there, usage errors
    r = rstate("get", "model", env={"RSTATE_URI": "unix:" + os.path.join(WORK, "none.sock")})
    check(r.code == 3 and "cannot connect" in r.err, "a missing daemon: exit 3", repr(r))
    expect(["set", "model"], 2, err="missing arguments")

    # SIGTERM: exit 0, snapshot written; the --no-reconnect watcher told the connection ended,
    # the other one keeps watching (below)
    code = d.stop(signal.SIGTERM)
    check(code == 0, "rstated exits 0 on SIGTERM", f"exit {code}\n{d.text()}")
    check("SIGTERM received" in d.text() and "snapshot written" in d.text(), "the log tells the shutdown", d.text())
    try:
        code = wj.p.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        code = wj.stop()
    err = wj.p.stderr.read()
    check(code == 3 and "connection" in err and "lost" in err, "the --no-reconnect watcher exits 3 when the daemon stops",
          f"exit {code}, stderr {err!r}")
    check(wh.p.poll() is None, "a watcher keeps running while the daemon is down", f"exit {wh.p.poll()}")
    with open(snap) as f:
        text = f.read()
    body = [l.split("\t") for l in text.splitlines() if not l.startswith("#")]
    check(text.startswith("# reactivestate snapshot 2\n") and [(b[0], b[1], b[2], b[4]) for b in body] == [
        ("extra.flag", "boolean", "1", "true"), ("extra.mode", "choice", "2", "fast"),
        ("extra.neg", "integer", "2", "-9"), ("max_tokens", "integer", "2", "2048"),
        ("model", "choice", "2", "claude-3"), ("temperature", "float", "3", "1.0")],
        "the snapshot holds every value and version", text)
    check(re.search(r"\n# end: 6 variables, crc32 [0-9a-f]{8}\n\Z", text), "the snapshot ends with its end record", text)
    check(oct(os.stat(snap).st_mode & 0o777) == "0o600", "the snapshot is private")
    check(sorted(os.listdir(WORK)) == sorted(["models.ini", "ro.token", "rw.token", "state.snap", "state.snap.lock"] +
                                             [n for n in os.listdir(WORK) if n.startswith("rstated-")]),
          "no temporary file and no socket left", repr(os.listdir(WORK)))
    whole = open(snap, "rb").read()

    # a snapshot cut short, or altered, is refused with its file and line, and left as it is
    for what, damaged in (("cut", whole[:len(whole) // 2]), ("cut before its end record", whole[:whole.rindex(b"# end")]),
                          ("altered", whole.replace(b"2048", b"2049"))):
        with open(snap, "wb") as f:
            f.write(damaged)
        p = subprocess.run(tool("rstated") + ["--listen", URI, "--schema", schema, "--snapshot", snap],
                           capture_output=True, text=True, env=ENV, timeout=TIMEOUT)
        check(p.returncode == 1 and re.search(r"snapshot not restored: " + re.escape(snap) + r":\d+: ", p.stderr)
              and "move it away to start from the schema" in p.stderr,
              f"rstated refuses a snapshot {what}: exit 1, the file and line, what to do", repr(p))
        check(open(snap, "rb").read() == damaged, f"a snapshot {what} is left as it was")
    with open(snap, "wb") as f:
        f.write(whole)
    # a write killed half-way left its temporary file: the next start removes it
    with open(os.path.join(WORK, ".state.snap.Xy12Ab"), "w") as f:
        f.write("# reactivestate snapshot 2\nhalf")

    # restart: the snapshot restores values, versions, the revision, and the variables it alone knew
    d = Daemon("--schema", schema, "--snapshot", snap, "--snapshot-every", "1", "--token-file",
               os.path.join(WORK, "rw.token"))
    check("3 values set, 3 variables defined from it, at revision 14" in d.text(), "the restart restores the snapshot",
          d.text())
    check("1 partial snapshot file removed" in d.text() and not os.path.exists(os.path.join(WORK, ".state.snap.Xy12Ab")),
          "a partial snapshot file is removed at start", d.text())
    expect(["info", "temperature"], 0, out=re.compile(r"^version   3\n"), what="a restart keeps versions")
    expect(["stats"], 0, out=re.compile(r"^revision   14\n"), what="a restart keeps the revision")
    # one snapshot, one daemon: a second one is refused, naming the first's pid
    p = subprocess.run(tool("rstated") + ["--listen", "unix:" + os.path.join(WORK, "second.sock"), "--snapshot", snap],
                       capture_output=True, text=True, env=ENV, timeout=TIMEOUT)
    check(p.returncode == 1 and f"{snap}: in use by another rstated, pid {d.p.pid}" in p.stderr,
          "a second rstated on the same snapshot is refused, naming the first's pid", repr(p))
    check(open(snap, "rb").read() == whole, "the refused daemon left the snapshot as it was")
    expect(["get", "model", "temperature", "max_tokens", "extra.flag", "extra.mode", "extra.neg"], 0,
           out="claude-3\n1.0\n2048\ntrue\nfast\n-9\n")
    expect(["set", "extra.mode", "slow"], 1, err="extra.mode", what="a restored choice has its value as only choice")
    expect(["set", "max_tokens", "99999"], 1, err="max_tokens", what="schema constraints still hold after a restart")
    # the watcher started before the restart goes on: a change made now reaches it, as "changed" when it
    # had reconnected before the set, else as "resync" (the restarted daemon has no history to replay);
    # resync lines of variables the restart changed may come first
    expect(["set", "temperature", "0.375"], 0)
    line = wh.next("temperature after the restart (human)")
    while line is not None and " resync temperature " in line and not line.split(" version ")[0].endswith("-> 0.375"):
        line = wh.next("temperature after the restart (human)")
    check(line is not None and re.fullmatch(r"\S+Z (changed|resync) temperature \S+ -> 0\.375 version \d+( .*)?", line),
          "a watcher sees a change made after the daemon restarted", repr(line))
    code = wh.stop()
    err = wh.p.stderr.read()
    check(code == 0 and f"the connection to {URI} was lost; reconnecting" in err and f"connected again to {URI}" in err,
          "the watcher told of the loss and the reconnect on stderr, and exits 0 on SIGINT", f"exit {code}, stderr {err!r}")
    # a watcher whose reader goes away (rstate watch ... | head -1) ends quietly with status 0
    p = subprocess.Popen(tool("rstate") + ["watch", "temperature", "--initial"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV)
    first = p.stdout.readline()
    p.stdout.close()
    expect(["set", "temperature", "0.125"], 0)
    try:
        code = p.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        code = p.wait()
    err = p.stderr.read()
    check(" initial temperature " in first and code == 0 and err == "", "a watcher exits 0 when its reader leaves",
          f"first line {first!r}, exit {code}, stderr {err!r}")
    expect(["info", "temperature"], 0, out=re.compile(r"^version   5\nrevision  16\n"),
           what="sets after a restart continue the versions and the revision (3 and 14 restored, two sets)")
    # periodic snapshot, then SIGINT
    expect(["set", "temperature", "0.25"], 0)
    wait_for(lambda: "\tfloat\t6\t" in open(snap).read() and "\t0.25\n" in open(snap).read(), "the periodic snapshot")
    expect(["set", "temperature", "0.5"], 0)
    code = d.stop(signal.SIGINT)
    check(code == 0, "rstated exits 0 on SIGINT", f"exit {code}\n{d.text()}")
    check(re.search(r"\ntemperature\tfloat\t7\t\d+\t0\.5\n", open(snap).read()), "SIGINT writes the snapshot")

    # SIGHUP reopens the log file and the daemon goes on; every other signal sent to end it writes the snapshot
    log = os.path.join(WORK, "daemon.log")
    d = Daemon("--snapshot", snap, "--log-file", log)
    check(d.log.tell() == 0 and open(d.log_path).read() == "", "with --log-file nothing goes to standard error")
    os.rename(log, log + ".1")
    d.p.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(log) and "SIGHUP received: log file" in open(log).read(), "a new log file")
    expect(["set", "temperature", "0.75"], 0, what="the daemon serves after SIGHUP")
    check(d.p.poll() is None, "SIGHUP does not end the daemon")
    check("listening on" in open(log + ".1").read() and "listening on" not in open(log).read(),
          "the old log keeps the old lines, the new one the new lines")
    for sig in (signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        if sig != signal.SIGQUIT:
            log = os.path.join(WORK, f"daemon-{sig.name}.log")
            d = Daemon("--snapshot", snap, "--log-file", log)
        value = {signal.SIGQUIT: "0.0625", signal.SIGUSR1: "0.125", signal.SIGUSR2: "0.25", signal.SIGALRM: "0.5"}[sig]
        expect(["set", "temperature", value], 0)
        code = d.stop(sig)
        check(code == 0 and f"\t{value}\n" in open(snap).read() and f"{sig.name} received: shutting down"
              in open(log).read(), f"{sig.name} writes the snapshot and exits 0", f"exit {code}: {open(log).read()}")

    # a token file that others can read is accepted with a warning
    os.chmod(os.path.join(WORK, "rw.token"), 0o644)
    d = Daemon("--token-file", os.path.join(WORK, "rw.token"), "--log-level", "warn")
    check("can be read by other users" in d.text(), "a readable token file is warned about", d.text())
    check(d.stop() == 0, "rstated without a snapshot exits 0")

    # --max-clients (with --heartbeat-ms and --history passed through)
    d = Daemon("--max-clients", "1", "--heartbeat-ms", "200", "--history", "10")
    del ENV["RSTATE_TOKEN"]
    expect(["define", "n", "integer", "1"], 0)
    w = Watcher("n", "--initial")
    line = w.next("initial n")
    check(line is not None and line.endswith(" initial n - -> 1 version 1"), "the one client's watch", repr(line))
    # the server refuses the client with its sentence, even when its close beats the client's HELLO
    expect(["get", "n"], 3, err="the server has reached its limit of 1 clients",
           what="a second client over --max-clients")
    # 40 at once (8 under a slow TOOL_RUNNER): every one sees the limit's sentence, none "Broken pipe"
    n = 8 if RUNNER else 40
    ps = [subprocess.Popen(tool("rstate") + ["get", "n"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=ENV) for _ in range(n)]
    outs = []
    for p in ps:
        try:
            outs.append(p.communicate(timeout=TIMEOUT * 2) + (p.returncode,))
        except subprocess.TimeoutExpired:
            p.kill()
            outs.append(p.communicate() + ("still running",))
    bad = [o for o in outs if o[2] != 3 or "the server has reached its limit of 1 clients" not in o[1]]
    check(not bad, f"{n} clients at once over --max-clients: {len(bad)} did not see the limit's sentence",
          repr(bad[:3]))
    check(w.stop() == 0, "the watcher exits 0 on SIGINT")
    wait_for(lambda: rstate("get", "n").code == 0, "the server to free the client's place")
    check(d.stop() == 0, "rstated exits 0")

    # --data: a durable file: store; what was acknowledged survives kill -9
    data = os.path.join(WORK, "data")
    for sync in ("always", "interval", "none"):
        d = Daemon("--data", data, "--sync", sync, "--schema", schema)
        check(f"store file:{data} opened" in d.text(), f"--data {sync}: the log names the store", d.text())
        expect(["set", "temperature", {"always": "0.1", "interval": "0.2", "none": "0.3"}[sync]], 0)
        expect(["set-many", "model=claude-3", "max_tokens=77"], 0)
        d.stop(signal.SIGKILL)
    d = Daemon("--data", data, "--schema", schema, "--keep-versions", "5")
    check("changes kept" in d.text(), "the restarted daemon reopens the store", d.text())
    expect(["get", "temperature", "model", "max_tokens"], 0, out="0.3\nclaude-3\n77\n",
           what="every acknowledged change survives kill -9")
    check(d.stop() == 0, "rstated --data exits 0 on SIGTERM")
    d = Daemon("--data", data)
    expect(["get", "temperature"], 0, out="0.3\n", what="--data without a schema keeps the definitions")
    check(d.stop() == 0, "rstated --data exits 0")
    # one daemon per directory
    d = Daemon("--data", data)
    p2 = subprocess.run(tool("rstated") + ["--listen", "unix:" + os.path.join(WORK, "other.sock"), "--data", data],
                        capture_output=True, text=True, env=ENV, timeout=TIMEOUT)
    check(p2.returncode == 1 and f"process {d.p.pid}" in p2.stderr, "a second rstated on the same --data is refused",
          p2.stderr)
    check(d.stop() == 0, "rstated --data exits 0")

    # history and rollback through the daemon (protocol version 2)
    d = Daemon("--data", data, "--keep-versions", "5")
    expect(["set", "max_tokens", "100", "--source", "it"], 0)
    expect(["set", "max_tokens", "200"], 0)
    r = expect(["history", "max_tokens"], 0, what="rstate history through rstated --data")
    lines = r.out.splitlines()
    check(len(lines) >= 3 and " 100 " in lines[-2] and lines[-2].endswith("source it") and " 200 " in lines[-1],
          "history: oldest first, the current one last, with its source", r.out)
    r = expect(["history", "max_tokens", "--json"], 0)
    last = json.loads(r.out.splitlines()[-1]) if r.out.strip() else {}
    check(last.get("value") == 200, "history --json: the current value last", r.out)
    v100 = last.get("version", 0) - 1
    expect(["rollback", "max_tokens", str(v100), "--source", "undo"], 0, what="rstate rollback through rstated --data")
    expect(["get", "max_tokens"], 0, out="100\n", what="rolled back through the daemon")
    expect(["rollback", "max_tokens", "99999"], 1, err="above the current version")
    check(d.stop() == 0, "rstated --data exits 0")

    # without XDG_RUNTIME_DIR: the fallback directory, made private, and refused when it is not
    tmp = os.path.join(WORK, "tmp")
    os.mkdir(tmp)
    env = {k: v for k, v in ENV.items() if k not in ("XDG_RUNTIME_DIR", "RSTATE_URI", "RSTATE_TOKEN")}
    env["TMPDIR"] = tmp
    fallback = os.path.join(tmp, f"reactivestate-{os.getuid()}")
    log_path = os.path.join(WORK, "fallback.log")
    with open(log_path, "w") as log:
        p = subprocess.Popen(tool("rstated"), stdout=log, stderr=log, env=env)
    wait_for(lambda: p.poll() is not None or "listening on" in open(log_path).read(), "rstated on the fallback socket")
    check(f"listening on unix:{fallback}/reactivestate.sock" in open(log_path).read(),
          "rstated listens in the fallback directory", open(log_path).read())
    check(oct(os.stat(fallback).st_mode & 0o777) == "0o700", "the fallback directory is private")
    r = subprocess.run(tool("rstate") + ["stats"], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    check(r.returncode == 0, "rstate finds rstated in the fallback directory", repr(Result(r)))
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=TIMEOUT) == 0, "rstated on the fallback socket stops")
    os.chmod(fallback, 0o755)
    r = subprocess.run(tool("rstated"), capture_output=True, text=True, env=env, timeout=TIMEOUT)
    check(r.returncode == 1 and "other users may enter the socket directory (mode 755): refused" in r.stderr,
          "rstated refuses a fallback directory others may enter", repr(Result(r)))
    if os.geteuid() == 0:
        os.chmod(fallback, 0o700)
        os.chown(fallback, 65534, 65534)
        r = subprocess.run(tool("rstated"), capture_output=True, text=True, env=env, timeout=TIMEOUT)
        check(r.returncode == 1 and "the socket directory belongs to uid 65534, not to this user (uid 0): refused"
              in r.stderr, "rstated refuses a fallback directory of another user", repr(Result(r)))

    # a daemon of another user: rstate sends it nothing, unless told to trust that uid (as root only)
    if os.geteuid() == 0:
        other = tempfile.mkdtemp(prefix="rstate-it-other-")  # outside WORK, which that user cannot enter
        os.chown(other, 65534, 65534)
        sock = os.path.join(other, "s.sock")

        def become_other():
            os.setgid(65534)
            os.setuid(65534)

        with open(os.path.join(WORK, "other.log"), "w") as log:
            p = subprocess.Popen(tool("rstated") + ["--listen", "unix:" + sock], stdout=log, stderr=log, env=ENV,
                                 preexec_fn=become_other)
        wait_for(lambda: p.poll() is not None or os.path.exists(sock), "rstated of another user")
        if p.poll() is not None:
            print("skipped: rstated cannot run as uid 65534 here", open(os.path.join(WORK, "other.log")).read())
        else:
            env = dict(ENV, RSTATE_URI="unix:" + sock)
            env.pop("RSTATE_TOKEN", None)
            r = subprocess.run(tool("rstate") + ["stats"], capture_output=True, text=True, env=env, timeout=TIMEOUT)
            check(r.returncode == 3 and "the server there runs as uid 65534" in r.stderr,
                  "rstate refuses a daemon of another user", repr(Result(r)))
            r = subprocess.run(tool("rstate") + ["stats", "--peer-uid", "65534"], capture_output=True, text=True,
                               env=env, timeout=TIMEOUT)
            check(r.returncode == 0, "rstate --peer-uid trusts that user", repr(Result(r)))
            r = subprocess.run(tool("rstate") + ["stats"], capture_output=True, text=True,
                               env=dict(env, RSTATE_PEER_UID="any"), timeout=TIMEOUT)
            check(r.returncode == 0, "RSTATE_PEER_UID=any trusts anyone", repr(Result(r)))
            p.send_signal(signal.SIGTERM)
            check(p.wait(timeout=TIMEOUT) == 0, "the other user's rstated stops")
        subprocess.run(["rm", "-rf", other])

    # --store redis:...: a store kept in Redis, served; changes made in Redis directly reach the daemon's
    # watchers, and the daemon's writes land in Redis (skipped without redis-server)
    if shutil.which("redis-server") and shutil.which("redis-cli"):
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            port = so.getsockname()[1]
        rdir = os.path.join(WORK, "redis")
        os.mkdir(rdir)
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", rdir], stdout=subprocess.DEVNULL)
        try:
            wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                                            text=True).stdout.strip() == "PONG", "redis-server to answer")
            store = f"redis:127.0.0.1:{port}/daemon"
            d = Daemon("--store", store, "--schema", schema)
            expect(["get", "temperature"], 0, out="0.7\n", what="--store redis: serves the schema's variables")
            w = Watcher("temperature", "--json", "--initial")
            event_is(w.next_json("initial"), "initial temperature, from Redis", kind="initial", new=0.7)
            expect(["--connect", store, "set", "temperature", "1.5"], 0, what="a write straight into Redis")
            event_is(w.next_json("a change made in Redis"), "made in Redis, through the daemon",
                     kind="changed", name="temperature", new=1.5)
            expect(["set", "temperature", "0.25"], 0, what="a write through the daemon")
            event_is(w.next_json("the daemon's own write"), "written through the daemon",
                     kind="changed", name="temperature", new=0.25)
            expect(["--connect", store, "get", "temperature"], 0, out="0.25\n",
                   what="the daemon's write is in Redis")
            expect(["set", "temperature", "9"], 1, what="the daemon checks values as any redis: client does")
            check(w.stop() == 0, "the watcher exits 0 on SIGINT")
            check(d.stop() == 0, "rstated --store exits 0 on SIGTERM")
        finally:
            redis.kill()
            redis.wait()
    expect_usage = subprocess.run(tool("rstated") + ["--store", "mem:", "--data", WORK], capture_output=True,
                                  text=True, env=ENV, timeout=TIMEOUT)
    check(expect_usage.returncode == 2 and "--store and --data do not go together" in expect_usage.stderr,
          "--store and --data are refused together", expect_usage.stderr)

    print(f"tools integration: {passed} passed, {len(failures)} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    code = 1
    try:
        code = main()
    finally:
        if "WORK" in globals():
            subprocess.run(["rm", "-rf", WORK])
    sys.exit(code)
