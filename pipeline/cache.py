"""Where the pipeline keeps what it makes once and reuses: rendered demo data, exported networks.

``$ALMA_ULISSE_CACHE`` when set, else ``~/.cache/alma-ulisse``. Everything in it can be deleted;
it is rebuilt on the next use.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache folder (or a sub-folder of it, made if missing)."""
    root = Path(os.environ.get("ALMA_ULISSE_CACHE") or Path.home() / ".cache" / "alma-ulisse")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
