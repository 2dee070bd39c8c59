"""Training examples for the source finder, made fast by the linearity of observing.

Every input the networks see is a linear function of the sky model: the frequency-integrated
dirty image (Blobs Finder, DECORAS), the spectrum summed inside a box (Deep GRU) and the image
integrated over an emission range (ResNets). So none of them needs a whole dirty cube:

- an integrated image is the observation, at one frequency, of the sky summed over the channels
  of interest, with the noise of that many independent channels (rms sqrt(n) per-channel rms);
- a box spectrum is, per channel, each source's spectrum times the part of its PSF-convolved
  image that falls in the box, plus box-summed noise whose variance follows from the noise
  autocorrelation (the PSF of the squared weights) and the box shape, independent between
  channels.

The PSF changes by about the fractional bandwidth over a cube (< 1 %), so the centre frequency's
PSF stands for every channel. Each example draws its own instrument from :func:`random_instrument`
(antenna configuration, frequency, declination, observing time, pixel scale relative to the beam),
its own channel count, noise-relative brightness and source density, so the networks do not
learn one setup. Per-channel noise is 1 (arbitrary units): every input is normalised anyway.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from pipeline.alma import interferometer
from pipeline.alma.gaussian import gaussian_images
from pipeline.alma.preprocess import FOCUS_SIZE, beam_image_px, crop, minmax, standardise
from pipeline.alma.simulate import Observation, SkyParameters, dirty_cube, draw_sources, source_spectra

#: configurations examples are drawn from (every one in assets/, compact to most extended);
#: alma.cycle11.5 is held out to check generalisation
TRAINING_CONFIGS = ("alma.cycle9.3", "alma.cycle11.1", "alma.cycle11.2", "alma.cycle11.3",
                    "alma.cycle11.4", "alma.cycle11.6", "alma.cycle11.7", "alma.cycle11.8",
                    "alma.cycle11.9", "alma.cycle11.10")
HELD_OUT_CONFIGS = ("alma.cycle11.5",)


@dataclass(frozen=True)
class Ranges:
    """What varies between examples (uniform between the bounds unless said otherwise)."""

    frequency_ghz: tuple = (85.0, 370.0)  # ALMA bands 3-7
    declination_deg: tuple = (-70.0, 20.0)
    #: on source, log-uniform: short tracks (few hour angles, strong far sidelobes) as often as
    #: long ones; these are where bright sources' sidelobes pass for fainter ones
    observation_s: tuple = (600.0, 3600.0)
    pixels_per_beam: tuple = (2.5, 7.0)  # beam minor axis FWHM in pixels
    channels: tuple = (32, 320)  # log-uniform
    n_fainter: tuple = (0, 7)  # source density: fainter sources besides the central one
    #: source FWHM in units of the beam's minor-axis FWHM (never below 2 px): from nearly point-like
    #: to twice the beam. At 0.3-1.5 the shape ResNet, asked about a source it cannot resolve,
    #: answered with the middle of that range: +0.7 px on sources of 0.3-0.6 beams, -0.3 px on
    #: those above 1.5 (CASA-made and held-out cubes at SNR >= 10)
    size_per_beam: tuple = (0.1, 2.0)
    line_fwhm_channels: tuple = (2.0, 16.0)
    snr_central: tuple = (3.0, 60.0)  # peak signal-to-noise per channel, log-uniform
    snr_fainter: tuple = (1.5, 25.0)
    #: fraction of the fainter sources whose line falls within the central source's line (+- its
    #: FWHM): bright and faint emission in the same channels, each with the other's sidelobes
    shared_channels: float = 0.4


@dataclass
class Instrument:
    """One observing setup at its centre frequency: gridded uv sampling (one channel), fitted beam
    (bmaj, bmin arcsec, bpa deg), pixel scale, the noise autocorrelation (peak 1) and the dirty
    beam's central ``FOCUS_SIZE`` x ``FOCUS_SIZE`` (peak 1 at ``(FOCUS_SIZE // 2,) * 2``)."""

    observation: Observation
    size: int
    sampling: interferometer.UVSampling
    beam: tuple
    noise_correlation: np.ndarray
    dirty_beam: np.ndarray

    @property
    def cell_arcsec(self) -> float:
        return self.observation.cell_arcsec

    @property
    def beam_minor_px(self) -> float:
        return self.beam[1] / self.cell_arcsec


