"""The feature atlas tab in real Chromium, against `panel serve app.py`."""

import re

from playwright.sync_api import expect


def test_atlas_gallery_ranking_and_link_to_search(page, served_app_with_stores, screenshot):
    page.goto(served_app_with_stores, timeout=90_000)
    page.get_by_text("Feature atlas", exact=True).click()
    expect(page.locator(".atlas-title")).to_contain_text("Feature 835", timeout=90_000)
    # as many cards as images said to activate the feature (12 asked; fewer when fewer fire)
    expect(page.locator(".atlas-card").first).to_be_visible(timeout=60_000)
    title = page.locator(".atlas-title pre").inner_text()
    said = re.search(r"the (\d+) (?:images? of|shown)", title)
    assert said, title
    said = int(said.group(1))
    expect(page.locator(".atlas-card:visible")).to_have_count(said)
    page.locator(".rank-features button").click()
    expect(page.locator(".atlas-title")).to_contain_text("AUROC for bpt_class = AGN", timeout=60_000)
    expect(page.locator(".ranking-table")).to_contain_text("higher")
    # every column whole in its box, feature numbers without a thousands comma (issue 13, item 12)
    table = page.locator(".ranking-table .tabulator").bounding_box()
    for title in ("feature", "auroc", "low", "high", "direction"):
        header = page.locator(f'.ranking-table .tabulator-col[tabulator-field="{title}"]')
        expect(header).to_be_visible()
        box = header.bounding_box()
        assert box["x"] + box["width"] <= table["x"] + table["width"] + 1, (title, box, table)
        assert header.locator(".tabulator-col-title").evaluate("e => e.scrollWidth <= e.clientWidth + 1"), title
    numbers = page.locator('.ranking-table .tabulator-row [tabulator-field="feature"]').all_inner_texts()
    assert all(n.strip().isdigit() for n in numbers), numbers
    screenshot("ranked")
    # a feature the store lacks is refused with a message, the box back on the feature shown (item 9)
    feature = page.locator(".feature-input input")
    shown = feature.input_value()
    feature.fill("5000")
    feature.press("Enter")
    expect(page.locator(".atlas-error")).to_contain_text("Feature 5000 does not exist")
    expect(feature).to_have_value(shown)
    expect(page.locator(".atlas-title")).to_contain_text(f"Feature {shown}")
    first = page.locator(".atlas-card").first
    galaxy = first.locator("pre").inner_text().split(" |")[0]
    page.locator(".subspace-search button").click()
    comparison = page.locator(".subspace-result pre")
    expect(comparison).to_contain_text("best 20 features")
    first.get_by_role("button", name="search from it").click()
    expect(page.locator(".prototype-caption")).to_contain_text(galaxy)
    expect(page.locator(".oneshot-stats")).to_contain_text("direct search")
    page.get_by_text("Feature atlas", exact=True).click()
    expect(comparison).to_have_text("")  # it was the old prototype's (item 7)
