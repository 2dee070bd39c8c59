"""The cube viewer's state and views, without a server (see tests/ui for the browser)."""

import holoviews as hv
import numpy as np
import pytest
from bokeh.models import ColorBar, HoverTool
from holoviews.plotting.util import process_cmap

from explorer import files
from explorer.cube_explorer import CubeExplorer
from explorer.cube_view import PALETTE_SIZE, STRETCHES, CubeViewer, clip_limits, stretched_palette
from explorer.image_layer import colour
from pipeline.alma.cube import open_cube
from tests.conftest import REST_HZ, cube_data


def test_clip_limits_keep_the_percentile_range():
    image = np.linspace(-1, 3, 10_000, dtype=np.float32).reshape(100, 100)
    image[0, 0] = np.nan
    assert clip_limits(image, 100.0) == pytest.approx((-1 + 4 / 9999, 3.0), abs=1e-6)
    low, high = clip_limits(image, 90.0)
    assert low == pytest.approx(-0.8, abs=1e-3) and high == pytest.approx(2.8, abs=1e-3)


def test_clip_limits_ignore_outliers_and_survive_blank_images():
    image = np.arange(2500, dtype=np.float32).reshape(50, 50)
    image[0, 0] = 1e9
    assert clip_limits(image, 99.0)[1] < 2500
    assert clip_limits(np.full((4, 4), np.nan, np.float32), 99.5) == (0.0, 1.0)
    assert clip_limits(np.ones((4, 4), np.float32), 99.5) == (1.0, 2.0)


@pytest.mark.parametrize("stretch", list(STRETCHES))
def test_stretched_palette_follows_the_stretch(stretch):
    base = process_cmap("gray", ncolors=256)
    palette = stretched_palette("gray", stretch)
    assert len(palette) == PALETTE_SIZE
    assert palette[0] == base[0] and palette[-1] == base[-1]
    # the colour at the data fraction 1/4 is the base colour at stretch(1/4)
    quarter = (PALETTE_SIZE - 1) // 4
    t = quarter / (PALETTE_SIZE - 1)
    assert palette[quarter] == base[int(round(float(STRETCHES[stretch](np.array([t]))[0]) * 255))]
    levels = [int(c[1:3], 16) for c in palette]  # gray: red channel rises with the colour index
    assert levels == sorted(levels)
    if stretch != "linear":
        assert levels[quarter] > int(base[64][1:3], 16), "faint data gets brighter colours"


def test_colour_maps_values_linearly_onto_the_palette_as_bokeh_does():
    palette = ["#000000", "#ff0000", "#00ff00", "#0000ff"]
    image = np.array([[-5.0, 0.0, 0.24, 0.26], [0.5, 0.99, 1.0, np.nan]], np.float32)
    rgba = colour(image, (0.0, 1.0), palette)
    black, red, green, blue = 0xFF000000, 0xFF0000FF, 0xFF00FF00, 0xFFFF0000  # little-endian RGBA words
    assert rgba.dtype == np.uint32 and rgba.shape == image.shape
    assert rgba.tolist() == [[black, black, black, red], [green, blue, blue, 0]]  # NaN: transparent


@pytest.fixture
def viewer(make_cube):
    return CubeViewer(open_cube(make_cube(layout="3d")))


def test_viewer_starts_in_the_middle_on_channel_0(viewer):
    assert viewer.pixel == (12, 10)
    assert viewer.channel == 0
    assert viewer.param.channel.bounds == (0, 11)
    assert viewer.moment_range == (0, 11)
    assert viewer.channel_label().startswith("channel 0 / 11 | 230.500000 GHz | ")


def test_channel_and_moment_images_come_from_the_cube(viewer):
    viewer.channel = 6
    image, unit = viewer.current_image()
    np.testing.assert_array_equal(image, cube_data()[6])
    viewer.param.update(view="moment 0", moment_range=(4, 8))
    image, unit = viewer.current_image()
    assert unit == "Jy/beam km/s"
    np.testing.assert_allclose(image, viewer.cube.moment0(4, 8)[0])
    viewer.param.update(clip_percent=100.0, cmap="gray", stretch="sqrt")
    sent, figure = _sent(viewer)
    assert sent[8, 10] == pytest.approx(image[8, 10])  # pixel (x, y) shows data[y, x]: not flipped
    assert sent[17, 3] == pytest.approx(image[17, 3])
    mapper = figure.select_one({"type": ColorBar}).color_mapper
    assert (mapper.low, mapper.high) == pytest.approx((np.nanmin(image), np.nanmax(image)), rel=1e-5)
    assert list(mapper.palette) == stretched_palette("gray", "sqrt")
    rgba = figure.renderers[0].data_source.data["image"][0]  # the pixels, coloured as the colour bar says
    np.testing.assert_array_equal(rgba, colour(sent, (mapper.low, mapper.high), mapper.palette))
    assert figure.title.text == "moment 0 of channels 4-8 (Jy/beam km/s)"
    viewer.param.update(view="channel", channel=3)  # changed in place, in the figure already drawn
    np.testing.assert_array_equal(_sent(viewer, figure)[0], cube_data()[3])
    assert figure.title.text == "channel 3 (Jy/beam)"
    assert figure.select_one({"type": HoverTool, "name": "image-hover"}).tooltips[-1] == ("Jy/beam", "@value")
    # served, the values for the hover follow the pixels (see CubeViewer._image_first)
    viewer._show_image(values_later=True, channel=4)
    source = figure.renderers[0].data_source
    assert np.isnan(source.data["value"][0]).all() and figure.title.text == "channel 4 (Jy/beam)"
    viewer.image_layer.send_values()
    np.testing.assert_array_equal(source.data["value"][0], cube_data()[4])


