"""Read spectral cubes (RA, Dec, spectral) the way CASA, Miriad and GILDAS write them.

A :class:`Cube` wraps one FITS image HDU without loading it: the pixels stay memory-mapped, and
channels, spectra and moments are read on demand. What it understands:

- 4-D CASA ``exportfits`` cubes (RA, Dec, FREQ, STOKES) with a degenerate (or first-plane) Stokes
  axis, per-channel beams in a ``BEAMS`` binary table, BUNIT Jy/beam, NaN-blanked edges;
- 3-D cubes with BMAJ/BMIN/BPA keywords and a FREQ or velocity (VRAD, VELO, VOPT, FELO) axis;
- gzip-compressed files (``.fits.gz``), which cannot be memory-mapped: astropy decompresses them
  into memory, so they are meant for cubes that fit in RAM (the whole stream is checked first, so a
  damaged file is refused at open).

A beam that is not one (BMAJ = 0, negative, not a number; in the header or any row of the BEAMS
table) leaves the cube viewable with ``beam`` None and a note; :meth:`Cube.require_beam` refuses
the work that needs a beam with the reason.

Everything wrong with a file surfaces as :class:`pipeline.errors.InputError` with a message that says
what is wrong and what to do.
"""

from __future__ import annotations

import math
import mmap
import warnings
from functools import cached_property
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from pipeline.alma.beams import Beam, beams_table, invalid_beam
from pipeline.alma.cube_axes import cube_pixels, find_axes
from pipeline.alma.cube_summary import cube_info
from pipeline.alma.fits_checks import GZIP_ERRORS, check_gzip, check_promised_size, check_size, damaged_gzip, not_fits
from pipeline.errors import InputError, short_reason

#: FITS spectral types (as astropy.wcs normalises them) and their velocity conventions
_DOPPLER = {"VRAD": u.doppler_radio, "VOPT": u.doppler_optical, "ZOPT": None, "VELO": u.doppler_relativistic}

#: Channels checked for data at open time before a (streamed) full scan is needed to call a cube empty.
_PROBE_CHANNELS = 16
READ_PIXELS = 2**23  # pixels read at once by whole-cube sums (32 MB as float32)


