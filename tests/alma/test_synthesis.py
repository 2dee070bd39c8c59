"""Aperture synthesis in one call (the Learn tab's first lesson): the physics a student is shown."""

import numpy as np
import pytest

from pipeline.alma import interferometer
from pipeline.alma.synthesis import IMAGE_NPIX, POINTS, observe, sky_image_of
from pipeline.errors import InputError

CENTRE = IMAGE_NPIX // 2


def test_the_beam_is_the_wavelength_over_the_longest_baseline():
    low, high = observe(frequency_hz=100e9), observe(frequency_hz=300e9)
    assert low.beam[0] / high.beam[0] == pytest.approx(3.0, rel=0.02)
    compact, extended = observe("alma.cycle11.1"), observe("alma.cycle11.10")
    assert compact.beam[0] > 30 * extended.beam[0]
    # about lambda / B_max (1.0-1.3 of it, with Briggs weighting)
    fringe = 206.265 / high.longest_baseline_klambda  # arcsec
    assert 0.8 * fringe < high.beam[1] <= high.beam[0] < 1.6 * fringe


def test_a_short_track_leaves_strong_sidelobes_and_they_are_found_where_they_are():
    long, short = observe(hour_angle_start_h=-3, hour_angle_stop_h=3), observe(hour_angle_start_h=-0.05,
                                                                                hour_angle_stop_h=0.05)
    assert short.sidelobe > 2 * long.sidelobe > 0
    assert short.psf[short.sidelobe_px] == pytest.approx(short.sidelobe, abs=1e-6)
    assert short.sidelobe_offset_arcsec > short.beam[0]  # outside the main lobe
    assert len(long.uv_klambda) > 50 * len(short.uv_klambda)


def test_largest_sidelobe_of_a_made_beam():
    y, x = np.mgrid[:65, :65] - 32
    lobe = np.exp(-0.5 * (x**2 + y**2) / 2.0**2) - 0.02  # its first null about 5.6 px out
    psf = lobe + 0.3 * np.exp(-0.5 * ((x + 5) ** 2 + (y - 20) ** 2) / 1.5**2)
    level, (row, col) = interferometer.largest_sidelobe(psf)
    assert level == pytest.approx(0.28, abs=0.01) and (row, col) == (52, 27)
    assert interferometer.largest_sidelobe(lobe)[0] == 0.0  # a main lobe alone


def test_a_point_keeps_its_flux_in_jy_per_beam():
    result = observe(sky="points", extent_arcsec=4.0)
    brightest = POINTS[0][2] / sum(p[2] for p in POINTS)
    assert result.sky.sum() == pytest.approx(1.0, rel=1e-5) and result.sky[CENTRE, CENTRE] == pytest.approx(brightest)
    assert result.dirty[CENTRE, CENTRE] == pytest.approx(brightest, rel=0.05)


@pytest.mark.parametrize(("config", "low", "high"), [("alma.cycle11.1", 0.5, 1.1), ("alma.cycle11.10", -0.1, 0.1)])
def test_a_disc_larger_than_the_largest_scale_is_resolved_out(config, low, high):
    """A 4" disc: a compact array (largest scale about 11") keeps most of its flux, the most extended
    one (about 0.7") keeps its edges only."""
    result = observe(config, sky="disc", extent_arcsec=4.0, hour_angle_start_h=-2, hour_angle_stop_h=2)
    bmaj, bmin, _ = result.beam
    beam_px = np.pi * bmaj * bmin / (4 * np.log(2)) / result.cell_arcsec**2
    y, x = np.mgrid[:IMAGE_NPIX, :IMAGE_NPIX] - CENTRE
    inside = np.hypot(x, y) * result.cell_arcsec <= 3.0
    assert low < result.dirty[inside].sum() / beam_px < high
    assert "largest scale seen" in result.summary()


def test_skies_and_an_image_of_ones_own():
    for sky in ("points", "disc", "galaxy"):
        image = sky_image_of(sky, 64, 40)
        assert image.shape == (64, 64) and image.sum() == pytest.approx(1.0, rel=1e-5) and image.min() >= 0
    rgb = np.zeros((30, 20, 3), np.uint8)
    rgb[10:20, 5:15] = 200
    image = sky_image_of("image", 64, 32, rgb)
    assert image.sum() == pytest.approx(1.0, rel=1e-5) and image[32, 32] > 0 and image[0, 0] == 0
    with pytest.raises(InputError, match="needs an image"):
        sky_image_of("image", 64, 32)
    with pytest.raises(InputError, match="no emission"):
        sky_image_of("image", 64, 32, np.ones((8, 8)))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sky": "comet"}, "sky must be one of"),
    ({"extent_arcsec": 0}, "extent"),
    ({"frequency_hz": 2e12}, "35 to 950 GHz"),
    ({"declination_deg": 70.0}, "never above"),
    ({"config": "vla.a"}, "Unknown antenna configuration"),
])
def test_what_cannot_be_observed_is_said(kwargs, message):
    with pytest.raises(InputError, match=message):
        observe(**kwargs)
