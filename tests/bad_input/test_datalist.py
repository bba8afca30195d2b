"""Bad datalists and patients: rows pointing at missing files, malformed tables, a patient whose every image is
unreadable (``datalist_from_dicom`` and ``MultiInstanceDataset``), and missing patient ids that must not pool
different people into one MICLe bag.
"""

from __future__ import annotations

import codecs
import json
import math
import warnings

import pydicom
import pytest
from monai.transforms import Compose, Resized

from monai_ssl.data import MultiInstanceDataset, datalist_from_dicom, group_by_patient, load_datalist
from monai_ssl.transforms import LoadMedicalImaged, cxr_augmentations

from .conftest import covid_images, save_png, truncate

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(60)]


def _write_csv(path, rows, header=("image", "patient_id", "label")):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.fixture()
def png_cohort(tmp_path):
    """Three patients with two real CXR PNGs each; patient ``p_bad``'s two files are unreadable (zero bytes, and
    cut in half)."""
    images = covid_images(6)
    items = []
    for i, img in enumerate(images[:4]):
        pid = f"p{i // 2}"
        items.append({"image": str(save_png(img, tmp_path / pid / f"{i}.png")), "patient_id": pid})
    (tmp_path / "p_bad").mkdir()
    (tmp_path / "p_bad" / "zero.png").write_bytes(b"")
    truncate(save_png(images[4], tmp_path / "full.png"), tmp_path / "p_bad" / "cut.png", 0.5)
    items += [{"image": str(tmp_path / "p_bad" / n), "patient_id": "p_bad"} for n in ("zero.png", "cut.png")]
    return items


def _prepare():
    return Compose([LoadMedicalImaged("image"), Resized("image", (16, 16))])


# ------------------------------------------------------------------------------- datalists pointing at missing files

def test_csv_rows_with_missing_files_raise_naming_rows_and_files(tmp_path, png_cohort):
    rows = [(it["image"], it["patient_id"], 0) for it in png_cohort[:4]]
    rows += [(str(tmp_path / "gone" / "a.png"), "p9", 1), ("relative/missing.png", "p9", 1)]
    table = _write_csv(tmp_path / "list.csv", rows)
    with pytest.raises(FileNotFoundError) as err:
        load_datalist(table)
    msg = str(err.value)
    assert msg.startswith(f"{table}: 2 row(s) point at missing files")
    assert f"{tmp_path / 'gone' / 'a.png'}: row 5 of list.csv: file not found" in msg
    assert f"{tmp_path / 'relative' / 'missing.png'}: row 6" in msg  # resolved against the table's folder


def test_csv_rows_with_missing_files_skip_is_reported(tmp_path, png_cohort):
    rows = [(it["image"], it["patient_id"], 0) for it in png_cohort[:4]] + [("nowhere.png", "p9", 1)]
    table = _write_csv(tmp_path / "list.csv", rows)
    with pytest.warns(UserWarning, match=r"skipped 1 row\(s\) with missing files: .*nowhere.png: row 5"):
        items = load_datalist(table, on_missing="skip")
    assert [it["image"] for it in items] == [it["image"] for it in png_cohort[:4]]


