from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss

from monai_ssl.losses import NTXentLoss


def _reference(views: torch.Tensor, tau: float, pos: torch.Tensor) -> torch.Tensor:
    """Literal per-anchor formula with explicit loops over positives (slow, obvious)."""
    v, b, d = views.shape
    z = F.normalize(views.reshape(v * b, d).double(), dim=1)
    sim = z @ z.T / tau
    losses = []
    for i in range(v * b):
        others = [k for k in range(v * b) if k != i]
        denom = torch.logsumexp(sim[i, others], 0)
        p = [k for k in range(v * b) if pos[i, k]]
        losses.append(torch.stack([denom - sim[i, k] for k in p]).mean())
    return torch.stack(losses).mean()


@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5])
def test_equals_monai_contrastive_loss(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(48, 16, generator=g), torch.randn(48, 16, generator=g)
    ours = NTXentLoss(temperature=tau)(z1, z2)
    monai = ContrastiveLoss(temperature=tau)(z1, z2)
    assert abs(ours.item() - monai.item()) < 1e-5


def test_multi_view_matches_reference():
    g = torch.Generator().manual_seed(1)
    views = torch.randn(3, 10, 8, generator=g)
    idx = torch.arange(30) % 10
    pos = (idx[:, None] == idx[None, :]) & ~torch.eye(30, dtype=torch.bool)
    torch.testing.assert_close(NTXentLoss(0.2)(views).double(), _reference(views, 0.2, pos), rtol=1e-5, atol=1e-6)


def test_group_ids_and_mask_make_patient_positives():
    g = torch.Generator().manual_seed(2)
    views = torch.randn(2, 8, 6, generator=g)
    groups = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4])
    idx = groups.repeat(2)
    pos = (idx[:, None] == idx[None, :]) & ~torch.eye(16, dtype=torch.bool)
    expected = _reference(views, 0.1, pos)
    torch.testing.assert_close(NTXentLoss(0.1)(views, group_ids=groups).double(), expected, rtol=1e-5, atol=1e-6)
    mask = groups[:, None] == groups[None, :]
    torch.testing.assert_close(NTXentLoss(0.1)(views, positive_mask=mask).double(), expected, rtol=1e-5, atol=1e-6)
    assert not torch.isclose(NTXentLoss(0.1)(views).double(), expected)


def test_gradients_match_reference():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    idx = torch.arange(12) % 6
    pos = (idx[:, None] == idx[None, :]) & ~torch.eye(12, dtype=torch.bool)
    (ga,) = torch.autograd.grad(NTXentLoss(0.3)(a[0], a[1]), a)
    (gr,) = torch.autograd.grad(_reference(a, 0.3, pos), a)
    torch.testing.assert_close(ga, gr, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_low_temperature_is_finite(dtype):
    g = torch.Generator().manual_seed(4)
    z1 = torch.randn(64, 32, generator=g).to(dtype).requires_grad_()
    z2 = torch.randn(64, 32, generator=g).to(dtype).requires_grad_()
    loss = NTXentLoss(temperature=0.02)(z1, z2)
    loss.backward()
    ref = NTXentLoss(temperature=0.02)(z1.float(), z2.float())
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all()
    assert abs(loss.item() - ref.item()) < 1e-3 * ref.item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(NTXentLoss(0.02)(torch.randn(8, 4), torch.randn(8, 4)))


def test_reductions_and_errors():
    z = torch.randn(2, 5, 3)
    per = NTXentLoss(reduction="none")(z)
    assert per.shape == (10,)
    torch.testing.assert_close(NTXentLoss(reduction="sum")(z), per.sum())
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0)
    with pytest.raises(ValueError, match="equal shape"):
        NTXentLoss()(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(V, B, D\) with V >= 2"):
        NTXentLoss()(torch.randn(4, 3))
    with pytest.raises(ValueError, match="group_ids must have shape"):
        NTXentLoss()(z, group_ids=torch.arange(4))


# ------------------------------------------------------------------------------------- two processes (gloo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, views, groups, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        b = views.shape[1] // world
        local = views[:, rank * b : (rank + 1) * b].clone().requires_grad_()
        kwargs = {} if groups is None else {"group_ids": groups[rank * b : (rank + 1) * b]}
        loss = NTXentLoss(0.1, gather_distributed=True)(local, **kwargs)
        loss.backward()
        out[rank] = {"loss": loss.detach(), "grad": local.grad}
    finally:
        dist.destroy_process_group()


@pytest.mark.dist
@pytest.mark.parametrize("use_groups", [False, True])
def test_gathered_loss_equals_single_process(use_groups):
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(5)
    views = torch.randn(2, 8, 6, generator=g)
    groups = torch.tensor([0, 0, 1, 2, 2, 3, 4, 5]) if use_groups else None  # group 2 spans both ranks
    full = views.clone().requires_grad_()
    ref = NTXentLoss(0.1)(full, group_ids=groups) if use_groups else NTXentLoss(0.1)(full[0], full[1])
    ref.backward()
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), views, groups, out), nprocs=2, join=True)
    # DDP averages gradients over processes; the mean of the local losses is the global loss
    loss = (out[0]["loss"] + out[1]["loss"]) / 2
    grad = torch.cat([out[0]["grad"], out[1]["grad"]], dim=1) / 2
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, full.grad, rtol=1e-4, atol=1e-6)
