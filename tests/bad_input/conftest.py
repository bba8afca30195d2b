"""Helpers for the bad-input corpus: real files copied into ``tmp_path`` and then damaged, and the text of an error.

Every case is generated at test time from a real file (pydicom's bundled test DICOMs, the shipped NIfTI and npz
images); nothing broken is committed. Each test asserts that the error (or the skip report) names the file or the
key *and* the reason.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"


def error_text(exc: BaseException) -> str:
    """Messages of ``exc`` and of its causes, joined: MONAI's ``Compose``/``apply_transform`` wrap the error that
    names the file in a ``RuntimeError("applying transform ...")``, and tracebacks show the whole chain."""
    parts, seen = [], []
    while exc is not None and exc not in seen:
        seen.append(exc)
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def pydicom_file(name: str) -> Path:
    """A DICOM bundled in the pydicom wheel or in ``pydicom-data`` (the ``dev`` extra: the enhanced CT/MR test
    files); never one pydicom would download."""
    pydicom_data = pytest.importorskip("pydicom.data")
    base = Path(pydicom_data.get_testdata_file("CT_small.dcm")).parent
    for root, _, files in os.walk(base):
        if name in files:
            return Path(root) / name
    path = pydicom_data.get_testdata_file(name, download=False)
    if path:
        return Path(path)
    pytest.skip(f"{name} is neither bundled with this pydicom nor installed by pydicom-data "
                "(pip install pydicom-data; it is in the dev extra)")


def copy_to(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """Write the first ``fraction`` of ``src``'s bytes to ``dst`` (a download or copy cut short)."""
    data = Path(src).read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@functools.lru_cache(maxsize=1)
def _covid_head(n: int = 8) -> np.ndarray:
    with np.load(DATA / "covid_cxr_256.npz", allow_pickle=False) as z:
        return np.ascontiguousarray(z["images"][:n])  # one read of the array (each z[...] access reads it all)


def covid_images(n: int) -> list[np.ndarray]:
    """The first ``n`` (<= 8) shipped COVID CXR images, (256, 256) uint8."""
    return [im.copy() for im in _covid_head()[:n]]


def save_png(array: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def dcm():
    return pydicom_file


_FIFO_FEEDER = """
import errno, os, sys, time
path, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader has it open
    except OSError as e:
        if e.errno not in (errno.ENXIO, errno.EAGAIN):
            raise
        time.sleep(0.02)
        continue
    try:
        os.write(fd, b"not an image" * 16)
    except OSError:
        pass
    os.close(fd)  # the reader sees end-of-file
"""


@pytest.fixture()
def make_fifo():
    """``make_fifo(path)`` creates a FIFO that never blocks a test forever: a separate process (no GIL shared with a
    reader stuck in C code, where no timeout signal gets in) feeds every reader a few bytes and end-of-file. Code
    that opens the FIFO therefore fails on garbage instead of hanging; code that refuses it never opens it."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    feeders = []

    def make(path: Path, seconds: float = 60.0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        feeders.append(subprocess.Popen([sys.executable, "-c", _FIFO_FEEDER, str(path), str(seconds)]))
        return path

    yield make
    for p in feeders:
        p.kill()
        p.wait()
