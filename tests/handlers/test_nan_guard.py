from __future__ import annotations

import pytest
import torch

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


def test_nan_input_does_not_poison_batchnorm_statistics(tmp_path):
    """Issue 21 (4): the forward pass of a NaN input made the BatchNorm running statistics NaN before the guard
    stopped the run, so the live model (and any later export or model.pt) held non-finite buffers."""
    trainer, model, opt, sched, ds = make_trainer(max_epochs=3)
    handler = SSLCheckpointHandler(tmp_path, {"trainer": trainer, "network": model, "optimizer": opt,
                                              "rng": RNGState(trainer.data_loader)})
    handler.attach(trainer)
    NaNGuard().attach(trainer)
    real = trainer.compute_loss
    snapshot = {}

    def nan_input(engine, batch):
        if engine.state.iteration == 5:  # one NaN image in epoch 2, after the epoch-1 checkpoint
            snapshot.update({k: v.detach().clone() for k, v in model.state_dict().items()})
            batch["image_view_0"][1] = float("nan")
        return real(engine, batch)

    trainer.compute_loss = nan_input
    with pytest.raises(NonFiniteLossError, match="epoch 2, iteration 5"):
        trainer.run()
    state = model.state_dict()
    assert "encoder.1.running_mean" in state
    for k, v in state.items():  # weights and BatchNorm buffers are those before the NaN batch
        assert torch.equal(v, snapshot[k]) and torch.isfinite(v.float()).all(), k
    from monai_ssl.handlers import export_encoder

    export_encoder(model, tmp_path / "encoder.pt")  # the stopped run's model is usable

