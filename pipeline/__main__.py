"""Command line of the pipeline: ``python -m pipeline SUBCOMMAND ...``.

Each subcommand is a thin layer over one module. Bad input ends with a one-line message on stderr
and exit code 2; ``python -m pipeline SUBCOMMAND --help`` explains each.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other input error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _cube_info(args) -> int:
    from pipeline.alma.cube import open_cube

    with open_cube(args.cube, rest_frequency_hz=args.rest_frequency) as cube:
        info = cube.info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_cube_info(info))
    return 0


def format_cube_info(info: dict) -> str:
    """The human-readable summary of :meth:`pipeline.alma.cube.Cube.info`."""
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
    else:
        lines.append("  beam          none in header")
    px, py = info["pixel_scale_arcsec"]
    lines.append(f"  pixel scale   {px:.4g}\" x {py:.4g}\"")
    c = info["centre"]
    lines.append(f"  centre        RA {c['ra_deg']:.6f} deg, Dec {c['dec_deg']:.6f} deg")
    lines.append(f"  unit          {info['unit']}")
    lines.append(f"  NaN fraction  {info['nan_fraction']:.4f}")
    lines.append(f"  memory-mapped {'yes' if info['memory_mapped'] else 'no (compressed: read into memory)'}")
    for note in info["notes"]:
        lines.append(f"  note          {note}")
    return "\n".join(lines)


def _simulate(args) -> int:
    from tqdm import tqdm

    from pipeline.alma.simulate import simulate_set

    if args.n < 1:
        raise InputError("--n must be at least 1")
    with tqdm(total=args.n, unit="cube", disable=args.quiet) as bar:
        def progress(done, total):
            bar.update(done - bar.n)

        paths = simulate_set(args.out, n=args.n, seed=args.seed, size=args.size,
                             channels=args.channels, config=args.config, progress=progress)
    if not args.quiet:
        print(f"wrote {len(paths)} cubes and truth.csv to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pipeline",
                     description="ALMA cube and one-shot galaxy search pipeline.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("cube-info", help="summarise a FITS cube: shape, spectral axis, beam, scale",
                       description="Print the shape (nx, ny, nchan), spectral range and channel "
                       "width, beam (median over channels when per-channel), pixel scale, units and "
                       "NaN fraction of a FITS cube. The cube is memory-mapped, not loaded.")
    p.add_argument("cube", help="FITS cube (.fits or .fits.gz)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--rest-frequency", type=float, metavar="HZ",
                   help="rest frequency in Hz for velocities (default: the header's)")
    p.set_defaults(func=_cube_info)

    p = sub.add_parser("simulate", help="simulate ALMA-like dirty cubes with truth catalogues",
                       description="Simulate dirty cubes (sky model convolved with the dirty beam of a "
                       "real ALMA configuration, plus correlated thermal noise), written as FITS in "
                       "CASA's layout, with their sky models and one truth.csv.")
    p.add_argument("--n", type=int, required=True, help="number of cubes")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same cubes (default 0)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--channels", type=int, default=128, help="number of channels (default 128)")
    p.add_argument("--config", default="alma.cycle9.3",
                   help="ALMA antenna configuration, a name from assets/alma_configs or a .cfg path "
                   "(default alma.cycle9.3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_simulate)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
