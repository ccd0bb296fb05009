"""The one training loop used under any ``tf.distribute`` strategy, in place of Keras' ``fit``.

Keras 3's ``model.fit`` does not work under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585; Ray's own TensorFlow example fails with ``Attempt to
convert a value (PerReplica …) … to a Tensor``, ray-project/ray#47464). What
does work is TensorFlow's custom-loop recipe: the Keras model and optimizer
built under ``strategy.scope()``, the dataset distributed by the strategy, and a
``tf.function`` step that calls ``strategy.run`` (``GradientTape``, the loss
summed per example and divided by the global batch size, ``apply_gradients``).

:func:`fit` is that loop with ``fit``'s contract as the trainer uses it: the
same Keras callbacks get the same calls and logs (``loss`` is the objective,
``accuracy`` and ``crossentropy`` the compiled metrics, ``val_`` versions after
each epoch), so the live log, ``history.csv``, the best-model checkpoint, early
stopping, reduce-LR-on-plateau and stop requests work unchanged. Under several
workers every decision that ends an epoch or the phase is agreed by all
workers (a collective), so no worker waits for one that has left.

Batch size is the global batch: each of the N workers takes every N-th example
of each global batch (the pipeline, seeded, yields the same batches on every
worker), so one step sees what one step of ``fit`` sees. BatchNorm stays in
inference mode: the model calls its base with ``training=False`` and the
trainer keeps BatchNorm layers frozen, as on the ordinary path.
"""

import functools
import threading

import keras
import numpy as np
import tensorflow as tf

from tltools.training.callbacks.stop_request import StopRequest

# Per-step sums every replica contributes, all-reduced: objective, cross-entropy, correct predictions, examples.
_SUMS = 4


