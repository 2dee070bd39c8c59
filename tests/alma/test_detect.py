"""The detection stages on known inputs, and the whole pipeline end to end with tiny networks."""

from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.table import Table

from pipeline.alma import detect, networks, source_maps
from pipeline.alma.catalog import COLUMN_NAMES, read_catalog
from pipeline.alma.companions import dirty_beam_image, open_companion
from pipeline.alma.cube import open_cube
from pipeline.alma.simulate import Observation, simulate_cube, write_cube
from pipeline.alma.train import train
from pipeline.errors import Cancelled, InputError
from tests.conftest import write_simulated_with_companions


class Identity(torch.nn.Module):
    """A stand-in Blobs Finder for testing the tiling: returns its (min-max scaled) input."""

    image_size = 32

    def forward(self, x):
        return x


def test_source_map_tiles_and_pads():
    rng = np.random.default_rng(0)
    big = rng.random((70, 90)).astype(np.float32)
    merged = source_maps.source_map(big, Identity())
    assert merged.shape == (70, 90)
    # every pixel is covered, and overlapping tiles keep the highest (tile-scaled) value
    assert (merged > 0).mean() > 0.99 and merged.max() <= 1.0
    small = source_maps.source_map(rng.random((20, 25)).astype(np.float32), Identity())
    assert small.shape == (20, 25)
    # a stack runs as one batch and gives each image's own map
    stack = rng.random((3, 70, 90)).astype(np.float32)
    together = source_maps.source_map(stack, Identity())
    assert together.shape == (3, 70, 90)
    assert np.array_equal(together[2], source_maps.source_map(stack[2], Identity()))


def test_search_windows_cover_the_band_at_each_width():
    assert source_maps.search_windows(128, ()) == [(0, 127)]
    ranges = source_maps.search_windows(128, (32, 8))
    assert ranges[0] == (0, 127)
    eights = [r for r in ranges if r[1] - r[0] == 7]
    assert eights[0] == (0, 7) and eights[1] == (4, 11) and eights[-1] == (120, 127)
    assert len([r for r in ranges if r[1] - r[0] == 31]) == 7
    assert source_maps.search_windows(6, (32, 8)) == [(0, 5)]  # widths not narrower than the band are skipped


