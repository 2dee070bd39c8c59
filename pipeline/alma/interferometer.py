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

import os
from concurrent.futures import ThreadPoolExecutor
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
FFT_WORKERS = min(os.cpu_count() or 1, 8)  # threads for FFTs and per-channel gridding


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
    """Weighted, gridded uv sampling of one or more channels, on the FFT grid of an
    ``npix_grid`` x ``npix_grid`` image (cells of ``1 / (npix_grid * cell)`` wavelengths).

    Only the box of cells that can hold samples is stored, in the half plane that
    ``scipy.fft.rfft2`` keeps: ``weight_grid[c, K + ky, kx]`` for ``ky`` in [-K, K] and ``kx`` in
    [0, K], with ``kx`` along the image x axis (towards west, i.e. -u) and ``ky`` along +v.

    ``weight_grid``: sum of imaging weights per cell, conjugate samples included;
    ``weight2_grid``: sum of squared weights per cell (the thermal-noise power of the cell);
    ``weight_sum``, ``weight2_sum``: (n_channels,) sums over the whole plane (conjugates included);
    ``weight_sum`` is the PSF peak before normalisation.
    """

    weight_grid: np.ndarray
    weight2_grid: np.ndarray
    weight_sum: np.ndarray
    weight2_sum: np.ndarray
    npix_grid: int
    frequency_hz: np.ndarray

    @property
    def half_width(self) -> int:
        """K: the box spans ky in [-K, K] and kx in [0, K]."""
        return self.weight_grid.shape[-1] - 1

    def channels(self, index) -> "UVSampling":
        """The sampling of a subset of channels (an index, slice or index array)."""
        index = np.atleast_1d(np.arange(len(self.frequency_hz))[index])
        return UVSampling(self.weight_grid[index], self.weight2_grid[index],
                          self.weight_sum[index], self.weight2_sum[index], self.npix_grid,
                          self.frequency_hz[index])


def uv_wavelengths(uv_m, frequency_hz) -> np.ndarray:
    """(u, v) in metres -> wavelengths at ``frequency_hz``."""
    return np.asarray(uv_m) * (frequency_hz / SPEED_OF_LIGHT_M_S)


