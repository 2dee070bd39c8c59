"""The feature network in 8-bit integers: engine ``"onnx-int8"`` of
:func:`pipeline.oneshot.features.extract`.

onnxruntime's static quantisation (weights int8 per output channel in 7 bits, activations uint8,
QDQ format) of the exported float network, its activations' ranges calibrated (the ``CALIBRATION_PERCENTILE`` of
each, not its extremes) on ``CALIBRATION_GALAXIES`` galaxies drawn and rendered by the project's own
survey simulator (:mod:`pipeline.oneshot.survey`), seen as the network sees a set's (the galaxy
crop, :func:`pipeline.oneshot.views.view`). No real set is used, so the result is the same for every
user; it is written once per backbone into ``pipeline.cache.cache_dir("onnx")``, at 224 px only
(``SIZE_PX``: at 64 px the quantised features were unrelated to the float ones).

About twice as fast as the float network on a CPU with 8-bit dot products (VNNI), but the
features move: see ``benchmarks/oneshot_real.py`` for how far on real sets before choosing it.

The weights use 7 of their 8 bits (onnxruntime's ``reduce_range``): on a CPU without VNNI (AVX2 or
AVX-512 alone) the uint8 x int8 products are summed in pairs into 16 bits (VPMADDUBSW), which
saturates with full-range weights. With 8-bit weights an AVX2 machine gave features at cosine
0.72-0.82 from the float ones where a VNNI machine gave above 0.9; the network must be the same on
every machine, so it gives up a bit everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import io
import tempfile
from pathlib import Path

import numpy as np

from pipeline.errors import InputError

SIZE_PX = 224  # the only input size it is made at
CALIBRATION_GALAXIES = 64
CALIBRATION_SEED = 2022
CALIBRATION_PERCENTILE = 99.999
CALIBRATION_VERSION = 2  # bump when the quantisation changes: the cached network is made again (2: 7-bit weights)


def int8_path(backbone, size: int) -> Path:
    """Where the 8-bit network of (backbone, size) is cached."""
    from pipeline.oneshot import features as feat

    fp32 = feat.onnx_path(backbone, size)
    return fp32.with_name(f"{fp32.stem}-int8-c{CALIBRATION_VERSION}.onnx")


def calibration_inputs(backbone, size: int) -> np.ndarray:
    """The network inputs (n, 3, size, size) the ranges are calibrated on: simulated galaxies."""
    from pipeline.oneshot import features as feat
    from pipeline.oneshot import views
    from pipeline.oneshot.galaxies import to_rgb
    from pipeline.oneshot.population import draw_galaxies
    from pipeline.oneshot.render import render_galaxies
    from pipeline.oneshot.survey import assign_labels

    rng = np.random.default_rng(CALIBRATION_SEED)
    galaxies = assign_labels(draw_galaxies(CALIBRATION_GALAXIES, rng), rng)
    shown = [views.view(to_rgb(bands), views.DEFAULT_CROP) for bands in render_galaxies(galaxies)]
    return feat.preprocess(shown, size, backbone).numpy()


def quantise(backbone, size: int, target) -> Path:
    """Write the 8-bit network of (backbone, size) to ``target`` (see the module docstring), from
    the float network's cached export (which must exist: :func:`int8_session` makes it first)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pipeline.oneshot import features as feat

    inputs = calibration_inputs(backbone, size)

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(inputs[i:i + 8] for i in range(0, len(inputs), 8))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):  # its own chatter
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(feat.onnx_path(backbone, size)), str(prepared))
        quantize_static(str(prepared), str(target), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile,
                        extra_options={"CalibPercentile": CALIBRATION_PERCENTILE})
    return Path(target)


def int8_session(backbone, size: int, threads: int):
    """An onnxruntime session on the 8-bit network of (backbone, size), made first if missing;
    InputError at any size but ``SIZE_PX``."""
    if size != SIZE_PX:
        raise InputError(f"The 8-bit network is made and measured at {SIZE_PX} px only (at 64 px its features "
                         f"are unrelated to the float network's); got {size} px. Use --size {SIZE_PX} or the "
                         "onnx engine.")
    return _session(backbone, size, threads)


@functools.lru_cache(maxsize=4)
def _session(backbone, size: int, threads: int):
    from pipeline import onnx_runtime
    from pipeline.oneshot import features as feat

    feat.onnx_session(backbone, size)  # the float network it is made from, exported first (one export at a time)
    return onnx_runtime.cached_session(int8_path(backbone, size), lambda tmp: quantise(backbone, size, tmp), threads)
