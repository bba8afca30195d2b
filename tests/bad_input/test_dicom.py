"""Bad DICOM input: truncated files, no pixel data, not DICOM at all, wrong modality for a preset.

Each case must raise an error naming the file and the reason (loader, presets) or be skipped with its reason
(``datalist_from_dicom``) — never load silently.
"""

from __future__ import annotations

import pydicom
import pytest
import torch

from monai_ssl.data import datalist_from_dicom
from monai_ssl.transforms import CTPresetd, LoadMedicalImage, LoadMedicalImaged, MRPresetd, USPresetd, XRayPresetd

from .conftest import copy_to, error_text, truncate

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(60)]


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_dicom_pixel_data(tmp_path, dcm, fraction):
    """Header intact, pixel data cut: the loader refuses it with the byte counts, the scan skips it."""
    bad = truncate(dcm("CT_small.dcm"), tmp_path / "cut" / "ct_cut.dcm", fraction)
    with pytest.raises(ValueError) as err:
        LoadMedicalImage()(bad)
    msg = str(err.value)
    assert str(bad) in msg and "pixel data cannot be decoded" in msg and "less than expected" in msg
    scan = datalist_from_dicom(bad.parent)
    assert scan.datalist == []
    assert len(scan.skipped) == 1 and scan.skipped[0].path == str(bad)
    assert "truncated pixel data" in scan.skipped[0].reason and "of 32768 bytes" in scan.skipped[0].reason


def test_truncated_dicom_header(tmp_path, dcm):
    """Cut inside the header (300 bytes): not readable as DICOM; the dictionary loader names the key too."""
    bad = truncate(dcm("CT_small.dcm"), tmp_path / "ct_head.dcm", 300 / dcm("CT_small.dcm").stat().st_size)
    with pytest.raises(ValueError) as err:
        LoadMedicalImaged("image")({"image": str(bad)})
    msg = str(err.value)
    assert msg.startswith("key 'image': ") and str(bad) in msg
    assert "not a readable DICOM file" in msg or "no pixel data" in msg
    (skipped,) = datalist_from_dicom(tmp_path).skipped
    assert skipped.path == str(bad) and ("unreadable DICOM" in skipped.reason or "pixel data" in skipped.reason)


def test_pydicom_truncated_sample(tmp_path, dcm):
    """pydicom's own MR_truncated.dcm (pixel data shorter than Rows x Columns)."""
    bad = copy_to(dcm("MR_truncated.dcm"), tmp_path / "mr_truncated.dcm")
    with pytest.raises(ValueError, match=r"mr_truncated\.dcm: pixel data cannot be decoded"):
        LoadMedicalImage()(bad)
    (skipped,) = datalist_from_dicom(tmp_path).skipped
    assert "truncated pixel data" in skipped.reason


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm"])
def test_dicom_without_pixel_data(tmp_path, dcm, name):
    """Valid DICOM objects that are not images (RT plan/structure set, structured report)."""
    src = copy_to(dcm(name), tmp_path / name)
    with pytest.raises((RuntimeError, ValueError)) as err:  # Compose wraps the loader's ValueError
        XRayPresetd("image")({"image": str(src)})
    assert f"{src}: DICOM has no pixel data" in error_text(err.value)
    (skipped,) = datalist_from_dicom(tmp_path).skipped
    assert skipped.path == str(src) and skipped.reason.startswith("no pixel data (Modality")


def test_not_dicom_with_dcm_suffix(tmp_path):
    bad = tmp_path / "report.dcm"
    bad.write_text("patient report, not an image\n")
    with pytest.raises(ValueError, match=r"report\.dcm: not a readable DICOM file \(InvalidDicomError"):
        LoadMedicalImage()(bad)
    (skipped,) = datalist_from_dicom(tmp_path).skipped
    assert "not a DICOM file" in skipped.reason