def test_spectral_search_finds_a_narrow_line_the_whole_band_misses(make_cube):
    """A 3-channel line at peak SNR 6 integrates to SNR ~2 over 128 channels, ~6 over 8."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((128, 40, 40)).astype(np.float32)
    yy, xx = np.mgrid[0:40, 0:40]
    blob = np.exp(-((xx - 20) ** 2 + (yy - 22) ** 2) / (2 * 2.0**2))
    line = np.exp(-((np.arange(128) - 60) ** 2) / (2 * 1.3**2))
    data += 6.0 * line[:, None, None] * blob[None]
    cube = open_cube(make_cube(data=data, nx=40, ny=40, nchan=128))

    class Snr(torch.nn.Module):  # a stand-in network: the tile's significance above 4.5 sigma
        image_size = 32

        def forward(self, x):
            z = (x - x.mean(dim=(2, 3), keepdim=True)) / x.std(dim=(2, 3), keepdim=True)
            return (z > 4.5).float()

    whole = source_maps.spectral_source_map(cube, Snr(), windows=())
    windowed = source_maps.spectral_source_map(cube, Snr(), windows=(8,))
    assert whole[22, 20] == 0 and windowed[22, 20] == 1


def test_strips_of_rows_give_the_map_of_the_whole_image(make_cube):
    """With too little memory for the whole image at once, the search goes strip by strip of tile
    rows, and the map is the same."""
    cube = open_cube(make_cube(layout="3d", nx=70, ny=100, nchan=24))
    whole = source_maps.spectral_source_map(cube, Identity(), windows=(8,))
    assert len(source_maps.strips(cube, 32, (8,), memory=1e5)) == 4
    stripped = source_maps.spectral_source_map(cube, Identity(), windows=(8,), memory=1e5)
    assert np.array_equal(whole, stripped) and (whole > 0).mean() > 0.99


def test_cancel_stops_between_batches_of_tiles(make_cube):
    """Cancel is seen before the next two tiles go through the network, not only between windows:
    within a second on any cube."""

    class CancelledAfterOneBatch:  # as if the visitor pressed Cancel while the first batch ran
        checks = 0

        def is_set(self):
            self.checks += 1
            return self.checks > 1

    cancel = CancelledAfterOneBatch()
    cube = open_cube(make_cube(layout="3d", nx=70, ny=100, nchan=24))
    with pytest.raises(Cancelled):
        source_maps.spectral_source_map(cube, Identity(), windows=(), cancel=cancel)
    assert cancel.checks == 2  # one batch of the whole band's 16 tiles went, the second did not


def test_boxes_from_map():
    m = np.zeros((50, 50), np.float32)
    m[10:14, 20:25] = 0.9
    m[40, 40] = 0.3
    m[30, 5] = 0.1  # below the paper's 0.15
    boxes = detect.boxes_from_map(m)
    assert sorted(b[:4] for b in boxes) == [(19, 9, 26, 15), (39, 39, 42, 42)]  # dilated by one pixel
    assert max(b[4] for b in boxes) == pytest.approx(0.9)


def test_emission_ranges_find_lines_and_blends():
    c = np.arange(100)
    one = np.exp(-0.5 * ((c - 40) / 3.0) ** 2)
    (peak, first, last), = detect.emission_ranges(one)
    fwhm = 3.0 * 2.355
    assert peak == 40 and first == int(np.floor(40 - fwhm)) and last == int(np.ceil(40 + fwhm)) + 1
    two = one + 0.7 * np.exp(-0.5 * ((c - 75) / 2.0) ** 2)
    assert [r[0] for r in detect.emission_ranges(two)] == [40, 75]
    flat = np.zeros(100)
    assert len(detect.emission_ranges(flat)) == 1


def test_focused_image_integrates_only_the_range(make_cube):
    cube = open_cube(make_cube(layout="3d"))  # source at x=10, y=8, channel 6
    on, rms_on, centre = detect.focused_image(cube, (8, 6, 13, 11), 5, 8)
    off, rms_off, _ = detect.focused_image(cube, (8, 6, 13, 11), 0, 3)
    c = 32
    assert on[c - 2:c + 3, c - 2:c + 3].max() > 10 * off[c - 2:c + 3, c - 2:c + 3].max()
    assert centre == (10, 8)


def _line_cube(make_cube, x, y, z, line_sigma, peak, n=128, side=48, seed=3):
    """White noise (rms 1) with one 2-px-sigma source at (x, y) and a Gaussian line at channel z."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, side, side)).astype(np.float32)
    yy, xx = np.mgrid[0:side, 0:side]
    blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    line = np.exp(-((np.arange(n) - z) ** 2) / (2 * line_sigma**2))
    data += peak * line[:, None, None] * blob[None]
    return open_cube(make_cube(data=data, nx=side, ny=side, nchan=n))


def test_focused_image_moves_to_the_source(make_cube):
    """A box whose centre is 3 px off the source: the cut is centred on the source, as the
    ResNets were trained; without recentring it stays on the box."""
    cube = _line_cube(make_cube, 24, 22, 60, 3.0, 8.0)
    box = (24, 22, 30, 29)  # centre (26.5 -> 26, 25)
    focused, _, centre = detect.focused_image(cube, box, 52, 69)
    assert centre == (24, 22)
    c = detect.pre.FOCUS_SIZE // 2
    assert np.unravel_index(np.argmax(focused), focused.shape) == (c, c)
    assert detect.focused_image(cube, box, 52, 69, recentre=False)[2] == (26, 25)


def test_line_windows_narrow_about_the_peak():
    assert detect.line_windows(40, 30, 51) == [(30, 51), (39, 42), (38, 43), (36, 45), (32, 49)]
    assert detect.line_windows(5, 0, 11) == [(0, 11), (4, 7), (3, 8), (1, 10)]
    assert detect.line_windows(2, 1, 4) == [(1, 4)]  # a 3-channel range is its own narrowest window
    assert detect.line_windows(0, 0, 9)[1] == (0, 2)  # clipped to the range


