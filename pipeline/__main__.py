"""``python -m pipeline``: the command line (:mod:`pipeline.cli`); ``main`` is also the
``alma-ulisse`` console script."""

import sys

from pipeline.cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
