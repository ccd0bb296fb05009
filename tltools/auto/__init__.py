"""Auto mode: find the best model for a dataset within a time budget, and train it as an ordinary run.

:func:`run_auto` does, within ``time_budget_s`` seconds (feature extraction and
the final run included):

1. **Backbones** (:mod:`tltools.auto.candidates`): the base config's backbone
   first (or the first usable one); then, only for budgets of at least
   :data:`SHORT_BUDGET_S` and with the time fine-tuning would need kept aside,
   the other offline ones and those whose weights are already downloaded, each
   one's extraction cost estimated from its measured images/s.
2. **Head search** (:mod:`tltools.auto.search`): Optuna's TPE sampler and median
   pruner over learning rate, optimizer and weight decay, dropout, label
   smoothing, hidden units, class weights and backbone, each trial a head
   trained to convergence on the cached features with the trainer's own
   schedule (early stopping, reduce-LR on plateau). Trial 0 is the default
   config's head with its own epochs and patience, so the choice is never worse
   on validation than the plain default. Decisions use the training and
   validation splits only (k-fold on train+val when validation is small, at most
   :data:`SHORT_KFOLD` folds on a short budget); the test split is looked at only
   by the final run's evaluation. The search ends when it plateaus (no better
   trial in :data:`PLATEAU_TRIALS` trials or :data:`PLATEAU_SHARE` of the budget).
3. **Result**: the winner is trained by :func:`tltools.training.train` into an
   ordinary run folder (model, metrics, exports work as for any run), with
   ``trials.csv`` and ``auto.json`` beside them (:mod:`tltools.auto.report`).
4. **Fine-tuning, when it pays**: when the budget leaves room for it (its cost is
   estimated from the measured pass over the images), the head run is continued
   with the top two blocks of the base unfrozen one at a time from the top,
   each deeper block at a lower learning rate, the rate decaying along a cosine
   (``gradual_unfreeze``, :mod:`tltools.training.discriminative`), with mild
   augmentation when its cost fits, BatchNorm frozen; the fine-tuned run is kept
   only if its validation accuracy is higher, and ``auto.json`` says which way it went.

The same data, budget, seed and trial count give the same choice; when the
budget, not ``max_trials``, ends the search, a slower machine may run fewer trials.
"""

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np

from tltools.auto.budget import Deadline
from tltools.backbones import get_backbone, list_backbones
from tltools.auto.candidates import LIMITED, BackboneFeatures, SkippedBackbone, extract_candidates
from tltools.auto.report import AUTO_FILE, TRIALS_FILE, describe, leaderboard, read_trials, why, write_report
from tltools.auto.search import FeatureSplits, HeadSearch, SearchSpace, TrialRecord
from tltools.data.augment import AugmentOptions
from tltools.data.dataset import Dataset
from tltools.data.split import SPLITS
from tltools.errors import TLToolsError
from tltools.training import StopRequest, TrainConfig, TrainResult, train
from tltools.training.config import DEFAULT_UNFREEZE, resolve_unfreeze
from tltools.training.feature_cache import image_table

__all__ = ["AUTO_FILE", "FINE_TUNE_LEARNING_RATE", "FINE_TUNE_MAX_LEARNING_RATE", "TRIALS_FILE", "AutoResult",
           "Deadline", "SearchSpace", "TrialRecord", "describe", "fine_tune_learning_rate", "leaderboard",
           "read_trials", "run_auto"]

