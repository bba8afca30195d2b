from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import CTPresetd, MRPresetd, USPresetd, XRayPresetd


def _check(img, channels, size, lo=0.0, hi=1.0):
    assert isinstance(img, MetaTensor)
    assert img.shape == (channels, *size)
    assert torch.isfinite(img).all()
    assert lo <= float(img.min()) and float(img.max()) <= hi + 1e-6


def test_ct_preset_real_dicom(dcm):
    out = CTPresetd(windows=["lung", "mediastinum", "bone"], spatial_size=64)({"image": dcm("CT_small.dcm")})
    _check(out["image"], 3, (64, 64))
    assert out["image"].meta["Modality"] == "CT"


def test_ct_window_of_known_hu(tmp_path, dcm):
    ds = pydicom.dcmread(dcm("CT_small.dcm"))
    arr = np.full(ds.pixel_array.shape, 1024 + 40, dtype=ds.pixel_array.dtype)  # 40 HU everywhere ...
    arr[:8] = 1024 - 1000  # ... except an air band (-1000 HU)
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "phantom.dcm")
    img = CTPresetd(windows=(40, 400), crop_body=False)({"image": str(tmp_path / "phantom.dcm")})["image"]
    assert torch.allclose(img[0, 20:], torch.tensor(0.5))  # level maps to the middle of [0, 1]
    assert torch.allclose(img[0, :8], torch.tensor(0.0))  # below the window -> 0
    cropped = CTPresetd(windows=(40, 400), crop_body=True)({"image": str(tmp_path / "phantom.dcm")})["image"]
    assert cropped.shape[1] == 128 - 8  # the air band is cropped away


def test_mr_preset_real_dicom_and_zscore(dcm):
    out = MRPresetd(spatial_dims=2, spatial_size=(32, 48))({"image": dcm("MR_small.dcm")})
    _check(out["image"], 1, (32, 48))
    z = MRPresetd(spatial_dims=2, zscore=True, nonzero=False)({"image": dcm("MR_small.dcm")})["image"]
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-2


def test_mr_preset_nifti_3d(tmp_path):
    import nibabel as nib

    vol = np.random.default_rng(0).gamma(2.0, 100.0, (20, 22, 18)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "t1.nii.gz")
    out = MRPresetd(spatial_size=16)({"image": str(tmp_path / "t1.nii.gz")})
    _check(out["image"], 1, (16, 16, 16))


def test_xray_preset_monochrome1_and_j2k(dcm, tmp_path):
    import pydicom

    out = XRayPresetd(spatial_size=32, num_channels=3)({"image": dcm("6278")})
    _check(out["image"], 3, (32, 32))
    with pytest.raises(RuntimeError) as err:  # pydicom's JPEG 2000 sample is nuclear medicine, not an X-ray
        XRayPresetd(spatial_size=(64, 32))({"image": dcm("JPEG2000.dcm")})
    assert "DICOM Modality 'NM' where this chain expects" in _chain(err.value)
    ds = pydicom.dcmread(dcm("JPEG2000.dcm"))
    ds.Modality = "DX"
    ds.save_as(tmp_path / "dx_j2k.dcm")
    j2k = XRayPresetd(spatial_size=(64, 32), clahe=True)({"image": str(tmp_path / "dx_j2k.dcm")})
    _check(j2k["image"], 1, (64, 32))


def test_xray_preset_keeps_aspect_with_padding(tmp_path):
    from PIL import Image

    Image.fromarray((np.random.default_rng(1).random((50, 100)) * 255).astype(np.uint8)).save(tmp_path / "cxr.png")
    img = XRayPresetd(spatial_size=64)({"image": str(tmp_path / "cxr.png")})["image"]
    _check(img, 1, (64, 64))
    assert float(img[0, :10].abs().sum()) == 0 and float(img[0, 30].abs().sum()) > 0  # padded top, content middle