def test_tap_selects_the_pixel_and_its_spectrum(viewer):
    viewer.tap.event(x=10.2, y=7.8)
    assert viewer.pixel == (10, 8)
    x, label, values = viewer.spectrum()
    assert label == "radio velocity (km/s)"
    np.testing.assert_array_equal(values, cube_data()[:, 8, 10])
    viewer.tap.event(x=-5, y=3)  # outside the image: ignored
    assert viewer.pixel == (10, 8)
    assert "Pixel (10, 8) | RA 10:00:00" in viewer.pixel_text(viewer.pixel, 6)


def test_spectral_axis_units_and_rest_frequency(viewer):
    viewer.spectral_axis = "frequency"
    x, label, _ = viewer.spectrum()
    assert label == "frequency (GHz)" and x[0] == pytest.approx(230.5)
    viewer.spectral_axis = "channel"
    assert viewer.spectrum()[0].tolist() == list(range(12))
    viewer.spectral_axis = "velocity"
    v_header = viewer.spectrum()[0]
    viewer.rest_frequency_ghz = 230.6
    v_new = viewer.spectrum()[0]
    assert v_new[0] - v_header[0] == pytest.approx(299792.458 * 230.5e9 * (1 / REST_HZ - 1 / 230.6e9), rel=1e-6)


def test_beam_aperture_averages_neighbours(viewer):
    viewer.pixel = (10, 8)
    single = viewer.spectrum()[2]
    viewer.aperture = "beam"
    disc = viewer.spectrum()[2]
    assert viewer.cube.beam_radius_pixels() > 1
    assert disc[6] < single[6]  # the source peak is diluted by its wings


def test_beam_ellipse_orientation(viewer):
    ellipse = viewer._beam_overlay(True)
    # PA 30 deg east of north, east to the left: the major axis points up and to the left
    assert ellipse.orientation == pytest.approx(np.deg2rad(120))
    assert ellipse.width == pytest.approx(5.0) and ellipse.height == pytest.approx(4.0)


# ---- the tab around it ------------------------------------------------------------------------
@pytest.fixture
def explorer(tmp_path, make_cube, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    make_cube("a.fits").rename(folder / "a.fits")
    (folder / "broken.fits").write_text("not fits")
    monkeypatch.setenv("EXPLORER_DATA_DIRS", str(folder))
    return CubeExplorer()


def test_explorer_lists_bundled_and_configured_cubes(explorer):
    assert "NGC4324.co.fits" in explorer.param.source.objects
    assert "data/a.fits" in explorer.param.source.objects
    assert explorer.viewer is not None


def test_explorer_opens_by_path_and_refuses_bad_files(explorer):
    assert explorer.open_path("a.fits")
    assert explorer.viewer.cube.path.name == "a.fits"
    assert not explorer.open_path("broken.fits")
    assert "not a FITS file" in explorer.message
    assert explorer.viewer.cube.path.name == "a.fits", "a failed open keeps the cube that was open"
    assert not explorer.open_path("/etc/hostname")
    assert "outside the data folders" in explorer.message
    assert not explorer.open_path("nothing_here.fits")
    assert "no such file" in explorer.message
    assert explorer.open_path("a.fits") and explorer.message == ""


def test_explorer_upload(explorer, make_cube):
    good = make_cube("up.fits").read_bytes()
    explorer._upload.value = {"up.fits": good}
    assert explorer.viewer.cube.path.name == "up.fits"
    explorer._upload.value = {"bad.fits": b"GIF89a..."}
    assert "bad.fits is not a FITS file" in explorer.message
    assert explorer.viewer.cube.path.name == "up.fits"


def test_resolve_user_path_stays_inside_data_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIRS", str(tmp_path))
    (tmp_path / "x.fits").write_bytes(b"")
    assert files.resolve_user_path("x.fits") == (tmp_path / "x.fits").resolve()
    with pytest.raises(files.InputError, match="outside the data folders"):
        files.resolve_user_path("../" * 10 + "etc/hostname")


def _sent(viewer, figure=None):
    """The image the browser is sent for the viewer's current channel, and the figure it is in
    (drawn from the viewer's plot unless given)."""
    if figure is None:
        figure = hv.renderer("bokeh").get_plot(viewer.image_plot()).state
    renderers = [r for r in figure.renderers if r.name == "cube-image"]
    assert len(renderers) == 1 and figure.renderers[0] is renderers[0], "one image, under every other layer"
    return renderers[0].data_source.data["value"][0], figure


def test_small_channels_are_sent_as_they_are_and_large_ones_at_screen_resolution(make_cube):
    small = CubeViewer(open_cube(make_cube(layout="3d")))
    np.testing.assert_array_equal(_sent(small)[0], cube_data()[0])  # row 0 is y = 0, as in the cube
    large = CubeViewer(open_cube(make_cube(layout="3d", nx=1900, ny=1100, nchan=2)))
    sent, figure = _sent(large)
    assert sent.shape == (550, 950)  # block-averaged 2 x 2 to at most SCREEN_PX, not 1900 x 1100
    channel = large.cube.channel(0)
    assert sent[10, 20] == pytest.approx(channel[20:22, 40:42].mean(), rel=1e-5)
    large.image_layer.zoom(x_range=(99.5, 299.5), y_range=(9.5, 109.5))  # zoomed in: the part in view, every pixel
    data = figure.renderers[0].data_source.data
    np.testing.assert_array_equal(data["value"][0], channel[10:110, 100:300])
    assert (data["x"], data["y"], data["dw"], data["dh"]) == ([99.5], [9.5], [200], [100])
