"""Training examples: fast (linear) shortcuts must equal what the full simulator gives."""

import numpy as np
import pytest

from pipeline.alma import examples as ex
from pipeline.alma import preprocess as pre
from pipeline.alma.simulate import Observation, dirty_cube, instrument_response


@pytest.fixture(scope="module")
def instrument():
    return ex.make_instrument(Observation(cell_arcsec=0.15, integration_s=60.0, observation_s=1200.0), 64)


def test_integrated_image_equals_the_sum_of_the_full_dirty_cube(instrument):
    rng = np.random.default_rng(0)
    sky = ex.draw_example(rng, 64, instrument=instrument, channels=24)
    full = instrument_response(instrument.observation, 64, 24)
    cube, _ = dirty_cube(sky.images, sky.spectra, full.sampling, 0.0, rng)
    fast = ex.observe_image(instrument, sky.images, sky.line_sums, 0.0, rng)
    # the centre frequency's PSF stands for all 24 channels (0.1% of bandwidth)
    assert np.abs(fast - cube.sum(axis=0)).max() < 0.01 * np.abs(cube.sum(axis=0)).max()


def test_box_noise_rms_matches_noise_images(instrument):
    rng = np.random.default_rng(1)
    box = (20, 24, 29, 31)
    zero = np.zeros((1, 64, 64), np.float32)
    sums = [ex.observe_image(instrument, zero, [0.0], 1.0, rng)[24:31, 20:29].sum() for _ in range(300)]
    assert np.std(sums) == pytest.approx(ex.box_noise_rms(instrument, box), rel=0.12)
    assert ex.box_noise_rms(instrument, (0, 0, 1, 1)) == pytest.approx(1.0, rel=1e-3)


def test_example_kinds_shapes_and_scaling(instrument):
    rng = np.random.default_rng(2)
    sky = ex.draw_example(rng, 64, instrument=instrument, channels=40)
    dirty, clean = ex.blob_pair(rng, sky)
    assert dirty.shape == clean.shape == (64, 64)
    assert dirty.min() == 0 and dirty.max() == pytest.approx(1) and clean.max() == pytest.approx(1)
    pairs, boxes = ex.spectrum_pairs(rng, sky)
    assert len(pairs) == len(sky.sources) == len(boxes)
    spectrum, target = pairs[0]
    assert spectrum.shape == target.shape == (40,)
    assert abs(spectrum.mean()) < 1e-5 and spectrum.std() == pytest.approx(1, rel=1e-4)
    assert int(np.argmax(target)) == int(round(sky.sources["z"][0]))
    focused = ex.focused_pairs(rng, sky)
    image, beam, targets = focused[0]
    assert image.shape == beam.shape == (64, 64) and beam[32, 32] == pytest.approx(1.0)
    assert set(targets) == {"fwhm_major", "fwhm_minor", "pa_major", "flux"}
    source = sky.sources[0]
    assert targets["fwhm_major"] == max(source["fwhm_x"], source["fwhm_y"]) and targets["flux"] > 0
    assert 0 <= targets["pa_major"] < 180
    # told the dirty beam instead (what a cube's PSF cube gives): the instrument's, sidelobes and all
    _, dirty, _ = ex.focused_pairs(rng, sky, dirty_beam=True)[0]
    assert np.array_equal(dirty, instrument.dirty_beam) and dirty.shape == (64, 64)
    assert dirty[32, 32] == pytest.approx(1.0) and dirty.max() == pytest.approx(1.0) and dirty.min() < -0.01
    assert np.allclose(dirty[1:, 1:], dirty[1:, 1:][::-1, ::-1], atol=1e-5)  # point-symmetric, as a PSF


def test_random_instruments_vary_and_respect_the_pixel_scale():
    rng = np.random.default_rng(3)
    made = [ex.random_instrument(rng, 64) for _ in range(4)]
    assert len({i.observation.config for i in made} | {round(i.observation.centre_frequency_hz) for i in made}) > 4
    for inst in made:
        assert inst.observation.config in ex.TRAINING_CONFIGS
        assert 2.0 <= inst.beam_minor_px <= 8.0  # drawn in 2.5-7, refitted at the final cell


