"""Browser tests: Debian's Chromium driven by Playwright against the app served as users serve it.

The browser is the system's (``/usr/bin/chromium``, or ``$CHROMIUM_PATH``): nothing is downloaded.
Screenshots of every test land in ``test-artifacts/screenshots`` (kept by CI).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/ui" in str(item.fspath):
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (apt-get install -y chromium) "
                    "or set CHROMIUM_PATH")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1600, "height": 1100}}


@pytest.fixture
def page(page):
    page.set_default_timeout(20_000)
    return page


@pytest.fixture
def screenshot(page, request):
    """screenshot(label): save the page as test-artifacts/screenshots/<test>-<label>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(label: str):
        path = SCREENSHOTS / f"{request.node.name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data folder the served app may read: test cubes and a file that is not FITS."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "not_a_cube.fits").write_text("SIMPLE? no, this is a text file\n")
    return folder


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory):
    """A folder of feature stores the served app lists first: a small simulated survey (160
    galaxies, features at 64 px) so the one-shot tab opens in seconds."""
    from pipeline.oneshot import survey
    from pipeline.oneshot.galaxies import GalaxySet
    from pipeline.oneshot.store import build_store

    root = tmp_path_factory.mktemp("indexes")
    catalog = survey.simulate_survey(root / "survey", n=160, seed=5, size=48)
    build_store(GalaxySet.open(catalog, name="small survey"), root / "small", size=64, scheduler="synchronous")
    return root


class Server:
    """`panel serve app.py` in a subprocess, exactly as a user starts it (plus ``extra`` options)."""

    def __init__(self, data_dir: Path, index_dir: Path, extra=(), env=None):
        self.port = free_port()
        self.log_path = data_dir / f"serve-{self.port}.log"
        env = {**os.environ, "EXPLORER_DATA_DIRS": str(data_dir), "EXPLORER_INDEX_DIRS": str(index_dir), **(env or {})}
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", "app.py", "--port", str(self.port), "--address", "127.0.0.1",
             "--allow-websocket-origin", f"127.0.0.1:{self.port}", "--liveness", *extra],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/app"
        deadline = time.time() + 120
        while True:
            try:  # the liveness endpoint answers once the server is up, without rendering a session
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/liveness", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                pytest.fail(f"panel serve did not come up: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.3)

    def stop(self):
        """Stop the server; fail if it logged an exception."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
        text = self.log_path.read_text()
        # tornado logs a closed websocket when the browser leaves mid-message: not the app's error
        errors = [block for block in text.split("Traceback")[1:]
                  if "WebSocketClosedError" not in block and "StreamClosedError" not in block]
        assert not errors, f"the server logged an exception:\n{text[-3000:]}"


@pytest.fixture(scope="module")
def served_app(data_dir, index_dir):
    """The app served as users serve it; yields its URL."""
    server = Server(data_dir, index_dir)
    yield server.url
    server.stop()