class Cube:
    """A spectral cube on disk, read lazily.

    Pixel data is exposed as ``data[channel, y, x]`` (a read-only memory map for uncompressed files).
    ``wcs`` is the 3-D WCS in the order (x=longitude, y=latitude, spectral).
    Use :func:`open_cube` to make one.
    """

    def __init__(self, path, hdul, hdu, data, wcs, notes, rest_frequency_hz=None):
        self.path = Path(path)
        self._hdul = hdul
        self.header = hdu.header
        self.data = data
        self.wcs = wcs
        self.notes = list(notes)
        header_rest = wcs.wcs.restfrq or None
        self.rest_frequency_hz = float(rest_frequency_hz or header_rest or 0) or None
        self._header_rest_hz = header_rest
        self._hdu = hdu
        #: why the cube has no usable beam although its file gives one (e.g. "BMAJ = 0 in the header")
        self.beam_problem: str | None = None
        self._per_channel = False  # set by beams when they come from a BEAMS table

    # ---- geometry -------------------------------------------------------------------------
    @property
    def nchan(self) -> int:
        return self.data.shape[0]

    @property
    def ny(self) -> int:
        return self.data.shape[1]

    @property
    def nx(self) -> int:
        return self.data.shape[2]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(nx, ny, nchan), the order astronomers quote."""
        return self.nx, self.ny, self.nchan

    @property
    def unit(self) -> str:
        return str(self.header.get("BUNIT", "")).strip() or "unknown"

    @property
    def celestial_wcs(self) -> WCS:
        return self.wcs.celestial

    @cached_property
    def pixel_scale_arcsec(self) -> tuple[float, float]:
        """Pixel size along x and y in arcsec."""
        scales = proj_plane_pixel_scales(self.celestial_wcs) * 3600.0
        return float(scales[0]), float(scales[1])

    @property
    def lazy(self) -> bool:
        """True when the pixels are memory-mapped rather than held in memory."""
        base = self.data
        while base is not None:
            if isinstance(base, (np.memmap, mmap.mmap)):
                return True
            base = getattr(base, "base", None)
        return False

    # ---- spectral axis --------------------------------------------------------------------
    @cached_property
    def spectral_type(self) -> str:
        """The spectral axis type from the header, e.g. FREQ, VRAD, VOPT."""
        return self.wcs.wcs.ctype[2].split("-")[0].strip()

    @cached_property
    def _native_spectral(self) -> u.Quantity:
        """Channel values on the header's own axis (Hz, or m/s for velocity axes)."""
        values = self.wcs.spectral.pixel_to_world_values(np.arange(self.nchan))
        return np.atleast_1d(values) * u.Unit(self.wcs.wcs.cunit[2] or "")

    @cached_property
    def frequency_hz(self) -> np.ndarray | None:
        """Frequency of each channel in Hz; None for a velocity axis without a rest frequency."""
        native = self._native_spectral
        if native.unit.physical_type == "frequency":
            return native.to_value(u.Hz)
        doppler = _DOPPLER.get(self.spectral_type)
        if doppler is None or not self._header_rest_hz:
            return None
        # the velocity axis was defined with the header's rest frequency, so convert with that one
        return native.to_value(u.Hz, equivalencies=doppler(self._header_rest_hz * u.Hz))

    def velocity_kms(self, rest_frequency_hz: float | None = None) -> np.ndarray | None:
        """Radio velocity of each channel in km/s.

        ``rest_frequency_hz`` overrides the header's (and the cube's) rest frequency. Returns None
        when there is no rest frequency for a frequency axis. A velocity axis without a rest
        frequency is returned as written (its own convention, see :attr:`spectral_type`).
        """
        rest = rest_frequency_hz or self.rest_frequency_hz
        freq = self.frequency_hz
        if freq is not None and rest:
            return (freq * u.Hz).to_value(u.km / u.s, equivalencies=u.doppler_radio(rest * u.Hz))
        native = self._native_spectral
        if native.unit.physical_type == "speed":
            return native.to_value(u.km / u.s)
        return None

    def channel_width(self) -> dict:
        """Median absolute channel width: ``{"hz": ..., "kms": ...}`` (None where unknown)."""
        freq, vel = self.frequency_hz, self.velocity_kms()

        def width(a):
            return float(np.median(np.abs(np.diff(a)))) if a is not None and len(a) > 1 else None

        return {"hz": width(freq), "kms": width(vel)}

    # ---- beams ----------------------------------------------------------------------------
    @cached_property
    def beams(self) -> list[Beam] | None:
        """One beam per channel (CASA BEAMS table), the header beam repeated, or None.

        A beam that is not one (an axis 0, negative or not a finite number) gives None too, with
        :attr:`beam_problem` and a note saying which: the cube can still be viewed, and
        :meth:`require_beam` refuses the work that needs a beam.
        """
        try:
            table = beams_table(self._hdul)
        except (ValueError, TypeError, KeyError) as exc:  # e.g. a unit astropy does not know
            return self._no_valid_beam(f"the BEAMS table cannot be read ({short_reason(exc)})")
        if table is not None:
            if len(table) != self.nchan:
                self.notes.append(
                    f"BEAMS table has {len(table)} rows for {self.nchan} channels; beams ignored")
                return None
            for channel, beam in enumerate(table):
                bad = invalid_beam(beam.major_arcsec, beam.minor_arcsec, beam.pa_deg)
                if bad:
                    return self._no_valid_beam(f"the BEAMS table gives channel {channel} {bad}")
            self._per_channel = True
            return table
        h = self.header
        if all(k in h for k in ("BMAJ", "BMIN")):
            bad = invalid_beam(h["BMAJ"], h["BMIN"], h.get("BPA", 0.0))
            if bad:
                return self._no_valid_beam(f"{bad} in the header")
            beam = Beam(float(h["BMAJ"]) * 3600, float(h["BMIN"]) * 3600, float(h.get("BPA", 0.0)))
            return [beam] * self.nchan
        return None

    def _no_valid_beam(self, problem: str) -> None:
        self.beam_problem = problem
        self.notes.append(f"no valid beam: {problem}; the cube can be viewed, but finding sources "
                          "needs a beam")

    def require_beam(self) -> Beam:
        """The median beam, or an :class:`InputError` saying why there is none and how to add it
        (for the work that needs a beam: source finding, fluxes in Jy)."""
        if self.beam is not None:
            return self.beam
        if self.beam_problem:
            raise InputError(
                f"{self.path.name} has no valid beam ({self.beam_problem}): a beam's axes must be "
                "positive numbers (BMAJ, BMIN in degrees; per-channel beams in the BEAMS table). Fix "
                "the header, e.g. astropy.io.fits.setval(path, 'BMAJ', value=...), or re-export the cube.")
        raise InputError(
            f"{self.path.name} has no beam (BMAJ/BMIN keywords or a BEAMS table): finding sources "
            "needs it for the detection area, the sizes and the flux. Add BMAJ and BMIN (degrees) "
            "and BPA to the header.")

    @property
    def per_channel_beams(self) -> bool:
        return self.beams is not None and self._per_channel

    @cached_property
    def beam(self) -> Beam | None:
        """The median beam over channels (the header beam when there is one)."""
        if not self.beams:
            return None
        arr = np.array([(b.major_arcsec, b.minor_arcsec, b.pa_deg) for b in self.beams])
        return Beam(*(float(v) for v in np.median(arr, axis=0)))

    # ---- pixels ---------------------------------------------------------------------------
    def channel(self, index: int) -> np.ndarray:
        """The image of one channel as float32 (ny, nx), read from disk."""
        if not 0 <= index < self.nchan:
            raise InputError(f"channel {index} is outside 0..{self.nchan - 1}")
        return np.asarray(self.data[index], dtype=np.float32)

    def spectrum(self, x: int, y: int, radius_pixels: float = 0.0) -> np.ndarray:
        """Spectrum (nchan,) at pixel (x, y): that pixel's, or the NaN-ignoring mean over a disc.

        Units are the cube's (Jy/beam for interferometer cubes). ``radius_pixels`` of 0 gives the
        single pixel; a beam-sized aperture uses :meth:`beam_radius_pixels`.
        """
        if not (0 <= x < self.nx and 0 <= y < self.ny):
            raise InputError(f"pixel ({x}, {y}) is outside the {self.nx}x{self.ny} image")
        r = int(math.ceil(radius_pixels))
        if r == 0:
            return np.asarray(self.data[:, y, x], dtype=np.float32)
        y0, y1, x0, x1 = max(0, y - r), min(self.ny, y + r + 1), max(0, x - r), min(self.nx, x + r + 1)
        block = np.asarray(self.data[:, y0:y1, x0:x1], dtype=np.float32)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = (xx - x) ** 2 + (yy - y) ** 2 <= radius_pixels**2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels give NaN, on purpose
            return np.nanmean(block[:, inside], axis=1)

    def beam_radius_pixels(self) -> float:
        """Radius of a circular aperture with the beam's half-power size (geometric mean FWHM / 2)."""
        if self.beam is None:
            return 0.0
        fwhm = math.sqrt(self.beam.major_arcsec * self.beam.minor_arcsec)
        return 0.5 * fwhm / self.pixel_scale_arcsec[1]

    def moment0(self, first: int = 0, last: int | None = None) -> tuple[np.ndarray, str]:
        """Integrated intensity over channels ``first..last`` (inclusive), read ``READ_PIXELS``
        at a time (whole channels).

        Returns (image (ny, nx) float32, unit): the sum times the channel width in km/s when the
        velocity axis is known (e.g. Jy/beam km/s), else in channels. NaN pixels count as empty;
        a pixel NaN in every channel stays NaN.
        """
        last = self.nchan - 1 if last is None else last
        (_, image), = self.integrate([(first, last)])
        width = self.channel_width()["kms"]
        return image, f"{self.unit} km/s" if width else f"{self.unit} channel"

    def blocks(self, first: int = 0, stop: int | None = None, y=slice(None), x=slice(None)):
        """Channels ``first..stop - 1`` of the rows ``y`` and columns ``x`` (slices), read a few
        channels at a time: yields ``(channel, block)``, float32 copies (channels, rows, columns).

        However little of a channel is asked for, reading a memory-mapped cube maps whole
        channels into this process (the system reads ahead), so a read takes ``READ_PIXELS``
        worth of whole channels and the cube's pages are let go after it (:meth:`release_pages`):
        memory holds one read, whatever the cube's size."""
        stop = self.nchan if stop is None else stop
        step = max(1, READ_PIXELS // (self.ny * self.nx))
        for k in range(first, stop, step):
            self.prefetch(k + step, min(stop, k + 2 * step))  # read from disk while this read is used
            block = np.array(self.data[k:min(stop, k + step), y, x], dtype=np.float32)
            self.release_pages()
            yield k, block

    def integrate(self, ranges, rows: tuple[int, int] | None = None):
        """:meth:`moment0` over each channel range ``(first, last)`` (inclusive) of ``ranges``, of
        the rows ``rows`` (``(y0, y1)``, end exclusive; all by default), in one pass over the
        channels (:meth:`blocks`): yields ``(index in ranges, image)`` as each range's last
        channel is read. Memory holds a read and a sum per open range."""
        ranges = [tuple(sorted((int(a), int(b)))) for a, b in ranges]
        for first, last in ranges:
            if first < 0 or last >= self.nchan:
                raise InputError(f"channel range {first}..{last} is outside 0..{self.nchan - 1}")
        if not ranges:
            return
        y0, y1 = rows or (0, self.ny)
        width = self.channel_width()["kms"] or 1.0
        sums: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        read = _RunningSums()
        for k, block in self.blocks(min(r[0] for r in ranges), max(r[1] for r in ranges) + 1, slice(y0, y1)):
            end = k + len(block)  # channels k..end - 1
            read.update(block)
            del block
            for i, (first, last) in enumerate(ranges):
                if k <= first < end:
                    sums[i] = (np.zeros((y1 - y0, self.nx)), np.zeros((y1 - y0, self.nx), bool))
                a, b = max(first, k) - k, min(last + 1, end) - k
                if i in sums and a < b:
                    total, seen = sums[i]
                    read.add_to(total, seen, a, b)
            for i in sorted((i for i in sums if ranges[i][1] < end), key=lambda i: ranges[i][1]):
                total, seen = sums.pop(i)
                total *= width
                total[~seen] = np.nan
                yield i, total.astype(np.float32)

    def release_pages(self) -> None:
        """Let go of the pages of a memory-mapped cube read so far: they no longer count in this
        process's memory (the system keeps them cached while it has room). A no-op in memory."""
        mapping = self._mapping()
        if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)

    def prefetch(self, first: int, stop: int) -> None:
        """Ask the system to start reading channels ``first..stop - 1`` of a memory-mapped cube from
        disk, while this process works on others (a cube not in the system's cache: a 16 GB one
        is read at disk speed on every pass). A no-op in memory or for an empty range."""
        mapping = self._mapping()
        if (mapping is None or not hasattr(mmap, "MADV_WILLNEED") or not first < stop <= self.nchan
                or not isinstance(self.data, np.ndarray) or not self.data.flags.c_contiguous):
            return
        start = self.data[first].ctypes.data - np.frombuffer(mapping, np.uint8).ctypes.data
        length = (stop - first) * self.ny * self.nx * self.data.itemsize
        aligned = start - start % mmap.PAGESIZE
        mapping.madvise(mmap.MADV_WILLNEED, aligned, min(length + start - aligned, len(mapping) - aligned))

    def _mapping(self) -> mmap.mmap | None:
        """The memory map a memory-mapped cube's data lies in (None in memory)."""
        base = self.data
        while base is not None and not isinstance(base, mmap.mmap):
            base = getattr(base, "base", None)
        return base

    @cached_property
    def nan_fraction(self) -> float:
        """Fraction of NaN pixels over the whole cube, streamed channel by channel."""
        nans = sum(int(np.isnan(self.data[k]).sum()) for k in range(self.nchan))
        return nans / float(self.nchan * self.ny * self.nx)

    # ---- world coordinates ----------------------------------------------------------------
    def sky(self, x: float, y: float):
        """SkyCoord of pixel (x, y) (0-based)."""
        return self.celestial_wcs.pixel_to_world(x, y)

    # ---- summary --------------------------------------------------------------------------
    def info(self, scan: bool = True) -> dict:
        """What ``cube-info`` prints (:func:`pipeline.alma.cube_summary.cube_info`); ``scan=False``
        skips the NaN fraction, which reads the whole cube."""
        return cube_info(self, scan)

    def close(self) -> None:
        self._hdul.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<Cube {self.path.name} {self.nx}x{self.ny}x{self.nchan} {self.spectral_type}>"


