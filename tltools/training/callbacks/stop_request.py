"""``StopRequest``: end training after the current batch when another thread asks."""

import threading

import keras


class StopRequest(keras.callbacks.Callback):
    """Cooperative stop: :meth:`stop` (from any thread) ends ``fit`` after the current batch.

    The event is shared between both phases of a run, so a stop during phase 1
    also skips phase 2.
    """

    def __init__(self, event: threading.Event | None = None):
        super().__init__()
        self.event = event or threading.Event()

    def stop(self) -> None:
        """Ask training to stop; safe to call from any thread, any number of times."""
        self.event.set()

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.event.is_set()

    def on_train_batch_end(self, batch, logs=None):
        if self.event.is_set():
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        if self.event.is_set():
            self.model.stop_training = True
