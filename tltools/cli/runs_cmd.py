"""``python -m tltools runs [--json]``: the training runs on disk."""

import argparse
import json

from tltools.runs import list_runs


def add_parser(subparsers) -> None:
    """Register the ``runs`` subcommand."""
    parser = subparsers.add_parser("runs", help="list training runs (status, backbone, accuracy)",
                                   description="List the training runs under TLTOOLS_HOME/runs, newest first.")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the runs; return 0."""
    rows = [
        {
            "run": info.run_id,
            "path": str(info.path),
            "status": info.status,
            "backbone": info.config.get("backbone"),
            "classes": len(info.classes),
            "val_accuracy": info.best_val_accuracy,
            "epochs": (info.metrics or {}).get("epochs_run"),
            "created_at": info.created_at.isoformat(timespec="seconds"),
            "error": info.error,
        }
        for info in list_runs()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no runs yet; train one with `python -m tltools train DATA`")
    else:
        for row in rows:
            accuracy = "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.4f}"
            print(f"{row['run']}  {row['status']:<11} {row['backbone'] or '?':<20} val acc {accuracy:<7} "
                  f"{row['created_at']}" + (f"  ({row['error']})" if row["error"] else ""))
    return 0