def open_cube(path, rest_frequency_hz: float | None = None, check_data: bool = True) -> Cube:
    """Open a FITS cube lazily, checking it is a usable (RA, Dec, spectral) cube.

    ``rest_frequency_hz`` overrides the header's rest frequency for velocities.
    ``check_data`` makes sure the cube is not entirely blank (NaN); it reads a few channels, and the
    whole cube only when those are all blank.
    Raises :class:`InputError` with a message for the user on anything unusable.
    """
    path = Path(path)
    name = path.name
    if not path.exists():
        raise InputError(f"{path}: no such file. Check the path.")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a FITS file. Give the path of a .fits file.")
    if path.stat().st_size == 0:
        raise InputError(f"{name} is empty (0 bytes). Copy or download the file again.")
    with open(path, "rb") as f:
        magic = f.read(6)
    compressed = magic.startswith(b"\x1f\x8b")
    if magic != b"SIMPLE" and not compressed:  # FITS, or gzip-compressed FITS
        raise InputError(not_fits(name))
    if compressed:
        check_gzip(path)
    else:
        check_promised_size(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # header fix-ups (BLANK on float data, AIPS keywords) are expected
        try:
            hdul = fits.open(path, memmap=True, lazy_load_hdus=False, mode="readonly")
        except (OSError, ValueError, TypeError, *GZIP_ERRORS) as exc:
            if compressed and isinstance(exc, GZIP_ERRORS):
                raise InputError(damaged_gzip(name, exc)) from None
            if "SIMPLE" in str(exc):
                raise InputError(not_fits(name)) from None
            raise InputError(
                f"{name} is not a readable FITS file ({short_reason(exc)}). "
                "Open a FITS cube (.fits or .fits.gz) as written by CASA exportfits.") from None
        try:
            return _cube_from_hdul(path, hdul, rest_frequency_hz, check_data)
        except InputError:
            hdul.close()
            raise
        except Exception as exc:  # noqa: BLE001 -- astropy raises many types on damaged files; name the problem
            hdul.close()
            if compressed and isinstance(exc, GZIP_ERRORS):
                raise InputError(damaged_gzip(name, exc)) from None
            raise InputError(f"{name} could not be read as a cube ({short_reason(exc)}).") from None


def _cube_from_hdul(path, hdul, rest_frequency_hz, check_data) -> Cube:
    name = path.name
    hdu = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2), None)
    if hdu is None:
        raise InputError(f"{name} holds no image data (no HDU with NAXIS >= 2). Open a spectral cube.")
    header = hdu.header
    naxis = header["NAXIS"]
    dims = [header.get(f"NAXIS{i}", 0) for i in range(1, naxis + 1)]
    if sum(d > 1 for d in dims) < 3 and naxis < 3:
        raise InputError(
            f"{name} is a {naxis}-D image ({' x '.join(map(str, dims))}), not a cube: it has no spectral "
            "axis. Open a cube with RA, Dec and a frequency or velocity axis.")
    check_size(path, hdul, hdu)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, fobj=hdul)
    axes = find_axes(wcs, name)
    if any(d == 0 for d in dims):
        raise InputError(f"{name} has an empty axis ({' x '.join(map(str, dims))}). The file holds no pixels.")

    try:
        data = hdu.data
    except GZIP_ERRORS:
        raise  # open_cube names the damaged compression
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{name}: the pixel data cannot be read ({short_reason(exc)}). "
                         "The file is probably truncated or damaged; copy it again.") from None
    cube_data, cube_wcs, notes = cube_pixels(data, wcs, axes, dims)

    cube = Cube(path, hdul, hdu, cube_data, cube_wcs, notes, rest_frequency_hz)
    _ = cube.beams  # read now, so notes about the beam are there from the start
    if cube.nchan < 2:
        cube.notes.append("the cube has a single channel")
    if check_data and _all_blank(cube):
        raise InputError(f"{name} holds no data: every pixel is NaN (blank). Check the file was "
                         "exported with its data (CASA exportfits of a non-empty image).")
    return cube


