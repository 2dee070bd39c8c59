import gzip
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from pipeline.alma import measure as ms
from pipeline.alma.cube import open_cube
from pipeline.alma.cube_summary import format_info
from pipeline.errors import InputError
from tests.conftest import REST_HZ, cube_data, cube_header, write_overpromising_cube


def test_casa_layout_4d_with_beams_table(make_cube):
    with open_cube(make_cube()) as cube:
        assert cube.shape == (24, 20, 12)
        assert cube.data.shape == (12, 20, 24)
        assert cube.lazy, "uncompressed cubes are memory-mapped, not loaded"
        assert cube.spectral_type == "FREQ"
        assert cube.per_channel_beams
        assert len(cube.beams) == 12
        # median of 0.50..0.61 arcsec
        assert cube.beam.major_arcsec == pytest.approx(np.median(0.5 + 0.01 * np.arange(12)), rel=1e-5)
        assert cube.beam.minor_arcsec == pytest.approx(0.4)
        assert cube.beam.pa_deg == pytest.approx(30.0)
        assert cube.pixel_scale_arcsec == pytest.approx((0.1, 0.1))
        assert cube.unit == "Jy/beam"


def test_frequency_and_radio_velocity(make_cube):
    with open_cube(make_cube()) as cube:
        freq = cube.frequency_hz
        assert freq[0] == pytest.approx(230.5e9)
        assert np.diff(freq) == pytest.approx(np.full(11, 10e6))
        expected = 299792.458 * (1 - freq / REST_HZ)  # radio convention, km/s
        assert cube.velocity_kms() == pytest.approx(expected, rel=1e-9)
        assert cube.channel_width()["hz"] == pytest.approx(10e6)
        # rest frequency override moves velocities, not frequencies
        other = 230.6e9
        assert cube.velocity_kms(other) == pytest.approx(299792.458 * (1 - freq / other), rel=1e-9)
    with open_cube(make_cube("b.fits"), rest_frequency_hz=230.6e9) as cube:
        assert cube.rest_frequency_hz == 230.6e9
        assert cube.frequency_hz[0] == pytest.approx(230.5e9)


@pytest.mark.parametrize("spectral, doppler", [("VRAD", u.doppler_radio), ("VOPT", u.doppler_optical)])
def test_velocity_axis_3d_with_beam_keywords(make_cube, spectral, doppler):
    with open_cube(make_cube(layout="3d", spectral=spectral)) as cube:
        assert cube.spectral_type == spectral
        assert not cube.per_channel_beams
        assert cube.beam.major_arcsec == pytest.approx(0.5)
        native_kms = 100.0 + 13.0 * np.arange(12)
        expected_hz = (native_kms * u.km / u.s).to_value(u.Hz, equivalencies=doppler(REST_HZ * u.Hz))
        assert cube.frequency_hz == pytest.approx(expected_hz, rel=1e-12)
        if spectral == "VRAD":
            assert cube.velocity_kms() == pytest.approx(native_kms, rel=1e-9)


def test_velocity_axis_without_rest_frequency(tmp_path):
    header = cube_header(spectral="VRAD", stokes=False)
    del header["RESTFRQ"]
    fits.PrimaryHDU(cube_data(), header).writeto(tmp_path / "v.fits")
    with open_cube(tmp_path / "v.fits") as cube:
        assert cube.frequency_hz is None
        assert cube.velocity_kms()[:2] == pytest.approx([100.0, 113.0])


def test_gzip_cube_reads_same_pixels(make_cube):
    plain = open_cube(make_cube("p.fits"))
    packed = open_cube(make_cube("g.fits", gz=True))
    assert packed.path.name == "g.fits.gz"
    assert not packed.lazy
    np.testing.assert_array_equal(plain.channel(3), packed.channel(3))


def test_channel_spectrum_moment(make_cube):
    data = cube_data()
    with open_cube(make_cube(layout="3d")) as cube:
        np.testing.assert_array_equal(cube.channel(6), data[6])
        np.testing.assert_array_equal(cube.spectrum(10, 8), data[:, 8, 10])
        assert int(np.argmax(cube.spectrum(10, 8))) == 6
        ring = cube.spectrum(10, 8, radius_pixels=1.0)  # the pixel and its 4 neighbours
        expected = np.mean([data[:, 8, 10], data[:, 7, 10], data[:, 9, 10], data[:, 8, 9], data[:, 8, 11]], axis=0)
        assert ring == pytest.approx(expected, rel=1e-5)
        mom, unit = cube.moment0(4, 8)
        assert unit == "Jy/beam km/s"
        width_kms = 299792.458 * 10e6 / REST_HZ  # 10 MHz channels in radio velocity
        assert mom == pytest.approx(data[4:9].sum(axis=0) * width_kms, rel=1e-5)
        assert cube.beam_radius_pixels() == pytest.approx(0.5 * np.sqrt(0.5 * 0.4) / 0.1)


