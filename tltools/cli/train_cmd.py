"""``python -m tltools train DATA ...``: train a transfer model from the command line."""

import argparse
import json
import sys

from tltools.cli.options import add_options, values_from_args
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.training import TrainConfig, TrainingLog, advice, train
from tltools.training.callbacks import objective_differs

# Seconds ``train --auto`` may take when --time-budget is not given.
DEFAULT_TIME_BUDGET_S = 600.0


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one option per :class:`TrainConfig` field (shared by ``train`` and ``lr-find``).

    Names, types, choices, defaults and help all come from the fields (see :mod:`tltools.cli.options`).
    """
    parser.add_argument("--config", help="a JSON config (as in a run's config.json); options given here override it")
    add_options(parser, TrainConfig, title="training settings (one per TrainConfig field)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Return the config file's settings (or the defaults) overridden by the given options.

    Raises:
        TLToolsError: The file or a setting is unusable (checked before any image is read).
    """
    values = TrainConfig.from_file(args.config).to_dict() if args.config else {}
    return TrainConfig.from_dict(values_from_args(args, TrainConfig, values))


def add_parser(subparsers) -> None:
    """Register the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a transfer model on a dataset and write a run folder",
        description="Two-phase transfer learning: train a new head on the frozen base, then optionally "
                    "fine-tune the top of the base with a lower learning rate.",
    )
    parser.add_argument("data", help="a .zip archive or a folder of images")
    add_model_options(parser)
    parser.add_argument("--out", help="the run folder to write (default: a new folder under runs/)")
    parser.add_argument("--from-run", help="continue from this run's model (new head when the classes differ)")
    parser.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    auto = parser.add_argument_group("auto mode (searches backbones, head settings and fine-tuning; the other "
                                     "settings are its starting point and the default it never does worse than)")
    auto.add_argument("--auto", action="store_true",
                      help="find the best model within --time-budget: backbones, a head search on cached features, "
                           "fine-tuning when it pays")
    auto.add_argument("--time-budget", type=_seconds, default=None, metavar="SECONDS",
                      help=f"seconds auto mode may take in all, feature extraction and the final run included "
                           f"(default {DEFAULT_TIME_BUDGET_S:.0f}; only with --auto)")
    parser.set_defaults(func=run)


def _seconds(text: str) -> float:
    """Parse a positive number of seconds for ``--time-budget``."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds, e.g. 600")
    return value


def run(args: argparse.Namespace) -> int:
    """Train (or with ``--auto`` search and train) and print the final metrics and hints; return 0.

    Raises:
        TLToolsError: Unusable settings or data; ``--time-budget`` without ``--auto``; ``--auto`` with
            ``--from-run`` or ``--out``.
    """
    config = config_from_args(args)
    if args.time_budget is not None and not args.auto:
        raise TLToolsError(f"--time-budget {args.time_budget:g} needs --auto; add --auto, or drop --time-budget")
    if args.auto and (args.from_run or args.out):
        raise TLToolsError("--auto writes its own run folders; drop --from-run/--out, or drop --auto")
    dataset = load_dataset(args.data, split=config)
    if args.auto:
        return run_auto_command(args, config, dataset)
    progress = ProgressPrinter()
    result = train(config, dataset, log=TrainingLog(), on_update=progress, from_run=args.from_run,
                   run_dir=args.out)
    progress.finish()
    if args.json:
        print(json.dumps({"run": str(result.run.path), **result.metrics}, indent=2))
    else:
        print(summary(result.run.path, result.metrics))
        print_hints(result.run.path)
    return 0


def print_hints(run_path) -> None:
    """Print what the run's numbers suggest trying next (:func:`tltools.training.advice.hints`), one per line."""
    for hint in advice.hints(run_path):
        print(f"hint: {hint.text}")


def run_auto_command(args: argparse.Namespace, config: TrainConfig, dataset) -> int:
    """``train --auto``: run :func:`tltools.auto.run_auto` and print the leaderboard, the choice and why; return 0."""
    from tltools.auto import describe, leaderboard, run_auto

    budget = args.time_budget or DEFAULT_TIME_BUDGET_S
    quiet = args.json
    outcome = run_auto(dataset, time_budget_s=budget, base_config=config,
                       log=None if quiet else (lambda line: print(f"auto: {line}", file=sys.stderr, flush=True)))
    if args.json:
        print(json.dumps({"run": str(outcome.run.path), "auto": outcome.summary, **outcome.result.metrics},
                         indent=2, default=str))
        return 0
    print(auto_summary(outcome, leaderboard(outcome.trials), describe))
    print(summary(outcome.run.path, outcome.result.metrics))
    print_hints(outcome.run.path)
    return 0


