"""``python -m tltools``: one argparse parser with a subcommand per module.

Each subcommand lives in its own module in this package and exposes
``add_parser(subparsers)``, which registers its arguments and sets
``func=run`` on the parser; ``run(args)`` returns the exit status.
Project errors become one ``error: ...`` line on stderr and exit status 2.
"""

import argparse
import importlib
import sys

from tltools.errors import TLToolsError

# Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ("inspect", "backbones", "predict", "train", "evaluate", "export", "lr-find", "runs")

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="python -m tltools",
        description="Transfer learning of image classifiers with TensorFlow/Keras.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tltools.cli.{name.replace('-', '_')}_cmd").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (0 ok, 2 for unusable input)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TLToolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