def test_nan_edges_and_fraction(make_cube):
    with open_cube(make_cube()) as cube:
        assert cube.nan_fraction == pytest.approx(2 / 24)
        mom, _ = cube.moment0()
        assert np.isnan(mom[:, :2]).all() and np.isfinite(mom[:, 2:]).all()
        info = cube.info()
    assert info["shape"] == {"nx": 24, "ny": 20, "nchan": 12}
    assert info["beam"]["per_channel"] is True
    assert info["nan_fraction"] == pytest.approx(2 / 24)
    text = format_info(info)
    assert "24 x 20 pixels x 12 channels" in text and "median of per-channel beams" in text


def test_integrate_sums_every_range_in_one_pass(make_cube, monkeypatch):
    """Images over several channel ranges from one pass, however few channels are read at once,
    each as :meth:`moment0` gives it, as each range ends; rows alone; NaN where a range has no data."""
    with open_cube(make_cube()) as cube:
        ranges = [(0, 11), (0, 3), (2, 5), (8, 11)]
        monkeypatch.setattr("pipeline.alma.cube.READ_PIXELS", 1)  # a channel at a time
        one_by_one = list(cube.integrate(ranges))
        assert [i for i, _ in one_by_one] == [1, 2, 0, 3]  # by last channel
        for i, image in one_by_one:
            mom, _ = cube.moment0(*ranges[i])
            np.testing.assert_allclose(image, mom, rtol=1e-6)
            assert np.isnan(image[:, :2]).all()  # the blank edge
        (_, rows), = cube.integrate([(2, 5)], rows=(5, 9))
        np.testing.assert_allclose(rows, cube.moment0(2, 5)[0][5:9], rtol=1e-6)


