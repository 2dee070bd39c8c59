"""The Models tab in Chromium, on the studies and exported models that ship with the project."""

from playwright.sync_api import expect

from pipeline.automl.exported import shipped_exports


def test_models_tab_shows_the_study_and_answers_simulations_three_ways(page, served_app, screenshot):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{served_app}?tab=models", timeout=90_000)
    best = page.locator(".models-best")
    expect(best).to_contain_text("best trial", timeout=90_000)
    about, scores = page.locator(".models-about"), page.locator(".models-scores")
    expect(about).to_contain_text("held-out simulation 1 of", timeout=90_000)
    for who in ("exported model", "hand-designed DECORAS", "classic baseline"):
        expect(scores).to_contain_text(who)
    page.get_by_role("button", name="New simulation").click()
    expect(about).to_contain_text("new simulation (seed 10000000)", timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    screenshot("first-study")
    page.get_by_role("button", name="Back to held-out").click()
    expect(about).to_contain_text("held-out simulation 1 of", timeout=60_000)
    studies = page.locator("select").first
    for name in shipped_exports():
        studies.select_option(name)
        expect(best).to_contain_text(f"study {name} (task {name})", timeout=60_000)
        expect(about).to_contain_text("held-out simulation 1 of", timeout=60_000)
        expect(scores).to_contain_text("classic baseline")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        screenshot(f"study-{name}")
