"""The Learn tab's lessons on the one-shot tab's galaxy set (statistics, features) in real Chromium,
on the served app's galaxy set."""


import pytest
from playwright.sync_api import expect

from tests.ui.conftest import fits_the_window, open_lesson


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_statistics_lesson_follows_the_one_shot_tabs_set(page, served_app_with_stores, screenshot, size):
    page.set_viewport_size({"width": size[0], "height": size[1]})
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
    fits_the_window(page, size[0])
    screenshot(f"p-value-{size[0]}")
    page.locator(".lesson-controls .bk-input").nth(0).select_option(index=1)  # another prototype
    expect(numbers).not_to_contain_text("Opening")
    page.locator(".lesson-next button").click()
    expect(page.locator(".lesson-heading")).to_contain_text("Step 5 of 5: The recursive search")
    expect(page.locator(".lesson-plot")).to_be_visible()
    fits_the_window(page, size[0])
    screenshot(f"recursive-{size[0]}")


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_feature_lesson_ranks_and_shows_where_features_fire(page, served_app_with_stores, screenshot, size):
    heading, numbers = open_lesson(page, served_app_with_stores, "What does a feature see?", size)
    expect(numbers).to_contain_text("AUROC", timeout=120_000)
    expect(page.locator(".lesson-gallery img").first).to_be_visible()
    page.locator(".lesson-next button").click()
    expect(heading).to_contain_text("Step 2 of 5: Features that separate the label")
    expect(numbers).to_contain_text("the five best-separating features")
    page.locator(".lesson-controls input").first.fill("7")  # any feature by its number
    page.locator(".lesson-controls input").first.press("Enter")
    expect(numbers).to_contain_text("feature 7:")
    for step in (3, 4):
        page.locator(".lesson-next button").click()
        expect(heading).to_contain_text(f"Step {step} of 5")
    expect(numbers).to_contain_text("too small to have an inside")  # the test set's 64 px images: 2 x 2 maps
    expect(page.locator(".bk-Figure")).to_have_count(1)  # the chart of every feature
    fits_the_window(page, size[0])
    screenshot(f"edge-{size[0]}")
    page.locator(".lesson-next button").click()
    expect(numbers).to_contain_text("among the 10 nearest")