# Share of the budget kept for the search and the final run while features are extracted.
SEARCH_SHARE = 0.4
# Epoch cap and early-stopping patience of every search trial but the default's (trial 0).
SCHEDULE = (200, 15)
# Fewer validation images than this: trials score by k-fold on train+val.
KFOLD_BELOW = 100
# Budgets below this many seconds are short: only the base config's backbone is extracted (the others' features
# would eat the time fine-tuning needs) and k-fold uses at most SHORT_KFOLD folds (the default's trial is capped).
SHORT_BUDGET_S = 300.0
SHORT_KFOLD = 3
# The head search ends when it plateaus: no better trial in PLATEAU_TRIALS trials or in PLATEAU_SHARE of the
# budget (after at least MIN_TRIALS trials), so the time left goes to fine-tuning.
PLATEAU_TRIALS = 25
PLATEAU_SHARE = 0.15
MIN_TRIALS = 12
# A trial of the same validation accuracy counts as better only with a cross-entropy lower by this much.
PLATEAU_MIN_DELTA = 0.01
# Seconds the final run needs beyond fitting: saving the model, evaluating, writing the run folder.
FINAL_OVERHEAD_S = 6.0
# Fine-tuning tried after the head run: epochs of the top blocks, their early-stopping patience, and the
# most of the budget it may take (beyond that it is not tried, and the search gets the time).
FINE_TUNE_EPOCHS = 15
FINE_TUNE_PATIENCE = 5
# Fine-tuning trains up to this many epochs when the time left allows more than FINE_TUNE_EPOCHS (measured on
# clothing10: 15 epochs were still improving, with half the budget unused after the search plateaued).
FINE_TUNE_MAX_EPOCHS = 60
FINE_TUNE_SHARE = 0.6  # fine-tuning gains more than a longer head search on data unlike ImageNet photos
# Augmentation of the gradual fine-tuning schedule, when its cost (the whole base every epoch) fits the time
# left: mild changes that keep most images' meaning (no flips: they turn digits and text into other shapes).
FINE_TUNE_AUGMENT = {"flip": None, "rotation": 0.05, "zoom": 0.1, "contrast": 0.1, "translation": 0.05}
# Fine-tuning's learning rate: a tenth of the chosen head's, but at least this (measured on the sample digits,
# head at 1e-3, both blocks at once, 15 epochs: 1e-4 reached 0.86 validation accuracy, 3.3e-4 0.96; on flowers12,
# head at 0.014, a fixed 3e-4 did not improve validation where a tenth of the head's rate had: 0.986 -> 0.993).
FINE_TUNE_LEARNING_RATE = 3e-4
# ... and at most this (measured on flowers12 from one head, adamw at 0.014, all at once, 15 epochs: 3e-4 and
# 6e-4 raised validation accuracy 0.979 -> 0.986 (test 0.958 -> 0.979); 1e-3 and 1.4e-3 did not improve it,
# and in an auto run 1.4e-3 collapsed it to 0.083).
FINE_TUNE_MAX_LEARNING_RATE = 6e-4
# Epochs a searched head is expected to need until early stopping, before any searched trial has run.
EXPECTED_EPOCHS = 30
# Seconds the trainer takes per epoch on cached features beyond its steps (pipeline, callbacks, logging),
# and per step of a batch.
TRAINER_EPOCH_S = 0.2
TRAINER_STEP_S = 0.004
# Seconds building a backbone is assumed to take before one has been built.
DEFAULT_BUILD_S = 5.0


@dataclasses.dataclass
class AutoResult:
    """What :func:`run_auto` produced.

    Attributes:
        result: The final run (as :func:`tltools.training.train` returns it).
        trials: Every trial, in order.
        chosen: The trial whose settings the run trained.
        config: The run's settings.
        why: One line saying why these settings won.
        skipped: Backbones not used, with reasons.
        seconds: Wall time of the whole auto run.
        summary: The content of ``auto.json``.
    """

    result: TrainResult
    trials: list[TrialRecord]
    chosen: TrialRecord
    config: TrainConfig
    why: str
    skipped: list[SkippedBackbone]
    seconds: float
    summary: dict

    @property
    def run(self):
        """The run folder as read back (:class:`tltools.runs.RunInfo`)."""
        return self.result.run


