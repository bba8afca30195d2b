"""Bad NIfTI input: compressed and plain files cut short, header-only files, and non-finite voxels.

Built from the shipped ``data/brain_mr_t1_2mm.nii.gz`` (a real MR volume) at test time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ssl.transforms import CheckImaged, CTPresetd, LoadMedicalImage, LoadMedicalImaged, MRPresetd

from .conftest import DATA, error_text, truncate

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(60)]

BRAIN = DATA / "brain_mr_t1_2mm.nii.gz"


@pytest.fixture(scope="module")
def brain():
    if not BRAIN.is_file():
        pytest.skip(f"{BRAIN} is absent")
    import nibabel as nib

    img = nib.load(str(BRAIN))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


@pytest.mark.parametrize("fraction", [0.5, 0.95])
def test_truncated_nii_gz(tmp_path, fraction):
    """A .nii.gz cut short (interrupted copy/download): gzip's EOF error, with the file named."""
    bad = truncate(BRAIN, tmp_path / "brain_cut.nii.gz", fraction)
    with pytest.raises(ValueError) as err:
        LoadMedicalImage()(bad)
    msg = str(err.value)
    assert msg.startswith(f"{bad}: cannot read image") and "EOFError" in msg


def test_header_only_nii_gz(tmp_path):
    """Only the first 100 compressed bytes: the header may decode, the voxels cannot."""
    bad = truncate(BRAIN, tmp_path / "brain_head.nii.gz", 100 / BRAIN.stat().st_size)
    with pytest.raises(ValueError) as err:
        LoadMedicalImaged("image")({"image": str(bad)})
    msg = str(err.value)
    assert msg.startswith("key 'image': ") and f"{bad}: cannot read image" in msg


def test_truncated_plain_nii(tmp_path, brain):
    """An uncompressed .nii cut in half: the reader reports how many bytes it expected."""
    import nibabel as nib

    full = tmp_path / "brain.nii"
    nib.save(nib.Nifti1Image(brain[0], brain[1]), str(full))
    bad = truncate(full, tmp_path / "brain_cut.nii", 0.5)
    with pytest.raises(ValueError) as err:
        LoadMedicalImage()(bad)
    msg = str(err.value)
    assert str(bad) in msg and "cannot read image" in msg and "Expected" in msg and "bytes" in msg


def test_zero_byte_nii_gz(tmp_path):
    bad = tmp_path / "empty.nii.gz"
    bad.write_bytes(b"")
    with pytest.raises(ValueError) as err:
        LoadMedicalImage()(bad)
    assert str(err.value).startswith(f"{bad}: cannot read image")


@pytest.mark.parametrize("values", [[np.nan], [np.inf], [np.nan, -np.inf, np.inf]])
def test_non_finite_voxels_refused_by_the_presets(tmp_path, brain, values):
    """NaN/inf voxels (a failed resampling or division upstream) must stop the chain, not spread into the batch:
    a percentile scaling over a NaN volume would silently turn the whole image into NaN."""
    import nibabel as nib

    vol = brain[0].copy()
    flat = vol.reshape(-1)
    positions = np.linspace(1000, flat.size - 1000, num=len(values) * 7, dtype=int)
    flat[positions] = np.resize(np.asarray(values, dtype=np.float32), positions.size)
    path = tmp_path / "brain_nonfinite.nii.gz"
    nib.save(nib.Nifti1Image(vol, brain[1]), str(path))

    for chain in (MRPresetd("image", spatial_dims=3), CTPresetd("image", spatial_dims=3, crop_body=False)):
        with pytest.raises((RuntimeError, ValueError)) as err:
            chain({"image": str(path)})
        text = error_text(err.value)
        assert f"image has {positions.size} non-finite (NaN/inf) values of {vol.size}" in text
        assert "key 'image'" in text and "brain_nonfinite.nii.gz" in text


def test_non_finite_check_after_plain_loading(tmp_path, brain):
    """The loader alone returns what the file holds; ``CheckImaged`` after it is the guard (what every preset
    runs): it names the key, the count and the file."""
    import nibabel as nib

    vol = brain[0].copy()
    vol[40, 50, 45] = np.nan
    path = tmp_path / "one_nan.nii.gz"
    nib.save(nib.Nifti1Image(vol, brain[1]), str(path))
    loaded = LoadMedicalImaged("image")({"image": str(path)})
    assert int(torch.isnan(loaded["image"]).sum()) == 1
    with pytest.raises(ValueError) as err:
        CheckImaged("image", spatial_dims=3)(loaded)
    msg = str(err.value)
    assert msg.startswith("key 'image': image has 1 non-finite") and "one_nan.nii.gz" in msg


def test_finite_volume_passes(tmp_path, brain):
    """Control: the intact volume goes through the MR preset into [0, 1]."""
    out = MRPresetd("image", spatial_dims=3, spatial_size=16)({"image": str(BRAIN)})["image"]
    assert out.shape == (1, 16, 16, 16) and bool(torch.isfinite(out).all())
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and float(out.max()) > 0.5
