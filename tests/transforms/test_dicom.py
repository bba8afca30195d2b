"""DICOM values per frame (issue 22): rescale and VOI windows from the functional groups of enhanced CT/MR/US, frames
on the last spatial axis, MONOCHROME1 windows in the right space.

Every expected value is decoded here independently of the loader: pydicom's ``pixel_array``, the frame's rescale and
window read by hand from its functional groups into a classic single-frame dataset, then pydicom's
``apply_rescale`` / ``apply_voi_lut``. Files without per-frame differences are edited copies of real files (real
pixel data, edited header).
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset
from pydicom.pixels import apply_rescale, apply_voi_lut
from pydicom.sequence import Sequence

from monai_ssl.transforms import CineFrame, CTPresetd, DicomWindow, LoadMedicalImage, XRayPresetd
from monai_ssl.transforms.dicom import decode_frame_windows

_GROUPS = (("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept")),
           ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth")))


def _frame_as_classic(ds: Dataset, i: int) -> Dataset:
    """Frame ``i``'s rescale and window moved to the top level of a single-frame dataset (per-frame group first,
    then the shared group, then the top level: DICOM PS3.3 C.7.6.16)."""
    flat = Dataset()
    for name in ("PhotometricInterpretation", "BitsStored", "PixelRepresentation"):
        setattr(flat, name, ds[name].value)
    groups = [g for g in (ds.get("PerFrameFunctionalGroupsSequence", [None] * (i + 1))[i],
                          (ds.get("SharedFunctionalGroupsSequence") or [None])[0], ds) if g is not None]
    for sequence, attrs in _GROUPS:
        for group in groups:
            item = group if group is ds else (group[sequence][0] if sequence in group else None)
            if item is not None and all(a in item for a in attrs):
                for a in attrs:
                    setattr(flat, a, item[a].value)
                break
    return flat


def _reference(ds: Dataset) -> tuple[list[np.ndarray], list[np.ndarray | None], list[tuple[float, float]]]:
    """Per frame: the rescaled values, the display in [0, 1] through the frame's VOI window (None without one;
    MONOCHROME1 shown bright = dense) and that window's (centre, width)."""
    pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    values, displays, windows = [], [], []
    for i, frame in enumerate(pixels):
        flat = _frame_as_classic(ds, i)
        value = apply_rescale(frame, flat).astype(np.float64)
        values.append(value)
        if "WindowCenter" not in flat:
            displays.append(None)
            windows.append((np.nan, np.nan))
            continue
        # apply_voi_lut's LINEAR window maps onto the rescaled range of the stored bits
        lo, hi = (0, 2**flat.BitsStored - 1) if flat.PixelRepresentation == 0 else \
            (-(2 ** (flat.BitsStored - 1)), 2 ** (flat.BitsStored - 1) - 1)
        if "RescaleSlope" in flat:
            lo, hi = (v * float(flat.RescaleSlope) + float(flat.RescaleIntercept) for v in (lo, hi))
        shown = (apply_voi_lut(value, flat) - lo) / (hi - lo)
        displays.append(1.0 - shown if flat.PhotometricInterpretation == "MONOCHROME1" else shown)
        windows.append((float(flat.WindowCenter), float(flat.WindowWidth)))
    return values, displays, windows


def _voi_tolerance(windows) -> float:
    # DICOM's LINEAR window uses (c - 0.5, w - 1) where DicomWindow uses (c, w): at most 1 / (w - 1) apart
    return max(1.0 / (w - 1) for _, w in windows) + 1e-5


def _item(**attrs) -> Dataset:
    item = Dataset()
    for k, v in attrs.items():
        setattr(item, k, v)
    return item


def _group(rescale: tuple[float, float] | None = None, window: tuple[float, float] | None = None) -> Dataset:
    group = Dataset()
    if rescale is not None:
        group.PixelValueTransformationSequence = Sequence(
            [_item(RescaleSlope=rescale[0], RescaleIntercept=rescale[1], RescaleType="US")])
    if window is not None:
        group.FrameVOILUTSequence = Sequence([_item(WindowCenter=window[0], WindowWidth=window[1])])
    return group


