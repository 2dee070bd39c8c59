"""Shareable links: the address carries the tab, cube, channel, lesson and step; bad values are
ignored with a notice."""

import panel as pn
from panel.io.location import Location

from explorer.cube_explorer import CubeExplorer
from explorer.learn_view import LESSONS, LearnViewer
from explorer.links import TABS, Links
from explorer.oneshot_view import OneShotViewer
from tests.explorer.test_oneshot_view import index_dir, viewer  # noqa: F401 -- the module's fixtures, by name


def app(search: str):
    tabs = pn.Tabs(*((name, pn.Column()) for name in TABS))
    links = Links(tabs, CubeExplorer(), LearnViewer(), location=Location(search=search))
    links.restore()
    return links


def test_a_link_reopens_what_was_shown_and_the_address_follows_changes():
    second = list(LESSONS)[1]
    links = app(f"?tab=learn&lesson={second.replace(' ', '+')}&step=3&cube=NGC4324.co.fits&channel=7")
    assert links.tabs.active == TABS.index("learn") and links.learn.lesson == second and links.learn.step == 2
    assert links.cubes.source == "NGC4324.co.fits" and links.cubes.viewer.channel == 7 and links.notice == ""
    links.learn.go(+1)
    links.cubes.viewer.channel = 9
    links.tabs.active = TABS.index("oneshot")
    query = links.location.query_params
    assert query["step"] == 4 and query["channel"] == 9 and query["tab"] == "oneshot"
    links.cubes.source = "sim_7_0000.fits"  # another cube: its channel is followed, the old viewer's not
    query = links.location.query_params
    assert query["cube"] == "sim_7_0000.fits" and query["channel"] == links.cubes.viewer.channel


def test_bad_or_stale_values_are_ignored_with_a_notice():
    links = app("?tab=nowhere&cube=gone.fits&channel=9999&lesson=Astrology&step=x&extra=1")
    assert links.tabs.active == 0 and links.cubes.source == "sim_7_0000.fits" and links.learn.step == 0
    for shown in ("tab=nowhere", "cube=gone.fits", "channel=9999", "lesson=Astrology", "step=x"):
        assert shown in links.notice
    assert "extra" not in links.notice  # not one of the link's keys: not looked at
    links = app("?step=9&channel=-1&tab=learn")  # the first lesson has 4 steps; channels start at 0
    assert "step=9" in links.notice and "channel=-1" in links.notice and links.tabs.active == TABS.index("learn")


def test_a_links_values_are_shown_as_text():
    links = app("?cube=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&lesson=" + "x" * 500)
    assert "&lt;img src=x onerror=alert(1)&gt;" in links.notice and "<img" not in links.notice
    assert len(links.notice) < 400  # a long value is cut short


def test_presenter_mode_travels_in_the_link():
    links = app("?tab=learn&present=1")
    assert links.learn.presenter and links.notice == ""
    links.learn.presenter = False
    assert links.location.query_params["present"] == 0
    assert "present=yes" in app("?present=yes").notice


def test_a_link_reruns_the_finder_and_selects_its_source():
    links = app("?tab=cubes&cube=sim_7_0000.fits&detector=photutils&source=2")
    detection = links.cubes.detection  # without a server the run ends before restore returns
    assert detection.catalog is not None and detection.shown_detector == "photutils"
    assert detection.selected == 2 and links.notice == ""
    detection.selected = 1
    query = links.location.query_params
    assert query["source"] == 1 and query["detector"] == "photutils"
    links.cubes.source = "NGC4324.co.fits"  # another cube: the source was the last one's
    assert "source" not in links.location.query_params and "detector" not in links.location.query_params
    missing = app("?cube=sim_7_0000.fits&source=99").cubes.detection
    assert missing.selected is not None and "source 99 is not in this catalogue" in missing._error.object
    assert "detector=nothing" in app("?source=1&detector=nothing").notice
    assert "detector=pipeline" in app("?detector=pipeline").notice  # a finder without a source: nothing to show


def test_a_link_opens_the_galaxy_set_and_searches_from_its_prototype(viewer):  # noqa: F811
    tabs = pn.Tabs(*((name, pn.Column()) for name in TABS))
    wanted = str(viewer.store.catalog["id"][7])
    links = Links(tabs, CubeExplorer(), LearnViewer(viewer), viewer,
                  location=Location(search=f"?set={viewer.galaxy_set.replace(' ', '+')}&prototype={wanted}"))
    links.restore()  # the set is open: the search starts at once
    assert viewer.prototype == wanted and viewer.result is not None and links.notice == ""
    other = str(viewer.store.catalog["id"][3])
    viewer.choose(other)
    assert links.location.query_params["prototype"] == other
    assert "set=Nowhere" in app_with(viewer, "?set=Nowhere&prototype=x").notice


def test_a_prototype_waits_for_its_set_and_a_missing_one_is_said(index_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(index_dir))
    fresh = OneShotViewer()
    app_with(fresh, "?prototype=SIM000012")
    assert fresh.store is None and fresh.wanted == "SIM000012"
    fresh.activate()  # the tab is shown: the set opens, and the search starts from the link's galaxy
    assert fresh.prototype == "SIM000012" and fresh.wanted == ""
    late = OneShotViewer()
    app_with(late, "?prototype=NOT-A-GALAXY")
    late.activate()
    assert late.prototype and late.prototype != "NOT-A-GALAXY" and "NOT-A-GALAXY is not in" in late._error.object


def app_with(oneshot, search: str):
    tabs = pn.Tabs(*((name, pn.Column()) for name in TABS))
    links = Links(tabs, CubeExplorer(), LearnViewer(oneshot), oneshot, location=Location(search=search))
    links.restore()
    return links