def run_auto(
    dataset: Dataset,
    *,
    time_budget_s: float = 600.0,
    seed: int | None = None,
    base_config: TrainConfig | None = None,
    on_trial=None,
    runs_root: Path | None = None,
    backbones: list[str] | None = None,
    max_backbones: int | None = None,
    max_trials: int = 200,
    fine_tune: bool = True,
    space: SearchSpace | None = None,
    stop: StopRequest | None = None,
    log=None,
    clock=time.monotonic,
) -> AutoResult:
    """Search backbones and head settings within a time budget and train the best as an ordinary run.

    Args:
        dataset: The data; split as ``base_config`` says, like any run.
        time_budget_s: Seconds for everything, extraction and final run included.
        seed: Seed of the split, the search and the run; None uses ``base_config``'s.
        base_config: The plain settings auto mode starts from and never does worse than
            (trial 0); its head settings are the defaults of the search. None: ``TrainConfig()``.
        on_trial: Optional ``callable(TrialRecord)`` after each trial (a live leaderboard).
        runs_root: Folder for the run folder; defaults to :func:`tltools.paths.runs_dir`.
        backbones: Registry names to consider; None: every backbone usable without a download.
        max_backbones: Most backbones to extract features for (None: as many as fit).
        max_trials: Most trials, the default's included.
        fine_tune: After the head run, try fine-tuning the top block of the chosen backbone when the
            budget allows it, and keep it only if validation improves (accuracy, then cross-entropy).
        space: The ranges of the head search (default :class:`SearchSpace`); always widened to
            include the base config's values.
        stop: Optional :class:`tltools.training.StopRequest`: once it is requested, no further trial starts
            (one already running ends at its next epoch check only through the budget), the best trial so far
            is trained and stopped at once, keeping its best epoch, and fine-tuning is not tried.
        log: Optional ``callable(line)`` told each step.
        clock: Monotonic time source shared by every deadline check.

    Returns:
        The run, every trial, the chosen one and why.

    Raises:
        TLToolsError: Unusable settings or data, or not even one backbone's features fit the budget.
    """
    say = log or (lambda line: None)
    deadline = Deadline(time_budget_s, clock=clock)
    base = base_config or TrainConfig()
    if seed is not None:
        base = _replace(base, seed=seed)
    seed = base.seed
    split = _run_split(dataset, base)
    if split.split("val").empty:
        raise TLToolsError("auto mode needs validation images; set val_fraction above 0 or add a val/ folder")
    if base.augment.enabled or base.fine_tune_epochs:
        say("auto mode searches the head on cached features: augmentation and fine-tuning of the base "
            "settings are not used")

    wanted = [spec.name for spec in list_backbones()] if backbones is None else list(backbones)
    if base.backbone in wanted:  # the base config's backbone first among those equally available
        wanted = [base.backbone, *[name for name in wanted if name != base.backbone]]
    epoch_seconds = _trainer_epoch_seconds(len(split.split("train")), base.batch_size)
    default_epochs = _expected_epochs(base)  # the default's epochs until early stopping, before trial 0 says
    least = DEFAULT_BUILD_S * 1.5 + (default_epochs + 1) * epoch_seconds + FINAL_OVERHEAD_S  # trial 0 + its run
    short = deadline.seconds < SHORT_BUDGET_S
    options = dict(weights=base.weights, image_size=base.image_size, pooling=base.pooling,
                   batch_size=base.batch_size, log=say)
    # The base config's backbone (or the first usable one) first; the fine-tuning it would need is then known,
    # and further backbones are extracted only with that time kept aside.
    got, skipped = extract_candidates(split, deadline, backbones=wanted, keep=max(SEARCH_SHARE * deadline.seconds,
                                                                                   least),
                                      min_keep=least, max_backbones=1, **options)
    rest = [item.backbone for item in skipped if item.reason == LIMITED]
    skipped = [item for item in skipped if item.reason != LIMITED]
    sizes = (len(split.split("train")), len(split.split("val")), len(split.items))
    tuning_plan = _fine_tune_plan(got[0], *sizes, epoch_seconds, deadline.seconds) if fine_tune else None
    if rest and short:
        skipped += [SkippedBackbone(name, f"the {deadline.seconds:.0f} s budget is short (under {SHORT_BUDGET_S:.0f} "
                                          "s): its time goes to the search and fine-tuning") for name in rest]
    elif rest and (max_backbones is None or max_backbones > 1):
        more, more_skipped = extract_candidates(
            split, deadline, backbones=rest, keep=max(SEARCH_SHARE * deadline.seconds, least)
            + (tuning_plan[0] if tuning_plan else 0.0), min_keep=least, required=False,
            max_backbones=None if max_backbones is None else max_backbones - 1, **options)
        got += more
        skipped += more_skipped
    by_name = {item.backbone: item for item in got}
    say(f"features ready after {deadline.elapsed:.1f} s")

    data = _feature_splits(split, got)
    default = _default_params(base, got)
    search = HeadSearch(data, seed=seed, default=default,
                        default_schedule=(base.epochs, base.early_stopping_patience), schedule=SCHEDULE,
                        batch_size=base.batch_size, space=space, kfold_below=KFOLD_BELOW,
                        kfold_most=SHORT_KFOLD if short else 5,
                        reduce_lr=(base.reduce_lr_patience, base.reduce_lr_factor), clock=clock)
    scheme = f"{search.kfold}-fold on train+val" if search.kfold > 1 else "scored on the validation split"
    say(f"head search on {', '.join(by_name)}: {scheme}")

    slowest_build = max(item.build_seconds for item in got)
    if not fine_tune:
        tuning, tuning_note = 0.0, "not tried (switched off)"
    elif tuning_plan[0] > FINE_TUNE_SHARE * deadline.seconds:
        tuning = tuning_plan[0]
        tuning_note = (f"not tried: it would need about {tuning:.0f} s of the {deadline.seconds:.0f} s budget; "
                       f"a budget of {tuning / FINE_TUNE_SHARE:.0f} s or more allows it")
        tuning = 0.0
    else:
        tuning, tuning_note = tuning_plan[0], None

    def final_reserve(records, *, default_only=False) -> float:
        """Seconds the final run would need: of the default settings, or of the slowest-converging trial so far."""
        scored = [record for record in records if record.score is not None and record.epochs]
        epoch = max((record.seconds / record.epochs for record in scored), default=0.0)
        searched = [record.epochs / search.kfold for record in scored if record.number > 0]
        own = [record.epochs / search.kfold for record in scored if record.number == 0]
        default_run = max(own) if own else default_epochs
        epochs = default_run if default_only else max([default_run, *(searched or [EXPECTED_EPOCHS])])
        return 1.5 * slowest_build + epochs * max(epoch_seconds, 3 * epoch) + FINAL_OVERHEAD_S + tuning

    ended = f"it reached {max_trials} trials (max_trials)"
    best_key, best_trial, best_time = None, 0, clock()
    while len(search.records) < max_trials:
        if stop is not None and stop.requested and search.records:
            say("stop requested: the search ends here and the best trial so far is trained")
            ended = "stop requested"
            break
        if not search.records:  # the default's trial always runs to its end: it is the floor of the choice
            reserve, stop_at = final_reserve([], default_only=True), None
        else:
            reserve = final_reserve(search.records)
            if not deadline.allows(_typical_trial_seconds(search.records), keep=reserve):
                ended = f"the time left was kept for the final run{' and fine-tuning' if tuning else ''}"
                break
            stop_at = deadline.until(reserve)
        record = search.run_trial(stop_at=stop_at)
        say(f"trial {record.number}: {record.state}, val accuracy "
            f"{'-' if record.score is None else f'{record.score:.3f}'} in {record.seconds:.1f} s")
        if on_trial is not None:
            on_trial(record)
        if record.state == "stopped":
            ended = "the time budget ran out inside a trial"
            break
        if record.state == "complete" and record.score is not None and (
                best_key is None or record.score > best_key[0]
                or (record.score == best_key[0] and record.val_cross_entropy < best_key[1] - PLATEAU_MIN_DELTA)):
            best_key, best_trial, best_time = (record.score, record.val_cross_entropy), len(search.records), clock()
        since = clock() - best_time
        if len(search.records) >= MIN_TRIALS and (len(search.records) - best_trial >= PLATEAU_TRIALS
                                                  or since >= PLATEAU_SHARE * deadline.seconds):
            ended = (f"it plateaued: no better trial in the last {len(search.records) - best_trial} trials "
                     f"({since:.0f} s)")
            say(f"head search ended: {ended}")
            break

    chosen = search.best()
    chosen.chosen = True
    default_record = search.records[0]
    reason = why(chosen, default_record, len(search.records), scheme)
    config = _final_config(base, chosen, by_name[chosen.params["backbone"]])
    say(f"chosen: {reason}")
    started = clock()
    default_run_epochs = default_record.epochs / search.kfold if default_record.epochs else default_epochs
    result = _train_within(config, dataset, deadline, runs_root, user_stop=stop,
                           least=1.5 * slowest_build + (default_run_epochs + 1) * epoch_seconds)
    say(f"final run: {result.run.status} after {result.metrics['epochs_run']} epochs in {clock() - started:.1f} s "
        f"(reserved {final_reserve(search.records, default_only=chosen.number == 0):.1f} s)")
    head_config = config
    if tuning and stop is not None and stop.requested:
        tuning_note = "not tried: stop requested"
    elif tuning:
        result, config, tuning_note = _try_fine_tuning(result, config, by_name[config.backbone], dataset,
                                                       deadline, runs_root, say, stop, sizes=sizes,
                                                       epoch_seconds=epoch_seconds)
        if config is not head_config:
            reason += f"; {tuning_note}"
    val_accuracy = result.metrics["val"]["accuracy"]
    summary = {
        "time_budget_s": deadline.seconds,
        "seconds": round(deadline.elapsed, 2),
        "seed": seed,
        "chosen_trial": chosen.number,
        "why": reason,
        "chosen_settings": chosen.params,
        "search_val_accuracy": chosen.score,
        "run_val_accuracy": val_accuracy,
        "default_search_val_accuracy": default_record.score,
        "trials": len(search.records),
        "trials_pruned": sum(record.state == "pruned" for record in search.records),
        "search_ended": ended,
        "validation": scheme,
        "backbones": [{"backbone": item.backbone, "image_size": item.image_size, "cached": item.hit,
                       "seconds": round(item.seconds, 2)} for item in got],
        "skipped_backbones": [dataclasses.asdict(item) for item in skipped],
        "fine_tuning": tuning_note or "not tried: no time was left",
    }
    write_report(result.run.path, search.records, summary)
    return AutoResult(result, search.records, chosen, config, reason, skipped, deadline.elapsed, summary)