def test_json_list_valued_paths_and_malformed_tables(tmp_path):
    table = tmp_path / "series.json"
    table.write_text(json.dumps({"training": [{"image": ["a.dcm", "b.dcm"], "patient_id": "x"}]}))
    with pytest.raises(FileNotFoundError, match=r"a\.dcm: row 1 of series\.json: file not found"):
        load_datalist(table)
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"training": [{"image": "a.png",')
    with pytest.raises(ValueError, match=r"broken\.json: invalid JSON"):
        load_datalist(bad_json)
    wrong_section = tmp_path / "sections.json"
    wrong_section.write_text(json.dumps({"validation": []}))
    with pytest.raises(ValueError, match=r"sections\.json: JSON object has no section 'training'.*\['validation'\]"):
        load_datalist(wrong_section, section="training")
    no_image = _write_csv(tmp_path / "cols.csv", [("p1", 0), ("p2", 1)], header=("patient_id", "label"))
    with pytest.raises(ValueError, match=r"cols\.csv: 2 row\(s\) lack required keys \['image'\]: row 1 lacks"):
        load_datalist(no_image)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: empty table"):
        load_datalist(empty)
    with pytest.raises(FileNotFoundError, match=r"absent\.csv: datalist file not found"):
        load_datalist(tmp_path / "absent.csv")


# ------------------------------------------------------------------------- a patient with zero readable images

def test_multi_instance_patient_without_readable_images_raises_by_default(png_cohort):
    with pytest.raises(RuntimeError) as err:
        MultiInstanceDataset(png_cohort, cxr_augmentations(8), cache_transform=_prepare())
    msg = str(err.value)
    assert "preparing item 4 (patient 'p_bad') failed" in msg and "zero.png: empty file (0 bytes)" in msg
    assert "applying transform" not in msg  # the reason, not MONAI's wrapper


def test_multi_instance_patient_without_readable_images_is_skipped_and_reported(png_cohort):
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\) of 6; 1 patient\(s\) .* \['p_bad'\]"):
        ds = MultiInstanceDataset(png_cohort, cxr_augmentations(8), cache_transform=_prepare(), on_error="skip")
    assert ds.dropped_patients == ["p_bad"]
    assert sorted(ds.patient_ids) == ["p0", "p1"] and len(ds) == 2
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in ds.skipped}
    assert set(reasons) == {"zero.png", "cut.png"}
    assert "patient 'p_bad'" in reasons["zero.png"] and "empty file (0 bytes)" in reasons["zero.png"]
    assert "corrupt or truncated" in reasons["cut.png"]
    for i in range(len(ds)):
        item = ds[i]
        assert item["patient_id"] != "p_bad" and item["image_view_0"].shape == (1, 8, 8)
        assert all(int(s) < 4 for s in item["source_index"])  # indices still refer to the original datalist


def test_multi_instance_one_bad_image_keeps_the_patient(png_cohort):
    cohort = png_cohort[:4] + [{"image": png_cohort[4]["image"], "patient_id": "p1"}]
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) of 5; 0 patient\(s\)"):
        ds = MultiInstanceDataset(cohort, cxr_augmentations(8), cache_transform=_prepare(), on_error="skip")
    assert ds.dropped_patients == [] and ds.bags[ds.patient_ids.index("p1")] == [2, 3]


def test_multi_instance_nothing_readable_and_bad_options(png_cohort):
    with pytest.raises(ValueError, match=r"no readable image: all 2 unreadable image\(s\) of 2"):
        MultiInstanceDataset(png_cohort[4:], cxr_augmentations(8), cache_transform=_prepare(), on_error="skip")
    with pytest.raises(ValueError, match="on_error='skip' needs cache=True"):
        MultiInstanceDataset(png_cohort, cxr_augmentations(8), cache_transform=_prepare(), cache=False,
                             on_error="skip")
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        MultiInstanceDataset(png_cohort, cxr_augmentations(8), on_error="ignore")
    with pytest.raises(RuntimeError, match=r"item 0 \(patient 'p0'\): 'image' is still a file path"):
        MultiInstanceDataset(png_cohort, cxr_augmentations(8))  # no loader given


def test_dicom_scan_patient_with_only_corrupt_files(tmp_path, dcm):
    """Patient GOOD has two readable CT slices; every file of patient BAD is damaged: BAD is absent from the
    datalist and each of its files is in the skip report with its reason."""
    src = pydicom.dcmread(dcm("CT_small.dcm"))
    folder = tmp_path / "archive"
    folder.mkdir()
    for pid, n in (("GOOD", 2), ("BAD", 3)):
        for i in range(n):
            src.PatientID, src.InstanceNumber = pid, i + 1
            src.save_as(folder / f"{pid}_{i}.dcm")
    truncate(folder / "BAD_0.dcm", folder / "BAD_0.dcm", 0.6)  # pixel data cut
    truncate(folder / "BAD_1.dcm", folder / "BAD_1.dcm", 0.02)  # header cut
    (folder / "BAD_2.dcm").write_bytes(b"")  # zero bytes
    scan = datalist_from_dicom(folder)
    assert {x["patient_id"] for x in scan.datalist} == {"GOOD"} and len(scan.datalist) == 2
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in scan.skipped}
    assert set(reasons) == {"BAD_0.dcm", "BAD_1.dcm", "BAD_2.dcm"}
    assert "truncated pixel data" in reasons["BAD_0.dcm"]
    assert all(r for r in reasons.values())