def _mapped_kb() -> int:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("RssFile"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_reading_a_cube_leaves_its_pages_behind(make_cube, monkeypatch):
    """A memory-mapped cube read from end to end holds no more of this process's memory than a
    read: a cube larger than the memory can be searched."""
    data = np.ones((64, 512, 512), np.float32)  # 64 MB
    with open_cube(make_cube(layout="3d", nx=512, ny=512, nchan=64, data=data)) as cube:
        before = _mapped_kb()
        monkeypatch.setattr("pipeline.alma.cube.READ_PIXELS", 2**18)  # a channel at a time
        (_, image), = cube.integrate([(0, 63)])
        spectrum = ms.box_spectrum(cube, (200, 200, 210, 210))  # a box of each channel maps the channel
        assert _mapped_kb() - before < 8_000
        assert cube.lazy and float(np.nanmax(image)) > 0 and spectrum == pytest.approx(np.full(64, 100.0))


def test_extra_stokes_planes_take_the_first(tmp_path):
    header = cube_header()
    header["NAXIS4"] = 2
    data = np.stack([cube_data(), -cube_data()])
    fits.PrimaryHDU(data, header).writeto(tmp_path / "iquv.fits")
    with open_cube(tmp_path / "iquv.fits") as cube:
        np.testing.assert_array_equal(cube.channel(2), data[0, 2])
        assert any("STOKES" in note for note in cube.notes)


def test_axes_in_another_order(tmp_path):
    """A (FREQ, DEC, RA) ordered file is transposed to channel, y, x."""
    header = cube_header(stokes=False)
    data = cube_data()
    swapped = fits.Header()
    for key in ("NAXIS", "BUNIT", "RESTFRQ", "SPECSYS", "RADESYS"):
        swapped[key] = header[key]
    for new, old in ((1, 3), (2, 2), (3, 1)):
        for k in ("NAXIS", "CTYPE", "CRVAL", "CDELT", "CRPIX", "CUNIT"):
            swapped[f"{k}{new}"] = header[f"{k}{old}"]
    fits.PrimaryHDU(np.ascontiguousarray(data.transpose(2, 1, 0)), swapped).writeto(tmp_path / "t.fits")
    with open_cube(tmp_path / "t.fits") as cube:
        assert cube.shape == (24, 20, 12)
        np.testing.assert_array_equal(cube.channel(5), data[5])


# ---- bad input: one clear InputError each, never another exception ------------------------------
def _error(path):
    with pytest.raises(InputError) as info:
        open_cube(path)
    return str(info.value)


def test_not_fits(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("this is not a FITS file\n")
    assert "not a FITS file" in _error(path)


def test_empty_missing_and_folder(tmp_path):
    (tmp_path / "empty.fits").write_bytes(b"")
    assert "empty" in _error(tmp_path / "empty.fits")
    assert "no such file" in _error(tmp_path / "missing.fits")
    assert "folder" in _error(tmp_path)


def test_truncated(make_cube):
    path = make_cube()
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    assert "truncated" in _error(path)


def test_header_promises_more_than_file_holds(tmp_path, make_cube):
    path = make_cube()
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        data = hdul[0].data.copy()
    header["NAXIS3"] = 40  # claims 40 channels, holds 12
    with open(path, "wb") as f:
        f.write(header.tostring().encode("ascii"))
        f.write(data.astype(">f4").tobytes())
    assert "truncated" in _error(path)


def test_truncated_gzip(make_cube):
    path = make_cube(gz=True)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    message = _error(path)
    assert path.name in message


def test_2d_image(tmp_path):
    header = cube_header(stokes=False)
    header["NAXIS"] = 2
    for k in ("NAXIS3", "CTYPE3", "CRVAL3", "CDELT3", "CRPIX3", "CUNIT3"):
        del header[k]
    fits.PrimaryHDU(cube_data()[0], header).writeto(tmp_path / "image.fits")
    assert "not a cube" in _error(tmp_path / "image.fits")


def test_no_spectral_axis(tmp_path):
    header = cube_header(stokes=False)
    header["CTYPE3"], header["CUNIT3"] = "LINEAR", ""
    fits.PrimaryHDU(cube_data(), header).writeto(tmp_path / "nospec.fits")
    assert "no spectral axis" in _error(tmp_path / "nospec.fits")


def test_all_nan(make_cube):
    assert "every pixel is NaN" in _error(make_cube(data=np.full((12, 20, 24), np.nan)))


def test_out_of_range_requests(make_cube):
    with open_cube(make_cube()) as cube:
        with pytest.raises(InputError):
            cube.channel(12)
        with pytest.raises(InputError):
            cube.spectrum(24, 0)
        with pytest.raises(InputError):
            cube.moment0(0, 99)


def _gzip_damaged(tmp_path, how):
    fits.PrimaryHDU(cube_data(), cube_header(stokes=False, beam_keywords=True)).writeto(tmp_path / "ok.fits")
    packed = bytearray(gzip.compress((tmp_path / "ok.fits").read_bytes()))
    if how == "deflate":  # compressed data overwritten: zlib.error
        packed[30:230] = bytes(200)
    elif how == "crc":  # the trailer's CRC no longer matches: gzip.BadGzipFile
        packed[-8] ^= 0xFF
    elif how == "garbage":  # a gzip header followed by anything
        packed = packed[:10] + b"garbage " * 500
    path = tmp_path / f"{how}.fits.gz"
    path.write_bytes(bytes(packed))
    return path


@pytest.mark.parametrize("how", ["deflate", "crc", "garbage"])
def test_corrupt_gzip(tmp_path, how):
    path = _gzip_damaged(tmp_path, how)
    message = _error(path)
    assert path.name in message and "gzip" in message and "again" in message


def test_header_promising_far_more_than_the_file_holds(tmp_path):
    """NAXISn of 100000 each: refused from the header, before astropy tries to map 4 PB."""
    path = write_overpromising_cube(tmp_path / "huge.fits")
    message = _error(path)
    assert "promises 4,000,000,000,002,880 bytes" in message and "Errno" not in message


@pytest.mark.parametrize("value, shown", [(0.0, "BMAJ = 0"), (-0.5 / 3600, "BMAJ = -"), ("nan", "BMAJ = nan"),
                                          ("inf", "BMAJ = inf"), ("wide", "BMAJ = 'wide'")])
def test_header_beam_that_is_not_a_beam_opens_without_beam(make_cube, value, shown):
    path = make_cube(layout="3d")
    fits.setval(path, "BMAJ", value=value)
    with open_cube(path) as cube:
        assert cube.beam is None and cube.beams is None
        assert any(shown in note and "header" in note for note in cube.notes), cube.notes
        text = format_info(cube.info())  # viewing still works
        assert "no valid beam" in text
        with pytest.raises(InputError) as info:
            cube.require_beam()
    message = str(info.value)
    assert "no valid beam" in message and shown in message and "BMAJ" in message


@pytest.mark.parametrize("column, value", [("BMAJ", 0.0), ("BMIN", -0.1), ("BMAJ", np.nan), ("BPA", np.inf)])
def test_beams_table_with_a_bad_row_opens_without_beam(make_cube, column, value):
    path = make_cube()
    with fits.open(path, mode="update") as hdul:
        hdul["BEAMS"].data[column][3] = value
    with open_cube(path) as cube:
        assert cube.beam is None and not cube.per_channel_beams
        assert any("BEAMS" in note and "channel 3" in note for note in cube.notes), cube.notes
        with pytest.raises(InputError, match=f"no valid beam.*channel 3.*{column}"):
            cube.require_beam()


def test_require_beam_without_any_beam(tmp_path):
    fits.PrimaryHDU(cube_data(), cube_header(stokes=False)).writeto(tmp_path / "nobeam.fits")
    with open_cube(tmp_path / "nobeam.fits") as cube:
        assert cube.beam is None
        with pytest.raises(InputError, match="no beam"):
            cube.require_beam()
