"""Ten visitors at once on one server (issue 9, checks): each session keeps its own state, sessions
end when their pages close (their upload folders go with them) and the server's memory returns to
where it started."""

import re
import time

import psutil
import pytest
from playwright.sync_api import expect

from tests.ui.conftest import TIMEOUT_MS, Server

SESSIONS = 10
MEMORY_MARGIN_MB = 150  # measured +91 MB: what ten sessions leave in the allocator (a second round adds none)


@pytest.fixture(scope="module")
def server(data_dir, tmp_path_factory):
    """A server that ends a session seconds after its page closes, with its own temporary folder
    (and no feature stores: the one-shot tab is not opened). (A lifetime of about a second is too
    short: a page whose websocket is not open by then loses its session and is rendered twice.)"""
    tmp = tmp_path_factory.mktemp("server-tmp")
    server = Server(data_dir, tmp_path_factory.mktemp("no-indexes"),
                    extra=["--check-unused-sessions", "1000", "--unused-session-lifetime", "5000"],
                    env={"TMPDIR": str(tmp)})
    server.tmp = tmp
    yield server.wait()
    server.stop()


def _sessions_alive(server) -> int:
    return len(list(server.tmp.glob("alma-ulisse-uploads/*/session-*")))


def _wait_until(predicate, timeout, message):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.2)


def _rss_mb(server) -> float:
    return psutil.Process(server.proc.pid).memory_info().rss / 2**20


def _open(page, url):
    page.goto(url, timeout=90_000)
    expect(page.locator(".pixel-info")).to_contain_text("Pixel (", timeout=60_000)


def _frames(page, url: str, n: int):
    """``n`` more sessions: the app in ``n`` frames of ``page``, each a document with a session of its
    own, as in ``n`` tabs (frames of one page share its renderer process: ten tabs cost the browser
    about half as much CPU again)."""
    page.goto(url.rsplit("/", 1)[0] + "/liveness")  # the frames' origin, so that they may be driven
    page.set_content("".join(f'<iframe id="session-{k}" src="{url}" style="width:800px;height:600px"></iframe>'
                             for k in range(n)))
    return [page.frame_locator(f"#session-{k}") for k in range(n)]


def test_ten_sessions_without_cross_talk_and_memory_back(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    first = context.new_page()
    _open(first, server.url)  # the first session also warms the server (imports, compiled kernels)
    baseline = _rss_mb(server)

    start = time.time()
    sessions = [first] + _frames(context.new_page(), server.url, SESSIONS - 1)
    for session in sessions[1:]:
        expect(session.locator(".pixel-info")).to_contain_text("Pixel (", timeout=90_000)
    print(f"{SESSIONS - 1} more sessions open after {time.time() - start:.1f} s")
    assert _sessions_alive(server) == SESSIONS
    for k, session in enumerate(sessions):  # each session asks for its own (missing) file
        path = session.get_by_placeholder("e.g. mycube.fits")
        path.fill(f"missing-{k}.fits")
        path.press("Enter")
        # a plain click event: Playwright's click waits for the page to be idle, which ten sessions seldom are
        session.get_by_role("button", name="Open path").dispatch_event("click")
    for k, session in enumerate(sessions):
        expect(session.locator(".cube-error")).to_have_text(re.compile(rf"^missing-{k}\.fits: no such file"))
    print(f"messages checked after {time.time() - start:.1f} s")
    peak = _rss_mb(server)
    context.close()
    _wait_until(lambda: _sessions_alive(server) == 0, 30, "every session to end when its page closed")
    after = _rss_mb(server)
    print(f"server RSS: {baseline:.0f} MB with one session, {peak:.0f} MB with {SESSIONS}, {after:.0f} MB after "
          f"(all ended {time.time() - start:.1f} s after the other sessions were opened)")
    assert after - baseline < MEMORY_MARGIN_MB, (baseline, peak, after)
