from __future__ import annotations

import pytest
import torch
from ignite.engine import Events

from monai_ssl.handlers import NaNGuard, NonFiniteLossError, RNGState, SSLCheckpointHandler
from tests.engines.helpers import make_trainer


def test_nan_loss_stops_before_the_step_and_keeps_last_checkpoint(tmp_path):
    trainer, model, opt, sched, ds = make_trainer(max_epochs=3)
    handler = SSLCheckpointHandler(tmp_path, {"trainer": trainer, "network": model, "optimizer": opt,
                                              "rng": RNGState(trainer.data_loader)})
    handler.attach(trainer)
    NaNGuard().attach(trainer)
    real = trainer.compute_loss
    snapshot = {}

    def poisoned(engine, batch):
        out = real(engine, batch)
        if engine.state.iteration == 5:  # epoch 2, after the epoch-1 checkpoint (iteration 3)
            snapshot.update({k: v.detach().clone() for k, v in model.state_dict().items()})
            out["loss"] = out["loss"] * float("nan")
        return out

    trainer.compute_loss = poisoned
    with pytest.raises(NonFiniteLossError, match="epoch 2, iteration 5"):
        trainer.run()
    for k, v in model.state_dict().items():  # the NaN step never reached the weights
        assert torch.equal(v, snapshot[k]) and torch.isfinite(v.float()).all()
    assert [p.name for p in tmp_path.glob("*.pt")] == ["checkpoint_3.pt"]
    saved = torch.load(tmp_path / "checkpoint_3.pt", weights_only=True)["network"]
    assert all(torch.isfinite(v.float()).all() for v in saved.values())
