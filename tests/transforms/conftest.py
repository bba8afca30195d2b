from __future__ import annotations

import os

import pytest

pydicom_data = pytest.importorskip("pydicom.data")


def pydicom_file(name: str) -> str:
    """Path of a DICOM bundled in the pydicom wheel or in ``pydicom-data`` (the ``dev`` extra: pydicom's larger
    test files, e.g. the enhanced CT/MR ones); never one pydicom would download."""
    base = os.path.dirname(pydicom_data.get_testdata_file("CT_small.dcm"))
    for root, _, files in os.walk(base):
        if name in files:
            return os.path.join(root, name)
    path = pydicom_data.get_testdata_file(name, download=False)
    if path:
        return str(path)
    pytest.skip(f"{name} is neither bundled with this pydicom nor installed by pydicom-data "
                "(pip install pydicom-data; it is in the dev extra)")


@pytest.fixture()
def dcm():
    return pydicom_file