class History:
    """What :func:`fit` returns: the epochs it ran (0-based, as ``keras.callbacks.History``) and their logs."""

    def __init__(self):
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def add(self, epoch: int, logs: dict) -> None:
        """Record one finished epoch's logs."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


class AgreedStop(StopRequest):
    """A stop request for one of several workers: asked locally, granted on every worker at the same batch.

    :meth:`ask` (any thread; e.g. when the user pressed Stop) marks it; :func:`fit` agrees on it with the
    other workers after every batch and epoch and then calls :meth:`stop` everywhere at once, so
    ``requested`` (which the trainer reads between phases) is the same on every worker.
    """

    def __init__(self):
        super().__init__()
        self.asked = threading.Event()

    def ask(self) -> None:
        """Ask for a stop; it takes effect on every worker after the next agreement."""
        self.asked.set()


def detach_from_strategy(model: keras.Model) -> keras.Model:
    """Let ``model`` (built under a strategy's scope) predict like a model built outside it; return it.

    Keras remembers the strategy a model was built under and runs ``predict`` through it;
    under ``MultiWorkerMirroredStrategy`` that gathers every worker's outputs, so each
    worker would get the rows of all of them. The variables stay the strategy's; only
    :func:`fit` trains them, through the strategy explicitly.
    """
    model._distribute_strategy = None  # Keras' TensorFlow trainer: None means "the current strategy when called"
    return model


def fit(model: keras.Model, strategy: tf.distribute.Strategy, x: tf.data.Dataset, *,
        validation_data: tf.data.Dataset, initial_epoch: int = 0, epochs: int = 1,
        class_weight: dict | None = None, callbacks=(), **_fit_only) -> History:
    """Train ``model`` on ``x`` under ``strategy`` as ``model.fit`` would, driving the same callbacks.

    Args:
        model: A model compiled (under ``strategy.scope()``) with a per-example Keras loss
            (``model.loss``, e.g. the trainer's label-smoothed cross-entropy) and an optimizer.
        strategy: Any ``tf.distribute`` strategy: the default one, ``MirroredStrategy``
            (one process, several GPUs) or ``MultiWorkerMirroredStrategy`` (one replica per worker).
        x: Batches of (inputs, one-hot labels), the batch size being the global batch.
        validation_data: Batches of (inputs, one-hot labels), evaluated after every epoch.
        initial_epoch: Epoch to start from (epochs are numbered across phases, as in ``fit``).
        epochs: Epoch to end before.
        class_weight: ``{class index: weight}`` multiplying each example's objective, or None.
        callbacks: Keras callbacks; they get ``fit``'s calls and logs.
        **_fit_only: ``fit``'s other arguments (``shuffle``, ``verbose``): the pipelines decide those.

    Returns:
        A :class:`History` of the epochs run.

    Raises:
        ValueError: ``model`` is not compiled.
    """
    if model.optimizer is None or model.loss is None:
        raise ValueError("compile the model (under the strategy's scope) before tltools.distributed.loop.fit")
    history = History()
    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model, epochs=epochs, steps=None, verbose=0)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)  # its slots are the strategy's variables too
    weights = None
    if class_weight:
        table = np.ones(int(model.output_shape[-1]), dtype=np.float32)
        for index, weight in class_weight.items():
            table[int(index)] = weight
        weights = tf.constant(table)
    train_step, eval_step = _steps(model, strategy, weights)
    agreement = _agreement(strategy)
    requests = [callback for callback in callbacks if isinstance(callback, AgreedStop)]

    def agree(stop_training: bool) -> bool:  # also grants a stop request asked on any worker
        asked = any(request.asked.is_set() for request in requests)
        stop, granted = agreement([stop_training, asked])
        if granted:
            for request in requests:
                request.stop()
        return stop or granted
    train_batches, val_batches = distribute(strategy, x), distribute(strategy, validation_data)

    model.stop_training = False
    callback_list.on_train_begin()
    logs: dict = {}
    steps = None
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        totals = np.zeros(_SUMS)
        step = 0
        for step, batch in enumerate(train_batches):
            callback_list.on_train_batch_begin(step)
            totals += train_step(batch).numpy()
            logs = _logs(totals)
            callback_list.on_train_batch_end(step, logs)
            if agree(model.stop_training):  # a stop request: after this batch, on every worker at once
                model.stop_training = True
                break
        if steps is None:  # the pipelines' length is known after one pass; the progress bar wants it
            steps = step + 1
            for callback in callback_list.callbacks:
                callback.params["steps"] = steps
        val_totals = np.zeros(_SUMS)
        for batch in val_batches:
            val_totals += eval_step(batch).numpy()
        logs = {**logs, **{f"val_{key}": value for key, value in _logs(val_totals).items()}}
        callback_list.on_epoch_end(epoch, logs)
        history.add(epoch, logs)
        if agree(model.stop_training):  # early stopping decides from all-reduced numbers: the same everywhere
            break
    callback_list.on_train_end(logs)
    return history


def distribute(strategy: tf.distribute.Strategy, batches: tf.data.Dataset):
    """Return ``batches`` (global batches of ``(inputs, labels)``) as the strategy's distributed dataset.

    Under ``MultiWorkerMirroredStrategy`` (one replica per worker) every worker builds the
    same seeded pipeline and keeps every N-th example of each global batch, so all workers
    run the same number of steps and together see each global batch once; elsewhere
    the strategy splits each batch between its local replicas. A batch is padded to a multiple of
    the replicas with copies of its first examples, masked out (``(inputs, labels, mask)``): TensorFlow's
    convolutions fail on an empty batch, which a small last batch would give some replica.
    """
    batches = batches.map(functools.partial(_padded, multiple=strategy.num_replicas_in_sync))
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return strategy.experimental_distribute_dataset(batches)

    def share(context: tf.distribute.InputContext):
        index, count = context.input_pipeline_id, context.num_input_pipelines
        return batches.map(lambda inputs, labels, mask: (inputs[index::count], labels[index::count],
                                                         mask[index::count]))

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(share, options)


def _padded(inputs, labels, *, multiple: int):
    """``(inputs, labels, mask)``: the batch padded to a multiple of ``multiple`` rows, padding masked out."""
    count = tf.shape(labels)[0]
    padding = tf.math.floormod(-count, multiple)
    extra = tf.math.floormod(tf.range(padding), tf.maximum(count, 1))
    mask = tf.concat([tf.ones([count]), tf.zeros([padding])], 0)
    return (tf.concat([inputs, tf.gather(inputs, extra)], 0), tf.concat([labels, tf.gather(labels, extra)], 0),
            mask)


def _steps(model: keras.Model, strategy: tf.distribute.Strategy, class_weights):
    """Return the ``tf.function`` train and evaluation steps; each returns the all-reduced :data:`_SUMS`."""
    loss = model.loss
    optimizer = model.optimizer

    def sums(labels, probabilities, objective, mask):
        crossentropy = keras.losses.categorical_crossentropy(labels, probabilities) * mask
        correct = tf.cast(tf.equal(tf.argmax(labels, -1), tf.argmax(probabilities, -1)), tf.float32) * mask
        return tf.stack([tf.reduce_sum(objective), tf.reduce_sum(crossentropy), tf.reduce_sum(correct),
                         tf.reduce_sum(mask)])

    def per_example(labels, probabilities, mask):
        values = loss.call(labels, probabilities) * mask  # per example, before any reduction; padding counts 0
        if class_weights is not None:
            values *= tf.gather(class_weights, tf.argmax(labels, -1))
        return values

    def replica_train(inputs, labels, mask):
        context = tf.distribute.get_replica_context()
        # The global number of examples in this step (a smaller last batch counts as what it is).
        global_count = context.all_reduce("sum", tf.reduce_sum(mask))
        with tf.GradientTape() as tape:
            probabilities = model(inputs, training=True)
            objective = per_example(labels, probabilities, mask)
            scaled = tf.reduce_sum(objective) / tf.maximum(global_count, 1.0)
            if model.losses:
                scaled += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return sums(labels, probabilities, objective, mask)

    def replica_eval(inputs, labels, mask):
        probabilities = model(inputs, training=False)
        return sums(labels, probabilities, per_example(labels, probabilities, mask), mask)

    @tf.function
    def train_step(batch):
        return strategy.reduce("SUM", strategy.run(replica_train, args=batch), axis=None)

    @tf.function
    def eval_step(batch):
        return strategy.reduce("SUM", strategy.run(replica_eval, args=batch), axis=None)

    return train_step, eval_step


def _agreement(strategy: tf.distribute.Strategy):
    """Return ``agree(flags) -> list[bool]``: per flag, whether any worker has it set (a collective under
    several workers, so every worker gets the same answer at the same point)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or strategy.num_replicas_in_sync <= 1:
        return lambda flags: [bool(flag) for flag in flags]  # one process: its own flags are everyone's

    @tf.function
    def any_worker(flags):
        per_replica = strategy.run(tf.identity, args=(flags,))
        return strategy.reduce("SUM", per_replica, axis=None)  # tf.distribute reduces by SUM or MEAN only

    return lambda flags: [bool(value > 0) for value in any_worker(tf.constant(flags, tf.float32)).numpy()]


def _logs(totals: np.ndarray) -> dict:
    """Running means as Keras names them: ``loss`` (the objective), ``accuracy``, ``crossentropy``."""
    count = max(float(totals[3]), 1.0)
    return {"loss": float(totals[0] / count), "accuracy": float(totals[2] / count),
            "crossentropy": float(totals[1] / count)}
