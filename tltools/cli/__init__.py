"""``python -m tltools``: one argparse parser with a subcommand per module.

Each subcommand lives in its own module in this package and exposes
``add_parser(subparsers)``, which registers its arguments and sets
``func=run`` on the parser; ``run(args)`` returns the exit status.
Project errors become one ``error: ...`` line on stderr and exit status 2.
"""

import argparse
import contextlib
import importlib
import os
import sys

from tltools.errors import TLToolsError

# Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ("inspect", "backbones", "predict", "train", "evaluate", "export", "lr-find", "runs", "clean", "bench",
            "health", "distill", "adapt", "bench-export")

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


@contextlib.contextmanager
def _native_stderr_silenced():
    """Hide what C++ libraries write straight to file descriptor 2 inside the block.

    TensorFlow's start-up messages (CUDA probing on a machine without a GPU,
    oneDNN notices) bypass ``TF_CPP_MIN_LOG_LEVEL`` (tensorflow#100442) and
    would bury the CLI's own output. Python exceptions are unaffected.
    """
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _load_tensorflow_quietly() -> None:
    with _native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device probing happens here, once


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (0 ok, 2 for unusable input)."""
    _load_tensorflow_quietly()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TLToolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
