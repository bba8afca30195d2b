"""Bad PNG input: zero-size files, files cut short, non-images with an image suffix; errors raised inside
DataLoader workers must reach the caller (naming the file) instead of hanging or being swallowed.

Built from the shipped COVID CXR images (written as PNG at test time).
"""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader, Dataset

from monai_ssl.transforms import LoadMedicalImage, LoadMedicalImaged, XRayPresetd

from .conftest import covid_images, error_text, save_png, truncate

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def cxr_png(tmp_path_factory):
    return save_png(covid_images(1)[0], tmp_path_factory.mktemp("png") / "cxr.png")


def test_zero_size_png(tmp_path):
    bad = tmp_path / "zero.png"
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match=f"^{bad}: empty file \\(0 bytes\\)$"):
        LoadMedicalImage()(bad)
    with pytest.raises((RuntimeError, ValueError)) as err:
        XRayPresetd("image", spatial_size=32)({"image": str(bad)})
    assert f"key 'image': {bad}: empty file (0 bytes)" in error_text(err.value)


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_png(tmp_path, cxr_png, fraction):
    """A PNG cut short: Pillow would fill the rest with zeros only if told to; here it must refuse."""
    bad = truncate(cxr_png, tmp_path / "cut.png", fraction)
    with pytest.raises(ValueError) as err:
        LoadMedicalImage()(bad)
    msg = str(err.value)
    assert msg.startswith(f"{bad}: cannot read image (corrupt or truncated") and "Truncated File Read" in msg


@pytest.mark.timeout(10)  # fails fast: no fall-through to ITK and the other readers
def test_text_file_named_png(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError) as err:
        LoadMedicalImaged("image")({"image": str(bad)})
    msg = str(err.value)
    assert msg.startswith(f"key 'image': {bad}: cannot read image (not a PNG file Pillow can identify")
    assert "install" not in msg  # not MONAI's "install the reader libraries" after trying every reader


def test_missing_png(tmp_path):
    with pytest.raises(FileNotFoundError, match="key 'image': .*gone.png: file not found"):
        LoadMedicalImaged("image")({"image": str(tmp_path / "gone.png")})


def test_intact_png_loads(cxr_png):
    """Control: the same image intact loads as (1, 256, 256) with the original values."""
    img = LoadMedicalImage()(cxr_png)
    assert img.shape == (1, 256, 256)
    assert torch.equal(img[0].to(torch.uint8), torch.as_tensor(covid_images(1)[0]))


def test_worker_error_reaches_the_caller(tmp_path, cxr_png):
    """A corrupt file in a DataLoader worker process raises in the main process with the file named (no hang,
    no silently dropped batch)."""
    bad = truncate(cxr_png, tmp_path / "cut_in_worker.png", 0.5)
    ds = Dataset([{"image": str(cxr_png)}, {"image": str(bad)}], transform=LoadMedicalImaged("image"))
    loader = DataLoader(ds, batch_size=1, num_workers=1, timeout=50, multiprocessing_context="fork")
    with pytest.raises(Exception) as err:
        list(loader)
    assert "cut_in_worker.png: cannot read image" in error_text(err.value) + str(err.value)
