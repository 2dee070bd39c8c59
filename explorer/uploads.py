"""Uploads, checked on the server: size limits the browser cannot lift, safe file names, and
upload folders that do not outlive their session or their server.

The browser's ``max_file_size`` only spares an honest visitor a useless transfer; the limits that
count are here. :class:`FileDropper` (chunked, for cubes) stops keeping a file's chunks as soon as
they pass the limit; :func:`checked_bytes` refuses a single-message upload (``FileInput``) that is
too large. Upload folders live under one folder per server process
(``$TMPDIR/alma-ulisse-uploads/<pid>-...``), removed at session end and when the server exits;
folders of servers that are no longer running are removed at start-up.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

import panel as pn
import param

from pipeline.errors import InputError

CUBE_LIMIT_BYTES = 200 * 2**20
IMAGE_LIMIT_BYTES = 20 * 2**20
NAME_LIMIT = 120  # characters kept of an uploaded file's name (file systems allow 255 bytes)
_UPLOADS = Path(tempfile.gettempdir()) / "alma-ulisse-uploads"


def megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.0f} MB"


def safe_name(name, default: str = "upload") -> str:
    """A file name that is safe to write: the last part of ``name`` only, no control or
    path characters, not ``.`` or ``..``, at most ``NAME_LIMIT`` characters with its suffixes kept."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = re.sub(r"[\x00-\x1f\x7f:*?\"<>|]", "_", base).strip().lstrip(".")
    if not base:
        return default
    if len(base) > NAME_LIMIT:
        suffix = "".join(Path(base).suffixes[-2:])[-20:]
        base = base[:NAME_LIMIT - len(suffix)] + suffix
    return base


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_uploads() -> None:
    """Remove the upload folders of server processes that are no longer running."""
    if not _UPLOADS.is_dir():
        return
    for folder in _UPLOADS.iterdir():
        pid = folder.name.split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


@functools.cache
def _server_folder() -> Path:
    """This process's folder of uploads (made on first use; removed at exit)."""
    remove_stale_uploads()
    _UPLOADS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=_UPLOADS))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def session_folder() -> Path:
    """The folder of this session's uploads, removed when the session ends (outside a server:
    a new folder, removed when the process exits)."""
    doc = pn.state.curdoc
    if doc is not None and getattr(doc, "_upload_folder", None) is not None:
        return doc._upload_folder
    folder = Path(tempfile.mkdtemp(prefix="session-", dir=_server_folder()))
    if doc is not None and doc.session_context is not None:
        doc._upload_folder = folder
        pn.state.on_session_destroyed(lambda ctx: shutil.rmtree(folder, ignore_errors=True))
    return folder


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".fits", ".fit", ".fits.gz")  # what read_uploaded_image reads


def read_uploaded_image(content, filename, folder: Path, default: str = "upload.png"):
    """An image uploaded through a ``FileInput`` (its bytes and file name): ``(safe name, image)``,
    the image as :func:`pipeline.oneshot.galaxies.read_image` gives it. It is written to ``folder``
    (a session's) only to be read, and removed at once. InputError for a name that is not an image,
    a file over ``IMAGE_LIMIT_BYTES`` or one that cannot be read as an image."""
    from pipeline.oneshot.galaxies import read_image

    name = safe_name(filename, default=default)
    if not name.lower().endswith(IMAGE_SUFFIXES):
        raise InputError(f"{name} is not an image: upload PNG, JPEG or FITS.")
    path = Path(folder) / name
    try:
        path.write_bytes(checked_bytes(content, IMAGE_LIMIT_BYTES, name))
        return name, read_image(path)
    finally:
        path.unlink(missing_ok=True)


def checked_bytes(content, limit: int, name: str) -> bytes:
    """An upload's bytes, refused (InputError) when larger than ``limit`` or empty."""
    data = content if isinstance(content, bytes) else str(content or "").encode()
    if len(data) > limit:
        raise InputError(f"{safe_name(name)} is {megabytes(len(data))}: uploads are limited to {megabytes(limit)}. "
                         "Larger files go into a data folder on the server.")
    if not data:
        raise InputError(f"{safe_name(name)} is empty: upload the file again.")
    return data


class FileDropper(pn.widgets.FileDropper):
    """Panel's chunked FileDropper with its size limit enforced on the server.

    A file announced as larger than ``limit_bytes`` is refused at its first chunk; one whose
    chunks pass the limit anyway is dropped as they arrive (never held whole). ``refused`` says
    why; the browser-side limit is set from the same number.
    """

    limit_bytes = param.Integer(default=CUBE_LIMIT_BYTES, bounds=(1, None), doc="Largest file accepted (bytes)")
    refused = param.String(default="", doc="Why the last upload was refused ('' when it was not)")

    _rename = {**pn.widgets.FileDropper._rename, "limit_bytes": None, "refused": None}

    def __init__(self, **params):
        params.setdefault("max_file_size", f"{params.get('limit_bytes', CUBE_LIMIT_BYTES) // 2**20}MB")
        super().__init__(**params)
        self._received: dict[str, int] = {}

    def _process_event(self, event):
        data = event.data
        if event.event_name != "upload_event":
            return super()._process_event(event)
        name = str(data.get("name", ""))
        size = len(data.get("data") or b"")
        if data.get("chunk") == 1:
            self._received[name] = 0
            self.refused = ""
        if name not in self._received:  # a refused file's later chunks, or chunks out of order
            return
        self._received[name] += size
        # all chunks but the last are as long as the first: a file announced as too large is refused at once
        announced = (int(data.get("total_chunks") or 1) - 1) * size if data.get("chunk") == 1 else 0
        if max(self._received[name], announced) > self.limit_bytes:
            del self._received[name]
            self._file_buffer.pop(name, None)
            self.refused = (f"{safe_name(name)} is larger than {megabytes(self.limit_bytes)}, the largest upload this "
                            "server accepts: put the file into a data folder on the server instead.")
            return
        if data.get("chunk") == data.get("total_chunks"):
            del self._received[name]
        return super()._process_event(event)
