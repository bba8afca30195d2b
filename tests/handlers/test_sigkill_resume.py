"""A run killed with SIGKILL at a random point resumes from its last checkpoint to the uninterrupted weights."""

from __future__ import annotations

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


def _uninterrupted_weights(num_workers: int) -> dict[str, torch.Tensor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the child runs single-threaded: same reduction order
    try:
        trainer, model, *_ = make_trainer(max_epochs=MAX_EPOCHS, num_workers=num_workers)
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
