"""Browser tests: Debian's Chromium driven by Playwright against the app served as users serve it.

The browser is the system's (``/usr/bin/chromium``, or ``$CHROMIUM_PATH``): nothing is downloaded.
Screenshots of every test land in ``test-artifacts/screenshots`` (kept by CI).

One server (``app_server``), one browser context and one page serve every test of a run (of an
xdist worker), each test opening the app anew, that is in a session of its own: starting the
scientific stack in a server, a fresh browser profile and a new page are what took the time, not
the tests. Under xdist they run in two groups, one on each worker (tests/conftest.py); the
ten-sessions test has a server of its own.
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
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# every wait, Playwright's own and expect()'s (5 s by default): 20 s is ample for one test alone,
# not for a page opened while the other xdist worker and the ten-sessions test share two cores
TIMEOUT_MS = 45_000
expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(items):
    """Mark the browser tests, and run them first, group by group (tests/conftest.py): under xdist
    they are the longest chains, which the other tests then fill in around."""
    from tests.conftest import BROWSER_GROUPS

    order = [name for files in BROWSER_GROUPS.values() for name in files]
    ui = [item for item in items if "tests/ui" in str(item.fspath)]
    for item in ui:
        item.add_marker(pytest.mark.ui)
    ui.sort(key=lambda item: order.index(item.fspath.basename) if item.fspath.basename in order else len(order))
    items[:] = ui + [item for item in items if item not in ui]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails leaves what it saw: the page as <test>-failed.png beside the
    screenshots, and the end of its server's log in the report."""
    report = yield
    if report.when == "call" and report.failed:
        page = item.funcargs.get("page")
        if page is not None:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=str(SCREENSHOTS / f"{item.name}-failed.png"), full_page=True)
            except PlaywrightError as exc:  # a page that is gone: the report says so, and the failure stands
                report.sections.append(("screenshot", f"no screenshot: {exc}"))
        for server in {id(v): v for v in item.funcargs.values() if isinstance(v, Server)}.values():
            report.sections.append((f"server log ({server.log_path.name})", server.log_path.read_text()[-3000:]))
    return report


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


@pytest.fixture(scope="session")
def shared_context(browser, browser_context_args):
    """One browser context for every test: its cache keeps the app's JavaScript compiled between
    tests (a new context costs a page load about twice the CPU). The app keeps no cookies or
    storage, so pages of different tests share nothing else."""
    context = browser.new_context(**browser_context_args)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture(scope="session")
def worker_page(shared_context):
    """The one page of a run (of an xdist worker): a new page (a new renderer process, which compiles
    the app's JavaScript again) made each page load cost about 40% more CPU than a navigation."""
    page = shared_context.new_page()
    yield page
    page.close()


@pytest.fixture
def page(worker_page):
    """The run's page, for a session of its own: the test opens the app in it (``goto``), which
    starts a new session, and leaving the page afterwards ends that session."""
    yield worker_page
    worker_page.goto("about:blank")


@pytest.fixture
def screenshot(page, request):
    """screenshot(label): save the page as test-artifacts/screenshots/<test>-<label>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(label: str):
        path = SCREENSHOTS / f"{request.node.name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def open_lesson(page, url: str, lesson: str, size) -> tuple:
    """Open the Learn tab's ``lesson`` by a link in a window of ``size``: (its heading, its numbers)."""
    from urllib.parse import quote

    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(f"{url}?tab=learn&lesson={quote(lesson)}", timeout=90_000)
    return page.locator(".lesson-heading"), page.locator(".lesson-numbers")


def fits_the_window(page, width: int) -> None:
    """Nothing runs out of the window sideways: a lesson's guide with its controls, every plot, the page."""
    page.wait_for_timeout(500)  # the plots' last layout
    guide = page.locator(".lesson-guide").bounding_box()
    plots = [figure.bounding_box() for figure in page.locator(".bk-Figure").all()]
    assert guide is not None and any(plots)
    for box in [guide, *(box for box in plots if box is not None)]:  # None: a plot replaced as it was measured
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def wait_until(predicate, timeout=TIMEOUT_MS / 1000, message="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {message}")


