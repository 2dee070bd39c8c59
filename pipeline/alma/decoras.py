"""DECORAS (Rezaei et al. 2022) as the ALMA paper re-implemented it, on a cube: the BCE and MSLE
networks' maps, blobs both find, each measured over its own line like a classic finder's segment."""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage

from pipeline.alma import measure as ms
from pipeline.alma.catalog import make_catalog
from pipeline.alma.cube import Cube
from pipeline.alma.focus import centroid, cube_level, focused_image, focused_snr, significance_note
from pipeline.alma.networks import DECORAS_TASKS, MODELS_DIR, load_networks
from pipeline.alma.source_maps import DEFAULT_MEMORY, SEARCH_WINDOWS, spectral_source_map, steps_per_map
from pipeline.progress import Steps

#: the BCE network, trained on a sparse mask, is underconfident: on validation cubes its map
#: peaks at 0.4-0.45 on sources of integrated SNR >= 5 and its 99th percentile is below 0.1
#: (validation cubes, strict rule, SNR >= 5: 0.1 let false positives in, 0.2 lost recall)
DECORAS_BCE_THRESHOLD = 0.15
#: the MSLE network predicts the integrated image in units of its noise: 3 sigma (lower levels
#: merge neighbouring blobs, whose centres then miss the BCE blobs' by more than 3 px)
DECORAS_MSLE_THRESHOLD = 3.0
DECORAS_MATCH_PX = 3.0  # the ALMA paper keeps blobs that both DECORAS networks find within 3 px


def detect_decoras(cube: Cube, networks: dict | None = None, progress=None, cancel=None, min_snr: float = 5.0,
                   windows=SEARCH_WINDOWS, bce_threshold: float = DECORAS_BCE_THRESHOLD,
                   msle_threshold: float = DECORAS_MSLE_THRESHOLD, memory: float = DEFAULT_MEMORY,
                   scheduler: str = "synchronous", files: dict | None = None, parts=None):
    """DECORAS as the ALMA paper re-implemented it: the BCE (detection) and MSLE (brightness)
    networks on the integrated image, blobs of each map (above ``bce_threshold`` and
    ``msle_threshold``), kept where both find one within 3 px. Each kept blob is measured like a
    classic finder's segment, but on the image over its own line: the line from the box
    spectrum, then intensity centroid, second moments deconvolved from the beam and flux.
    It searches the same spectral windows as the pipeline (``windows=()``: the whole band only,
    as in the paper), so the two compare as networks, not as searches; within ``memory`` bytes, in
    this process or on Dask (``scheduler``, with the networks' ``files``, {task: model.pt}); the maps
    saved strip by strip in ``parts`` when given (a rerun resumes)."""
    networks = networks or load_networks(MODELS_DIR, DECORAS_TASKS)
    files = files or {}
    step = Steps(progress, cancel, 2 + 2 * steps_per_map(cube, 256, windows, memory, scheduler), "detection")
    step("channel noise")
    ms.check_searchable(cube, data=True, cancel=cancel)
    bce = spectral_source_map(cube, networks["decoras_bce"], windows, side=256,
                              step=lambda w: step(f"DECORAS BCE, {w}"), memory=memory, scheduler=scheduler,
                              network_file=files.get("decoras_bce"), cancel=cancel, parts=parts)
    msle = spectral_source_map(cube, networks["decoras_msle"], windows, side=256,
                               step=lambda w: step(f"DECORAS MSLE, {w}"), memory=memory, scheduler=scheduler,
                               network_file=files.get("decoras_msle"), cancel=cancel, parts=parts) > msle_threshold
    labels, _ = scipy.ndimage.label(bce > bce_threshold)
    msle_labels, m = scipy.ndimage.label(msle)
    msle_centres = np.array(scipy.ndimage.center_of_mass(msle, msle_labels, range(1, m + 1))).reshape(-1, 2)
    step("measuring")
    level = cube_level(cube, min_snr)
    rows = []
    yy, xx = np.mgrid[0:cube.ny, 0:cube.nx]
    for i, (ys, xs) in enumerate(scipy.ndimage.find_objects(labels), start=1):
        blob = labels == i
        y, x = scipy.ndimage.center_of_mass(bce * blob)
        if not len(msle_centres) or np.min(np.hypot(msle_centres[:, 0] - y, msle_centres[:, 1] - x)) > DECORAS_MATCH_PX:
            continue
        box = (xs.start, ys.start, xs.stop, ys.stop)
        _, z0, z1 = ms.emission_range(ms.box_spectrum(cube, box), 0, cube.nchan - 1)
        z0, z1 = min(z0, cube.nchan - 2), max(z1, min(z0, cube.nchan - 2) + 2)  # at least 2 channels
        line = ms.integrated_image(cube, z0, z1 - 1)
        w = np.clip(np.nan_to_num(line.image - line.background), 0, None) * blob
        if w.sum() <= 0:
            continue
        # the blob is the network's footprint, cut where it fades: its moments shrink the source
        # (sizes deconvolved to zero); fit the line image around it instead
        half = int(math.ceil(2 * max(line.beam_fwhm_px[0], 0.5 * max(xs.stop - xs.start, ys.stop - ys.start))))
        cov = ms.fit_covariance(line.image - line.background, x, y, line.beam_covariance, half)
        row = ms.catalog_row(cube, line, x, y, box, ms.deconvolve(cov, line.beam_covariance),
                             float(w.sum()) * line.flux_per_sum, 0.0, False, 2.0)
        # significance and position from the focused image over the line, as the pipeline's focusing
        focused, _, centre = focused_image(cube, (row["x0"], row["y0"], row["x1"], row["y1"]), row["z0"], row["z1"])
        row["snr"] = row["score"] = focused_snr(focused)
        if row["snr"] < level:
            continue
        row["x"], row["y"] = centroid(focused, centre)
        rows.append(row)
    rows.sort(key=lambda r: -r["snr"])
    catalog = make_catalog(rows, cube, "decoras")
    catalog.meta["significance"] = significance_note(cube, min_snr, level)
    return catalog
