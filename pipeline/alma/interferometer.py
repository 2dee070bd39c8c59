"""An interferometer in a few functions: antenna configurations -> uv tracks -> dirty beam.

Antenna positions (CASA ``.cfg`` files from casadata: ALMA's in the local tangent plane, the
VLBA's geocentric) become baselines,
Earth rotation turns the baselines into uv tracks, and the tracks, gridded with natural or Briggs
weights as CASA's ``tclean`` does, give the dirty beam (PSF) by FFT. ``fit_beam`` fits a Gaussian
to its main lobe like CASA, which is the beam written into the BEAMS table of a cube. The
weighting, the gridding and the Fourier transforms between the gridded half plane and images are
:mod:`pipeline.alma.gridding`'s; this module is where callers find the whole chain.

Conventions used throughout:

- local antenna coordinates: x east, y north, z up (metres);
- (u, v): u towards east, v towards north, in metres or wavelengths as the name says;
- images are indexed ``[row, col] = [y, x]`` with the phase centre at ``(npix // 2, npix // 2)``;
  as on the sky (and in CASA images, CDELT1 < 0) right ascension grows to the left, i.e. the
  x pixel axis runs towards west and the y axis towards north;
- beam position angles are astronomers' (FITS BPA): degrees from north through east.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.constants
import scipy.ndimage
import scipy.optimize

from pipeline.alma.gaussian import FWHM_PER_SIGMA
from pipeline.alma.gridding import (
    UVSampling,
    half_plane_from_image,
    image_from_half_plane,
    uv_sampling,
)
from pipeline.errors import InputError

__all__ = [
    "ALMA_LATITUDE_DEG", "ARCSEC_RAD", "CONFIG_DIR", "ELEVATION_LIMIT_DEG", "FWHM_PER_SIGMA",
    "SPEED_OF_LIGHT_M_S", "AntennaConfiguration", "UVSampling", "available_configurations",
    "baselines_m", "dirty_image", "fit_beam", "half_plane_from_image", "hour_angles_h", "image_from_half_plane",
    "largest_sidelobe", "load_configuration", "psf", "psf_from_sampling", "uv_sampling", "uv_tracks", "uv_wavelengths",
]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "assets" / "alma_configs"
ALMA_LATITUDE_DEG = -23.0229  # Chajnantor, the array centre used by casadata
SPEED_OF_LIGHT_M_S = scipy.constants.c  # 299 792 458 m/s
ELEVATION_LIMIT_DEG = 10.0  # CASA's simobserve flags integrations below it (sm.setlimits)
ARCSEC_RAD = scipy.constants.arcsec  # pi / (180 * 3600)


@dataclass(frozen=True)
class AntennaConfiguration:
    """An array layout: ``xyz_m`` (n, 3) local east, north, up positions in metres,
    ``diameter_m`` (n,) dish diameters in metres, ``pads`` the pad names.

    A continental array (a geocentric ``coordsys=XYZ`` file, e.g. the VLBA) also knows where it is:
    ``latitude_deg``, the geodetic latitude of the point its local axes are drawn at (the
    stations' mean), and each station's own ``station_latitude_deg`` and
    ``station_longitude_deg`` (east of that point), for each station's own horizon. None for a
    local file, whose array sits at one site."""

    name: str
    xyz_m: np.ndarray
    diameter_m: np.ndarray
    pads: tuple[str, ...] = ()
    latitude_deg: float | None = None
    station_latitude_deg: np.ndarray | None = None
    station_longitude_deg: np.ndarray | None = None

    @property
    def n_antennas(self) -> int:
        return len(self.xyz_m)

    @property
    def n_baselines(self) -> int:
        return self.n_antennas * (self.n_antennas - 1) // 2


def available_configurations() -> list[str]:
    """Names of the antenna configurations shipped in ``CONFIG_DIR`` (e.g. ``"alma.cycle9.3"``),
    sorted naturally (cycle11.2 before cycle11.10)."""

    def natural(name):
        return [int(p) if p.isdigit() else p for p in name.replace(".", " . ").split()]

    return sorted((p.stem for p in CONFIG_DIR.glob("*.cfg")), key=natural)


def load_configuration(name_or_path) -> AntennaConfiguration:
    """Read a CASA ``.cfg`` antenna file (columns x y z diam pad, metres): positions in the local
    tangent plane, or geocentric when its header says ``# coordsys=XYZ`` (turned into local east,
    north, up at the stations' mean, see :func:`geocentric_to_local`).

    ``name_or_path`` is a shipped configuration name (``"alma.cycle9.3"``, with or without
    ``.cfg``) or the path of a ``.cfg`` file. An unknown name raises ``InputError``.
    """
    if isinstance(name_or_path, AntennaConfiguration):
        return name_or_path
    text = str(name_or_path)
    shipped = CONFIG_DIR / (text if text.endswith(".cfg") else text + ".cfg")
    if shipped.is_file():
        path = shipped
    elif Path(text).is_file():
        path = Path(text)
    else:
        raise InputError(
            f"Unknown antenna configuration {text!r}: give a path to a CASA .cfg file or one of "
            f"{', '.join(available_configurations())}."
        )
    xyz, diameters, pads = [], [], []
    text = path.read_text()
    geocentric = any(line.replace(" ", "").lower().startswith("#coordsys=xyz") for line in text.splitlines())
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 4:
            raise InputError(f"{path}: expected 'x y z diam [pad]' on every line, got {line!r}.")
        xyz.append([float(f) for f in fields[:3]])
        diameters.append(float(fields[3]))
        pads.append(fields[4] if len(fields) > 4 else f"A{len(pads):03d}")
    if len(xyz) < 2:
        raise InputError(f"{path}: an interferometer needs at least two antennas.")
    if geocentric:
        return geocentric_to_local(path.stem, np.array(xyz), np.array(diameters), tuple(pads))
    return AntennaConfiguration(
        name=path.stem, xyz_m=np.array(xyz), diameter_m=np.array(diameters), pads=tuple(pads)
    )


def geocentric_to_local(name, xyz_m, diameter_m, pads=()) -> AntennaConfiguration:
    """Stations at geocentric (ITRF) ``xyz_m`` -> an :class:`AntennaConfiguration` in local east,
    north, up axes drawn at the geodetic position of the stations' mean (astropy's WGS84), by
    rotation only: baselines keep their lengths and directions, so Earth-rotation synthesis at that
    latitude gives the array's true uv tracks. Each station's own latitude and longitude are kept
    for its horizon."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    centre = EarthLocation.from_geocentric(*np.mean(xyz_m, axis=0), unit=u.m)
    lat, lon = np.radians(centre.lat.deg), np.radians(centre.lon.deg)
    d = np.asarray(xyz_m, float) - np.mean(xyz_m, axis=0)
    east = -np.sin(lon) * d[:, 0] + np.cos(lon) * d[:, 1]
    north = -np.sin(lat) * np.cos(lon) * d[:, 0] - np.sin(lat) * np.sin(lon) * d[:, 1] + np.cos(lat) * d[:, 2]
    up = np.cos(lat) * np.cos(lon) * d[:, 0] + np.cos(lat) * np.sin(lon) * d[:, 1] + np.sin(lat) * d[:, 2]
    stations = EarthLocation.from_geocentric(*np.asarray(xyz_m, float).T, unit=u.m)
    longitude = (stations.lon.deg - centre.lon.deg + 180.0) % 360.0 - 180.0
    return AntennaConfiguration(name, np.stack([east, north, up], axis=1), np.asarray(diameter_m, float),
                                tuple(pads), float(centre.lat.deg), np.asarray(stations.lat.deg), longitude)


