"""Keyboard shortcuts: keys pressed anywhere on the page, while a view is shown, sent to Python."""

from __future__ import annotations

import param
from panel.custom import JSComponent


class Shortcuts(JSComponent):
    """Put one in a view's layout; while it is on the page, each key of ``keys`` pressed outside a
    text field (and without Ctrl, Alt or Meta) calls ``on_key(key)`` on the server. Keys are
    ``KeyboardEvent.key`` values ("r", "ArrowRight", ...)."""

    keys = param.List(default=[], item_type=str, doc="The keys sent to the server")

    _esm = """
    export function render({ model, el }) {
      const typing = (node) => node && (node.isContentEditable ||
        ["INPUT", "TEXTAREA", "SELECT"].includes(node.tagName))
      const onKey = (event) => {
        // Bokeh draws inside shadow roots: the event's first target is the element typed in
        const origin = event.composedPath()[0]
        if (typing(origin) || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return
        if (!model.keys.includes(event.key) || !el.isConnected || el.closest("[hidden]")) return
        event.preventDefault()
        model.send_msg(event.key)
      }
      document.addEventListener("keydown", onKey)
      model.on("remove", () => document.removeEventListener("keydown", onKey))
    }
    """

    def __init__(self, on_key, **params):
        super().__init__(**params)
        self._on_key = on_key

    def _handle_msg(self, key) -> None:
        if isinstance(key, str) and key in self.keys:
            self._on_key(key)
