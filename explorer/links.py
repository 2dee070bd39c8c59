"""Shareable links: the page's address carries what is shown, so that a link reopens it.

``?tab=learn&lesson=...&step=2&present=1`` or ``?tab=cubes&cube=...&channel=40``: the tab (by
name), the cube of the cube tab and its channel, the Learn tab's lesson, step and presenter mode.
The address follows every change (Panel's ``pn.state.location``, without reloading the page); a
visitor who opens such a link gets the same view. A value the page cannot show (an unknown tab or
cube, a channel past the cube's end, a step the lesson does not have, text where a number belongs)
is ignored, with a notice saying which, never an error page.
"""

from __future__ import annotations

import panel as pn

from explorer.text import escaped

#: the tabs by the names links use, in the order of the app's tabs
TABS = ("cubes", "vetting", "oneshot", "atlas", "learn")


class Links:
    """Restore a link's view (:meth:`restore`, once the page has loaded) and keep the address up
    to date with the app's ``tabs``, ``cubes`` (a CubeExplorer) and ``learn`` (a LearnViewer)."""

    def __init__(self, tabs, cubes, learn, location=None):
        self.tabs, self.cubes, self.learn = tabs, cubes, learn
        self.location = location if location is not None else pn.state.location
        self.notice = ""  # the notice shown (HTML-escaped), for whoever asks
        self._viewer = None  # the cube viewer whose channel the address follows

    def restore(self) -> None:
        """Show what the address asks for, in order (the cube before its channel, the lesson before
        its step), then follow changes."""
        if self.location is None:
            return
        query = dict(self.location.query_params)
        ignored = []

        def apply(key, action):
            if key not in query:
                return
            try:
                if action(query[key]) is False:
                    raise ValueError
            except (ValueError, TypeError, IndexError, KeyError):
                ignored.append(f"{key}={query[key]}")

        apply("cube", self._set_cube)
        apply("channel", self._set_channel)
        apply("lesson", lambda title: setattr(self.learn, "lesson", str(title)))
        apply("step", lambda step: setattr(self.learn, "step", self._number(step) - 1))
        apply("present", lambda flag: setattr(self.learn, "presenter", {0: False, 1: True}[flag]))
        apply("tab", lambda name: setattr(self.tabs, "active", TABS.index(str(name))))
        if ignored:
            # the values are a visitor's text, and a notification renders HTML: escaped, and cut short
            shown = ", ".join(escaped(value if len(value) <= 60 else value[:60] + "...") for value in ignored)
            self.notice = (f"This link's {shown} could not be shown (a name or number this page does not have): "
                           "the rest of it is.")
            if pn.state.notifications is not None:
                pn.state.notifications.warning(self.notice, duration=10_000)
        self.follow()

    def follow(self) -> None:
        """Write every change of tab, cube, channel, lesson, step and presenter mode into the address."""
        self.tabs.param.watch(lambda e: self._write(tab=TABS[e.new]), "active")
        self.cubes.param.watch(lambda e: self._on_cube(), "source")
        self.learn.param.watch(lambda *_: self._write(lesson=self.learn.lesson, step=self.learn.step + 1),
                               ["lesson", "step"])
        self.learn.param.watch(lambda e: self._write(present=int(e.new)), "presenter")
        self._on_cube()

    # ---- the cube and its channel ---------------------------------------------------------
    def _on_cube(self) -> None:
        viewer = self.cubes.viewer
        if viewer is self._viewer or viewer is None:
            return
        self._viewer = viewer
        viewer.param.watch(lambda e: viewer is self._viewer and self._write(channel=e.new), "channel")
        self._write(cube=self.cubes.source, channel=viewer.channel)

    def _set_cube(self, name) -> bool:
        if str(name) not in self.cubes.param.source.objects:
            return False
        self.cubes.source = str(name)
        return self.cubes.source == str(name)

    def _set_channel(self, channel) -> bool:
        viewer = self.cubes.viewer
        channel = self._number(channel)
        if viewer is None or not 0 <= channel <= viewer.param.channel.bounds[1]:
            return False
        viewer.channel = channel
        return True

    @staticmethod
    def _number(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(value)
        return int(value)

    def _write(self, **values) -> None:
        if self.location is not None:
            self.location.update_query(**values)
