"""An interferometer in a few functions: antenna configurations -> uv tracks -> dirty beam.

Antenna positions (ALMA ``.cfg`` files from casadata, local tangent plane) become baselines,
Earth rotation turns the baselines into uv tracks, and the tracks, gridded with natural or Briggs
weights as CASA's ``tclean`` does, give the dirty beam (PSF) by FFT. ``fit_beam`` fits a Gaussian
to its main lobe like CASA, which is the beam written into the BEAMS table of a cube.

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
import scipy.fft
import scipy.ndimage
import scipy.optimize

from pipeline.errors import InputError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "assets" / "alma_configs"
ALMA_LATITUDE_DEG = -23.0229  # Chajnantor, the array centre used by casadata
SPEED_OF_LIGHT_M_S = 299_792_458.0
ARCSEC_RAD = np.pi / (180.0 * 3600.0)
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
FFT_WORKERS = 2


@dataclass(frozen=True)
class AntennaConfiguration:
    """An array layout: ``xyz_m`` (n, 3) local east, north, up positions in metres,
    ``diameter_m`` (n,) dish diameters in metres, ``pads`` the pad names."""

    name: str
    xyz_m: np.ndarray
    diameter_m: np.ndarray
    pads: tuple[str, ...] = ()

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
    """Read a CASA ``.cfg`` antenna file (columns x y z diam pad, local tangent plane, metres).

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
    for line in path.read_text().splitlines():
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
    return AntennaConfiguration(
        name=path.stem, xyz_m=np.array(xyz), diameter_m=np.array(diameters), pads=tuple(pads)
    )


def baselines_m(config: AntennaConfiguration) -> np.ndarray:
    """All antenna pairs i < j as local (east, north, up) baseline vectors, (n_baselines, 3) in m."""
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
              latitude_deg=ALMA_LATITUDE_DEG) -> np.ndarray:
    """Earth-rotation synthesis: the (u, v) coverage in metres, shape (2 * n_vis, 2).

    Local (east, north, up) baselines are rotated to equatorial (X towards the meridian on the
    equator, Y towards east, Z towards the north pole) for the site ``latitude_deg``, then to
    (u, v) for each hour angle and the source ``declination_deg`` (standard interferometry
    geometry, e.g. Thompson, Moran & Swenson eq. 4.1). The first half of the rows are the
    visibilities (baseline-major, hour angle fastest), the second half their conjugates
    (-u, -v), so the coverage is symmetric as every imager makes it.
    """
    config = load_configuration(config)
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
    uv = np.stack([u.ravel(), v.ravel()], axis=1)
    return np.concatenate([uv, -uv])


# --- gridding and weighting -------------------------------------------------------------------

@dataclass
class UVSampling:
    """The gridded uv sampling of one channel, in the layout of ``scipy.fft.rfft2`` of an
    ``npix_grid`` x ``npix_grid`` image.

    ``weight_grid``: sum of imaging weights per cell (conjugates included);
    ``weight2_grid``: sum of squared weights per cell (sets the thermal-noise power);
    ``weight_sum``: total weight of all samples, conjugates included (the PSF peak before
    normalisation, so ``irfft2(weight_grid) * npix_grid**2 / weight_sum`` has peak 1).
    """

    weight_grid: np.ndarray
    weight2_grid: np.ndarray
    weight_sum: float
    npix_grid: int


def imaging_weights(uv_wavelengths, npix, cell_arcsec, weighting="briggs", robust=0.5):
    """Imaging weight of each visibility (unit natural weights in), as CASA's VisImagingWeight.

    ``uv_wavelengths`` (n, 2): each row a visibility whose conjugate is implied (giving the
    conjugates too, as ``uv_tracks`` does, changes nothing: every density doubles uniformly).
    Briggs: visibilities are counted, with their conjugates, in cells of ``1 / (npix * cell)``
    wavelengths on an ``npix`` x ``npix`` grid (CASA: the image size, ``Int(u * scale + npix/2)``
    truncation, ``npixels=0``); with that density W_k,
    ``f^2 = (5 * 10**-robust)^2 / (sum_k W_k^2 / sum_i w_i)`` and ``w_i = 1 / (1 + W_k f^2)``.
    Natural: all ones. Returns float64 (n,).
    """
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    if weighting == "natural":
        return np.ones(len(uv))
    if weighting != "briggs":
        raise InputError(f"weighting must be 'natural' or 'briggs', not {weighting!r}.")
    scale = npix * cell_arcsec * ARCSEC_RAD  # cells per wavelength
    origin = npix // 2
    iu = np.floor(uv[:, 0] * scale + origin).astype(np.int64)
    iv = np.floor(uv[:, 1] * scale + origin).astype(np.int64)
    # floor(-a + origin) = 2 * origin - 1 - floor(a + origin): the conjugates fill the grid
    # reversed, so one bincount and a flip give CASA's density of samples and conjugates.
    inside = (iu > 0) & (iu < npix - 1) & (iv > 0) & (iv < npix - 1)
    cells = iv[inside] * npix + iu[inside]
    density = np.bincount(cells, minlength=npix * npix).reshape(npix, npix).astype(np.float64)
    if npix % 2 == 0:
        density = density + density[::-1, ::-1]
    else:  # odd grids: place the conjugates explicitly
        ju = np.floor(-uv[inside, 0] * scale + origin).astype(np.int64)
        jv = np.floor(-uv[inside, 1] * scale + origin).astype(np.int64)
        density = density + np.bincount(jv * npix + ju, minlength=npix * npix).reshape(npix, npix)
    sum_weights = 2.0 * np.count_nonzero(inside)
    f2 = (5.0 * 10.0 ** (-robust)) ** 2 / (np.sum(density ** 2) / sum_weights)
    weights = np.ones(len(uv))
    weights[inside] = 1.0 / (1.0 + density.ravel()[cells] * f2)
    return weights


