"""``InputError`` / ``input_error``: a preset's failure as one line naming the file, the reason and the fix."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Lambda

from monai_ssl.transforms import InputError, XRayPresetd
from monai_ssl.transforms.errors import input_error, input_sources
from monai_ssl.utils import describe_error, first_informative_error


def test_missing_file_names_path_and_fix(tmp_path):
    missing = tmp_path / "gone.dcm"
    with pytest.raises(InputError) as err:
        XRayPresetd()({"image": str(missing)})
    assert str(err.value) == (f"XRayPresetd cannot use {missing} (key 'image'): file not found: correct the path in "
                              "the data list")
    # ReportFileErrorsd and friends look through the summary to the loader's own error
    assert describe_error(err.value) == f"FileNotFoundError: key 'image': {missing}: file not found"


def test_loaded_image_is_named_by_its_file_and_key():
    img = MetaTensor(torch.zeros(1, 4, 4, 4), meta={"filename_or_obj": "/data/vol.nii.gz"})
    with pytest.raises(InputError) as err:
        XRayPresetd(load=False)({"image": img})
    msg = str(err.value)
    assert msg.startswith("/data/vol.nii.gz (key 'image'): XRayPresetd expected a channel-first 2D image")
    assert msg.endswith("select a frame first (CineFramed) and pass load=False") and msg.count("vol.nii.gz") == 1


def test_unexpected_errors_keep_their_type_and_unwrap():
    def boom(_):
        raise TypeError("unsupported operand")

    sources = input_sources({"image": "a.png", "label": None}, ["image", "label"])
    assert sources == {"image": "a.png", "label": None}
    with pytest.raises(RuntimeError) as wrapped:
        Compose([Lambda(boom)])({"image": "a.png"})
    err = input_error("MyChain", wrapped.value, sources)
    assert isinstance(err, ValueError) and isinstance(err, RuntimeError)
    assert str(err) == "MyChain cannot use a.png (key 'image'): TypeError: unsupported operand"
    err.__cause__ = wrapped.value
    assert isinstance(first_informative_error(err), TypeError)  # the summary is looked through (wraps_cause)
