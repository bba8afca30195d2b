"""Child process for ``test_sigkill_resume``: tiny contrastive training with per-epoch checkpoints.

Usage: ``python tests/handlers/sigkill_child.py OUT_DIR SECONDS_PER_ITERATION [NUM_WORKERS] [--epoch_length N]
[--kill_at ITERATION]`` (run from the repo root). Rerunning with the same OUT_DIR resumes from the newest checkpoint;
the final weights go to ``OUT_DIR/final.pt``. ``--kill_at`` makes the process SIGKILL itself when that iteration
completes (before the epoch's checkpoint, if the iteration ends an epoch): a kill at a known point.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ignite.engine import Events  # noqa: E402

from monai_ssl.handlers import RNGState, SSLCheckpointHandler  # noqa: E402
from tests.engines.helpers import make_trainer  # noqa: E402

MAX_EPOCHS = 5


def main(out: str, delay: float, num_workers: int = 0, epoch_length: int | None = None,
         kill_at: int | None = None) -> None:
    trainer, model, opt, sched, ds = make_trainer(max_epochs=MAX_EPOCHS, num_workers=num_workers,
                                                  epoch_length=epoch_length)
    SSLCheckpointHandler(out, {"trainer": trainer, "network": model, "optimizer": opt, "lr_scheduler": sched,
                               "scaler": trainer.grad_scaler, "rng": RNGState(trainer.data_loader)}).attach(trainer)
    if delay > 0:
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: time.sleep(delay))  # widens the kill window
    if kill_at is not None:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(once=kill_at),
                                  lambda _: os.kill(os.getpid(), signal.SIGKILL))
    trainer.run()
    torch.save(model.state_dict(), Path(out) / "final.pt")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("delay", type=float)
    parser.add_argument("num_workers", type=int, nargs="?", default=0)
    parser.add_argument("--epoch_length", type=int, default=None)
    parser.add_argument("--kill_at", type=int, default=None)
    args = parser.parse_args()
    main(args.out, args.delay, args.num_workers, args.epoch_length, args.kill_at)
