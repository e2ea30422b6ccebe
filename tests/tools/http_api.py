#!/usr/bin/env python3
"""http_api.py — rstated --http driven with curl, row by row of API.md's
"rstated over HTTP" table: every answer, every error object, tokens (header
and ?token=, 401 and 403), the SSE watch (fields equal to `rstate watch
--json`, resume by Last-Event-ID and ?after=, RESYNC when the history is
gone, heartbeats), the limits (body, headers), and a stream that survives
10,000 changes, read by a slow client, with nothing lost (every change
counted by `coalesced`). Nothing sleeps blindly: every wait polls with a
deadline.

Usage: http_api.py BINDIR      (run by `make http-check`, part of `make check`)
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import (Daemon, Stream, RawStream, check, curl, wait_for, finish, TIMEOUT, RUNNER)  # noqa: E402

BINDIR = sys.argv[1] if len(sys.argv) > 1 else "build/tools"
U64 = ("version", "revision", "updated_ns", "timestamp_ns")


def is_u64_string(v):
    return isinstance(v, str) and re.fullmatch(r"-?\d+", v) is not None


def error_is(a, status, code, message_part, what):
    j = a.json() or {}
    check(a.status == status and j.get("error") == code and message_part in j.get("message", "")
          and a.headers.get("content-type", "").startswith("application/json"),
          what, repr(a))


def test_reads(d):
    a = curl(d, "GET", "/v1/vars")
    j = a.json() or {}
    check(a.status == 200 and set(j) == {"model", "temperature", "max_tokens", "verbose", "greeting",
                                         "app.retries", "app.strategy"}, "GET /v1/vars lists every variable", repr(a))
    t = j.get("temperature", {})
    check(set(t) == {"type", "value", "version", "revision", "updated_ns"} and t["type"] == "float"
          and t["value"] == 0.7 and t["version"] == "1" and all(is_u64_string(t[k]) for k in ("revision", "updated_ns")),
          "GET /v1/vars: type, value, and 64-bit numbers as strings", repr(t))
    a = curl(d, "GET", "/v1/vars?prefix=app.")
    check(a.status == 200 and set(a.json() or {}) == {"app.retries", "app.strategy"}, "GET /v1/vars?prefix=", repr(a))
    a = curl(d, "GET", "/v1/vars/model")
    j = a.json() or {}
    check(a.status == 200 and j.get("name") == "model" and j.get("type") == "choice" and j.get("value") == "gpt-4"
          and j.get("description") == "Which model answers" and j.get("version") == "1"
          and all(is_u64_string(j.get(k)) for k in ("version", "revision", "updated_ns")),
          "GET /v1/vars/NAME: every field", repr(a))
    check(j.get("constraints", {}).get("choices") == ["gpt-4", "claude-3", "gemini"],
          "GET /v1/vars/NAME: the schema's choices", repr(j))
    check((curl(d, "GET", "/v1/vars/greeting").json() or {}).get("description", 0) is None,
          "GET /v1/vars/NAME: description null when none")
    error_is(curl(d, "GET", "/v1/vars/nope"), 404, "RSTATE_ENOTFOUND", "nope", "GET unknown variable: 404")
    a = curl(d, "GET", "/healthz")
    check(a.status == 200 and a.body == "ok\n", "GET /healthz: 200 ok", repr(a))
    a = curl(d, "GET", "/")
    check(a.status == 200 and a.headers.get("content-type", "").startswith("text/html") and "<!doctype html>" in a.body
          and "EventSource" in a.body and "http://" not in a.body.split("<script>")[1] and "https://" not in a.body,
          "GET /: the live page, self-contained", repr(a)[:200])
    error_is(curl(d, "GET", "/v2/nothing"), 404, "RSTATE_ENOTFOUND", "/v2/nothing", "unknown path: 404")
    error_is(curl(d, "DELETE", "/v1/vars/model"), 405, "RSTATE_EINVAL", "DELETE", "wrong method: 405")
    h = curl(d, "GET", "/v1/history/temperature")
    if h.status == 501:
        error_is(h, 501, "RSTATE_ENOTSUP", "history", "GET /v1/history: 501 while the store keeps no history")
    else:
        check(h.status == 200 and isinstance(h.json(), list), "GET /v1/history: an array", repr(h))
    error_is(curl(d, "GET", "/v1/history/nope"), 404 if h.status == 200 else 501,
             "RSTATE_ENOTFOUND" if h.status == 200 else "RSTATE_ENOTSUP", "", "GET /v1/history of an unknown variable")


def test_writes(d):
    a = curl(d, "PUT", "/v1/vars/temperature", "1.25")
    j = a.json() or {}
    check(a.status == 200 and set(j) == {"version", "revision"} and j["version"] == "2" and is_u64_string(j["revision"]),
          "PUT: 200 {version, revision}", repr(a))
    r = d.rstate("get", "temperature")
    check(r.stdout.strip() == "1.25", "PUT reaches the store (seen through the socket)", repr(r))
    check(curl(d, "PUT", "/v1/vars/max_tokens", "2048").status == 200, "PUT an integer")
    check(curl(d, "PUT", "/v1/vars/max_tokens", "100.0").status == 200, "PUT an integral float to an integer")
    check(curl(d, "PUT", "/v1/vars/verbose", "true").status == 200, "PUT a boolean")
    check(curl(d, "PUT", "/v1/vars/greeting", '"h\\u00e9llo \\ud83d\\ude00 \\"q\\""').status == 200, "PUT a string with escapes")
    check(d.rstate("get", "greeting").stdout == 'hélo 😀 "q"\n'.replace("hélo", "héllo"), "escapes decoded",
          repr(d.rstate("get", "greeting").stdout))
    check(curl(d, "PUT", "/v1/vars/app.strategy", '"Strategies.Optimized"').status == 200, "PUT a module")
    error_is(curl(d, "PUT", "/v1/vars/nope", "1"), 404, "RSTATE_ENOTFOUND", "nope", "PUT unknown: 404")
    error_is(curl(d, "PUT", "/v1/vars/temperature", "5"), 422, "RSTATE_ECONSTRAINT",
             "temperature: 5 is above the maximum 2", "PUT above max: 422 with the library's sentence")
    error_is(curl(d, "PUT", "/v1/vars/temperature", '"hot"'), 422, "RSTATE_ETYPE", "temperature", "PUT wrong type: 422")
    error_is(curl(d, "PUT", "/v1/vars/model", '"llama"'), 422, "RSTATE_ECONSTRAINT", "choices", "PUT not a choice: 422")
    error_is(curl(d, "PUT", "/v1/vars/max_tokens", "1.5"), 422, "RSTATE_ETYPE", "max_tokens", "PUT 1.5 to an integer: 422")
    for body, what in (("", "empty"), ("{", "unclosed object"), ("1 2", "two values"), ('"abc', "unclosed string"),
                       ("tru", "bad word"), ("01", "leading zero"), ("[" * 100, "deep nesting"),
                       ('"\\x"', "bad escape"), ('"\\ud800"', "lone surrogate")):
        error_is(curl(d, "PUT", "/v1/vars/greeting", body), 400, "RSTATE_EINVAL", "greeting: body:",
                 f"PUT malformed JSON ({what}): 400")
    for body, what in (("null", "null"), ("[1]", "array"), ('{"a":1}', "object"), ('"a\\u0000b"', "NUL")):
        error_is(curl(d, "PUT", "/v1/vars/greeting", body), 422, "RSTATE_ETYPE", "greeting", f"PUT {what}: 422")
    v = (curl(d, "GET", "/v1/vars/temperature").json() or {}).get("version")
    check(v == "2", "refused PUTs changed nothing", repr(v))
    a = curl(d, "PUT", "/v1/vars/temperature", "1.5", headers=['If-Match: "2"'])
    check(a.status == 200 and (a.json() or {}).get("version") == "3", "PUT with If-Match of the version: 200", repr(a))
    error_is(curl(d, "PUT", "/v1/vars/temperature", "1.7", headers=['If-Match: "2"']), 409, "RSTATE_ECONFLICT",
             "temperature", "PUT with a stale If-Match: 409")
    error_is(curl(d, "PUT", "/v1/vars/temperature", "1.7", headers=["If-Match: abc"]), 400, "RSTATE_EINVAL",
             "If-Match", "PUT with a malformed If-Match: 400")
    # set-many
    a = curl(d, "POST", "/v1/set-many", '{"temperature": 0.5, "max_tokens": 512, "model": "gemini"}')
    j = a.json() or {}
    check(a.status == 200 and set(j) == {"revision"} and is_u64_string(j["revision"]), "POST /v1/set-many: 200 {revision}",
          repr(a))
    w = [(curl(d, "GET", "/v1/vars/" + n).json() or {}).get("revision") for n in ("temperature", "max_tokens", "model")]
    check(len(set(w)) == 1 and w[0] == j.get("revision"), "set-many: one revision for all", repr(w))
    before = curl(d, "GET", "/v1/vars").json()
    a = curl(d, "POST", "/v1/set-many", '{"temperature": 0.9, "max_tokens": 99999}')
    error_is(a, 422, "RSTATE_ECONSTRAINT", "max_tokens", "set-many: 422 names the item")
    check((a.json() or {}).get("name") == "max_tokens", "set-many: the item's name", repr(a))
    check(curl(d, "GET", "/v1/vars").json() == before, "set-many: all or nothing")
    error_is(curl(d, "POST", "/v1/set-many", '{"temperature": [1]}'), 422, "RSTATE_ETYPE", "temperature",
             "set-many: an array value: 422 naming it")
    error_is(curl(d, "POST", "/v1/set-many", '{"temperature": 1,'), 400, "RSTATE_EINVAL", "body:",
             "set-many: malformed JSON: 400")
    error_is(curl(d, "POST", "/v1/set-many", '[1]'), 422, "RSTATE_ETYPE", "object", "set-many: not an object: 422")
    error_is(curl(d, "POST", "/v1/set-many", '{"temperature": 1, "temperature": 2}'), 422, "RSTATE_EINVAL",
             "temperature", "set-many: a name twice: 422")
    check(curl(d, "GET", "/v1/vars").json() == before, "refused set-many changed nothing")


def test_limits(bindir):
    d = Daemon(bindir, "--http-max-body", "64", "--http-max-header", "2048", "--http-max-connections", "4",
               "--http-idle-timeout", "1", "--http-nice", "3")
    check("body 64 bytes, headers 2048 bytes, 4 connections, idle timeout 1 s" in d.text() and "threads niced" in d.text(),
          "the limits are logged", d.text())
    error_is(curl(d, "PUT", "/v1/vars/greeting", '"' + "x" * 100 + '"'), 413, "RSTATE_ELIMIT", "64 bytes",
             "a body over --http-max-body: 413")
    check("refused: the request body is over the limit" in d.text(), "the body limit is logged when it bites")
    check(curl(d, "PUT", "/v1/vars/greeting", '"short"').status == 200, "a body under the limit passes")
    a = curl(d, "GET", "/v1/vars", headers=["X-Big: " + "y" * 8000])
    check(a.status in (413, 431), "headers over --http-max-header: refused", repr(a))
    # more connections than allowed: the extra ones wait, the limit is logged
    import socket
    socks = [socket.create_connection((d.host, d.port)) for _ in range(6)]
    wait_for(lambda: "4 connections open, the limit (--http-max-connections)" in d.text(),
             "the connection limit to be logged")
    for s in socks:
        s.close()
    wait_for(lambda: "below the connection limit again" in d.text(), "leaving the limit to be logged")
    # idle timeout: an idle connection is closed by the daemon
    s = socket.create_connection((d.host, d.port))
    s.settimeout(TIMEOUT)
    t0 = time.monotonic()
    closed = s.recv(10) == b""
    check(closed and time.monotonic() - t0 < 5, "an idle connection is closed after --http-idle-timeout")
    s.close()
    wait_for(lambda: curl(d, "GET", "/healthz").status == 200, "the daemon to serve again after the limits")
    check(d.stop() == 0, "rstated exits 0 after the limits")


def test_tokens(bindir):
    import tempfile
    work = tempfile.mkdtemp()
    tf, rf = os.path.join(work, "t"), os.path.join(work, "r")
    for p, t in ((tf, "s3cret"), (rf, "reader")):
        with open(p, "w") as f:
            f.write(t + "\n")
        os.chmod(p, 0o600)
    d = Daemon(bindir, "--token-file", tf, "--read-token-file", rf)
    error_is(curl(d, "GET", "/v1/vars"), 401, "RSTATE_EPERM", "token", "no token: 401")
    check(curl(d, "GET", "/v1/vars").headers.get("www-authenticate", "").startswith("Bearer"),
          "401 says Bearer in WWW-Authenticate")
    error_is(curl(d, "GET", "/v1/vars", headers=["Authorization: Bearer wrong"]), 401, "RSTATE_EPERM", "refused",
             "a wrong token: 401")
    error_is(curl(d, "GET", "/v1/vars?token=wrong"), 401, "RSTATE_EPERM", "refused", "a wrong ?token=: 401")
    check(curl(d, "GET", "/v1/vars", headers=["Authorization: Bearer s3cret"]).status == 200, "Bearer token: 200")
    check(curl(d, "GET", "/v1/vars?token=s3cret").status == 200, "?token=: 200")
    check(curl(d, "GET", "/v1/vars/model", headers=["Authorization: Bearer reader"]).status == 200, "read token reads")
    error_is(curl(d, "PUT", "/v1/vars/temperature", "1", headers=["Authorization: Bearer reader"]), 403, "RSTATE_EPERM",
             "read-only", "read token writes: 403")
    error_is(curl(d, "POST", "/v1/set-many?token=reader", '{"temperature":1}'), 403, "RSTATE_EPERM", "read-only",
             "read token set-many: 403")
    check(curl(d, "PUT", "/v1/vars/temperature?token=s3cret", "1").status == 200, "the write token writes")
    error_is(curl(d, "GET", "/v1/watch"), 401, "RSTATE_EPERM", "token", "watch without a token: 401")
    error_is(curl(d, "GET", "/metrics"), 401, "RSTATE_EPERM", "token", "metrics without a token: 401")
    s = Stream(d, "?names=temperature&token=reader")
    wait_for(lambda: "watching" in "".join(s.comments), "the stream with ?token= to open")
    d.rstate("--token", "s3cret", "set", "temperature", "1.5")
    ev = s.next("a change, watched with the read token as ?token=")
    check(ev and ev["json"].get("new") == 1.5, "a stream with ?token= (EventSource's way)", repr(ev))
    s.stop()
    check(curl(d, "GET", "/healthz").status == 200 and curl(d, "GET", "/").status == 200,
          "/healthz and the page need no token (the page holds no data)")
    check(d.stop() == 0, "rstated exits 0 (tokens)")


def test_watch(d):
    cli = subprocess.Popen([os.path.join(BINDIR, "rstate"), "--connect", d.uri, "watch", "--json", "--initial",
                            "temperature", "model"], stdout=subprocess.PIPE, text=True)
    cli_initial = [json.loads(cli.stdout.readline()) for _ in range(2)]  # registered once these arrive
    s = Stream(d, "?names=temperature,model&initial=1")
    first = [s.next("INITIAL"), s.next("INITIAL")]
    check(all(e and e["json"].get("kind") == "initial" for e in first) and
          sorted(e["json"]["name"] for e in first if e) == ["model", "temperature"], "initial=1: an INITIAL per variable",
          repr(first))
    wait_for(lambda: "watching" in "".join(s.comments), "the stream's opening comment")
    want = {e["name"]: e for e in cli_initial}
    for e in first:
        if e:
            w = want.get(e["json"]["name"], {})
            check(all((str(w[k]) == e["json"][k]) if k in U64 and k != "revision" else
                      w[k] == e["json"][k] for k in w if k not in ("revision", "timestamp_ns")),
                  "INITIAL events equal rstate watch --json --initial's", f"{e['json']} vs {w}")
    d.rstate("set", "temperature", "0.25", "--source", "cli")
    ev = s.next("a socket change")
    line = json.loads(cli.stdout.readline())
    got = ev["json"] if ev else {}
    check(ev is not None and ev.get("id") == got.get("revision"), "id: is the revision", repr(ev))
    check(list(got) == list(line), "SSE data has the fields of rstate watch --json, in order", f"{got} vs {line}")
    same = all((str(line[k]) == got[k]) if k in U64 else line[k] == got[k] for k in line)
    check(same and all(is_u64_string(got[k]) for k in ("version", "revision", "timestamp_ns")),
          "SSE data equals rstate watch --json (64-bit numbers as strings)", f"{got} vs {line}")
    cli.terminate()
    last = int(got.get("revision", "0"))
    s.stop()
    # missed changes while away: Last-Event-ID and ?after=
    d.rstate("set", "temperature", "0.3")
    d.rstate("set", "model", "claude-3")
    d.rstate("set", "verbose", "false")
    d.rstate("set", "temperature", "0.4")
    for how, q, h in (("Last-Event-ID", "?names=temperature,model", [f"Last-Event-ID: {last}"]),
                      ("?after=", f"?names=temperature,model&after={last}", [])):
        r = Stream(d, q, headers=h)
        evs = [r.next(f"resumed ({how})") for _ in range(3)]
        got = [(e["json"]["kind"], e["json"]["name"], e["json"]["new"]) for e in evs if e]
        check(got == [("changed", "temperature", 0.3), ("changed", "model", "claude-3"), ("changed", "temperature", 0.4)],
              f"{how} resumes with exactly the missed changes", repr(got))
        check(any(c == f": resumed after revision {last}" for c in r.comments), f"{how}: the comment says resumed",
              repr(r.comments))
        r.stop()
    # heartbeats: comment lines at least every heartbeat (--heartbeat-ms 200)
    h = Stream(d, "?names=model")
    wait_for(lambda: sum(c.startswith(": heartbeat") for c in h.comments) >= 3, "three heartbeat comments", timeout=3)
    h.stop()
    error_is(curl(d, "GET", "/v1/watch?names=nope"), 404, "RSTATE_ENOTFOUND", "nope", "watch an unknown name: 404")
    error_is(curl(d, "GET", "/v1/watch?after=x"), 400, "RSTATE_EINVAL", "after", "watch ?after=x: 400")
    # a prefix watch sees DEFINED and DELETED
    p = Stream(d, "?names=app.*")
    wait_for(lambda: "watching" in "".join(p.comments), "the prefix stream to open")
    d.rstate("define", "app.new", "integer", "5")
    ev = p.next("DEFINED")
    check(ev and ev["json"].get("kind") == "defined" and ev["json"].get("name") == "app.new", "DEFINED on a prefix", repr(ev))
    d.rstate("undefine", "app.new")
    ev = p.next("DELETED")
    check(ev and ev["json"].get("kind") == "deleted" and ev["json"].get("new") is None, "DELETED on a prefix", repr(ev))
    p.stop()


def test_resync(bindir):
    d = Daemon(bindir, "--history", "16")
    s = Stream(d, "?names=temperature")
    wait_for(lambda: "watching" in "".join(s.comments), "the stream to open")
    d.rstate("set", "temperature", "0.1")
    ev = s.next("a change")
    last = ev["json"]["revision"] if ev else "0"
    s.stop()
    body = "".join(f'{{"max_tokens": {i + 2}}}\n' for i in range(40))
    conn = http.client.HTTPConnection(d.host, d.port, timeout=TIMEOUT)
    for i in range(40):
        conn.request("POST", "/v1/set-many", f'{{"max_tokens": {i + 2}}}')
        conn.getresponse().read()
    del body
    d.rstate("set", "temperature", "0.2")
    r = Stream(d, "?names=temperature,max_tokens", headers=[f"Last-Event-ID: {last}"])
    evs = [r.next("RESYNC"), r.next("RESYNC")]
    got = sorted((e["json"]["kind"], e["json"]["name"], e["json"]["new"]) for e in evs if e)
    check(got == [("resync", "max_tokens", 41), ("resync", "temperature", 0.2)],
          "history gone: RESYNC with the current values", repr(got))
    check(any("resync" in c for c in r.comments), "the opening comment says resync", repr(r.comments))
    r.stop()
    m = curl(d, "GET", "/metrics")
    check(m.status == 200 and m.headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
          "GET /metrics: Prometheus text", repr(m)[:200])
    d.rstate("set", "nope", "1")
    wait_for(lambda: 'rstated_requests_refused_total{transport="socket",code="RSTATE_ENOTFOUND"} 1' in
             curl(d, "GET", "/metrics").body, "the socket refusal in /metrics")
    m = curl(d, "GET", "/metrics")
    # a stream whose client left is noticed at its next write (a heartbeat at the latest)
    wait_for(lambda: "rstated_sse_streams 0\n" in curl(d, "GET", "/metrics").body, "the closed streams to be gone")
    m = curl(d, "GET", "/metrics")
    for name in ("rstated_changes_accepted_total 49\n",
                 'rstated_requests_refused_total{transport="socket",code="RSTATE_ENOTFOUND"} 1\n',
                 'rstated_requests_refused_total{transport="http",code="RSTATE_ECONSTRAINT"} 0\n',
                 'rstated_events_delivered_total{transport="socket"} ', 'rstated_events_delivered_total{transport="sse"} ',
                 'rstated_clients_connected{transport="socket"} ', 'rstated_clients_connected{transport="http"} ',
                 'rstated_events_coalesced_total{transport="socket"} 0\n',
                 'rstated_events_coalesced_total{transport="sse"} 0\n',
                 'rstated_history_events{transport="sse"} 16\n', 'rstated_history_events{transport="socket"} ',
                 'rstated_history_bytes{transport="sse"} ', 'rstated_history_bytes{transport="socket"} ',
                 "rstated_sse_streams 0\n", "rstated_variables 7\n",
                 'rstated_http_request_duration_seconds_bucket{route="set_many",le="+Inf"} 40\n'):
        check(name in m.body, f"/metrics has {name.strip()}", m.body[:4000])
    check(all(re.match(r"(#.*|[a-z_]+(\{[^}]*\})? [0-9.e+-]+)$", line) for line in m.body.splitlines()),
          "/metrics: every line a comment or a sample", m.body[:2000])
    check(d.stop() == 0, "rstated exits 0 (resync)")


def test_ten_thousand(bindir):
    """10,000 changes of a 1 KB string, read by a client that stops reading
    meanwhile (a 64 KiB receive buffer): the stream is folded, and the sum of
    coalesced over what it receives is exactly 10,000."""
    d = Daemon(bindir, "--history", "256")
    slow = RawStream(d, "?names=greeting")
    fast = Stream(d, "?names=greeting")
    check(slow.head.startswith("HTTP/1.0 200") or slow.head.startswith("HTTP/1.1 200"), "raw stream opens", slow.head)
    wait_for(lambda: "watching" in "".join(fast.comments), "the fast stream to open")
    N = 2000 if RUNNER else 10000  # under valgrind, fewer (the slow path is the same)
    conn = http.client.HTTPConnection(d.host, d.port, timeout=TIMEOUT)
    # more bytes than the kernel's socket buffers hold (a few MB), so the
    # stream must fold: 10 MB, or 8 MB in fewer, larger changes under valgrind
    pad = "x" * (3990 if RUNNER else 1000)
    t0 = time.monotonic()
    for i in range(N):
        conn.request("PUT", "/v1/vars/greeting", json.dumps(f"{i + 1:05d}{pad}"))
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            check(False, "the 10,000 PUTs succeed", f"{i}: {r.status}")
            break
    took = time.monotonic() - t0
    print(f"  {N} PUTs over one keep-alive connection: {took:.2f} s ({N / took:.0f}/s)", flush=True)
    final = f"{N:05d}{pad}"
    total, n_events, folded = 0, 0, 0
    evs = slow.events(lambda e: e.get("new") == final, timeout=60)
    for e in evs:
        total += e["coalesced"]
        n_events += 1
        folded += e["coalesced"] > 1
    check(total == N and evs and evs[-1]["new"] == final,
          f"slow stream: every change counted (sum of coalesced = {N}), the last value last",
          f"sum {total} over {n_events} events")
    check(folded > 0, "the slow stream was folded (coalesced > 1 seen)", f"{n_events} events")
    versions = [int(e["version"]) for e in evs]
    check(versions == sorted(versions) and len(set(versions)) == len(versions), "slow stream: versions increase")
    # the fast reader (curl -N) gets all of them, each once, in order
    seen, ok = 0, True
    while seen < N:
        ev = fast.next("a change on the fast stream")
        if not ev:
            ok = False
            break
        seen += ev["json"]["coalesced"]
        if ev["json"]["new"] == final:
            break
    check(ok and seen == N, f"curl -N stream: {N} changes, none lost", f"{seen}")
    m = curl(d, "GET", "/metrics").body
    c = re.search(r'rstated_events_coalesced_total\{transport="sse"\} (\d+)', m)
    check(c is not None and int(c.group(1)) >= N - n_events, "/metrics counts the coalesced changes",
          c.group(0) if c else m[:500])
    slow.close()
    fast.stop()
    check(d.stop() == 0, "rstated exits 0 with streams open")


def main():
    d = Daemon(BINDIR, "--heartbeat-ms", "200")
    test_reads(d)
    test_writes(d)
    test_watch(d)
    check(d.stop() == 0, "rstated exits 0")
    check("error" not in d.text().replace("rstated: error", "ERROR") or "rstated: error" not in d.text(),
          "no error logged", d.text())
    test_tokens(BINDIR)
    test_limits(BINDIR)
    test_resync(BINDIR)
    test_ten_thousand(BINDIR)
    finish("http_api.py")


if __name__ == "__main__":
    main()