def test_narrow_windows_pay_for_their_extra_looks():
    assert detect.significant([5.0], 5.0) and not detect.significant([4.9], 5.0)
    assert detect.significant([5.1, 4.0, 4.0, 4.0, 4.0], 5.0)  # the emission range as before
    assert not detect.significant([4.0, 5.2, 4.0, 4.0, 4.0], 5.0)  # 4 more looks: 5.25 sigma
    assert detect.significant([4.0, 5.3, 4.0, 4.0, 4.0], 5.0)
    assert detect.significant([4.0, 5.05], 5.0)  # one more look: 5 sigma / 1


def test_a_narrow_line_is_significant_over_its_own_channels(make_cube):
    """A 2-channel line at peak SNR 6: the Deep GRU's range (+-5 channels) dilutes it below 5
    sigma; its own channels do not."""
    cube = _line_cube(make_cube, 24, 24, 60, 2.0 / 2.355, 6.0)
    box = (21, 21, 28, 28)
    wide = detect.focused_snr(detect.focused_image(cube, box, 55, 66)[0])
    snrs = [detect.focused_snr(detect.focused_image(cube, box, a, b)[0]) for a, b in detect.line_windows(60, 55, 66)]
    assert snrs[0] == wide < 5.0 and detect.significant(snrs, 5.0)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Each pipeline network trained for two steps on 64-px examples: right shapes, no skill."""
    folder = tmp_path_factory.mktemp("models")
    for task in networks.PIPELINE_TASKS + networks.DECORAS_TASKS:
        train(task, folder / task, steps=2, size=64, batch_size=2, validate_every=2, validation_batches_n=1)
    return folder


@pytest.fixture(scope="module")
def sim_cube_path(tmp_path_factory):
    obs = Observation(cell_arcsec=0.15, observation_s=1200, integration_s=60)
    sim = simulate_cube(4, size=96, channels=24, observation=obs, name="t.fits")
    return write_cube(tmp_path_factory.mktemp("cube") / "t.fits", sim.dirty_cube, sim.frequency_hz, obs, sim.beams)


def test_pipeline_end_to_end_gives_a_catalogue(tiny_models, sim_cube_path):
    finder = detect.SourceFinder.load(tiny_models)
    stages = []
    with open_cube(sim_cube_path) as cube:
        catalog = detect.detect(cube, "pipeline", finder=finder, min_snr=-np.inf,
                                progress=lambda done, total, stage: stages.append((stage, done, total)))
    # the whole band and 8-channel windows by 4 of the 24 channels (32 is wider than the band), as
    # they are read: in the order of their last channel (the whole band before the window it ends with)
    windows = [f"Blobs Finder, channels {z}-{z + 7} ({i}/6)" for i, z in enumerate(range(0, 13, 4), start=1)]
    windows += ["Blobs Finder, whole band (5/6)", "Blobs Finder, channels 16-23 (6/6)"]
    assert [s for s, _, _ in stages] == ["channel noise", *windows, "Deep GRU, focusing and ResNets", "catalogue"]
    assert [d for _, d, _ in stages] == list(range(9)) and {t for _, _, t in stages} == {9}
    with open_cube(sim_cube_path) as cube:  # strip by strip in too little memory: the same catalogue
        stripped = detect.detect(cube, "pipeline", finder=finder, min_snr=-np.inf, memory=1e5)
    assert all(np.array_equal(stripped[c], catalog[c]) for c in ("x", "y", "z", "x0", "y1", "snr"))
    assert list(catalog.colnames) == list(COLUMN_NAMES)
    assert len(catalog) >= 1 and set(catalog["detector"]) == {"pipeline"}
    assert np.all((catalog["x0"] < catalog["x1"]) & (catalog["z0"] < catalog["z1"]))


def test_the_shape_resnet_is_told_the_psf_cubes_dirty_beam_when_given(tiny_models, tmp_path, monkeypatch):
    paths = write_simulated_with_companions(tmp_path, seed=3)
    told, measure = [], detect.measure
    monkeypatch.setattr(detect, "measure",
                        lambda focused, resnets, beam: told.append(beam) or measure(focused, resnets, beam))
    finder = detect.SourceFinder.load(tiny_models)
    with open_cube(paths["cube"]) as cube, open_companion(paths["psf"], cube, "psf") as psf:
        detect.detect(cube, "pipeline", finder=finder, min_snr=-np.inf)
        without = len(told)
        catalog = detect.detect(cube, "pipeline", finder=finder, min_snr=-np.inf, psf=psf)
        expected = [dirty_beam_image(psf, int(r["z0"]), int(r["z1"]), 64) for r in catalog]
    assert without > 0 and len(told) > without
    assert all(beam.min() >= 0 for beam in told[:without])  # the fitted Gaussian beam
    assert all(beam.min() < 0 and beam[32, 32] == 1 for beam in told[without:])  # the dirty beam
    assert any(np.array_equal(beam, e) for beam in told[without:] for e in expected)


def test_cancel_stops_detection(tiny_models, sim_cube_path):
    import threading
    cancel = threading.Event()
    cancel.set()
    with open_cube(sim_cube_path) as cube, pytest.raises(Cancelled):
        detect.detect(cube, "pipeline", finder=detect.SourceFinder.load(tiny_models), cancel=cancel)


def test_missing_models_and_unknown_detector(tmp_path, sim_cube_path):
    with pytest.raises(InputError, match="python -m pipeline train blobs_finder"):
        detect.SourceFinder.load(tmp_path)
    with open_cube(sim_cube_path) as cube, pytest.raises(InputError, match="Unknown detector"):
        detect.detect(cube, "sofia")


def test_cli_detect_with_a_classic_finder(sim_cube_path, tmp_path):
    from tests.conftest import run_cli as run
    out, reg = tmp_path / "cat.vot", tmp_path / "cat.reg"
    result = run("detect", sim_cube_path, "-o", out, "--detector", "photutils", "--regions", reg, "--quiet")
    assert result.returncode == 0, result.stderr
    catalog = read_catalog(out)
    assert len(catalog) >= 1 and reg.read_text().count("ellipse") + reg.read_text().count("box") == len(catalog)


def test_cli_detect_pipeline_with_models_folder(tiny_models, sim_cube_path, tmp_path):
    from tests.conftest import run_cli as run
    result = run("detect", sim_cube_path, "-o", tmp_path / "c.csv", "--models", tiny_models, "--quiet")
    assert result.returncode == 0, result.stderr
    assert read_catalog(tmp_path / "c.csv").colnames == list(COLUMN_NAMES)


def test_decoras_end_to_end(tiny_models, sim_cube_path):
    networks = detect.load_networks(tiny_models, detect.DECORAS_TASKS)
    with open_cube(sim_cube_path) as cube:
        catalog = detect.detect(cube, "decoras", networks=networks, min_snr=-np.inf)
    assert list(catalog.colnames) == list(COLUMN_NAMES)
    assert set(catalog["detector"]) <= {"decoras"}


def test_shipped_decoras_finds_the_bright_sources_of_the_bundled_cube():
    """The trained DECORAS pair in assets/models on the bundled simulated cube (strict rule):
    the sources of SNR >= 10 are found and nothing outside the truth."""
    from pipeline.alma.evaluate import evaluate

    cubes = Path(__file__).resolve().parents[2] / "assets" / "cubes"
    with open_cube(cubes / "sim_7_0000.fits") as cube:
        catalog = detect.detect(cube, "decoras")
    truth = Table.read(cubes / "sim_7_0000_truth.csv")
    scores = evaluate(truth, catalog, rule="strict", image_size_px=128)
    assert scores["overall"]["fp"] == 0 and scores["overall"]["tp"] >= 2
    assert scores["snr_bins"][-1]["recall"] == 1.0  # SNR >= 10
    # sizes fitted on the line image, not moments of the network's footprint (which were all 0);
    # a source smaller than the beam may still deconvolve to 0 (unresolved)
    assert (catalog["fwhm_x"] > 0).sum() >= len(catalog) - 1
    assert abs(scores["residuals"]["fwhm_major"]["mean"]) < 1.5


def test_centroid_stays_on_its_source_beside_a_brighter_one():
    yy, xx = np.mgrid[0:64, 0:64]

    def blob(x, y, peak, sigma=3.0):
        return peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))

    faint, bright = blob(33, 31, 6.0), blob(33 - 7, 31 + 9, 50.0)
    x, y = detect.centroid((faint + bright).astype(np.float32), (100, 200))
    assert abs(x - 101) < 1.0 and abs(y - 199) < 1.0  # (33, 31) in the cut is (101, 199) in the cube
    blend = (blob(32, 32, 30.0) + blob(36, 32, 12.0)).astype(np.float32)
    assert abs(detect.centroid(blend, (0, 0))[0]) < 1.0  # the brighter core, not the pair's middle


def test_blend_peaks_find_a_fainter_source_in_the_same_box():
    """Two sources 8 px apart in one box: the fainter one's peak, not the brighter one's wing;
    a bump below the box's corrected level, or closer than a beam, is not taken."""
    yy, xx = np.mgrid[0:64, 0:64]

    def blob(x, y, peak, sigma=6.7 / 2.355):
        return peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))

    image = (blob(32, 32, 14.0) + blob(40, 34, 8.0)).astype(np.float32)
    box = (26, 28, 44, 38)  # cube = cut coordinates (centre (32, 32))
    (x, y), = detect.blend_peaks(image, (32, 32), box, (32, 32), 6.7, 6.1)
    assert abs(x - 40) < 0.5 and abs(y - 34) < 0.5
    faint = (blob(32, 32, 14.0) + blob(40, 34, 4.9)).astype(np.float32)  # 5.1 with the wing: under 5.26 for ~4 beams
    assert detect.blend_peaks(faint, (32, 32), box, (32, 32), 6.7, 6.1) == []
    assert detect.blend_peaks(image, (32, 32), box, (32, 32), 9.0, 8.0) == []  # within a (wider) beam
    # each image searched is another look at the noise: a peak of 5.35 with the wing passes for
    # one image, not for three (5.26 sigma for ~4 beams, 5.45 for ~12)
    marginal = (blob(32, 32, 14.0) + blob(40, 34, 5.15)).astype(np.float32)
    assert len(detect.blend_peaks(marginal, (32, 32), box, (32, 32), 6.7, 6.1)) == 1
    assert detect.blend_peaks(marginal, (32, 32), box, (32, 32), 6.7, 6.1, looks=3) == []
    # a wing's cut may be centred on the neighbour: the sidelobe guard still takes the source's
    # own peak there (7.5 is under a fifth of 40, over a fifth of 20)
    for source_peak, found in ((40.0, 0), (20.0, 1)):
        wing = (blob(21, 32, source_peak) + blob(32, 32, 7.5)).astype(np.float32)
        assert len(detect.blend_peaks(wing, (32, 32), (16, 26, 38, 38), (21, 32), 6.7, 6.1)) == found


