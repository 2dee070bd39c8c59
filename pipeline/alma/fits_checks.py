"""What a FITS file must be before it is read as a cube: complete (as long as its header
promises), an undamaged gzip stream, a FITS file at all. Each check raises
:class:`~pipeline.errors.InputError` saying what is wrong and what to do."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

from astropy.io import fits

from pipeline.errors import InputError, short_reason


def check_size(path: Path, hdul, hdu) -> None:
    """Refuse a file shorter than its header promises (truncated downloads)."""
    if path.suffix.lower() in {".gz", ".bz2", ".zip"}:
        return  # compressed: the decompressor finds a short stream when the data is read
    info = hdul.fileinfo(hdul.index(hdu))
    needed = info["datLoc"] + hdu.size  # size: bytes of the data section
    have = path.stat().st_size
    if have < needed:
        raise InputError(_promises_more(path.name, needed, have))


def check_promised_size(path: Path) -> None:
    """Refuse, from the primary header alone, a file shorter than the data its header promises:
    before astropy maps it (a header claiming 100000^3 pixels fails there with Errno 22)."""
    try:
        with open(path, "rb") as f:
            header = fits.Header.fromfile(f)
            data_start = f.tell()
        bitpix, naxis = int(header["BITPIX"]), int(header["NAXIS"])
        dims = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    except Exception:  # noqa: BLE001 -- an unreadable header is fits.open's to report
        return
    if not dims or min(dims) < 0 or dims[0] == 0:  # empty, or random groups (NAXIS1 = 0)
        return
    needed = data_start + abs(bitpix) // 8 * math.prod(dims)
    have = path.stat().st_size
    if have < needed:
        raise InputError(_promises_more(path.name, needed, have))


def _promises_more(name: str, needed: int, have: int) -> str:
    return (f"{name} is truncated or its header is wrong: the header promises {needed:,} bytes "
            f"(NAXISn x BITPIX) but the file holds {have:,}. Copy or download it again.")


#: what a damaged gzip stream raises while astropy decompresses it
GZIP_ERRORS = (zlib.error, gzip.BadGzipFile, EOFError)


def check_gzip(path: Path) -> None:
    """Decompress the whole file once, streaming, to find damage anywhere in it (astropy reads
    only as far as the data goes, so a bad checksum at the end would pass unseen)."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (*GZIP_ERRORS, OSError) as exc:
        raise InputError(damaged_gzip(path.name, exc)) from None


def damaged_gzip(name: str, exc: Exception) -> str:
    return (f"{name} is a damaged gzip file ({short_reason(exc)}): its data cannot be decompressed. "
            f"Copy or download it again (`gzip -t {name}` checks a copy).")


def not_fits(name: str) -> str:
    return (f"{name} is not a FITS file: it does not start with a FITS header (SIMPLE = T). "
            "Open a FITS cube (.fits or .fits.gz).")
