"""The cube tab: choose a bundled cube, type a path inside the data folders, or upload one; the
cube opened is shown by a :class:`explorer.cube_view.CubeViewer`."""

from __future__ import annotations

import logging
from pathlib import Path

import panel as pn
import param

from explorer import uploads
from explorer.cube_view import CubeViewer
from explorer.detection_view import DetectionViewer
from explorer.files import BUNDLED_CUBES, list_cubes, resolve_user_path, shown_path
from explorer.text import Alert
from explorer.vetting_view import VettingViewer
from pipeline.alma.cube import open_cube
from pipeline.errors import InputError


class CubeExplorer(pn.viewable.Viewer):
    """The cube tab: choose a bundled cube, type a path inside the data folders, or upload one."""

    source = param.Selector(doc="Cubes in the bundled and configured data folders")
    path_text = param.String(default="", doc="Path of a FITS cube inside the data folders")
    message = param.String(default="", doc="The last problem to tell the user about")

    def __init__(self, **params):
        cubes = list_cubes()
        self._cubes = cubes
        self.param.source.objects = list(cubes)
        params.setdefault("source", _default_cube(cubes))
        super().__init__(**params)
        self._upload_dir = uploads.session_folder()
        self._controls_area = pn.Column(sizing_mode="stretch_width")
        self._plots_area = pn.Column(sizing_mode="stretch_width")
        # the vetting tab's content: made for the cube open when that tab is first shown (see activate_vetting)
        self.vetting_area = pn.Column(sizing_mode="stretch_width")
        self.vetting: VettingViewer | None = None
        self.viewer: CubeViewer | None = None
        self._alert = Alert("", alert_type="danger", visible=False, css_classes=["cube-error"])
        self._upload_area = pn.Column(sizing_mode="stretch_width")
        self._new_upload_widget()
        self._open_button = pn.widgets.Button(label="Open path", color="primary")
        self._open_button.on_click(lambda _: self.open_path(self.path_text))
        self._quiet = False  # True while the Cube list follows a cube opened another way
        self._vetting_shown = False
        self.param.watch(lambda e: self._quiet or self.open_file(self._cubes[e.new], label=e.new), "source")
        if self.source:
            self.open_file(self._cubes[self.source])

    def _new_upload_widget(self):
        """A fresh upload widget (after a refused upload, so it does not say "Upload complete")."""
        self._upload = uploads.FileDropper(limit_bytes=uploads.CUBE_LIMIT_BYTES, multiple=False, label="Upload")
        self._upload.param.watch(self._on_upload, "value")
        self._upload.param.watch(lambda e: e.new and self._refuse_upload(e.new), "refused")
        self._upload_area[:] = [self._upload]

    def open_file(self, path: Path, label: str | None = None) -> bool:
        """Open ``path`` into the viewer; on bad input keep the current cube and show why.
        ``label``: the name visitors know it by (default: its place in the data folders)."""
        try:
            cube = open_cube(path)
        except InputError as exc:
            self.show_error(str(exc))
            return False
        except Exception:  # a file no reader expected: the visitor gets a message, the log the details
            logging.getLogger("explorer").exception("opening %s failed", path)
            self.show_error(f"{label or shown_path(path)} could not be opened as a FITS cube: check that it is a "
                            "complete FITS file (decompress a damaged .gz first).")
            return False
        old, old_detection = self.viewer, getattr(self, "detection", None)
        self.viewer = CubeViewer(cube, label=label or shown_path(path))
        self.detection = DetectionViewer(self.viewer)
        self.viewer.overlays.append(self.detection.overlay())
        self._controls_area[:] = [self.viewer.controls()]
        self._plots_area[:] = [self.viewer.plots(), pn.layout.Divider(),
                               pn.pane.Markdown("### Source finding"), self.detection]
        self.show_error("")
        self._list_as_open(label or shown_path(path), path)
        if self.vetting is not None:
            self.vetting.close()
            self.vetting = None
            self.vetting_area[:] = []
            if self._vetting_shown:
                self.activate_vetting()
        if old is not None:
            old.cube.close()
        if old_detection is not None:
            old_detection.close()  # its primary-beam and PSF cubes
        return True

    def activate_vetting(self) -> None:
        """The vetting tab is shown: vet the open cube's candidates (made now, not at every cube
        opened: the card loads the networks), the last run's included."""
        self._vetting_shown = True
        if self.vetting is None and self.viewer is not None:
            self.vetting = VettingViewer(self.viewer, self.detection)
            self.vetting_area[:] = [self.vetting]

    def deactivate_vetting(self) -> None:
        self._vetting_shown = False

    def _list_as_open(self, label: str, path: Path):
        """The Cube list shows the cube just opened (by path or upload too: added under its name),
        so that choosing another entry, the previous cube's included, opens that one."""
        known = next((name for name, listed in self._cubes.items() if listed == path), None)
        if known is None:
            known = label
            self._cubes[label] = path
            self.param.source.objects = list(self._cubes)
        self._quiet = True
        try:
            self.source = known
        finally:
            self._quiet = False

    def open_path(self, text: str) -> bool:
        try:
            path = resolve_user_path(text)
        except InputError as exc:
            self.show_error(str(exc))
            return False
        return self.open_file(path)

    def _on_upload(self, event):
        if not event.new:
            return
        name, content = next(iter(event.new.items()))
        shown = uploads.safe_name(name, default="upload.fits")
        self.show_error("")
        try:
            data = uploads.checked_bytes(content, self._upload.limit_bytes, shown)
        except InputError as exc:
            self._refuse_upload(str(exc))
            return
        target = self._upload_dir / shown
        target.write_bytes(data)
        if not self.open_file(target, label=f"{shown} (uploaded)"):
            target.unlink(missing_ok=True)
            self._new_upload_widget()

    def _refuse_upload(self, text: str):
        self.show_error(text)
        self._new_upload_widget()

    def show_error(self, text: str):
        self.message = text
        self._alert.object = text
        self._alert.visible = bool(text)

    def __panel__(self):
        opener = pn.Column(
            pn.widgets.Select.from_param(self.param.source, name="Cube"),
            pn.Row(pn.widgets.TextInput.from_param(self.param.path_text, name="Path in a data folder",
                                                   placeholder="e.g. mycube.fits"),
                   pn.Column(pn.Spacer(height=18), self._open_button, width=110)),
            pn.pane.Markdown(f"Upload a FITS cube (up to {uploads.megabytes(uploads.CUBE_LIMIT_BYTES)}; larger: "
                             "put it in a data folder)", margin=(0, 10)),
            self._upload_area,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            self._alert,
            pn.Row(pn.Column(opener, pn.layout.Divider(), self._controls_area, width=320),
                   self._plots_area, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")


def _default_cube(cubes: dict) -> str | None:
    """The simulated ALMA demo cube when bundled, else the first cube found."""
    for label, path in cubes.items():
        if path.parent == BUNDLED_CUBES and label.startswith("sim"):
            return label
    return next(iter(cubes), None)