def test_detect_to_votable_to_evaluate_with_provenance(tiny_models, tmp_path):
    """A catalogue written as VOTable (or CSV) is read back by evaluate, and carries where it came
    from: detector, options, cube, the project's version and each network file's SHA-256."""
    import hashlib

    from pipeline.alma.catalog import write_catalog
    from pipeline.alma.evaluate import evaluate_files
    from pipeline.alma.simulate import write_truth

    obs = Observation(cell_arcsec=0.15, observation_s=1200, integration_s=60)
    sim = simulate_cube(11, size=96, channels=32, observation=obs, name="s.fits")
    path = write_cube(tmp_path / "s.fits", sim.dirty_cube, sim.frequency_hz, obs, sim.beams)
    write_truth(tmp_path / "truth.csv", sim.truth)
    with open_cube(path) as cube:
        found = detect.detect(cube, "pipeline", models=tiny_models, min_snr=3.0)
    assert len(found) >= 1
    for suffix in (".vot", ".csv"):
        written = write_catalog(found, tmp_path / f"c{suffix}")
        scores = evaluate_files(tmp_path / "truth.csv", written, rule="strict")["rules"]["strict"]["overall"]
        assert scores["tp"] + scores["fp"] == len(found)
        record = read_catalog(written).meta["provenance"]
        assert record["detector"] == "pipeline" and record["cube"] == "s.fits"
        assert record["software"].startswith("alma-ulisse-explorer ") and '"min_snr": 3.0' in record["options"]
        shipped = hashlib.sha256((tiny_models / "deep_gru" / "model.pt").read_bytes()).hexdigest()
        assert f'"deep_gru": "{shipped}"' in record["models"]
    assert (tmp_path / "c.csv").read_text().startswith("# software: alma-ulisse-explorer")


