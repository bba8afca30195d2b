from __future__ import annotations

import json
import shutil

import pytest

from monai_ssl.data import datalist_from_dicom, load_datalist

pydicom_data = pytest.importorskip("pydicom.data")


def _dcm(name):
    return pydicom_data.get_testdata_file(name)


@pytest.fixture()
def dicom_folder(tmp_path):
    folder = tmp_path / "archive"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(_dcm("CT_small.dcm"), folder / "ct.dcm")
    shutil.copy(_dcm("MR_small.dcm"), folder / "sub" / "mr.dcm")
    shutil.copy(_dcm("MR_truncated.dcm"), folder / "mr_truncated.dcm")
    shutil.copy(_dcm("rtplan.dcm"), folder / "rtplan.dcm")  # valid DICOM without pixel data
    (folder / "notes.txt").write_text("not dicom")
    ct = (folder / "ct.dcm").read_bytes()
    (folder / "cut.dcm").write_bytes(ct[:300])  # header cut mid-element
    return folder


def test_dicom_scan_reads_good_and_reports_bad(dicom_folder):
    scan = datalist_from_dicom(dicom_folder)
    names = sorted(p.split("/")[-1] for p in (x["image"] for x in scan.datalist))
    assert names == ["ct.dcm", "mr.dcm"]
    reasons = {s.path.split("/")[-1]: s.reason for s in scan.skipped}
    assert set(reasons) == {"mr_truncated.dcm", "rtplan.dcm", "notes.txt", "cut.dcm"}
    assert "truncated pixel data" in reasons["mr_truncated.dcm"]
    assert "no pixel data" in reasons["rtplan.dcm"]
    assert "not a DICOM file" in reasons["notes.txt"]
    ct = next(x for x in scan.datalist if x["image"].endswith("ct.dcm"))
    assert ct["modality"] == "CT" and ct["patient_id"] and ct["series_id"] and ct["rows"] == 128


def test_dicom_scan_series_level(dicom_folder):
    for i in range(3):
        shutil.copy(_dcm("CT_small.dcm"), dicom_folder / f"ct_copy{i}.dcm")
    scan = datalist_from_dicom(dicom_folder, level="series")
    ct = [x for x in scan.datalist if x["modality"] == "CT"]
    assert len(ct) == 1 and ct[0]["num_instances"] == 4 and len(ct[0]["image"]) == 4


def test_dicom_scan_decode_check(dicom_folder):
    scan = datalist_from_dicom(dicom_folder, check_pixels=True)
    assert len(scan.datalist) == 2


def test_dicom_scan_follows_symlinked_series_and_reports_loops(dicom_folder, tmp_path):
    # rglob left a symlinked series folder out of the datalist and out of the skip report
    outside = tmp_path / "elsewhere" / "series1"
    outside.mkdir(parents=True)
    shutil.copy(_dcm("CT_small.dcm"), outside / "slice1.dcm")
    (dicom_folder / "linked_series").symlink_to(outside, target_is_directory=True)
    (dicom_folder / "sub" / "loop").symlink_to(dicom_folder, target_is_directory=True)
    (dicom_folder / "ct_again.dcm").symlink_to(dicom_folder / "ct.dcm")
    scan = datalist_from_dicom(dicom_folder)
    assert str(dicom_folder / "linked_series" / "slice1.dcm") in [x["image"] for x in scan.datalist]
    assert sum(x["image"].endswith("ct.dcm") for x in scan.datalist) == 1  # listed once, not via its link
    reasons = {s.path: s.reason for s in scan.skipped}
    assert "not followed (a loop" in reasons[str(dicom_folder / "sub" / "loop")]
    assert "inside the scanned folder: listed there, not twice" in reasons[str(dicom_folder / "ct_again.dcm")]
    assert datalist_from_dicom(dicom_folder, level="series").datalist  # the series level sees the same files


def test_dicom_scan_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        datalist_from_dicom(tmp_path / "nowhere")


def test_csv_datalist(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "list.csv").write_text("image,patient_id,label\na.png,P1,1\nb.png,P1,0\n")
    dl = load_datalist(tmp_path / "list.csv")
    assert [x["label"] for x in dl] == [1, 0]
    assert dl[0]["image"] == str(tmp_path / "a.png") and dl[0]["patient_id"] == "P1"


def test_json_datalist_sections(tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"x")
    (tmp_path / "d.json").write_text(json.dumps({"training": [{"image": "a.nii.gz", "patient_id": "7"}]}))
    assert load_datalist(tmp_path / "d.json")[0]["image"].endswith("a.nii.gz")
    with pytest.raises(ValueError, match="no section 'validation'"):
        load_datalist(tmp_path / "d.json", section="validation")


def test_missing_files_raise_or_skip(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "list.csv").write_text("image,patient_id\na.png,P1\nmissing.png,P2\n")
    with pytest.raises(FileNotFoundError, match=r"row 2 of list.csv: file not found"):
        load_datalist(tmp_path / "list.csv")
    with pytest.warns(UserWarning, match="missing.png"):
        dl = load_datalist(tmp_path / "list.csv", on_missing="skip")
    assert len(dl) == 1


def test_missing_required_column(tmp_path):
    (tmp_path / "list.csv").write_text("path,patient_id\na.png,P1\n")
    with pytest.raises(ValueError, match=r"lack required keys \['image'\]: row 1"):
        load_datalist(tmp_path / "list.csv")
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        load_datalist(tmp_path / "nothere.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(ValueError, match="unsupported datalist format"):
        load_datalist(tmp_path / "x.xlsx")
