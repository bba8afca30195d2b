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


def _child_holding_the_lock(directory):
    """``sigkill_child.py`` training slowly in ``directory``: returns the process once it holds the lock."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, str(repo / "tests" / "handlers" / "sigkill_child.py"), str(directory),
                              "0.5"], cwd=repo, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while True:
        assert child.poll() is None, f"child ended early: {child.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "the child never took the lock"
        try:
            if json.loads((directory / "train.lock").read_text())["pid"] == child.pid:
                return child
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)


def test_second_live_run_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path, caplog):
    """Issue 21 (2): two runs in one output_dir overwrote each other's checkpoints; there was no lock."""
    import json
    import os
    import signal

    from monai_ssl.handlers import RunLockError

    child = _child_holding_the_lock(tmp_path)
    try:
        trainer, model, opt, sched, ds = make_trainer(max_epochs=5)
        with pytest.raises(RunLockError) as err:
            _attach(trainer, model, opt, sched, ds, tmp_path)
        assert str(tmp_path) in str(err.value) and f"pid {child.pid} " in str(err.value)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert json.loads((tmp_path / "train.lock").read_text())["pid"] == child.pid  # left behind by the kill
    trainer, model, opt, sched, ds = make_trainer(max_epochs=5)
    with caplog.at_level("WARNING", logger="monai_ssl.handlers.checkpoint"):
        _attach(trainer, model, opt, sched, ds, tmp_path)
    assert f"taking over the stale lock of pid {child.pid}" in caplog.text
    assert json.loads((tmp_path / "train.lock").read_text())["pid"] == os.getpid()
    trainer.run()
    assert trainer.state.epoch == 5 and not (tmp_path / "train.lock").exists()  # released at the end


def test_attach_prunes_deletes_temp_files_and_falls_back_from_a_truncated_checkpoint(tmp_path, caplog):
    """Issue 21 (2): n_saved was not enforced after a restart, temp files of killed writes stayed for ever, and a
    truncated newest checkpoint stopped the resume instead of falling back to the previous one."""
    straight = make_trainer(max_epochs=5)
    straight[0].run()

    first = make_trainer(max_epochs=5)
    _attach(*first, tmp_path, n_saved=None)
    first[0].add_event_handler(Events.EPOCH_COMPLETED(once=4), lambda e: e.terminate())
    first[0].run()
    assert [p.name for _, p in sorted((int(p.stem.split("_")[1]), p) for p in tmp_path.glob("*.pt"))] == \
        ["checkpoint_3.pt", "checkpoint_6.pt", "checkpoint_9.pt", "checkpoint_12.pt"]
    newest = tmp_path / "checkpoint_12.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # e.g. a full disk
    for name in (".tmp_checkpoint_k1ll3d.part", "tmpab3_x9qz"):  # ours and Ignite's DiskSaver's
        (tmp_path / name).write_bytes(b"half a checkpoint")
    (tmp_path / "notes.txt").write_text("not ours")

    resumed = make_trainer(max_epochs=5, seed=7)
    with caplog.at_level("WARNING", logger="monai_ssl.handlers.checkpoint"):
        handler = _attach(*resumed, tmp_path, n_saved=2)
    assert handler.resumed_from == tmp_path / "checkpoint_9.pt" and resumed[0].state.epoch == 3
    assert "checkpoint_12.pt: unreadable checkpoint" in caplog.text and "checkpoint_9.pt instead" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_12.pt.unreadable", "checkpoint_6.pt",
                                                          "checkpoint_9.pt", "notes.txt", "train.lock"]
    resumed[0].run()
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint_12.pt", "checkpoint_15.pt"]
    for (name, a), b in zip(straight[1].state_dict().items(), resumed[1].state_dict().values()):
        assert torch.equal(a, b), f"{name} differs from the uninterrupted run"


def test_a_diverged_state_is_never_checkpointed(tmp_path):
    """Issue 21 (4): the "last good" checkpoint held inf buffers; a non-finite or absurd state is refused and the
    previous checkpoints stay."""
    from monai_ssl.networks import NonFiniteWeightsError

    trainer, model, opt, sched, ds = make_trainer(max_epochs=3)
    _attach(trainer, model, opt, sched, ds, tmp_path)

    def diverge(engine):
        with torch.no_grad():
            model.encoder[1].running_var.fill_(float("inf"))
            model.head[3].weight[0, 0] = 9.7e28

    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=8), diverge)
    with pytest.raises(NonFiniteWeightsError, match=r"entry 'network'.*encoder.1.running_var \(inf\)") as err:
        trainer.run()
    assert "head.3.weight (max |x| = 9.7e+28)" in str(err.value)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint_3.pt", "checkpoint_6.pt"]
    for p in tmp_path.glob("*.pt"):
        state = torch.load(p, weights_only=True)["network"]
        assert all(torch.isfinite(v.float()).all() for v in state.values())