def test_networks_are_loaded_once_per_file(tiny_models, tmp_path):
    first = detect.load_networks(tiny_models, ("deep_gru",))["deep_gru"]
    assert detect.load_networks(tiny_models, ("deep_gru",))["deep_gru"] is first
    import shutil
    shutil.copytree(tiny_models / "deep_gru", tmp_path / "deep_gru")
    other = detect.load_networks(tmp_path, ("deep_gru",))["deep_gru"]
    assert other is not first and not other.training


@pytest.mark.parametrize("workers", [1, 4])
def test_the_search_on_dask_gives_the_same_catalogue(tiny_models, sim_cube_path, workers):
    """A row of tiles a task, on a Dask cluster (here in this process) of 1 or 4 workers that load
    the network from its file: the catalogue found in this process."""
    import dask
    from dask.distributed import LocalCluster

    finder = detect.SourceFinder.load(tiny_models)
    with open_cube(sim_cube_path) as cube:
        here = detect.detect(cube, "pipeline", finder=finder, min_snr=-np.inf)
        no_pages = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
        with dask.config.set(no_pages), LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                                                     dashboard_address=None) as cluster:
            stages = []
            there = detect.detect(cube, "pipeline", finder=finder, min_snr=-np.inf, scheduler=cluster.scheduler_address,
                                  progress=lambda done, total, stage: stages.append(stage))
    assert len(here) >= 1 and all(np.array_equal(there[c], here[c]) for c in ("x", "y", "z", "x0", "y1", "snr"))
    # a step as each row of tiles comes back, in whatever order the workers finish them
    rows = sorted(stage.split(", ")[1].split(" (")[0] for stage in stages if stage.startswith("Blobs Finder"))
    assert rows == ["rows 0-63", "rows 32-95"]


