from __future__ import annotations

import pytest
import torch
from monai.networks.nets import resnet18

from monai_ssl.networks import ContrastiveModel, ProjectionHead, pool_features


@pytest.mark.parametrize("layers,bn", [(1, False), (2, True), (3, True)])
def test_projection_head_shapes(layers, bn):
    head = ProjectionHead(32, 64, 16, num_layers=layers, batch_norm=bn, last_batch_norm=bn)
    assert head(torch.randn(5, 32)).shape == (5, 16)
    assert sum(isinstance(m, torch.nn.Linear) for m in head) == layers
    with pytest.raises(ValueError):
        ProjectionHead(4, num_layers=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_contrastive_model_on_monai_resnet(dims):
    enc = resnet18(spatial_dims=dims, n_input_channels=1, feed_forward=False)
    model = ContrastiveModel(enc, head_in_features=512)
    x = torch.randn(2, 1, *([32] * dims))
    out = model(x)
    assert out["features"].shape == (2, 512) and out["projection"].shape == (2, 128)
    torch.testing.assert_close(model.forward_features(x), out["features"])


def test_feature_maps_are_pooled():
    assert pool_features(torch.ones(2, 3, 4, 5)).shape == (2, 3)
    with pytest.raises(ValueError, match="head_in_features"):
        ContrastiveModel(torch.nn.Identity())
