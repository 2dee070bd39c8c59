"""The explorer in a browser: ``panel serve app.py``. Builds the template from the explorer's views."""

import panel as pn

from explorer.cube_view import CubeExplorer

pn.extension("filedropper", "tabulator", notifications=True, loading_indicator=True, sizing_mode="stretch_width")

template = pn.template.BootstrapTemplate(
    title="ALMA & ULISSE explorer",
    main=[pn.Tabs(("Cube explorer", CubeExplorer()), dynamic=True, sizing_mode="stretch_both")],
)
template.servable()
