"""Antenna files with geocentric positions (CASA's coordsys=XYZ, the VLBA's): turned into local
axes by rotation, so the uv tracks are the array's own, and each station keeps its own horizon."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation

from pipeline.alma import interferometer as itf
from pipeline.automl.detection import VLBA_CONFIG
from pipeline.errors import InputError


def write_geocentric(path, locations, diameter=25.0):
    lines = ["# observatory=TEST", "# coordsys=XYZ"]
    lines += [f"{x:.4f} {y:.4f} {z:.4f} {diameter} S{i}" for i, (x, y, z) in enumerate(locations)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_vlba_longest_baseline_is_mauna_kea_to_st_croix():
    config = itf.load_configuration(VLBA_CONFIG)
    assert config.n_antennas == 10 and config.pads[2] == "MK" and config.pads[4] == "SC"
    lengths = np.linalg.norm(itf.baselines_m(config), axis=1)
    i, j = np.triu_indices(10, k=1)
    longest = np.argmax(lengths)
    assert {config.pads[i[longest]], config.pads[j[longest]]} == {"MK", "SC"}
    assert lengths[longest] == pytest.approx(8_611e3, rel=1e-3)  # the VLBA's 8,611 km
    assert config.station_latitude_deg[2] == pytest.approx(19.8, abs=0.1)  # Mauna Kea


def test_a_local_array_written_geocentric_gives_the_same_uv_tracks(tmp_path):
    """ALMA's cycle 9.3 layout placed at Chajnantor, written as ITRF X, Y, Z, read back."""
    local = itf.load_configuration("alma.cycle9.3")
    site = EarthLocation.from_geodetic(-67.7549 * u.deg, itf.ALMA_LATITUDE_DEG * u.deg, 5050 * u.m)
    lat, lon = np.radians(itf.ALMA_LATITUDE_DEG), np.radians(-67.7549)
    e, n, up = local.xyz_m.T
    rotation = np.array([[-np.sin(lon), -np.sin(lat) * np.cos(lon), np.cos(lat) * np.cos(lon)],
                         [np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat) * np.sin(lon)],
                         [0.0, np.cos(lat), np.sin(lat)]])
    centre = [site.x.to_value(u.m), site.y.to_value(u.m), site.z.to_value(u.m)]
    xyz = (rotation @ np.stack([e, n, up])).T + centre
    geocentric = itf.load_configuration(write_geocentric(tmp_path / "alma_xyz.cfg", xyz, 12.0))
    assert geocentric.latitude_deg == pytest.approx(itf.ALMA_LATITUDE_DEG, abs=0.01)
    expected = itf.uv_tracks(local, -30, -1, 1, 60, shadowing=False)
    got = itf.uv_tracks(geocentric, -30, -1, 1, 60, shadowing=False)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 2e-3 * np.abs(expected).max()


def test_each_station_has_its_own_horizon(tmp_path):
    """Two stations on opposite sides of the Earth never see a source together."""
    far = [EarthLocation.from_geodetic(lon * u.deg, 0 * u.deg, 0 * u.m) for lon in (0.0, 180.0)]
    config = itf.load_configuration(write_geocentric(tmp_path / "far.cfg", [
        [loc.x.to_value(u.m), loc.y.to_value(u.m), loc.z.to_value(u.m)] for loc in far]))
    with pytest.raises(InputError, match="never above"):
        itf.uv_tracks(config, 0, -12, 12, 600, shadowing=False)


def test_vlba_keeps_fewer_integrations_than_one_horizon_would():
    """Mauna Kea and St. Croix are 91 deg of longitude apart: a long track keeps only the hours
    both see the source, so the per-station rule drops integrations a single site would keep."""
    config = itf.load_configuration(VLBA_CONFIG)
    kept = len(itf.uv_tracks(config, 10, -6, 6, 600, shadowing=False))
    one_site = itf.AntennaConfiguration("one site", config.xyz_m, config.diameter_m, config.pads, config.latitude_deg)
    assert kept < len(itf.uv_tracks(one_site, 10, -6, 6, 600, shadowing=False))
