"""Handouts: what is on screen saved as a file that keeps without the server, for a lecture or a
report: a lesson step, a vetting card or a neighbour gallery as one standalone HTML page (Bokeh's
scripts inline, the plots still zoomable, no network needed), and a gallery also as a PNG sheet.

A PNG of an arbitrary page needs a browser to draw it, which the server does not run; the sheet is
made from the gallery's own images and captions instead."""

from __future__ import annotations

import io

import panel as pn
from bokeh.resources import INLINE
from PIL import Image, ImageDraw, ImageFont

SHEET_COLUMNS = 6
SHEET_TILE_PX = 160
SHEET_MARGIN_PX = 12
SHEET_FONT_PX = 13
HIGHLIGHT = (214, 39, 40)  # a tile whose galaxy has the counted label: the gallery's red border


def html_page(title: str, *objects) -> io.BytesIO:
    """``objects`` (Panel or HoloViews objects, text) as one standalone HTML page."""
    out = io.StringIO()
    pn.Column(*objects).save(out, resources=INLINE, title=title)
    return io.BytesIO(out.getvalue().encode())


def contact_sheet(title: str, tiles: list[tuple[bytes, str, bool]], footer: str = "") -> io.BytesIO:
    """A PNG sheet of ``tiles`` (image file bytes, caption, highlighted), ``SHEET_COLUMNS`` a row,
    under ``title`` and over ``footer``; highlighted tiles get a red border."""
    font = ImageFont.load_default(size=SHEET_FONT_PX)
    line = SHEET_FONT_PX + 4
    caption_lines = max([caption.count("\n") + 1 for _, caption, _ in tiles] or [1])
    tile_h = SHEET_TILE_PX + caption_lines * line + SHEET_MARGIN_PX
    columns = min(SHEET_COLUMNS, max(len(tiles), 1))
    rows = -(-len(tiles) // columns) if tiles else 0
    head = (title.count("\n") + 1) * line + SHEET_MARGIN_PX
    foot = (footer.count("\n") + 1) * line + SHEET_MARGIN_PX if footer else 0
    width = columns * (SHEET_TILE_PX + SHEET_MARGIN_PX) + SHEET_MARGIN_PX
    sheet = Image.new("RGB", (max(width, 480), head + rows * tile_h + foot + SHEET_MARGIN_PX), "white")
    draw = ImageDraw.Draw(sheet)
    draw.multiline_text((SHEET_MARGIN_PX, SHEET_MARGIN_PX // 2), title, fill="black", font=font, spacing=4)
    for i, (image, caption, highlighted) in enumerate(tiles):
        x = SHEET_MARGIN_PX + (i % columns) * (SHEET_TILE_PX + SHEET_MARGIN_PX)
        y = head + (i // columns) * tile_h
        picture = Image.open(io.BytesIO(image)).convert("RGB").resize((SHEET_TILE_PX, SHEET_TILE_PX), Image.BILINEAR)
        sheet.paste(picture, (x, y))
        if highlighted:
            draw.rectangle((x - 2, y - 2, x + SHEET_TILE_PX + 1, y + SHEET_TILE_PX + 1), outline=HIGHLIGHT, width=3)
        draw.multiline_text((x, y + SHEET_TILE_PX + 3), caption, fill="black", font=font, spacing=4)
    if footer:
        draw.multiline_text((SHEET_MARGIN_PX, head + rows * tile_h), footer, fill="black", font=font, spacing=4)
    out = io.BytesIO()
    sheet.save(out, "PNG")
    out.seek(0)
    return out
