"""Shared output of the benchmark scripts: a printed table and a JSON file."""

import json
import os
import platform
import tempfile
import time
from pathlib import Path


def report(name, rows, targets=None, out_dir=None):
    """Print ``rows`` (a list of dicts with the same keys) as a table and write them as JSON.

    The JSON lands in ``benchmarks/results/<name>.json`` (or ``out_dir``), written atomically,
    with the machine it ran on and the targets it is measured against.
    """
    keys = list(rows[0]) if rows else []
    cells = [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max([len(k)] + [len(c[i]) for c in cells]) for i, k in enumerate(keys)]
    print(f"\n{name}")
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
    out_dir = Path(out_dir or Path(__file__).parent / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "targets": targets or {},
        "rows": rows,
    }
    path = out_dir / f"{name}.json"
    with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False, suffix=".tmp") as tmp:
        json.dump(doc, tmp, indent=2)
    os.replace(tmp.name, path)
    print(f"-> {path}")
    return path


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