def test_zero_byte_dicom(tmp_path):
    bad = tmp_path / "empty.dcm"
    bad.write_bytes(b"")
    with pytest.raises(ValueError) as err:
        LoadMedicalImage()(bad)
    assert str(bad) in str(err.value) and "not a readable DICOM file" in str(err.value)
    (skipped,) = datalist_from_dicom(tmp_path).skipped
    assert skipped.path == str(bad)


@pytest.mark.parametrize(
    "name, preset, modality",
    [
        ("MR_small.dcm", XRayPresetd, "MR"),   # an MR slice fed to the X-ray chain
        ("MR_small.dcm", CTPresetd, "MR"),     # ... to the CT chain (HU windows would be meaningless)
        ("CT_small.dcm", MRPresetd, "CT"),
        ("CT_small.dcm", USPresetd, "CT"),
    ],
)
def test_wrong_modality_for_preset(tmp_path, dcm, name, preset, modality):
    src = copy_to(dcm(name), tmp_path / name)
    kwargs = {"spatial_dims": 2} if preset is MRPresetd else {}
    with pytest.raises((RuntimeError, ValueError)) as err:
        preset("image", **kwargs)({"image": str(src)})
    text = error_text(err.value)
    assert f"DICOM Modality '{modality}' where this chain expects" in text
    assert "key 'image'" in text and name in text


def test_right_modality_still_loads(tmp_path, dcm):
    """Control: the checks above are not refusing everything."""
    src = copy_to(dcm("CT_small.dcm"), tmp_path / "ct.dcm")
    out = CTPresetd("image", spatial_size=32)({"image": str(src)})["image"]
    assert out.shape == (1, 32, 32) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_zero_length_pixel_data_is_skipped_not_the_whole_scan(tmp_path, dcm):
    """A DICOM whose PixelData element is present but 0 bytes long used to abort the scan with ``TypeError:
    object of type 'NoneType' has no len()``; the readable file next to it must still be listed."""
    good = copy_to(dcm("CT_small.dcm"), tmp_path / "good.dcm")
    ds = pydicom.dcmread(good)
    ds.PixelData = b""
    bad = tmp_path / "empty_pixels.dcm"
    ds.save_as(bad)
    scan = datalist_from_dicom(tmp_path)
    assert [x["image"] for x in scan.datalist] == [str(good)]
    (skipped,) = scan.skipped
    assert skipped.path == str(bad) and skipped.reason == "empty pixel data (0-length PixelData element)"


def test_fifo_named_dcm_is_skipped_and_reported_by_the_scan(tmp_path, dcm, make_fifo):
    """The old scan left it out silently (``is_file()`` is False for a FIFO); it must be reported, never opened."""
    good = copy_to(dcm("CT_small.dcm"), tmp_path / "good.dcm")
    fifo = make_fifo(tmp_path / "x.dcm")
    scan = datalist_from_dicom(tmp_path)
    assert [x["image"] for x in scan.datalist] == [str(good)]
    (skipped,) = scan.skipped
    assert skipped.path == str(fifo) and skipped.reason == "not a regular file but a FIFO (named pipe); not opened"


@pytest.mark.parametrize("name", ["IMG00001.IMA", "IMG00002", "slice.img", "ct.DCM"])
def test_dicom_is_recognised_by_content_whatever_its_name(tmp_path, dcm, name):
    """Siemens ``.IMA``, extension-less and oddly named DICOM files carry the ``DICM`` magic at byte 128: they
    go through the DICOM reader (CT in Hounsfield units, Modality in the metadata) like ``ct.dcm``."""
    reference = LoadMedicalImage()(copy_to(dcm("CT_small.dcm"), tmp_path / "ref" / "ct.dcm"))
    img = LoadMedicalImage()(copy_to(dcm("CT_small.dcm"), tmp_path / name))
    assert img.meta["Modality"] == "CT" and img.meta["filename_or_obj"] == str(tmp_path / name)
    assert img.shape == reference.shape == (1, 128, 128) and torch.equal(img.as_tensor(), reference.as_tensor())
    scan = datalist_from_dicom(tmp_path)
    assert len(scan.datalist) == 2 and not scan.skipped