def test_a_compressed_cube_larger_than_the_memory_is_refused(make_cube):
    """A gzipped cube is decompressed whole into memory: beyond ``memory`` the message says to
    decompress it first; within it the search runs."""
    with open_cube(make_cube(gz=True)) as cube:  # 24 x 20 x 12 float32: 23 kB
        with pytest.raises(InputError, match=r"compressed.*gunzip -k cube\.fits\.gz"):
            detect.detect(cube, "photutils", memory=10_000)
        assert list(detect.detect(cube, "photutils", memory=1e6).colnames) == list(COLUMN_NAMES)


def test_the_significance_cut_rises_with_the_places_searched(make_cube, monkeypatch):
    """5 sigma for a search no larger than the reference; for one 16 times larger the cut with the
    same false-alarm probability per cube, 5.51 sigma; no cut stays no cut."""
    from pipeline.alma import focus

    with open_cube(make_cube()) as cube:  # 24 x 20 px, a median beam of 5.55 x 4 px, 12 channels
        trials = focus.search_trials(cube)
        assert trials == pytest.approx(24 * 20 / (np.pi / (4 * np.log(2)) * 5.55 * 4) * 12, rel=0.01)
        assert focus.cube_level(cube, 5.0) == 5.0
        assert "focused SNR >= 5" == focus.significance_note(cube, 5.0, 5.0)
        monkeypatch.setattr(focus, "REFERENCE_TRIALS", trials / 16)
        assert focus.cube_level(cube, 5.0) == pytest.approx(5.51, abs=0.01)
        assert focus.cube_level(cube, -np.inf) == -np.inf
        assert "raised for this cube's" in focus.significance_note(cube, 5.0, focus.cube_level(cube, 5.0))


