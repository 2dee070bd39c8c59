"""What the network sees of each galaxy: the frame, and the symmetries a galaxy has that ImageNet's
photographs lack.

A galaxy seen upside down or mirrored is the same galaxy, and where it sits in the cutout and how
much of the cutout it fills depend on how the survey cut it, not on what it is. An ImageNet network
is neither rotation- nor scale-invariant, so two options remove those differences before and after
it (``CROPS``, ``INVARIANCES``):

- **crop** ``"galaxy"`` (default): the square centred on the central source's light-weighted
  centre, of half-side its radius enclosing 90% of its light (R90, from a segmentation of the
  cutout: :func:`galaxy_extent`), at least ``MIN_HALF_FRACTION`` of the cutout's side and
  ``MIN_HALF_PX`` pixels; parts beyond the cutout are filled by reflection (no constant frame for
  a feature to fire on). Every galaxy then fills its view alike, whatever the survey's pixel
  scale or the galaxy's distance.
  ``"frame"``: the whole cutout as it is.
- **invariance** ``"head"`` (default): the features of one view mapped by a linear head fitted on
  the set's own images (no labels) so that the eight rotations and flips of a galaxy, with small
  shifts and scale changes of its frame (:func:`augmented_views`), land on their mean (ridge
  regression, :mod:`pipeline.oneshot.head`). One network pass per galaxy, plus eight for each
  galaxy of the head's sample. ``"dihedral"``: features averaged over the eight rotations and
  flips (invariant but for the crop's rounding to whole pixels; eight passes per galaxy).
  ``"none"``: one view as it is.

Chosen by measurement on two real labelled sets (``benchmarks/oneshot_real.py``: DECaLS ring
galaxies and the Hubble Deep Field's sources) and checked on the simulated survey's AGN
(``benchmarks/oneshot.py``), where a crop down to the PSF's core (an 8 px floor) found fewer;
see the README.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputError

VIEWS_VERSION = 2  # bump when what a view is changes (a constant below): stores made before are rebuilt
CROPS = ("galaxy", "frame")
DEFAULT_CROP = "galaxy"
INVARIANCES = ("head", "dihedral", "none")
DEFAULT_INVARIANCE = "head"
R90_FRACTION = 0.9  # of the central source's light inside the radius that sets the crop
MIN_HALF_FRACTION = 1 / 8  # of the cutout's side: the crop's half-side never goes below it
# nor below this many pixels: a few PSF widths of a Nyquist-sampled survey, so that a compact or
# unresolved galaxy's view still holds its PSF wings and the sky around it (not the PSF's core
# blown up), and the network's 224 px are under 10 times the view's pixels
MIN_HALF_PX = 12
DETECT_SIGMA = 2.0  # segmentation threshold above the sky, in the smoothed image's noise
MAX_SEGMENTATION_PX = 128  # cutouts larger than this are block-averaged before segmentation
JITTER_SHIFT = 0.05  # augmented views: centre moved up to this fraction of the crop's half-side
JITTER_SCALE = 0.10  # and the half-side scaled by up to this fraction, either way


def check_options(crop: str, invariance: str) -> None:
    if crop not in CROPS:
        raise InputError(f"crop must be one of {', '.join(CROPS)}; got {crop!r}.")
    if invariance not in INVARIANCES:
        raise InputError(f"invariance must be one of {', '.join(INVARIANCES)}; got {invariance!r}.")


def describe(crop: str, invariance: str) -> str:
    """One sentence for a store's provenance and the UI."""
    what = {"galaxy": "each cutout cropped to its central galaxy (half-side R90 of its light, reflected beyond "
                      "the cutout)",
            "frame": "each cutout as a whole"}[crop]
    how = {"head": "features of one view mapped by a linear head fitted on the set's own rotated, flipped, "
                   "shifted and rescaled views (no labels)",
           "dihedral": "features averaged over the 8 rotations and flips",
           "none": "features of one view"}[invariance]
    return f"Views: {what}; {how}."


def galaxy_extent(rgb: np.ndarray) -> tuple[float, float, float]:
    """The central source of a cutout (H, W, 3): its light-weighted centre x, y and R90 (px).

    The luminance, averaged in square blocks to at most ``MAX_SEGMENTATION_PX`` a side (the
    blocks centred on the cutout; a strip narrower than a block at its edges is left out),
    smoothed by a Gaussian of one block; the sky is its median, the noise 1.4826 MAD; the source
    is the connected region above ``DETECT_SIGMA`` noise that holds the cutout's centre, or else
    the one whose centre is nearest, if within a quarter of the cutout's side. Nothing there: the
    cutout's centre and half its side."""
    from PIL import Image
    from scipy import ndimage

    h, w = rgb.shape[:2]
    fallback = ((w - 1) / 2, (h - 1) / 2, min(h, w) / 2)
    block = max(1, int(np.ceil(max(h, w) / MAX_SEGMENTATION_PX)))
    hb, wb = h // block, w // block
    if min(hb, wb) < 3:
        return fallback
    oy, ox = (h - hb * block) // 2, (w - wb * block) // 2
    picture = Image.fromarray(np.ascontiguousarray(rgb)).convert("L")  # luminance, in C: a tenth of numpy's time
    if block > 1:
        picture = picture.reduce(block, box=(ox, oy, ox + wb * block, oy + hb * block))
    light = np.asarray(picture, np.float32)

    def cutout_px(index, offset):  # a block's centre, in the cutout's pixels
        return offset + index * block + (block - 1) / 2

    smooth = ndimage.gaussian_filter(light, 1.0)
    sky = float(np.median(smooth))
    noise = 1.4826 * float(np.median(np.abs(smooth - sky))) or float(smooth.std()) or 1.0
    regions, count = ndimage.label(smooth > sky + DETECT_SIGMA * noise)
    if not count:
        return fallback
    cy, cx = ((h - 1) / 2 - oy - (block - 1) / 2) / block, ((w - 1) / 2 - ox - (block - 1) / 2) / block
    label = regions[int(np.floor(cy + 0.5)), int(np.floor(cx + 0.5))]
    flux = np.clip(light - sky, 0, None)
    if not label:
        centres = np.array(ndimage.center_of_mass(flux, regions, range(1, count + 1)))
        offsets = np.hypot(centres[:, 0] - cy, centres[:, 1] - cx)
        if not np.isfinite(offsets).any() or np.nanmin(offsets) * block > min(h, w) / 4:
            return fallback  # nothing near the centre: no galaxy of this cutout's to crop to
        label = 1 + int(np.nanargmin(offsets))
    ys, xs = np.nonzero(regions == label)
    weights = flux[ys, xs]
    if weights.sum() <= 0:
        return fallback
    y0, x0 = np.average(ys, weights=weights), np.average(xs, weights=weights)
    radii = np.hypot(ys - y0, xs - x0)
    order = np.argsort(radii)
    enclosed = np.cumsum(weights[order]) / weights.sum()
    r90 = float(radii[order][min(np.searchsorted(enclosed, R90_FRACTION), len(order) - 1)]) + 0.5
    return cutout_px(x0, ox), cutout_px(y0, oy), r90 * block


