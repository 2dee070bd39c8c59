"""The explorer's long work as it runs in a worker process (:mod:`explorer.background`): top-level
functions of plain arguments (paths, names, numbers, tables), so they pickle, each called as
``work(progress, cancel, share)`` once bound with ``functools.partial``: source finding, the
embedding of a cube's candidates for "find similar", the one-shot tab's recursive search and
map, and a lesson's simulated observation. They import only :mod:`pipeline`, which the worker
server has imported already."""

from __future__ import annotations

from pipeline.alma import completeness as completeness_check
from pipeline.alma import detect as finder_module
from pipeline.alma import reliability as reliability_check
from pipeline.alma import stages
from pipeline.alma.companions import companion_candidates, open_companion
from pipeline.alma.cube import open_cube
from pipeline.alma.simulate import simulate_set
from pipeline.oneshot import search
from pipeline.oneshot.feature_map import layout
from pipeline.oneshot.store import FeatureStore
from pipeline.vetting import similar


def find_sources(cube_path, detector: str, companions: dict, models, reliability: bool, completeness: bool,
                 progress, cancel, share):
    """``detector``'s catalogue of the cube at ``cube_path`` with its probable sidelobes kept and
    flagged, and the quality tables asked for ({"reliability": ..., "completeness": ...}).
    ``companions``: {"pb" | "psf": path} of the attached companion cubes; ``share`` gets the
    pipeline's candidate boxes so far."""
    cube = open_cube(cube_path)
    opened = {kind: open_companion(path, cube, kind) for kind, path in companions.items()}
    try:
        options = dict(opened, keep_sidelobes=True, models=models)

        def stages(what):
            return lambda done, total, stage: progress(done, total, f"{detector}{what}: {stage}")

        catalog = finder_module.detect(cube, detector, cancel=cancel, progress=stages(""), preview=share, **options)
        tables = {}
        if reliability:
            negatives = reliability_check.negative_detections(cube, detector, cancel=cancel,
                                                              progress=stages(", negated cube"), **options)
            catalog, tables["reliability"] = reliability_check.with_reliability(catalog, negatives)
        if completeness:
            tables["completeness"] = completeness_check.completeness(
                cube, catalog, detector, cancel=cancel, progress=stages(", injected sources"), **options)
        return catalog, tables
    finally:
        for companion in opened.values():
            companion.close()
        cube.close()


def observe_and_find(folder, seed, size: int, channels: int, observation, sky, detectors, progress, cancel, share):
    """Simulate one cube (:func:`pipeline.alma.simulate.simulate_set`: ``observation``, ``sky``
    parameters, ``seed``) into ``folder`` with its sky model, PSF cube and truth, and find its
    sources with each of ``detectors``, the PSF attached and probable sidelobes kept and flagged:
    (the cube's path, {detector: catalogue})."""
    progress(0, 1 + len(detectors), "simulating the observation")
    path, = simulate_set(folder, 1, seed, size, channels, observation=observation, parameters=sky, write_psfs=True)
    found = {}
    with open_cube(path) as cube, open_companion(companion_candidates(path, "psf")[0], cube, "psf") as psf:
        for i, detector in enumerate(detectors, start=1):
            progress(i, 1 + len(detectors), f"finding sources: {detector}")
            found[detector] = finder_module.detect(cube, detector, cancel=cancel, psf=psf, keep_sidelobes=True)
    return path, found


def pipeline_stages(cube_path, threshold: float, min_snr: float, source_map, progress, cancel, share):
    """The pipeline's stages on the cube at ``cube_path`` (:func:`pipeline.alma.stages.stages`)."""
    with open_cube(cube_path) as cube:
        return stages.stages(cube, min_snr=min_snr, threshold=threshold, source_map=source_map, progress=progress,
                             cancel=cancel)


def recursive_search(store, query, n: int, iterations: int, label, positive, progress, cancel, share):
    """ULISSE's recursive search from ``query`` (a galaxy id or a feature vector) in ``store`` (a
    :class:`FeatureStore`, or the folder of one: opened here), and each iteration's count of
    ``label == positive`` (none without a label): (result, statistics)."""
    store = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    result = search.recursive(store, query, n, iterations, cancel=cancel, progress=progress)
    stats = (search.iteration_statistics(store, result, label, positive, prototype=query)
             if label is not None else [])
    return result, stats


def embed_candidates(cube_path, candidates, progress, cancel, share):
    """The embeddings of ``candidates`` (a catalogue of the cube at ``cube_path``) for finding
    similar candidates (:func:`pipeline.vetting.similar.embed_candidates`)."""
    with open_cube(cube_path) as cube:
        return similar.embed_candidates(cube, candidates, progress=progress, cancel=cancel)


def feature_map(store, progress, cancel, share):
    """The 2-D map of ``store`` (a :class:`FeatureStore`, or its folder: opened here): positions
    (n, 2), from the cache when made before (:func:`pipeline.oneshot.feature_map.layout`)."""
    store = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    return layout(store, progress=progress, cancel=cancel)
