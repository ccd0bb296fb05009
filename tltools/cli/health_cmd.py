"""``python -m tltools health DATA``: likely label errors, duplicates, outliers and confused classes; apply fixes."""

import argparse
import json

from tltools.backbones.registry import get_backbone
from tltools.cli.options import add_options, values_from_args
from tltools.data import load_dataset
from tltools.data.split import SplitSettings
from tltools.errors import TLToolsError
from tltools.training import TrainConfig

SHOWN = 15  # findings per kind in the readable report (--json has all)


def add_parser(subparsers) -> None:
    """Register the ``health`` subcommand."""
    parser = subparsers.add_parser(
        "health",
        help="find likely label errors, duplicates and outliers in a dataset; apply a changes CSV",
        description="Analyse a dataset from its images' cached backbone features: likely label errors "
                    "(out-of-fold heads + confident learning), exact and near duplicates (label conflicts and "
                    "leakage across splits first), outliers, and the most confused classes. With --apply, write "
                    "a new dataset version (the original images plus the changes CSV) instead.",
    )
    parser.add_argument("data", help="a .zip archive, a folder of images or a dataset version folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_options(parser, TrainConfig, ["backbone", "image_size", "weights"],
                title="features (as train takes them; default: the analysis' own backbones)")
    parser.add_argument("--flip", action="store_true", help="also use the mirrored images' features (test-time "
                                                            "augmentation; extracts a second set)")
    parser.add_argument("--apply", metavar="CHANGES.csv", help="apply this changes CSV (path,old_label,new_label,"
                                                               "action,reason) and write a dataset version")
    parser.add_argument("--out", metavar="NEW_DIR", help="the new version's folder (with --apply)")
    add_options(parser, SplitSettings, title="split settings (as train takes them)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the health report, or write a version with --apply; return 0."""
    from tltools.health import analyse, versions
    from tltools.health.analysis import DEFAULT_BACKBONES

    if (args.apply is None) != (args.out is None):
        raise TLToolsError("--apply and --out go together: --apply CHANGES.csv --out NEW_DIR writes a new version")
    if args.backbone is not None:
        get_backbone(args.backbone)  # an unknown name is refused before any image is read
    settings = SplitSettings(**values_from_args(args, SplitSettings, {}))
    if args.apply is not None:
        changes = versions.read_changes(args.apply)  # a bad CSV is refused before the images are read
        dataset = load_dataset(args.data, split=settings)
        folder = versions.write_version(dataset, changes, args.out)
        version = load_dataset(folder, split=settings)
        summary = {"version": str(folder), "images": int(len(version.items)), "classes": len(version.classes),
                   "relabelled": int((changes["action"] == "relabel").sum()),
                   "excluded": int((changes["action"] == "exclude").sum())}
        print(json.dumps(summary, indent=2) if args.json else
              f"version: {folder}\n{summary['images']} images in {summary['classes']} classes "
              f"({summary['relabelled']} relabelled, {summary['excluded']} excluded); the original files are "
              f"untouched. Train on it: python -m tltools train {folder}")
        return 0
    dataset = load_dataset(args.data, split=settings)
    weights = args.weights or "imagenet"
    backbones = [args.backbone] if args.backbone else list(DEFAULT_BACKBONES)
    report = analyse(dataset, backbones, image_size=args.image_size, weights=weights, flip=args.flip)
    result = report.to_json()
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else format_report(result))
    return 0


def format_report(report: dict) -> str:
    """Return the JSON report as readable text."""
    lines = [f"Data health of {report['source']}: {report['images']} images in {len(report['classes'])} classes "
             f"(features: {', '.join(report['features'])}; {report['seconds']['total']:.1f} s)", ""]
    issues = report["label_issues"]
    lines.append(f"Likely label errors: {len(issues)}" + (" (most suspicious first)" if issues else ""))
    lines += [f"  {item['score']:.3f}  {item['path']} ({item['split']}): labelled {item['given']!r}, "
              f"looks like {item['suggested']!r}" for item in issues[:SHOWN]]
    lines += _more(issues)
    groups = report["duplicates"]
    lines += ["", f"Duplicates: {len(groups)} group(s)"]
    for group in groups[:SHOWN]:
        flags = [flag for flag, on in (("LABEL CONFLICT", group["label_conflict"]),
                                       ("LEAKAGE across splits", group["leakage"])) if on]
        lines.append(f"  {group['kind']} (similarity {group['similarity']:.3f})"
                     + (f" {', '.join(flags)}" if flags else "") + ": "
                     + ", ".join(f"{path} ({label}, {split})" for path, label, split in
                                 zip(group["paths"], group["labels"], group["splits"])))
    lines += _more(groups)
    found = report["outliers"]
    lines += ["", f"Outliers: {len(found)}"]
    lines += [f"  {item['score']:.3f}  {item['path']} ({item['label']})" for item in found[:SHOWN]]
    lines += _more(found)
    lines += ["", "Most confused classes (out of fold):"]
    lines += [f"  {a} / {b}: {pair['count']} ({pair['a_as_b']} {a} taken for {b}, {pair['b_as_a']} the other way)"
              for pair in report["confused_pairs"] for a, b in [pair["classes"]]] or ["  none"]
    lines += ["", "Label quality per class (lowest first):"]
    lines += [f"  {row['class']}: {row['label_quality']:.3f} over {row['images']} images, {row['issues']} flagged"
              for row in report["class_quality"]]
    return "\n".join(lines)


def _more(items: list) -> list[str]:
    return [f"  … and {len(items) - SHOWN} more (--json lists all)"] if len(items) > SHOWN else []
