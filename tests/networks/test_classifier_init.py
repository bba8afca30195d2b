"""prepare_classifier from Python: a ConvNeXt from an ImageNet-layout checkpoint, fine-tuned or linearly probed."""

from __future__ import annotations

import pytest
import torch

from monai_ssl.networks import load_pretrained, prepare_classifier
from monai_ssl.networks.nets import ConvNeXt
from tests.networks.pretrained_fixtures import load_fixture, source_checkpoint


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("timm") / "convnext_mini.pth"
    torch.save(source_checkpoint(load_fixture("timm_convnext_mini")), path)
    return path


def _convnext():
    return ConvNeXt(2, 1, num_classes=2, depths=(2, 2, 2, 2), dims=(16, 32, 64, 128))


@pytest.mark.parametrize("mode", ["finetune", "linear_probe"])
def test_convnext_from_an_imagenet_checkpoint(timm_file, mode):
    ref = _convnext()
    load_pretrained(ref, timm_file, kind="timm_convnext", verbose=False)
    net = prepare_classifier(_convnext(), timm_file, "timm_convnext", mode)  # head found by itself: ConvNeXt's head
    for key, value in ref.state_dict().items():
        if not key.startswith("head.fc."):
            assert torch.equal(net.state_dict()[key], value), key
    trainable = {k for k, p in net.named_parameters() if p.requires_grad}
    if mode == "linear_probe":
        assert trainable == {"head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"}
    else:
        assert trainable == {k for k, _ in net.named_parameters()}


def test_unknown_head_is_named():
    with pytest.raises(ValueError, match="head child 'classifier'"):
        prepare_classifier(_convnext(), None, mode="linear_probe", head_name="classifier")
