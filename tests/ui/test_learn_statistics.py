"""The Learn tab's statistics lesson in real Chromium, on the served app's galaxy set."""

from playwright.sync_api import expect


def test_statistics_lesson_follows_the_one_shot_tabs_set(page, served_app_with_stores, screenshot):
    page.goto(served_app_with_stores, timeout=90_000)
    page.get_by_text("Learn", exact=True).click()
    page.locator(".lesson-guide select").first.select_option("One-shot search and statistics", timeout=60_000)
    numbers = page.locator(".lesson-numbers")
    expect(numbers).to_contain_text("bpt_class = AGN: base rate", timeout=90_000)
    expect(numbers).to_contain_text("95% Wilson interval")
    for step in (2, 3, 4):
        page.locator(".lesson-next button").click()
        expect(page.locator(".lesson-heading")).to_contain_text(f"Step {step} of 5")
    expect(page.locator(".lesson-plot")).to_be_visible()
    screenshot("p-value")
    page.locator(".lesson-controls .bk-input").nth(0).select_option(index=1)  # another prototype
    expect(numbers).not_to_contain_text("Opening")
    page.locator(".lesson-next button").click()
    expect(page.locator(".lesson-heading")).to_contain_text("Step 5 of 5: The recursive search")
    expect(page.locator(".lesson-plot")).to_be_visible()
    screenshot("recursive")