def baselines_m(config: AntennaConfiguration) -> np.ndarray:
    """All antenna pairs i < j as local (east, north, up) baseline vectors (n_baselines, 3), m."""
    i, j = np.triu_indices(config.n_antennas, k=1)
    return config.xyz_m[j] - config.xyz_m[i]


def hour_angles_h(hour_angle_start_h, hour_angle_stop_h, integration_s) -> np.ndarray:
    """Hour angles (h) at the middle of each integration between start and stop.

    The span is cut into ``round(span / integration)`` equal integrations (the 0.27 % difference
    between sidereal and solar time is neglected: it moves a 40-min track by 6 s).
    """
    span_h = hour_angle_stop_h - hour_angle_start_h
    if span_h <= 0 or integration_s <= 0:
        raise InputError("The observation needs hour_angle_stop_h > hour_angle_start_h and "
                         "integration_s > 0.")
    n = max(1, int(round(span_h * 3600.0 / integration_s)))
    return hour_angle_start_h + (np.arange(n) + 0.5) * span_h / n


def uv_tracks(config, declination_deg, hour_angle_start_h, hour_angle_stop_h, integration_s,
              latitude_deg=None, elevation_limit_deg=ELEVATION_LIMIT_DEG,
              shadowing=True) -> np.ndarray:
    """Earth-rotation synthesis: the (u, v) coverage in metres, shape (2 * n_vis, 2).

    Local (east, north, up) baselines are rotated to equatorial (X towards the meridian on the
    equator, Y towards east, Z towards the north pole) for the site ``latitude_deg``, then to
    (u, v, w) for each hour angle and the source ``declination_deg`` (standard interferometry
    geometry, e.g. Thompson, Moran & Swenson eq. 4.1). The first half of the rows are the
    visibilities (baseline-major, hour angle fastest), the second half their conjugates
    (-u, -v), so the coverage is symmetric as every imager makes it.

    ``latitude_deg``: the site's, by default the configuration's own (ALMA's for a local file).
    Hour angles are the site's. As CASA's simobserve does, integrations with the source below
    ``elevation_limit_deg`` are left out (for a continental array, a baseline's integrations
    where either station has the source below its own horizon's limit) and, with ``shadowing``,
    so is every baseline of a shadowed antenna: one that another antenna, nearer the source,
    partly hides (closer in projection than the sum of their dish radii; CASA, measured with 12 m
    dishes: 11.8 m apart flagged, 12.0 m not).
    Compact configurations at low elevation lose many visibilities so: alma.cycle9.3 at
    declination +20 deg 5-6 %, alma.cycle11.1 at -70 deg a third, as in CASA. CASA's simobserve
    drops the antenna in front instead (its uvw run from antenna 2 to antenna 1 while its shadow
    test reads them the other way round); here the hidden one goes. An observation that keeps
    nothing raises ``InputError``.
    """
    config = load_configuration(config)
    if latitude_deg is None:
        latitude_deg = ALMA_LATITUDE_DEG if config.latitude_deg is None else config.latitude_deg
    east, north, up = baselines_m(config).T
    lat, dec = np.radians(latitude_deg), np.radians(declination_deg)
    x_eq = -np.sin(lat) * north + np.cos(lat) * up
    y_eq = east
    z_eq = np.cos(lat) * north + np.sin(lat) * up
    ha = np.radians(15.0 * hour_angles_h(hour_angle_start_h, hour_angle_stop_h, integration_s))
    sin_h, cos_h = np.sin(ha)[None, :], np.cos(ha)[None, :]
    u = sin_h * x_eq[:, None] + cos_h * y_eq[:, None]
    v = (-np.sin(dec) * cos_h * x_eq[:, None] + np.sin(dec) * sin_h * y_eq[:, None]
         + np.cos(dec) * z_eq[:, None])
    w = (np.cos(dec) * cos_h * x_eq[:, None] - np.cos(dec) * sin_h * y_eq[:, None]
         + np.sin(dec) * z_eq[:, None])
    # each station's own horizon: its latitude, and the hour angle shifted by its longitude (an array
    # at one site: the site's latitude for all, no shift)
    if config.station_latitude_deg is None:
        station_lat, shift = np.full((config.n_antennas, 1), lat), np.zeros((config.n_antennas, 1))
    else:
        station_lat = np.radians(config.station_latitude_deg)[:, None]
        shift = np.radians(config.station_longitude_deg)[:, None]
    sin_elevation = np.sin(station_lat) * np.sin(dec) + np.cos(station_lat) * np.cos(dec) * np.cos(ha[None, :] + shift)
    above = sin_elevation >= np.sin(np.radians(elevation_limit_deg))
    i, j = np.triu_indices(config.n_antennas, k=1)
    keep = above[i] & above[j]
    if shadowing:
        keep = keep & ~_shadowed_baselines(config, u, v, w)
    if not keep.any():
        raise InputError(f"The source (declination {declination_deg} deg) is never above "
                         f"{elevation_limit_deg} deg elevation unshadowed during this track.")
    uv = np.stack([u[keep], v[keep]], axis=1)
    return np.concatenate([uv, -uv])