def show_cube_header(page):
    """Open the "Cube header" tab of the cube shown (clicked again if the tab clicked was the
    previous cube's, replaced a moment later); returns the summary's locator."""
    summary = page.locator(".cube-summary pre")

    def shown():
        page.get_by_text("Cube header", exact=True).click()
        return summary.is_visible()

    wait_until(shown, message="the header tab of the cube opened")
    return summary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A data folder the served app may read: test cubes and a file that is not FITS."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "not_a_cube.fits").write_text("SIMPLE? no, this is a text file\n")
    return folder


@pytest.fixture(scope="session")
def evil_dir(tmp_path_factory):
    """A second data folder of the served app, for files whose names and headers carry script
    (test_untrusted_files.py writes them; a session lists the folder when it starts)."""
    return tmp_path_factory.mktemp("evil")


@pytest.fixture(scope="session")
def index_root(tmp_path_factory):
    return tmp_path_factory.mktemp("indexes")


@pytest.fixture(scope="session")
def index_dir(index_root):
    """A folder of feature stores the served app lists first: a small simulated survey (160
    galaxies, features at 64 px) so the one-shot tab opens in seconds."""
    from pipeline.oneshot import survey
    from pipeline.oneshot.galaxies import GalaxySet
    from pipeline.oneshot.store import build_store

    catalog = survey.simulate_survey(index_root / "survey", n=160, seed=5, size=48)
    build_store(GalaxySet.open(catalog, name="small survey"), index_root / "small", size=64, scheduler="synchronous")
    return index_root


class Server:
    """`panel serve app.py` in a subprocess, exactly as a user starts it (plus ``extra`` options),
    serving the data folders ``data_dirs`` (one or a list). It starts in the background: ``wait()``
    (or ``url``) waits until it answers."""

    def __init__(self, data_dirs, index_dir: Path, extra=(), env=None):
        data_dirs = [data_dirs] if isinstance(data_dirs, (str, Path)) else list(data_dirs)
        self._log_dir = Path(data_dirs[0])
        self._env = {**os.environ, "EXPLORER_DATA_DIRS": os.pathsep.join(map(str, data_dirs)),
                     "EXPLORER_INDEX_DIRS": str(index_dir), **(env or {})}
        self._extra = list(extra)
        self._up = False
        self._start()

    def _start(self):
        self.port = free_port()
        self.log_path = self._log_dir / f"serve-{self.port}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(  # cwd first on sys.path: the checkout's app, explorer and pipeline
            [sys.executable, "-m", "panel", "serve", "app.py", "--port", str(self.port), "--address", "127.0.0.1",
             "--allow-websocket-origin", f"127.0.0.1:{self.port}", "--liveness", *self._extra],
            cwd=ROOT, env=self._env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, attempts=3):
        """Wait until the server answers; start it again on another port if its port was taken
        meanwhile (another xdist worker's server or browser)."""
        deadline = time.time() + 120
        while not self._up:
            try:  # the liveness endpoint answers once the server is up, without rendering a session
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/liveness", timeout=5) as response:
                    self._up = response.status == 200
                    continue
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                self._log.close()
                text = self.log_path.read_text()
                if attempts > 1 and "already in use" in text:
                    self._start()
                    attempts -= 1
                    continue
                pytest.fail(f"panel serve did not come up: {text[-2000:]}")
            time.sleep(0.2)
        return self

    @property
    def url(self) -> str:
        self.wait()
        return f"http://127.0.0.1:{self.port}/app"

    def stop(self):
        """Stop the server; fail if it logged an exception."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
        text = self.log_path.read_text()
        # a browser leaving mid-message is not the app's error: tornado logs the closed websocket, and
        # Bokeh a message (a table's selection, say) that arrives after its session was discarded
        leaving = ("WebSocketClosedError", "StreamClosedError", "assert self._session is not None")
        errors = [block for block in text.split("Traceback")[1:] if not any(sign in block for sign in leaving)]
        assert not errors, "the server logged an exception:\nTraceback" + errors[0][-4000:]


@pytest.fixture(scope="session")
def app_server(data_dir, evil_dir, index_root):
    """The app served as users serve it, for every test that does not need a server of its own.
    It starts in the background."""
    server = Server([data_dir, evil_dir], index_root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def served_app(app_server):
    """The URL of :func:`app_server`, once it answers."""
    return app_server.url


@pytest.fixture(scope="session")
def served_app_with_stores(app_server, index_dir):
    """The URL of :func:`app_server` once its feature stores exist (built while it starts): for
    the one-shot and atlas tabs."""
    return app_server.url