def test_examples_are_deterministic(instrument):
    a = ex.blob_pair(np.random.default_rng(5), ex.draw_example(np.random.default_rng(5), 64, instrument=instrument))
    b = ex.blob_pair(np.random.default_rng(5), ex.draw_example(np.random.default_rng(5), 64, instrument=instrument))
    np.testing.assert_array_equal(a[0], b[0])


def test_footprint_target_weights_sources_by_detectability(instrument):
    rng = np.random.default_rng(4)
    sky = ex.draw_example(rng, 64, instrument=instrument, channels=40, shift=True)
    snr = ex.integrated_snr(sky)
    assert snr.shape == (len(sky.sources),) and (snr > 0).all()
    dirty, target = ex.blob_pair(rng, sky, target="footprint")
    assert dirty.shape == target.shape == (64, 64) and 0 <= target.min() and target.max() <= 1
    lo, hi = ex.FOOTPRINT_SNR
    for i in range(len(sky.sources)):
        if snr[i] >= hi:  # a clearly detectable source is fully marked, however faint
            assert np.all(target >= sky.images[i] - 1e-6)
        elif snr[i] <= lo:
            assert not np.any(target[sky.images[i] > 0.5] == sky.images[i][sky.images[i] > 0.5])
    # no emission, no footprint; the integrated SNR scales with brightness
    sky.spectra *= 0
    assert ex.footprint_map(sky).max() == 0
    with pytest.raises(ValueError, match="target"):
        ex.blob_pair(rng, sky, target="mask")


def test_snr_target_is_the_noiseless_image_in_noise_units(instrument):
    rng = np.random.default_rng(6)
    sky = ex.draw_example(rng, 64, instrument=instrument, channels=40, shift=True)
    dirty, target = ex.blob_pair(rng, sky, target="snr")
    assert dirty.shape == target.shape == (64, 64) and target.min() == 0
    # the brightest source peaks at its integrated SNR (others add a little where they overlap)
    assert target.max() == pytest.approx(ex.integrated_snr(sky).max(), rel=0.15)
    np.testing.assert_array_equal(target, ex.snr_map(sky))
    sky.spectra *= 2  # linear in the sky, unbounded
    np.testing.assert_allclose(ex.snr_map(sky), 2 * target, rtol=1e-4, atol=1e-4)
    sky.spectra *= 0
    assert ex.snr_map(sky).max() == 0


def test_shifted_skies_put_the_central_source_anywhere(instrument):
    rng = np.random.default_rng(5)
    xs = [ex.draw_example(rng, 64, instrument=instrument, channels=20, shift=True).sources["x"][0] for _ in range(12)]
    assert min(xs) >= 8 and max(xs) <= 56 and np.std(xs) > 5


def test_beam_image_has_the_beam_fwhm_along_its_major_axis():
    beam = pre.beam_image_px(6.0, 3.0, 90.0)  # major axis along y
    c = 32
    assert beam[c, c] == pytest.approx(1.0)
    assert beam[c + 3, c] == pytest.approx(0.5, rel=1e-3)  # half power 3 px up the major axis
    assert beam[c, c + 3] < 0.1  # 3 px across the minor axis is two half widths
    # the instrument form: bpa east of north, x towards west, so bpa 0 is the y axis too
    assert np.allclose(ex.beam_image((0.6, 0.3, 0.0), 0.1), beam, atol=1e-6)


def test_skies_put_faint_lines_in_the_central_sources_channels(instrument):
    """Sidelobe-rich skies: about ``shared_channels`` of the fainter lines within the central
    line's FWHM (a random line centre lands there far less often)."""
    rng = np.random.default_rng(5)
    near = []
    for _ in range(60):
        s = ex.draw_sky(rng, instrument, 128)
        near += list(np.abs(s["z"][1:] - s["z"][0]) <= s["fwhm_z"][0])
    assert 0.35 < np.mean(near) < 0.6 and len(near) > 150


def test_short_tracks_as_often_as_long_ones():
    """Observation time log-uniform: as many draws below the range's geometric mean as above."""
    rng = np.random.default_rng(6)
    r = ex.Ranges()
    times = [ex.random_instrument(rng, 32, ("alma.cycle11.1",)).observation.observation_s for _ in range(40)]
    mid = np.sqrt(r.observation_s[0] * r.observation_s[1])
    assert min(times) >= r.observation_s[0] and max(times) <= r.observation_s[1]
    assert 12 <= sum(t < mid for t in times) <= 28
