from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import CineFrame, LoadMedicalImage, RandCineFrame, RandCineFramed, USFanCrop, USFanCropd


@pytest.fixture(scope="module")
def cine(request):
    from tests.transforms.conftest import pydicom_file

    return LoadMedicalImage()(pydicom_file("examples_ybr_color.dcm"))  # (3, 240, 320, 30), frames last


def test_cine_frame_selection(cine):
    mid = CineFrame("middle")(cine)
    assert mid.shape == (3, 240, 320) and mid.meta["frame_index"] == 15 and not mid.meta["is_cine"]
    torch.testing.assert_close(CineFrame(-1)(cine), cine[..., 29])
    with pytest.raises(ValueError, match="frame 40 out of range for a cine of 30 frames"):
        CineFrame(40)(cine)
    with pytest.raises(ValueError, match="frame must be"):
        CineFrame("center")


def test_random_frame_reproducible_and_varied(cine):
    picks = [RandCineFrame().set_random_state(s)(cine).meta["frame_index"] for s in range(8)]
    again = [RandCineFrame().set_random_state(s)(cine).meta["frame_index"] for s in range(8)]
    assert picks == again and len(set(picks)) > 2
    out = RandCineFramed(["a", "b"]).set_random_state(3)({"a": cine, "b": cine.clone()})
    assert out["a"].meta["frame_index"] == out["b"].meta["frame_index"]


def test_fan_crop_blanks_text_outside_sector():
    img = torch.zeros(1, 100, 120)
    yy, xx = torch.meshgrid(torch.arange(100.0), torch.arange(120.0), indexing="ij")
    sector = ((xx - 60) ** 2 + yy**2 < 80**2) & (torch.abs(xx - 60) < yy * 0.9 + 5)
    img[0][sector] = 0.3 + 0.5 * torch.rand(int(sector.sum()), generator=torch.Generator().manual_seed(0))
    img[0, 90:94, 2:20] = 1.0  # burnt-in text in a corner
    out = USFanCropd("image")({"image": MetaTensor(img)})["image"]
    rows, cols = torch.nonzero(sector, as_tuple=True)
    expected = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    # the morphological opening may trim the sector's 1-2 px wide tip
    assert all(0 <= e - o <= 3 for o, e in zip(out.shape[-2:], expected))
    assert out.max() < 0.81  # the text (1.0) is gone


def test_fan_crop_on_real_us_frame(cine):
    frame = CineFrame()(cine)
    out = USFanCrop()(frame)
    assert out.shape[0] == 3 and out.shape[1] <= 240 and out.shape[2] <= 320 and out.abs().sum() > 0


def test_fan_crop_blank_image_error():
    with pytest.raises(ValueError, match="key 'us'.*blank"):
        USFanCropd("us")({"us": torch.zeros(1, 8, 8)})


def test_fan_crop_on_whole_cine_keeps_frames_last(cine):
    """A cine (C, H, W, F) is cropped in H and W with one sector for all frames; the frames stay on the last axis."""
    out = USFanCrop()(cine)
    mask = USFanCrop().sector_mask(cine)
    rows, cols = mask.nonzero()
    assert out.shape == (3, rows.max() - rows.min() + 1, cols.max() - cols.min() + 1, 30)
    inside = torch.from_numpy(mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1])
    torch.testing.assert_close(out[..., 7].as_tensor(),
                               cine[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1, 7].as_tensor() * inside)
