"""Bad PNG input: zero-size files, files cut short, non-images with an image suffix; errors raised inside
DataLoader workers must reach the caller (naming the file) instead of hanging or being swallowed. Palette, alpha
and CMYK images must load as the picture they show, not as palette indices or refused channel counts.

Built from the shipped COVID CXR and PneumoniaMNIST images (written as PNG/TIFF/JPEG at test time).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset

from monai_ssl.transforms import LoadMedicalImage, LoadMedicalImaged, XRayPresetd

from .conftest import DATA, covid_images, error_text, save_png, truncate

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


# ------------------------------------------------------------------- palette, alpha and CMYK images (items 5, 13)

@functools.lru_cache(maxsize=1)
def _pneumonia() -> np.ndarray:
    """A shipped PneumoniaMNIST chest X-ray, (28, 28) uint8."""
    with np.load(DATA / "pneumoniamnist.npz", allow_pickle=False) as z:
        return np.ascontiguousarray(z["train_images"][0])


def _colour(grey: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 colour picture made from ``grey`` (three different channels)."""
    return np.stack([grey, grey // 2 + 64, 255 - grey], -1).astype(np.uint8)


@pytest.mark.parametrize("palette", ["reversed_grey", "reversed_grey_transparent", "colour"])
def test_palette_png_loads_as_its_colours_not_its_indices(tmp_path, palette):
    """A palette PNG stores indices into a colour table: index i shows palette[i]. With a reversed grey palette the
    indices have correlation -1 with the picture; the loader must return the picture."""
    from PIL import Image

    grey = _pneumonia()
    if palette == "colour":
        rgb = _colour(grey)
        im = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        expected = np.moveaxis(np.asarray(im.convert("RGB")), -1, 0)  # the palette's colours of each pixel
        assert len(np.unique(expected.reshape(3, -1), axis=1).T) > 16  # a real colour picture
    else:
        im = Image.fromarray((255 - grey).astype(np.uint8), mode="L").convert("P")
        im.putpalette([v for i in range(256) for v in (255 - i,) * 3])  # index i shows grey 255 - i
        expected = grey[None]
    path = tmp_path / f"{palette}.png"
    im.save(path, **({"transparency": 0} if palette.endswith("transparent") else {}))
    with Image.open(path) as check:
        assert check.mode == "P" and ("transparency" in check.info) == palette.endswith("transparent")
    img = LoadMedicalImage()(path)
    assert img.shape == expected.shape
    np.testing.assert_array_equal(img.numpy(), expected.astype(np.float32))
    out = XRayPresetd("image", spatial_size=16)({"image": str(path)})["image"]
    assert out.shape == (1, 16, 16)


@pytest.mark.parametrize("mode, suffix", [("RGBA", ".png"), ("LA", ".png"), ("CMYK", ".tif"), ("CMYK", ".jpg")])
def test_alpha_and_cmyk_images_load_as_grey_or_rgb(tmp_path, mode, suffix):
    """RGBA/LA: the alpha channel is dropped (colours kept as stored); CMYK: converted to RGB. The X-ray preset
    then takes them (it used to refuse 'RGBToGray expects 1 or 3 channels, got 4')."""
    from PIL import Image

    grey, rgb = _pneumonia(), _colour(_pneumonia())
    alpha = np.where(grey > 128, 255, 40).astype(np.uint8)
    if mode == "RGBA":
        im, expected = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA"), np.moveaxis(rgb, -1, 0)
    elif mode == "LA":
        im, expected = Image.fromarray(np.dstack([grey, alpha]), mode="LA"), grey[None]
    else:  # Pillow's RGB -> CMYK is exact (C = 255 - R, ..., K = 0) and so is CMYK -> RGB
        im, expected = Image.fromarray(rgb).convert("CMYK"), np.moveaxis(rgb, -1, 0)
    path = tmp_path / f"{mode}{suffix}"
    im.save(path, **({"quality": 100} if suffix == ".jpg" else {}))
    with Image.open(path) as check:
        assert check.mode == mode
    img = LoadMedicalImage()(path)
    assert img.shape == expected.shape
    tol = 12 if suffix == ".jpg" else 0  # JPEG is lossy
    assert float((img - torch.as_tensor(expected, dtype=torch.float32)).abs().mean()) <= tol / 4
    if not tol:
        np.testing.assert_array_equal(img.numpy(), expected.astype(np.float32))
    out = XRayPresetd("image", spatial_size=16)({"image": str(path)})["image"]
    assert out.shape == (1, 16, 16)


# ------------------------------------------------------------------------------------- non-regular files (14)

@pytest.mark.parametrize("name", ["x.dcm", "x.png", "x.nii.gz"])
def test_fifo_is_refused_by_the_loader_naming_the_path(tmp_path, make_fifo, name):
    """A FIFO is refused before it is opened (the old loader blocked forever in ITK's C code, where no timeout gets
    in; ``make_fifo`` feeds such a reader end-of-file so the test fails instead of hanging)."""
    fifo = make_fifo(tmp_path / name)
    with pytest.raises(ValueError) as err:
        LoadMedicalImaged("image")({"image": str(fifo)})
    assert str(err.value) == (f"key 'image': {fifo}: not a regular file but a FIFO (named pipe); refusing to read "
                              "it (it could block forever)")
