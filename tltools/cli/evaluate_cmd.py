"""``python -m tltools evaluate RUN_OR_MODEL DATA``: how well a trained model does on a dataset.

The model is a file saved by tltools (``.keras``/``.h5``) or a run folder;
DATA is a ``.zip`` or a folder. For a run folder, the split settings in its
``config.json`` (``val_fraction``, ``test_fraction``, ``seed``) are reused,
so on the data it was trained with the val and test images are the ones the
run held out. Output: a readable summary per split, or with ``--json`` one
line holding ``{"classes": [...], "val": {...} | null, "test": {...} | null}``
whose split entries are :func:`tltools.evaluation.metrics.classification_metrics`.
"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from tltools import runs
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.evaluation import check_classes, evaluate_split, per_class_table
from tltools.model import load_model
from tltools.prediction import capped_top_k, check_batch_size

SPLITS = {"val": ("val",), "test": ("test",), "all": ("val", "test")}


def add_parser(subparsers) -> None:
    """Register the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a trained model on a dataset's val and test splits",
        description="Evaluate a model saved by tltools (.keras/.h5) or a run folder on DATA (a .zip or a folder "
        "of images). A run folder's split settings are reused, so its held-out images are the ones evaluated.",
    )
    parser.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder or a model file saved by tltools")
    parser.add_argument("data", metavar="DATA", help="a .zip archive or a folder of images with the model's classes")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--split", choices=tuple(SPLITS), default="all",
                        help="split(s) to evaluate (default: %(default)s = val and test when present)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="images per batch (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=5, metavar="K",
                        help="k of the top-k accuracy (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics; return 0."""
    check_batch_size(args.batch_size)
    model, class_names, _ = load_model(args.model)
    capped_top_k(args.top_k, len(class_names))
    settings = split_settings(args.model)
    dataset = load_dataset(args.data, **settings)
    check_classes(class_names, dataset.classes)
    for warning in dataset.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    wanted = SPLITS[args.split]
    results = {
        split: evaluate_split(model, class_names, dataset, split, batch_size=args.batch_size, top_k=args.top_k)
        if split in wanted else None
        for split in SPLITS["all"]
    }
    if all(results[split] is None for split in wanted):
        raise TLToolsError(
            f"{args.data} has no {' or '.join(wanted)} images with {_describe(dataset)}; use data with a "
            f"{' or '.join(f'{split}/' for split in wanted)} folder, or a run whose config.json sets "
            f"{' or '.join(f'{split}_fraction' for split in wanted)} above 0"
        )
    if args.json:
        print(json.dumps({"classes": class_names, **results}, ensure_ascii=False))
    else:
        print(format_summary(args.model, dataset, settings, results))
    return 0


def split_settings(model_path) -> dict:
    """Return the split settings a run folder's training used; {} for a model file."""
    if not (Path(model_path) / "status.json").is_file():
        return {}
    return runs.split_settings(runs.read_run(model_path))


def format_summary(model_path, dataset, settings: dict, results: dict) -> str:
    """Return the evaluation as readable text: headline metrics, per-class table, confusion matrix."""
    source = "from the run's config.json" if settings else "defaults"
    lines = [
        f"Model:  {model_path}",
        f"Data:   {dataset.source} ({len(dataset.items)} images, {len(dataset.classes)} classes)",
        f"Split:  {_describe(dataset)} ({source})",
    ]
    for split, metrics in results.items():
        lines.append("")
        if metrics is None:
            lines.append(f"== {split}: not evaluated (no images) ==")
            continue
        lines += [f"== {split}: {metrics['num_images']} images ==", *_headline(metrics), ""]
        lines += ["Per class:", _indent(_class_table(metrics)), ""]
        lines += ["Confusion matrix (rows: true class, columns: predicted):",
                  _indent(_confusion(metrics, dataset.classes))]
    return "\n".join(lines)


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
