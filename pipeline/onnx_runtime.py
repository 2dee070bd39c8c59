"""Torch networks run by onnxruntime on the CPU: exported once, run by sessions that leave the
cores alone when idle. Shared by the one-shot features and the ALMA tile networks.

A session's ``run`` releases the GIL, so several Python threads can run one session at once: on 2
cores two single-threaded runs of the Blobs Finder take 9.4 ms a tile against 15 ms in torch with
its two threads (measured on 256 px tiles, batches of 1-8).
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

from pipeline.atomic import atomic_write

_EXPORT_LOCK = threading.Lock()


def export(network, example, target, input_name: str, output_name: str) -> None:
    """Write ``network`` (a torch module, run on ``example``, a tensor whose first axis is the
    batch) as ONNX to ``target`` (a path or a binary file), the batch axis dynamic."""
    import torch

    with warnings.catch_warnings():
        # the TorchScript exporter (dynamo=False) needs nothing beyond torch; the dynamo one needs onnxscript
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(network.eval(), (example,), target if isinstance(target, io.IOBase) else str(target),
                              dynamo=False, opset_version=17, input_names=[input_name], output_names=[output_name],
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})


def exported(network, example, input_name: str, output_name: str) -> bytes:
    """:func:`export` into memory: the ONNX model's bytes."""
    buffer = io.BytesIO()
    export(network, example, buffer, input_name, output_name)
    return buffer.getvalue()


def cpu_session(model: bytes | str | Path, threads: int = 1):
    """An onnxruntime session (CPU) on ``model`` (a file or its bytes), each run on ``threads``
    threads. Idle threads sleep instead of spinning: on a shared machine (other sessions, a
    benchmark) spinning threads fight for the cores (measured 2.3x faster at 64 px with 2 threads,
    the same when idle)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                        providers=["CPUExecutionProvider"])


def cached_session(path: Path, write, threads: int = 1):
    """:func:`cpu_session` on the model file ``path``, written first by ``write(tmp)`` (atomically)
    when it is missing or unreadable (another version of a library wrote it?)."""
    with _EXPORT_LOCK:
        try:
            if path.is_file():
                return cpu_session(path, threads)
        except Exception:  # noqa: BLE001 -- unreadable: written again below
            pass
        with atomic_write(path) as tmp:
            write(tmp)
    return cpu_session(path, threads)
