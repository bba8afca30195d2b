"""Grad-CAM overlays (MONAI GradCAM), saliency-in-ROI fraction and ViT attention rollout."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from monai.networks.nets import ViT
from PIL import Image
from torch import nn

from monai_ssl.evaluation.saliency import cam_fraction_in_roi, gradcam_maps, gradcam_overlays, vit_attention_map


pytestmark = pytest.mark.usefixtures("one_thread")


class HalfMask(nn.Module):
    """Zero the right half (``keep="left"``) or turn (B, 1, H, W) into [top-half, bottom-half] channels."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.mode == "left":
            mask = torch.zeros_like(x)
            mask[..., : w // 2] = 1
            return x * mask
        top, bottom = torch.zeros_like(x), torch.zeros_like(x)
        top[..., : h // 2, :] = 1
        bottom[..., h // 2:, :] = 1
        return torch.cat([x * top, x * bottom], dim=1)


def left_only_model() -> nn.Module:
    """Output depends only on the left half of the image (the right half is masked before any layer)."""
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(
        mask=HalfMask("left"), conv=nn.Conv2d(1, 4, 3, padding=1, bias=False), relu=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(4, 2),
    ))
    with torch.no_grad():
        model.conv.weight.abs_()
        model.fc.weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
    return model


def top_bottom_model() -> nn.Module:
    """Class 0 = brightness of the top half, class 1 = brightness of the bottom half."""
    return nn.Sequential(OrderedDict(
        split=HalfMask("top_bottom"), relu=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(),
    ))


def test_cam_of_left_half_model_is_left():
    model = left_only_model()
    images = torch.rand(3, 1, 16, 16)
    maps = gradcam_maps(model, images, "relu")
    assert maps.shape == (3, 1, 16, 16)
    assert maps.min() >= 0 and maps.max() <= 1 and torch.allclose(maps.amax((1, 2, 3)), torch.ones(3))
    left = torch.zeros(1, 1, 16, 16)
    left[..., :8] = 1
    frac = cam_fraction_in_roi(maps, left)
    assert (frac > 0.9).all(), frac
    assert maps.flatten(1).std(1).min() > 0.05  # not a constant map
    # class 0 has only negative evidence here: Grad-CAM (a ReLU of the weighted sum) is empty
    assert gradcam_maps(model, images, "relu", class_index=0).abs().max() == 0


def test_each_image_is_explained_for_its_own_class():
    model = top_bottom_model()
    images = torch.full((4, 1, 8, 8), 0.1)
    images[0, :, :4] = 1.0  # bright top -> class 0
    images[1, :, 4:] = 1.0  # bright bottom -> class 1
    images[2, :, :4] = 1.0
    images[3, :, 4:] = 1.0
    maps = gradcam_maps(model, images, "split")
    top = torch.zeros(1, 1, 8, 8)
    top[..., :4, :] = 1
    frac_top = cam_fraction_in_roi(maps, top)
    assert (frac_top[[0, 2]] > 0.9).all() and (frac_top[[1, 3]] < 0.1).all(), frac_top
    # explicit per-image classes override the prediction
    forced = gradcam_maps(model, images, "split", class_index=[1, 0, 1, 0])
    assert (cam_fraction_in_roi(forced, top)[[0, 2]] < 0.1).all()
    with pytest.raises(ValueError, match="one index per image"):
        gradcam_maps(model, images, "split", class_index=[0, 1])


def test_overlays_written_hooks_removed_and_frozen_model(tmp_path):
    model = left_only_model()
    for p in model.parameters():
        p.requires_grad_(False)  # a frozen model still gets maps (the input carries the gradient)
    model.train()
    images = torch.rand(2, 1, 16, 16)
    maps = gradcam_overlays(model, images, "relu", out_dir=tmp_path / "cams", names=["a", "b"])
    files = sorted((tmp_path / "cams").glob("*.png"))
    assert [f.name for f in files] == ["a.png", "b.png"]
    rgb = np.asarray(Image.open(files[0]))
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    hot = np.unravel_index(maps[0, 0].argmax().item(), (16, 16))
    assert rgb[hot][0] > rgb[0, -1][0]  # jet: the most salient pixel is redder than a zero-saliency pixel
    assert model.training  # mode restored
    assert not model.relu._forward_hooks and not model.relu._backward_hooks
    with pytest.raises(ValueError, match="target_layer 'layer4' is not a module"):
        gradcam_maps(model, images, "layer4")


def test_cam_fraction_in_roi_values():
    maps = torch.zeros(2, 1, 2, 2)
    maps[0, 0] = torch.tensor([[1.0, 3.0], [0.0, 0.0]])
    roi = torch.tensor([[[[1, 0], [0, 0]]]])
    frac = cam_fraction_in_roi(maps, roi)
    assert frac[0] == pytest.approx(0.25) and torch.isnan(frac[1])
    with pytest.raises(ValueError, match="roi spatial shape"):
        cam_fraction_in_roi(maps, torch.ones(1, 1, 3, 3))


def test_vit_attention_rollout():
    torch.manual_seed(0)
    vit = ViT(1, (16, 16), 4, hidden_size=32, mlp_dim=64, num_layers=1, num_heads=4, classification=True,
              save_attn=True, spatial_dims=2)
    with torch.no_grad():  # move off the init (zero class token, near-uniform attention)
        for p in vit.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = torch.rand(2, 1, 16, 16)
    maps = vit_attention_map(vit, x)
    assert maps.shape == (2, 1, 16, 16) and maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    # one layer: the rollout's class-token row is the head-averaged attention of the class token to the patches
    cls_to_patches = vit.blocks[0].attn.att_mat.mean(1)[:, 0, 1:].reshape(2, 1, 4, 4)
    coarse = torch.nn.functional.avg_pool2d(maps, 4)  # back to the patch grid (bilinear upsampling blurs a little)
    for b in range(2):
        assert cls_to_patches[b].std() > 0.01  # attention is not uniform
        r = torch.corrcoef(torch.stack([coarse[b].flatten(), cls_to_patches[b].flatten()]))[0, 1]
        assert r > 0.9, r
    deep = ViT(1, (16, 16), 4, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4, save_attn=True, spatial_dims=2)
    assert vit_attention_map(deep, x).shape == (2, 1, 16, 16)  # no class token: mean attention received
    with pytest.raises(ValueError, match="save_attn=True"):
        vit_attention_map(ViT(1, (16, 16), 4, hidden_size=32, mlp_dim=64, num_layers=1, num_heads=4, spatial_dims=2), x)
