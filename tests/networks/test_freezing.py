"""freeze_encoder / unfreeze_encoder: frozen weights, BatchNorm statistics kept under model.train()."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import resnet18

from monai_ssl.networks import freeze_encoder, unfreeze_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return resnet18(spatial_dims=2, n_input_channels=1, num_classes=2)


def test_frozen_encoder_keeps_weights_and_bn_statistics_while_the_head_trains():
    model = _resnet()
    frozen = freeze_encoder(model)
    assert model.fc not in frozen and model.layer1 in frozen
    assert all(not p.requires_grad for n, p in model.named_parameters() if not n.startswith("fc."))
    assert all(p.requires_grad for p in model.fc.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()  # what SupervisedTrainer does every iteration
    loss = model(torch.rand(4, 1, 32, 32) * 5).sum()
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"fc.weight", "fc.bias"}  # BN running stats and num_batches_tracked unchanged
    assert not model.bn1.training and model.fc.training


def test_unfreeze_and_refreeze_and_missing_head():
    model = _resnet()
    freeze_encoder(model)
    freeze_encoder(model)  # a second call replaces the hook instead of stacking one
    unfreeze_encoder(model)
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    model(torch.rand(2, 1, 32, 32))
    assert model.bn1.training  # the eval-mode hook is gone
    with pytest.raises(ValueError, match=r"no head module named one of \('head',\).*layer4"):
        freeze_encoder(model, head_names=("head",))
