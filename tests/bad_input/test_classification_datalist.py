"""Bad classification datalists: labels that are not class indices of the task, and fixed ``split`` columns that
are partly empty, spelt in another case, unknown, put a patient in two splits or list an image twice. Each is
refused when the table is read, naming the file, the rows and the reason, instead of training on a silently
changed dataset (or crashing an epoch later with ``Target 5 is out of bounds``).
"""

from __future__ import annotations

import pytest

from monai_ssl.bundle.classification import classification_datalists

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
