"""Simulated cubes too large to hold in memory (2048 x 2048 x 1024 pixels is 16 GB): the same
observation as :func:`pipeline.alma.simulate.simulate_cube`, gridded, observed and written a block
of channels at a time, so memory holds one block (and the sources' transforms), whatever the cube.

The uv sampling of each block is made as it is needed, with the box of the whole band's highest
frequency, and the thermal noise is drawn in the same order as in memory: a cube made here is the
cube :func:`~pipeline.alma.simulate.simulate_cube` makes with the same seed (its data to float
rounding). No sky model is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from pipeline.alma import interferometer
from pipeline.alma.gaussian import gaussian_images
from pipeline.alma.simulate import (
    CHANNEL_CHUNK,
    TRUTH_COLUMNS,
    Observation,
    beams_hdu,
    channel_beams,
    cube_header,
    dirty_cube,
    source_peaks,
    truth_table,
    visibility_sigma,
)
from pipeline.alma.sky import PAPER_SKY, SkyParameters, draw_sources, source_spectra
from pipeline.atomic import atomic_write
from pipeline.errors import InputError
from pipeline.progress import check_cancel, report

ANCHORS = 5  # channels whose PSF is fitted for the beams (as simulate_cube's channel_beams)


def simulate_cube_file(path, seed, size=256, channels=128, observation: Observation | None = None,
                       parameters: SkyParameters = PAPER_SKY, sources: bool = True, name: str = "",
                       progress=None, cancel=None) -> Table:
    """Simulate the cube ``simulate_cube(seed, size, channels, observation, parameters)`` would
    give (``sources=False``: noise alone) and write it to ``path`` as CASA's exportfits does
    (4-D, BEAMS table), ``CHANNEL_CHUNK`` channels at a time, atomically. Returns the truth
    catalogue (``TRUTH_COLUMNS``; empty without sources). ``progress(done, total, stage)`` after
    each block; ``cancel`` is checked before each (nothing is left at ``path`` then)."""
    if size < 16 or channels < 1:
        raise InputError(f"Need size >= 16 and channels >= 1, got size={size}, channels={channels}.")
    obs, path = observation or Observation(), Path(path)
    frequency_hz = obs.frequency_hz(channels)
    uv_m = obs.uv_m()
    uv_m = uv_m[: len(uv_m) // 2]  # the conjugates are implied, as in instrument_response

    def sampling(index):
        return interferometer.uv_sampling(uv_m, frequency_hz[index], size, obs.cell_arcsec, obs.weighting,
                                          obs.robust, box_frequency_hz=frequency_hz.max())

    picks = np.unique(np.linspace(0, channels - 1, min(ANCHORS, channels)).round().astype(int))
    beams = channel_beams(sampling(picks), obs.cell_arcsec, anchors=len(picks), frequency_hz=frequency_hz)
    mid = channels // 2
    sigma = visibility_sigma(sampling([mid]), obs.noise_jy_per_beam)

    rng = np.random.default_rng(seed)
    if sources:
        beam_mid = tuple(beams[mid][c] for c in ("bmaj_arcsec", "bmin_arcsec", "bpa_deg"))
        drawn = draw_sources(rng, size, channels, beam_mid, obs.cell_arcsec, obs.noise_jy_per_beam, parameters)
        images, spectra = gaussian_images(drawn, size), source_spectra(drawn, frequency_hz)
        at = source_peaks(drawn, size, channels)
    else:  # an empty sky, observed the same way
        images, spectra = np.zeros((1, size, size), np.float32), np.zeros((1, channels), np.float32)
        at = (np.zeros(0, int),) * 3

    header = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 4), ("NAXIS1", size), ("NAXIS2", size),
                          ("NAXIS3", channels), ("NAXIS4", 1), ("EXTEND", True)])
    header.extend(cube_header((channels, size, size), frequency_hz, obs, name=name or path.stem))
    peak_snr = np.full(len(at[0]), np.nan)
    blocks = range(0, channels, CHANNEL_CHUNK)
    with atomic_write(path) as tmp:
        stream = fits.StreamingHDU(tmp, header)
        for done, start in enumerate(blocks, start=1):
            check_cancel(cancel, "simulation")
            block = slice(start, min(start + CHANNEL_CHUNK, channels))
            dirty, rms = dirty_cube(images, spectra[:, block], sampling(block), obs.noise_jy_per_beam, rng, sigma)
            here = (at[0] >= block.start) & (at[0] < block.stop)
            z = at[0][here] - block.start
            peak_snr[here] = dirty[z, at[1][here], at[2][here]] / rms[z]
            stream.write(dirty[None].astype(">f4"))
            report(progress, done, len(blocks), f"channels {block.start}-{block.stop - 1}")
        stream.close()
        beam_table = beams_hdu(beams)
        fits.append(tmp, beam_table.data, beam_table.header)
    if not sources:
        return Table(names=TRUTH_COLUMNS, dtype=[str] + [float] * (len(TRUTH_COLUMNS) - 1))
    return truth_table(drawn, peak_snr, frequency_hz, path.name)

