"""Two-stage MICLe schedule (Azizi et al.): SimCLR pairs for the first epochs, then multi-instance pairs."""

from __future__ import annotations

from ignite.engine import Engine, Events

__all__ = ["PairModeSchedule"]


class PairModeSchedule:
    """Switch a :class:`~monai_ssl.data.MultiInstanceDataset` from ``"simclr"`` pairs (two views of one image)
    to ``"micle"`` pairs (two different images of a case) at the start of epoch ``micle_from_epoch`` (1-based).

    The mode is set at every epoch start from the epoch number, so resuming from a checkpoint restores it. With
    ``DataLoader`` workers, use ``persistent_workers=False`` (the default) so workers see the new mode each epoch.
    """

    def __init__(self, dataset, micle_from_epoch: int) -> None:
        if micle_from_epoch < 1:
            raise ValueError(f"micle_from_epoch must be >= 1, got {micle_from_epoch}")
        self.dataset = dataset
        self.micle_from_epoch = micle_from_epoch

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.dataset.pair_mode = "micle" if engine.state.epoch >= self.micle_from_epoch else "simclr"
