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
    from pipeline.alma.cube import format_info, open_cube

    with open_cube(args.cube, rest_frequency_hz=args.rest_frequency) as cube:
        info = cube.info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_info(info))
    return 0


def _simulate(args) -> int:
    from tqdm import tqdm

    from pipeline.alma.interferometer import load_configuration
    from pipeline.alma.simulate import simulate_set

    if args.n < 1:
        raise InputError("--n must be at least 1")
    if args.size < 16 or args.channels < 1:
        raise InputError("--size must be at least 16 pixels and --channels at least 1")
    load_configuration(args.config)  # a wrong name fails here, before any progress bar
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
