"""Progress bar, console stats and TensorBoard for SSL trainers, in one call."""

from __future__ import annotations

from pathlib import Path

from ignite.engine import Engine

from ..utils.enums import SSLKeys

__all__ = ["attach_default_handlers", "loss_from_output"]


def loss_from_output(output: dict) -> float:
    """The scalar loss of an SSL trainer's ``engine.state.output``."""
    return float(output[SSLKeys.LOSS.value])


def attach_default_handlers(engine: Engine, log_dir: str | Path | None = None, progress_bar: bool = True,
                            log_every: int = 1) -> None:
    """Attach Ignite's tqdm ``ProgressBar`` (loss in the bar) and, with ``log_dir``, MONAI's
    ``TensorBoardStatsHandler`` (loss per iteration, ``engine.state.metrics`` per epoch)."""
    if progress_bar:
        from ignite.contrib.handlers import ProgressBar

        ProgressBar(persist=False).attach(engine, output_transform=lambda out: {"loss": loss_from_output(out)})
    if log_dir is not None:
        from monai.handlers import TensorBoardStatsHandler

        TensorBoardStatsHandler(log_dir=str(log_dir), iteration_log=log_every, output_transform=loss_from_output,
                                tag_name="train_loss").attach(engine)