@pytest.mark.parametrize("name", ["examples_ybr_color.dcm", "examples_rgb_color.dcm"])
def test_us_preset_real_dicom(dcm, name):
    out = USPresetd(spatial_size=96, random_frame=True)({"image": dcm(name)})
    _check(out["image"], 1, (96, 96))
    assert out["image"].max() > 0.5


def _chain(exc: BaseException) -> str:
    messages = []
    while exc is not None:
        messages.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__
    return " <- ".join(messages)


@pytest.mark.parametrize(
    "image,match",
    [(torch.full((1, 8, 8), float("nan")), "key 'image'.*64 non-finite"),
     (torch.zeros(1, 4, 4, 4), "key 'image'.*expected a channel-first 2D image"),
     (torch.zeros(1, 0, 4), "key 'image'.*empty image")],
)
def test_preset_bad_input_names_key(image, match):
    # MONAI's Compose wraps errors in RuntimeError("applying transform ..."); the cause names key and reason
    with pytest.raises(RuntimeError) as info:
        XRayPresetd(load=False)({"image": image})
    assert __import__("re").search("ValueError: " + match, _chain(info.value))


def test_us_despeckle_smooths(dcm):
    plain = USPresetd(spatial_size=None)({"image": dcm("examples_rgb_color.dcm")})["image"]
    smooth = USPresetd(spatial_size=None, despeckle_radius=1)({"image": dcm("examples_rgb_color.dcm")})["image"]
    assert smooth.shape == plain.shape
    tv = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().mean()  # noqa: E731 - total variation
    assert tv(smooth) < tv(plain)


@pytest.mark.parametrize(
    "preset,pixels,match",
    [(XRayPresetd, np.full((64, 64), 128, np.uint8), r"image is constant \(every value 128.*blank"),
     (XRayPresetd, np.full((1, 1), 77, np.uint8), r"image of 1 x 1 px is smaller than the minimum of 8 px per side"),
     (USPresetd, np.zeros((48, 64), np.uint8), r"image is constant \(every value 0"),
     (USPresetd, np.arange(5 * 40, dtype=np.uint8).reshape(5, 40), r"image of 5 x 40 px is smaller")],
)
def test_preset_refuses_blank_and_tiny_images_naming_the_file(tmp_path, preset, pixels, match):
    # a blank PNG and a 1 x 1 PNG went through every preset (resized to 224 px, all zeros) without a word
    from PIL import Image

    path = tmp_path / "odd.png"
    Image.fromarray(pixels).save(path)
    with pytest.raises(RuntimeError) as info:
        preset(spatial_size=32)({"image": str(path)})
    assert __import__("re").search("ValueError: key 'image': " + match + r".*odd\.png", _chain(info.value))


def test_colour_preset_keeps_rgb(tmp_path):
    from PIL import Image

    from monai_ssl.transforms import ColorPresetd

    rgb = np.zeros((40, 60, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # a red photograph with a green square
    rgb[10:20, 10:20] = (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "derm.png")
    out = ColorPresetd(spatial_size=32)({"image": str(tmp_path / "derm.png")})["image"]
    _check(out, 3, (32, 32))
    # colour survives: red dominates in the red channel, and no per-image window stretched 200 to 1
    assert float(out[0].max()) == pytest.approx(200 / 255, abs=0.02) and float(out[1].max()) > 0.9
    assert float(out[2].max()) < 0.05
    grey = ColorPresetd(spatial_size=16, load=False)({"image": torch.rand(1, 20, 20)})["image"]
    _check(grey, 3, (16, 16))


def test_us_preset_keeps_colour_doppler(dcm):
    grey = USPresetd(spatial_size=64)({"image": dcm("examples_rgb_color.dcm")})["image"]
    colour = USPresetd(spatial_size=64, num_channels=3)({"image": dcm("examples_rgb_color.dcm")})["image"]
    _check(colour, 3, (64, 64))
    assert not torch.allclose(colour[0], colour[1]) or not torch.allclose(colour[1], colour[2])  # colour survives
    assert grey.shape == (1, 64, 64)
    with pytest.raises(ValueError, match="num_channels"):
        USPresetd(num_channels=2)
