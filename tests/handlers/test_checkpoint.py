from __future__ import annotations

import pytest
import torch
from ignite.engine import Events

from monai_ssl.handlers import RNGState, SSLCheckpointHandler, latest_checkpoint, load_checkpoint
from tests.engines.helpers import make_trainer


def _attach(trainer, model, opt, sched, ds, directory, **kwargs):
    to_save = {"trainer": trainer, "network": model, "optimizer": opt, "lr_scheduler": sched,
               "scaler": trainer.grad_scaler, "rng": RNGState(trainer.data_loader)}
    handler = SSLCheckpointHandler(directory, to_save, **kwargs)
    handler.attach(trainer)
    return handler


def test_resume_gives_identical_weights(tmp_path):
    straight = make_trainer(max_epochs=2)
    _attach(*straight, tmp_path / "a")
    straight[0].run()

    first = make_trainer(max_epochs=2)
    _attach(*first, tmp_path / "b")
    first[0].add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())  # "killed" after epoch 1
    first[0].run()
    assert first[0].state.epoch == 1
    del first

    resumed = make_trainer(max_epochs=2, seed=99)  # different seed: everything must come from the checkpoint
    handler = _attach(*resumed, tmp_path / "b")
    assert handler.resumed_from is not None and resumed[0].state.epoch == 1
    resumed[0].run()
    assert resumed[0].state.epoch == 2 and resumed[0].state.iteration == straight[0].state.iteration
    for (name, a), b in zip(straight[1].state_dict().items(), resumed[1].state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"


def test_checkpoint_files_and_weights_only_load(tmp_path):
    trainer, model, opt, sched, ds = make_trainer(max_epochs=3)
    handler = _attach(trainer, model, opt, sched, ds, tmp_path, n_saved=2)
    trainer.run()
    files = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert files == ["checkpoint_6.pt", "checkpoint_9.pt"] and handler.last_checkpoint.name == "checkpoint_9.pt"
    assert not list(tmp_path.glob("*.tmp")) and not [p for p in tmp_path.iterdir() if p.suffix not in (".pt",)]
    state = torch.load(tmp_path / "checkpoint_9.pt", weights_only=True)
    assert {"trainer", "network", "optimizer", "lr_scheduler", "scaler", "rng"} <= set(state)
    assert latest_checkpoint(tmp_path).name == "checkpoint_9.pt"


def test_interrupted_write_leaves_no_truncated_checkpoint(tmp_path, monkeypatch):
    trainer, model, opt, sched, ds = make_trainer(max_epochs=2)
    _attach(trainer, model, opt, sched, ds, tmp_path)
    real_save = torch.save
    calls = {"n": 0}

    def dying_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # second checkpoint: write half, then "die"
            real_save(obj, f, *args, **kwargs)
            f.seek(0) if hasattr(f, "seek") else None
            raise KeyboardInterrupt("killed mid-write")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    monkeypatch.undo()
    assert [p.name for p in tmp_path.glob("*.pt")] == ["checkpoint_3.pt"]
    torch.load(tmp_path / "checkpoint_3.pt", weights_only=True)  # the previous one is intact


def test_corrupt_checkpoint_is_named(tmp_path):
    trainer, model, opt, sched, ds = make_trainer(max_epochs=1)
    (tmp_path / "checkpoint_3.pt").write_bytes(b"PK\x03\x04 not a real zip")
    with pytest.raises(RuntimeError, match="checkpoint_3.pt: unreadable checkpoint"):
        _attach(trainer, model, opt, sched, ds, tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt", {"network": model})


def test_rng_state_roundtrip_restores_transform_streams():
    ds = make_trainer(max_epochs=1)[4]
    state = RNGState(ds).state_dict()
    a = [ds[i]["image_view_0"] for i in range(3)]
    RNGState(ds).load_state_dict(state)
    b = [ds[i]["image_view_0"] for i in range(3)]
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def test_rerunning_a_finished_run_does_not_retrain(tmp_path):
    trainer, model, *rest = make_trainer(max_epochs=2)
    _attach(trainer, model, *rest, tmp_path)
    trainer.run()
    done_iteration = trainer.state.iteration
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    again = make_trainer(max_epochs=2, seed=5)
    handler = _attach(*again, tmp_path)
    again[0].run()  # Ignite alone would restart a finished state from epoch 0
    assert handler.resumed_from is not None
    assert again[0].state.epoch == 2 and again[0].state.iteration == done_iteration
    for name, value in again[1].state_dict().items():
        assert torch.equal(value, weights[name]), f"{name} was retrained"
    assert sorted(p.name for p in tmp_path.glob("*.pt"))[-1] == f"checkpoint_{done_iteration}.pt"

    longer = make_trainer(max_epochs=3, seed=5)
    _attach(*longer, tmp_path)
    longer[0].run()  # a larger target trains on from the checkpoint
    assert longer[0].state.epoch == 3 and longer[0].state.iteration == done_iteration * 3 // 2