def _fine_tune_plan(features: BackboneFeatures, train_images: int, val_images: int, images: int,
                    epoch_seconds: float, budget: float) -> tuple[float, float, float, float]:
    """Return how fine-tuning ``features``' backbone would run and the seconds it is expected to take.

    Without augmentation, one pass of the base caches the activations below the unfrozen blocks and an
    epoch runs only those blocks (taken as half a pass over the training images); with augmentation every
    epoch runs the whole base forward over the training images, backward through the unfrozen blocks (taken
    as 0.6 of a forward pass) and forward over the validation images.

    Returns:
        ``(seconds for FINE_TUNE_EPOCHS epochs without augmentation, seconds before the first epoch,
        seconds per epoch without augmentation, seconds per epoch with it)``.
    """
    per_image = features.pass_seconds / max(images, 1)
    fixed = 1.5 * features.build_seconds + features.pass_seconds + FINAL_OVERHEAD_S
    cached = max(epoch_seconds, 0.5 * per_image * train_images)
    augmented = max(epoch_seconds, per_image * (1.6 * train_images + val_images))
    return fixed + FINE_TUNE_EPOCHS * cached, fixed, cached, augmented


def _try_fine_tuning(head: TrainResult, config: TrainConfig, features: BackboneFeatures, dataset: Dataset,
                     deadline: Deadline, runs_root, say, stop=None, *, sizes=(0, 0, 0),
                     epoch_seconds: float = 0.0) -> tuple[TrainResult, TrainConfig, str]:
    """Continue the head run with the top blocks of its base unfrozen; keep whichever run is best on validation.

    What is unfrozen is the config's default (:data:`tltools.training.config.DEFAULT_UNFREEZE`, the top two
    blocks), BatchNorm frozen. Two schedules are tried while time is left, each from the head run: first
    both blocks at once at :func:`fine_tune_learning_rate` (a tenth of the head's, clamped), reduced on
    plateaus (:data:`FINE_TUNE_EPOCHS`, on the cached activations below them); then gradually
    (``gradual_unfreeze``: the top block first, each deeper block at a lower rate, cosine-decaying from the
    same rate) for as many epochs as the time left allows (up to :data:`FINE_TUNE_MAX_EPOCHS`), with
    augmentation (:data:`FINE_TUNE_AUGMENT`) when at least :data:`FINE_TUNE_EPOCHS` of its costlier epochs
    fit. The head run, or the best of them on validation (accuracy, then cross-entropy, as the search ranks
    its trials), is kept.

    Returns:
        The run to keep, its settings, and one line saying what fine-tuning did.
    """
    blocks = get_backbone(features.backbone).blocks
    if not blocks:
        return head, config, f"not tried: {features.backbone} has no named blocks to unfreeze"
    _, fixed, per_epoch, augmented_epoch = _fine_tune_plan(features, *sizes, epoch_seconds, deadline.seconds)
    before = head.metrics["val"]["accuracy"]
    unfreeze = resolve_unfreeze(features.backbone, DEFAULT_UNFREEZE)
    first = unfreeze.removeprefix("block:")
    best, best_config, best_how, tried = head, config, None, []
    for gradual in (False, True):
        if stop is not None and stop.requested:
            break
        augment = False
        if gradual:  # the rest of the time, if at least FINE_TUNE_EPOCHS fit; with augmentation if they fit so
            augment = 0.8 * (deadline.remaining - fixed) / augmented_epoch >= FINE_TUNE_EPOCHS
            room = 0.8 * (deadline.remaining - fixed) / (augmented_epoch if augment else per_epoch)
            if room < FINE_TUNE_EPOCHS:
                break
            epochs = int(min(FINE_TUNE_MAX_EPOCHS, room))
        else:
            epochs = FINE_TUNE_EPOCHS
        tuned_config = _replace(config, epochs=0, fine_tune_epochs=epochs, unfreeze=unfreeze,
                                fine_tune_learning_rate=fine_tune_learning_rate(config.learning_rate),
                                gradual_unfreeze=gradual,
                                augment=FINE_TUNE_AUGMENT if augment else dataclasses.asdict(AugmentOptions()),
                                early_stopping_patience=FINE_TUNE_PATIENCE, reduce_lr_patience=2)
        how = ("gradually" + (" with augmentation" if augment else "")) if gradual else "all at once"
        say(f"fine-tuning from block {first} {how}, at most {epochs} epochs (about {fixed + epochs * per_epoch:.0f} s "
            f"estimated, {deadline.remaining:.0f} s left)")
        started = deadline.now()
        try:
            tuned = _train_within(tuned_config, dataset, deadline, runs_root, least=0.0, from_run=head.run.path,
                                  user_stop=stop)
        except TLToolsError as error:
            tried.append(f"{how} failed ({error})")
            continue
        after = tuned.metrics["val"]["accuracy"]
        tried.append(f"{how} {after:.3f} (cross-entropy {tuned.metrics['val']['loss']:.3f})")
        say(f"fine-tuning {how}: val accuracy {before:.3f} -> {after:.3f} in {deadline.now() - started:.1f} s")
        if _validation_key(tuned) > _validation_key(best):
            best, best_config, best_how = tuned, tuned_config, how
    if best is head:
        return head, config, (f"fine-tuning from block {first} did not improve validation accuracy {before:.3f} "
                              f"(cross-entropy {head.metrics['val']['loss']:.3f}; tried: "
                              f"{', '.join(tried) or 'nothing, stop requested'}); the head-only run is kept")
    after = best.metrics["val"]
    gain = (f"validation accuracy {before:.3f} → {after['accuracy']:.3f}" if after["accuracy"] > before else
            f"validation cross-entropy {head.metrics['val']['loss']:.3f} → {after['loss']:.3f} at the same "
            f"accuracy {before:.3f}")
    return best, best_config, (f"fine-tuning from block {first} {best_how} improved {gain} (tried: "
                               f"{', '.join(tried)}; head-only run: {head.run.path.name})")


