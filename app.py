"""The explorer in a browser: ``panel serve app.py``. Builds the template from the explorer's views."""

import holoviews as hv
import panel as pn

from explorer.atlas_view import AtlasViewer
from explorer.cube_explorer import CubeExplorer
from explorer.oneshot_view import OneShotViewer

pn.extension("filedropper", "tabulator", notifications=True, loading_indicator=True, sizing_mode="stretch_width")
# plots on a canvas, not WebGL: without a GPU (remote servers, most VMs, CI) the browser emulates WebGL in
# software, and for an image and a few curves that made a page load cost about 15% more CPU
hv.renderer("bokeh").webgl = False

oneshot = OneShotViewer()
atlas = AtlasViewer(oneshot, on_prototype=lambda: setattr(tabs, "active", 1))
# the galaxy tabs are laid out when first shown, and the galaxy sets opened (built, the first time)
# then: a visitor who only looks at cubes pays for neither
galaxy_tabs = (pn.Column(sizing_mode="stretch_both"), pn.Column(sizing_mode="stretch_both"))
tabs = pn.Tabs(("Cube explorer", CubeExplorer()), ("One-shot search", galaxy_tabs[0]),
               ("Feature atlas", galaxy_tabs[1]), dynamic=True, sizing_mode="stretch_both")


def _on_tab(event):
    if event.new in (1, 2):
        if not galaxy_tabs[0].objects:  # the atlas draws from the one-shot tab's set: lay out both
            galaxy_tabs[0].objects, galaxy_tabs[1].objects = [oneshot], [atlas]
        oneshot.activate()
    if event.new == 2:
        atlas.activate()


tabs.param.watch(_on_tab, "active")

template = pn.template.BootstrapTemplate(title="ALMA & ULISSE explorer", main=[tabs])
template.servable()
