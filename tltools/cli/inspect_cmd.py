"""``python -m tltools inspect DATA [--json]``: what tltools makes of a dataset."""

import argparse
import json

from tltools.cli.options import add_options, values_from_args
from tltools.data import load_dataset
from tltools.data.split import SplitSettings


def add_parser(subparsers) -> None:
    """Register the ``inspect`` subcommand."""
    parser = subparsers.add_parser(
        "inspect",
        help="report a dataset's layout, classes, splits, skipped files and warnings",
        description="Load a .zip or folder of images and report what tltools makes of it.",
    )
    parser.add_argument("data", help="a .zip archive or a folder of images")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_options(parser, SplitSettings, title="split settings (as train takes them)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the dataset report; return 0."""
    dataset = load_dataset(args.data, split=SplitSettings(**values_from_args(args, SplitSettings, {})))
    report = dataset.report()
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


def format_report(report: dict) -> str:
    """Return the report as readable text."""
    lines = [
        f"Dataset: {report['source']}",
        f"Layout:  {report['layout']}" + (f" (given splits: {', '.join(report['given_splits'])})"
                                          if report["given_splits"] else ""),
        f"Images:  {report['num_images']} in {report['num_classes']} classes; sizes "
        f"{_size(report['image_size']['min'])} .. {_size(report['image_size']['max'])}",
        "",
    ]
    splits = list(report["splits"])
    width = max(len(name) for name in report["classes"])
    lines.append(f"  {'class':<{width}}  {'total':>6}" + "".join(f"  {split:>6}" for split in splits))
    for name, count in report["classes"].items():
        lines.append(f"  {name:<{width}}  {count:>6}" + "".join(f"  {report['splits'][s][name]:>6}" for s in splits))
    if report["skipped"]:
        lines += ["", f"Skipped {len(report['skipped'])} file(s):"]
        lines += [f"  {item['path']}: {item['reason']}" for item in report["skipped"]]
    if report["warnings"]:
        lines += ["", "Warnings:"] + [f"  - {warning}" for warning in report["warnings"]]
    return "\n".join(lines)


def _size(pair: list[int]) -> str:
    return f"{pair[0]}x{pair[1]}"
