"""``python -m tltools evaluate RUN_OR_MODEL [DATA]``: how well a trained model does.

``evaluate RUN`` evaluates a run folder (or run id) on its own split: the val
and test images listed in its ``splits.csv``, checked to be unchanged (images
added to the folder since are not part of it; gone or changed ones are an
error). With DATA (a ``.zip`` or a folder) the model is evaluated on that
data's val and test splits instead, made with the run's split settings; a
model file (``.keras``/``.h5``) needs DATA. Output: a readable summary per
split, or with ``--json`` one line holding ``{"classes": [...], "val": {...} |
null, "test": {...} | null}`` whose split entries are
:func:`tltools.evaluation.metrics.classification_metrics`.
"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from tltools import paths, runs
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.evaluation import EVALUATED_SPLITS, evaluate_dataset, evaluate_run, per_class_table
from tltools.model import load_model
from tltools.prediction import check_batch_size

SPLITS = {"val": ("val",), "test": ("test",), "all": EVALUATED_SPLITS}


def add_parser(subparsers) -> None:
    """Register the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a trained model on a run's own held-out images or on a dataset's val and test splits",
        description="Evaluate a run folder on the val and test images its splits.csv lists (an error when any "
        "of them is gone or changed), or a run or a model file saved by tltools (.keras/.h5) on DATA (a .zip "
        "or a folder of images), split with the run's settings.",
    )
    parser.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder or run id, or a model file saved by tltools")
    parser.add_argument("data", metavar="DATA", nargs="?",
                        help="a .zip archive or a folder of images with the model's classes "
                        "(default for a run: its own recorded split)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--split", choices=tuple(SPLITS), default="all",
                        help="split(s) to evaluate (default: %(default)s = val and test when present)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="images per batch (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K",
                        help="k of the top-k accuracy (default: the run's setting, else 5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics; return 0."""
    check_batch_size(args.batch_size)
    wanted = SPLITS[args.split]
    if _is_run(args.model):
        info = runs.read_run(args.model)
        dataset = runs.load_run_dataset(info) if args.data is None else load_dataset(
            args.data, **runs.split_settings(info))
        source = "the run's own split (splits.csv)" if args.data is None else "the run's split settings"
        results = evaluate_run(info, dataset, splits=wanted, batch_size=args.batch_size, top_k=args.top_k)
    else:
        if args.data is None:
            raise TLToolsError(f"{args.model} is a model file, not a run: give the DATA to evaluate it on")
        model, class_names, _ = load_model(args.model)
        dataset, source = load_dataset(args.data), "defaults"
        results = evaluate_dataset(model, class_names, dataset, splits=wanted, batch_size=args.batch_size,
                                   top_k=5 if args.top_k is None else args.top_k)
    for warning in dataset.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if all(results[split] is None for split in wanted):
        raise TLToolsError(
            f"{args.data or args.model} has no {' or '.join(wanted)} images with {_describe(dataset)}; use data "
            f"with a {' or '.join(f'{split}/' for split in wanted)} folder, or a run whose config.json sets "
            f"{' or '.join(f'{split}_fraction' for split in wanted)} above 0"
        )
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    else:
        print(format_summary(args.model, dataset, source, results))
    return 0


def format_summary(model_path, dataset, source: str, results: dict) -> str:
    """Return the evaluation as readable text: headline metrics, per-class table, confusion matrix.

    Args:
        model_path: The run or model evaluated, as given.
        dataset: The data evaluated.
        source: Where the split came from, e.g. "the run's own split (splits.csv)".
        results: :func:`tltools.evaluation.split_metrics`.
    """
    lines = [
        f"Model:  {model_path}",
        f"Data:   {dataset.source} ({len(dataset.items)} images, {len(dataset.classes)} classes)",
        f"Split:  {_describe(dataset)} ({source})",
    ]
    for split in EVALUATED_SPLITS:
        metrics = results[split]
        lines.append("")
        if metrics is None:
            lines.append(f"== {split}: not evaluated (no images) ==")
            continue
        lines += [f"== {split}: {metrics['num_images']} images ==", *_headline(metrics), ""]
        lines += ["Per class:", _indent(_class_table(metrics)), ""]
        lines += ["Confusion matrix (rows: true class, columns: predicted):",
                  _indent(_confusion(metrics, dataset.classes))]
    return "\n".join(lines)


def _is_run(path) -> bool:
    """Whether ``path`` names a run (a folder with ``status.json``, or a run id) rather than a model file."""
    return (Path(path) / "status.json").is_file() or (paths.runs_dir() / str(path) / "status.json").is_file()


def _describe(dataset) -> str:
    return f"val_fraction={dataset.val_fraction}, test_fraction={dataset.test_fraction}, seed={dataset.seed}"


def _headline(metrics: dict) -> list[str]:
    auc = "n/a (a class has no images here)" if metrics["roc_auc"] is None else f"{metrics['roc_auc']:.3f}"
    return [
        f"  accuracy          {metrics['accuracy']:.2%}",
        f"  top-{metrics['top_k']} accuracy    {metrics['top_k_accuracy']:.2%}",
        f"  macro F1          {metrics['macro_f1']:.3f}",
        f"  loss              {metrics['loss']:.4f}",
        f"  ECE               {metrics['ece']:.4f}",
        f"  ROC AUC (macro)   {auc}",
        f"  misclassified     {len(metrics['misclassified'])}",
    ]


def _class_table(metrics: dict) -> str:
    table = per_class_table(metrics)
    for column in ("precision", "recall", "f1"):
        table[column] = table[column].map("{:.3f}".format)
    table["auc"] = table["auc"].map(lambda value: "n/a" if value is None or pd.isna(value) else f"{value:.3f}")
    width = max(len("class"), *(len(name) for name in table["class"]))
    table["class"] = table["class"].map(f"{{:<{width}}}".format)
    return table.to_string(index=False)


def _confusion(metrics: dict, classes: list[str]) -> str:
    return pd.DataFrame(metrics["confusion_matrix"], index=classes, columns=classes).to_string()


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
