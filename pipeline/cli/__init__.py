"""Command line of the pipeline: ``python -m pipeline SUBCOMMAND ...`` (or ``alma-ulisse``).

Each subcommand is a thin layer over one module, declared beside the function that runs it: the
ALMA cube commands in :mod:`pipeline.cli.alma`, the one-shot galaxy search in
:mod:`pipeline.cli.oneshot`, the verdicts on candidates in :mod:`pipeline.cli.vetting`, the
search over DECORAS-family networks in :mod:`pipeline.cli.automl`.
Bad input ends with a one-line message on stderr and exit code 2;
``python -m pipeline SUBCOMMAND --help`` explains each. Reading the options imports no network
library: a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import alma, automl, oneshot, vetting
from pipeline.errors import InputError

#: The subcommands in the order --help lists them.
COMMANDS = (alma.add_cube_info_parser, alma.add_simulate_parser, alma.add_train_parser, alma.add_detect_parser,
            alma.add_evaluate_parser, oneshot.add_index_parser, oneshot.add_search_parser, oneshot.add_map_parser,
            oneshot.add_top_activations_parser, oneshot.add_rank_features_parser,
            vetting.add_vetting_parser, automl.add_automl_parser)


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other input error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pipeline",
                     description="ALMA cube and one-shot galaxy search pipeline.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for add_parser in COMMANDS:
        add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return its exit code: 0
    done (``--help`` included), 2 bad input or usage (one line on stderr), 130 interrupted."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the help or the usage error
        return 0 if exc.code is None else int(exc.code)
    args.argv = argv  # the command as given, for the records that name it (a model card)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
