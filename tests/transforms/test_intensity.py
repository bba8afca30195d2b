from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import (
    CLAHE,
    CheckImage,
    CheckImaged,
    DicomWindow,
    HUWindow,
    HUWindowd,
    LoadMedicalImage,
    N4BiasFieldCorrection,
    RGBToGray,
)


def test_hu_window_maps_known_values():
    hu = MetaTensor(torch.tensor([[[-1000.0, -160.0, 40.0, 240.0, 3000.0]]]), meta={"filename_or_obj": "x"})
    out = HUWindow((40, 400))(hu)  # [-160, 240] -> [0, 1]
    np.testing.assert_allclose(out[0, 0].numpy(), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "x"


def test_multi_window_stacks_channels_on_real_ct(dcm):
    ct = LoadMedicalImage()(dcm("CT_small.dcm"))
    out = HUWindow(["lung", "mediastinum", "bone"])(ct)
    assert out.shape == (3, 128, 128) and 0 <= out.min() and out.max() <= 1
    # a voxel at exactly the mediastinum level (40 HU) would map to 0.5; check the rule on real voxels
    x = ct[0]
    np.testing.assert_allclose(out[1].numpy(), ((x + 160) / 400).clamp(0, 1).numpy(), atol=1e-6)


def test_hu_window_errors():
    with pytest.raises(ValueError, match="unknown CT window 'lungs'"):
        HUWindow("lungs")
    with pytest.raises(ValueError, match="width must be > 0"):
        HUWindow((0, 0))
    with pytest.raises(ValueError, match="key 'ct'.*single-channel"):
        HUWindowd("ct", windows="lung")({"ct": torch.zeros(3, 4, 4)})


def test_dicom_window_uses_header(dcm):
    mr = LoadMedicalImage()(dcm("MR_small.dcm"))  # WindowCenter 600, WindowWidth 1600
    out = DicomWindow()(mr)
    expected = ((mr - (600 - 800)) / 1600).clamp(0, 1)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-6)


def test_dicom_window_fallback_percentiles():
    img = torch.arange(1000, dtype=torch.float32).reshape(1, 10, 100)
    out = DicomWindow(fallback_percentiles=(1, 99))(img)
    assert out.min() == 0 and out.max() == 1 and 0.4 < out.mean() < 0.6


@pytest.mark.parametrize(
    "img,kwargs,match",
    [
        (torch.zeros(4, 4), {"spatial_dims": 2}, "expected a channel-first 2D image"),
        (torch.zeros(1, 0, 4), {}, "empty image"),
        (torch.tensor([[[0.0, float("nan")]]]), {}, "1 non-finite"),
        (torch.ones(1, 3, 3), {"allow_constant": False}, "constant"),
        ([1, 2], {}, "expected an image array"),
    ],
)
def test_check_image_errors(img, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CheckImage(**kwargs)(img)


def test_check_image_dict_names_key():
    with pytest.raises(ValueError, match=r"key 'scan': .*non-finite"):
        CheckImaged("scan")({"scan": torch.full((1, 2, 2), float("inf"))})
    ok = torch.rand(1, 5, 5)
    assert CheckImaged("scan", spatial_dims=2)({"scan": ok})["scan"] is ok


def test_clahe_raises_local_contrast(dcm):
    x = DicomWindow()(LoadMedicalImage()(dcm("CT_small.dcm")))
    out = CLAHE(clip_limit=0.02)(x * 0.3)  # low contrast input
    assert out.shape == x.shape and out.std() > (x * 0.3).std()


def test_rgb_to_gray():
    rgb = torch.stack([torch.ones(2, 2), torch.zeros(2, 2), torch.zeros(2, 2)])
    np.testing.assert_allclose(RGBToGray()(rgb).numpy(), np.full((1, 2, 2), 0.299), atol=1e-6)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        RGBToGray()(torch.zeros(2, 2, 2))


def test_n4_removes_smooth_bias():
    pytest.importorskip("itk")
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    tissue = torch.where((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.16, 100.0, 0.0)
    bias = 1.0 + 0.8 * xx
    out = N4BiasFieldCorrection()((tissue * bias)[None])
    inside = tissue > 0
    before = (tissue * bias)[inside]
    after = out[0][inside]
    assert after.std() / after.mean() < 0.7 * before.std() / before.mean()


def test_check_image_refuses_the_wrong_modality(dcm):
    mr = LoadMedicalImage()(dcm("MR_small.dcm"))
    with pytest.raises(ValueError, match=r"DICOM Modality 'MR' where this chain expects \['CT'\].*MR_small.dcm"):
        CheckImage(modalities=("CT",))(mr)
    assert CheckImage(modalities=("mr",))(mr) is mr
    assert CheckImage(modalities=("CT",))(torch.rand(1, 4, 4)) is not None  # no tag (PNG/NIfTI): passes
