"""Headless Chromium for the dashboard tests: a free loopback port, one Chromium run
(screenshot, DOM dump, console), and a minimal W3C WebDriver client over chromedriver's HTTP API
(httpx only, no Selenium) for real pointer events."""

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
BROWSER_TIMEOUT = 90  # seconds for one headless Chromium run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    """One headless Chromium run, isolated from the network and from any user profile."""
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", "--disable-extensions",
           "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, env=env)


class ElementAttributes(HTMLParser):
    def __init__(self, element_id):
        super().__init__()
        self.element_id = element_id
        self.found = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == self.element_id:
            self.found = attrs


def page_problems(stderr: str) -> list[str]:
    """Console lines about JS errors or blocked content (CSP) from Chromium's log."""
    return [line for line in stderr.splitlines()
            if re.search(r"Uncaught|Refused to|Content Security Policy|net::ERR_", line)]


CHROMEDRIVER = shutil.which("chromedriver")


class WebDriver:
    def __init__(self, profile: Path):
        import httpx

        port = free_port()
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.http.get("/status").json()["value"]["ready"]:
                    break
            except (httpx.TransportError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("chromedriver did not start within 20 s")
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1200,900",
                f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM, "args": args}}}}
        self.session = self.http.post("/session", json=caps).json()["value"]["sessionId"]

    def cmd(self, method: str, path: str, body=None):
        r = self.http.request(method, f"/session/{self.session}{path}", json=body)
        value = r.json()["value"]
        if r.status_code != 200:
            raise AssertionError(f"WebDriver {path}: {value}")
        return value

    def script(self, source: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": source, "args": list(args)})

    def find(self, css: str) -> str:
        return next(iter(self.cmd("POST", "/element", {"using": "css selector", "value": css}).values()))

    def attribute(self, css: str, name: str) -> str | None:
        return self.cmd("GET", f"/element/{self.find(css)}/attribute/{name}")

    def pointer(self, *steps):
        self.cmd("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse",
                                                   "parameters": {"pointerType": "mouse"},
                                                   "actions": list(steps)}]})

    def wait_for(self, css: str, name: str, value: str, timeout: float = 10):
        deadline = time.monotonic() + timeout
        while self.attribute(css, name) != value:
            if time.monotonic() > deadline:
                raise AssertionError(f"{css} [{name}] is {self.attribute(css, name)!r}, not {value!r}")
            time.sleep(0.05)

    def close(self):
        try:
            self.http.delete(f"/session/{self.session}")
        finally:
            self.http.close()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextmanager
def serve_dashboard(engine, archive: Path):
    """The dashboard of ``engine`` served by uvicorn on a free loopback port for as long as the
    block runs; yields its base URL."""
    import uvicorn

    from clinepipe.web import create_app

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(engine, archive=archive), host="127.0.0.1",
                                        port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start within 15 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