def test_deep_finders_refuse_a_constant_cube_before_searching(make_cube):
    """Told by the channels' rms, which the focusing needs anyway, not by a read of the cube of its own."""
    with open_cube(make_cube(layout="3d", nx=40, ny=40, data=np.ones((12, 40, 40), np.float32))) as cube:
        for detector in ("pipeline", "decoras"):
            with pytest.raises(InputError, match="constant in every channel"):
                detect.detect(cube, detector)


def test_preview_shows_the_blobs_finders_boxes_as_its_tiles_finish(tiny_models, sim_cube_path, monkeypatch):
    """The explorer draws the candidates so far while the search runs: the boxes of the map as it
    grows, window by window, ending with the boxes the spectral check starts from."""
    monkeypatch.setattr(detect, "PREVIEW_SECONDS", 0.0)  # every window (the explorer's is once a second)
    finder = detect.SourceFinder.load(tiny_models)
    shown, searched = [], []
    monkeypatch.setattr(detect, "characterise", lambda cube, boxes, *a, **k: searched.append(boxes) or [])
    with open_cube(sim_cube_path) as cube:
        detect.detect(cube, "pipeline", finder=finder, preview=lambda boxes: shown.append(list(boxes)))
    assert len(shown) == 7  # as each window is read (5 + the whole band), the map so far; then all the boxes
    assert shown[-1] != shown[0] and searched[0] == shown[-1] == detect.boxes_from_map(
        source_maps.spectral_source_map(open_cube(sim_cube_path), finder.blobs_finder))


def test_an_interrupted_search_resumes_from_its_saved_strips(tiny_models, sim_cube_path, tmp_path):
    """Each strip's map is saved as it is done; a rerun after a cancel loads them instead of
    searching them again, and the map is the one an uninterrupted search gives."""
    network = networks.load_network_file(tiny_models / "blobs_finder" / "model.pt")
    parts = tmp_path / "out.csv.parts"
    with open_cube(sim_cube_path) as cube:
        whole = source_maps.spectral_source_map(cube, network, windows=(8,), memory=1e5)
        bands = source_maps.strips(cube, network.image_size, (8,), memory=1e5)
        assert len(bands) == 2  # a row of tiles each
        cancel, seen = __import__("threading").Event(), []

        def step(stage):  # Cancel pressed as the second strip starts
            seen.append(stage)
            if stage.startswith(f"rows {bands[1][0]}-"):
                cancel.set()

        with pytest.raises(Cancelled):
            source_maps.spectral_source_map(cube, network, windows=(8,), memory=1e5, step=step, cancel=cancel,
                                            parts=parts)
        assert len(list(parts.glob("*.npy"))) == 1  # the first strip
        resumed = source_maps.spectral_source_map(cube, network, windows=(8,), memory=1e5, parts=parts)
        assert np.array_equal(resumed, whole) and len(list(parts.glob("*.npy"))) == len(bands)
        first = next(parts.glob(f"*-rows{bands[0][0]}-{bands[0][1]}.npy"))
        np.save(first, np.ones((bands[0][1] - bands[0][0], cube.nx), np.float32))  # as if the network saw 1 there
        again = source_maps.spectral_source_map(cube, network, windows=(8,), memory=1e5, parts=parts)
        assert (again[bands[0][0]:bands[0][1]] == 1).all()  # loaded, not searched again
        # another network, or the cube's negated view, never reads these maps
        assert source_maps.saved_strips(parts, cube, network, 32, [(0, 7)])((0, 32)).name.startswith("t.fits-map-")
        assert source_maps.saved_strips(parts, cube, Identity(), 32, [(0, 7)]) is None


def test_the_cli_clears_the_saved_maps_once_the_catalogue_is_written(tiny_models, sim_cube_path, tmp_path):
    from pipeline.cli import main

    out = tmp_path / "cat.csv"
    assert main(["detect", str(sim_cube_path), "-o", str(out), "--models", str(tiny_models), "--memory", "0.5GB",
                 "--quiet"]) == 0
    assert out.is_file() and not (tmp_path / "cat.csv.parts").exists()
