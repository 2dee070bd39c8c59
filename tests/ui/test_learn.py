"""The Learn tab in real Chromium, against `panel serve app.py`: the interferometer lesson, the dirty
cube and the pipeline lessons, links, presenter mode and handouts."""


import pytest
from playwright.sync_api import expect

from tests.ui.conftest import fits_the_window, open_lesson


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_interferometer_lesson_steps_widgets_and_layout(page, served_app, screenshot, size):
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(served_app, timeout=90_000)
    page.get_by_text("Learn", exact=True).click()
    heading, numbers = page.locator(".lesson-heading"), page.locator(".lesson-numbers")
    expect(heading).to_contain_text("Step 1 of 4: The array", timeout=60_000)
    expect(numbers).to_contain_text("alma.cycle9.3: 43 antennas")
    expect(page.locator(".lesson-back button")).to_be_disabled()
    page.locator(".lesson-next button").click()
    expect(heading).to_contain_text("Step 2 of 4")
    expect(page.locator(".bk-Figure")).to_have_count(2)  # antennas and uv coverage, drawn
    page.locator("body").click(position={"x": 5, "y": size[1] - 5})  # the page, not a widget, has the focus
    page.keyboard.press("ArrowRight")
    expect(heading).to_contain_text("Step 3 of 4: The dirty beam")
    expect(numbers).to_contain_text("largest sidelobe")
    beam = page.locator(".lesson-numbers pre").inner_text()
    # a compact configuration: a larger beam, said in the numbers
    page.locator(".lesson-controls select").first.select_option("alma.cycle11.1")
    expect(numbers).to_contain_text("alma.cycle11.1: ")
    assert page.locator(".lesson-numbers pre").inner_text() != beam
    page.locator(".lesson-next button").click()
    expect(heading).to_contain_text("Step 4 of 4: The dirty image")
    expect(page.locator(".lesson-next button")).to_be_disabled()
    expect(page.locator(".bk-Figure")).to_have_count(2)  # the sky and its dirty image
    fits_the_window(page, size[0])
    screenshot(f"dirty-image-{size[0]}")


def test_a_link_reopens_the_lesson_step_and_a_bad_one_says_so(page, served_app, screenshot):
    page.goto(f"{served_app}?tab=learn&step=3&channel=5", timeout=90_000)
    heading = page.locator(".lesson-heading")
    expect(heading).to_contain_text("Step 3 of 4: The dirty beam", timeout=60_000)
    page.locator(".lesson-next button").click()
    expect(heading).to_contain_text("Step 4 of 4")
    page.wait_for_function("() => window.location.search.includes('step=4')")
    assert "tab=learn" in page.url and "channel=5" in page.url
    page.goto(f"{served_app}?tab=learn&step=x&cube=nothing.fits", timeout=90_000)
    toast = page.locator(".notyf__toast")
    expect(toast).to_contain_text("step=x", timeout=60_000)
    expect(toast).to_contain_text("cube=nothing.fits")
    expect(heading).to_contain_text("Step 1 of 4")  # the rest of the link is shown
    screenshot("bad-link")


def test_presenter_mode_from_a_link(page, served_app, screenshot):
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{served_app}?tab=learn&step=4&present=1", timeout=90_000)
    expect(page.locator(".lesson-heading")).to_contain_text("Step 4 of 4", timeout=60_000)
    figures = page.locator(".bk-Figure")
    expect(figures).to_have_count(2)
    page.wait_for_timeout(500)
    assert all(f.bounding_box()["width"] > 550 for f in figures.all())  # 1.5 times the usual plots
    assert page.evaluate("document.documentElement.scrollWidth") <= 1920
    page.keyboard.press("PageUp")  # a presentation clicker's key
    expect(page.locator(".lesson-heading")).to_contain_text("Step 3 of 4")
    page.wait_for_timeout(1500)  # the step's plots drawn
    screenshot("presenter-1920")
    size = "e => parseFloat(getComputedStyle(e).fontSize)"
    large = page.locator(".lesson-text pre").evaluate(size)
    select = page.locator(".lesson-controls select").first  # a lesson widget: zoomed, its label and input larger
    zoomed = select.bounding_box()
    page.locator(".presenter-toggle button").click()  # off, on a page already drawn
    expect(page.locator(".lesson-guide select").first).to_be_visible()  # the lesson picker is back
    for _ in range(50):  # while the new text's styles load
        if page.locator(".lesson-text pre").evaluate(size) == pytest.approx(large / 1.5, abs=0.5):
            break
        page.wait_for_timeout(100)
    assert page.locator(".lesson-text pre").evaluate(size) == pytest.approx(large / 1.5, abs=0.5)
    assert zoomed["height"] == pytest.approx(1.5 * select.bounding_box()["height"], rel=0.05)


