"""Real galaxies, no labels (:func:`hubble_deep_field_set`), one of the two galaxy sets the explorer
embeds (:mod:`pipeline.oneshot.galaxy_sets`): sources detected with photutils in the colour image
that scikit-image ships as ``skimage.data.hubble_deep_field`` (1000 x 872 px; it is the Hubble
eXtreme Deep Field, NASA's 2012 release, public domain), cut out as RGB PNGs centred on each
source. Made on this machine, deterministically; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from pipeline.oneshot.render import DEFAULT_SIZE
from pipeline.oneshot.set_folders import building, check_target, whole_number
from pipeline.progress import report

HDF_VERSION = 1  # bump when the detection or the cutouts change: default_sets rebuilds
HDF_MIN_AREA_PX = 30  # detected area (2 sigma): smaller ones are specks or noise
HDF_THRESHOLD_SIGMA = 2.0
HDF_MIN_SNR = 60.0  # segment flux / (rms sqrt(area)): fainter ones barely show in a cutout

HDF_README = """\
{n} cutouts ({size} x {size} px RGB PNG) of the sources detected in the Hubble Deep Field
colour image shipped with scikit-image (skimage.data.hubble_deep_field: the Hubble eXtreme Deep
Field, NASA 2012, public domain), made by pipeline.oneshot.hubble_deep_field (version {version}).
Real galaxies, no labels. x, y: centroid in px of the 1000 x 872 image, 0-based from its top-left;
area_px: detected area; flux: background-subtracted R + G + B over the source's segment.
"""


def hubble_deep_field_set(folder, size: int = DEFAULT_SIZE, progress=None) -> Path:
    """Cut the galaxies of the Hubble (eXtreme) Deep Field image shipped with scikit-image into a set
    in ``folder``; return the path of its ``catalog.csv``.

    Detection: :func:`detect_sources`. Kept: sources with a detected area >= ``HDF_MIN_AREA_PX``,
    signal-to-noise >= ``HDF_MIN_SNR`` and a whole ``size`` x ``size`` cutout inside the image.
    Images ``images/HDF0001.png`` ... (RGB, centred on the centroid rounded to a pixel);
    catalogue columns ``id``, ``file``, ``x``, ``y`` (centroid, px, 0-based from the image's
    top-left), ``area_px`` (detected area) and ``flux`` (background-subtracted sum of R + G + B
    over the segment, 0-255 units): real, unlabelled. ``progress(done, total, stage)`` is called as
    cutouts are written. Atomic like :func:`~pipeline.oneshot.survey.simulate_survey`."""
    from PIL import Image
    from skimage.data import hubble_deep_field

    size = whole_number(size, "size", 16, 256, "the cutout side in pixels")
    folder = Path(folder)
    check_target(folder)
    rgb = hubble_deep_field()
    x, y, area, flux, snr = detect_sources(rgb.astype(np.float32).sum(axis=2))
    ny, nx = rgb.shape[:2]
    half = size // 2
    xc, yc = (np.round(np.nan_to_num(c, nan=-1e9)).astype(int) for c in (x, y))  # NaN: dropped
    keep = ((area >= HDF_MIN_AREA_PX) & (snr >= HDF_MIN_SNR) & (xc - half >= 0) & (yc - half >= 0)
            & (xc - half + size <= nx) & (yc - half + size <= ny))
    order = np.flatnonzero(keep)
    order = order[np.lexsort((x[order], y[order]))]  # top to bottom, then left to right

    ids = [f"HDF{i:04d}" for i in range(1, len(order) + 1)]
    catalog = Table({"id": ids, "file": [f"images/{i}.png" for i in ids],
                     "x": np.round(x[order], 2), "y": np.round(y[order], 2),
                     "area_px": area[order].astype(int), "flux": np.round(flux[order], 1)})
    with building(folder) as build:
        (build / "images").mkdir()
        for k, row in enumerate(order):
            cutout = rgb[yc[row] - half: yc[row] - half + size, xc[row] - half: xc[row] - half + size]
            Image.fromarray(np.ascontiguousarray(cutout)).save(build / catalog["file"][k])
            if (k + 1) % 25 == 0 or k + 1 == len(order):
                report(progress, k + 1, len(order), "cutting the Hubble Deep Field")
        catalog.write(build / "catalog.csv", format="ascii.csv")
        (build / "README.txt").write_text(HDF_README.format(n=len(order), size=size, version=HDF_VERSION))
    return folder / "catalog.csv"


def detect_sources(light: np.ndarray):
    """Sources in an image ``light`` (:func:`segment`). Returns arrays ``(x, y, area, flux,
    snr)``: centroid (px, 0-based; NaN where undefined), detected area (px), background-subtracted
    segment flux and its signal-to-noise, flux / (rms sqrt(area))."""
    sources, _, background = segment(light)
    x, y = sources.centroid.T
    area = np.asarray(getattr(sources.area, "value", sources.area), float)
    flux = np.asarray(sources.segment_flux, float)
    snr = flux / (background.background_rms_median * np.sqrt(area))
    return x, y, area, flux, snr


def segment(light: np.ndarray):
    """photutils' sources of an image ``light``: a 50 px mesh background, a Gaussian filter (3 px
    FWHM), segments of >= 10 px above ``HDF_THRESHOLD_SIGMA``, deblended. Returns the
    ``SourceCatalog`` (of the background-subtracted image), the ``SegmentationImage`` and the
    ``Background2D``."""
    from astropy.convolution import convolve
    from photutils.background import Background2D, MedianBackground
    from photutils.segmentation import (
        SourceCatalog,
        SourceFinder,
        make_2dgaussian_kernel,
    )

    background = Background2D(light, (50, 50), filter_size=(3, 3), bkg_estimator=MedianBackground())
    data = light - background.background
    smoothed = convolve(data, make_2dgaussian_kernel(3.0, size=5))
    segments = SourceFinder(10, deblend=True, progress_bar=False)(
        smoothed, HDF_THRESHOLD_SIGMA * background.background_rms)
    return SourceCatalog(data, segments, convolved_data=smoothed), segments, background
