"""Uploads checked on the server: size limits a browser cannot lift, odd names, damaged files,
and upload folders that do not outlive their session or server (issue 9, items 3 and 12)."""

import gzip
import io
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from explorer import uploads
from explorer.cube_explorer import CubeExplorer


def upload_event(name, chunk, total, data):
    return SimpleNamespace(event_name="upload_event",
                           data={"name": name, "chunk": chunk, "total_chunks": total, "data": data,
                                 "type": "application/fits"})


def test_dropper_limit_holds_on_the_server():
    """The browser's max_file_size can be raised from its console; the server still refuses."""
    dropper = uploads.FileDropper(limit_bytes=1000)
    dropper.max_file_size = "1000MB"  # what a visitor can do in the browser
    for k in range(1, 4):
        dropper._process_event(upload_event("big.fits", k, 3, b"x" * 600))
    assert dropper.value == {} and not dropper._file_buffer
    assert "big.fits is larger than" in dropper.refused
    dropper._process_event(upload_event("announced.fits", 1, 3, b"x" * 600))  # 2 more chunks to come
    assert "announced.fits is larger than" in dropper.refused and not dropper._file_buffer
    dropper._process_event(upload_event("small.fits", 1, 1, b"y" * 500))
    assert dropper.value == {"small.fits": b"y" * 500} and dropper.refused == ""


@pytest.mark.parametrize("name, expected", [
    ("..", "upload"), (".", "upload"), ("", "upload"), ("../../etc/passwd", "passwd"),
    ("a\\b\\c.fits", "c.fits"), ("x" * 300 + ".fits.gz", "x" * (uploads.NAME_LIMIT - 8) + ".fits.gz"),
    ("bad\x00name.fits", "bad_name.fits"), (".hidden.fits", "hidden.fits"),
])
def test_safe_names(name, expected):
    assert uploads.safe_name(name) == expected


@pytest.fixture
def explorer(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIRS", str(tmp_path))
    return CubeExplorer()


@pytest.mark.parametrize("name", ["..", "y" * 300 + ".fits"])
def test_odd_upload_names_open(explorer, make_cube, name):
    explorer._upload.value = {name: make_cube().read_bytes()}
    assert explorer.message == "" and explorer.viewer.cube.path.parent == explorer._upload_dir
    assert len(explorer.viewer.cube.path.name) <= uploads.NAME_LIMIT


def test_damaged_gzip_upload_says_so_and_a_good_one_clears_it(explorer, make_cube):
    first = explorer.viewer
    damaged = gzip.compress(make_cube().read_bytes())[:-4000] + b"garbage"
    explorer._upload.value = {"damaged.fits.gz": damaged}
    assert "damaged.fits.gz" in explorer.message and explorer.viewer is first
    assert explorer._alert.visible and str(explorer._upload_dir) not in explorer._alert._transform_object(
        explorer._alert.object)["object"]
    assert not (explorer._upload_dir / "damaged.fits.gz").exists()
    explorer._upload.value = {"good.fits": make_cube().read_bytes()}
    assert explorer.message == "" and not explorer._alert.visible and explorer.viewer is not first


def test_oversized_upload_refused_before_it_is_written(explorer):
    too_big = b"\0" * (explorer._upload.limit_bytes + 1)
    explorer._upload.value = {"huge.fits": too_big}
    assert "limited to" in explorer.message and not any(explorer._upload_dir.iterdir())


def test_upload_folders_leave_with_their_server(tmp_path):
    """A server's upload folders are removed when it exits, and those of dead servers at start-up."""
    stale = tmp_path / "alma-ulisse-uploads" / "999999999-abc" / "session-1"  # of a server that is gone
    stale.mkdir(parents=True)
    (stale / "cube.fits").write_bytes(b"x")
    code = "from explorer import uploads; print(uploads.session_folder())"
    folder = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp_path)},
                            capture_output=True, text=True, check=True).stdout.strip()
    assert folder.startswith(str(tmp_path)) and not os.path.exists(folder)
    assert not stale.parent.exists()


def png(width, height) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def test_prototype_uploads_are_limited(tmp_path, monkeypatch):
    """Too many bytes, or too many pixels for their bytes (a decompression bomb), are refused
    before decoding; messages name the upload, not a temporary path."""
    from explorer.oneshot_view import OneShotViewer
    from pipeline.oneshot import survey
    from pipeline.oneshot.galaxies import GalaxySet
    from pipeline.oneshot.store import build_store

    catalog = survey.simulate_survey(tmp_path / "s", n=20, seed=3, size=32)
    build_store(GalaxySet.open(catalog, name="tiny"), tmp_path / "store", size=32, scheduler="synchronous")
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(tmp_path))
    viewer = OneShotViewer()
    viewer.activate()
    bomb = png(12000, 12000)
    assert len(bomb) < 1_000_000
    viewer._upload.filename = "bomb.png"
    viewer._upload.value = bomb
    assert viewer._error.visible and "bomb.png" in viewer._error.object and "pixels" in viewer._error.object
    assert viewer._upload_vector is None and not any(viewer._upload_dir.iterdir())
    viewer._upload.filename = "big.png"
    viewer._upload.value = b"\x89PNG" + b"\0" * (uploads.IMAGE_LIMIT_BYTES + 1)
    assert "limited to" in viewer._error.object and not any(viewer._upload_dir.iterdir())
    viewer._upload.filename = "../galaxy.png"
    viewer._upload.value = png(64, 64)
    assert not viewer._error.visible and viewer._upload_vector is not None