def _per_frame_copy(src: str, dst, modality: str, photometric: str | None = None) -> str:
    """``src`` (an enhanced MR, real pixels) with a shared rescale, a per-frame rescale on two frames and a
    different window on every frame; as ``modality`` (MR, or US: an Enhanced US Volume)."""
    ds = pydicom.dcmread(src)
    n = int(ds.NumberOfFrames)
    ds.Modality = modality
    if modality == "US":
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.2"  # Enhanced US Volume
    if photometric:
        ds.PhotometricInterpretation = photometric
    ds.SharedFunctionalGroupsSequence = Sequence([_group(rescale=(1.5, 10.0))])
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [_group(rescale=(0.5, -20.0 * i) if i in (3, 7) else None, window=(150.0 + 25 * i, 300.0 + 40 * i))
         for i in range(n)])
    ds.save_as(dst)
    return str(dst)


def _check_against_reference(path: str, image: torch.Tensor) -> None:
    ds = pydicom.dcmread(path)
    values, displays, windows = _reference(ds)
    n = len(values)
    assert image.shape == (1, ds.Rows, ds.Columns, n)  # frames on the last spatial axis
    if ds.PhotometricInterpretation == "MONOCHROME1":  # inverted (bright = dense) over the whole image
        lo, hi = min(v.min() for v in values), max(v.max() for v in values)
        values = [hi + lo - v for v in values]
    for i in range(n):
        np.testing.assert_allclose(image[0, ..., i].numpy(), values[i], rtol=1e-6, atol=1e-4)
    shown = DicomWindow()(image)
    for i in range(n):
        if displays[i] is not None:
            np.testing.assert_allclose(shown[0, ..., i].numpy(), displays[i], atol=_voi_tolerance(windows))


@pytest.mark.parametrize("modality, photometric", [("MR", None), ("US", None), ("MR", "MONOCHROME1")])
def test_per_frame_rescale_and_windows(dcm, tmp_path, modality, photometric):
    path = _per_frame_copy(dcm("emri_small.dcm"), tmp_path / "per_frame.dcm", modality, photometric)
    image = LoadMedicalImage()(path)
    assert image.meta["Modality"] == modality and image.meta["num_frames"] == 10
    _check_against_reference(path, image)
    # the edit matters: frames 3 and 7 have their own rescale, every frame its own window
    raw = pydicom.dcmread(path).pixel_array.astype(np.float64)
    shared_only = raw[3] * 1.5 + 10.0
    if photometric is None:
        assert np.abs(image[0, ..., 3].numpy() - shared_only).max() > 50
    windows = decode_frame_windows(image.meta)
    assert windows is not None and windows.shape == (10, 2) and len(set(windows[:, 1])) == 10
    # one frame taken out of the loop keeps its own window, and windows to the same display
    frame = CineFrame(5)(image)
    assert frame.shape == (1, 64, 64) and frame.meta["WindowWidth"] == 300.0 + 40 * 5
    torch.testing.assert_close(DicomWindow()(frame).as_tensor(), DicomWindow()(image)[..., 5].as_tensor())


def test_enhanced_ct_shared_functional_groups(dcm):
    path = dcm("eCT_Supplemental.dcm")  # rescale (-1024) and window (49/102) only in SharedFunctionalGroups
    image = LoadMedicalImage()(path)
    _check_against_reference(path, image)
    assert float(image.min()) == -1024.0
    assert image.meta["WindowCenter"] == 49.0 and image.meta["WindowWidth"] == 102.0
    assert image.meta["FrameWindows"] == ""  # one window for both frames
    # Pixel Measures in the shared group; frame positions 10 mm apart along the slice normal
    assert image.meta["spacing"] == pytest.approx([0.388672, 0.388672, 10.0])
    np.testing.assert_allclose(torch.diagonal(image.affine).numpy(), [0.388672, 0.388672, 10.0, 1.0], rtol=1e-6)


def test_ct_preset_on_enhanced_ct_gives_hounsfield_windows(dcm):
    """It collapsed to three values when the shared-group rescale was ignored."""
    path = dcm("eCT_Supplemental.dcm")
    out = CTPresetd(windows=(40, 400), crop_body=False, spatial_dims=3)({"image": path})["image"]
    values, _, _ = _reference(pydicom.dcmread(path))
    hu = np.stack(values, axis=-1)[None]
    np.testing.assert_allclose(out.numpy(), np.clip((hu - (40 - 200)) / 400, 0, 1), atol=1e-6)
    assert len(np.unique(out.numpy())) > 100


