from __future__ import annotations

import torch

from monai_ssl.utils.dist import gather_with_grad, get_rank, get_world_size


def test_single_process_helpers():
    assert get_rank() == 0 and get_world_size() == 1
    x = torch.randn(3, 2, requires_grad=True)
    y = gather_with_grad(x)
    assert y is x
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3, 2))