def grid_uv_sampling(uv_wavelengths, weights, npix_grid, cell_arcsec) -> UVSampling:
    """Grid visibilities (and their implied conjugates) to the nearest cell of the FFT grid of an
    ``npix_grid`` x ``npix_grid`` image with pixels of ``cell_arcsec``.

    Cells are ``1 / (npix_grid * cell)`` wavelengths. Nearest-cell gridding is a convolution with
    a one-cell box, so the PSF made from it is the true PSF times sinc(offset / npix_grid) in
    each axis (plus a little aliasing): exact at the main lobe, and why the grid is padded.
    Samples outside the grid are dropped (they are finer than the pixel can show).
    """
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    n = npix_grid
    scale = n * cell_arcsec * ARCSEC_RAD
    # image x runs towards west (-RA), so the x frequency index is -u; y is north, +v.
    kx = np.rint(-uv[:, 0] * scale).astype(np.int64)
    ky = np.rint(uv[:, 1] * scale).astype(np.int64)
    half = n // 2
    inside = (np.abs(kx) < half) & (np.abs(ky) < half)
    kx, ky, w = kx[inside], ky[inside], w[inside]
    cells = (ky % n) * n + (kx % n)
    grid = np.bincount(cells, weights=w, minlength=n * n).reshape(n, n)
    grid2 = np.bincount(cells, weights=w * w, minlength=n * n).reshape(n, n)
    # conjugates: (ky, kx) -> (-ky, -kx) on the periodic grid
    grid = grid + np.roll(grid[::-1, ::-1], 1, axis=(0, 1))
    grid2 = grid2 + np.roll(grid2[::-1, ::-1], 1, axis=(0, 1))
    return UVSampling(weight_grid=grid[:, : half + 1], weight2_grid=grid2[:, : half + 1],
                      weight_sum=2.0 * float(w.sum()), npix_grid=n)


def uv_wavelengths(uv_m, frequency_hz) -> np.ndarray:
    """(u, v) in metres -> wavelengths at ``frequency_hz``."""
    return np.asarray(uv_m) * (frequency_hz / SPEED_OF_LIGHT_M_S)


def uv_sampling(uv_m, frequency_hz, npix, cell_arcsec, weighting="briggs", robust=0.5,
                padding=2) -> UVSampling:
    """Weighted, gridded sampling of one channel for an ``npix`` image (``npix * padding`` grid).

    Briggs densities are counted on the ``npix`` grid as CASA does (the image size), the
    imaging grid is padded by ``padding`` so the PSF is sampled out to ``npix * padding / 2``.
    """
    uv_wl = uv_wavelengths(uv_m, frequency_hz)
    weights = imaging_weights(uv_wl, npix, cell_arcsec, weighting, robust)
    return grid_uv_sampling(uv_wl, weights, int(round(npix * padding)), cell_arcsec)


def psf_from_sampling(sampling: UVSampling, npix) -> np.ndarray:
    """The dirty beam of a gridded sampling, cropped to ``npix`` x ``npix``, peak 1 at
    ``(npix // 2, npix // 2)``, float32."""
    n = sampling.npix_grid
    image = scipy.fft.irfft2(sampling.weight_grid, s=(n, n), workers=FFT_WORKERS)
    image *= n * n / sampling.weight_sum
    # the zero offset is pixel (0, 0) of the FFT grid; roll it to the middle of the crop
    image = np.roll(image, (npix // 2, npix // 2), axis=(0, 1))[:npix, :npix]
    return image.astype(np.float32)


def psf(uv_m, frequency_hz, npix, cell_arcsec, weighting="briggs", robust=0.5,
        padding=2) -> np.ndarray:
    """Dirty beam (PSF) of the uv coverage ``uv_m`` (n, 2, metres) at ``frequency_hz``.

    Returns a real, point-symmetric float32 image (npix, npix) with pixels of ``cell_arcsec``,
    peak exactly 1 at ``(npix // 2, npix // 2)`` (row, col = y, x; x towards west as on the sky).
    ``weighting`` is ``"natural"`` (unit weights) or ``"briggs"`` with ``robust``, computed as in
    CASA's tclean (densities on the ``npix`` image grid). The FFT grid is ``padding`` times the
    image so that the far sidelobes are neither aliased nor tapered much.
    """
    if npix < 8:
        raise InputError(f"npix must be at least 8, not {npix}.")
    return psf_from_sampling(
        uv_sampling(uv_m, frequency_hz, npix, cell_arcsec, weighting, robust, padding), npix)


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
