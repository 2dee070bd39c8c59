"""Text from files and visitors, shown as text: never as HTML or Markdown, never with a server path.

A FITS header, a file name, a catalogue string, a galaxy id or label, an error message: all of it
is data. Panel's ``Str`` pane puts its text inside ``<pre>`` unescaped and its ``Markdown`` and
``Alert`` panes pass raw HTML, so text from a file there would run in the visitor's browser.
Every such text goes through :class:`Text` or :class:`Alert` here, which escape it, and every
message for a visitor through :func:`for_visitor`, which keeps server paths out of it (the full
message, with its paths, goes to the server log).
"""

from __future__ import annotations

import html
import logging
import re

import panel as pn
import param

from explorer.files import shown_path

log = logging.getLogger("explorer")

# an absolute path: "/" then at least one more "/" part (so "km/s" or "Jy/beam" are not paths)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/])(/[^\s/'\"()\[\],;:]+)+/?")


def escaped(text) -> str:
    """``text`` with the characters HTML gives meaning to replaced by entities."""
    return html.escape("" if text is None else str(text), quote=True)


class Text(pn.pane.Str):
    """Preformatted text (a FITS header, a file name, a caption) shown exactly as it is, in the
    page's own colours whatever the theme, single-spaced; ``wrap``: long lines wrap instead of
    running out of their box."""

    _STYLE = "pre {color: inherit; background: none; border: 0; line-height: 1.35; margin: 0;}"
    _WRAP = "pre {white-space: pre-wrap; overflow-wrap: anywhere;}"

    def __init__(self, object=None, wrap: bool = False, **params):
        params["stylesheets"] = [self._STYLE, *([self._WRAP] if wrap else []), *params.get("stylesheets", [])]
        super().__init__(object, **params)
        self._usual_stylesheets = list(self.stylesheets)

    def scale_font(self, scale: float) -> None:
        """Text ``scale`` times its usual size (presenter mode); 1 puts it back."""
        larger = [f"pre {{font-size: {100 * scale:.0f}% !important;}}"] if scale != 1 else []
        self.stylesheets = [*self._usual_stylesheets, *larger]

    def _transform_object(self, obj):
        if obj is None or (isinstance(obj, str) and obj == ""):
            return super()._transform_object(obj)
        return super()._transform_object(escaped(obj))


class Prose(Text):
    """Running text from a file (a set's notes, a store's description): wrapped, in the page's font."""

    def __init__(self, object=None, **params):
        params["stylesheets"] = [*params.get("stylesheets", []), "pre {font-family: inherit;}"]
        super().__init__(object, wrap=True, **params)


class Alert(pn.pane.Alert):
    """A Bootstrap alert whose message is plain text with its paths made relative
    (:func:`for_visitor`); Panel's own Alert renders Markdown and raw HTML."""

    def _transform_object(self, obj):
        body = f'<p style="white-space: pre-wrap; margin: 0">{escaped(for_visitor(obj))}</p>' if obj else ""
        return {"object": html.escape(body)}  # escaped once more for the trip, as Panel's panes do


def for_visitor(message) -> str:
    """A message fit to show a visitor: every absolute path in it replaced by :func:`shown_path`."""
    return _ABSOLUTE_PATH.sub(lambda m: shown_path(m.group(0)), "" if message is None else str(message))


class TextTable(pn.widgets.Tabulator):
    """Panel's Tabulator with its column titles shown as text (Tabulator renders titles as HTML;
    a catalogue's column names come from a file). Cells are text already."""

    @param.depends("value", watch=True, on_init=True)
    def _titles_as_text(self):
        columns = [] if self.value is None else [str(c) for c in self.value.columns]
        titles = {c: escaped(c) for c in columns if escaped(c) != c}
        if titles != self.titles:
            self.titles = titles
