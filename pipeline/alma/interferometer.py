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
ELEVATION_LIMIT_DEG = 10.0  # CASA's simobserve flags integrations below it (sm.setlimits)
ARCSEC_RAD = np.pi / (180.0 * 3600.0)
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
FFT_WORKERS = min(os.cpu_count() or 1, 8)  # threads for FFTs and per-channel gridding
SUBCELLS = 2  # sub-cells per grid cell (per axis) where uv_sampling locates the samples


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
              latitude_deg=ALMA_LATITUDE_DEG, elevation_limit_deg=ELEVATION_LIMIT_DEG,
              shadowing=True) -> np.ndarray:
    """Earth-rotation synthesis: the (u, v) coverage in metres, shape (2 * n_vis, 2).

    Local (east, north, up) baselines are rotated to equatorial (X towards the meridian on the
    equator, Y towards east, Z towards the north pole) for the site ``latitude_deg``, then to
    (u, v, w) for each hour angle and the source ``declination_deg`` (standard interferometry
    geometry, e.g. Thompson, Moran & Swenson eq. 4.1). The first half of the rows are the
    visibilities (baseline-major, hour angle fastest), the second half their conjugates
    (-u, -v), so the coverage is symmetric as every imager makes it.

    As CASA's simobserve does, integrations with the source below ``elevation_limit_deg`` are
    left out and, with ``shadowing``, so is every baseline of a shadowed antenna: one that
    another antenna, nearer the source, partly hides (closer in projection than the sum of
    their dish radii; CASA, measured with 12 m dishes: 11.8 m apart flagged, 12.0 m not).
    Compact configurations at low elevation lose many visibilities so: alma.cycle9.3 at
    declination +20 deg 5-6 %, alma.cycle11.1 at -70 deg a third, as in CASA. CASA's simobserve
    drops the antenna in front instead (its uvw run from antenna 2 to antenna 1 while its shadow
    test reads them the other way round); here the hidden one goes. An observation that keeps
    nothing raises ``InputError``.
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
    w = (np.cos(dec) * cos_h * x_eq[:, None] - np.cos(dec) * sin_h * y_eq[:, None]
         + np.sin(dec) * z_eq[:, None])
    sin_elevation = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    above = sin_elevation >= np.sin(np.radians(elevation_limit_deg))
    keep = np.broadcast_to(above[None, :], u.shape)
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
    are counted in cells of ``1 / (npix * cell)`` wavelengths centred on the points of the
    ``npix`` x ``npix`` image's uv grid (u falls in cell ``rint(u * npix * cell)``), giving
    densities W_k; ``f^2 = (5 * 10**-robust)^2 / (sum_k W_k^2 / sum_i w_i)`` and
    ``w_i = 1 / (1 + W_k f^2)``. From tclean's own uvw this gives tclean's PSF to 1e-4.

    The weighted samples are gridded on an ``npix * padding`` grid (``padding`` an integer; 2
    lets a PSF be convolved with a whole ``npix`` image without wrapping) by linear
    interpolation between the four cells around each (from its sub-cell's centre: positions
    are kept to half a cell), then convolved along each axis with three taps that undo, in the
    image, the taper of that interpolation (``_taper_taps``). Against the exact Fourier sum,
    the PSF's far sidelobes then have the right level (their rms to 1-2 %) and errors of ~0.003
    rms at the edge of an ``npix`` image. Gridding to the nearest cell, as before, moved each
    sample by up to half a cell, i.e. its phase by up to pi * offset / grid size: at the image
    edge the sidelobes were 6 % low on average, with errors of 0.007-0.009 rms (a third of
    their own rms). ``weight2_grid`` (the noise power per cell) is the sum of squared weights
    of the nearest cell: the noise needs its total power and its correlation near zero lag,
    where the cell size does not matter. Samples beyond the grid are dropped.

    How: each channel's samples are counted once, in sub-cells of 1 / ``SUBCELLS`` of a cell
    whose edges fall on the edges of both the density cells and the nearest cells; densities,
    weights and both grids follow from block sums of that count.
    """
    if weighting not in ("natural", "briggs"):
        raise InputError(f"weighting must be 'natural' or 'briggs', not {weighting!r}.")
    padding = int(padding)
    if padding < 1:
        raise InputError(f"padding must be an integer >= 1, not {padding}.")
    freqs = np.atleast_1d(np.asarray(frequency_hz, dtype=np.float64))
    uv = np.asarray(uv_m, dtype=np.float64)
    n_grid = npix * padding
    s = SUBCELLS
    # imaging-grid cells per metre of baseline at each frequency
    cells_per_m = freqs / SPEED_OF_LIGHT_M_S * n_grid * cell_arcsec * ARCSEC_RAD
    # box [-K, K] per axis: every sample, its interpolation neighbours and the taps' reach,
    # within the grid (samples beyond the grid's Nyquist cell are dropped)
    reach = float(np.max(np.abs(uv)) * cells_per_m.max()) if len(uv) else 0.0
    k_box = int(min(np.floor(reach) + 2, n_grid // 2 - 1))
    clipped = np.floor(reach) + 2 > k_box
    # sub-cells q in [-S, S) hold whole density cells m in [-M, M) and imaging cells beyond K
    m_half = int(np.ceil((k_box + 1) / padding))
    per_density = s * padding
    half_sub = per_density * m_half
    k_half = half_sub // s  # imaging cells k in [-k_half, k_half] come out of the sub-cells
    side = 2 * half_sub
    # image x runs towards west: column index is -u; rows are +v
    uv_t = np.ascontiguousarray(uv.T * np.array([[-1.0], [1.0]]), dtype=np.float32)
    taps = _taper_taps(padding, s)

    shape = (len(freqs), 2 * k_box + 1, k_box + 1)
    weight_grid = np.zeros(shape, np.float32)
    weight2_grid = np.zeros(shape, np.float32)
    weight_sum = np.zeros(len(freqs))
    weight2_sum = np.zeros(len(freqs))
    crop = (slice(k_half - k_box, k_half + k_box + 1), slice(k_half, k_half + k_box + 1))

    # nearest cell k holds sub-cells [s k - s / 2, s k + s / 2): the sub-cells of the box
    near_rows = slice(half_sub - s * k_box - s // 2, half_sub + s * k_box + s // 2)
    near_cols = slice(half_sub - s // 2, half_sub + s * k_box + s // 2)

    def grid_channel(c):
        position = uv_t * np.float32(cells_per_m[c])
        if clipped:
            position = position[:, np.all(np.abs(position) <= k_box - 2, axis=0)]
        sub = (position * np.float32(s) + np.float32(half_sub)).astype(np.int32)  # >= 0: floor
        counts = np.bincount(sub[1] * side + sub[0], minlength=side * side)
        counts = counts.reshape(side, side).astype(np.float32)
        counts += counts[::-1, ::-1]  # conjugates: sub-cell q -> -q - 1, the grid reversed
        if weighting == "briggs":
            # density cells are centred on grid points: shift by half a cell, then block sums
            half = per_density // 2
            padded = np.pad(counts, half)
            density = _block_sum(padded, per_density).astype(np.float64)
            f2 = (5.0 * 10.0 ** (-robust)) ** 2 / (np.sum(density ** 2) / density.sum())
            weight = 1.0 / (1.0 + f2 * density)
            weight_sum[c] = np.sum(density * weight)
            weight2_sum[c] = np.sum(density * weight * weight)
            blocks = padded.reshape(2 * m_half + 1, per_density, 2 * m_half + 1, per_density)
            weight = weight.astype(np.float32)[:, None, :, None]
            inner = (slice(half, half + side),) * 2
            summed = (blocks * weight).reshape(side + 2 * half, -1)[inner]
            summed2 = (blocks * (weight * weight)).reshape(side + 2 * half, -1)[inner]
        else:
            summed = summed2 = counts
            weight_sum[c] = weight2_sum[c] = counts.sum(dtype=np.float64)
        weight_grid[c] = _taper_corrected(_interpolated(summed, s), taps)[crop]
        weight2_grid[c] = _block_sum(summed2[near_rows, near_cols], s)

    # channels are independent and numpy releases the GIL in the heavy loops: use both cores
    with ThreadPoolExecutor(max_workers=FFT_WORKERS) as pool:
        list(pool.map(grid_channel, range(len(freqs))))
    return UVSampling(weight_grid, weight2_grid, weight_sum, weight2_sum, n_grid, freqs)


def _block_sum(grid, size):
    """Sums of ``size`` x ``size`` blocks of a 2-D array (sides multiples of ``size``)."""
    total = grid[0::size, 0::size].copy()
    for i in range(size):
        for j in range(size):
            if i or j:
                total += grid[i::size, j::size]
    return total


def _interpolated(sub_grid, s):
    """Linear interpolation of sub-cell sums (2S, 2S), ``s`` sub-cells per cell, to cells
    (2S / s + 1 per axis): each sub-cell's sum, placed at its centre, is shared between the
    cell below and the cell above that centre."""
    above = ((np.arange(s) + 0.5) / s).astype(np.float32)
    n = sub_grid.shape[0] // s

    def along_last(grid):  # (rows, n * s) -> (rows, n + 1)
        parts = grid.reshape(grid.shape[0], n, s)
        low = parts[..., 0] * (1.0 - above[0])
        high = parts[..., 0] * above[0]
        for j in range(1, s):
            low += parts[..., j] * (1.0 - above[j])
            high += parts[..., j] * above[j]
        out = np.zeros((grid.shape[0], n + 1), np.float32)
        out[:, :n] += low
        out[:, 1:] += high
        return out

    return along_last(np.ascontiguousarray(along_last(sub_grid).T)).T


def _taper_taps(padding, subcells):
    """Three taps ``[a, 1 - 2a, a]`` whose transfer ``1 - 4 a sin^2(pi t)`` best matches (least
    squares) the inverse of the gridding's taper at image offsets ``t`` (in grid sizes) out to
    the edge of the ``npix`` image, 1 / (2 padding). The taper: sinc^2(t) from linear
    interpolation, times sinc(t / subcells) from placing each sample at its sub-cell's centre
    (an error uniform over a sub-cell)."""
    t = np.linspace(0.0, 0.5 / padding, 64)
    sin2 = np.sin(np.pi * t) ** 2
    inverse = 1.0 / (np.sinc(t) ** 2 * np.sinc(t / subcells))
    a = -np.sum(sin2 * (inverse - 1.0)) / (4.0 * np.sum(sin2 * sin2))
    return np.array([a, 1.0 - 2.0 * a, a])


def _taper_corrected(grid, taps):
    """``grid`` (2-D) convolved with the three symmetric ``taps`` along both axes; zero beyond
    its edges (which hold no samples)."""
    for axis in (0, 1):
        out = grid * taps[1]
        lower = [slice(None)] * 2
        upper = [slice(None)] * 2
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        out[tuple(upper)] += taps[0] * grid[tuple(lower)]
        out[tuple(lower)] += taps[2] * grid[tuple(upper)]
        grid = out
    return grid


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
