"""Datalists from CSV/JSON tables and from DICOM folders, with a report of what was skipped and why."""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import os
import re
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .paths import file_kind

__all__ = ["ID_KEYS", "SkippedFile", "DicomScan", "load_datalist", "datalist_from_dicom"]

logger = logging.getLogger(__name__)

#: columns read as text exactly as written (besides the path columns): ``007`` and ``7`` are two patients
ID_KEYS = ("patient_id", "study_id", "series_id")

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class SkippedFile:
    """A file or datalist row left out, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class DicomScan(NamedTuple):
    """Result of :func:`datalist_from_dicom`: the readable items and the files that were skipped."""

    datalist: list[dict[str, Any]]
    skipped: list[SkippedFile]


def _parse(value: str, as_text: bool = False) -> Any:
    """A CSV cell: stripped; empty -> None; numbers -> int/float unless ``as_text`` (id and path columns)."""
    value = value.strip()
    if value == "":
        return None
    if as_text:
        return value
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return value


# UTF-32 before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _read_text(path: Path) -> str:
    """The text of a table: UTF-8 (a byte-order mark, as Excel writes, is dropped), or UTF-16/32 with a BOM.

    Nothing is guessed: bytes that are not valid UTF-8 (a Latin-1 / Windows-1252 export) and NUL bytes (UTF-16
    without a BOM) are refused, naming the file, the line and the fix, rather than decoded into wrong ids.
    """
    data = path.read_bytes()
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    if encoding == "utf-8" and b"\x00" in data:
        raise ValueError(f"{path}: the table contains NUL bytes (UTF-16 without a byte-order mark?): save it as UTF-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: not {encoding.removesuffix('-sig').upper()} text (byte(s) {data[e.start:e.end]!r} on line "
            f"{line} cannot be decoded; Latin-1 / Windows-1252 export?): save the table as UTF-8 (e.g. Excel's "
            "'CSV UTF-8')"
        ) from e


def _as_text(row: dict[str, Any], text_keys: set[str]) -> dict[str, Any]:
    """A JSON row with numbers in id/path columns written as text (``"patient_id": 7`` -> ``"7"``)."""
    return {k: str(v) if k in text_keys and isinstance(v, (int, float)) and not isinstance(v, bool) else v
            for k, v in row.items()}


def _read_table(path: Path, section: str | None, text_keys: set[str]) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".json":
        try:
            content = json.loads(_read_text(path))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON ({e})") from e
        if isinstance(content, dict):
            key = section or next((k for k in ("training", "data", "items") if k in content), None)
            if key is None or key not in content:
                raise ValueError(f"{path}: JSON object has no section '{section}'; sections: {sorted(content)}")
            content = content[key]
        if not isinstance(content, list) or not all(isinstance(x, dict) for x in content):
            raise ValueError(f"{path}: expected a list of objects (or an object of such lists)")
        return [_as_text(dict(x), text_keys) for x in content]
    if path.suffix.lower() in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        reader = csv.DictReader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty table (no header row)")
        rows = [{k.strip(): v for k, v in row.items() if k is not None} for row in reader]
        return [{k: _parse(v or "", k in text_keys) for k, v in row.items()} for row in rows]
    raise ValueError(f"{path}: unsupported datalist format '{path.suffix}' (use .csv, .tsv or .json)")


def _class_label(value: Any, num_classes: int) -> int | None:
    """``value`` as a class index in 0..num_classes-1 (or -1 = unlabelled), None when it is not one.

    Text is parsed strictly: ``"1"`` and ``"1.0"`` are 1, ``"0.7"``, ``"1e3"``, ``"nan"`` and ``"yes"`` are not class
    indices (nothing is rounded, nothing dropped).
    """
    if isinstance(value, str):
        value = _parse(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    label = int(value)
    return label if -1 <= label < num_classes else None


def _check_labels(rows: list[dict[str, Any]], path: Path, label_key: str, num_classes: int) -> None:
    """Replace each row's ``label_key`` by its int class index; raise naming every bad row, column and value."""
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
    bad = []
    for i, row in enumerate(rows):
        value = row.get(label_key)
        if value is None:
            continue  # absent: required_keys decides whether that is allowed
        label = _class_label(value, int(num_classes))
        if label is None:
            bad.append(f"row {i + 1}: column '{label_key}' = {value!r}")
        else:
            row[label_key] = label
    if bad:
        shown = "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ValueError(f"{path}: {len(bad)} row(s) with a label that is not a class of num_classes={num_classes} "
                         f"(allowed: the integers 0..{int(num_classes) - 1}, or -1 for an unlabelled row): {shown}")