def _one_line(err: BaseException) -> str:
    """The preset's own message: one line, the reason behind MONAI's wrapper, never an object address."""
    from monai_ssl.transforms import InputError

    assert isinstance(err, InputError) and isinstance(err, ValueError) and isinstance(err, RuntimeError)
    msg = str(err)
    assert "\n" not in msg and "applying transform" not in msg and "object at 0x" not in msg
    return msg


_HINTS = [
    # a classic MR slice to the MR preset's default 3D
    ("MR_small.dcm", MRPresetd, {}, (r"MRPresetd\(spatial_dims=3\) expected a channel-first 3D image .*"
                                     r"got shape \(1, 64, 64\): a 2D image .*: pass spatial_dims=2$")),
    # an enhanced CT (two frames, last axis) to the CT preset's default 2D
    ("eCT_Supplemental.dcm", CTPresetd, {}, (r"CTPresetd\(spatial_dims=2\) expected a channel-first 2D image .*"
                                             r"got shape \(1, 512, 512, 2\): a 3D image .*: pass spatial_dims=3$")),
    # an enhanced MR volume to the X-ray preset (2D only)
    ("emri_small.dcm", XRayPresetd, {}, (r"XRayPresetd expected a channel-first 2D image .*select a frame first "
                                         r"\(CineFramed\) and pass load=False$")),
    ("MR_small.dcm", CTPresetd, {}, (r"CTPresetd cannot use .*DICOM Modality 'MR' where this chain expects "
                                     r"\['CT'\]: use MRPresetd for MR images, or leave this file out")),
    ("rtplan.dcm", XRayPresetd, {}, (r"XRayPresetd cannot use .*: DICOM has no pixel data \(Modality RTPLAN\): "
                                     r"leave the file out of the data list")),
]


@pytest.mark.parametrize("name, preset, kwargs, fix", _HINTS)
def test_preset_error_is_one_line_with_file_reason_and_fix(tmp_path, dcm, name, preset, kwargs, fix):
    src = copy_to(dcm(name), tmp_path / name)
    with pytest.raises(ValueError) as err:
        preset("image", **kwargs)({"image": str(src)})
    msg = _one_line(err.value)
    assert f"{src} (key 'image')" in msg and msg.count(str(src)) == 1
    assert __import__("re").search(fix, msg), msg


def test_preset_hint_is_right(dcm):
    """Following the hints works: the same files load with the spatial_dims the message named."""
    assert MRPresetd("image", spatial_dims=2)({"image": str(dcm("MR_small.dcm"))})["image"].shape == (1, 64, 64)
    ct = CTPresetd("image", spatial_dims=3, spatial_size=16)({"image": str(dcm("eCT_Supplemental.dcm"))})["image"]
    assert ct.shape == (1, 16, 16, 16) and 0.0 <= float(ct.min()) and float(ct.max()) <= 1.0
    mr = MRPresetd("image")({"image": str(dcm("emri_small.dcm"))})["image"]  # enhanced MR: a volume, 3D default
    assert mr.shape == (1, 64, 64, 10) and float(mr.max()) == 1.0


def test_nested_preset_named_in_monai_wrapper(tmp_path, dcm):
    """Inside another Compose, MONAI's wrapper names the preset and its settings, not an object address; the
    preset's one-line message is the cause."""
    import monai.transforms

    src = copy_to(dcm("MR_small.dcm"), tmp_path / "mr.dcm")
    with pytest.raises(RuntimeError) as err:
        monai.transforms.Compose([MRPresetd("image")])({"image": str(src)})
    assert str(err.value).startswith("applying transform MRPresetd(keys='image', spatial_dims=3")
    assert "pass spatial_dims=2" in _one_line(err.value.__cause__)
