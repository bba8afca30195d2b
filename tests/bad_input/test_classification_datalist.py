"""Bad classification datalists: labels that are not class indices of the task, and fixed ``split`` columns that
are partly empty, spelt in another case, unknown, put a patient in two splits or list an image twice. Each is
refused when the table is read, naming the file, the rows and the reason, instead of training on a silently
changed dataset (or crashing an epoch later with ``Target 5 is out of bounds``).
"""

from __future__ import annotations

import pytest

from monai_ssl.data import classification_datalists

from ..bundles.conftest import make_workflow
from .conftest import error_text

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(60)]

HEADER = ("image", "patient_id", "label", "split")


def _table(tmp_path, rows, header=HEADER):
    """A CSV datalist over real (one-byte) files: classification_datalists never opens the images."""
    for r in rows:
        (tmp_path / r[0]).write_bytes(b"x")
    table = tmp_path / "list.csv"
    table.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return table


def _rows(split=("train", "train", "train", "train", "val", "val", "test", "test")):
    """Eight images of eight patients, both classes in every split."""
    return [(f"{i}.png", f"p{i}", i % 2, s) for i, s in enumerate(split)]


# --------------------------------------------------------------------------------------------- labels (item 7)

@pytest.mark.parametrize("bad", ["0.7", "-2", "5", "1e3", "nan", "yes"])
def test_label_that_is_not_a_class_index_names_file_row_column_and_allowed_values(tmp_path, bad):
    rows = _rows()
    rows[2] = (rows[2][0], rows[2][1], bad, rows[2][3])
    table = _table(tmp_path, rows)
    with pytest.raises(ValueError) as err:
        classification_datalists(tmp_path, datalist=table)
    msg = str(err.value)
    assert msg.startswith(f"{table}: 1 row(s) with a label that is not a class of num_classes=2")
    assert f"row 3: column 'label' = '{bad}'" in msg
    assert "allowed: the integers 0..1, or -1 for an unlabelled row" in msg


def test_num_classes_of_the_bundle_config_reaches_the_datalist_reader(tmp_path):
    rows = [(f"{i}.png", f"p{i}", i % 3, s) for i, s in enumerate(["train"] * 6 + ["val"] * 3 + ["test"] * 3)]
    table = _table(tmp_path, rows)
    wf = make_workflow("classification", datalist=str(table))  # num_classes: 2
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("datalists")
    assert "row 3: column 'label' = '2'" in error_text(err.value)
    wf = make_workflow("classification", datalist=str(table), num_classes=3)
    wf.initialize()
    lists = wf.parser.get_parsed_content("datalists")
    assert sorted({d["label"] for d in lists["train"]}) == [0, 1, 2]


# --------------------------------------------------------------------------------------------- splits (item 8)

def test_split_names_in_any_case_keep_their_rows(tmp_path):
    table = _table(tmp_path, _rows(("Train", "TRAIN", " train ", "train", "Val", "val", "TEST", "Test")))
    lists = classification_datalists(tmp_path, datalist=table)
    assert {k: sorted(d["patient_id"] for d in v) for k, v in lists.items()} == {
        "train": ["p0", "p1", "p2", "p3"], "val": ["p4", "p5"], "test": ["p6", "p7"]}


def test_partly_empty_or_unknown_split_column_is_refused_naming_the_rows(tmp_path):
    """One empty cell used to discard the whole fixed split for a random one; ``training`` dropped its row."""
    table = _table(tmp_path, _rows(("train", "train", "", "train", "val", "val", "test", "")))
    with pytest.raises(ValueError) as err:
        classification_datalists(tmp_path, datalist=table)
    assert str(err.value).startswith(f"datalist {table}: 2 of 8 row(s) have no 'split' (rows 3, 8) while the others")
    table = _table(tmp_path, _rows(("train", "training", "train", "train", "val", "val", "test", "holdout")))
    with pytest.raises(ValueError) as err:
        classification_datalists(tmp_path, datalist=table)
    msg = str(err.value)
    assert msg.startswith(f"datalist {table}: 2 row(s) with an unknown 'split' (allowed: train, val, test, in any")
    assert "row 2: 'training'; row 8: 'holdout'" in msg


def test_patient_in_two_splits_is_refused_naming_patient_and_splits(tmp_path):
    rows = _rows()
    rows[7] = (rows[7][0], "p1", rows[7][2], "test")  # p1 has a train image (row 2) and a test image (row 8)
    table = _table(tmp_path, rows)
    with pytest.raises(ValueError) as err:
        classification_datalists(tmp_path, datalist=table)
    msg = str(err.value)
    assert msg.startswith(f"datalist {table}: 1 patient(s) in more than one split")
    assert "patient 'p1' in train and test (rows 2, 8)" in msg


def test_duplicated_image_rows_are_refused_naming_the_rows(tmp_path):
    rows = _rows() + [("2.png", "p2", 0, "train")]
    table = _table(tmp_path, rows)
    with pytest.raises(ValueError) as err:
        classification_datalists(tmp_path, datalist=table)
    msg = str(err.value)
    assert msg.startswith(f"datalist {table}: 1 'image' value(s) listed more than once (duplicated rows)")
    assert f"{str(tmp_path / '2.png')!r} in rows 3, 9" in msg
    no_split = _table(tmp_path, [r[:3] for r in rows], header=HEADER[:3])  # also without a split column
    with pytest.raises(ValueError, match=r"listed more than once .* in rows 3, 9"):
        classification_datalists(tmp_path, datalist=no_split)