def load_datalist(
    path: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    required_keys: Sequence[str] = ("image",),
    path_keys: Sequence[str] = ("image",),
    section: str | None = None,
    on_missing: str = "raise",
    text_keys: Sequence[str] = ID_KEYS,
    num_classes: int | None = None,
    label_key: str = "label",
) -> list[dict[str, Any]]:
    """Read a datalist table: CSV/TSV with a header row, or JSON (a list, or MONAI's ``{"training": [...]}``).

    Typical columns: ``image`` (path), ``patient_id``, optional ``label``, ``view``, ``study_id``. Cells are stripped
    and empty cells become None. Ids and paths are text: cells of ``text_keys`` (patient, study and series ids) and
    of ``path_keys`` stay strings exactly as written (``007`` is not ``7``; an image ``00000123`` is not ``123``;
    numbers in those JSON fields become their text); numeric cells of other columns become int/float. Tables are
    read as UTF-8 (an Excel byte-order mark is dropped) or as UTF-16/32 when they start with a byte-order mark; any
    other encoding (Latin-1, Windows-1252) is refused with a ValueError naming the file and the line, not guessed.
    Relative paths in ``path_keys`` are resolved against ``base_dir`` (default: the table's folder).

    Args:
        path: the table file.
        base_dir: folder that relative image paths are relative to.
        required_keys: columns every row must have (non-empty).
        path_keys: columns holding file paths, checked for existence.
        section: JSON section to read (default ``training``/``data``/``items``, the first present).
        on_missing: ``"raise"`` (default) or ``"skip"`` rows whose files do not exist; skipped rows are warned
            about and logged, naming each row and path.
        text_keys: id columns kept as text (besides ``path_keys``); default :data:`ID_KEYS`.
        num_classes: when given, every ``label_key`` cell must be a class index, an integer in 0..num_classes-1
            (``1.0`` counts as 1), or -1 for an unlabelled row; the labels come back as ints.
        label_key: the class-label column checked against ``num_classes``.

    Raises:
        FileNotFoundError: the table is absent, or (``on_missing="raise"``) rows point at missing files.
        ValueError: unreadable table (bad JSON, not UTF-8/16/32 text), rows lacking required columns (the rows and
            columns are named), or (``num_classes``) labels that are not class indices (0.7, -2, 5 with two classes,
            nan, yes...; the file, rows, column, values and allowed values are named).
    """
    if on_missing not in ("raise", "skip"):
        raise ValueError(f"on_missing must be 'raise' or 'skip', got '{on_missing}'")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: datalist file not found")
    base = Path(base_dir) if base_dir is not None else path.parent
    text = {*text_keys, *path_keys} | ({label_key} if num_classes is not None else set())  # labels: parsed strictly
    rows = _read_table(path, section, text)
    bad = [(i, [k for k in required_keys if row.get(k) in (None, "")]) for i, row in enumerate(rows)]
    bad = [(i, keys) for i, keys in bad if keys]
    if bad:
        shown = "; ".join(f"row {i + 1} lacks {keys}" for i, keys in bad[:5])
        raise ValueError(f"{path}: {len(bad)} row(s) lack required keys {list(required_keys)}: {shown}")
    if num_classes is not None:
        _check_labels(rows, path, label_key, num_classes)
    out, skipped = [], []
    for i, row in enumerate(rows):
        missing = []
        for key in path_keys:
            value = row.get(key)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            resolved = [str(p if Path(p).is_absolute() else (base / p)) for p in map(str, values)]
            missing += [p for p in resolved if not os.path.exists(p)]
            row[key] = resolved if isinstance(value, list) else resolved[0]
        if missing:
            skipped.append(SkippedFile(missing[0], f"row {i + 1} of {path.name}: file not found"))
        else:
            out.append(row)
    if skipped:
        summary = "; ".join(map(str, skipped[:5])) + (" ..." if len(skipped) > 5 else "")
        if on_missing == "raise":
            raise FileNotFoundError(f"{path}: {len(skipped)} row(s) point at missing files: {summary}")
        warnings.warn(f"{path}: skipped {len(skipped)} row(s) with missing files: {summary}", stacklevel=2)
        for s in skipped:
            logger.warning("skipped %s", s)
    return out


