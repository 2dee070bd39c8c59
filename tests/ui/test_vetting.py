"""The vetting tab in real Chromium: a run's candidates queued, verdicts by keyboard, a second
reviewer in a session of their own seeing them within a poll, a disagreement marked, undo."""

from playwright.sync_api import expect

from tests.ui.conftest import SCREENSHOTS, TIMEOUT_MS


def _vet(page, url, reviewer, run=False):
    page.goto(url, timeout=90_000)
    expect(page.locator(".pixel-info")).to_contain_text("Pixel (")
    if run:  # the bundled cube: the pipeline finds its four sources
        page.get_by_role("button", name="Find sources").click()
        expect(page.locator(".source-table .tabulator-row").first).to_be_visible()
    page.get_by_text("Vet candidates", exact=True).click()
    expect(page.locator(".vetting-title")).to_contain_text("Candidate 1 of 4")
    if reviewer:
        name = page.locator(".vetting-reviewer input")
        name.fill(reviewer)
        name.press("Enter")
        page.locator(".vetting-title").click()  # out of the text field: keys are shortcuts again
        expect(page.locator(".vetting-status")).to_contain_text("by you")


def _cell(page, row, field):
    return page.locator(".vetting-queue .tabulator-row").nth(row).locator(f'[tabulator-field="{field}"]')


def test_two_reviewers_vet_one_cube(page, served_app, shared_context, screenshot):
    _vet(page, served_app, reviewer="", run=True)
    page.locator(".vetting-title").click()
    page.keyboard.press("r")  # no name yet: nothing is cast, the page asks for one
    expect(page.locator(".vetting-message")).to_contain_text("Give a reviewer name")
    expect(page.locator(".vetting-title")).to_contain_text("Candidate 1 of 4")
    name = page.locator(".vetting-reviewer input")
    name.fill("ann")
    name.press("Enter")
    page.locator(".vetting-title").click()
    expect(page.locator(".vetting-status")).to_contain_text("0 by you")
    page.keyboard.press("r")
    expect(page.locator(".vetting-title")).to_contain_text("Candidate 2 of 4")
    expect(_cell(page, 0, "you")).to_have_text("real")
    # typing in the note is typing, not shortcuts
    note = page.locator(".vetting-note input")
    note.fill("runs off the edge")
    note.press("s")
    expect(page.locator(".vetting-title")).to_contain_text("Candidate 2 of 4")
    page.locator(".vetting-title").click()
    page.keyboard.press("s")  # spurious, with the note
    expect(page.locator(".vetting-title")).to_contain_text("Candidate 3 of 4")
    expect(_cell(page, 1, "you")).to_have_text("spurious")
    screenshot("ann")

    bob = shared_context.new_page()
    try:
        _vet(bob, served_app, reviewer="bob")  # no run: the candidates stored by ann's run
        expect(_cell(bob, 0, "team")).to_have_text("real x1")
        bob.keyboard.press("s")  # bob disagrees on the first
        expect(bob.locator(".vetting-title")).to_contain_text("Candidate 2 of 4")
        bob.keyboard.press("ArrowLeft")
        expect(bob.locator(".vetting-team")).to_contain_text("Reviewers DISAGREE: ann: real; bob: spurious")
        bob.screenshot(path=str(SCREENSHOTS / "test_two_reviewers_vet_one_cube-bob.png"), full_page=True)
    finally:
        bob.close()
    # ann's page hears of it within a poll (2 s), without a reload
    expect(_cell(page, 0, "team")).to_contain_text("DISPUTED", timeout=min(TIMEOUT_MS, 15_000))
    page.keyboard.press("z")  # undo ann's last verdict: the spurious on the second
    expect(page.locator(".vetting-title")).to_contain_text("Candidate 2 of 4")
    expect(_cell(page, 1, "you")).to_have_text("")
    screenshot("after-undo")
