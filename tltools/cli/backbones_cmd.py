"""``python -m tltools backbones [--json]``: the backbone registry as a table."""

import argparse
import json

from tltools.backbones import list_backbones
from tltools.backbones.registry import BackboneSpec

_COLUMNS = ("name", "params", "input", "features", "preprocessing", "top-1", "offline")


def add_parser(subparsers) -> None:
    """Register the ``backbones`` subcommand."""
    parser = subparsers.add_parser(
        "backbones",
        help="list the backbones a model can be built on",
        description="List every registered backbone: size, input, preprocessing, ImageNet top-1, "
        "and whether its ImageNet weights load offline.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the registry; return 0."""
    specs = list_backbones()
    if args.json:
        print(json.dumps([describe(spec) for spec in specs], indent=2))
    else:
        print(format_table(specs))
    return 0


def describe(spec: BackboneSpec) -> dict:
    """Return the JSON-ready facts about one backbone."""
    return {
        "name": spec.name,
        "params": spec.params,
        "input_size": spec.default_size,
        "feature_size": spec.feature_size,
        "preprocessing": spec.preprocessing,
        "imagenet_top1": spec.top1,
        "offline": spec.offline,
    }


def format_table(specs: list[BackboneSpec]) -> str:
    """Return the specs as an aligned text table, one row per backbone."""
    rows = [
        (
            spec.name,
            f"{spec.params / 1e6:.1f}M",
            str(spec.default_size),
            str(spec.feature_size),
            spec.preprocessing,
            "-" if spec.top1 is None else f"{spec.top1:.1f}%",
            "yes" if spec.offline else "no",
        )
        for spec in specs
    ]
    widths = [max(len(row[i]) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [_COLUMNS, *rows]]
    return "\n".join(lines)
