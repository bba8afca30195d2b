"""Bundle inference on an unreadable file: the top-level error names the file *and* the loader's reason, not
MONAI's "applying transform <object at 0x...>" wrapper; inputs sharing a name never share an output file."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from monai_ssl.bundle.classification import predict_files
from monai_ssl.bundle.segmentation import segment_files
from monai_ssl.transforms import XRayPresetd

from .conftest import truncate

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(60)]


def test_classification_inference_names_the_reason(tmp_path, dcm):
    bad = truncate(dcm("CT_small.dcm"), tmp_path / "cut.dcm", 0.9)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    with pytest.raises(RuntimeError) as err:
        predict_files(net, [str(bad)], XRayPresetd("image", spatial_size=32), tmp_path / "pred.csv")
    msg = str(err.value)
    assert msg.startswith(f"inference: cannot read or preprocess {bad}: ValueError: ")
    assert "pixel data cannot be decoded" in msg and "applying transform" not in msg
    assert not (tmp_path / "pred.csv").exists()


def test_segmentation_inference_names_the_reason(tmp_path):
    nib = pytest.importorskip("nibabel")
    good = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.random.rand(16, 16, 8).astype(np.float32), np.eye(4)), good)
    bad = truncate(good, tmp_path / "cut.nii.gz", 0.5)
    net = torch.nn.Conv3d(1, 2, 1)
    with pytest.raises(RuntimeError) as err:
        segment_files(net, [str(bad)], spatial_dims=3, roi_size=8, output_dir=tmp_path / "seg")
    msg = str(err.value)
    assert msg.startswith(f"inference: cannot segment {bad}: ") and "cannot read image" in msg


def test_segmentation_inputs_with_one_name_get_distinct_outputs(tmp_path):
    """Issue 21 (3): ``a/scan.nii.gz`` and ``b/scan.nii.gz`` were both written to one ``scan_seg.nii.gz``."""
    nib = pytest.importorskip("nibabel")
    shapes = {"a": (16, 16, 8), "b": (12, 10, 8), "c": (8, 8, 8)}
    files = []
    for folder, shape in shapes.items():
        (tmp_path / "in" / folder).mkdir(parents=True)
        files.append(str(tmp_path / "in" / folder / "scan.nii.gz"))
        nib.save(nib.Nifti1Image(np.random.rand(*shape).astype(np.float32), np.eye(4)), files[-1])
    other = tmp_path / "in" / "other.nii.gz"
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 8).astype(np.float32), np.eye(4)), other)
    net = torch.nn.Conv3d(1, 2, 1)
    out = tmp_path / "seg"
    written = segment_files(net, [*files, str(other)], spatial_dims=3, roi_size=8, output_dir=out)
    assert [os.path.relpath(w, out) for w in written] == ["a/scan_seg.nii.gz", "b/scan_seg.nii.gz",
                                                          "c/scan_seg.nii.gz", "other_seg.nii.gz"]
    for w, shape in zip(written, shapes.values()):  # each output is its own input's label map
        assert nib.load(w).shape == shape
    # two inputs no folder tells apart, or one input twice: refused before anything is written, naming both
    twin = tmp_path / "in" / "a" / "scan.nii"
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 8).astype(np.float32), np.eye(4)), twin)
    for pair in ([files[0], str(twin)], [str(other), str(other)]):
        with pytest.raises(ValueError) as err:
            segment_files(net, pair, spatial_dims=3, roi_size=8, output_dir=tmp_path / "seg2")
        assert pair[0] in str(err.value) and pair[1] in str(err.value)
    assert not (tmp_path / "seg2").exists()
