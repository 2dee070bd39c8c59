"""Shareable links: the page's address carries what is shown, so that a link reopens it.

``?tab=learn&lesson=...&step=2&present=1``, ``?tab=cubes&cube=...&channel=40&detector=pipeline&source=3``
or ``?tab=oneshot&set=...&prototype=...``: the tab (by name); the cube of the cube tab, its channel,
and the source selected in a finder's catalogue (a link runs that finder again, the same catalogue
on the same cube, and selects it when it is done); the one-shot tab's galaxy set and prototype
(searched from when the set opens); the Learn tab's lesson, step and presenter mode. The address
follows every change (Panel's ``pn.state.location``, without reloading the page); a visitor who
opens such a link gets the same view. A value the page cannot show (an unknown tab, cube, set or
finder, a channel past the cube's end, a step the lesson does not have, text where a number
belongs) is ignored, with a notice saying which, never an error page; a source or prototype that
turns out missing once its catalogue or set is there is said in its tab.
"""

from __future__ import annotations

from urllib.parse import urlencode

import panel as pn

from explorer.text import escaped

#: the tabs by the names links use, in the order of the app's tabs
TABS = ("cubes", "vetting", "oneshot", "atlas", "learn", "models")


class Links:
    """Restore a link's view (:meth:`restore`, once the page has loaded) and keep the address up
    to date with the app's ``tabs``, ``cubes`` (a CubeExplorer), ``learn`` (a LearnViewer) and
    ``oneshot`` (a OneShotViewer, or None)."""

    def __init__(self, tabs, cubes, learn, oneshot=None, location=None):
        self.tabs, self.cubes, self.learn, self.oneshot = tabs, cubes, learn, oneshot
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
        detector, detection = str(query.get("detector", "pipeline")), getattr(self.cubes, "detection", None)
        if "source" in query and detection is not None and detector in detection.param.detector.objects:
            apply("source", lambda source: self._find_source(detector, source))
        elif "detector" in query:  # a finder this page does not have, or one without a source to show
            ignored.append(f"detector={query['detector']}")
        apply("set", self._set_galaxy_set)
        apply("prototype", self._set_prototype)
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
        """Write every change of tab, cube, channel, selected source, galaxy set, prototype, lesson,
        step and presenter mode into the address."""
        self.tabs.param.watch(lambda e: self._write(tab=TABS[e.new]), "active")
        if self.oneshot is not None:
            self.oneshot.param.watch(lambda e: self._write(set=e.new), "galaxy_set")
            # a prototype belongs to its set: both are written
            self.oneshot.param.watch(lambda e: self._write(set=self.oneshot.galaxy_set, prototype=e.new) if e.new
                                     else self._drop("prototype"), "prototype")
        self.cubes.param.watch(lambda e: self._on_cube(), "source")
        self.learn.param.watch(lambda *_: self._write(lesson=self.learn.lesson, step=self.learn.step + 1),
                               ["lesson", "step"])
        self.learn.param.watch(lambda e: self._write(present=int(e.new)), "presenter")
        self._on_cube()

    # ---- the cube, its channel and its selected source ---------------------------------------
    def _on_cube(self) -> None:
        viewer = self.cubes.viewer
        if viewer is self._viewer or viewer is None:
            return
        if self._viewer is not None:
            self._drop("source", "detector")  # the last cube's
        self._viewer = viewer
        viewer.param.watch(lambda e: viewer is self._viewer and self._write(channel=e.new), "channel")
        detection = self.cubes.detection
        detection.param.watch(lambda e: viewer is self._viewer and self._on_source(detection), "selected")
        self._write(cube=self.cubes.source, channel=viewer.channel)

    def _on_source(self, detection) -> None:
        if detection.selected is None or detection.catalog is None:
            self._drop("source", "detector")
        else:
            self._write(detector=detection.shown_detector, source=detection.selected)

    def _find_source(self, detector: str, source) -> bool:
        """Run ``detector`` on the cube shown and select ``source`` when it is done."""
        detection = self.cubes.detection
        detection.param.update(detector=detector, wanted=self._number(source))
        detection.start()
        return True

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

    # ---- the one-shot tab's set and prototype ------------------------------------------------
    def _set_galaxy_set(self, name) -> bool:
        if self.oneshot is None or str(name) not in self.oneshot.param.galaxy_set.objects:
            return False
        self.oneshot.galaxy_set = str(name)
        return True

    def _set_prototype(self, galaxy_id) -> bool:
        """Search from ``galaxy_id`` when the set opens (checked then), or now if it is open."""
        if self.oneshot is None or not str(galaxy_id).strip():
            return False
        if self.oneshot.store is None:
            self.oneshot.wanted = str(galaxy_id)
            return True
        if str(galaxy_id) not in set(str(i) for i in self.oneshot.store.catalog["id"]):
            return False
        self.oneshot.choose(str(galaxy_id))
        return True

    @staticmethod
    def _number(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(value)
        return int(value)

    def _write(self, **values) -> None:
        if self.location is not None:
            self.location.update_query(**values)

    def _drop(self, *keys) -> None:
        """Take ``keys`` out of the address (they no longer describe what is shown)."""
        if self.location is not None and any(key in self.location.query_params for key in keys):
            kept = {k: v for k, v in self.location.query_params.items() if k not in keys}
            self.location.search = ("?" + urlencode(kept)) if kept else ""
