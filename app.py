"""The explorer in a browser: ``panel serve app.py``. Builds the template from the explorer's views."""

import holoviews as hv
import panel as pn

from explorer.atlas_view import AtlasViewer
from explorer.cube_explorer import CubeExplorer
from explorer.learn_view import LearnViewer
from explorer.links import Links
from explorer.models_view import ModelsViewer
from explorer.oneshot_view import OneShotViewer

pn.extension("filedropper", "tabulator", notifications=True, loading_indicator=True, sizing_mode="stretch_width")
# plots on a canvas, not WebGL: without a GPU (remote servers, most VMs, CI) the browser emulates WebGL in
# software, and for an image and a few curves that made a page load cost about 15% more CPU
hv.renderer("bokeh").webgl = False

cubes = CubeExplorer()
oneshot = OneShotViewer()
atlas = AtlasViewer(oneshot, on_prototype=lambda: setattr(tabs, "active", ONESHOT))
# the galaxy tabs are laid out when first shown, and the galaxy sets opened (built, the first time)
# then: a visitor who only looks at cubes pays for neither
galaxy_tabs = (pn.Column(sizing_mode="stretch_both"), pn.Column(sizing_mode="stretch_both"))
learn = LearnViewer(oneshot)  # laid out, and its lessons made, when the tab is first shown
learn_tab = pn.Column(sizing_mode="stretch_both")
models = ModelsViewer()  # its studies read when the tab is first shown
tabs = pn.Tabs(("Cube explorer", cubes), ("Vet candidates", cubes.vetting_area), ("One-shot search", galaxy_tabs[0]),
               ("Feature atlas", galaxy_tabs[1]), ("Learn", learn_tab), ("Models", models), dynamic=True,
               sizing_mode="stretch_both")
VETTING, ONESHOT, ATLAS, LEARN, MODELS = 1, 2, 3, 4, 5


def _on_tab(event):
    if event.new == VETTING:
        cubes.activate_vetting()
    else:
        cubes.deactivate_vetting()
    if event.new in (ONESHOT, ATLAS):
        if not galaxy_tabs[0].objects:  # the atlas draws from the one-shot tab's set: lay out both
            galaxy_tabs[0].objects, galaxy_tabs[1].objects = [oneshot], [atlas]
        oneshot.activate()
    if event.new == ATLAS:
        atlas.activate()
    if event.new == LEARN and not learn_tab.objects:
        learn_tab.objects = [learn]
    if event.new == MODELS:
        models.activate()


tabs.param.watch(_on_tab, "active")
links = Links(tabs, cubes, learn, oneshot)  # the address carries the tab, cube, channel, source, set, prototype, lesson
pn.state.onload(links.restore)

template = pn.template.BootstrapTemplate(title="ALMA & ULISSE explorer", main=[tabs])
template.servable()
