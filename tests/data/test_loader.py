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


def _digests(batches) -> list[str]:
    """One digest per batch (its view pairs and their order)."""
    return [hashlib.sha1(b"".join(v.numpy().tobytes() for v in (b["image_view_0"], b["image_view_1"]))).hexdigest()
            for b in batches]


def _take(iterator, n: int) -> list[str]:
    return _digests(next(iterator) for _ in range(n))


PASS = N_PATIENTS // BATCH  # batches per pass


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("served", [1, 3])
def test_mid_pass_checkpoint_resumes_the_rest_of_the_pass(num_workers, served):
    """An Ignite epoch shorter than a pass checkpoints with a live iterator: after a full pass 0 and ``served``
    batches of pass 1, a restored loader (built with another seed) serves the rest of pass 1, then pass 2, exactly
    as the uninterrupted loader."""
    straight = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True, num_workers=num_workers)
    expected = [_digests(iter(straight)) for _ in range(3)]

    first = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True, num_workers=num_workers)
    assert _digests(iter(first)) == expected[0]
    live = iter(first)
    assert _take(live, served) == expected[1][:served]
    state = RNGState(first).state_dict()
    assert state["loaders"][0]["served"] == served and bool(state["loaders"][0]["pass_open"])
    assert int(state["loaders"][0]["passes"]) == 2
    del live

    resumed = SeededDataLoader(_dataset(seed=5), seed=5, batch_size=BATCH, shuffle=True, num_workers=num_workers)
    RNGState(resumed).load_state_dict(state)
    assert RNGState(resumed).state_dict()["loaders"][0]["served"] == served  # loaded, not iterated yet: as loaded
    assert _digests(iter(resumed)) == expected[1][served:]
    assert _digests(iter(resumed)) == expected[2]
    assert resumed.passes == 3


def test_a_fully_served_pass_resumes_with_a_new_pass():
    """Served to its last batch (Ignite's epoch_length == len(loader): no StopIteration yet), the pass is closed."""
    straight = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True)
    expected = [_digests(iter(straight)) for _ in range(2)]
    first = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True)
    live = iter(first)
    _take(live, PASS)
    state = RNGState(first).state_dict()
    assert int(state["loaders"][0]["served"]) == 0 and not bool(state["loaders"][0]["pass_open"])
    resumed = SeededDataLoader(_dataset(seed=5), seed=5, batch_size=BATCH, shuffle=True)
    RNGState(resumed).load_state_dict(state)
    assert _digests(iter(resumed)) == expected[1]


def test_skip_without_workers_loads_no_item(monkeypatch):
    """With num_workers == 0 the skip advances the sampler only: the transform streams (restored by RNGState) must
    not move, so no item may be loaded."""
    ds = _dataset()
    loaded = []
    getitem = type(ds).__getitem__
    monkeypatch.setattr(type(ds), "__getitem__", lambda self, i: loaded.append(i) or getitem(self, i))
    for _ in SeededDataLoader(ds, seed=0, batch_size=BATCH, shuffle=True):
        pass
    last_batch, loaded[:] = loaded[(PASS - 1) * BATCH:], []

    loader = SeededDataLoader(ds, seed=0, batch_size=BATCH, shuffle=True)
    loader.load_state_dict({"seed": torch.tensor(0), "passes": torch.tensor(1), "served": torch.tensor(PASS - 1),
                            "pass_open": torch.tensor(True)})
    live = iter(loader)
    assert loaded == []
    next(live)
    assert loaded == last_batch  # the last batch of pass 0, and only it


def test_older_checkpoint_state_starts_a_new_pass():
    """A state without ``served`` (written before it existed) resumes as before: a new pass."""
    straight = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True)
    expected = [_digests(iter(straight)) for _ in range(2)]
    loader = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True)
    _digests(iter(loader))
    streams = RNGState(loader).state_dict()
    resumed = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True)
    RNGState(resumed).load_state_dict(streams)
    resumed.load_state_dict({"seed": torch.tensor(0), "passes": torch.tensor(1)})
    assert _digests(iter(resumed)) == expected[1]


def test_mid_pass_resume_with_an_epoch_sampler():
    """A ``DistributedSampler`` draws the pass's order from its epoch when the pass starts (epoch 1 here); the
    resumed run has set epoch 2 by then (MONAI's EPOCH_STARTED handler), yet the rest of the pass is epoch 1's, and
    the sampler is left at epoch 2 for the passes to come."""
    from torch.utils.data import DistributedSampler

    def loader(seed):
        ds = _dataset(seed)
        sampler = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=0)
        return SeededDataLoader(ds, seed=seed, rank=0, batch_size=BATCH // 2, sampler=sampler), sampler

    straight, s = loader(0)
    s.set_epoch(1)
    expected = _digests(iter(straight))
    first, s = loader(0)
    s.set_epoch(1)
    live = iter(first)
    _take(live, 1)
    s.set_epoch(2)  # a new Ignite epoch, same pass
    _take(live, 1)
    state = RNGState(first).state_dict()
    assert int(state["loaders"][0]["sampler_epoch"]) == 1
    resumed, s = loader(5)
    RNGState(resumed).load_state_dict(state)
    s.set_epoch(3)
    assert _digests(iter(resumed)) == expected[2:]
    assert s.epoch == 3


def test_a_checkpoint_past_the_end_of_the_pass_is_refused():
    loader = SeededDataLoader(_dataset(), seed=0, batch_size=BATCH, shuffle=True)
    loader.load_state_dict({"seed": torch.tensor(0), "passes": torch.tensor(1), "served": torch.tensor(PASS + 1),
                            "pass_open": torch.tensor(True)})
    with pytest.raises(RuntimeError, match=f"{PASS + 1} batches into pass 0, but this pass ends after {PASS}"):
        iter(loader)
    with pytest.raises(ValueError, match="inconsistent state"):
        loader.load_state_dict({"seed": torch.tensor(0), "passes": torch.tensor(0), "pass_open": torch.tensor(True)})
