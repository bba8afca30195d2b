"""Child process for ``test_sigkill_resume``: tiny contrastive training with per-epoch checkpoints.

Usage: ``python tests/handlers/sigkill_child.py OUT_DIR SECONDS_PER_ITERATION [NUM_WORKERS]`` (run from the repo
root). Rerunning with the same OUT_DIR resumes from the newest checkpoint; the final weights go to
``OUT_DIR/final.pt``.
"""

from __future__ import annotations

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


def main(out: str, delay: float, num_workers: int = 0) -> None:
    trainer, model, opt, sched, ds = make_trainer(max_epochs=MAX_EPOCHS, num_workers=num_workers)
    SSLCheckpointHandler(out, {"trainer": trainer, "network": model, "optimizer": opt, "lr_scheduler": sched,
                               "scaler": trainer.grad_scaler, "rng": RNGState(trainer.data_loader)}).attach(trainer)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: time.sleep(delay))  # widens the kill window
    trainer.run()
    torch.save(model.state_dict(), Path(out) / "final.pt")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
