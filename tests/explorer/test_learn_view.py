"""The Learn tab without a browser: steps, the interferometer lesson's widgets and its uploads, the
statistics lesson over the one-shot tab's set."""

import io

import numpy as np
import panel as pn
from PIL import Image

from explorer import uploads
from explorer.learn_view import LESSONS, LearnViewer
from explorer.lesson_interferometer import STEPS
from tests.explorer.test_oneshot_view import index_dir, viewer  # noqa: F401 -- the module's fixtures, by name


def test_steps_go_back_and_forth_within_the_lesson():
    view = LearnViewer()
    assert view.step == 0 and view._back.disabled and "Step 1 of 4: The array" in view._heading.object
    for _ in range(10):
        view.go(+1)
    assert view.step == len(STEPS) - 1 and view._next.disabled and not view._back.disabled
    assert view._text.object == STEPS[-1][1]
    view._keys._handle_msg("ArrowLeft")
    assert view.step == len(STEPS) - 2
    view.go(-10)
    assert view.step == 0


def test_every_step_draws_and_every_widget_redraws():
    view = LearnViewer()
    lesson = view.live
    for step in range(len(STEPS)):
        pn.panel(lesson._step_plots(step)).get_root()  # renders, as the browser's page would get it
    before = lesson.result
    lesson.config = "alma.cycle11.10"
    assert lesson.result is not before and lesson.result.beam[0] < 0.05 and "alma.cycle11.10" in lesson._numbers.object
    lesson.frequency_ghz, lesson.sky, lesson.extent = 100.0, "galaxy", 2.0
    assert lesson.result.frequency_hz == 100e9 and lesson.result.cell_arcsec == 2.0 * 2 / 256


def test_a_setting_that_cannot_be_observed_is_explained_and_the_last_result_stays():
    lesson = LearnViewer().live
    good = lesson.result
    lesson.hour_angles = (0.0, 0.001)
    assert lesson._error.visible and "shorter than a minute" in lesson._error.object and lesson.result is good
    lesson.hour_angles = (5.0, 6.0)
    good = lesson.result
    lesson.declination = 45.0  # from ALMA (latitude -23 deg) below the horizon five hours from transit
    assert lesson._error.visible and "never above" in lesson._error.object and lesson.result is good
    lesson.hour_angles = (-1.0, 1.0)
    assert not lesson._error.visible and lesson.result is not good


def test_an_uploaded_image_becomes_the_sky_and_bad_uploads_are_refused():
    lesson = LearnViewer().live
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[15:25, 10:30] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    lesson._upload.filename = "../my <b>sky.png"
    lesson._upload.value = buffer.getvalue()
    assert lesson.sky == "image" and not lesson._error.visible
    assert lesson.result.sky.sum() > 0 and lesson.result.sky[128, 128] > 0
    assert f"sky: {uploads.safe_name('my <b>sky.png')}" in lesson._numbers.object  # shown by Text, escaped
    assert not any(uploads.session_folder().iterdir())  # read, then removed
    lesson._upload.filename = "notes.txt"
    lesson._upload.value = b"hello"
    assert lesson._error.visible and "upload PNG, JPEG or FITS" in lesson._error.object
    lesson._upload.filename = "big.png"
    lesson._upload.value = b"\x89PNG" + b"\0" * (uploads.IMAGE_LIMIT_BYTES + 1)
    assert "limited to" in lesson._error.object


# ---- lesson 4: one-shot search and statistics, over the one-shot tab's set -------------------


def test_statistics_lesson_steps_on_the_one_shot_tabs_set(viewer):  # noqa: F811
    view = LearnViewer(viewer)
    view.lesson = "One-shot search and statistics"
    lesson = view.live
    assert lesson.oneshot is viewer and lesson.prototype is not None
    assert viewer._label_of(lesson.prototype) == "AGN"  # a galaxy of the counted label
    for step in range(5):
        pn.panel(lesson._step_plot(step)).get_root()
        assert not lesson._error.visible, (step, lesson._error.object)
    text = lesson._numbers.object
    assert "bpt_class = AGN: base rate" in text and "95% Wilson interval" in text and "p-value" in text
    s = lesson.found(lesson.n)
    assert s["n"] == lesson.n and s["low"] <= s["fraction"] <= s["high"]
    # chance: the draws' histogram agrees with the exact distribution
    chance = lesson.chance()
    assert len(chance) == lesson.draws and abs(chance.mean() - s["base_rate"]) < 0.03
    before = lesson.version
    lesson.n = 20
    assert lesson.version > before and "of its 20 nearest" in lesson._numbers.object
    viewer.positive = "star-forming"  # the one-shot tab counts another value: the lesson follows
    assert viewer._label_of(lesson.prototype) == "star-forming" and "bpt_class = star-forming" in lesson._numbers.object


def test_presenter_mode_makes_text_and_plots_larger_and_back():
    from bokeh.models import Plot

    view = LearnViewer()
    lesson = view.live
    pn.panel(view).get_root()
    usual = [p.frame_width for p in pn.panel(lesson._step_plots(3)).get_root().select({"type": Plot})]
    view.presenter = True
    assert lesson.scale == 1.5 and not view._picker.visible and view._frame.width == 510
    assert any("150%" in css for css in view._text.stylesheets if isinstance(css, str))
    larger = [p.frame_width for p in pn.panel(lesson._step_plots(3)).get_root().select({"type": Plot})]
    assert larger == [int(w * 1.5) for w in usual]
    view.presenter = False
    assert lesson.scale == 1.0 and view._picker.visible and not any(
        "150%" in css for css in view._text.stylesheets if isinstance(css, str))
    view._keys._handle_msg("PageDown")  # a clicker's key
    assert view.step == 1


def test_a_step_saves_as_a_standalone_page():
    view = LearnViewer()
    view.live.param.update(config="alma.cycle11.1", sky="disc")
    view.step = 3
    html = view.handout().getvalue().decode()
    assert view._save.filename == "how-an-interferometer-sees-step-4.html"
    assert "Step 4 of 4: The dirty image" in html and "alma.cycle11.1: 43 antennas" in html
    assert "cdn.bokeh.org" not in html and "Bokeh" in html  # the scripts inline: it opens offline
    assert html.count('"type":"Figure"') + html.count('"name":"Figure"') >= 2  # the sky and its dirty image


def test_the_statistics_step_saves_too(viewer):  # noqa: F811
    view = LearnViewer(viewer)
    view.lesson = "One-shot search and statistics"
    view.step = 3
    html = view.handout().getvalue().decode()
    assert "The p-value" in html and "bpt_class = AGN: base rate" in html


def test_no_lesson_is_made_before_the_tab_is_shown():
    """Every page's server script makes a LearnViewer: its lessons (an observation, arrays of
    megabytes) must wait until the tab is shown."""
    view = LearnViewer(presenter=True)
    view.lesson = list(LESSONS)[1]
    assert view._live == {}
    pn.panel(view).get_root()  # the tab shown
    assert list(view._live) == [list(LESSONS)[1]]
