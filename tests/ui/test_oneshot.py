"""The one-shot search tab in real Chromium, against `panel serve app.py`."""

import math

from playwright.sync_api import expect

from tests.ui.conftest import ROOT


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
    expect(refine).to_have_text("Re-rank with feedback (0 up, 1 down)")
    refine.click()
    expect(page.locator(".oneshot-status")).to_contain_text("refined search")
    expect(page.locator(".neighbour-card pre", has_text=first_id)).to_have_count(0)
    # another prototype from a neighbour's card: the marks were for the old one (issue 13, item 7)
    cards.nth(2).get_by_role("button", name="prototype").click()
    expect(page.locator(".oneshot-status")).to_contain_text("direct search")
    expect(refine).to_have_text("Re-rank with feedback")
    expect(refine).to_be_disabled()
    # the caption is whole, however long (item 12)
    caption = page.locator(".prototype-caption pre")
    expect(caption).to_contain_text("bpt_class = ")
    assert caption.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    # bad input says what is wrong (item 9): an upload that is not an image, a radio cube, an unknown id
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    upload = page.locator(".prototype-upload input[type=file]")
    upload.set_input_files(str(bad))
    error = page.locator(".oneshot-error")
    expect(error).to_contain_text("upload PNG, JPEG or FITS")
    upload.set_input_files(str(ROOT / "assets" / "cubes" / "NGC4324.co.fits"))
    expect(error).to_contain_text("is a spectral cube (axis 3 is VELO-LSR, 21 channels), not a galaxy cutout")
    shown = page.locator(".prototype-caption pre").inner_text()
    box = page.locator(".prototype-id input")
    box.fill("NO-SUCH-GALAXY")
    box.press("Enter")
    expect(error).to_contain_text("NO-SUCH-GALAXY")
    expect(page.locator(".prototype-caption pre")).to_have_text(shown)  # the search shown stays
    screenshot("unknown-id")


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



def test_neighbours_vetted_for_a_question_count_as_a_label(page, served_app_with_stores, screenshot):
    """Issue 14: a neighbour vetted "yes" for a question shows the verdict on its card, and the
    question becomes a label the statistics count."""
    _open_tab(page, served_app_with_stores)
    question = page.locator(".neighbour-question input")
    question.fill("ring galaxy")
    question.press("Enter")
    reviewer = page.locator(".neighbour-reviewer input")
    reviewer.fill("carol")
    reviewer.press("Enter")
    card = page.locator(".neighbour-card").first
    expect(card.locator(".neighbour-verdicts")).to_contain_text("ring galaxy: not vetted")
    card.locator(".neighbour-verdict select").select_option("yes")
    expect(page.locator(".neighbour-card").first.locator(".neighbour-verdicts")).to_contain_text("ring galaxy: yes 1")
    page.get_by_role("combobox", name="Count label").select_option("vetted_ring_galaxy")
    expect(page.locator(".oneshot-stats")).to_contain_text("vetted_ring_galaxy = yes")
    expect(page.locator(".oneshot-stats")).to_contain_text("1 of ")
    expect(page.get_by_role("combobox", name="Value")).to_have_value("yes")
    page.wait_for_load_state("networkidle")
    screenshot("vetted")


def test_feature_map_hover_lasso_and_search_from_the_selection(page, served_app_with_stores, screenshot):
    """Issue 15, item 5: the map of the feature space, hovered and lassoed with the mouse."""
    _open_tab(page, served_app_with_stores)
    page.locator(".oneshot-tabs").get_by_text("Feature map", exact=True).click()
    expect(page.locator(".map-status")).to_contain_text("160 galaxies", timeout=60_000)
    canvas = page.locator(".feature-map canvas").first
    canvas.scroll_into_view_if_needed()
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    screenshot("feature-map")
    # hover: sweep the pointer over the plot until a galaxy's cutout shows beside it
    hovered = page.locator(".map-hovered")
    for i in range(60):
        page.mouse.move(box["x"] + box["width"] * (0.2 + 0.6 * (i % 10) / 9),
                        box["y"] + box["height"] * (0.2 + 0.6 * (i // 10) / 5))
        page.wait_for_timeout(400)
        if hovered.count():
            break
    expect(hovered).to_be_visible()
    # a lasso round the middle of the map (the lasso is the active drag tool)
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, min(box["width"], box["height"]) / 3
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    for a in range(1, 41):
        page.mouse.move(cx + r * math.cos(2 * math.pi * a / 40), cy + r * math.sin(2 * math.pi * a / 40))
    page.mouse.up()
    expect(page.locator(".map-selection")).to_contain_text("galaxies selected", timeout=20_000)
    screenshot("feature-map-lasso")
    with page.expect_download() as download:
        page.locator(".map-export button").click()
    assert download.value.suggested_filename == "map_selection.csv"
    page.locator(".map-search button").click()
    expect(page.locator(".prototype-caption")).to_contain_text("selected on the map")
    expect(page.locator(".oneshot-status")).to_contain_text("direct search")
    screenshot("feature-map-searched")


def test_a_link_opens_the_set_and_searches_from_its_prototype(page, served_app_with_stores):
    page.goto(f"{served_app_with_stores}?tab=oneshot&prototype=SIM000021", timeout=90_000)
    expect(page.locator(".prototype-caption")).to_contain_text("SIM000021", timeout=120_000)
    expect(page.locator(".neighbour-card")).to_have_count(12)
    page.wait_for_function("() => new URLSearchParams(window.location.search).get('prototype') === 'SIM000021'")
    assert "set=" in page.url
    page.goto(f"{served_app_with_stores}?tab=oneshot&prototype=NOT-A-GALAXY", timeout=90_000)
    expect(page.locator(".oneshot-error")).to_contain_text("NOT-A-GALAXY is not in", timeout=120_000)
