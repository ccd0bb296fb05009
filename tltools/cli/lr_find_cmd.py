"""``python -m tltools lr-find DATA [model options]``: sweep the learning rate and suggest one."""

import argparse
import json

from tltools.cli.train_cmd import add_model_options, config_from_args
from tltools.data import load_dataset
from tltools.training import suggest_learning_rate


def add_parser(subparsers) -> None:
    """Register the ``lr-find`` subcommand."""
    parser = subparsers.add_parser(
        "lr-find",
        help="sweep the learning rate on a dataset and suggest one (fastai's lr_find)",
        description="Train for up to --steps batches while the learning rate grows exponentially; "
                    "print the loss curve and the suggested learning rates. The model is not saved.",
    )
    parser.add_argument("data", help="a .zip archive or a folder of images")
    add_model_options(parser)
    parser.add_argument("--phase", type=int, choices=(1, 2), default=1,
                        help="1: base frozen (default); 2: base unfrozen per --unfreeze")
    parser.add_argument("--steps", type=int, default=100, help="most batches in the sweep (default 100)")
    parser.add_argument("--min-lr", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    parser.add_argument("--max-lr", type=float, default=1.0, help="last learning rate (default 1)")
    parser.add_argument("--json", action="store_true", help="print the curve and suggestions as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep and print the result; return 0."""
    config = config_from_args(args)
    dataset = load_dataset(args.data, split=config)
    result = suggest_learning_rate(config, dataset, phase=args.phase, steps=args.steps,
                                   min_lr=args.min_lr, max_lr=args.max_lr)
    if args.json:
        print(json.dumps({"suggested": result.suggested, "steepest": result.steepest, "valley": result.valley,
                          "curve": result.curve.to_dict(orient="records")}))
    else:
        print(f"suggested learning rate: {result.suggested:.2e} (valley); steepest descent at {result.steepest:.2e}")
        print(f"swept {len(result.curve)} steps from {result.curve['learning_rate'].iloc[0]:.1e} "
              f"to {result.curve['learning_rate'].iloc[-1]:.1e}")
    return 0
