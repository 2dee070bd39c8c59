"""Stage 1 of the pipeline, where: integrated images (the whole band and narrower windows) through
the Blobs Finder (or DECORAS), tiled with overlap, merged into one source map, cut into boxes."""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.ndimage

from pipeline.alma import preprocess as pre
from pipeline.alma.cube import Cube
from pipeline.alma.networks import tile_session
from pipeline.atomic import atomic_write
from pipeline.progress import check_cancel
from pipeline.scheduling import run_tasks

BLOB_THRESHOLD = 0.15  # the paper's threshold on the Blobs Finder output
TILE_OVERLAP = 0.25  # of the tile side (64 px at 256)
# on validation cubes: strict precision 0.89 against 1.0 at 5, with recall at SNR >= 5 unchanged)
#: spectral search: besides the whole band, the Blobs Finder looks at windows of these widths
#: (channels, each overlapping the next by half) and the maps are merged by their maximum. The
#: paper integrates the whole band only, where a narrow line drowns in the other channels'
#: noise (a 3-channel line at peak SNR 5 in 128 channels integrates to SNR ~1.4); a window near
#: the line's width keeps most of its signal and little noise. ``windows=()`` is the paper's search.
SEARCH_WINDOWS = (32, 8)
#: tiles through the network at once, and threads running batches side by side (each run on one
#: thread): on 2 cores a 256 px tile takes 9.4 ms so, in batches of 1 to 8 (15 ms in torch with
#: both cores on each batch); batches of hundreds take gigabytes
TILE_BATCH = 2
TILE_THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
#: memory a detection may use by default (bytes): the cube is read and searched within it
DEFAULT_MEMORY = 2e9
STRIP_SHARE = 0.25  # of the memory, for the sums and map of a strip of rows


def tile_starts(length: int, side: int) -> list[int]:
    """Where the tiles of an axis of ``length`` pixels start: every ``side - TILE_OVERLAP * side``
    pixels, the last flush with the end (one tile, padded, when the axis is shorter)."""
    stride = side - int(side * TILE_OVERLAP)
    return sorted({*range(0, length - side, stride), max(0, length - side)})


def tile_input(image: np.ndarray, side: int) -> np.ndarray | None:
    """One tile as the networks take it: NaN filled with the tile's median, padded to ``side`` x
    ``side`` with it when the image is smaller, min-max scaled as in training; None when the
    tile holds no data."""
    finite = np.isfinite(image)
    if not finite.any():
        return None
    pad_y, pad_x = side - image.shape[0], side - image.shape[1]
    if not (pad_y or pad_x) and finite.all():
        return pre.minmax(image)
    fill = float(np.median(image[finite]))
    return pre.minmax(np.pad(np.where(finite, image, fill), ((0, pad_y), (0, pad_x)), constant_values=fill))


class _Tiles:
    """The network's output over images cut into tiles, merged by the maximum where tiles overlap.
    ``add(image)`` cuts an image's tiles and sends them ``batch`` at a time, row of tiles by row
    (so each tile meets the same batch-mates whatever rows are searched together), to
    ``threads`` threads running the network (:func:`~pipeline.alma.networks.tile_session`);
    ``finish()`` waits for them and returns the map. ``cancel`` is checked before each batch is
    sent. Used as a context manager, so that an error or a cancel leaves no batch running. The
    map is merged into ``out`` (the rows' part of a larger map) when given, as batches finish."""

    def __init__(self, network, shape, side, rows=None, batch=TILE_BATCH, cancel=None, threads=TILE_THREADS,
                 out=None):
        self.session = tile_session(network, side)
        self.side, self.batch, self.cancel = side, batch, cancel
        ny, nx = shape
        y0, y1 = rows or (0, ny)
        #: tiles inside the rows (y relative to y0); where the image is narrower than a tile, one padded tile
        self.starts = [(y - y0, x) for y in tile_starts(ny, side) if y0 <= y and min(y + side, ny) <= y1
                       for x in tile_starts(nx, side)]
        self.merged = np.zeros((y1 - y0, nx), np.float32) if out is None else out
        self._queue, self._running = [], collections.deque()
        self._pool, self._most = ThreadPoolExecutor(threads), 2 * threads

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, image):
        for k, (y, x) in enumerate(self.starts):
            tile = tile_input(image[y:y + self.side, x:x + self.side], self.side)
            if tile is not None:
                self._queue.append(((y, x), tile))
            if len(self._queue) == self.batch or k + 1 == len(self.starts) or self.starts[k + 1][0] != y:
                self._send()

    def finish(self) -> np.ndarray:
        self._send()
        while self._running:
            self._merge_oldest()
        return self.merged

    def _send(self):
        if not self._queue:
            return
        check_cancel(self.cancel, "detection")  # a batch takes a few hundredths of a second
        places, batch = [at for at, _ in self._queue], np.stack([tile for _, tile in self._queue])[:, None]
        self._queue = []
        self._running.append((places, self._pool.submit(self._run, batch)))
        while len(self._running) > self._most:  # memory: a few batches in flight
            self._merge_oldest()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"tiles": batch})[0][:, 0]

    def _merge_oldest(self):
        places, running = self._running.popleft()
        for (y, x), tile in zip(places, running.result(), strict=True):
            view = self.merged[y:y + self.side, x:x + self.side]
            np.maximum(view, tile[:view.shape[0], :view.shape[1]], out=view)