def test_a_step_saved_as_html_opens_without_the_server(page, served_app, tmp_path, browser):
    page.goto(f"{served_app}?tab=learn&step=2", timeout=90_000)
    expect(page.locator(".lesson-heading")).to_contain_text("Step 2 of 4", timeout=60_000)
    with page.expect_download(timeout=60_000) as download:
        page.locator(".lesson-save button, .lesson-save a").first.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "how-an-interferometer-sees-step-2.html"
    offline = browser.new_context(offline=True).new_page()
    offline.goto(saved.as_uri())
    expect(offline.locator(".bk-Figure")).to_have_count(2, timeout=60_000)  # antennas and uv coverage, drawn
    expect(offline.get_by_text("Earth rotation fills the uv plane").first).to_be_visible()
    offline.context.close()


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_dirty_cube_lesson_compares_the_finders_and_explains_the_sidelobes(page, served_app, screenshot, size):
    heading, numbers = open_lesson(page, served_app, "Why dirty cubes are hard", size)
    expect(heading).to_contain_text("Step 1 of 5: A bright source and faint ones", timeout=60_000)
    expect(numbers).to_contain_text("5 true sources", timeout=90_000)  # simulated and searched in a worker
    expect(page.locator(".bk-Figure")).to_have_count(2)
    titles = ["A classic finder", "The pipeline beside it", "Sidelobes, seen with the dirty beam"]
    for step, title in enumerate(titles, start=2):
        page.locator(".lesson-next button").click()
        expect(heading).to_contain_text(f"Step {step} of 5: {title}")
    expect(numbers).to_contain_text("its dirty beam puts")
    expect(numbers).to_contain_text("pipeline:")
    fits_the_window(page, size[0])
    screenshot(f"sidelobes-{size[0]}")
    page.locator(".lesson-next button").click()
    expect(numbers).to_contain_text("flagged as sidelobes and dropped")
    if size[0] > 1280:
        return  # a widget's new run: once is enough
    before = page.locator(".lesson-numbers pre").inner_text()
    page.locator(".lesson-controls select").first.select_option("pybdsf")  # the other classic finder: a new run
    expect(numbers).to_contain_text("pybdsf:", timeout=90_000)
    assert page.locator(".lesson-numbers pre").inner_text() != before
    fits_the_window(page, size[0])


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_pipeline_lesson_goes_stage_by_stage_with_the_truth(page, served_app, screenshot, size):
    heading, numbers = open_lesson(page, served_app, "Inside the pipeline", size)
    expect(numbers).to_contain_text("6 true sources", timeout=90_000)
    titles = ["The Blobs Finder's map", "Boxes", "Box spectra", "The Deep GRU", "Focusing", "The ResNets"]
    for step, title in enumerate(titles, start=2):
        page.locator(".lesson-next button").click()
        expect(heading).to_contain_text(f"Step {step} of 7: {title}")
        if title == "Boxes":
            expect(numbers).to_contain_text("4 boxes")
            fits_the_window(page, size[0])
        if title == "The Deep GRU":
            fits_the_window(page, size[0])
            screenshot(f"deep-gru-{size[0]}")
    expect(numbers).to_contain_text("measured")
    if size[0] > 1280:
        return  # another box: once is enough
    table = page.locator(".lesson-numbers pre").inner_text()
    page.locator(".lesson-controls select").first.select_option(index=1)  # another box
    expect(numbers).not_to_have_text(table)
    fits_the_window(page, size[0])
    screenshot(f"resnets-{size[0]}")
