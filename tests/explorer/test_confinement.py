"""What the explorer may read: the data folders, links included, and a store's images (issue 9,
items 4 and 5); a failed job tells the visitor what failed and the server log why."""

import logging
import os

import pytest

from explorer import files
from explorer.background import BackgroundJob
from explorer.text import for_visitor


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "alma"
    folder.mkdir()
    monkeypatch.setenv("EXPLORER_DATA_DIRS", str(folder))
    return folder


def test_a_link_out_of_a_data_folder_is_neither_listed_nor_opened(data_dir, tmp_path, make_cube):
    outside = make_cube("secret.fits")  # in tmp_path, outside the data folder
    os.symlink(outside, data_dir / "link.fits")
    inner = make_cube("inner.fits").rename(data_dir / "inner.fits")
    os.symlink(inner, data_dir / "alias.fits")  # a link that stays inside is fine
    listed = files.list_cubes()
    assert "alma/link.fits" not in listed and "alma/inner.fits" in listed and "alma/alias.fits" in listed
    with pytest.raises(files.InputError, match="outside the data folders"):
        files.resolve_user_path("link.fits")


def test_refusals_name_folders_not_their_server_paths(data_dir):
    with pytest.raises(files.InputError) as refused:
        files.resolve_user_path("/etc/passwd")
    assert str(data_dir) not in str(refused.value) and "alma/" in str(refused.value)
    assert for_visitor(f"cannot read {data_dir}/sub/cube.fits") == "cannot read alma/sub/cube.fits"


def test_store_images_must_lie_in_its_index_or_a_data_folder(tmp_path, monkeypatch, data_dir):
    index_root = tmp_path / "indexes"
    (index_root / "planted").mkdir(parents=True)
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(index_root))
    files.check_store_images(index_root / "planted" / "images", index_root / "planted")
    files.check_store_images(data_dir / "cutouts", index_root / "planted")
    with pytest.raises(files.InputError, match="outside the folders this server may read"):
        files.check_store_images(tmp_path.parent, index_root / "planted")


def test_a_failed_job_shows_no_exception_text(caplog):
    errors = []
    job = BackgroundJob(on_done=lambda result: None, on_error=errors.append)

    def work(progress, cancel, share):
        raise RuntimeError("/srv/secret/data/cube.fits: internal detail")

    with caplog.at_level(logging.ERROR, logger="explorer"):
        job.start(work, "running pipeline...")
    assert errors and "running pipeline failed" in errors[0] and "server log" in errors[0]
    assert "secret" not in errors[0] and "RuntimeError" not in errors[0]
    assert "internal detail" in caplog.text and "Traceback" in caplog.text


def test_partial_results_reach_the_page_while_the_work_runs():
    import threading
    import time

    seen, release = [], threading.Event()
    job = BackgroundJob(on_done=lambda result: seen.append(("done", result)), on_error=seen.append,
                        on_partial=lambda value: seen.append(("partial", value)))

    def work(progress, cancel, share):
        share(["box"])
        release.wait(10)
        return "catalogue"

    runner = threading.Thread(target=job.start, args=(work, "running pipeline..."))
    runner.start()
    deadline = time.monotonic() + 10
    while not (job.running and "partial" in job._state) and time.monotonic() < deadline:
        time.sleep(0.01)
    job._follow()  # the page's poll while the work runs
    release.set()
    runner.join(10)
    assert seen == [("partial", ["box"]), ("done", "catalogue")]


def test_a_cube_opens_by_the_name_the_list_gives_it(data_dir, make_cube):
    """The cube list says ``alma/inner.fits``; typing that, or ``inner.fits``, opens it; climbing out
    through the folder's name is still refused."""
    inner = make_cube("inner.fits").rename(data_dir / "inner.fits")
    assert "alma/inner.fits" in files.list_cubes()
    assert files.resolve_user_path("alma/inner.fits") == inner.resolve() == files.resolve_user_path("inner.fits")
    with pytest.raises(files.InputError):
        files.resolve_user_path("alma/../../secret.fits")
