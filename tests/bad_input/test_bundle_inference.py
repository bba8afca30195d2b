"""Bundle inference on an unreadable file: the top-level error names the file *and* the loader's reason, not
MONAI's "applying transform <object at 0x...>" wrapper."""

from __future__ import annotations

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