def uv_sampling(uv_m, frequency_hz, npix, cell_arcsec, weighting="briggs", robust=0.5,
                padding=2) -> UVSampling:
    """Imaging weights and gridding of the coverage ``uv_m`` (n, 2, metres) for an ``npix`` image
    with pixels of ``cell_arcsec``, at each of ``frequency_hz`` (scalar or (n_channels,)).

    Every row of ``uv_m`` is a visibility whose conjugate is implied; giving the conjugates too
    (as ``uv_tracks`` does) leaves the result unchanged, since every density doubles alike.
    Natural weighting gives every visibility weight 1. Briggs weighting follows CASA's tclean
    (VisImagingWeight, ``npixels=0``, per-channel density): visibilities and their conjugates
    are counted in cells of ``1 / (npix * cell)`` wavelengths on the ``npix`` x ``npix`` image
    grid (``Int(u * npix * cell + npix / 2)``), giving densities W_k;
    ``f^2 = (5 * 10**-robust)^2 / (sum_k W_k^2 / sum_i w_i)`` and ``w_i = 1 / (1 + W_k f^2)``.

    The weighted samples are then gridded to the nearest cell of an ``npix * padding`` grid
    (``padding`` an integer; 2 lets a PSF be convolved with a whole ``npix`` image without
    wrapping). Nearest-cell gridding is a convolution with a one-cell box: the PSF made from it
    is the exact one times sinc(offset / (npix * padding)) per axis plus a little aliasing, i.e.
    exact at the main lobe and within 10 % at the edge of an ``npix`` image for padding 2.
    Samples beyond the grid are dropped.

    How: both grids are unions of "sub-cells" ``1 / (2 * padding)`` of a density cell wide, so
    each channel needs a single count of its visibilities into sub-cells; densities, weights and
    the imaging grid follow from block sums of that count.
    """
    if weighting not in ("natural", "briggs"):
        raise InputError(f"weighting must be 'natural' or 'briggs', not {weighting!r}.")
    padding = int(padding)
    if padding < 1:
        raise InputError(f"padding must be an integer >= 1, not {padding}.")
    freqs = np.atleast_1d(np.asarray(frequency_hz, dtype=np.float64))
    uv = np.asarray(uv_m, dtype=np.float64)
    n_grid = npix * padding
    sub_per_cell = 2 * padding
    # sub-cells per metre of baseline at each frequency
    sub_per_m = freqs / SPEED_OF_LIGHT_M_S * npix * cell_arcsec * ARCSEC_RAD * sub_per_cell

    # half-width S of the sub-cell grid: a multiple of 2 * padding (whole density cells) that
    # holds every sample, but no wider than the imaging grid (|fine index| < n_grid / 2)
    extent = np.max(np.abs(uv)) * sub_per_m.max() + 1
    cap = (n_grid // 2 - 1) * 2
    half_sub = int(min(np.ceil(extent / sub_per_cell), cap // sub_per_cell) * sub_per_cell)
    side = 2 * half_sub
    clipped = extent >= half_sub
    uv_t = np.ascontiguousarray(uv.T, dtype=np.float32)  # (2, n): u row, v row
    k_fine = half_sub // 2  # fine cells k in [-K, K] hold sub-cells [-S, S)
    n_cells = side // sub_per_cell

    shape = (len(freqs), 2 * k_fine + 1, k_fine + 1)
    weight_grid = np.zeros(shape, np.float32)
    weight2_grid = np.zeros(shape, np.float32)
    weight_sum = np.zeros(len(freqs))
    weight2_sum = np.zeros(len(freqs))

    def grid_channel(c):
        position = uv_t * np.float32(sub_per_m[c])
        position += half_sub  # >= 0 inside the grid, so truncation is floor
        if clipped:
            position = position[:, np.all((position >= 0) & (position < side), axis=0)]
        cells = position.astype(np.int32)
        cells[1] *= side
        counts = np.bincount(cells[1] + cells[0], minlength=side * side)
        counts = counts.reshape(side, side).astype(np.float32)
        # conjugates: sub-cell s -> -s - 1, i.e. the grid reversed
        counts += counts[::-1, ::-1]
        density = _block_sum(counts, sub_per_cell)
        if weighting == "briggs":
            sum_w2 = np.sum(density * density, dtype=np.float64)
            f2 = (5.0 * 10.0 ** (-robust)) ** 2 / (sum_w2 / density.sum(dtype=np.float64))
            weight = (1.0 / (1.0 + f2 * density)).astype(np.float32)
            blocks = counts.reshape(n_cells, sub_per_cell, n_cells, sub_per_cell)
            summed = (blocks * weight[:, None, :, None]).reshape(side, side)
            summed2 = (blocks * (weight * weight)[:, None, :, None]).reshape(side, side)
        else:
            weight = np.ones_like(density)
            summed = summed2 = counts
        weight_sum[c] = np.sum(density * weight, dtype=np.float64)
        weight2_sum[c] = np.sum(density * weight * weight, dtype=np.float64)
        weight_grid[c] = _sub_to_fine_half_plane(summed, k_fine)
        weight2_grid[c] = _sub_to_fine_half_plane(summed2, k_fine)

    # channels are independent and numpy releases the GIL in the heavy loops: use both cores
    with ThreadPoolExecutor(max_workers=FFT_WORKERS) as pool:
        list(pool.map(grid_channel, range(len(freqs))))
    return UVSampling(weight_grid, weight2_grid, weight_sum, weight2_sum, n_grid, freqs)


def _block_sum(grid, size):
    """Sum ``size`` x ``size`` blocks of a 2-D array (sides multiples of ``size``)."""
    total = grid[0::size, 0::size].copy()
    for i in range(size):
        for j in range(size):
            if i or j:
                total += grid[i::size, j::size]
    return total


def _sub_to_fine_half_plane(sub_grid, k_fine):
    """Sum sub-cells (s in [-S, S) per axis, rows v, cols u) into nearest-cell imaging cells
    (k = rint(s / 2), i.e. s in {2k - 1, 2k}) and keep the rfft half plane kx = -k_u >= 0."""
    half = sub_grid.shape[0] // 2  # = 2 K
    fine = np.zeros((half + 1, half + 1), sub_grid.dtype)
    # even sub-cell 2m -> fine index m, odd 2m + 1 -> m + 1 (array indices, offset by S)
    for row in (0, 1):
        for col in (0, 1):
            fine[row: half + row, col: half + col] += sub_grid[row::2, col::2]
    return fine[:, k_fine::-1]


def _wrapped(n, start, stop):
    """Slices of a length-``n`` periodic axis covering indices start..stop-1 (start < 0 <= stop)."""
    return [slice(n + start, n), slice(0, stop)]


def image_from_half_plane(half_plane, npix_grid, npix) -> np.ndarray:
    """Inverse FFT of a box of the half plane (..., 2K + 1, K + 1), laid out as in
    ``UVSampling``, to the central ``npix`` x ``npix`` of an ``npix_grid`` image, with offset 0
    at pixel ``(npix // 2, npix // 2)``. Equals ``irfft2`` of the whole grid, cropped; only the
    columns and rows that matter are transformed. Real, normalised as ``irfft2``."""
    k = half_plane.shape[-1] - 1
    n = npix_grid
    lead = half_plane.shape[:-2]
    columns = np.zeros(lead + (n, k + 1), np.complex64)
    columns[..., : k + 1, :] = half_plane[..., k:, :]  # ky = 0..K
    columns[..., n - k:, :] = half_plane[..., :k, :]  # ky = -K..-1
    columns = scipy.fft.ifft(columns, axis=-2, workers=FFT_WORKERS, overwrite_x=True)
    lo, hi = -(npix // 2), npix - npix // 2
    columns = np.concatenate([columns[..., s, :] for s in _wrapped(n, lo, hi)], axis=-2)
    image = scipy.fft.irfft(columns, n=n, axis=-1, workers=FFT_WORKERS, overwrite_x=True)
    return np.concatenate([image[..., s] for s in _wrapped(n, lo, hi)], axis=-1)


def half_plane_from_image(images, npix_grid, half_width) -> np.ndarray:
    """Fourier transform of images (..., npix, npix) zero-padded to ``npix_grid``, on the box of
    the half plane laid out as in ``UVSampling`` (ky in [-K, K], kx in [0, K], K = ``half_width``),
    with pixel ``(npix // 2, npix // 2)`` as the origin. The inverse of
    ``image_from_half_plane`` on that box; complex64."""
    images = np.asarray(images, dtype=np.float32)
    npix = images.shape[-1]
    n, k = npix_grid, half_width
    spectrum = scipy.fft.rfft(images, n=n, axis=-1, workers=FFT_WORKERS)[..., : k + 1]
    spectrum = scipy.fft.fft(spectrum, n=n, axis=-2, workers=FFT_WORKERS, overwrite_x=True)
    spectrum = np.concatenate([spectrum[..., n - k:, :], spectrum[..., : k + 1, :]], axis=-2)
    # move the origin from pixel 0 to pixel npix // 2: a phase ramp
    ky = np.arange(-k, k + 1)[:, None]
    kx = np.arange(k + 1)[None, :]
    spectrum *= np.exp(2j * np.pi * (ky + kx) * (npix // 2) / n).astype(np.complex64)
    return spectrum.astype(np.complex64, copy=False)


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
