"""ReportFileErrorsd(on_error="mark"): a failed item carries its reason and a placeholder instead of stopping a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.data import list_data_collate
from monai.transforms import Compose, EnsureTyped

from monai_ssl.transforms import (
    CheckDICOMDomaind,
    LoadMedicalImaged,
    ReportFileErrorsd,
    XRayPresetd,
    file_status,
)
from monai_ssl.transforms.domain import OutOfDomainError


def _mark(domain):
    chain = Compose([CheckDICOMDomaind("image", domain), LoadMedicalImaged("image"),
                     XRayPresetd("image", load=False, spatial_size=16), EnsureTyped("image", track_meta=False)])
    return ReportFileErrorsd(chain, key="image", on_error="mark", fill={"image": torch.zeros(1, 16, 16), "domain": ""})


def test_mark_keeps_the_reason_and_batches_with_good_items(tmp_path, dcm):
    (tmp_path / "cut.dcm").write_bytes(Path(dcm("6154")).read_bytes()[:900])
    t = _mark({"Modality": ["CR", "DX"]})
    items = [t({"image": f, "file": f}) for f in (dcm("6154"), dcm("MR_small.dcm"), str(tmp_path / "cut.dcm"))]
    assert [d["status"] for d in items][:2] == ["ok", "out_of_domain: Modality MR, model trained on CR, DX"]
    assert items[2]["status"].startswith("error: ValueError: ") and str(tmp_path) not in items[2]["status"]
    assert [d["ok"] for d in items] == [True, False, False]
    assert items[1]["file"] == dcm("MR_small.dcm") and torch.equal(items[1]["image"], torch.zeros(1, 16, 16))
    batch = list_data_collate(items)
    assert batch["image"].shape == (3, 1, 16, 16) and batch["ok"].tolist() == [True, False, False]
    items[1]["image"] += 1  # the fill is copied per item
    assert torch.equal(t.fill["image"], torch.zeros(1, 16, 16))


def test_file_status_and_argument_checks():
    try:
        try:
            raise OutOfDomainError("BodyPartExamined LEG, model trained on CHEST")
        except OutOfDomainError as e:
            raise RuntimeError("applying transform <x>") from e
    except RuntimeError as wrapped:
        assert file_status(wrapped) == "out_of_domain: BodyPartExamined LEG, model trained on CHEST"
    assert file_status(ValueError("key 'image': /x/a.png: cannot read\nimage"), "/x/a.png") == \
        "error: ValueError: cannot read image"
    with pytest.raises(ValueError, match="needs fill\\['image'\\]"):
        ReportFileErrorsd(lambda d: d, key="image", on_error="mark")
    with pytest.raises(ValueError, match="on_error: 'skip'"):
        ReportFileErrorsd(lambda d: d, on_error="skip")
