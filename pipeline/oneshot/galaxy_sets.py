"""The galaxy sets there are to search: feature stores found in folders, and the two sets embedded
in the project, built on first use into the cache.

- :func:`find_stores`: the feature stores (folders holding ``store.json``) in some folders,
  themselves or one level down.
- :func:`default_sets`: the embedded sets, ``SIMULATED_SET_NAME`` (:mod:`pipeline.oneshot.survey`)
  and ``HDF_SET_NAME`` (:mod:`pipeline.oneshot.hubble_deep_field`), built once and reused.
- :func:`open_embedded`: an embedded set's feature store, built (images and features) the first
  time.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pipeline.cache import cache_dir
from pipeline.oneshot import survey
from pipeline.oneshot.backbones import DEFAULT_BACKBONE
from pipeline.oneshot.galaxies import GalaxySet
from pipeline.oneshot.hubble_deep_field import HDF_VERSION, hubble_deep_field_set
from pipeline.oneshot.render import DEFAULT_SIZE
from pipeline.oneshot.store import FeatureStore, cached_store
from pipeline.progress import report

SIMULATED_SET_NAME = "simulated SDSS-like survey"
HDF_SET_NAME = "Hubble Deep Field (real)"
EMBEDDED_SETS = (SIMULATED_SET_NAME, HDF_SET_NAME)
_BUILD_LOCK = threading.Lock()  # one build of a default set at a time in this process


def find_stores(roots) -> dict[str, Path]:
    """{``"<folder name> (index)"``: folder} of the feature stores in ``roots``: each root and its
    subfolders (one level down) that hold ``store.json``. Hidden folders (builds under way, old
    stores being removed) and links leading out of their root are passed over."""
    found = {}
    for root in roots:
        root = Path(root)
        subfolders = [p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")
                      and p.resolve().is_relative_to(root.resolve())]
        for folder in [root, *sorted(subfolders)]:
            if (folder / "store.json").is_file():
                found[f"{folder.name} (index)"] = folder
    return found


def available_sets(roots) -> dict[str, Path | None]:
    """{name: store folder} of the stores in ``roots`` (:func:`find_stores`), then the embedded
    sets (None: built in the cache on first use, :func:`open_embedded`)."""
    return {**find_stores(roots), **dict.fromkeys(EMBEDDED_SETS)}


def default_sets(progress=None) -> dict[str, Path]:
    """The two sets the explorer embeds, {name: catalogue path}: ``SIMULATED_SET_NAME``
    (``survey.DEFAULT_N`` galaxies, seed 0) and ``HDF_SET_NAME``. Each is built once into
    ``pipeline.cache.cache_dir("galaxy-sets", ...)`` (about 20 s and 90 MB for the survey, a few
    seconds for the Hubble Deep Field) and reused afterwards; a version bump rebuilds.
    ``progress(done, total, stage)`` (:mod:`pipeline.progress`) is passed to whichever build runs."""
    with _BUILD_LOCK:
        simulated = cache_dir("galaxy-sets", f"simulated-sdss-v{survey.SURVEY_VERSION}")
        if not (simulated / "catalog.csv").is_file():
            survey.simulate_survey(simulated, n=survey.DEFAULT_N, seed=0, size=DEFAULT_SIZE, progress=progress)
        hdf = cache_dir("galaxy-sets", f"hubble-deep-field-v{HDF_VERSION}")
        if not (hdf / "catalog.csv").is_file():
            hubble_deep_field_set(hdf, size=DEFAULT_SIZE, progress=progress)
    return {SIMULATED_SET_NAME: simulated / "catalog.csv", HDF_SET_NAME: hdf / "catalog.csv"}


def open_embedded(name: str, backbone: str = DEFAULT_BACKBONE, progress=None, cancel=None) -> FeatureStore:
    """The feature store of the embedded set ``name`` (one of ``EMBEDDED_SETS``) described by
    ``backbone``, building the sets' images (:func:`default_sets`) and this set's features
    (:func:`~pipeline.oneshot.store.cached_store`) the first time. ``progress(done, total, stage)``
    (:mod:`pipeline.progress`) says which; setting ``cancel`` (a ``threading.Event``) stops the
    features' build."""
    report(progress, 0, 1, f"preparing the {name} (first time only)")
    catalog = default_sets(progress=lambda done, total, _: report(progress, done, total, f"rendering the {name}"))[name]
    return cached_store(GalaxySet.open(catalog, name=name), backbone=backbone, cancel=cancel,
                        progress=lambda d, t, stage: report(progress, d, t, f"{stage} (first time only): "
                                                            f"{d:,}/{t:,} galaxies"))
