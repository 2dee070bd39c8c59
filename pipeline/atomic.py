"""Atomic writes of files and folders: readers see the old one or the new one, never half of one."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path):
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def replace_folder(built, folder) -> None:
    """Put the finished folder ``built`` (a sibling of ``folder``) in the place of ``folder``: the
    old folder, if any, is renamed aside (``.NAME.old-*``), the new one renamed in, the old one
    deleted. Readers see the old folder or the new one, never a mix; if the swap fails, the old
    folder is put back and the OSError raised."""
    built, folder = Path(built), Path(folder)
    old = folder.parent / f".{folder.name}.old-{os.getpid()}-{built.name[-8:]}"
    try:
        if folder.exists():
            os.rename(folder, old)
        os.rename(built, folder)
    except OSError:
        if old.exists() and not folder.exists():
            os.rename(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)
