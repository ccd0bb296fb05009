"""Which backbones auto mode tries, what extracting their features would cost, and the extraction itself.

Each candidate's pooled features over every image of the dataset go through
the trainer's own feature cache (:mod:`tltools.training.feature_cache`), cut
where the trainer cuts (:func:`tltools.training.split_model.split_at_pooling`),
so the final run of the chosen backbone finds them cached, and so does any
later run or auto run on the same images.

Backbones are tried offline ones first (their ImageNet weights ship with
tltools), then those whose Keras weights are already downloaded; the others
are skipped with a note rather than downloaded inside someone's time budget.
Before extracting, a candidate's cost is estimated from its measured images/s
on a few images times the dataset size (or, before it is even built, scaled
from the first backbone's measured speed by parameters and input pixels); one
that would not fit in the time left is skipped with a note. Images are decoded
batch by batch as the extraction asks for them, so an extraction that runs
past its time limit stops within a batch.
"""

import dataclasses
import os
import re
import time
from pathlib import Path

import numpy as np

from tltools.backbones.registry import BackboneSpec, get_backbone, list_backbones
from tltools.data.dataset import Dataset
from tltools.data.pipeline import decode_images
from tltools.errors import TLToolsError
from tltools.model.builder import build_model
from tltools.training.feature_cache import extract_features, feature_key, image_table, load_features
from tltools.training.split_model import split_at_pooling

# Images decoded and pushed through a backbone to measure its speed.
PROBE_IMAGES = 16
# Reason of the backbones left out by ``max_backbones``.
LIMITED = "auto mode was limited in the number of backbones"
# Factor on measured extraction estimates: a probe of a few images runs faster than a whole pass on a busy machine.
SAFETY = 1.5


@dataclasses.dataclass(eq=False)
class BackboneFeatures:
    """One backbone's pooled features of every image, in cache order (:func:`image_table`).

    Attributes:
        backbone: Registry name.
        image_size: Input side the features were computed at.
        features: Array (images, feature size): in memory or row-readable (``features[rows]``).
        hit: Whether they were already cached.
        seconds: Time spent building, measuring and extracting.
        build_seconds: Time one build of the full model took (the final run builds it again).
        pass_seconds: Time (measured, or estimated for a cache hit) of one pass of the base over
            every image, decoding included: what caching activations for fine-tuning costs.
    """

    backbone: str
    image_size: int
    features: object
    hit: bool
    seconds: float
    build_seconds: float
    pass_seconds: float


@dataclasses.dataclass(frozen=True)
class SkippedBackbone:
    """A backbone auto mode did not use, and why (one line)."""

    backbone: str
    reason: str


class _OutOfTime(Exception):
    """Raised from the extraction's progress callback to abandon it when the budget is spent."""


