"""``monai_ssl.utils.errors``: the real reason behind MONAI's "applying transform" wrappers."""

from __future__ import annotations

import pytest
from monai.transforms import Compose, Lambda

from monai_ssl.utils import describe_error, first_informative_error


def _fail(_):
    raise ValueError("a.dcm: DICOM has no pixel data (Modality CT)")


def test_unwraps_nested_compose():
    with pytest.raises(RuntimeError) as err:
        Compose([Compose([Lambda(_fail)])])({"image": "a.dcm"})
    assert str(err.value).startswith("applying transform")  # what MONAI shows at the top
    cause = first_informative_error(err.value)
    assert isinstance(cause, ValueError) and "no pixel data" in str(cause)
    assert describe_error(err.value) == "ValueError: a.dcm: DICOM has no pixel data (Modality CT)"


def test_plain_errors_and_bare_wrappers_are_returned_as_is():
    plain = KeyError("image")
    assert first_informative_error(plain) is plain
    bare = RuntimeError("applying transform <x>")  # no cause to look behind
    assert first_informative_error(bare) is bare