# ----------------------------------------------------------------------------------------------- DICOM folders

_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


def _expected_pixel_bytes(ds: Any) -> int:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8))
    n = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * frames
    return (n * bits + 7) // 8


def _check_dicom(ds: Any, check_pixels: bool) -> str | None:
    """Reason the dataset is unusable as an image, or None."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        return f"no pixel data (Modality {ds.get('Modality', '?')}, SOP class {ds.get('SOPClassUID', '?')})"
    for key in ("Rows", "Columns"):
        if not ds.get(key):
            return f"pixel data without a valid {key} element"
    empty = [k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds and not ds[k].value]
    if empty:
        return f"empty pixel data (0-length {empty[0]} element)"
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if "PixelData" in ds and (syntax in _UNCOMPRESSED or not syntax):
        have, need = len(ds.PixelData), _expected_pixel_bytes(ds)
        if have < need:
            return f"truncated pixel data ({have} of {need} bytes)"
    if check_pixels:
        try:
            ds.pixel_array  # noqa: B018 - decoding is the check
        except Exception as e:  # decoder errors come as many types
            return f"pixel data cannot be decoded ({type(e).__name__}: {str(e)[:200]})"
    return None


def _scan_files(folder: Path, recursive: bool) -> tuple[list[Path], list[SkippedFile]]:
    """The regular files under ``folder`` (sorted), and the entries that are not, with why (never opened: a FIFO
    named ``x.dcm`` would block the scan forever).

    Symlinked folders are followed (``Path.rglob`` left their series out without a word), unless they point into
    the scanned tree or to a folder already scanned (a loop, or a second link to it): those are reported, as is a
    symlinked file whose target lies inside the tree (it is listed once, under its own path), and a folder that
    cannot be listed.
    """
    root = Path(os.path.realpath(folder))
    files: list[Path] = []
    skipped: list[SkippedFile] = []
    scanned: dict[str, str] = {}  # real path of every folder walked -> the path it was walked as

    def inside(real: Path) -> bool:
        return real == root or root in real.parents

    def walk(d: Path) -> None:
        scanned[os.path.realpath(d)] = str(d)
        try:
            entries = sorted(d.iterdir())
        except OSError as e:
            skipped.append(SkippedFile(str(d), f"cannot list the folder ({type(e).__name__}: {e.strerror or e})"))
            return
        for path in entries:
            try:
                mode = path.stat().st_mode
            except OSError as e:  # a dangling symlink, a permission error
                skipped.append(SkippedFile(str(path), f"cannot stat the file ({type(e).__name__}: {e.strerror or e})"))
                continue
            real = Path(os.path.realpath(path)) if path.is_symlink() else None
            if stat.S_ISDIR(mode):
                if not recursive:
                    continue
                if real is not None and str(real) in scanned:
                    skipped.append(SkippedFile(str(path), f"symlinked folder to {real}, already scanned as "
                                                          f"{scanned[str(real)]}; not followed "
                                                          "(a loop or a second link)"))
                elif real is not None and inside(real):
                    skipped.append(SkippedFile(str(path), f"symlinked folder to {real}, inside the scanned folder: "
                                                          "its files are scanned there; not followed"))
                else:
                    walk(path)
            elif stat.S_ISREG(mode):
                if real is not None and inside(real):
                    skipped.append(SkippedFile(str(path), f"symlink to {real}, a file inside the scanned folder: "
                                                          "listed there, not twice"))
                else:
                    files.append(path)
            else:
                skipped.append(SkippedFile(str(path), f"not a regular file but {file_kind(mode)}; not opened"))

    walk(folder)
    return sorted(files), sorted(skipped, key=lambda s: Path(s.path))


def _dicom_item(ds: Any, path: Path) -> dict[str, Any]:
    return {
        "image": str(path),
        "patient_id": _patient_id(ds, path),
        "study_id": str(ds.get("StudyInstanceUID", "") or ""),
        "series_id": str(ds.get("SeriesInstanceUID", "") or ""),
        "modality": str(ds.get("Modality", "") or ""),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "") or ""),
        "instance_number": int(ds.get("InstanceNumber", 0) or 0),
        "view_position": str(ds.get("ViewPosition", "") or ""),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "number_of_frames": int(ds.get("NumberOfFrames", 1) or 1),
        "_position": _position(ds),
    }


def _patient_id(ds: Any, path: Path) -> str:
    """PatientID, else a per-study (or per-file) id: files lacking the tag must not share one pseudo-patient."""
    pid = str(ds.get("PatientID", "") or "").strip()
    if pid:
        return pid
    study = str(ds.get("StudyInstanceUID", "") or "").strip()
    return f"unknown:{study}" if study else f"unknown:{path}"


def _position(ds: Any) -> float:
    pos = ds.get("ImagePositionPatient")
    try:
        return float(pos[2]) if pos is not None else 0.0
    except (TypeError, ValueError, IndexError):
        return 0.0


def datalist_from_dicom(
    folder: str | os.PathLike,
    level: str = "instance",
    check_pixels: bool = False,
    recursive: bool = True,
) -> DicomScan:
    """Walk a folder of DICOM files and build a datalist grouped by patient, study and series.

    Every file is tried; one bad file never stops the scan. A file is skipped, with its reason, when it is not
    DICOM, cannot be parsed, has no or empty (0-length) pixel data (structured reports, RT plans...), lacks
    Rows/Columns, has truncated uncompressed pixel data, or (``check_pixels=True``) its pixels cannot be decoded.
    Entries that are not regular files (FIFOs, sockets, devices) or cannot be stat'ed (dangling links) are skipped
    and reported without being opened. Symlinked series folders are followed; a symlink into the scanned tree (its
    files are listed at their own path) or back to a folder already scanned (a loop) is reported, not followed.
    Whether a file is DICOM is decided by its content, whatever its name (``.dcm``, Siemens ``.IMA``, no extension).

    Args:
        folder: the folder to scan.
        level: ``"instance"``: one item per file (``image`` = path); ``"series"``: one item per series
            (``image`` = list of paths sorted by InstanceNumber, then slice position).
        check_pixels: also decode every image (slower; catches corrupt compressed data).
        recursive: descend into sub-folders.

    Returns:
        ``DicomScan(datalist, skipped)``. Items carry ``image``, ``patient_id``, ``study_id``, ``series_id``,
        ``modality``, ``photometric_interpretation``, ``instance_number``, ``view_position``, ``rows``, ``columns``
        and ``number_of_frames``. Files without a PatientID (anonymised exports) are never pooled into one shared
        "unknown" patient, which would make images of different people MICLe positives: they get
        ``patient_id = "unknown:<StudyInstanceUID>"`` (one study = one patient), or ``"unknown:<path>"`` when the
        study UID is absent too, and their number is logged.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: unknown ``level``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if level not in ("instance", "series"):
        raise ValueError(f"level must be 'instance' or 'series', got '{level}'")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: DICOM folder not found")
    files, skipped = _scan_files(folder, recursive)
    items = []
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
        except InvalidDicomError:
            skipped.append(SkippedFile(str(path), "not a DICOM file (no 'DICM' preamble/meta header)"))
            continue
        except Exception as e:  # pydicom raises many types on corrupt files
            skipped.append(SkippedFile(str(path), f"unreadable DICOM ({type(e).__name__}: {str(e)[:200]})"))
            continue
        try:
            reason = _check_dicom(ds, check_pixels)
            item = None if reason else _dicom_item(ds, path)
        except Exception as e:  # odd element values (e.g. non-numeric Rows): this file, never the whole scan
            reason = f"unusable DICOM ({type(e).__name__}: {str(e)[:200]})"
        if reason:
            skipped.append(SkippedFile(str(path), reason))
            continue
        items.append(item)
    for s in skipped:
        logger.info("datalist_from_dicom skipped %s", s)
    anonymous = sum(x["patient_id"].startswith("unknown:") for x in items)
    if anonymous:
        logger.warning("datalist_from_dicom: %d file(s) without PatientID grouped by StudyInstanceUID (or alone)",
                       anonymous)
    items.sort(key=lambda x: (x["patient_id"], x["study_id"], x["series_id"], x["instance_number"], x["_position"]))
    if level == "series":
        series: dict[tuple, dict[str, Any]] = {}
        for item in items:
            key = (item["patient_id"], item["study_id"], item["series_id"])
            if key not in series:
                series[key] = {**item, "image": []}
            series[key]["image"].append(item["image"])
        items = list(series.values())
        for item in items:
            item["num_instances"] = len(item["image"])
            item.pop("instance_number")
    for item in items:
        item.pop("_position")
    return DicomScan(items, skipped)
