"""The trained networks, found in a models folder (``<task>/model.pt``) and loaded once per
file per process: every cube and every session shares them (they only run, never learn)."""

from __future__ import annotations

import functools
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import onnx_runtime
from pipeline.cache import cache_dir
from pipeline.errors import InputError

MODELS_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"
PIPELINE_TASKS = ("blobs_finder", "deep_gru", "resnet_shape", "resnet_flux")
DECORAS_TASKS = ("decoras_bce", "decoras_msle")


@dataclass
class SourceFinder:
    """The trained networks of the pipeline, loaded once (from ``assets/models`` by default)."""

    blobs_finder: object  # torch modules; torch is imported only when networks are loaded or run
    deep_gru: object
    resnets: dict
    files: dict = field(default_factory=dict)  # task -> its model.pt, for the catalogue's provenance

    @classmethod
    def load(cls, folder=None) -> SourceFinder:
        """The networks in ``folder`` (None: the shipped ``assets/models``), loaded once per file."""
        folder = MODELS_DIR if folder is None else folder
        loaded = load_networks(folder, PIPELINE_TASKS)
        return cls(loaded["blobs_finder"], loaded["deep_gru"],
                   {t.removeprefix("resnet_"): loaded[t] for t in PIPELINE_TASKS if t.startswith("resnet_")},
                   model_files(folder, PIPELINE_TASKS))


def model_files(folder, tasks) -> dict[str, Path]:
    """{task: ``folder/<task>/model.pt``}; InputError naming the training command if one is missing."""
    folder = Path(folder)
    files = {}
    for task in tasks:
        path = folder / task / "model.pt"
        if not path.is_file():
            raise InputError(f"The {task} network is missing ({path}). Train it with "
                             f"`python -m pipeline train {task} --out {folder / task} --steps N`.")
        files[task] = path
    return files


def load_networks(folder, tasks) -> dict:
    """{task: model} from ``folder/<task>/model.pt``, each file loaded once per process (again
    only when it changes) and shared by every cube and session; the networks only run, never learn."""
    return {task: load_network_file(path) for task, path in model_files(folder, tasks).items()}


def load_network_file(path):
    """The network in the file ``path`` (a ``model.pt``), loaded once per process (again only when it
    changes): what a Dask worker runs."""
    stat = Path(path).resolve().stat()
    return _load_network(Path(path).resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _load_network(path: Path, size: int, mtime_ns: int):
    import torch

    from pipeline.alma import models

    # channels-last weights: the convolutions run about 30% faster on a CPU
    network = models.load_checkpoint(path)[0].to(memory_format=torch.channels_last)
    network.file_key = f"{path.parent.name}-{size}-{mtime_ns}"  # its exported copies are cached under it
    return network


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> {tile side: session}
_SESSIONS_LOCK = threading.Lock()


def tile_session(network, side: int):
    """``network`` (a tile network: (batch, 1, side, side) -> maps of the same shape) as an
    onnxruntime session, one per network and tile side per process (exported into the cache when
    the network came from a file, so once per file); each run takes one thread, and several
    threads run it at once (:mod:`pipeline.onnx_runtime`)."""
    import torch

    with _SESSIONS_LOCK:
        sessions = _SESSIONS.setdefault(network, {})
        if side not in sessions:
            example = torch.zeros(1, 1, side, side)
            key = getattr(network, "file_key", None)  # loaded from a file: exported once into the cache
            if key is None:
                sessions[side] = onnx_runtime.cpu_session(onnx_runtime.exported(network, example, "tiles", "maps"))
            else:
                path = cache_dir("onnx") / f"{key}-{side}px.onnx"
                sessions[side] = onnx_runtime.cached_session(path, lambda tmp: onnx_runtime.export(
                    network, example, tmp, "tiles", "maps"))
        return sessions[side]