def _validation_key(result: TrainResult) -> tuple[float, float]:
    """Return what ranks runs on validation, as the search ranks its trials: accuracy, then the lower
    cross-entropy (a tie in accuracy on a few hundred images is common; the loss still tells them apart)."""
    return result.metrics["val"]["accuracy"], -result.metrics["val"]["loss"]


def fine_tune_learning_rate(head_learning_rate: float) -> float:
    """Return auto mode's fine-tuning rate for a head trained at ``head_learning_rate``: a tenth of it, kept
    between :data:`FINE_TUNE_LEARNING_RATE` and :data:`FINE_TUNE_MAX_LEARNING_RATE`."""
    return min(FINE_TUNE_MAX_LEARNING_RATE, max(FINE_TUNE_LEARNING_RATE, head_learning_rate / 10))


def _expected_epochs(config: TrainConfig) -> int:
    """Return the phase-1 epochs ``config`` is expected to train: its cap without early stopping, else
    at most :data:`EXPECTED_EPOCHS` plus the patience (a head on cached features converges in tens of epochs)."""
    if not config.early_stopping_patience:
        return config.epochs
    return min(config.epochs, EXPECTED_EPOCHS + config.early_stopping_patience)


def _trainer_epoch_seconds(train_images: int, batch_size: int) -> float:
    """Return the seconds the trainer is expected to take per epoch on cached features."""
    return TRAINER_EPOCH_S + TRAINER_STEP_S * -(-train_images // batch_size)


def _typical_trial_seconds(records: list[TrialRecord]) -> float:
    """Return the expected length of the next trial: the median searched trial, or 3x the default's (trial 0
    trains for the default's few epochs, searched trials until they converge)."""
    searched = [record.seconds for record in records if record.number > 0]
    if searched:
        return float(np.median(searched))
    return 3 * records[0].seconds if records else 0.0


def _replace(config: TrainConfig, **changes) -> TrainConfig:
    """Return a copy of ``config`` with ``changes`` (validated like any config)."""
    return TrainConfig.from_dict({**config.to_dict(), **changes})


def _run_split(dataset: Dataset, config: TrainConfig) -> Dataset:
    """Return ``dataset`` split as the trainer will split it for ``config``."""
    return dataset.with_splits(val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                               seed=config.seed)


def _feature_splits(dataset: Dataset, got: list[BackboneFeatures]) -> FeatureSplits:
    """Return the features with the train and val rows only: the test split never reaches the search."""
    table = image_table(dataset)
    position = dict(zip(table["relpath"], table["row"]))
    used = [name for name in SPLITS if name != "test"]
    rows = {name: np.array([position[path] for path in dataset.split(name)["relpath"]], dtype=np.int64)
            for name in used}
    labels = {name: dataset.labels(name) for name in used}
    return FeatureSplits({item.backbone: item.features for item in got}, rows, labels, len(dataset.classes))


def _default_params(base: TrainConfig, got: list[BackboneFeatures]) -> dict:
    """Return the base config's head settings as search parameters (trial 0)."""
    names = [item.backbone for item in got]
    return {"backbone": base.backbone if base.backbone in names else names[0],
            "learning_rate": base.learning_rate, "optimizer": base.optimizer, "weight_decay": base.weight_decay,
            "dropout": base.dropout, "label_smoothing": base.label_smoothing, "dense_units": base.dense_units,
            "class_weights": base.class_weights}


def _final_config(base: TrainConfig, chosen: TrialRecord, features: BackboneFeatures) -> TrainConfig:
    """Return the run's settings: the base config with the chosen trial's head, schedule and backbone."""
    params = chosen.params
    return _replace(
        base, backbone=params["backbone"], image_size=features.image_size, learning_rate=params["learning_rate"],
        optimizer=params["optimizer"], weight_decay=params.get("weight_decay", base.weight_decay),
        dropout=params["dropout"], label_smoothing=params["label_smoothing"], dense_units=params["dense_units"],
        class_weights=params["class_weights"], epochs=chosen.epoch_cap, early_stopping_patience=chosen.patience,
        fine_tune_epochs=0, unfreeze="all", augment=dataclasses.asdict(AugmentOptions()))


def _train_within(config: TrainConfig, dataset: Dataset, deadline: Deadline, runs_root, *,
                  least: float, from_run=None, user_stop: StopRequest | None = None) -> TrainResult:
    """Train ``config``, asking the run to stop (keeping its best epoch) when the budget is nearly spent.

    The run gets at least ``least`` seconds (what the default settings need), budget or not:
    a model stopped before its first epoch would be worse than the plain default.
    """
    stop = StopRequest()
    timer = threading.Timer(max(deadline.remaining - FINAL_OVERHEAD_S / 2, least), stop.stop)
    timer.daemon = True
    timer.start()
    done = threading.Event()
    if user_stop is not None:  # the user's stop ends this run too (the budget's timer must not mark it as theirs)
        def relay():
            while not done.wait(0.2):
                if user_stop.requested:
                    stop.stop()
                    return

        threading.Thread(target=relay, daemon=True).start()
    try:
        return train(config, dataset, stop=stop, runs_root=runs_root, from_run=from_run)
    finally:
        done.set()
        timer.cancel()