def _shadowed_baselines(config, u, v, w):
    """(n_baselines, n_times) True where either antenna of the baseline is shadowed: another
    antenna nearer the source (larger w) is closer to it, in the plane facing the source, than
    the sum of their dish radii."""
    i, j = np.triu_indices(config.n_antennas, k=1)
    radius = config.diameter_m / 2.0
    touching = np.hypot(u, v) < (radius[i] + radius[j])[:, None]
    rows, times = np.nonzero(touching)
    # the antenna behind: i when j is nearer the source (w = (x_j - x_i) . s > 0)
    behind = np.where(w[rows, times] > 0, i[rows], j[rows])
    shadowed_antenna = np.zeros((config.n_antennas, u.shape[1]), bool)
    shadowed_antenna[behind, times] = True
    return shadowed_antenna[i] | shadowed_antenna[j]


def uv_wavelengths(uv_m, frequency_hz) -> np.ndarray:
    """(u, v) in metres -> wavelengths at ``frequency_hz``."""
    return np.asarray(uv_m) * (frequency_hz / SPEED_OF_LIGHT_M_S)


def psf_from_sampling(sampling: UVSampling, npix) -> np.ndarray:
    """Dirty beams of a gridded sampling, (n_channels, npix, npix) float32, each with peak 1 at
    ``(npix // 2, npix // 2)``."""
    image = image_from_half_plane(sampling.weight_grid, sampling.npix_grid, npix)
    # normalise by the centre itself (it is sum(weights) / npix_grid**2 up to rounding) so
    # the peak is exactly 1
    image /= image[:, npix // 2, npix // 2][:, None, None]
    return image.astype(np.float32)


def psf(uv_m, frequency_hz, npix, cell_arcsec, weighting="briggs", robust=0.5,
        padding=2) -> np.ndarray:
    """Dirty beam (PSF) of the uv coverage ``uv_m`` (n, 2, metres) at ``frequency_hz`` (scalar).

    Returns a real, point-symmetric float32 image (npix, npix) with pixels of ``cell_arcsec``,
    peak exactly 1 at ``(npix // 2, npix // 2)`` (row, col = y, x; x towards west as on the sky).
    ``weighting`` is ``"natural"`` (unit weights) or ``"briggs"`` with ``robust``, computed as in
    CASA's tclean (densities on the ``npix`` image grid); see ``uv_sampling``. The FFT grid is
    ``padding`` times the image.
    """
    if npix < 8:
        raise InputError(f"npix must be at least 8, not {npix}.")
    if np.ndim(frequency_hz) != 0:
        raise InputError("psf takes one frequency; use uv_sampling + psf_from_sampling for many.")
    sampling = uv_sampling(uv_m, frequency_hz, npix, cell_arcsec, weighting, robust, padding)
    return psf_from_sampling(sampling, npix)[0]


def dirty_image(sampling: UVSampling, images) -> np.ndarray:
    """Each of ``images`` (n, npix, npix), Jy/pixel, seen through the first channel of
    ``sampling`` (gridded for ``npix`` images): convolved with its dirty beam, in Jy/beam, no noise."""
    n, k = sampling.npix_grid, sampling.half_width
    half_plane = half_plane_from_image(images, n, k) * sampling.weight_grid[0]
    scale = np.float32(n * n / sampling.weight_sum[0])
    return image_from_half_plane(half_plane, n, np.shape(images)[-1]) * scale


def largest_sidelobe(psf_image) -> tuple[float, tuple[int, int]]:
    """The highest point of a PSF (peak 1) outside its main lobe, the connected region around the
    peak down to the first null (PSF > 0): its level and its ``(row, col)``. (0, peak) when nothing
    outside the main lobe rises above 0."""
    image = np.asarray(psf_image, dtype=np.float64)
    peak = np.unravel_index(np.argmax(image), image.shape)
    labels, _ = scipy.ndimage.label(image > 0)
    outside = np.where(labels == labels[peak], -np.inf, image)
    where = np.unravel_index(np.argmax(outside), image.shape)
    if not np.isfinite(outside[where]) or outside[where] <= 0:
        return 0.0, (int(peak[0]), int(peak[1]))
    return float(outside[where] / image[peak]), (int(where[0]), int(where[1]))


# --- beam fitting -----------------------------------------------------------------------------

def fit_beam(psf_image, cell_arcsec, cutoff=0.35):
    """Fit an elliptical Gaussian to the main lobe of a PSF, as CASA does for the restoring beam.

    The main lobe is the connected region above ``cutoff`` (CASA's ``psfcutoff``, 0.35) around
    the peak; a Gaussian with peak 1, centred on the peak pixel, is fitted to it by least squares.
    ``psf_image`` is (ny, nx) with x towards west (-RA) and y north, as ``psf`` returns.
    Returns ``(bmaj_arcsec, bmin_arcsec, bpa_deg)``: FWHM major and minor axes and the position
    angle of the major axis from north through east, in (-90, 90].
    """
    image = np.asarray(psf_image, dtype=np.float64)
    peak_row, peak_col = np.unravel_index(np.argmax(image), image.shape)
    image = image / image[peak_row, peak_col]
    labels, _ = scipy.ndimage.label(image > cutoff)
    rows, cols = np.nonzero(labels == labels[peak_row, peak_col])
    if len(rows) < 6:
        raise InputError("The PSF main lobe covers fewer than 6 pixels: use a finer cell_arcsec.")
    dx, dy, values = cols - peak_col, rows - peak_row, image[rows, cols]

    # initial guess from the second moments of the lobe
    wts = values / values.sum()
    cov = np.array([[np.sum(wts * dx * dx), np.sum(wts * dx * dy)],
                    [np.sum(wts * dx * dy), np.sum(wts * dy * dy)]]) + np.eye(2) * 0.1
    evals, evecs = np.linalg.eigh(cov)
    theta0 = np.arctan2(evecs[1, 1], evecs[0, 1])
    s_maj0, s_min0 = np.sqrt(evals[1]) * 1.5, np.sqrt(evals[0]) * 1.5

    def residuals(p):
        s_maj, s_min, theta = p
        c, s = np.cos(theta), np.sin(theta)
        along = dx * c + dy * s
        across = -dx * s + dy * c
        return np.exp(-0.5 * ((along / s_maj) ** 2 + (across / s_min) ** 2)) - values

    fit = scipy.optimize.least_squares(residuals, [s_maj0, s_min0, theta0], method="lm")
    s_maj, s_min, theta = fit.x
    s_maj, s_min = abs(s_maj), abs(s_min)
    if s_min > s_maj:
        s_maj, s_min, theta = s_min, s_maj, theta + np.pi / 2
    # theta: major axis, counter-clockwise from +x (west). North is +y, east is -x, so the
    # angle from north through east is theta - 90 deg.
    bpa = (np.degrees(theta) - 90.0) % 180.0
    if bpa > 90.0:
        bpa -= 180.0
    to_arcsec = FWHM_PER_SIGMA * cell_arcsec
    return float(s_maj * to_arcsec), float(s_min * to_arcsec), float(bpa)
