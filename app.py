"""The explorer in a browser: ``panel serve app.py``. Builds the template from the explorer's views."""

import panel as pn

from explorer.atlas_view import AtlasViewer
from explorer.cube_explorer import CubeExplorer
from explorer.oneshot_view import OneShotViewer

pn.extension("filedropper", "tabulator", notifications=True, loading_indicator=True, sizing_mode="stretch_width")

oneshot = OneShotViewer()
tabs = pn.Tabs(("Cube explorer", CubeExplorer()), ("One-shot search", oneshot), dynamic=True,
               sizing_mode="stretch_both")
tabs.append(("Feature atlas", AtlasViewer(oneshot, on_prototype=lambda: setattr(tabs, "active", 1))))
# the galaxy sets are opened (built, the first time) when a tab that needs them is shown
tabs.param.watch(lambda event: event.new in (1, 2) and oneshot.activate(), "active")

template = pn.template.BootstrapTemplate(title="ALMA & ULISSE explorer", main=[tabs])
template.servable()
