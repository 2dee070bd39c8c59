"""Stage 1 of the pipeline, where: integrated images (the whole band and narrower windows) through
the Blobs Finder (or DECORAS), tiled with overlap, merged into one source map, cut into boxes."""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from pipeline.alma import preprocess as pre
from pipeline.alma.cube import Cube

BLOB_THRESHOLD = 0.15  # the paper's threshold on the Blobs Finder output
TILE_OVERLAP = 0.25  # of the tile side (64 px at 256)
# on validation cubes: strict precision 0.89 against 1.0 at 5, with recall at SNR >= 5 unchanged)
#: spectral search: besides the whole band, the Blobs Finder looks at windows of these widths
#: (channels, each overlapping the next by half) and the maps are merged by their maximum. The
#: paper integrates the whole band only, where a narrow line drowns in the other channels'
#: noise (a 3-channel line at peak SNR 5 in 128 channels integrates to SNR ~1.4); a window near
#: the line's width keeps most of its signal and little noise. ``windows=()`` is the paper's search.
SEARCH_WINDOWS = (32, 8)


def source_map(image: np.ndarray, blobs_finder, side: int | None = None) -> np.ndarray:
    """Blobs Finder (or DECORAS) output (ny, nx) in [0, 1] for an integrated image of any size
    (or a stack of them, (n, ny, nx) -> (n, ny, nx), run as one batch).

    Each 256 x 256 tile (overlapping by ``TILE_OVERLAP`` of its side, the last ones flush with the edges;
    padded with the image median when the image is smaller) is min-max scaled as in training;
    overlapping outputs are merged by their maximum.
    """
    import torch

    side = side or blobs_finder.image_size
    stack = np.asarray(image, np.float32)
    single = stack.ndim == 2
    stack = stack[None] if single else stack
    n, ny, nx = stack.shape
    pad_y, pad_x = max(0, side - ny), max(0, side - nx)
    filled = []
    for im in stack:
        fill = float(np.nanmedian(im)) if np.isfinite(im).any() else 0.0
        filled.append(np.pad(np.nan_to_num(im, nan=fill), ((0, pad_y), (0, pad_x)), constant_values=fill))
    stack = np.stack(filled)
    H, W = stack.shape[1:]
    stride = side - int(side * TILE_OVERLAP)

    def starts(length):
        return sorted({*range(0, length - side, stride), length - side})

    tiles = [(y, x) for y in starts(H) for x in starts(W)]
    batch = np.stack([pre.minmax(im[y:y + side, x:x + side]) for im in stack for y, x in tiles])[:, None]
    with torch.no_grad():
        out = blobs_finder(torch.from_numpy(batch)).numpy()[:, 0].reshape(n, len(tiles), side, side)
    merged = np.zeros((n, H, W), np.float32)
    for k, (y, x) in enumerate(tiles):
        np.maximum(merged[:, y:y + side, x:x + side], out[:, k], out=merged[:, y:y + side, x:x + side])
    merged = merged[:, :ny, :nx]
    return merged[0] if single else merged


def search_windows(nchan: int, widths=SEARCH_WINDOWS) -> list[tuple[int, int]]:
    """Channel ranges (first, last) inclusive to integrate: the whole band, then for each width
    narrower than the band, windows of that width stepping by half of it (the last flush with
    the band's end)."""
    ranges = [(0, nchan - 1)]
    for width in sorted({int(w) for w in widths}, reverse=True):
        if not 2 <= width < nchan:
            continue
        step = max(1, width // 2)
        starts = sorted({*range(0, nchan - width, step), nchan - width})
        ranges.extend((z, z + width - 1) for z in starts)
    return ranges


def spectral_source_map(cube: Cube, network, windows=SEARCH_WINDOWS, side=None, step=None,
                        batch: int = 8) -> np.ndarray:
    """:func:`source_map` of the integrated image over each of :func:`search_windows`, merged by
    the maximum; ``batch`` window images go through the network at once. ``step(stage)`` is
    called before each window (progress and cancel)."""
    ranges = search_windows(cube.nchan, windows)
    merged = np.zeros((cube.ny, cube.nx), np.float32)
    images = []
    for i, (first, last) in enumerate(ranges, start=1):
        if step is not None:
            step(f"{'whole band' if i == 1 else f'channels {first}-{last}'} ({i}/{len(ranges)})")
        image, _ = cube.moment0(first, last)
        if np.isfinite(image).any():
            images.append(image)
        if images and (len(images) == batch or i == len(ranges)):
            np.maximum(merged, source_map(np.stack(images), network, side).max(axis=0), out=merged)
            images = []
    return merged


def boxes_from_map(source_map: np.ndarray, threshold: float = BLOB_THRESHOLD) -> list[tuple[int, int, int, int, float]]:
    """The paper's boxes: threshold, 3x3 binary dilation, connected regions. Returns
    (x0, y0, x1, y1, score) per region (inclusive-exclusive), score = the map's maximum in it."""
    mask = scipy.ndimage.binary_dilation(source_map > threshold, structure=np.ones((3, 3), bool))
    labels, n = scipy.ndimage.label(mask)
    boxes = []
    for i, found in enumerate(scipy.ndimage.find_objects(labels), start=1):
        ys, xs = found
        score = float(source_map[ys, xs][labels[ys, xs] == i].max())
        boxes.append((xs.start, ys.start, xs.stop, ys.stop, score))
    return boxes
