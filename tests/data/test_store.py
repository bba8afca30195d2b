from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.transforms import Identity

from monai_ssl.data import MultiInstanceDataset, SeededDataLoader
from monai_ssl.data.store import (
    LoadStoredd,
    StoreDataset,
    StoreReader,
    convert_to_store,
    main,
    store_datalist,
    store_sources,
)
from monai_ssl.transforms import XRayPresetd
from monai_ssl.utils.dicom_write import write_dicom_archive

pytest.importorskip("lmdb")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, data_dir):
    """12 chest X-rays of the shipped npz written as DICOMs (4 patients), plus a file that is not DICOM."""
    d = np.load(data_dir / "covid_cxr_256.npz")
    ids = ["p0", "p0", "p0", "p1", "p1", "p2", "p2", "p2", "p2", "p3", "p3", "p3"]
    folder = tmp_path_factory.mktemp("archive") / "dicom"
    write_dicom_archive(folder, d["images"][:12].astype(np.float32) / 255.0, ids)
    (folder / "notes.dcm").write_text("not a DICOM")
    return folder


@pytest.fixture(scope="module")
def store(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "s"
    info = convert_to_store(archive, out, preset="xray", spatial_size=32, progress=False)
    assert info["complete"] and info["count"] == 12 and info["skipped"] == 1
    return out


def test_store_manifest_skip_report_and_pixels(store, archive):
    skipped = [json.loads(x) for x in (store / "skipped.jsonl").read_text().splitlines()]
    assert skipped[0]["path"].endswith("notes.dcm") and "not a DICOM" in skipped[0]["reason"]
    reader = StoreReader(store)
    rec = reader.records[0]
    assert rec["patient_id"] == "p0" and rec["study_id"] and rec["source"].endswith(".dcm")
    assert rec["shape"] == [1, 32, 32] and rec["spacing"] == [0.5, 0.5] and rec["stored_spacing"] == [4.0, 4.0]
    ref = XRayPresetd("image", spatial_size=32)({"image": rec["source"]})["image"]
    got = reader.read(rec["key"], rec["shape"])
    assert got.dtype == torch.float32
    assert (got - ref.as_tensor()).abs().max() <= 0.5 / 255 + 1e-6  # uint8 quantisation only


class _Interrupting:
    """The X-ray preset, interrupted (as by Ctrl-C) at call ``stop``; counts its calls."""

    def __init__(self, stop: int | None) -> None:
        self.preset, self.stop, self.calls = XRayPresetd("image", spatial_size=16), stop, 0

    def __call__(self, d):
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        return self.preset(d)


def test_conversion_resumes_after_interruption(archive, tmp_path):
    first = _Interrupting(stop=8)
    with pytest.raises(KeyboardInterrupt):
        convert_to_store(archive, tmp_path / "s", preset=first, spatial_size=16, commit_every=3, progress=False)
    assert len((tmp_path / "s" / "manifest.jsonl").read_text().splitlines()) == 6  # two commits of 3
    with open(tmp_path / "s" / "manifest.jsonl", "a") as f:
        f.write('{"key": "0000')  # a line cut by a crash mid-write: dropped on resume
    with pytest.raises(ValueError, match="did not finish"):
        StoreReader(tmp_path / "s")
    second = _Interrupting(stop=None)
    info = convert_to_store(archive, tmp_path / "s", preset=second, spatial_size=16, commit_every=3, progress=False)
    assert second.calls == 6 and info["count"] == 12 and info["skipped"] == 1
    keys = [r["key"] for r in StoreReader(tmp_path / "s").records]
    assert len(set(keys)) == 12
    with pytest.raises(ValueError, match="other settings"):
        convert_to_store(archive, tmp_path / "s", preset=second, spatial_size=24, progress=False)


def test_out_of_range_preset_is_skipped_with_reason(archive, tmp_path):
    def zscore(d):
        return {"image": torch.full((1, 8, 8), 3.0)}

    info = convert_to_store(archive, tmp_path / "z", preset=zscore, spatial_size=8, progress=False)
    assert info["count"] == 0
    reasons = (tmp_path / "z" / "skipped.jsonl").read_text()
    assert "not [0, 1]" in reasons and "no z-scoring" in reasons
    with pytest.raises(ValueError, match="holds no images"):
        store_datalist(tmp_path / "z")


def test_cli_uint16_and_info(archive, tmp_path, capsys):
    main(["convert", str(archive), str(tmp_path / "c"), "--preset", "xray", "--size", "16", "--dtype", "uint16",
          "--no-progress"])
    main(["info", str(tmp_path / "c")])
    assert '"dtype": "uint16"' in capsys.readouterr().out
    info = StoreReader(tmp_path / "c").info
    assert info["dtype"] == "uint16" and info["count"] == 12
    img = StoreDataset(tmp_path / "c")[0]["image"]
    levels = (img * 65535).round()
    assert ((levels % 257) != 0).float().mean() > 0.5  # finer than uint8 (whose levels are multiples of 257)
    with pytest.raises(FileNotFoundError, match="not an image store"):
        StoreReader(tmp_path)


def test_multi_instance_bags_from_store(store):
    data = MultiInstanceDataset(store_datalist(store), Identity(), LoadStoredd("image", store), cache=False, seed=1)
    assert len(data) == 4 and sorted(len(b) for b in data.bags) == [2, 3, 3, 4]
    item = data[0]
    a, b = item["source_index"].tolist()
    assert a != b and item["image_view_0"].shape == (1, 32, 32)
    assert not torch.equal(item["image_view_0"], item["image_view_1"])
    loader = SeededDataLoader(data, seed=0, batch_size=2, num_workers=1)
    batch = next(iter(loader))
    assert batch["image_view_0"].shape == (2, 1, 32, 32)


def test_store_sources_group_by_preset(store):
    sources = store_sources(store, ["xray"], limit=5)
    assert len(sources["xray"]) == 5 and sources["xray"][4]["image"].shape == (1, 32, 32)
    with pytest.raises(ValueError, match="modalities"):
        store_sources(store, ["us"])
