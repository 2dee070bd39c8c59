"""The feature atlas tab in real Chromium, against `panel serve app.py`."""

from playwright.sync_api import expect


def test_atlas_gallery_ranking_and_link_to_search(page, served_app_with_stores, screenshot):
    page.goto(served_app_with_stores, timeout=90_000)
    page.get_by_text("Feature atlas", exact=True).click()
    expect(page.locator(".atlas-title")).to_contain_text("Feature 835", timeout=90_000)
    expect(page.locator(".atlas-card")).to_have_count(12, timeout=60_000)
    page.locator(".rank-features button").click()
    expect(page.locator(".atlas-title")).to_contain_text("AUROC for bpt_class = AGN", timeout=60_000)
    expect(page.locator(".ranking-table")).to_contain_text("higher")
    screenshot("ranked")
    first = page.locator(".atlas-card").first
    galaxy = first.locator("pre").inner_text().split(" |")[0]
    first.get_by_role("button", name="search from it").click()
    expect(page.locator(".prototype-caption")).to_contain_text(galaxy)
    expect(page.locator(".oneshot-stats")).to_contain_text("direct search")
