"""Shareable links: the address carries the tab, cube, channel, lesson and step; bad values are
ignored with a notice."""

import panel as pn
from panel.io.location import Location

from explorer.cube_explorer import CubeExplorer
from explorer.learn_view import LESSONS, LearnViewer
from explorer.links import TABS, Links


def app(search: str):
    tabs = pn.Tabs(*((name, pn.Column()) for name in TABS))
    links = Links(tabs, CubeExplorer(), LearnViewer(), location=Location(search=search))
    links.restore()
    return links


def test_a_link_reopens_what_was_shown_and_the_address_follows_changes():
    statistics = list(LESSONS)[1]
    links = app(f"?tab=learn&lesson={statistics.replace(' ', '+')}&step=3&cube=NGC4324.co.fits&channel=7")
    assert links.tabs.active == TABS.index("learn") and links.learn.lesson == statistics and links.learn.step == 2
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
