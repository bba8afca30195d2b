"""monai_ssl.data.brain_mr: the shipped ICBM152 T1 + tissue labels load, are checksummed and are sensible."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


def test_load_brain_mr_shapes_values_and_anatomy():
    from monai_ssl.data import BRAIN_MR_CLASSES, load_brain_mr

    d = load_brain_mr(REPO / "data")
    img, lab = d["image"], d["label"]
    assert img.shape == lab.shape and img.shape[0] == 1 and img.ndim == 4
    assert img.dtype == np.float32 and 0.0 <= img.min() and img.max() <= 1.0
    assert set(np.unique(lab)) == {0, 1, 2} and d["class_names"] == BRAIN_MR_CLASSES
    np.testing.assert_allclose(np.abs(np.diag(d["affine"])[:3]), 2.0)  # 2 mm voxels
    # T1 contrast: white matter brighter than grey matter, both brighter than the background
    means = [float(img[lab == c].mean()) for c in range(3)]
    assert means[2] > means[1] > means[0], means
    # each tissue takes a plausible share of the brain (GM more voxels than WM in the ICBM152 maps)
    brain = (lab > 0).sum()
    assert 0.5 < (lab == 1).sum() / brain < 0.8


def test_checksum_and_missing_file_errors(tmp_path):
    from monai_ssl.data import BRAIN_MR_FILES, DataIntegrityError, brain_mr_files, load_brain_mr

    for name in BRAIN_MR_FILES.values():
        shutil.copy(REPO / "data" / name, tmp_path / name)
    assert set(brain_mr_files(tmp_path)) == {"image", "label"}
    label = tmp_path / BRAIN_MR_FILES["label"]
    label.write_bytes(label.read_bytes()[:5000])  # truncated
    with pytest.raises(DataIntegrityError, match="sha256 mismatch"):
        load_brain_mr(tmp_path)
    with pytest.raises(DataIntegrityError, match="cannot read NIfTI"):  # unchecked, still refused clearly
        load_brain_mr(tmp_path, verify=False)
    label.unlink()
    with pytest.raises(FileNotFoundError, match=BRAIN_MR_FILES["label"]):
        brain_mr_files(tmp_path, verify=False)


def test_make_script_rederives_the_shipped_labels():
    """The derivation rule (2 mm block means, argmax of background / GM / WM) on a synthetic 1 mm map."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_brain_mr", REPO / "scripts" / "make_brain_mr_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    v = np.arange(5 * 4 * 3, dtype=np.float64).reshape(5, 4, 3)
    m = mod.block_mean(v, 2)
    assert m.shape == (2, 2, 1) and m[0, 0, 0] == v[:2, :2, :2].mean()
