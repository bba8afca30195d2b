"""Bundle inference on an unreadable file: the error names the file *and* the loader's reason, not MONAI's
"applying transform <object at 0x...>" wrapper (``ReportFileErrorsd``, the inference configs' preprocessing);
inputs sharing a name never share an output file (``output_roots`` + ``SaveLabelMapd``)."""

from __future__ import annotations

import os

import monai.transforms
import numpy as np
import pytest
import torch

from monai_ssl.data import output_roots
from monai_ssl.inferers import SliceOrWindowInferer
from monai_ssl.transforms import (
    LoadMedicalImaged,
    MRInferencePreprocessd,
    ReportFileErrorsd,
    SaveLabelMapd,
    XRayPresetd,
)

from .conftest import truncate

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(60)]


def test_classification_inference_names_the_reason(tmp_path, dcm):
    bad = truncate(dcm("CT_small.dcm"), tmp_path / "cut.dcm", 0.9)
    with pytest.raises(RuntimeError) as err:
        ReportFileErrorsd(XRayPresetd("image", spatial_size=32), key="image")({"image": str(bad)})
    msg = str(err.value)
    assert msg.startswith(f"inference: cannot read or preprocess {bad}: ValueError: ")
    assert "pixel data cannot be decoded" in msg and "applying transform" not in msg


def test_segmentation_inference_names_the_reason(tmp_path):
    nib = pytest.importorskip("nibabel")
    good = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.random.rand(16, 16, 8).astype(np.float32), np.eye(4)), good)
    bad = truncate(good, tmp_path / "cut.nii.gz", 0.5)
    preprocess = ReportFileErrorsd(monai.transforms.Compose([LoadMedicalImaged("image"), MRInferencePreprocessd()]),
                                   key="image", action="segment")
    with pytest.raises(RuntimeError) as err:
        preprocess({"image": str(bad)})
    msg = str(err.value)
    assert msg.startswith(f"inference: cannot segment {bad}: ") and "cannot read image" in msg


def _segment(net, files, output_dir):
    """The segmentation inference.yaml's pre-/postprocessing and inferer, item by item."""
    geometry = MRInferencePreprocessd("image", network_dims=3)
    preprocess = ReportFileErrorsd(monai.transforms.Compose([LoadMedicalImaged("image"), geometry]), key="image",
                                   action="segment")
    saver = SaveLabelMapd("pred", output_dir=str(output_dir))
    post = monai.transforms.Compose([monai.transforms.AsDiscreted("pred", argmax=True),
                                     monai.transforms.Invertd("pred", transform=geometry, orig_keys="image",
                                                              nearest_interp=True), saver])
    inferer = SliceOrWindowInferer(8, spatial_dims=3)
    for f, root in zip(files, output_roots(files)):
        d = preprocess({"image": f, "file": f, "root": root})
        d["pred"] = inferer(d["image"][None], net)[0]
        post(d)
    return saver.written


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
    written = _segment(net, [*files, str(other)], out)
    assert [os.path.relpath(w, out) for w in written] == ["a/scan_seg.nii.gz", "b/scan_seg.nii.gz",
                                                          "c/scan_seg.nii.gz", "other_seg.nii.gz"]
    for w, shape in zip(written, shapes.values()):  # each output is its own input's label map
        assert nib.load(w).shape == shape
    # two inputs no folder tells apart, or one input twice: refused before anything is written, naming both
    twin = tmp_path / "in" / "a" / "scan.nii"
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 8).astype(np.float32), np.eye(4)), twin)
    for pair in ([files[0], str(twin)], [str(other), str(other)]):
        with pytest.raises(ValueError) as err:
            _segment(net, pair, tmp_path / "seg2")
        assert pair[0] in str(err.value) and pair[1] in str(err.value)
    assert not (tmp_path / "seg2").exists()
