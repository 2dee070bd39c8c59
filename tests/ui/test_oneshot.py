"""The one-shot search tab in real Chromium, against `panel serve app.py`."""

from playwright.sync_api import expect


def _open_tab(page, url):
    page.goto(url, timeout=90_000)
    page.get_by_text("One-shot search", exact=True).click()
    expect(page.locator(".oneshot-stats")).to_contain_text("base rate", timeout=90_000)


def test_prototype_neighbours_statistics_feedback_and_a_bad_upload(page, served_app_with_stores, screenshot, tmp_path):
    _open_tab(page, served_app_with_stores)
    expect(page.locator(".oneshot-notice")).to_contain_text("Simulated")
    expect(page.locator(".prototype-caption")).to_contain_text("bpt_class = AGN")
    cards = page.locator(".neighbour-card")
    expect(cards).to_have_count(12)
    expect(page.locator(".oneshot-info")).to_contain_text("EfficientNet-Lite0")
    screenshot("direct")
    first_id = cards.first.locator("pre").inner_text().split("\n")[0]
    cards.first.locator(".dislike button").click()
    refine = page.locator(".refine button")
    expect(refine).to_be_enabled()
    refine.click()
    expect(page.locator(".oneshot-status")).to_contain_text("refined search")
    expect(page.locator(".neighbour-card pre", has_text=first_id)).to_have_count(0)
    # another prototype from a neighbour's card
    cards.nth(2).get_by_role("button", name="prototype").click()
    expect(page.locator(".oneshot-status")).to_contain_text("direct search")
    # an upload that is not an image says so
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    page.locator(".prototype-upload input[type=file]").set_input_files(str(bad))
    expect(page.locator(".oneshot-error")).to_contain_text("upload PNG, JPEG or FITS")


def test_recursive_search_with_progress_and_provenance(page, served_app_with_stores, screenshot):
    _open_tab(page, served_app_with_stores)
    page.locator(".run-recursive button").click()
    expect(page.locator(".oneshot-status")).to_contain_text("recursive search, n = 12, 5 iterations", timeout=60_000)
    expect(page.locator(".provenance-table")).to_be_visible(timeout=60_000)
    expect(page.locator(".oneshot-stats")).to_contain_text("recursive search")
    page.locator(".provenance-table").scroll_into_view_if_needed()
    screenshot("recursive")
    with page.expect_download() as download:
        page.get_by_role("button", name="CSV").click()
    assert download.value.suggested_filename == "oneshot.csv"