def test_per_frame_rescale_overrides_shared_on_enhanced_ct(dcm, tmp_path):
    ds = pydicom.dcmread(dcm("eCT_Supplemental.dcm"))
    ds.PerFrameFunctionalGroupsSequence[1].PixelValueTransformationSequence = Sequence(
        [_item(RescaleSlope=2.0, RescaleIntercept=-2048.0, RescaleType="HU")])
    ds.PerFrameFunctionalGroupsSequence[1].FrameVOILUTSequence = Sequence(
        [_item(WindowCenter=-600.0, WindowWidth=1500.0)])
    path = str(tmp_path / "ect_per_frame.dcm")
    ds.save_as(path)
    image = LoadMedicalImage()(path)
    _check_against_reference(path, image)
    raw = ds.pixel_array.astype(np.float64)
    np.testing.assert_allclose(image[0, ..., 1].numpy(), raw[1] * 2.0 - 2048.0)
    np.testing.assert_allclose(image[0, ..., 0].numpy(), raw[0] - 1024.0)
    np.testing.assert_array_equal(decode_frame_windows(image.meta), [[49.0, 102.0], [-600.0, 1500.0]])


def test_monochrome1_header_window_is_mirrored(dcm):
    """CR, MONOCHROME1, window 1600/2800: windowed after inversion it must show what the window shows, bright =
    dense (the unmirrored window made it 7.5 % darker)."""
    path = dcm("6278")
    ds = pydicom.dcmread(path)
    _, (display,), windows = _reference(ds)
    image = LoadMedicalImage()(path)
    lo, hi = float(image.min()), float(image.max())
    assert image.meta["WindowCenter"] == pytest.approx(hi + lo - 1600.0) and image.meta["WindowWidth"] == 2800.0
    shown = DicomWindow()(image)[0].numpy()
    np.testing.assert_allclose(shown, display, atol=_voi_tolerance(windows))
    preset = XRayPresetd(spatial_size=None)({"image": path})["image"][0].numpy()
    np.testing.assert_allclose(preset, display, atol=_voi_tolerance(windows))
    unmirrored = np.clip((image[0].numpy() - (1600 - 1400)) / 2800, 0, 1)  # what the loader used to give
    assert abs(unmirrored.mean() - display.mean()) > 0.05  # the check above could fail on the old values


def test_frames_last_and_collate(dcm, tmp_path):
    """Multi-frame images with and without per-frame windows batch together (the windows travel as text)."""
    from monai.data import list_data_collate

    from monai_ssl.transforms import LoadMedicalImaged

    plain = dcm("emri_small.dcm")
    edited = _per_frame_copy(plain, tmp_path / "edited.dcm", "MR")
    items = [LoadMedicalImaged("image")({"image": p}) for p in (plain, edited)]
    assert items[0]["image"].meta["spacing"] == pytest.approx([1.0, 1.0, 1.2])  # SpacingBetweenSlices
    batch = list_data_collate(items)
    assert batch["image"].shape == (2, 1, 64, 64, 10)
    expected = np.moveaxis(pydicom.dcmread(plain).pixel_array, 0, -1)  # (F, H, W) -> (H, W, F)
    np.testing.assert_array_equal(batch["image"][0, 0].numpy(), expected)
    assert batch["image"].meta["FrameWindows"][0] == "" and batch["image"].meta["FrameWindows"][1]


def test_frames_without_a_window_get_the_fallback(dcm, tmp_path):
    """Half the frames carry a window, half none: each windowed frame gets its own, the others the image's
    0.5-99.5 percentile range (as a file without any window)."""
    ds = pydicom.dcmread(dcm("emri_small.dcm"))
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [_group(window=(200.0 + 10 * i, 400.0)) if i < 5 else Dataset() for i in range(10)])
    path = str(tmp_path / "half_windowed.dcm")
    ds.save_as(path)
    image = LoadMedicalImage()(path)
    _, displays, windows = _reference(pydicom.dcmread(path))
    shown = DicomWindow()(image)
    for i in range(5):
        np.testing.assert_allclose(shown[0, ..., i].numpy(), displays[i], atol=_voi_tolerance(windows[:5]))
    lo, hi = torch.quantile(image.as_tensor().reshape(-1), torch.tensor([0.005, 0.995])).tolist()
    expected = ((image.as_tensor()[0, ..., 5:] - lo) / (hi - lo)).clamp(0, 1)
    torch.testing.assert_close(shown.as_tensor()[0, ..., 5:], expected)
