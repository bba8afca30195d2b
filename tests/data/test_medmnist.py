from __future__ import annotations

import shutil

import pytest
import torch

from monai_ssl.data import DataIntegrityError, MedMNISTDataset
from monai_ssl.data.medmnist import MEDMNIST_INFO


@pytest.mark.parametrize("flag,n_test,n_pos", [("pneumoniamnist", 624, 390), ("breastmnist", 156, 114)])
def test_loads_official_file(data_dir, flag, n_test, n_pos):
    ds = MedMNISTDataset(data_dir, flag=flag, split="test")
    assert len(ds) == n_test
    item = ds[3]
    assert item["image"].shape == (1, 28, 28)
    assert item["image"].dtype == torch.float32
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0
    assert sum(int(ds[i]["label"]) for i in range(len(ds))) == n_pos


def test_transform_applied(data_dir):
    ds = MedMNISTDataset(data_dir, flag="breastmnist", split="val", transform=lambda d: {**d, "seen": True})
    assert ds[0]["seen"] and len(ds) == MEDMNIST_INFO["breastmnist"]["n_samples"]["val"]


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="breastmnist.npz"):
        MedMNISTDataset(tmp_path, flag="breastmnist")


def test_unknown_flag_and_split(data_dir):
    with pytest.raises(ValueError, match="unknown MedMNIST flag"):
        MedMNISTDataset(data_dir, flag="nosuchmnist")
    with pytest.raises(ValueError, match="split must be one of"):
        MedMNISTDataset(data_dir, flag="breastmnist", split="validation")


def test_truncated_file_md5_mismatch(data_dir, tmp_path):
    src = (data_dir / "breastmnist.npz").read_bytes()
    (tmp_path / "breastmnist.npz").write_bytes(src[: len(src) // 2])
    with pytest.raises(DataIntegrityError, match="md5 mismatch"):
        MedMNISTDataset(tmp_path, flag="breastmnist")
    # without the checksum the truncated zip itself is reported
    with pytest.raises(DataIntegrityError, match="truncated"):
        MedMNISTDataset(tmp_path, flag="breastmnist", verify=False)


def test_md5_mismatch_on_modified_file(data_dir, tmp_path):
    shutil.copy(data_dir / "breastmnist.npz", tmp_path / "breastmnist.npz")
    with open(tmp_path / "breastmnist.npz", "ab") as f:
        f.write(b"extra")
    with pytest.raises(DataIntegrityError, match=r"expected 750601b1"):
        MedMNISTDataset(tmp_path, flag="breastmnist")


def test_download_offline_gives_clear_error(tmp_path, monkeypatch):
    import monai.apps.utils as mau

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(mau, "download_url", offline)
    with pytest.raises(RuntimeError, match="could not download MedMNIST 'breastmnist'.*place the official file"):
        MedMNISTDataset(tmp_path, flag="breastmnist", download=True)


def test_every_2d_flag_and_size_has_a_file_name_and_md5(data_dir, tmp_path):
    from monai_ssl.data import medmnist_filename, medmnist_md5

    assert len(MEDMNIST_INFO) == 12
    for flag in MEDMNIST_INFO:
        md5s = {medmnist_md5(flag, s) for s in (28, 64, 128, 224)}
        assert len(md5s) == 4 and all(len(m) == 32 for m in md5s)
    assert medmnist_filename("retinamnist") == "retinamnist.npz"
    assert medmnist_filename("retinamnist", 224) == "retinamnist_224.npz"
    assert medmnist_md5("retinamnist", 64) == "afda852cc34dcda56f86ad2b2457dbcc"  # medmnist 3.0.2 info.py
    with pytest.raises(ValueError, match="size must be one of"):
        medmnist_filename("retinamnist", 32)
    with pytest.raises(FileNotFoundError, match="breastmnist_64.npz"):
        MedMNISTDataset(tmp_path, flag="breastmnist", size=64)
    # a 28-px file under the 64-px name fails the 64-px checksum
    shutil.copy(data_dir / "breastmnist.npz", tmp_path / "breastmnist_64.npz")
    with pytest.raises(DataIntegrityError, match="md5 mismatch"):
        MedMNISTDataset(tmp_path, flag="breastmnist", size=64)
