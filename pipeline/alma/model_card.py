"""The model card of a trained network: what it is, how it was trained (command, code, data,
time) and how it scores on the validation examples, written beside its ``model.pt``."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from pipeline.alma import examples as ex
from pipeline.alma.tasks import BLOB_CHANNELS, EMPTY_FRACTION
from pipeline.atomic import atomic_write


def code_version() -> str:
    """The project's git commit (and whether files differed from it), for the model card: the
    same command on the same code draws the same examples and gives the same weights."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "pipeline"],
                               cwd=root, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout (version unknown)"
    return f"git commit {commit}" + (" with uncommitted changes under pipeline/" if dirty else "")


def write_model_card(path, name, task, log, command):
    """The model card: what it is, how it was trained (command, data, time) and how it scores."""
    val = log["validation"][-1] if log["validation"] else {}
    r = ex.Ranges()
    image_task = name in ("blobs_finder", "decoras_bce", "decoras_msle")
    channels = f"{BLOB_CHANNELS[0]}-{BLOB_CHANNELS[1]}" if image_task else f"{r.channels[0]}-{r.channels[1]}"
    lines = [
        f"# {name}",
        "",
        f"Model: `{task.model_kind}` {json.dumps(task.config)} ({log['model']['parameters']:,} parameters). "
        f"{task.notes}.",
        f"Loss: {task.loss}. Adam, lr {log['lr']} ({task.schedule}), weight decay {task.weight_decay}, "
        f"batch {log['batch_size']}, seed {log['seed']}.",
        "",
        "## Training",
        f"- Command: `{command or 'python -m pipeline train ' + name}`",
        f"- Code: {log.get('code') or code_version()} (when the run started)",
        (f"- Steps: {log['train'][-1]['step'] if log['train'] else 0}, examples seen: "
         f"{(log['train'][-1]['step'] if log['train'] else 0) * log['batch_size']:,}, "
         f"wall time {log['seconds'] / 60:.1f} min "
         f"on {platform.machine()} with {torch.get_num_threads()} threads, torch {torch.__version__}, "
         f"date {time.strftime('%Y-%m-%d')}."),
        "- Data: drawn on the fly by `pipeline.alma.examples` (never repeated): "
        f"{', '.join(ex.TRAINING_CONFIGS)}; frequency {r.frequency_ghz[0]:g}-{r.frequency_ghz[1]:g} GHz; "
        f"declination {r.declination_deg[0]:g} to {r.declination_deg[1]:g} deg; "
        f"{r.observation_s[0]:g}-{r.observation_s[1]:g} s "
        f"on source (log-uniform); beam minor axis {r.pixels_per_beam[0]:g}-{r.pixels_per_beam[1]:g} px; {channels} "
        f"channels; 1 + {r.n_fainter[0]}-{r.n_fainter[1]} sources of "
        f"{r.size_per_beam[0]:g}-{r.size_per_beam[1]:g} beams, "
        f"peak SNR per channel {r.snr_central[0]:g}-{r.snr_central[1]:g} (central) and "
        f"{r.snr_fainter[0]:g}-{r.snr_fainter[1]:g}, "
        f"{r.shared_channels:.0%} of the fainter ones in the central one's channels; "
        f"line FWHM {r.line_fwhm_channels[0]:g}-{r.line_fwhm_channels[1]:g} channels; images {log['size']} px"
        + (f"; the sky shifted so the central source lands anywhere, {EMPTY_FRACTION:.0%} of examples without "
           "emission, rotations and flips." if image_task else "."),
        "",
        "## Validation (fixed examples, seeds disjoint from training)",
        f"- Loss on the training configurations: {val.get('training_configs', float('nan')):.4f}",
        f"- Loss on the held-out configuration ({', '.join(ex.HELD_OUT_CONFIGS)}): "
        f"{val.get('held_out_config', float('nan')):.4f}",
        (f"- First logged training loss {log['train'][0]['loss']:.4f}, last {log['train'][-1]['loss']:.4f}."
         if log["train"] else ""),
        "",
        "Detection scores on held-out cubes are in benchmarks/results (python benchmarks/detection.py).",
    ]
    with atomic_write(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