def _all_blank(cube: Cube) -> bool:
    probe = np.unique(np.linspace(0, cube.nchan - 1, min(cube.nchan, _PROBE_CHANNELS)).astype(int))
    if any(np.isfinite(cube.data[k]).any() for k in probe):
        return False
    return cube.nan_fraction == 1.0



class _RunningSums:
    """Sums of a read's first 0, 1, ..., n channels (NaN as 0), and counts of their finite values,
    in buffers kept from read to read: any channel range's part of a read is the difference of
    two, whatever the number of ranges (:func:`running_sums`)."""

    def __init__(self):
        self.values = self.counts = None
        self.all_finite = True

    def update(self, block: np.ndarray) -> None:
        shape = (len(block) + 1, *block.shape[1:])
        if self.values is None or self.values.shape[1:] != shape[1:] or len(self.values) < shape[0]:
            self.values, self.counts = np.zeros(shape), np.zeros(shape, np.int32)
        finite = np.isfinite(block)
        self.all_finite = bool(finite.all())
        if self.all_finite:
            running_sums(block, out=self.values)
        else:
            running_sums(np.where(finite, block, 0.0), out=self.values)
            running_sums(finite, out=self.counts)

    def add_to(self, total: np.ndarray, seen: np.ndarray, a: int, b: int) -> None:
        """Add channels ``a..b - 1`` of the read to ``total``; mark in ``seen`` where any was finite."""
        total += self.values[b]
        total -= self.values[a]
        seen |= True if self.all_finite else self.counts[b] > self.counts[a]


def running_sums(block: np.ndarray, dtype=np.float64, out=None) -> np.ndarray:
    """Sums of the first 0, 1, ..., n channels of ``block`` (n, ...): (n + 1, ...), added a
    channel at a time (numpy's cumsum along the channels is 10x slower); into ``out`` (at least
    n + 1 long, its first plane zero) when given, so that a buffer serves read after read."""
    out = np.zeros((len(block) + 1, *block.shape[1:]), dtype) if out is None else out
    for k, plane in enumerate(block):
        np.add(out[k], plane, out=out[k + 1])
    return out
