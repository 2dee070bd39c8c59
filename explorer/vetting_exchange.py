"""Candidates in and verdicts out of the vetting tab: a catalogue imported (upload, or a table sent
from TOPCAT through SAMP), the vetted catalogue downloaded (CSV, VOTable, DS9 regions coloured by
verdict) or sent to TOPCAT, Aladin or DS9 through SAMP (:mod:`pipeline.vetting.samp`)."""

from __future__ import annotations

import functools
import io
import logging
import tempfile
from pathlib import Path

import panel as pn

from explorer import uploads
from explorer.text import Alert
from pipeline.errors import InputError
from pipeline.vetting import samp
from pipeline.vetting.candidates import cube_collection, import_candidates, stored_candidates
from pipeline.vetting.export import vetted_catalog, write_vetted, write_vetted_regions

log = logging.getLogger("explorer")

EXPORTS = {".csv": "Vetted CSV", ".vot": "Vetted VOTable", ".reg": "DS9 regions"}
CATALOGUE_SUFFIXES = (".csv", ".vot", ".xml", ".votable", ".reg", ".crtf")
CATALOGUE_LIMIT_BYTES = 20 * 2**20


LOCAL_ADDRESSES = ("127.0.0.1", "::1", "localhost")


def visitor_is_local() -> bool:
    """Whether the visitor's browser runs on the server's machine (outside a server: yes)."""
    context = pn.state.curdoc.session_context if pn.state.curdoc is not None else None
    request = getattr(context, "request", None)
    return request is None or getattr(request, "remote_ip", None) in LOCAL_ADDRESSES


class ExchangePanel:
    """The import, export and SAMP controls of a :class:`~explorer.vetting_view.VettingViewer`."""

    def __init__(self, vetting):
        self.vetting = vetting
        cube = vetting.cube
        self._upload = pn.widgets.FileInput(accept=",".join(CATALOGUE_SUFFIXES), css_classes=["vetting-import"])
        self._upload.param.watch(self._on_upload, "value")
        self._downloads = [pn.widgets.FileDownload(callback=functools.partial(self.export, suffix), label=label,
                                                   filename=f"{cube.path.name.split('.')[0]}_vetted{suffix}",
                                                   embed=False, css_classes=["vetting-export"])
                           for suffix, label in EXPORTS.items()]
        self._send = pn.widgets.Button(label="Send to TOPCAT / Aladin (SAMP)", css_classes=["vetting-samp-send"])
        self._send.on_click(lambda _: self.send())
        self._receive = pn.widgets.Checkbox(label="Take tables sent from TOPCAT (SAMP)",
                                            css_classes=["vetting-samp-receive"])
        self._receive.param.watch(lambda e: self.listen(e.new), "value")
        self.inbox: samp.TableInbox | None = None
        # what an import or a send did, or why not: beside these controls, where the eye is
        self._alert = Alert("", alert_type="info", visible=False, css_classes=["exchange-message"])
        # SAMP joins programs on the server's machine: offered to a visitor on that machine only
        samp_row = pn.Row(self._send, self._receive) if visitor_is_local() else pn.pane.Markdown(
            "SAMP (TOPCAT, Aladin) works when the explorer runs on your own machine.", margin=(0, 10))
        self.area = pn.Column(
            pn.pane.Markdown("Import a catalogue (CSV, VOTable, DS9 or CRTF regions; up to "
                             f"{uploads.megabytes(CATALOGUE_LIMIT_BYTES)}):", margin=(10, 10, 0, 10)),
            self._upload, pn.Row(*self._downloads), samp_row, self._alert, sizing_mode="stretch_width")
        if vetting.store is None:  # nothing to import into or export from: the page has said why
            for widget in (self._upload, *self._downloads, self._send, self._receive):
                widget.disabled = True

    def tell(self, text: str, kind: str = "warning") -> None:
        self._alert.alert_type = kind
        self._alert.object = text
        self._alert.visible = bool(text)
        self.vetting.message = text

    # --- in ------------------------------------------------------------------------------------

    def _on_upload(self, event):
        if not event.new:
            return
        name = uploads.safe_name(self._upload.filename, default="catalogue.csv")
        if Path(name).suffix.lower() not in CATALOGUE_SUFFIXES:
            self.tell(f"{name}: import a catalogue as CSV, VOTable (.vot, .xml), DS9 (.reg) or CRTF (.crtf).")
            return
        try:
            data = uploads.checked_bytes(event.new, CATALOGUE_LIMIT_BYTES, name)
        except InputError as exc:
            self.tell(str(exc))
            return
        path = uploads.session_folder() / name
        path.write_bytes(data)
        self.take(path, name)

    def take(self, path: Path, name: str) -> None:
        """Add the catalogue at ``path`` (shown as ``name``) to the cube's candidates, with its verdicts."""
        vetting = self.vetting
        if vetting.store is None:
            return
        try:
            # a file's reviewer names are the file's word: its verdicts are cast as "NAME via <who brought it>"
            _, imported, cast = import_candidates(vetting.store, vetting.cube, path, reviewer=vetting.reviewer or None,
                                                  via=vetting.reviewer or "an upload")
        except InputError as exc:
            self.tell(str(exc))
            return
        except Exception:  # a file no reader expected: the visitor gets a message, the log the details
            log.exception("importing %s failed", name)
            self.tell(f"{name} could not be read as a catalogue: check that it is a complete CSV, VOTable or "
                         "regions file.")
            return
        vetting.scope = "stored"
        vetting.load()
        self.tell(f"Imported {name}: {imported.message}; {cast} verdicts cast.", "success")

    def listen(self, on: bool) -> None:
        """Take tables sent from TOPCAT while ``on``; each is imported on this session's thread."""
        if not on:
            self.close()
            return
        doc = pn.state.curdoc
        schedule = (lambda work: doc.add_next_tick_callback(work)) if doc is not None and doc.session_context \
            else (lambda work: work())
        self.inbox = samp.TableInbox(uploads.session_folder(),
                                     lambda path, name: schedule(lambda: self.take(path, name)),
                                     lambda message: schedule(lambda: self.tell(message)))
        try:
            self.inbox.start()
        except InputError as exc:
            self.inbox = None
            self.tell(str(exc))
            self._receive.value = False
            return
        self.tell(f"Listening: in TOPCAT, Interop > Send Table to > {samp.CLIENT_NAME}.", "success")

    # --- out -----------------------------------------------------------------------------------

    def vetted(self):
        vetting = self.vetting
        return vetted_catalog(stored_candidates(vetting.store, vetting.cube),
                              vetting.store.latest(cube_collection(vetting.cube)))

    def export(self, suffix: str) -> io.BytesIO:
        """The vetted catalogue (every stored candidate) as .csv or .vot, or DS9 regions by verdict."""
        table = self.vetted()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"vetted{suffix}"
            if suffix == ".reg":
                write_vetted_regions(table, self.vetting.cube, path)
            else:
                write_vetted(table, path)
            return io.BytesIO(path.read_bytes())

    def send(self) -> None:
        """The vetted catalogue to every program on the SAMP hub that takes tables."""
        name = f"{self.vetting.cube.path.name.split('.')[0]} vetted"
        try:
            sent_to = samp.send_table(self.vetted(), name)
        except InputError as exc:
            self.tell(str(exc))
            return
        self.tell(f"Sent '{name}' to {', '.join(sent_to)}.", "success")

    def close(self) -> None:
        if self.inbox is not None:
            self.inbox.stop()
            self.inbox = None
