"""Bad input and sharding under ``torch.distributed``: a NaN on one process must stop every process at the same
step (no hang in the gradient all-reduce, no rank training on alone), and MICLe's patient bags must survive the
``DistributedSampler`` (one bag per item, so no patient is split across processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from monai_ssl.data import MultiInstanceDataset

from .conftest import DATA, REPO

pytestmark = [pytest.mark.usefixtures("one_thread")]


def _assert_every_rank_stopped_at_the_nan_step(results: list[dict]) -> None:
    assert len(results) == 2
    for r in results:
        assert r["error"] is not None, "a rank trained on past the NaN step"
        assert "non-finite loss on rank(s) [1] of 2" in r["error"] and "iteration 2" in r["error"]
        assert r["iteration"] == 2 and r["completed_iterations"] == 1
        assert r["equal_across_ranks"] and r["weights_of_last_good_step"]


@pytest.mark.dist
@pytest.mark.timeout(120)
def test_nan_on_one_rank_stops_every_rank_forked(tmp_path):
    """The default-suite form: 2 gloo ranks forked from this process (no interpreter start-up), 3 steps; a hang in
    the all-reduce fails at the 60 s join."""
    from tests.forked_ranks import run_ranks

    from ._dist_nan_child import train_with_nan_on_rank_1

    results = run_ranks(lambda rank: train_with_nan_on_rank_1(tmp_path), tmp_path / "ranks", timeout=60)
    _assert_every_rank_stopped_at_the_nan_step(results)
    assert results == [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.dist
@pytest.mark.slow  # two fresh interpreters importing monai: ~40 s idle, 2+ min on a shared 2-core box
@pytest.mark.timeout(300)
def test_nan_on_one_rank_stops_every_rank(tmp_path):
    """The same under ``torchrun`` (its launcher and ``env://`` rendezvous)."""
    child = Path(__file__).with_name("_dist_nan_child.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29553",
           str(child), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True, timeout=280)  # a hang fails here
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _assert_every_rank_stopped_at_the_nan_step([json.loads((tmp_path / f"rank{r}.json").read_text())
                                                for r in (0, 1)])


def _bags(n_items: int = 90) -> MultiInstanceDataset:
    with np.load(DATA / "covid_cxr_256.npz", allow_pickle=False) as z:
        pids = [str(p) for p in z["patient_id"][:n_items]]  # the real patient structure: 1 to 10+ images each
    g = torch.Generator().manual_seed(0)
    data = [{"image": torch.rand(1, 8, 8, generator=g), "patient_id": p} for p in pids]
    return MultiInstanceDataset(data, lambda x: x, seed=0)


@pytest.mark.parametrize("epoch", [0, 3])
def test_distributed_sampler_keeps_patient_bags_whole(epoch):
    ds = _bags()
    shards = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0, drop_last=True)
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
    assert len(shards[0]) == len(shards[1]) == len(ds) // 2
    assert not set(shards[0]) & set(shards[1])  # no bag (patient) on both processes
    patients = [{ds.patient_ids[i] for i in shard} for shard in shards]
    assert not patients[0] & patients[1]
    assert len(patients[0] | patients[1]) >= len(ds) - 1  # drop_last drops at most one bag
    by_patient = {p: {i for i, d in enumerate(ds.datalist) if d["patient_id"] == p} for p in ds.patient_ids}
    multi = 0
    for shard in shards:
        for index in shard:
            item = ds[index]
            first, second = (int(s) for s in item["source_index"])
            assert {first, second} <= by_patient[item["patient_id"]]  # both views from this patient only
            if item["bag_size"] >= 2:
                assert first != second  # MICLe: two different images of the patient
                multi += 1
    assert multi > 0


def test_distributed_sampler_epochs_reshuffle_patients():
    ds = _bags()
    sampler = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=0, drop_last=True)
    sampler.set_epoch(0)
    a = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != a
