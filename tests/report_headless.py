"""Open a report in headless Chromium and see what a person would see.

Used by the browser test, the benchmark and the screenshot of the docs; needs the
`chromium` binary (Debian package) and `websocket-client` (dev extra). Chromium listens
for the DevTools protocol on 127.0.0.1 only, on a port it picks itself, with a fresh
profile; every request the page makes, every console message and every exception is
recorded so callers can assert there were none.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass(slots=True)
class PageVisit:
    """What happened while a page loaded and rendered."""

    url: str
    state: str  # #report-status data-state: rendered, error, or timeout
    status: dict[str, str]  # #report-status data-* attributes and text
    charts: list[dict[str, str]]  # every figure.chart's data-* attributes
    seconds_to_rendered: float  # wall clock from navigation to data-state != pending
    console: list[dict[str, Any]] = field(default_factory=list)  # console API calls
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)  # browser log entries, level error
    requests: list[str] = field(default_factory=list)  # every URL the page requested
    screenshot: Path | None = None
    interaction: Any = None  # what the `interact` callback returned

    @property
    def console_errors(self) -> list[dict[str, Any]]:
        return [c for c in self.console if c["type"] in ("error", "assert")]


class Chromium:
    """A headless Chromium driven over the DevTools protocol (one page at a time)."""

    def __init__(self, binary: str | None = None, *, timeout: float = 60.0) -> None:
        import websocket  # websocket-client, from the dev extra

        self._ws_mod = websocket
        self.binary = binary or find_chromium()
        if not self.binary:
            raise FileNotFoundError("chromium not found (Debian package `chromium`)")
        self.timeout = timeout
        self._tmp = tempfile.mkdtemp(prefix="ensemble-report-chromium-")
        self._profile = Path(self._tmp) / "profile"
        self._stderr_path = Path(self._tmp) / "chromium.stderr"
        with open(self._stderr_path, "wb") as err:  # a file: a pipe could fill and block
            self._proc = subprocess.Popen(
                [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}",
                 "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )
        try:
            ws_url = self._devtools_url()
            self._ws = websocket.create_connection(ws_url, timeout=timeout,
                                                   suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def _devtools_url(self) -> str:
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._stderr_path.read_text(errors="replace")
                raise RuntimeError(f"chromium exited with {self._proc.returncode}: {err[-2000:]}")
            if port_file.exists():
                lines = port_file.read_text().split()
                if len(lines) >= 2:
                    return f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    # -- protocol ---------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def _drain(self, seconds: float) -> None:
        """Read events for `seconds` (the page may still log after rendering)."""
        self._ws.settimeout(0.05)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    reply = json.loads(self._ws.recv())
                except self._ws_mod.WebSocketTimeoutException:
                    continue
                if "method" in reply:
                    self._events.append(reply)
        finally:
            self._ws.settimeout(self.timeout)

    def evaluate(self, expression: str, session: str, *, await_promise: bool = False) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True,
                                                "awaitPromise": await_promise}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, predicate: Callable[[Any], bool],
                 timeout: float = 10.0) -> Any:
        """Evaluate `expression` until `predicate(value)` holds; the last value either way."""
        deadline = time.monotonic() + timeout
        value = self.evaluate(expression, session)
        while not predicate(value) and time.monotonic() < deadline:
            time.sleep(0.02)
            value = self.evaluate(expression, session)
        return value

    # -- the one thing callers want ---------------------------------------------------

    def drag(self, session: str, x0: float, y: float, x1: float, steps: int = 8) -> None:
        """Press the left button at (x0, y), move to (x1, y), release (CSS pixels)."""
        def mouse(kind: str, x: float, **extra: Any) -> None:
            self.call("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", **extra}, session)

        mouse("mouseMoved", x0, buttons=0)
        mouse("mousePressed", x0, buttons=1, clickCount=1)
        for i in range(1, steps + 1):
            mouse("mouseMoved", x0 + (x1 - x0) * i / steps, buttons=1)
        mouse("mouseReleased", x1, buttons=0, clickCount=1)

    def double_click(self, session: str, x: float, y: float) -> None:
        for count in (1, 2):
            for kind in ("mousePressed", "mouseReleased"):
                self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                          "button": "left", "buttons": 1 if kind == "mousePressed" else 0,
                          "clickCount": count}, session)

    def visit(self, page: Path, *, screenshot: Path | None = None, width: int = 1280,
              height: int = 900, wait: float | None = None,
              interact: Callable[[Chromium, str], Any] | None = None) -> PageVisit:
        """Open `page`, wait until #report-status leaves "pending", collect what happened.

        `interact(self, session)` runs once the page rendered (e.g. a drag to zoom); what it
        returns is kept in `PageVisit.interaction`.
        """
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Runtime", "Log", "Network", "Page"):
                self.call(f"{domain}.enable", {}, session)
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": False}, session)
            self._events.clear()
            url = page.resolve().as_uri()
            started = time.monotonic()
            self.call("Page.navigate", {"url": url}, session)
            state, elapsed = self._wait_rendered(session, started, wait or self.timeout)
            self._drain(0.3)
            interaction = None
            if interact is not None and state == "rendered":
                interaction = interact(self, session)
                self._drain(0.3)
            info = self.evaluate(_COLLECT_JS, session)
            visit = PageVisit(url=url, state=state, status=info["status"],
                              charts=info["charts"], seconds_to_rendered=elapsed,
                              interaction=interaction)
            self._sort_events(visit, session)
            if screenshot is not None:
                visit.screenshot = self._screenshot(session, screenshot, width)
            return visit
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def _wait_rendered(self, session: str, started: float, limit: float) -> tuple[str, float]:
        deadline = started + limit
        while time.monotonic() < deadline:
            state = self.evaluate(
                "(document.getElementById('report-status')||{dataset:{}}).dataset.state||''",
                session,
            )
            if state and state != "pending":
                return state, time.monotonic() - started
            time.sleep(0.01)
        return "timeout", time.monotonic() - started

    def _sort_events(self, visit: PageVisit, session: str) -> None:
        for ev in self._events:
            if ev.get("sessionId") not in (None, session):
                continue
            method, p = ev["method"], ev.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", "")))
                                for a in p.get("args", []))
                visit.console.append({"type": p.get("type"), "text": text})
            elif method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                visit.exceptions.append(
                    d.get("exception", {}).get("description") or d.get("text", "?"))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                visit.log_errors.append(p["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                visit.requests.append(p["request"]["url"])

    def _screenshot(self, session: str, path: Path, width: int) -> Path:
        size = self.call("Page.getLayoutMetrics", {}, session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": width, "height": int(size["height"]), "scale": 1}
        shot = self.call("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                    "captureBeyondViewport": True}, session)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            with contextlib.suppress(OSError):
                ws.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_COLLECT_JS = """(() => {
  const st = document.getElementById('report-status');
  const status = st ? Object.assign({text: st.textContent}, st.dataset) : {};
  const charts = [...document.querySelectorAll('figure.chart')].map(f => Object.assign({
    canvases: String(f.querySelectorAll('canvas').length),
    legend: [...f.querySelectorAll('.u-legend .u-series .u-label')].map(e => e.textContent)
      .join('|'),
    width: String(f.querySelector('.plot').getBoundingClientRect().width),
  }, f.dataset));
  return {status, charts};
})()"""
