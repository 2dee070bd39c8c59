"""Galaxy thumbnails, and the one-shot tab's "Browse prototypes": the galaxies of the open set
(or only those with the counted label), a page of thumbnails at a time, each a button that makes
it the prototype."""

from __future__ import annotations

import io

import numpy as np
import panel as pn
import param

from explorer.text import Text
from pipeline.oneshot.stats import is_positive

THUMB_PX = 96
BROWSE_PAGE = 24


def png_bytes(rgb: np.ndarray, px: int = THUMB_PX) -> bytes:
    """An RGB image as a PNG of px x px (nearest-neighbour up, bilinear down)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).resize((px, px), Image.NEAREST if rgb.shape[0] <= px else Image.BILINEAR).save(buffer, "PNG")
    return buffer.getvalue()


class GalaxyBrowser(pn.viewable.Viewer):
    """Pages of the set open in a :class:`explorer.oneshot_view.OneShotViewer` (its store, counted
    label, thumbnails and ``choose``)."""

    page = param.Integer(default=0, bounds=(0, None))
    only_positive = param.Boolean(default=False, doc="Browse only galaxies with the counted label")

    def __init__(self, oneshot, **params):
        super().__init__(**params)
        self.oneshot = oneshot

    def rows(self, positive_only: bool | None = None) -> list[int]:
        """Catalogue rows browsed: every galaxy, or those whose counted label has the counted value."""
        o = self.oneshot
        only = self.only_positive if positive_only is None else positive_only
        if only and o.label is not None and o.positive is not None:
            return [int(i) for i in np.flatnonzero(is_positive(o.labelled_catalog()[o.label], o.positive))]
        return list(range(len(o.store.catalog)))

    def panel(self):
        o = self.oneshot
        if o.store is None:
            return pn.pane.Markdown("")
        rows = self.rows()
        pages = max(1, -(-len(rows) // BROWSE_PAGE))
        page = min(self.page, pages - 1)
        cards = []
        for r in rows[page * BROWSE_PAGE:(page + 1) * BROWSE_PAGE]:
            gid = str(o.store.catalog["id"][r])
            use = pn.widgets.Button(label=gid, width=THUMB_PX - 10, color="light", css_classes=["browse-pick"])
            use.on_click(lambda _, g=gid: o.choose(g))
            cards.append(pn.Column(pn.pane.PNG(o.thumbnail(gid), width=THUMB_PX - 24), use, width=THUMB_PX))
        prev_button = pn.widgets.Button(label="◀", width=40, disabled=page == 0)
        next_button = pn.widgets.Button(label="▶", width=40, disabled=page >= pages - 1)
        prev_button.on_click(lambda _: setattr(self, "page", max(0, page - 1)))
        next_button.on_click(lambda _: setattr(self, "page", page + 1))
        return pn.Column(pn.Row(prev_button, Text(f"page {page + 1} of {pages} ({len(rows):,} galaxies)"), next_button),
                         pn.FlexBox(*cards))

    def __panel__(self):
        o = self.oneshot
        return pn.Column(
            pn.widgets.Checkbox.from_param(self.param.only_positive, name="only galaxies with the counted label"),
            pn.bind(lambda *_: self.panel(), self.param.page, self.param.only_positive, o.param.version,
                    o.param.positive))
