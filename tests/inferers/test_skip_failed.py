"""SkipFailedInferer: failed items of a batch never reach the network and get NaN predictions."""

from __future__ import annotations

import torch

from monai_ssl.inferers import SkipFailedInferer


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return x.flatten(1).sum(1, keepdim=True).repeat(1, 3)


def test_only_ok_rows_reach_the_network():
    net, inferer = _Recorder(), SkipFailedInferer()
    x = torch.arange(4.0)[:, None, None, None].expand(4, 1, 2, 2).contiguous()
    out = inferer(x, net, ok=torch.tensor([True, False, True, False]))
    assert len(net.seen) == 1 and torch.equal(net.seen[0], x[[0, 2]])
    assert out.shape == (4, 3) and torch.isnan(out[[1, 3]]).all()
    torch.testing.assert_close(out[[0, 2]], net(x[[0, 2]]))
    # an all-failed batch: no network call, NaN of the last good output shape
    net.seen.clear()
    out = inferer(x[:2], net, ok=torch.tensor([False, False]))
    assert net.seen == [] and out.shape == (2, 3) and torch.isnan(out).all()
    # before any good batch the shape is unknown: (B, 0)
    assert SkipFailedInferer()(x[:2], net, ok=torch.zeros(2, dtype=torch.bool)).shape == (2, 0)
    # all ok, or no flags: the wrapped inferer as is
    torch.testing.assert_close(inferer(x, net, ok=torch.ones(4, dtype=torch.bool)), net(x))
    torch.testing.assert_close(inferer(x, net), net(x))