# ----------------------------------------------------------------------- missing patient ids never pool patients

def test_dicom_without_patient_id_is_not_one_shared_patient(tmp_path, dcm):
    src = pydicom.dcmread(dcm("CT_small.dcm"))
    del src.PatientID
    for i, study in enumerate(("1.2.3.4.1", "1.2.3.4.1", "1.2.3.4.2")):
        src.StudyInstanceUID, src.InstanceNumber = study, i + 1
        src.save_as(tmp_path / f"anon_{i}.dcm")
    del src.StudyInstanceUID
    src.save_as(tmp_path / "anon_nostudy.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = datalist_from_dicom(tmp_path).datalist
    bags = group_by_patient(items)
    assert sorted(len(v) for v in bags.values()) == [1, 1, 2]  # two studies, one file with neither id
    assert "unknown:1.2.3.4.1" in bags and not any(k == "unknown" for k in bags)


@pytest.mark.parametrize("missing", [None, "", "  ", math.nan])
def test_missing_patient_ids_are_single_image_patients(missing):
    items = [{"image": i, "patient_id": missing} for i in range(3)] + [{"image": 3, "patient_id": "p"}]
    groups = group_by_patient(items)
    assert len(groups) == 4 and groups["p"] == [3]


# ------------------------------------------------------------------------------------------ table encodings

@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be-bom", "utf-8"])
def test_csv_with_a_byte_order_mark_or_utf16_reads_like_utf8(tmp_path, encoding):
    """Excel's 'CSV UTF-8' starts with a BOM, 'Unicode text' is UTF-16: the header must still be ``image``."""
    (tmp_path / "a.png").write_bytes(b"x")
    text = "image,patient_id,label\na.png,Müller_007,1\n"
    data = codecs.BOM_UTF16_BE + text.encode("utf-16-be") if encoding == "utf-16-be-bom" else text.encode(encoding)
    (tmp_path / "list.csv").write_bytes(data)
    (item,) = load_datalist(tmp_path / "list.csv")
    assert item["image"] == str(tmp_path / "a.png") and item["patient_id"] == "Müller_007" and item["label"] == 1


def test_csv_in_latin1_or_utf16_without_bom_is_refused_naming_the_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    text = "image,patient_id\na.png,M\u00fcller\n"
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError) as err:
        load_datalist(latin1)
    msg = str(err.value)
    assert msg.startswith(f"{latin1}: not UTF-8 text") and "line 2" in msg and "save the table as UTF-8" in msg
    no_bom = tmp_path / "utf16le.csv"
    no_bom.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(ValueError, match=r"utf16le\.csv: the table contains NUL bytes .* save it as UTF-8"):
        load_datalist(no_bom)


# ------------------------------------------------------------------------------------- ids and paths are text

@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_ids_and_paths_stay_text_as_written(tmp_path, suffix):
    """Patients ``007`` and ``7`` are two MICLe bags, and an image named ``00000123`` is not ``123``; a numeric
    label is still a number."""
    for name in ("00000123", "0042.png", "a.png"):
        (tmp_path / name).write_bytes(b"x")
    rows = [("00000123", "007", "0012", 1), ("0042.png", "7", "12", 0), ("a.png", "7", "12", 0)]
    header = ("image", "patient_id", "study_id", "label")
    table = tmp_path / f"list{suffix}"
    if suffix == ".csv":
        _write_csv(table, rows, header)
    else:  # JSON numbers in id columns become their text
        table.write_text(json.dumps([{"image": r[0], "patient_id": int(r[1]) if r[1] == "7" else r[1],
                                      "study_id": r[2], "label": r[3]} for r in rows]))
    items = load_datalist(table)
    assert [it["image"] for it in items] == [str(tmp_path / n) for n in ("00000123", "0042.png", "a.png")]
    assert [it["patient_id"] for it in items] == ["007", "7", "7"]
    assert [it["study_id"] for it in items] == ["0012", "12", "12"]
    assert [it["label"] for it in items] == [1, 0, 0]
    assert group_by_patient(items) == {"007": [0], "7": [1, 2]}
