from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import LoadMedicalImage, LoadMedicalImaged


def test_ct_in_hounsfield_units(dcm):
    img = LoadMedicalImage()(dcm("CT_small.dcm"))
    raw = pydicom.dcmread(dcm("CT_small.dcm")).pixel_array.astype(np.float32)
    assert isinstance(img, MetaTensor) and img.shape == (1, 128, 128)
    # RescaleIntercept -1024, slope 1
    np.testing.assert_allclose(img[0].numpy(), raw - 1024.0)
    assert img.meta["Modality"] == "CT" and img.meta["spacing"][0] == pytest.approx(0.661468)


def test_monochrome1_is_inverted(dcm):
    from pydicom.pixels import apply_modality_lut

    path = dcm("6278")  # CR, MONOCHROME1, RescaleSlope 0.684, RescaleIntercept 200
    ds = pydicom.dcmread(path)
    raw = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    img = LoadMedicalImage()(path)
    assert img.meta["original_photometric_interpretation"] == "MONOCHROME1"
    assert img.meta["PhotometricInterpretation"] == "MONOCHROME2"
    np.testing.assert_allclose(img[0].numpy(), raw.max() + raw.min() - raw, rtol=1e-6)
    assert np.corrcoef(img[0].numpy().ravel(), raw.ravel())[0, 1] < -0.99  # bright and dark swapped
    kept = LoadMedicalImage(invert_monochrome1=False)(path)
    np.testing.assert_allclose(kept[0].numpy(), raw, rtol=1e-6)


def test_colour_cine_ultrasound(dcm):
    img = LoadMedicalImage()(dcm("examples_ybr_color.dcm"))
    # issue 22: frames on the last spatial axis, MONAI's (C, H, W, D) (was (3, 30, 240, 320), frames first)
    assert img.shape == (3, 240, 320, 30) and img.meta["is_cine"] and img.meta["PhotometricInterpretation"] == "RGB"
    rgb = pydicom.dcmread(dcm("examples_ybr_color.dcm")).pixel_array  # (F, H, W, 3), YBR decoded to RGB
    np.testing.assert_array_equal(img.numpy(), rgb.transpose(3, 1, 2, 0).astype(np.float32))


def test_jpeg2000(dcm):
    img = LoadMedicalImage()(dcm("JPEG2000.dcm"))
    assert img.shape == (1, 1024, 256) and torch.isfinite(img).all()


def test_png_and_nifti(tmp_path):
    from PIL import Image
    import nibabel as nib

    arr = np.zeros((20, 30), np.uint8)
    arr[5, 7] = 200
    Image.fromarray(arr).save(tmp_path / "x.png")
    img = LoadMedicalImage()(tmp_path / "x.png")
    assert img.shape == (1, 20, 30) and img[0, 5, 7] == 200  # row order kept as (H, W)
    vol = np.random.default_rng(0).random((8, 9, 10)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii.gz")
    img = LoadMedicalImage()(tmp_path / "v.nii.gz")
    assert img.shape == (1, 8, 9, 10)
    np.testing.assert_allclose(img[0].numpy(), vol, rtol=1e-6)


def test_errors_name_file_and_reason(tmp_path, dcm):
    loader = LoadMedicalImaged("image")
    with pytest.raises(FileNotFoundError, match="key 'image'.*nope.dcm"):
        loader({"image": str(tmp_path / "nope.dcm")})
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png: empty file"):
        loader({"image": str(tmp_path / "empty.png")})
    ds = pydicom.dcmread(dcm("CT_small.dcm"))
    ds.PhotometricInterpretation = "CMYK"
    ds.save_as(tmp_path / "cmyk.dcm")
    with pytest.raises(ValueError, match="cmyk.dcm: unsupported photometric interpretation 'CMYK'"):
        loader({"image": str(tmp_path / "cmyk.dcm")})
    with pytest.raises(ValueError, match="rtplan.dcm: DICOM has no pixel data"):
        loader({"image": dcm("rtplan.dcm")})
    with pytest.raises(ValueError, match="MR_truncated.dcm: pixel data cannot be decoded"):
        loader({"image": dcm("MR_truncated.dcm")})
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="junk.dcm: not a readable DICOM"):
        loader({"image": str(tmp_path / "junk.dcm")})


def test_files_with_and_without_voi_window_collate(dcm, tmp_path):
    # MR_small has WindowCenter/Width; a copy without them must still batch with it (absent = NaN, not None)
    from monai.data import list_data_collate

    from monai_ssl.transforms import DicomWindow

    ds = pydicom.dcmread(dcm("MR_small.dcm"))
    del ds.WindowCenter, ds.WindowWidth
    bare = tmp_path / "no_window.dcm"
    ds.save_as(bare)
    load = LoadMedicalImaged("image")
    items = [load({"image": dcm("MR_small.dcm")}), load({"image": str(bare)})]
    assert items[0]["image"].meta["WindowCenter"] == 600.0 and np.isnan(items[1]["image"].meta["WindowCenter"])
    batch = list_data_collate(items)
    assert batch["image"].shape == (2, 1, 64, 64)
    # the header window applies to the first file, the percentile fallback to the second
    windowed = [DicomWindow()(d["image"]) for d in items]
    x = items[0]["image"].float()
    np.testing.assert_allclose(windowed[0].numpy(), ((x - (600 - 800)) / 1600).clamp(0, 1).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert float(windowed[1].min()) == 0.0 and float(windowed[1].max()) == 1.0