def auto_summary(outcome, board, describe, top: int = 5) -> str:
    """Return the leaderboard's top trials, the chosen settings and the one-line why, as readable lines."""
    lines = [f"auto: {len(outcome.trials)} trials in {outcome.seconds:.0f} s of a "
             f"{outcome.summary['time_budget_s']:.0f} s budget ({outcome.summary['validation']})",
             "  trial  val acc  val loss  epochs  seconds  state"]
    for row in board.head(top).itertuples():
        score = "-" if row.val_accuracy != row.val_accuracy or row.val_accuracy is None else f"{row.val_accuracy:.4f}"
        loss = "-" if row.val_cross_entropy != row.val_cross_entropy or row.val_cross_entropy is None \
            else f"{row.val_cross_entropy:.4f}"
        mark = "  <- chosen" if row.chosen else ""
        lines.append(f"  {row.trial:>5}  {score:>7}  {loss:>8}  {row.epochs:>6}  {row.seconds:>7.1f}  {row.state}{mark}")
    lines.append(f"chosen: {describe(outcome.chosen.params)}")
    lines.append(f"fine-tuning: {outcome.summary['fine_tuning']}")
    lines.append(f"why: {outcome.why}")
    for item in outcome.skipped[:3]:
        lines.append(f"skipped {item.backbone}: {item.reason}")
    if len(outcome.skipped) > 3:
        lines.append(f"skipped {len(outcome.skipped) - 3} more backbones (see auto.json)")
    return "\n".join(lines)


class ProgressPrinter:
    """Draw a one-line progress bar on stderr and print one line per finished epoch."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.epochs_printed = 0
        self.interactive = self.stream.isatty()

    def __call__(self, log) -> None:
        state = log.snapshot()
        while self.epochs_printed < len(state["epochs"]):
            epoch = state["epochs"][self.epochs_printed]
            self._clear()
            print(f"epoch {epoch['epoch']}/{state['total_epochs']}  " + _format_logs(epoch), file=self.stream)
            self.epochs_printed += 1
        if self.interactive and state["steps_per_epoch"]:
            done = state["step"] / state["steps_per_epoch"]
            bar = "#" * int(done * self.width)
            eta = f"ETA {state['eta']:.0f}s" if state["eta"] is not None else ""
            last = state["batches"][-1] if state["batches"] else {}
            self.stream.write(f"\r[{bar:<{self.width}}] epoch {state['epoch']}/{state['total_epochs']} "
                              f"loss {last.get('loss', float('nan')):.4f} lr {state['learning_rate'] or 0:.2g} {eta}  ")
            self.stream.flush()

    def finish(self) -> None:
        """End the progress line."""
        self._clear()

    def _clear(self) -> None:
        if self.interactive:
            self.stream.write("\r" + " " * (self.width + 70) + "\r")


def _format_logs(epoch: dict) -> str:
    """One epoch's line: cross-entropy loss and accuracy, train and validation, then the learning rate and time.

    When label smoothing (or class weights) make the minimised objective differ from the
    cross-entropy, the objective follows under its own name.
    """
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    if objective_differs(epoch):
        keys += ("objective", "val_objective")
    parts = [f"{key} {epoch[key]:.4f}" for key in keys if key in epoch]
    return "  ".join(parts + [f"lr {epoch['learning_rate']:.2g}", f"{epoch['seconds']:.1f}s"])


def summary(run_path, metrics: dict) -> str:
    """Return the final metrics as a few readable lines."""
    lines = [f"run: {run_path}", f"epochs: {metrics['epochs_run']} in {metrics['train_seconds']:.1f}s"
             + (" (stopped)" if metrics["stopped_by_user"] else "")]
    for split in ("val", "test"):
        result = metrics.get(split)
        if result:
            lines.append(f"{split}: accuracy {result['accuracy']:.4f}  macro F1 {result['macro_f1']:.4f}  "
                         f"loss (cross-entropy) {result['loss']:.4f}  ({result['num_images']} images)")
    return "\n".join(lines)
