"""Where a table came from: the tool, its version, the inputs and the model files, recorded in
the table's metadata (``table.meta["provenance"]``) and written with it by
:func:`pipeline.tables.write_table` (CSV header comments, VOTable INFO elements)."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
from pathlib import Path

from pipeline import __version__

PROVENANCE = "provenance"  # the key of table.meta that holds it


def provenance(**fields) -> dict[str, str]:
    """A provenance record: ``fields`` (values given as text; dicts and lists as JSON) after the
    project's version and the time of writing (UTC, ISO 8601)."""
    record = {"software": f"alma-ulisse-explorer {__version__}",
              "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    for key, value in fields.items():
        record[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return record


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes (hex), remembered while the file keeps its size and time."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