def make_instrument(observation: Observation, size: int) -> Instrument:
    """Sampling, beam and noise autocorrelation of ``observation`` for ``size`` x ``size`` images."""
    uv_m = observation.uv_m()
    uv_m = uv_m[: len(uv_m) // 2]  # conjugates implied
    sampling = interferometer.uv_sampling(uv_m, observation.centre_frequency_hz, size,
                                          observation.cell_arcsec, observation.weighting,
                                          observation.robust)
    psf_npix = min(128, size)
    psf = interferometer.psf_from_sampling(sampling, psf_npix)[0]
    beam = interferometer.fit_beam(psf, observation.cell_arcsec)
    corr_npix = min(2 * size, sampling.npix_grid)
    corr = interferometer.image_from_half_plane(sampling.weight2_grid, sampling.npix_grid, corr_npix)[0]
    corr /= corr[corr_npix // 2, corr_npix // 2]
    return Instrument(observation, size, sampling, tuple(float(b) for b in beam), corr.astype(np.float32),
                      crop(psf, psf_npix // 2, psf_npix // 2))


def random_instrument(rng, size=256, configs=TRAINING_CONFIGS, ranges=Ranges()) -> Instrument:
    """Draw an observation (configuration, frequency, declination, time, pixel scale) and make it."""
    config = str(rng.choice(configs))
    freq = rng.uniform(*ranges.frequency_ghz) * 1e9
    base = Observation(config=config, centre_frequency_hz=freq,
                       declination_deg=rng.uniform(*ranges.declination_deg),
                       observation_s=float(np.exp(rng.uniform(*np.log(ranges.observation_s)))),
                       integration_s=30.0)
    # the beam is known only after gridding: size it with a provisional cell, then set the cell
    # so the beam spans the drawn number of pixels
    lam = interferometer.SPEED_OF_LIGHT_M_S / freq
    longest = np.max(np.hypot(*base.uv_m().T))
    provisional = math.degrees(lam / longest) * 3600 / 4
    beam = make_instrument(dataclasses.replace(base, cell_arcsec=provisional), min(size, 128)).beam
    cell = beam[1] / rng.uniform(*ranges.pixels_per_beam)
    return make_instrument(dataclasses.replace(base, cell_arcsec=cell), size)


def draw_sky(rng, instrument: Instrument, channels: int, ranges=Ranges()) -> Table:
    """Sources for one example: the paper's layout (a central source and fainter ones around it,
    blends allowed) with sizes relative to the beam, noise-relative brightness (per-channel noise 1)."""
    beam_px = instrument.beam_minor_px
    size = instrument.size
    params = SkyParameters(
        n_fainter=ranges.n_fainter,
        fwhm_px=tuple(max(2.0, f * beam_px) for f in ranges.size_per_beam),
        line_centre_channels=(0.08 * 128, 0.92 * 128),  # scaled by channels / 128 in draw_sources
        line_fwhm_channels=ranges.line_fwhm_channels,
        snr_central=ranges.snr_central, snr_fainter=ranges.snr_fainter)
    sources = draw_sources(rng, size, channels, instrument.beam, instrument.cell_arcsec, 1.0, params)
    # draw_sources shrinks sizes and line widths for cubes smaller than the paper's; undo for lines
    sources["fwhm_z"] = rng.uniform(*ranges.line_fwhm_channels, len(sources))
    shared = np.flatnonzero(rng.random(len(sources) - 1) < ranges.shared_channels) + 1
    central = sources[0]
    sources["z"][shared] = np.clip(central["z"] + rng.uniform(-1, 1, len(shared)) * central["fwhm_z"], 0, channels - 1)
    return sources


def observe_image(instrument: Instrument, images, weights, noise_rms, rng) -> np.ndarray:
    """Dirty image of sum_s weights[s] * images[s] (Jy/pixel) at the centre frequency, with thermal
    noise of rms ``noise_rms`` (Jy/beam) correlated like a dirty image's. (size, size) float32."""
    weights = np.asarray(weights, np.float32)[:, None]
    image, _ = dirty_cube(images, weights, instrument.sampling, noise_rms, rng)
    return image[0]


def convolve_with_psf(instrument: Instrument, images) -> np.ndarray:
    """Each of ``images`` (n, size, size) Jy/pixel convolved with the dirty beam: Jy/beam, no noise."""
    return interferometer.dirty_image(instrument.sampling, images)


@dataclass
class SkyExample:
    """One drawn sky seen through one instrument: what every example kind is cut from."""

    instrument: Instrument
    channels: int
    sources: Table
    images: np.ndarray  # (n, size, size) unit-peak source images, Jy/pixel per unit
    spectra: np.ndarray  # (n, channels) peak brightness per channel, Jy/pixel

    @property
    def line_sums(self) -> np.ndarray:
        return self.spectra.sum(axis=1)


def draw_example(rng, size=256, configs=TRAINING_CONFIGS, ranges=Ranges(), instrument=None,
                 channels=None, shift=False) -> SkyExample:
    """A sky, its instrument (drawn unless given) and channel count (log-uniform in
    ``ranges.channels`` unless given). ``shift`` moves the whole sky so the central source lands
    anywhere at least ``size / 8`` from the edges (the paper's skies always centre it, which
    would teach an image network that something sits in the middle)."""
    instrument = instrument or random_instrument(rng, size, configs, ranges)
    if channels is None:
        lo, hi = np.log(ranges.channels)
        channels = int(round(np.exp(rng.uniform(lo, hi))))
    sources = draw_sky(rng, instrument, channels, ranges)
    if shift:
        margin = size / 8
        offset = rng.uniform(margin, size - margin, 2) - (sources["x"][0], sources["y"][0])
        sources["x"] += offset[0]
        sources["y"] += offset[1]
    images = gaussian_images(sources, size)
    spectra = source_spectra(sources, np.arange(channels, dtype=float))
    return SkyExample(instrument, channels, sources, images, spectra)


#: integrated signal-to-noise at which a source's footprint target starts (0) and is full (1)
FOOTPRINT_SNR = (3.0, 6.0)
BLOB_TARGETS = ("footprint", "sky", "snr")


def integrated_snr(sky: SkyExample) -> np.ndarray:
    """Peak signal-to-noise of each source in the frequency-integrated dirty image (its
    PSF-convolved integrated image's peak over the integrated noise rms, sqrt(channels))."""
    peaks = convolve_with_psf(sky.instrument, sky.images).reshape(len(sky.images), -1).max(axis=1)
    return peaks * sky.line_sums / math.sqrt(sky.channels)


def footprint_map(sky: SkyExample) -> np.ndarray:
    """Where a detector should say "source": each source's own unit-peak image, weighted by
    how detectable it is in the integrated image (0 below ``FOOTPRINT_SNR[0]``, 1 above
    ``FOOTPRINT_SNR[1]``, linear between), merged by the maximum. (size, size) float32 in [0, 1].

    Unlike the normalised integrated sky (the paper's target), a faint source counts as much as
    a bright one once it is clearly detectable, and an undetectable one asks for nothing; its
    extent at 0.15 of the peak is the 2-sigma ellipse the truth boxes use."""
    lo, hi = FOOTPRINT_SNR
    weight = np.clip((integrated_snr(sky) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    if not len(weight):
        return np.zeros((sky.instrument.size,) * 2, np.float32)
    return (sky.images * weight[:, None, None]).max(axis=0)


def snr_map(sky: SkyExample) -> np.ndarray:
    """The noiseless integrated dirty image in units of its noise rms (so each source peaks at
    its :func:`integrated_snr`), negative sidelobes clipped to 0: a brightness map for DECORAS's
    MSLE network, whose logarithm spans faint and bright sources alike. (size, size) float32."""
    if not len(sky.images):
        return np.zeros((sky.instrument.size,) * 2, np.float32)
    convolved = convolve_with_psf(sky.instrument, sky.images)
    image = np.tensordot(np.asarray(sky.line_sums, np.float32), convolved, axes=1) / math.sqrt(sky.channels)
    return np.clip(image, 0.0, None).astype(np.float32)


def blob_pair(rng, sky: SkyExample, target: str = "sky"):
    """Blobs Finder / DECORAS pair: (min-max integrated dirty image, target), both (size, size)
    float32, the image in [0, 1]. ``target``: ``"sky"``, the min-max integrated sky model (the
    paper's and its code's), ``"footprint"`` (:func:`footprint_map`, in [0, 1]) or ``"snr"``
    (:func:`snr_map`, unbounded)."""
    if target not in BLOB_TARGETS:
        raise ValueError(f"target must be one of {BLOB_TARGETS}; got {target!r}")
    dirty = observe_image(sky.instrument, sky.images, sky.line_sums, math.sqrt(sky.channels), rng)
    if target == "footprint":
        return minmax(dirty), footprint_map(sky)
    if target == "snr":
        return minmax(dirty), snr_map(sky)
    clean = np.tensordot(sky.line_sums, sky.images, axes=1)
    return minmax(dirty), minmax(clean)


def source_box(source, size, rng=None, jitter=0.0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive-exclusive around a source: its ellipse's extent at 2 sigma
    (about where the paper's 3-sigma threshold of its own image cuts), at least 3 px wide,
    optionally jittered by up to ``jitter`` of its size on each side, clipped to the image."""
    pa = math.radians(source["pa"])
    # 2.3548, not gaussian.FWHM_PER_SIGMA (2.35482): the value the shipped networks were trained with;
    # the exact constant would move a few boxes by a pixel, and the weights would no longer be reproduced
    sx, sy = source["fwhm_x"] / 2.3548, source["fwhm_y"] / 2.3548
    half_w = 2.0 * math.hypot(sx * math.cos(pa), sy * math.sin(pa)) + 1.0
    half_h = 2.0 * math.hypot(sx * math.sin(pa), sy * math.cos(pa)) + 1.0
    edges = np.array([source["x"] - half_w, source["y"] - half_h, source["x"] + half_w, source["y"] + half_h])
    if rng is not None and jitter:
        edges += rng.uniform(-jitter, jitter, 4) * np.array([half_w, half_h, half_w, half_h])
    x0, y0 = (int(np.clip(np.floor(v), 0, size - 1)) for v in edges[:2])
    x1, y1 = (int(np.clip(np.ceil(v) + 1, x0 + 1, size)) for v in edges[2:])
    return x0, y0, x1, y1


def box_noise_rms(instrument: Instrument, box) -> float:
    """Rms of the box-summed noise of one channel (per-pixel rms 1): sqrt of
    sum over pixel pairs of the noise autocorrelation at their offset."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    corr = instrument.noise_correlation
    c = corr.shape[0] // 2
    dy = np.arange(-(h - 1), h)
    dx = np.arange(-(w - 1), w)
    window = corr[np.clip(c + dy, 0, corr.shape[0] - 1)][:, np.clip(c + dx, 0, corr.shape[1] - 1)]
    pairs = (h - np.abs(dy))[:, None] * (w - np.abs(dx))[None, :]
    return float(math.sqrt(max(float(np.sum(window * pairs)), 1e-12)))


def spectrum_pairs(rng, sky: SkyExample, jitter=0.3):
    """Deep GRU pairs, one per source: (standardised box-summed dirty spectrum, min-max box-summed
    sky spectrum), each (channels,) float32, and the boxes. The paper z-scores the target too;
    here it is min-max scaled, since the network ends in a sigmoid."""
    inst, size = sky.instrument, sky.instrument.size
    # each source's PSF-convolved image, once: box sums of it give the signal in any box
    convolved = convolve_with_psf(inst, sky.images)
    pairs, boxes = [], []
    for source in sky.sources:
        box = source_box(source, size, rng, jitter)
        x0, y0, x1, y1 = box
        gain = convolved[:, y0:y1, x0:x1].sum(axis=(1, 2))  # Jy/beam summed, per unit spectrum
        clean_gain = sky.images[:, y0:y1, x0:x1].sum(axis=(1, 2))
        dirty = gain @ sky.spectra + rng.standard_normal(sky.channels) * box_noise_rms(inst, box)
        pairs.append((standardise(dirty), minmax(clean_gain @ sky.spectra)))
        boxes.append(box)
    return pairs, boxes


def emission_range(source, channels) -> tuple[int, int]:
    """The paper's emission range, line centre +- FWHM, as channels (first, last + 1)."""
    z0 = int(np.clip(math.floor(source["z"] - source["fwhm_z"]), 0, channels - 1))
    z1 = int(np.clip(math.ceil(source["z"] + source["fwhm_z"]) + 1, z0 + 1, channels))
    return z0, z1


def beam_image(beam, cell_arcsec: float, side: int = FOCUS_SIZE) -> np.ndarray:
    """The Gaussian beam ``(bmaj, bmin arcsec, bpa deg east of north)`` on a ``side`` x ``side``
    grid of ``cell_arcsec`` pixels (x towards west, as the simulator's images), unit peak at
    ``(side // 2, side // 2)``: what the shape ResNet is told about the beam."""
    bmaj, bmin, bpa = beam
    return beam_image_px(bmaj / cell_arcsec, bmin / cell_arcsec, bpa + 90.0, side)


def focused_pairs(rng, sky: SkyExample, dirty_beam: bool = False):
    """ResNet examples, one per source: (focused 64 x 64 image in units of its noise rms, beam
    image, targets). The beam image is the fitted Gaussian beam (:func:`beam_image`), or with
    ``dirty_beam`` the instrument's dirty beam (what a cube's PSF cube gives).

    The focused image integrates the dirty cube over the source's emission range only (so a
    source overlapping another on the sky but not in frequency stands alone). Targets:
    ``fwhm_major``, ``fwhm_minor`` (intrinsic, pixels), ``pa_major`` (the major axis's angle, deg
    counter-clockwise from +x, in [0, 180)) and ``flux`` = the source's line flux in the range
    (Jy/pixel x channels summed over its image) divided by the focused image's noise rms
    (Jy/beam), so flux = flux x rms in any units.
    """
    inst = sky.instrument
    beam = inst.dirty_beam if dirty_beam else beam_image(inst.beam, inst.cell_arcsec)
    out = []
    for i, source in enumerate(sky.sources):
        z0, z1 = emission_range(source, sky.channels)
        weights = sky.spectra[:, z0:z1].sum(axis=1)
        rms = math.sqrt(z1 - z0)
        image = observe_image(inst, sky.images, weights, rms, rng)
        flux = float(weights[i] * sky.images[i].sum())
        swap = source["fwhm_y"] > source["fwhm_x"]
        targets = {"fwhm_major": float(max(source["fwhm_x"], source["fwhm_y"])),
                   "fwhm_minor": float(min(source["fwhm_x"], source["fwhm_y"])),
                   "pa_major": float((source["pa"] + (90.0 if swap else 0.0)) % 180.0),
                   "flux": flux / rms}
        out.append((crop(image / rms, source["x"], source["y"]), beam, targets))
    return out
