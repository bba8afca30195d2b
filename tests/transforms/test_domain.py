"""Out-of-domain inputs: DICOM header checks against a model's declared domain, and flat test patterns."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch

from monai_ssl.transforms import CheckDICOMDomaind, OutOfDomainError, RejectFlatImaged, check_dicom_domain

DOMAIN = {"Modality": ["CR", "DX"], "BodyPartExamined": ["CHEST"], "ViewPosition": ["PA", "AP"],
          "PhotometricInterpretation": ["MONOCHROME1", "MONOCHROME2"]}


def _retag(dcm, tmp_path, name="x.dcm", src="6154", **tags):
    ds = pydicom.dcmread(dcm(src))
    for k, v in tags.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(tmp_path / name)
    return tmp_path / name


def test_header_outside_the_domain_names_tag_value_and_domain(tmp_path, dcm):
    assert check_dicom_domain(_retag(dcm, tmp_path, BodyPartExamined="Chest ", ViewPosition="PA"), DOMAIN) == "checked"
    with pytest.raises(OutOfDomainError, match=r"^BodyPartExamined LEG, model trained on CHEST$"):
        check_dicom_domain(_retag(dcm, tmp_path, BodyPartExamined="LEG", ViewPosition="PA"), DOMAIN)
    with pytest.raises(OutOfDomainError, match=r"^ViewPosition LL, model trained on PA, AP$"):  # pydicom's C-spine CR
        check_dicom_domain(_retag(dcm, tmp_path, BodyPartExamined="CHEST"), DOMAIN)
    with pytest.raises(OutOfDomainError, match=r"^Modality MR, model trained on CR, DX$"):
        check_dicom_domain(dcm("MR_small.dcm"), DOMAIN)
    with pytest.raises(OutOfDomainError, match="PhotometricInterpretation RGB"):
        check_dicom_domain(_retag(dcm, tmp_path, src="CT_small.dcm", Modality="DX", PhotometricInterpretation="RGB"),
                           DOMAIN)


def test_absent_tags_and_files_without_a_header_are_reported_unchecked(tmp_path, dcm):
    f = _retag(dcm, tmp_path, src="CT_small.dcm", Modality="DX")  # no BodyPartExamined / ViewPosition
    assert check_dicom_domain(f, DOMAIN) == "partial: no BodyPartExamined, ViewPosition"
    assert check_dicom_domain(f, {"Modality": ["DX"], "BodyPartExamined": []}) == "checked"  # [] accepts anything
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG")
    assert check_dicom_domain(png, DOMAIN) == "unchecked: no DICOM header"
    (tmp_path / "garbage.dcm").write_bytes(b"not a dicom at all")
    assert check_dicom_domain(tmp_path / "garbage.dcm", DOMAIN) == "unchecked: header unreadable"
    d = CheckDICOMDomaind("image", DOMAIN)({"image": str(png), "file": "a"})
    assert d == {"image": str(png), "file": "a", "domain": "unchecked: no DICOM header"}
    with pytest.raises(ValueError, match="unsupported DICOM tag"):
        CheckDICOMDomaind("image", {"BodyPart": ["CHEST"]})


def _bars(h=96, w=128):
    im = np.zeros((1, h, w), np.float32)
    for i, v in enumerate((235, 210, 170, 145, 106, 81, 41)):
        im[:, : 2 * h // 3, i * (w // 7):(i + 1) * (w // 7) + 1] = v
    return im


def test_flat_test_patterns_are_refused_and_radiographs_pass(dcm):
    from monai_ssl.transforms import LoadMedicalImaged

    from ..bad_input.conftest import covid_images

    check = RejectFlatImaged("image")
    with pytest.raises(OutOfDomainError, match=r"flat synthetic-looking image: 8 grey levels cover 100% of its pixels"):
        check({"image": _bars()})
    with pytest.raises(OutOfDomainError):
        check({"image": torch.zeros(1, 64, 64)})  # a blank frame
    for im in covid_images(8):
        check({"image": im[None]})
    for name in ("6154", "CT_small.dcm", "MR_small.dcm"):
        check(LoadMedicalImaged("image")({"image": dcm(name)}))