def crop_box(rgb: np.ndarray, crop: str) -> tuple[float, float, float]:
    """(x, y, half-side) in px of the view ``crop`` takes of a cutout."""
    h, w = rgb.shape[:2]
    if crop == "frame":
        return (w - 1) / 2, (h - 1) / 2, min(h, w) / 2
    x, y, r90 = galaxy_extent(rgb)
    return x, y, float(np.clip(r90, max(MIN_HALF_FRACTION * min(h, w), MIN_HALF_PX), min(h, w) / 2))


def cut(rgb: np.ndarray, x: float, y: float, half: float) -> np.ndarray:
    """The square of half-side ``half`` centred on (x, y), reflected beyond the cutout's edges."""
    if (x, y, half) == ((rgb.shape[1] - 1) / 2, (rgb.shape[0] - 1) / 2, min(rgb.shape[:2]) / 2):
        return rgb
    side = max(2, int(np.floor(2 * half + 0.5)))
    x0, y0 = int(np.floor(x - side / 2 + 1.0)), int(np.floor(y - side / 2 + 1.0))  # round half up, both ways
    h, w = rgb.shape[:2]
    ys = _reflect(np.arange(y0, y0 + side), h)
    xs = _reflect(np.arange(x0, x0 + side), w)
    return np.ascontiguousarray(rgb[ys[:, None], xs[None, :]])


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Indices folded back into 0..n-1 by reflection (numpy's "reflect" padding), for any overhang."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    folded = np.mod(index, period)
    return np.where(folded >= n, period - folded, folded)


def view(rgb: np.ndarray, crop: str) -> np.ndarray:
    """The view of one cutout the network is shown (see the module docstring)."""
    return cut(rgb, *crop_box(rgb, crop))


def turn(rgb: np.ndarray, k: int) -> np.ndarray:
    """Element ``k`` (0-7) of the dihedral group of the square: a rotation by ``k // 2`` quarter
    turns, mirrored left-right when ``k`` is odd; 0 is the image itself."""
    turned = np.rot90(rgb, k // 2)
    return np.ascontiguousarray(turned[:, ::-1] if k % 2 else turned)


def dihedral(rgb: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations by 90 degrees and their mirror images of an image (H, W, ...)."""
    return [turn(rgb, k) for k in range(8)]


def augmented_views(rgb: np.ndarray, crop: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Eight views of one galaxy that should look alike to a search: each rotation and flip of the
    crop, each crop's centre shifted by up to ``JITTER_SHIFT`` and its half-side scaled by up to
    ``JITTER_SCALE`` of the half-side (the unsteadiness of a segmentation and of a survey's
    cutting); the first is the view itself, unmoved."""
    x, y, half = crop_box(rgb, crop)
    out = [cut(rgb, x, y, half)]  # the view itself first
    for k in range(1, 8):
        dx, dy = rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, 2) * half
        out.append(turn(cut(rgb, x + dx, y + dy, half * (1 + rng.uniform(-JITTER_SCALE, JITTER_SCALE))), k))
    return out


def view_features(backbone, images, crop: str, invariance: str, size: int = 224, engine: str = "onnx",
                  progress=None, cancel=None) -> np.ndarray:
    """Network features (n, dim) of the views of RGB uint8 ``images`` that ``crop`` makes: of one
    view each, or averaged over the eight rotations and flips when ``invariance`` is "dihedral"
    (the head, if any, is applied later: :class:`pipeline.oneshot.head.InvarianceHead`).
    ``backbone`` from :func:`pipeline.oneshot.features.load_backbone`."""
    from pipeline.oneshot import features as feat

    check_options(crop, invariance)
    shown = [view(np.asarray(image), crop) for image in feat.as_image_list(images)]
    if invariance != "dihedral":
        return feat.extract(backbone, shown, size=size, engine=engine, progress=progress, cancel=cancel)
    turned = [t for v in shown for t in dihedral(v)]
    return feat.extract(backbone, turned, size=size, engine=engine, progress=progress,
                        cancel=cancel).reshape(len(shown), 8, -1).mean(axis=1)
