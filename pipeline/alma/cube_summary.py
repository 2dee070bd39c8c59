"""A cube's summary: what ``cube-info`` prints and the explorer's header panel shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.alma.cube import Cube


def cube_info(cube: Cube, scan: bool = True) -> dict:
    """What ``cube-info`` prints: geometry, spectral range, beam, scale, units, NaN fraction.

    ``scan=False`` skips the NaN fraction, which reads the whole cube (None then).
    """
    freq, vel, width = cube.frequency_hz, cube.velocity_kms(), cube.channel_width()
    beam = cube.beam
    centre = cube.sky((cube.nx - 1) / 2, (cube.ny - 1) / 2)
    h = cube.header
    return {
        "path": str(cube.path),
        "object": str(h.get("OBJECT", "")).strip(),
        "telescope": str(h.get("TELESCOP", "")).strip(),
        "shape": {"nx": cube.nx, "ny": cube.ny, "nchan": cube.nchan},
        "spectral_axis": cube.spectral_type,
        "frequency_hz": None if freq is None else [float(freq.min()), float(freq.max())],
        "channel_width_hz": width["hz"],
        "velocity_kms": None if vel is None else [float(vel.min()), float(vel.max())],
        "channel_width_kms": width["kms"],
        "rest_frequency_hz": cube.rest_frequency_hz,
        "beam": None if beam is None else {
            "major_arcsec": beam.major_arcsec, "minor_arcsec": beam.minor_arcsec,
            "pa_deg": beam.pa_deg, "per_channel": cube.per_channel_beams},
        "pixel_scale_arcsec": list(cube.pixel_scale_arcsec),
        "centre": {"ra_deg": float(centre.icrs.ra.deg), "dec_deg": float(centre.icrs.dec.deg)},
        "unit": cube.unit,
        "nan_fraction": cube.nan_fraction if scan else None,
        "memory_mapped": cube.lazy,
        "notes": list(cube.notes),
    }


def format_info(info: dict) -> str:
    """The human-readable summary of :func:`cube_info` (``cube-info``, the explorer's header panel)."""
    s = info["shape"]
    lines = [f"{info['path']}"]
    if info["object"] or info["telescope"]:
        lines.append(f"  object        {info['object'] or '-'} ({info['telescope'] or 'telescope unknown'})")
    lines.append(f"  shape         {s['nx']} x {s['ny']} pixels x {s['nchan']} channels (nx, ny, nchan)")
    lines.append(f"  spectral axis {info['spectral_axis']}")
    if info["frequency_hz"]:
        f0, f1 = (v / 1e9 for v in info["frequency_hz"])
        width = info["channel_width_hz"]
        lines.append(f"  frequency     {f0:.6f} - {f1:.6f} GHz, channel {width / 1e6:.6g} MHz"
                     if width else f"  frequency     {f0:.6f} GHz")
    if info["velocity_kms"]:
        v0, v1 = info["velocity_kms"]
        width = info["channel_width_kms"]
        lines.append(f"  velocity      {v0:.3f} - {v1:.3f} km/s (radio), channel {width:.4g} km/s"
                     if width else f"  velocity      {v0:.3f} km/s (radio)")
    rest = info["rest_frequency_hz"]
    lines.append(f"  rest freq.    {rest / 1e9:.6f} GHz" if rest else "  rest freq.    not in header")
    b = info["beam"]
    if b:
        kind = "median of per-channel beams" if b["per_channel"] else "header"
        lines.append(f"  beam          {b['major_arcsec']:.4g}\" x {b['minor_arcsec']:.4g}\", "
                     f"PA {b['pa_deg']:.4g} deg ({kind})")
    elif any(note.startswith("no valid beam") for note in info["notes"]):
        lines.append("  beam          no valid beam (see the note below)")
    else:
        lines.append("  beam          none in header")
    px, py = info["pixel_scale_arcsec"]
    lines.append(f"  pixel scale   {px:.4g}\" x {py:.4g}\"")
    c = info["centre"]
    lines.append(f"  centre        RA {c['ra_deg']:.6f} deg, Dec {c['dec_deg']:.6f} deg")
    lines.append(f"  unit          {info['unit']}")
    nan = info["nan_fraction"]
    lines.append(f"  NaN fraction  {nan:.4f}" if nan is not None else "  NaN fraction  not measured")
    lines.append(f"  memory-mapped {'yes' if info['memory_mapped'] else 'no (compressed: read into memory)'}")
    for note in info["notes"]:
        lines.append(f"  note          {note}")
    return "\n".join(lines)
