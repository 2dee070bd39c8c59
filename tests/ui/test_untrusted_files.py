"""Files whose names and headers carry script, opened in real Chromium: shown as text, nothing runs,
no server path shown (issue 9, items 1 and 4)."""

import numpy as np
import pytest
from astropy.io import fits
from playwright.sync_api import expect

from tests.conftest import cube_data, cube_header
from tests.ui.conftest import show_cube_header

EVIL_NAME = "<img src=x onerror=window.__xss=1>"


@pytest.fixture(scope="module")
def evil_folder(evil_dir):
    """A data folder of the served app with a cube whose file name and header cards carry script,
    and a file that is not FITS with such a name."""
    folder = evil_dir
    header = cube_header(32, 32, 8, stokes=False, beam_keywords=True)
    header["OBJECT"] = "<img src=x onerror=window.__xss=2>"
    header["COMMENT"] = "<script>window.__xss=3</script>"
    header["HISTORY"] = "```"
    header["OBSERVER"] = "**bold** <b>not bold</b>"
    fits.PrimaryHDU(cube_data(32, 32, 8).astype(np.float32), header).writeto(folder / f"{EVIL_NAME}.fits")
    (folder / f"{EVIL_NAME}2.fits").write_text("not a cube")
    return folder


def _no_script_ran(page):
    assert page.evaluate("window.__xss") is None


def test_files_carrying_script_show_it_as_text(page, served_app, evil_folder, screenshot, tmp_path):
    """In a data folder (a cube, a file that is not FITS) and uploaded."""
    page.goto(served_app, timeout=90_000)
    expect(page.locator(".pixel-info")).to_contain_text("Pixel (")
    page.get_by_role("combobox", name="Cube").select_option(f"{evil_folder.name}/{EVIL_NAME}.fits")
    summary = show_cube_header(page)
    expect(summary).to_contain_text(f"{evil_folder.name}/{EVIL_NAME}.fits")
    expect(summary).to_contain_text("<img src=x onerror=window.__xss=2>")
    assert str(evil_folder.parent) not in summary.inner_text()
    page.get_by_text("Full FITS header").click()
    header = page.locator(".fits-header pre")
    expect(header).to_contain_text("<script>window.__xss=3</script>")
    expect(header).to_contain_text("**bold** <b>not bold</b>")
    assert page.locator(".fits-header b, .cube-summary img, .fits-header img").count() == 0
    screenshot("evil-header")
    page.get_by_role("combobox", name="Cube").select_option(f"{evil_folder.name}/{EVIL_NAME}2.fits")
    alert = page.locator(".cube-error p")
    expect(alert).to_contain_text(f"{EVIL_NAME}2.fits is not a FITS file")
    assert str(evil_folder) not in alert.inner_text()
    _no_script_ran(page)
    screenshot("evil-name-error")

    junk = tmp_path / "<img src=x onerror=window.__xss=4>.fits"
    junk.write_bytes(b"not a cube at all")
    page.locator("input[type=file]").set_input_files(str(junk))
    expect(alert).to_contain_text("img src=x onerror=window.__xss=4_.fits is not a FITS file")  # < > dropped
    assert "alma-ulisse-uploads" not in alert.inner_text() and "/tmp" not in alert.inner_text()
    _no_script_ran(page)
