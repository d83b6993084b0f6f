"""Side effects of training (progress, store writes, cancellation) go through these hooks."""

from __future__ import annotations

from dataclasses import dataclass


class RunCancelled(Exception):
    """Raised by a callback to stop training; the run ends `cancelled` with its history kept."""


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_metric: float
    metric_name: str
    lr: float
    seconds: float


class Callback:
    def on_train_begin(self, total_epochs: int, batches_per_epoch: int) -> None: ...

    def on_batch_end(self, epoch: int, batch: int) -> None: ...

    def on_epoch_end(self, record: EpochRecord) -> None: ...

    def on_train_end(self, status: str) -> None: ...


class CallbackList(Callback):
    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks)

    def on_train_begin(self, total_epochs: int, batches_per_epoch: int) -> None:
        for c in self.callbacks:
            c.on_train_begin(total_epochs, batches_per_epoch)

    def on_batch_end(self, epoch: int, batch: int) -> None:
        for c in self.callbacks:
            c.on_batch_end(epoch, batch)

    def on_epoch_end(self, record: EpochRecord) -> None:
        for c in self.callbacks:
            c.on_epoch_end(record)

    def on_train_end(self, status: str) -> None:
        for c in self.callbacks:
            c.on_train_end(status)


class EarlyStopping:
    """Tracks the best validation score; `should_stop` after `patience` epochs without improvement."""

    def __init__(self, patience: int, higher_is_better: bool):
        self.patience, self.higher_is_better = patience, higher_is_better
        self.best_score: tuple[float, float] | None = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def update(self, epoch: int, metric: float, loss: float) -> bool:
        """Returns whether this epoch is the best so far (ties on the metric go to the lower loss)."""
        score = (metric if self.higher_is_better else -metric, -loss)
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience
