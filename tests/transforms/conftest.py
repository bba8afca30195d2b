from __future__ import annotations

import os

import pytest

pydicom_data = pytest.importorskip("pydicom.data")


def pydicom_file(name: str) -> str:
    """Path of a DICOM bundled in the pydicom wheel (never one pydicom would download)."""
    base = os.path.dirname(pydicom_data.get_testdata_file("CT_small.dcm"))
    for root, _, files in os.walk(base):
        if name in files:
            return os.path.join(root, name)
    pytest.skip(f"{name} is not bundled with this pydicom")


@pytest.fixture()
def dcm():
    return pydicom_file