def keras_weights_cached(spec: BackboneSpec) -> bool:
    """Return whether Keras' download cache already holds ``spec``'s headless ImageNet weights.

    Keras keeps downloaded weights in ``$KERAS_HOME/models`` (``~/.keras/models``,
    or ``/tmp/.keras/models`` where the home folder is not writable), named after
    the application (``mobilenet_v2_weights_..._no_top.h5``, ``efficientnetv2-b0_notop.h5``).
    """
    folders = {Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models", Path("/tmp/.keras/models")}
    name = "[_-]?".join(re.escape(part) for part in spec.name.split("_"))
    pattern = re.compile(rf"(^|[_-]){name}([_.-]|$)", re.IGNORECASE)
    for folder in folders:
        if folder.is_dir():
            for file in folder.iterdir():
                lower = file.name.lower()
                if ("notop" in lower or "no_top" in lower) and pattern.search(lower):
                    return True
    return False


def order_candidates(backbones: list[str] | None, weights: str) -> tuple[list[str], list[SkippedBackbone]]:
    """Return the backbones to try, offline ones first, and those skipped because their weights need a download.

    Args:
        backbones: Registry names to consider; None for every registered backbone.
        weights: ``"imagenet"`` (the usual case) or ``"none"``/a file, for which nothing is downloaded.

    Raises:
        TLToolsError: A name is not a registered backbone.
    """
    specs = list_backbones() if backbones is None else [get_backbone(name) for name in backbones]
    if weights != "imagenet":
        return [spec.name for spec in specs], []
    offline = [spec.name for spec in specs if spec.offline]
    downloaded = [spec.name for spec in specs if not spec.offline and keras_weights_cached(spec)]
    skipped = [SkippedBackbone(spec.name, "its ImageNet weights are not downloaded yet (auto mode does not download; "
                                          f"train it once with --backbone {spec.name} to fetch them)")
               for spec in specs if not spec.offline and spec.name not in downloaded]
    return offline + downloaded, skipped


def extract_candidates(
    dataset: Dataset,
    deadline,
    *,
    backbones: list[str] | None = None,
    weights: str = "imagenet",
    image_size: int | None = None,
    pooling: str = "avg",
    batch_size: int = 32,
    keep: float = 0.0,
    min_keep: float = 0.0,
    max_backbones: int | None = None,
    required: bool = True,
    log=None,
) -> tuple[list[BackboneFeatures], list[SkippedBackbone]]:
    """Get the pooled features of every candidate backbone that fits the time left, from the cache or by extraction.

    Args:
        dataset: The images (all splits: the cache holds every image; callers pick rows).
        deadline: A :class:`tltools.auto.budget.Deadline`.
        backbones: Registry names to consider (None: all); see :func:`order_candidates`.
        weights: The base weights, as :class:`TrainConfig` names them.
        image_size: Input side; None uses each backbone's default.
        pooling: The pooling layer the features end with (the final run's).
        batch_size: Images per forward pass.
        keep: Seconds to leave for the search and the final run once one backbone's features are there.
        min_keep: Seconds the least search and final run need; the first backbone may use all but these.
        max_backbones: Most backbones to extract (None: as many as fit).
        required: Raise when no backbone's features could be got (else return none).
        log: Optional ``callable(line)`` told what happens.

    Returns:
        The features got, in the order tried, and the backbones skipped with reasons.

    Raises:
        TLToolsError: No candidate's features fit the budget (the message says what budget would do),
            or none could be built (only when ``required``).
    """
    say = log or (lambda line: None)
    names, skipped = order_candidates(backbones, weights)
    table = image_table(dataset)
    paths = [dataset.root / relpath for relpath in table["relpath"]]
    got: list[BackboneFeatures] = []
    needed: list[float] = []
    measured = None  # (backbone, its spec, input size, seconds per image) of the first extraction timed
    for name in names:
        if max_backbones is not None and len(got) >= max_backbones:
            skipped.append(SkippedBackbone(name, LIMITED))
            continue
        started = deadline.now()
        reserve = keep if got else min_keep
        guess = _scaled_guess(measured, get_backbone(name), image_size, len(paths))
        if guess is not None and not deadline.allows(guess, keep=reserve):
            skipped.append(SkippedBackbone(
                name, f"extracting its features would take about {guess:.0f} s (scaled from "
                      f"{measured[0]}'s measured speed), more than the {max(deadline.remaining - reserve, 0):.0f} s "
                      "left for it"))
            continue
        try:
            model = build_model(name, len(dataset.classes), weights=weights, input_size=image_size, pooling=pooling)
        except TLToolsError as error:
            skipped.append(SkippedBackbone(name, f"it could not be built: {error}"))
            continue
        build_seconds = deadline.now() - started
        size = int(model.input_shape[1])
        split = split_at_pooling(model)
        key = feature_key(dataset, split, backbone=name, weights=weights, image_size=size, table=table)
        features = load_features(key)
        if features is not None:
            pass_seconds = _estimate_seconds(split.extractor, paths, size, batch_size)
            got.append(BackboneFeatures(name, size, features, True, deadline.now() - started, build_seconds,
                                        pass_seconds))
            say(f"{name}: features found in the cache")
            continue
        estimate = SAFETY * _estimate_seconds(split.extractor, paths, size, batch_size)
        if measured is None:
            measured = (name, get_backbone(name), size, estimate / len(paths))
        if not deadline.allows(estimate, keep=reserve):
            needed.append(deadline.elapsed + estimate + min_keep)
            skipped.append(SkippedBackbone(
                name, f"extracting its features would take about {estimate:.0f} s, more than the "
                      f"{max(deadline.remaining - reserve, 0):.0f} s left for it"))
            continue
        images = _DecodedOnDemand(paths, size, deadline.until(reserve), deadline.now)
        try:
            extract_features(split.extractor, [key], [(images, np.arange(len(paths)))], batch_size=batch_size)
        except _OutOfTime:
            needed.append(deadline.elapsed / max(images.done, 1) * len(paths) + min_keep)
            skipped.append(SkippedBackbone(name, f"the time budget ran out while extracting its features "
                                                 f"({images.done} of {len(paths)} images)"))
            continue
        features = load_features(key)
        if features is None:
            skipped.append(SkippedBackbone(name, "its features could not be read back from the cache"))
            continue
        seconds = deadline.now() - started
        if measured[0] == name:  # the whole pass, timed, beats the probe's estimate
            measured = (name, measured[1], size, SAFETY * (seconds - build_seconds) / len(paths))
        got.append(BackboneFeatures(name, size, features, False, seconds, build_seconds, seconds - build_seconds))
        say(f"{name}: features of {len(paths)} images extracted in {seconds:.0f} s (estimated {estimate:.0f} s)")
    if not got and required:
        hint = (f"; about {min(needed):.0f} s would do" if needed else "")
        reasons = "; ".join(f"{item.backbone}: {item.reason}" for item in skipped[:3])
        raise TLToolsError(f"auto mode found no backbone whose features fit the {deadline.seconds:.0f} s budget "
                           f"({reasons}){hint}; raise --time-budget or name an offline backbone")
    return got, skipped


def _scaled_guess(measured, spec: BackboneSpec, image_size: int | None, images: int) -> float | None:
    """Guess a backbone's extraction seconds from another one's measured speed, before building it.

    Cost is taken as proportional to parameters times input pixels: rough, but it
    avoids building (seconds each) backbones that clearly cannot fit.
    """
    if measured is None:
        return None
    _, reference, reference_size, per_image = measured
    size = image_size or spec.default_size
    return per_image * images * (spec.params / reference.params) * (size / reference_size) ** 2


class _DecodedOnDemand:
    """The dataset's images decoded a slice at a time as the extraction asks for them, until a time limit.

    Decoding and extraction thus interleave batch by batch: memory stays at one
    batch, and an extraction that would overrun the budget stops within a batch.

    Args:
        paths: Image files in cache order.
        size: Side of the square images.
        limit: Time (on ``now``'s clock) after which asking for more raises :class:`_OutOfTime`.
        now: ``callable()`` returning the current time.
    """

    def __init__(self, paths: list, size: int, limit: float, now):
        self.paths, self.size, self.limit, self.now = paths, size, limit, now
        self.done = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, rows: slice) -> np.ndarray:
        if self.now() > self.limit:
            raise _OutOfTime
        images = decode_images(self.paths[rows], self.size, memory_budget=2**62)
        self.done += len(images)
        return images


def _estimate_seconds(extractor, paths: list, size: int, batch_size: int) -> float:
    """Estimate the seconds to decode and extract every image, from :data:`PROBE_IMAGES` of them.

    The forward pass is timed on its second run (the first one builds the graph).
    """
    probe = paths[:PROBE_IMAGES]
    started = time.monotonic()
    images = decode_images(probe, size, memory_budget=2**62)
    decode_seconds = (time.monotonic() - started) / len(probe)
    batch = np.asarray(images[:batch_size], dtype=np.float32)
    extractor.predict_on_batch(batch)
    started = time.monotonic()
    extractor.predict_on_batch(batch)
    extract_seconds = (time.monotonic() - started) / len(batch)
    return len(paths) * (decode_seconds + extract_seconds)
