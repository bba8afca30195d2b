"""SeededDataLoader: every worker, epoch and rank draws its own views, reproducibly from the run seed."""

from __future__ import annotations

import hashlib

import pytest
import torch

from monai_ssl.data import MultiInstanceDataset, SeededDataLoader, stream_seed
from monai_ssl.handlers import RNGState
from monai_ssl.transforms import cxr_augmentations

N_PATIENTS, BATCH = 16, 4


def _dataset(seed: int = 0) -> MultiInstanceDataset:
    """Every patient holds the *same* single image, so two equal random draws give byte-equal view pairs."""
    image = torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(7))
    items = [{"image": image.clone(), "patient_id": f"p{i}"} for i in range(N_PATIENTS)]
    return MultiInstanceDataset(items, cxr_augmentations(16), seed=seed)


def _pairs(loader, epochs: int = 2) -> list[str]:
    """One digest per served (view 0, view 1) pair, over ``epochs`` passes."""
    out = []
    for _ in range(epochs):
        for batch in loader:
            for v0, v1 in zip(batch["image_view_0"], batch["image_view_1"]):
                out.append(hashlib.sha1(v0.numpy().tobytes() + v1.numpy().tobytes()).hexdigest())
    return out


def test_plain_torch_dataloader_replays_draws_across_workers_and_epochs():
    """The failure this module exists for (a control: the check below can fail)."""
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(_dataset(), batch_size=BATCH, shuffle=True, num_workers=2)
    pairs = _pairs(loader)
    assert len(set(pairs)) < len(pairs)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_no_view_pair_repeats_over_workers_and_epochs(num_workers):
    loader = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True, num_workers=num_workers)
    pairs = _pairs(loader)
    assert len(pairs) == 2 * N_PATIENTS
    assert len(set(pairs)) == len(pairs), "a view pair was served twice"


def test_same_seed_same_draws_other_seed_other_draws():
    def run(seed):
        return _pairs(SeededDataLoader(_dataset(), seed=seed, batch_size=BATCH, shuffle=True, num_workers=2))

    assert run(0) == run(0)
    assert not set(run(0)) & set(run(1))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_two_ranks_draw_differently(num_workers):
    """Ranks see different samples through a DistributedSampler; here they see the same ones, so only the seed can
    tell them apart."""
    ranks = [_pairs(SeededDataLoader(_dataset(), seed=0, rank=r, batch_size=BATCH, num_workers=num_workers), 1)
             for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])


def test_stream_seed_separates_neighbours():
    seeds = {stream_seed(s, r) for s in range(4) for r in range(4)}
    assert len(seeds) == 16 and all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ValueError, match="non-negative"):
        stream_seed(-1)


def test_refuses_a_generator():
    with pytest.raises(ValueError, match="owns its generator"):
        SeededDataLoader(_dataset(), generator=torch.Generator())


@pytest.mark.parametrize("num_workers", [0, 2])
def test_rng_state_resumes_the_next_pass(num_workers):
    """Checkpoint after pass 1, restore into a loader built with another seed: pass 2 is the uninterrupted one."""
    straight = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True, num_workers=num_workers)
    expected = _pairs(straight, 2)[N_PATIENTS:]

    first = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True, num_workers=num_workers)
    _pairs(first, 1)
    state = RNGState(first).state_dict()
    resumed = SeededDataLoader(_dataset(seed=5), seed=5, batch_size=BATCH, shuffle=True, num_workers=num_workers)
    RNGState(resumed).load_state_dict(state)
    assert _pairs(resumed, 1) == expected
