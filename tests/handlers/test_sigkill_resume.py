"""A run killed with SIGKILL at a random point resumes from its last checkpoint to the uninterrupted weights."""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.engines.helpers import make_trainer
from tests.handlers.sigkill_child import MAX_EPOCHS

REPO = Path(__file__).resolve().parents[2]
CHILD = [sys.executable, str(REPO / "tests" / "handlers" / "sigkill_child.py")]
PASS, SHORT_EPOCH = 3, 2  # batches per pass of the child's loader; iterations per epoch of the mid-pass cases


@functools.cache
def _uninterrupted_weights(num_workers: int, epoch_length: int | None = None) -> dict[str, torch.Tensor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the child runs single-threaded: same reduction order
    try:
        trainer, model, *_ = make_trainer(max_epochs=MAX_EPOCHS, num_workers=num_workers, epoch_length=epoch_length)
        assert len(trainer.data_loader) == PASS, "the cases below assume 3 batches per pass"
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    return model.state_dict()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_sigkill_at_a_random_point_then_resume_gives_the_uninterrupted_weights(tmp_path, num_workers):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([*CHILD, str(tmp_path), "0.1", str(num_workers)], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("checkpoint_*.pt")):  # wait for the first checkpoint, then kill at random
        assert child.poll() is None, f"child ended early: {child.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    time.sleep(random.Random().uniform(0.0, 0.6))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    assert not (tmp_path / "final.pt").exists()
    for ckpt in tmp_path.glob("checkpoint_*.pt"):  # a kill mid-write never leaves a truncated checkpoint
        torch.load(ckpt, weights_only=True)

    resumed = subprocess.run([*CHILD, str(tmp_path), "0", str(num_workers)], cwd=REPO, env=env, capture_output=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    final = torch.load(tmp_path / "final.pt", weights_only=True)
    for name, value in _uninterrupted_weights(num_workers).items():
        assert torch.equal(final[name], value), f"{name} differs from the uninterrupted run"


@pytest.mark.parametrize("num_workers, kill_at, resume_from", [(0, 5, 4), (2, 5, 4), (2, 9, 8), (0, 7, 6)])
def test_sigkill_mid_pass_then_resume_gives_the_uninterrupted_weights(tmp_path, num_workers, kill_at, resume_from):
    """Epochs of 2 iterations over passes of 3 batches: Ignite keeps the loader iterator across epochs, so the
    checkpoint of iteration 4 is 1 batch into the second pass and that of iteration 8 is 2 batches into the third
    (that of iteration 6 ends a pass: the resumed run starts a new one, a control that held before the fix too). The
    resumed run must serve the rest of the interrupted pass, with the same shuffling and augmentation draws (with
    workers, the same per-worker streams), and reach the uninterrupted weights."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    epoch = ["--epoch_length", str(SHORT_EPOCH)]
    killed = subprocess.run([*CHILD, str(tmp_path), "0", str(num_workers), *epoch, "--kill_at", str(kill_at)],
                            cwd=REPO, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-3000:]
    assert not (tmp_path / "final.pt").exists()
    newest = max(int(p.stem.split("_")[1]) for p in tmp_path.glob("checkpoint_*.pt"))
    assert newest == resume_from, f"expected to resume from iteration {resume_from}, found {newest}"

    resumed = subprocess.run([*CHILD, str(tmp_path), "0", str(num_workers), *epoch], cwd=REPO, env=env,
                             capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    final = torch.load(tmp_path / "final.pt", weights_only=True)
    expected = _uninterrupted_weights(num_workers, SHORT_EPOCH)
    differ = [name for name, value in expected.items() if not torch.equal(final[name], value)]
    assert not differ, f"{len(differ)} of {len(expected)} tensors differ from the uninterrupted run: {differ[:5]}"
