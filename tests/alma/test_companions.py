"""Primary-beam and PSF cubes beside an image (pipeline.alma.companions): names, checks, correction."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from pipeline.alma import examples as ex
from pipeline.alma import preprocess as pre
from pipeline.alma.catalog import (
    FLUX_CORRECTED,
    FLUX_UNCORRECTED,
    make_catalog,
    read_catalog,
    write_catalog,
)
from pipeline.alma.companions import (
    PB_LIMIT,
    companion_candidates,
    correct_fluxes,
    dirty_beam_image,
    open_companion,
)
from pipeline.alma.cube import open_cube
from pipeline.alma.detect import detect
from pipeline.errors import InputError
from tests.alma.test_catalog import NX, NY, rows
from tests.conftest import cube_header, write_simulated_with_companions


# ---- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cube, kind, first", [
    ("x.fits", "pb", "x.pb.fits"),
    ("x.image.fits", "pb", "x.pb.fits"),
    ("x.image.fits", "psf", "x.psf.fits"),
    ("member.spw25.cube.I.image.fits.gz", "pb", "member.spw25.cube.I.pb.fits"),
    ("x.image.pbcor.fits", "psf", "x.psf.fits"),
    ("x.FITS", "psf", "x.psf.fits"),
])
def test_candidates_follow_tclean_names(cube, kind, first):
    found = companion_candidates(Path("/data") / cube, kind)
    assert [p.name for p in found] == [first, first + ".gz"]
    assert all(p.parent == Path("/data") for p in found)


def test_no_primary_beam_is_looked_for_beside_a_corrected_image():
    # its fluxes are corrected already: a second division would be wrong
    assert companion_candidates("x.image.pbcor.fits", "pb") == []
    assert companion_candidates("notes.txt", "pb") == []
    with pytest.raises(InputError, match="'pb'"):
        companion_candidates("x.fits", "mask")


# ---- checks --------------------------------------------------------------------------------------
def test_the_simulated_primary_beam_and_psf_fit_their_cube(sim_with_companions):
    paths = sim_with_companions
    with open_cube(paths["cube"]) as cube:
        for kind in ("pb", "psf"):
            with open_companion(paths[kind], cube, kind) as companion:
                assert companion.shape == cube.shape and companion.lazy


def test_the_dirty_beam_read_from_a_psf_cube_is_the_one_the_shape_resnet_learnt(sim_with_companions):
    paths, sim = sim_with_companions, sim_with_companions["sim"]
    with open_cube(paths["cube"]) as cube, open_companion(paths["psf"], cube, "psf") as psf:
        middle = psf.nchan // 2
        one = dirty_beam_image(psf, middle, middle + 1, pre.FOCUS_SIZE)
        line = dirty_beam_image(psf, 4, 12, pre.FOCUS_SIZE)
        planes = np.asarray(psf.data[4:12], np.float64).sum(axis=0)
        wide = dirty_beam_image(psf, 4, 12, 128)  # wider than the 96 px grid
    # the training's dirty beam of the same observation at that channel's frequency
    observation = dataclasses.replace(sim.observation, centre_frequency_hz=float(sim.frequency_hz[middle]))
    np.testing.assert_allclose(one, ex.make_instrument(observation, 96).dirty_beam, atol=2e-3)
    # a line's: its channels' planes summed, about the peak (48, 48), peak 1
    np.testing.assert_allclose(line, planes[16:80, 16:80] / planes[48, 48], atol=1e-5)
    assert line[32, 32] == 1 and line.min() < 0
    np.testing.assert_allclose(wide[16:112, 16:112], planes / planes[48, 48], atol=1e-5)
    assert not wide[:16].any() and not wide[:, 112:].any()


def _rewrite(source: Path, target: Path, data=None, **header):
    """A copy of the FITS cube ``source`` with its pixels (4-D, Stokes first) or header cards changed."""
    with fits.open(source) as hdul:
        hdu = fits.PrimaryHDU(np.asarray(hdul[0].data) if data is None else data, hdul[0].header.copy())
    for key, value in header.items():
        hdu.header[key] = value
    hdu.writeto(target)
    return target


def test_a_single_plane_primary_beam_applies_to_every_channel(sim_with_companions, tmp_path):
    paths = sim_with_companions
    with fits.open(paths["pb"]) as hdul:
        plane = np.asarray(hdul[0].data)[:, 16:17]
    path = _rewrite(paths["pb"], tmp_path / "continuum.pb.fits", plane)
    with open_cube(paths["cube"]) as cube, open_companion(path, cube, "pb") as pb:
        assert pb.nchan == 1


def _mismatches(paths, tmp_path):
    """{what is wrong: (kind, file, words the refusal must hold)}."""
    with fits.open(paths["pb"]) as hdul:
        pb = np.asarray(hdul[0].data)
        cdelt3 = hdul[0].header["CDELT3"]
    with fits.open(paths["psf"]) as hdul:
        psf = np.asarray(hdul[0].data)
    damaged = pb.copy()
    damaged[0, 0, 3, 3] = np.inf
    shutil.copy(paths["cube"], tmp_path / "copy.fits")
    return {
        "half the channels": ("pb", _rewrite(paths["pb"], tmp_path / "a.fits", pb[:, :16]),
                              "has 16 channels but the cube has 32: give the .pb cube tclean made with this image"),
        "smaller image": ("psf", _rewrite(paths["psf"], tmp_path / "b.fits", psf[:, :, :, :80]),
                          "is 80 x 96 pixels but the cube is 96 x 96"),
        "pointing moved a pixel": ("pb", _rewrite(paths["pb"], tmp_path / "c.fits", CRPIX1=48.0),
                                   "pixels lie up to 1.00 pixels away"),
        "other spectral window": ("psf", _rewrite(paths["psf"], tmp_path / "d.fits", CRVAL3=230e9 + 5 * cdelt3),
                                  "at other frequencies"),
        "infinite value": ("pb", _rewrite(paths["pb"], tmp_path / "e.fits", damaged), "holds infinite values"),
        "primary beam above 1": ("pb", _rewrite(paths["pb"], tmp_path / "f.fits", 2 * pb), "at most 1"),
        "no positive value": ("pb", _rewrite(paths["pb"], tmp_path / "g.fits", -pb), "no positive value"),
        "the PSF given as primary beam": ("pb", paths["psf"], "is it the PSF"),
        "the primary beam given as PSF": ("psf", paths["pb"], "is it the primary beam"),
        "a copy of the image given as PSF": ("psf", tmp_path / "copy.fits", "where a PSF peaks at 1"),
        "an image of the right size given as PSF": ("psf", _rewrite(paths["psf"], tmp_path / "h.fits",
                                                                    np.roll(psf, 20, axis=3)), "not at the centre"),
        "the cube itself": ("pb", paths["cube"], "is the cube itself"),
        "a text file": ("psf", paths["cube"].parent / "truth.csv", "PSF cube: truth.csv is not a FITS file"),
    }


def test_companions_that_do_not_fit_are_refused_with_the_reason(sim_with_companions, tmp_path):
    with open_cube(sim_with_companions["cube"]) as cube:
        for what, (kind, path, words) in _mismatches(sim_with_companions, tmp_path).items():
            with pytest.raises(InputError) as refused:
                open_companion(path, cube, kind)
            assert words in str(refused.value), (what, str(refused.value))


# ---- correction ----------------------------------------------------------------------------------
def _ramp_primary_beam(path, nchan=12, hole=None):
    """A primary beam on the catalogue tests' 24 x 20 x 12 grid: (1 - 0.04 x)(1 - 0.02 z), so that
    the response at a source is known exactly; ``hole``: a pixel (x, y) outside the mapped area."""
    z, _, x = np.mgrid[0:nchan, 0:NY, 0:NX]
    pb = ((1 - 0.04 * x) * (1 - 0.02 * z)).astype(np.float32)
    if hole:
        pb[:, hole[1], hole[0]] = np.nan
    header = cube_header(NX, NY, nchan, stokes=False)
    del header["BUNIT"]
    fits.PrimaryHDU(pb, header).writeto(path)
    return path


def test_correct_fluxes_divides_by_the_response_at_the_nearest_pixel_and_channel(make_cube, tmp_path):
    sources = rows() + [{**rows()[1], "x": 22.2, "y": 3.0, "z": 1.0},  # response 0.12 x 0.98: below the limit
                        {**rows()[1], "x": 5.0, "y": 5.0, "z": 0.0}]  # outside the mapped area
    with open_cube(make_cube(layout="3d", nx=NX, ny=NY)) as cube:
        catalog = make_catalog(sources, cube, "photutils")
        assert np.isnan(catalog["pb"]).all() and catalog.meta["pb_corrected"] is False
        assert catalog.meta["description"] == FLUX_UNCORRECTED and "uncorrected" in catalog["flux"].description
        with open_companion(_ramp_primary_beam(tmp_path / "ramp.pb.fits", hole=(5, 5)), cube, "pb") as pb:
            corrected = correct_fluxes(catalog, pb)
    # the first source sits at (12, 10, 6); the second at (4, 15.5 -> 16, 2.5 -> 2)
    expected = [(1 - 0.04 * 12) * (1 - 0.02 * 6), (1 - 0.04 * 4) * (1 - 0.02 * 2), 0.12 * 0.98, 0.0]
    assert np.allclose(corrected["pb"], expected, rtol=1e-6)
    assert corrected["flux"][0] == pytest.approx(catalog["flux"][0] / expected[0], rel=1e-6)
    assert corrected["flux"][1] == pytest.approx(catalog["flux"][1] / expected[1], rel=1e-6)
    assert np.isnan(corrected["flux"][2]) and np.isnan(corrected["flux"][3])  # no blown-up fluxes
    assert list(corrected["snr"]) == list(catalog["snr"])  # signal and noise divided alike
    assert corrected.meta["pb_corrected"] is True and corrected.meta["pb_limit"] == PB_LIMIT
    assert corrected.meta["description"].startswith(FLUX_CORRECTED) and "pb < 0.2" in corrected.meta["description"]
    assert np.isnan(catalog["pb"]).all()  # the input catalogue is left as it was
    with pytest.raises(InputError, match="corrected for the primary beam already"):
        correct_fluxes(corrected, pb)


@pytest.mark.parametrize("suffix", [".csv", ".vot"])
def test_files_say_whether_fluxes_are_corrected(make_cube, tmp_path, suffix):
    with open_cube(make_cube(layout="3d", nx=NX, ny=NY)) as cube:
        catalog = make_catalog(rows(), cube, "photutils")
        with open_companion(_ramp_primary_beam(tmp_path / "ramp.pb.fits", nchan=1), cube, "pb") as pb:
            corrected = correct_fluxes(catalog, pb, pb_limit=0.3)
    plain = read_catalog(write_catalog(catalog, tmp_path / f"plain{suffix}"))
    assert plain.meta["pb_corrected"] is False and np.isnan(plain["pb"]).all()
    back = read_catalog(write_catalog(corrected, tmp_path / f"corrected{suffix}"))
    assert back.meta["pb_corrected"] is True and np.allclose(back["pb"], corrected["pb"])
    assert back["flux"].description.startswith("integrated line " + FLUX_CORRECTED)
    if suffix == ".vot":  # the VOTable's own description says it, with the limit
        assert "pb &lt; 0.3" in (tmp_path / "corrected.vot").read_text()
        assert back.meta["description"] == corrected.meta["description"] and back.meta["pb_limit"] == 0.3


def test_a_catalogue_written_before_the_pb_column_reads_as_uncorrected(make_cube, tmp_path):
    with open_cube(make_cube(layout="3d", nx=NX, ny=NY)) as cube:
        catalog = make_catalog(rows(), cube, "photutils")
    catalog.remove_column("pb")
    catalog.write(tmp_path / "old.csv", format="ascii.csv")
    back = read_catalog(tmp_path / "old.csv")
    assert np.isnan(back["pb"]).all() and back.meta["pb_corrected"] is False


def test_detect_corrects_with_the_primary_beam_and_takes_the_psf(tmp_path):
    # a primary beam 6 times narrower than ALMA's (27 px; the image is 96 px across), so that the
    # sources off the centre (3 found in this cube) see a response well below 1
    paths = write_simulated_with_companions(tmp_path, seed=3, pb_fwhm_scale=1 / 6)
    with open_cube(paths["cube"]) as cube:
        plain = detect(cube, "photutils")
        with open_companion(paths["pb"], cube, "pb") as pb, open_companion(paths["psf"], cube, "psf") as psf:
            corrected = detect(cube, "photutils", pb=pb, psf=psf)
            response = np.asarray(pb.data)  # (channels, y, x): the beam narrows with frequency
    assert len(plain) == 3 and list(corrected["x"]) == list(plain["x"])
    assert not plain.meta["pb_corrected"] and corrected.meta["pb_corrected"]
    expected = response[tuple(np.rint(plain[c]).astype(int) for c in ("z", "y", "x"))]
    assert np.allclose(corrected["pb"], expected) and np.all(corrected["pb"] > 0)
    usable = corrected["pb"] >= PB_LIMIT
    assert 0 < usable.sum() < len(plain)  # the central source is corrected, the outer ones too weak
    assert np.allclose(corrected["flux"][usable] * corrected["pb"][usable], plain["flux"][usable])
    assert np.isnan(corrected["flux"][~usable]).all()
    assert list(corrected["snr"]) == list(plain["snr"])
