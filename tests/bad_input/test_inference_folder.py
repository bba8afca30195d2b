"""Issue 22: bundle inference on a folder mixing good, corrupt and out-of-domain files writes one CSV row per file
(``status`` ``ok`` or the reason) and exits 0; the model's contract refuses a mismatched ``image_size``; a failed
``python -m monai.bundle run`` ends with the actionable message as its last line."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch

from ..bundles.conftest import cli_args, config_files, make_workflow, run_cli
from .conftest import REPO, covid_images, pydicom_file, save_png, truncate

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(180)]

SIZE = 32
CR = "6154"  # pydicom's CR (MONOCHROME1, BodyPartExamined CSPINE, ViewPosition LL)


def _model(folder):
    """A random 1-channel ResNet-18 saved as ``model.pt`` with its contract (32 px), as training leaves them."""
    from monai.networks.nets import resnet18

    from monai_ssl.bundle import save_model_contract

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=2)
    torch.save(net.state_dict(), folder / "model.pt")
    domain = {"Modality": ["CR", "DX"], "BodyPartExamined": ["CHEST"], "ViewPosition": ["PA", "AP"],
              "PhotometricInterpretation": ["MONOCHROME1", "MONOCHROME2"]}
    save_model_contract(folder / "model.pt", {"image_size": SIZE, "channels": 1, "class_names": ["other", "covid"],
                                              "domain": domain, "preprocessing": "XRayPresetd"})
    return folder / "model.pt"


def _smpte(h=240, w=320):
    """SMPTE-like colour bars in grey: seven bars, a strip of reversed bars and a bottom row of three blocks."""
    im = np.zeros((h, w), np.uint8)
    bw = w // 7 + 1
    for i, v in enumerate((235, 210, 170, 145, 106, 81, 41)):
        im[: int(h * 0.67), i * bw:(i + 1) * bw] = v
    im[int(h * 0.67):int(h * 0.75)] = np.repeat([41, 16, 145, 16, 106, 16, 210], bw)[:w]
    im[int(h * 0.75):, : w // 4], im[int(h * 0.75):, w // 4: w // 2], im[int(h * 0.75):, w // 2:] = 30, 235, 16
    return im


def _mixed_folder(folder):
    """Expected status prefix per file name."""
    import pydicom

    folder.mkdir(parents=True)
    expected = {}
    a, b = covid_images(2)
    save_png(a, folder / "cxr_a.png"), save_png(b, folder / "cxr_b.png")
    expected |= {"cxr_a.png": "ok", "cxr_b.png": "ok"}
    chest = pydicom.dcmread(pydicom_file(CR))
    chest.BodyPartExamined, chest.ViewPosition = "CHEST", "PA"
    chest.save_as(folder / "chest_cr.dcm")
    expected["chest_cr.dcm"] = "ok"
    truncate(folder / "chest_cr.dcm", folder / "cut_cr.dcm", 0.8)  # header intact, pixel data cut short
    expected["cut_cr.dcm"] = "error: ValueError:"
    truncate(folder / "cxr_a.png", folder / "cut.png", 0.3)
    expected["cut.png"] = "error: ValueError:"
    (folder / "empty.dcm").write_bytes(b"")
    expected["empty.dcm"] = "error: ValueError:"
    leg = pydicom.dcmread(pydicom_file(CR))
    leg.BodyPartExamined, leg.ViewPosition = "LEG", "AP"
    leg.save_as(folder / "leg.dcm")
    expected["leg.dcm"] = "out_of_domain: BodyPartExamined LEG, model trained on CHEST"
    pydicom.dcmread(pydicom_file("MR_small.dcm")).save_as(folder / "mr.dcm")
    expected["mr.dcm"] = "out_of_domain: Modality MR, model trained on CR, DX"
    save_png(_smpte(), folder / "smpte.png")
    expected["smpte.png"] = "out_of_domain: flat synthetic-looking image"
    chest.save_as(folder / "IM0001")  # a DICOM without extension, as scanners write them
    expected["IM0001"] = "ok"
    (folder / "notes.txt").write_text("not an image")  # listed too: its row says why it was not scored
    expected["notes.txt"] = "error: ValueError: cannot read image"
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden files are not inputs
    return expected


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _overrides(tmp_path, **kw):
    return {"ckpt_path": str(_model(tmp_path / "model")), "input_path": str(tmp_path / "in"),
            "output_csv": str(tmp_path / "pred.csv"), "output_dir": str(tmp_path / "out"), "image_size": SIZE,
            "batch_size": 4, "progress_bar": False, **kw}


def test_folder_of_good_corrupt_and_out_of_domain_files(tmp_path):
    expected = _mixed_folder(tmp_path / "in")
    overrides = _overrides(tmp_path)
    wf = make_workflow("classification", "train", "inference", **overrides)
    wf.initialize()
    wf.run()  # no exception: every file is reported
    out_csv = tmp_path / "pred.csv"
    rows = _read(out_csv)
    assert len(rows) == len(expected) == 11  # one row per file, in input order
    assert [os.path.basename(r["file"]) for r in rows] == sorted(expected)
    assert list(rows[0]) == ["file", "status", "domain", "prob_other", "prob_covid", "pred"]
    for r in rows:
        name = os.path.basename(r["file"])
        assert r["status"].startswith(expected[name]), (name, r["status"])
        if r["status"] == "ok":
            assert abs(float(r["prob_other"]) + float(r["prob_covid"]) - 1) < 1e-4 and r["pred"] in ("other", "covid")
        else:  # never scored
            assert r["prob_other"] == r["prob_covid"] == r["pred"] == "", name
    by_name = {os.path.basename(r["file"]): r for r in rows}
    assert by_name["chest_cr.dcm"]["domain"] == "checked"
    assert by_name["cxr_a.png"]["domain"] == "unchecked: no DICOM header"
    assert "pixel data cannot be decoded" in by_name["cut_cr.dcm"]["status"]
    assert "corrupt or truncated" in by_name["cut.png"]["status"]
    assert by_name["empty.dcm"]["status"].startswith("error: ValueError: not a readable DICOM file")
    assert all(str(tmp_path) not in r["status"] for r in rows)  # the path is in the file column
    # the good files score as they do alone: the failed items in their batches changed nothing
    alone = tmp_path / "alone.csv"
    wf = make_workflow("classification", "train", "inference", **{**overrides, "output_csv": str(alone),
                                                                    "input_path": [str(tmp_path / "in/cxr_b.png")]})
    wf.initialize()
    wf.run()
    assert len(_read(alone)) == 1
    assert float(_read(alone)[0]["prob_covid"]) == pytest.approx(float(by_name["cxr_b.png"]["prob_covid"]), abs=1e-5)


def test_contract_mismatch_is_refused_naming_both_sides(tmp_path):
    """A model trained at 32 px run at 64 px: refused before any file is read, naming the key, both values, the
    contract file and the fix."""
    (tmp_path / "in").mkdir()
    save_png(covid_images(1)[0], tmp_path / "in" / "cxr.png")
    overrides = _overrides(tmp_path, image_size=64)
    wf = make_workflow("classification", "train", "inference", **overrides)
    with pytest.raises(Exception) as err:
        wf.initialize()
    from monai_ssl.bundle import actionable_error

    msg = str(actionable_error(err.value))
    assert msg.startswith("config key 'image_size': this run uses 64 but model.pt was trained with 32")
    assert msg.endswith("pass --image_size 32") and "model.contract.json" in msg


@pytest.mark.slow
def test_cli_errors_end_with_the_actionable_line(tmp_path):
    """The contract mismatch and a missing checkpoint (a bundle path check) through the CLI: the last stderr line
    is the message, not MONAI's "Failed to evaluate ConfigExpression"."""
    (tmp_path / "in").mkdir()
    save_png(covid_images(1)[0], tmp_path / "in" / "cxr.png")
    overrides = _overrides(tmp_path, image_size=64)
    files = repr(config_files("classification", "train", "inference"))
    proc = run_cli(["run", "--config_file", files, *cli_args(overrides)], cwd=REPO)
    assert proc.returncode != 0 and not (tmp_path / "pred.csv").exists()
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: config key 'image_size': this run uses 64 but model.pt was trained with 32")
    assert last.endswith("pass --image_size 32")
    assert "Failed to evaluate" in proc.stderr  # MONAI's wrapper is still in the traceback above
    proc = run_cli(["run", "--config_file", files,
                    *cli_args({**overrides, "ckpt_path": str(tmp_path / "no_model.pt")})], cwd=REPO)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and last.startswith("FileNotFoundError: config key 'ckpt_path'"), last
    assert str(tmp_path / "no_model.pt") in last


@pytest.mark.slow
def test_cli_on_a_mixed_folder_exits_0(tmp_path):
    """``python -m monai.bundle run`` as the README gives it: exit status 0 and one row per file."""
    expected = _mixed_folder(tmp_path / "in")
    overrides = _overrides(tmp_path)
    proc = run_cli(["run", "--config_file", repr(config_files("classification", "train", "inference")),
                    *cli_args(overrides)], cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _read(tmp_path / "pred.csv")
    assert [os.path.basename(r["file"]) for r in rows] == sorted(expected)
    assert sum(r["status"] == "ok" for r in rows) == 4


def test_evaluation_refuses_a_model_trained_at_another_size(tmp_path):
    """evaluate.yaml checks the contract of each checkpoint too (a 32-px model scored on 64-px test images)."""
    from monai_ssl.bundle import actionable_error

    wf = make_workflow("classification", "train", "evaluate", ckpt_path=str(_model(tmp_path / "model")),
                       output_dir=str(tmp_path / "out"), image_size=64, data_limit=8, progress_bar=False)
    with pytest.raises(Exception) as err:
        wf.initialize()
    assert str(actionable_error(err.value)).startswith("config key 'image_size': this run uses 64 but model.pt was "
                                                       "trained with 32")
