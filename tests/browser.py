"""A headless Chromium driven over the DevTools protocol: just enough to test a page, no extra packages.

Chromium is started with ``--remote-debugging-port=0`` in a fresh profile, writes the port it chose
to ``DevToolsActivePort``, and the first tab is driven through its websocket with the synchronous
client of ``websockets``. Only loopback is reachable (no proxy), and the process (started by us, in
its own session) is ended by its id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests
from websockets.sync.client import ClientConnection, connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--remote-debugging-port=0",
    "--window-size=1280,1000",
)


def chromium_path() -> str | None:
    """The Chromium executable, or None when it is not installed (``make tools`` installs it)."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class CdpError(RuntimeError):
    """A DevTools command failed, or a page never reached the state a test waited for."""


class Browser:
    """One headless Chromium with one tab; use as a context manager."""

    def __init__(self, timeout: float = 20) -> None:
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="cdp-profile-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.socket: ClientConnection | None = None
        self._closing = ExitStack()
        self.next_id = 0

    def __enter__(self) -> Browser:
        executable = chromium_path()
        if not executable:
            raise CdpError("chromium is not installed: run `make tools`")
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # As a context manager (websockets 17.1 deprecates a bare connect()), closed by __exit__.
        self.socket = self._closing.enter_context(
            connect(self._page_websocket(), max_size=None, open_timeout=self.timeout)
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.close()
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _page_websocket(self) -> str:
        """The first tab's DevTools websocket, once Chromium has written its port."""
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise CdpError(f"chromium exited with {self.process.returncode}")
            if port_file.exists() and (lines := port_file.read_text().split()):
                targets = requests.get(f"http://127.0.0.1:{lines[0]}/json/list", timeout=5).json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise CdpError("chromium did not open its DevTools port")

    # --- protocol ----------------------------------------------------------------------------
    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events arriving meanwhile are dropped."""
        assert self.socket, "use Browser as a context manager"
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=self.timeout))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails'].get('exception', result['exceptionDetails'])}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None, describe: Callable[[], str] | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy, and return its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        failure = ""
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except CdpError as exc:  # e.g. the page navigated while the expression ran
                failure = f" (last error: {exc})"
                value = None
            if value:
                return value
            time.sleep(0.1)
        page = describe() if describe else self.text()
        raise CdpError(f"timed out waiting for {expression!r}{failure}; the page shows:\n{page}")

    # --- conveniences ------------------------------------------------------------------------
    def goto(self, url: str) -> None:
        """Navigate and wait until the document has loaded."""
        self.send("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def set_files(self, selector: str, *paths: Path) -> None:
        """Choose files in an ``<input type=file>``, as a user would (``input`` and ``change`` fire)."""
        found = self.send("Runtime.evaluate", expression=f"document.querySelector({json.dumps(selector)})")
        object_id = found["result"].get("objectId")
        if not object_id:
            raise CdpError(f"no element matches {selector!r}")
        self.send("DOM.setFileInputFiles", files=[str(p) for p in paths], objectId=object_id)

    def type_into(self, selector: str, text: str) -> None:
        """Focus an input and type into it like a keyboard would (frameworks see real input events)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def text(self, selector: str = "body") -> str:
        return str(self.evaluate(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"))

    def sign_in_to(self, page_url: str, user: tuple[str, str]) -> None:
        """Open an Airflow page without a session: Airflow's login page, then back to ``page_url``."""
        self.send("Page.navigate", url=page_url)
        self.wait_for("location.pathname === '/auth/login' && !!document.querySelector('input[name=password]')")
        self.type_into("input[name=username]", user[0])
        self.type_into("input[name=password]", user[1])
        self.wait_for("!document.querySelector('button[type=submit]').disabled")
        self.click("button[type=submit]")
        self.wait_for(f"location.href === {json.dumps(page_url)} && document.readyState === 'complete'")
