#!/usr/bin/env python3
"""browser.py — rstated's live page in a real headless browser (Debian's
chromium), driven over the DevTools protocol on --remote-debugging-pipe
with the standard library only.

Checks: the page loads, shows every variable (type, value, version) and
goes live; a change made through the socket shows within a second; edits in
the page (number field, select, switch) reach a socket watcher
(`rstate watch --json`); a refused value shows the library's sentence.

With --screenshot DIR, also feeds a few changes (for the sparklines and
the recent-changes lists) and writes DIR/live-page.png (laptop, 1280 wide)
and DIR/live-page-phone.png (390 wide): `make screenshot`.

Usage: browser.py BINDIR [--screenshot DIR]   (run by `make browser-check`)
"""
import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import Daemon, check, wait_for, finish, TIMEOUT  # noqa: E402

BINDIR = sys.argv[1] if len(sys.argv) > 1 else "build/tools"
SHOT = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Browser:
    """Headless chromium; CDP messages are NUL-terminated JSON on fds 3 (in)
    and 4 (out)."""

    def __init__(self, exe):
        self.profile = tempfile.mkdtemp(prefix="rstate-chromium-")
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def fds():
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        args = [exe, "--headless=new", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--user-data-dir={self.profile}", "about:blank"]
        # no sandbox: CI runs as root and in containers without user namespaces,
        # where chromium's sandbox cannot start; the page is our own, on loopback
        args.insert(1, "--no-sandbox")
        self.p = subprocess.Popen(args, preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self.next_id = 0
        self.answers = {}
        self.cond = threading.Condition()
        self.events = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self.from_r, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                msg, _, buf = buf.partition(b"\0")
                m = json.loads(msg)
                if "id" in m:
                    with self.cond:
                        self.answers[m["id"]] = m
                        self.cond.notify_all()
                else:
                    self.events.put(m)

    def call(self, method, session=False, **params):
        self.next_id += 1
        i = self.next_id
        msg = {"id": i, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        with self.cond:
            if not self.cond.wait_for(lambda: i in self.answers, timeout=TIMEOUT * 3):
                raise RuntimeError(f"chromium did not answer {method}")
            m = self.answers.pop(i)
        if "error" in m:
            raise RuntimeError(f"{method}: {m['error']}")
        return m.get("result", {})

    def js(self, expr):
        r = self.call("Runtime.evaluate", session=True, expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def size(self, width, height, mobile=False, scale=1):
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=scale, mobile=mobile)

    def screenshot(self, path, whole=True):
        r = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=whole)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def card(name, what):
    """JS for a part of the card of a variable."""
    return f"document.querySelector('section.card[data-name=\"{name}\"] {what}')"


class Watcher:
    def __init__(self, d, *names):
        self.p = subprocess.Popen([os.path.join(BINDIR, "rstate"), "--connect", d.uri, "watch", "--json", "--initial"]
                                  + list(names), stdout=subprocess.PIPE, text=True)
        self.q = queue.Queue()
        threading.Thread(target=lambda: [self.q.put(json.loads(l)) for l in self.p.stdout], daemon=True).start()
        for _ in names:
            self.next("INITIAL")

    def next(self, what):
        try:
            return self.q.get(timeout=TIMEOUT)
        except queue.Empty:
            check(False, f"socket watcher: an event for {what}")
            return {}

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=TIMEOUT)


def main():
    exe = find_chromium()
    if not exe:
        print("browser-check: chromium not installed (make deps installs it): skipped")
        return
    d = Daemon(BINDIR)
    b = Browser(exe)
    try:
        b.size(1280, 900)
        t0 = time.monotonic()
        b.call("Page.navigate", session=True, url=d.url + "/")
        names = sorted(["model", "temperature", "max_tokens", "verbose", "greeting", "app.retries", "app.strategy"])
        shown = lambda: b.js("[...document.querySelectorAll('section.card')].map(c => c.dataset.name).sort()")
        wait_for(lambda: shown() == names, "the page to show every variable")
        check(shown() == names, "the page shows every variable", repr(shown()))
        wait_for(lambda: b.js("document.getElementById('statustext').textContent") == "live", "the page to go live")
        print(f"  page loaded and live in {time.monotonic() - t0:.2f} s", flush=True)
        check(b.js(card("temperature", ".value") + ".textContent") == "0.7" and
              b.js(card("temperature", ".type") + ".textContent") == "float" and
              b.js(card("temperature", ".ver") + ".textContent") == "version 1" and
              "changed" in b.js(card("temperature", ".when") + ".textContent"),
              "a card shows type, value, version and when it changed")
        wait_for(lambda: b.js(card("model", ".desc") + ".textContent") == "Which model answers", "the description")
        check(b.js(card("model", "select") + " !== null") and b.js(card("verbose", "input[type=checkbox]") + " !== null")
              and b.js(card("max_tokens", "input[type=number]") + ".max") == "4096",
              "editors: a select for choices, a switch for booleans, a number with min/max")

        # a change through the socket shows within a second
        r = d.rstate("set", "temperature", "1.33")
        t = time.monotonic()
        check(r.returncode == 0, "rstate set through the socket", repr(r))
        ok = wait_for(lambda: b.js(card("temperature", ".value") + ".textContent") == "1.33", "the page to show 1.33",
                      timeout=1.0)
        took = time.monotonic() - t
        check(ok, "a socket change shows in the page within a second", f"{took:.3f} s")
        print(f"  socket change -> page: {took * 1000:.0f} ms", flush=True)
        check(b.js(card("temperature", ".ver") + ".textContent") == "version 2", "the version follows")

        # edits in the page reach a socket watcher
        w = Watcher(d, "max_tokens", "model", "verbose")
        b.js(f"(() => {{ const i = {card('max_tokens', 'input')}; i.value = '77'; i.form.requestSubmit(); }})()")
        ev = w.next("the page's number edit")
        check(ev.get("name") == "max_tokens" and ev.get("new") == 77 and ev.get("source") == "http",
              "a number edited in the page reaches a socket watcher", repr(ev))
        b.js(f"(() => {{ const s = {card('model', 'select')}; s.value = 'gemini'; "
             "s.dispatchEvent(new Event('change')); })()")
        ev = w.next("the page's select")
        check(ev.get("name") == "model" and ev.get("new") == "gemini", "a choice picked in the page reaches the watcher",
              repr(ev))
        b.js(card("verbose", ".switch span") + ".click()")
        ev = w.next("the page's switch")
        check(ev.get("name") == "verbose" and ev.get("new") is True, "the switch reaches the watcher", repr(ev))
        w.stop()
        # a refused value shows the library's sentence
        b.js(f"(() => {{ const i = {card('max_tokens', 'input')}; i.value = '5000'; i.form.requestSubmit(); }})()")
        err = lambda: b.js(card("max_tokens", ".err") + ".textContent")
        wait_for(lambda: "above the maximum" in (err() or ""), "the refusal's sentence in the page")
        check(err() == "max_tokens: 5000 is above the maximum 4096", "a refused value shows the library's sentence",
              repr(err()))
        check(b.js(card("max_tokens", ".value") + ".textContent") == "77", "a refused value changes nothing shown")

        if SHOT:
            for v in ("0.9", "1.1", "0.8", "1.25", "1.6", "1.4", "1.75", "1.5", "0.95", "1.2"):
                d.rstate("set", "temperature", v, "--source", "optimizer")
            for v in ("3", "5", "4", "7", "6"):
                d.rstate("set", "app.retries", v)
            d.rstate("set", "greeting", "hello, world")
            d.rstate("set", "app.strategy", "Strategies.Optimized", "--source", "planner")
            wait_for(lambda: b.js(card("app.strategy", ".value") + ".textContent") == "Strategies.Optimized",
                     "the last change to show")
            b.js(card("temperature", "details") + ".open = true")
            b.js(card("max_tokens", ".err") + ".textContent = ''")
            b.js("document.querySelectorAll('.card').forEach(c => c.classList.remove('flash'))")
            b.js(f"(() => {{ const i = {card('max_tokens', 'input')}; i.value = '5000'; i.form.requestSubmit(); }})()")
            wait_for(lambda: "above the maximum" in (err() or ""), "the refusal for the screenshot")
            os.makedirs(SHOT, exist_ok=True)
            b.size(1280, 760)
            time.sleep(1.3)  # lets the flash animations finish: the picture shows the resting state
            b.screenshot(os.path.join(SHOT, "live-page.png"))
            b.size(390, 844, mobile=True, scale=2)
            b.js("window.scrollTo(0, 0)")
            time.sleep(0.3)
            b.screenshot(os.path.join(SHOT, "live-page-phone.png"), whole=False)
            print(f"  screenshots written to {SHOT}/live-page.png and {SHOT}/live-page-phone.png")
    finally:
        b.close()
        check(d.stop() == 0, "rstated exits 0 after the browser")
    finish("browser.py")


if __name__ == "__main__":
    main()