def source_map(image: np.ndarray, network, side: int | None = None) -> np.ndarray:
    """Blobs Finder (or DECORAS) output (ny, nx) in [0, 1] for an integrated image of any size
    (or a stack of them, (n, ny, nx) -> (n, ny, nx)).

    Each 256 x 256 tile (:func:`tile_starts`; :func:`tile_input`) goes through the network;
    overlapping outputs are merged by their maximum.
    """
    stack = np.asarray(image, np.float32)
    maps = []
    for im in stack[None] if stack.ndim == 2 else stack:
        with _Tiles(network, im.shape, side or network.image_size) as tiles:
            tiles.add(im)
            maps.append(tiles.finish())
    return maps[0] if stack.ndim == 2 else np.stack(maps)


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


def strips(cube: Cube, side: int, windows=SEARCH_WINDOWS, memory: float = DEFAULT_MEMORY) -> list[tuple[int, int]]:
    """Rows ``(y0, y1)`` searched together: whole rows of tiles, as many as ``STRIP_SHARE`` of the
    ``memory`` (bytes) allows, each read once through all channels. A sum per open window (two
    per width and the whole band, float64 with its mask) and the strip's map are held per strip;
    besides them a read of the cube (``READ_PIXELS``), the network's batch and the libraries."""
    starts = tile_starts(cube.ny, side)
    per_row = cube.nx * (9 * (2 * len(windows) + 1) + 4 + 4)  # bytes per image row held
    rows = max(side, int(memory * STRIP_SHARE) // per_row)
    out, first = [], 0
    for i, y in enumerate(starts):
        last = i + 1 == len(starts)
        end = min(y + side, cube.ny)
        if last or starts[i + 1] + side - starts[first] > rows:
            out.append((starts[first], end))
            first = i + 1
    return out


def strip_map(cube: Cube, network, ranges, rows: tuple[int, int], side: int, step=None, cancel=None,
              out=None) -> np.ndarray:
    """The network's map of the rows ``rows`` (a strip of :func:`strips`) over the integrated
    images of the channel ranges ``ranges``, the strip read once (:meth:`Cube.integrate`); a
    window's image is cut into tiles as soon as its last channel is read. ``step(i, done)`` is
    called as window ``ranges[i]`` is read, the ``done``-th (progress); ``cancel`` is checked
    before every batch of tiles. Merged by the maximum into ``out`` (the rows of a map) when
    given, as the tiles come out."""
    with _Tiles(network, (cube.ny, cube.nx), side, rows, cancel=cancel, out=out) as tiles:
        for done, (i, image) in enumerate(cube.integrate(ranges, rows), start=1):
            if step is not None:
                step(i, done)
            if np.isfinite(image).any():
                tiles.add(image)
        return tiles.finish()


def _strip_task(cube_path: str, network_file: str, ranges, rows, side) -> np.ndarray:
    """:func:`strip_map` where the cube and network are opened from their files: a Dask task."""
    from pipeline.alma.cube import open_cube
    from pipeline.alma.networks import load_network_file

    with open_cube(cube_path) as cube:
        return strip_map(cube, load_network_file(network_file), ranges, rows, side)


def _report_window(step, ranges, where: str, on_map, merged, i: int, done: int) -> None:
    first, last = ranges[i]
    if step is not None:
        step(f"{where}{'whole band' if i == 0 else f'channels {first}-{last}'} ({done}/{len(ranges)})")
    if on_map is not None:
        on_map(merged)


def spectral_source_map(cube: Cube, network, windows=SEARCH_WINDOWS, side=None, step=None,
                        memory: float = DEFAULT_MEMORY, scheduler: str = "synchronous",
                        network_file=None, cancel=None, on_map=None, parts=None) -> np.ndarray:
    """:func:`source_map` of the integrated image over each of :func:`search_windows`, merged by
    the maximum, in bounded memory: strip by strip of rows (:func:`strips`, :func:`strip_map`),
    in this process, or (``scheduler``: ``"local"`` or a scheduler's address, with the
    ``network_file`` the network was loaded from) a strip per row of tiles as Dask tasks, each
    within ``memory`` too. The map is the same either way. ``step(stage)`` is called as each
    window is read, or on Dask as each strip comes back (progress and cancel); in this process
    ``cancel`` also stops between batches of tiles (within a second). ``on_map(merged)`` is called
    after it with the map so far (the tiles finished; read it there, it changes after). With
    ``parts`` (a folder), each strip's map is saved there atomically as it is done
    (:func:`saved_strips`) and a rerun loads it instead of searching the strip again."""
    side = side or network.image_size
    ranges = search_windows(cube.nchan, windows)
    merged = np.zeros((cube.ny, cube.nx), np.float32)
    saved = saved_strips(parts, cube, network, side, ranges)
    if scheduler == "synchronous":
        bands = strips(cube, side, windows, memory)
        for y0, y1 in bands:
            where = f"rows {y0}-{y1 - 1}, " if len(bands) > 1 else ""
            report = functools.partial(_report_window, step, ranges, where, on_map, merged)
            if _load_strip(saved, (y0, y1), merged):
                for i in range(len(ranges)):
                    report(i, i + 1)
                continue
            strip_map(cube, network, ranges, (y0, y1), side, report, cancel, out=merged[y0:y1])
            _save_strip(saved, (y0, y1), merged)
        return merged
    if network_file is None:
        raise ValueError("searching on Dask needs the network's file (network_file), which the workers load")
    # a row of tiles each, but those saved by an earlier run
    bands = [rows for rows in strips(cube, side, windows, 0) if not _load_strip(saved, rows, merged)]
    jobs = {rows: (str(cube.path), str(network_file), ranges, rows, side) for rows in bands}
    for done, ((y0, y1), part) in enumerate(run_tasks(_strip_task, jobs, scheduler, cancel, "detection"), start=1):
        np.maximum(merged[y0:y1], part, out=merged[y0:y1])
        _save_strip(saved, (y0, y1), merged)
        if step is not None:
            step(f"rows {y0}-{y1 - 1} ({done}/{len(bands)})")
        if on_map is not None:
            on_map(merged)
    return merged


def saved_strips(parts, cube: Cube, network, side: int, ranges):
    """Where the maps of the strips of this search are saved in the folder ``parts``: a function of
    the rows, under a name that changes with the cube's file (path, size, times), the network's
    file, the tile side and the windows; None without ``parts``, or for a network not loaded from
    a file or a view of a cube (negated, with sources injected), whose maps are never saved."""
    key = getattr(network, "file_key", None)
    if parts is None or key is None or not isinstance(cube.data, np.ndarray):
        return None
    st = Path(cube.path).stat()
    text = json.dumps([str(Path(cube.path).resolve()), st.st_size, st.st_mtime_ns, key, side, ranges])
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    return lambda rows: Path(parts) / f"{Path(cube.path).name}-map-{digest}-rows{rows[0]}-{rows[1]}.npy"


def _load_strip(saved, rows, merged) -> bool:
    """Merge a saved strip's map into ``merged``; False when there is none (or it does not fit)."""
    path = saved(rows) if saved else None
    if path is None or not path.is_file():
        return False
    try:
        part = np.load(path, allow_pickle=False)  # numbers only: nothing in the file can run
    except (OSError, ValueError):
        return False
    y0, y1 = rows
    if part.shape != merged[y0:y1].shape:
        return False
    np.maximum(merged[y0:y1], part, out=merged[y0:y1])
    return True


def _save_strip(saved, rows, merged) -> None:
    if saved:
        with atomic_write(saved(rows)) as tmp, open(tmp, "wb") as out:
            np.save(out, merged[rows[0]:rows[1]])


def steps_per_map(cube: Cube, side: int, windows=SEARCH_WINDOWS, memory: float = DEFAULT_MEMORY,
                  scheduler: str = "synchronous") -> int:
    """How many times :func:`spectral_source_map` calls ``step``."""
    if scheduler != "synchronous":
        return len(strips(cube, side, windows, 0))
    return len(search_windows(cube.nchan, windows)) * len(strips(cube, side, windows, memory))


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
