"""The three tasks: their simulators, their scores, and their classic baselines, checked on the
physics each states."""

import numpy as np
import pytest

from pipeline.alma.gaussian import gaussian_images
from pipeline.automl import clean, deblending, detection, radio, surface_brightness
from pipeline.automl.tasks import TASK_NAMES, get_task
from pipeline.errors import InputError


@pytest.mark.parametrize("name", TASK_NAMES)
def test_examples_are_reproducible_and_the_truth_scores_perfectly(name):
    task = get_task(name)
    a, b = task.examples(7, 6), task.examples(7, 6)
    assert a.inputs.shape == (6, task.in_channels, task.size, task.size)
    assert a.targets.shape == (6, task.out_channels, task.size, task.size)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.inputs, task.examples(8, 6).inputs)
    perfect = task.scores(task.answers(a.targets, a), a)
    for key, score in task.score_names.items():
        assert perfect[key] == pytest.approx(1.0 if score.higher else 0.0, abs=0.05), (key, perfect)


def test_unknown_task_is_refused():
    with pytest.raises(InputError, match="vlba, lofar, vst"):
        get_task("lofar2")


def test_images_are_in_units_of_their_noise():
    """Blank VLBA and LOFAR-like images have noise rms 1; so does the VST-like sky."""
    rng = np.random.default_rng(0)
    for module in (detection, surface_brightness):
        instrument = module.instruments(rng, 1)[0]
        blank = np.stack([radio.observe(np.zeros((64, 64), np.float32), instrument, rng) for _ in range(20)])
        assert blank.std() == pytest.approx(1.0, rel=0.1)
    empty = deblending.examples(3, 4).inputs[:, 0, :6, :6]  # a corner, far from both galaxies
    assert empty.std() == pytest.approx(1.0, rel=0.25)


def test_vlba_a_bright_isolated_source_is_found_by_photutils_at_its_place():
    examples = detection.examples(11, 48)
    found = detection.photutils_sources(examples)
    checked = 0
    for f, truth in zip(found, examples.truth, strict=True):
        xy = np.stack([truth["x"], truth["y"]], axis=1)
        distance = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) + np.eye(len(xy)) * 1e9
        isolated = (truth["snr"] > 20) & (distance.min(axis=1, initial=1e9) > 16)  # two beams from the rest
        for x, y in xy[isolated]:
            assert len(f) and np.hypot(f[:, 0] - x, f[:, 1] - y).min() < detection.MATCH_PX
            checked += 1
    assert checked >= 3


def test_vlba_counts_follow_the_rules():
    truth = {"x": np.array([10.0, 40.0]), "y": np.array([10.0, 40.0]), "snr": np.array([20.0, 3.0])}
    assert detection.counts(np.array([[10.5, 10.0]]), truth) == (1, 0, 0)
    assert detection.counts(np.array([[40.0, 41.0]]), truth) == (0, 0, 1)  # a faint find: neither way
    assert detection.counts(np.array([[25.0, 25.0]]), truth) == (0, 1, 1)
    assert detection.counts(np.zeros((0, 2)), truth) == (0, 0, 1)


def test_hogbom_clean_recovers_a_point_source():
    instrument = surface_brightness.instruments(np.random.default_rng(1), 1)[0]
    sky = np.zeros((64, 64), np.float32)
    sky[30, 35] = 50.0
    dirty = radio.observe(sky, instrument, np.random.default_rng(2))
    model, residual = clean.hogbom(dirty, instrument.psf)
    assert model[29:32, 34:37].sum() == pytest.approx(50.0, rel=0.05)
    assert np.abs(residual).max() < clean.THRESHOLD
    restored = clean.clean_image(dirty, instrument.psf, instrument.beam)
    assert restored[30, 35] == pytest.approx(50.0, rel=0.1)  # peak flux per beam = point flux


def test_convolution_keeps_positions():
    image = np.zeros((64, 64), np.float32)
    image[20, 41] = 1.0
    blurred = radio.convolve(image, radio.restoring_beam((6.0, 3.0, 30.0), 64))
    assert np.unravel_index(np.argmax(blurred), blurred.shape) == (20, 41)


def test_restoring_beam_points_east_of_north():
    """A beam at position angle 90 deg (east-west) is wide along x (x runs west)."""
    beam = radio.restoring_beam((10.0, 4.0, 90.0), 64)
    assert beam[32, 32] == pytest.approx(1.0)
    assert beam[32, 37] == pytest.approx(0.5, abs=0.01) and beam[34, 32] == pytest.approx(0.5, abs=0.01)


def test_lofar_like_array_is_a_dense_core_with_remote_stations():
    config = surface_brightness.lofar_like_configuration()
    radius = np.hypot(*config.xyz_m[:, :2].T)
    assert config.n_antennas == 38 and (radius < 2100).sum() == 24 and (radius > 2900).sum() == 14
    assert radius.max() == pytest.approx(60e3, rel=1e-6)
    assert np.array_equal(config.xyz_m, surface_brightness.lofar_like_configuration().xyz_m)


def test_lofar_clean_beats_the_dirty_image_and_its_two_channels_are_its_image():
    examples = surface_brightness.examples(5, 6)
    cleaned = surface_brightness.scores(surface_brightness.clean_baseline(examples), examples)
    dirty = surface_brightness.scores(examples.observed, examples)
    first, truth = examples.observed[0], examples.truth[0]
    assert np.allclose(clean.clean_image(first, truth["psf"], truth["beam"]), examples.inputs[0].sum(0), atol=1e-4)
    assert cleaned["residual_rms"] < dirty["residual_rms"] / 5 and cleaned["ssim"] > dirty["ssim"]
    assert cleaned["flux_error"] < 0.2


def test_vst_measure_reads_a_gaussians_shape():
    ellipse = gaussian_images([{"x": 30.0, "y": 33.0, "fwhm_x": 8.0, "fwhm_y": 4.0, "pa": 0.0}], 64)[0]
    flux, x, y, e = deblending.measure(ellipse, np.ones_like(ellipse, bool))
    assert (x, y) == (pytest.approx(30.0), pytest.approx(33.0))
    assert e.real == pytest.approx((64 - 16) / (64 + 16), abs=1e-3) and e.imag == pytest.approx(0.0, abs=1e-6)
    assert flux == pytest.approx(ellipse.sum())


def test_vst_photutils_splits_a_wide_pair_and_its_scores_count_each_galaxy():
    examples = deblending.examples(4, 12)
    answer = deblending.photutils_deblended(examples)
    assert answer.shape == examples.targets.shape
    scores = deblending.scores(answer, examples)
    nothing = deblending.scores(np.zeros_like(answer), examples)
    assert scores["flux_error"] < nothing["flux_error"] == pytest.approx(1.0)
    assert scores["centroid_error"] < nothing["centroid_error"]


def test_relative_objective_is_the_worst_score_against_the_baseline():
    from pipeline.automl.tasks import relative_objective

    objective = relative_objective(("flux", "rms"), ("ssim",))
    baseline = {"flux": 0.1, "rms": 2.0, "ssim": 0.9}
    assert objective(baseline, baseline) == pytest.approx(1.0)
    # far better on two scores cannot hide a worse third: below 1 only when every score beats it
    assert objective({"flux": 0.01, "rms": 0.2, "ssim": 0.85}, baseline) == pytest.approx(1.5)
    assert objective({"flux": 0.09, "rms": 1.0, "ssim": 0.95}, baseline) == pytest.approx(0.9)
    assert objective({"flux": 5.0, "rms": 1.0, "ssim": 0.95}, baseline) == 10.0  # capped
