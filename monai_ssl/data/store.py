"""A preprocessed image store for archives: decode and preset every DICOM (or datalist file) once, read it fast
every epoch after.

Layout of a store folder::

    store.json       settings (preset, size, dtype, source), the image count, and whether the conversion finished
    manifest.jsonl   one line per stored image: key, shape, source path, patient/study/series ids, modality, label,
                     spacing (source and stored) and the other datalist fields
    skipped.jsonl    files left out, with their reason (the skip report of ``datalist_from_dicom`` + preset failures)
    images.lmdb/     LMDB environment: key -> the image quantised to uint8 or uint16 after the modality preset

Why LMDB (``pip install monai-ssl[store]``): the readers need *random access* by key -- MICLe draws two images of one
patient's bag, the mixed-modality sampler draws indices with weights -- which rules out tar-streaming formats
(WebDataset) for this use unless bags are packed into samples; LMDB is memory-mapped (reads are a page-cache lookup
and a ``frombuffer``, no decompression), safe for any number of concurrent reader processes (DataLoader workers,
ranks on one node), transactional (a conversion interrupted mid-write resumes from its last commit), a single small
binary wheel, and already MONAI's choice for :class:`monai.data.LMDBDataset`. It serves one machine: for several
nodes copy the folder to each (it is one file plus the manifest) or use a streaming format.

Convert once (resumable: rerunning the same command continues, skipping images already stored or skipped)::

    python -m monai_ssl.data.store convert /archive/dicom /data/cxr_store --preset xray --size 224
    python -m monai_ssl.data.store info /data/cxr_store
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import optional_import

from .datalist import SkippedFile, datalist_from_dicom, load_datalist

lmdb, has_lmdb = optional_import("lmdb")
tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = [
    "LoadStored",
    "LoadStoredD",
    "LoadStoredDict",
    "LoadStoredd",
    "StoreDataset",
    "StoreReader",
    "convert_to_store",
    "store_datalist",
    "store_sources",
]

logger = logging.getLogger(__name__)

STORE_VERSION = 1
_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}
_SETTINGS = ("version", "preset", "spatial_size", "dtype", "level", "source")
_MAP_SIZE = 1 << 40  # LMDB reserves address space, not disk: the file grows with what is written


_READ_ENVS: dict[tuple[str, int], Any] = {}  # one read-only environment per store and process (LMDB's rule)


def _read_env(lmdb_dir: Path) -> Any:
    key = (str(lmdb_dir.resolve()), os.getpid())
    if key not in _READ_ENVS:
        for inherited in [k for k in _READ_ENVS if k[1] != key[1]]:  # a forked worker: drop the parent's handles
            _READ_ENVS.pop(inherited).close()  # (read-only, lock-free: closing touches no shared lock)
        _READ_ENVS[key] = lmdb.open(key[0], readonly=True, lock=False, readahead=False, subdir=True)
    return _READ_ENVS[key]


def _close_read_env(lmdb_dir: Path) -> None:
    env = _READ_ENVS.pop((str(lmdb_dir.resolve()), os.getpid()), None)
    if env is not None:
        env.close()


def _require_lmdb() -> None:
    if not has_lmdb:
        raise ImportError("the image store needs the 'lmdb' package: pip install 'monai-ssl[store]' (or lmdb)")


def _preset_for(name: str, spatial_size: int | Sequence[int] | None) -> Callable:
    from ..transforms import CTPresetd, MRPresetd, USPresetd, XRayPresetd

    makers = {"xray": lambda: XRayPresetd("image", spatial_size=spatial_size),
              "us": lambda: USPresetd("image", spatial_size=spatial_size),
              "ct": lambda: CTPresetd("image", spatial_size=spatial_size, spatial_dims=2),
              "mr": lambda: MRPresetd("image", spatial_size=spatial_size, spatial_dims=2)}
    if name not in makers:
        raise ValueError(f"preset must be 'auto' or one of {sorted(makers)}, got '{name}'")
    return makers[name]()


def _auto_preset(modality: str) -> str:
    from ..transforms.presets import PRESET_MODALITIES

    code = str(modality or "").upper()
    for name, codes in PRESET_MODALITIES.items():
        if code in codes:
            return name
    return "xray"  # untagged files (PNG, or DICOM without Modality): the X-ray preset windows by percentiles


def _source_items(source: str | os.PathLike | Sequence[dict], level: str) -> tuple[list[dict], list[SkippedFile]]:
    if not isinstance(source, (str, os.PathLike)):
        return [dict(x) for x in source], []
    path = Path(source)
    if path.is_dir():
        scan = datalist_from_dicom(path, level=level)
        return scan.datalist, list(scan.skipped)
    if path.is_file():
        return load_datalist(path, required_keys=("image",)), []
    raise FileNotFoundError(f"{path}: store source not found (give a DICOM folder or a CSV/JSON datalist)")


def _identity(item: Mapping) -> str:
    image = item["image"]
    return json.dumps(image) if isinstance(image, list) else str(image)


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value))


def _quantise(image: torch.Tensor, dtype: np.dtype, source: str) -> np.ndarray:
    arr = np.asarray(image.detach().cpu().float())
    lo, hi = float(arr.min()), float(arr.max())
    if not np.isfinite([lo, hi]).all() or lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{source}: the preset gave values in [{lo:.4g}, {hi:.4g}], not [0, 1]; the store keeps "
                         "[0, 1] images as integers -- use a preset that normalises to [0, 1] (no z-scoring)")
    top = np.iinfo(dtype).max
    return np.rint(np.clip(arr, 0.0, 1.0) * top).astype(dtype)


def convert_to_store(
    source: str | os.PathLike | Sequence[dict],
    output_dir: str | os.PathLike,
    preset: str | Callable = "auto",
    spatial_size: int | Sequence[int] | None = 224,
    dtype: str = "uint8",
    level: str = "instance",
    commit_every: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert a DICOM folder or a datalist (CSV/JSON or list of dicts with ``image`` = file path) into a store.

    Every item is loaded and preprocessed by its modality preset (``"auto"``: chosen from the item's DICOM
    ``modality``; or ``"xray" | "us" | "ct" | "mr"`` for all; or a dictionary transform on ``{"image": path, ...}``
    returning a (C, *spatial) image in [0, 1]), quantised to ``dtype`` and written under its key. Files the DICOM
    scan skips and items whose preset fails are recorded with their reason in ``skipped.jsonl``; one bad file never
    stops the conversion. Images are committed every ``commit_every`` items: rerunning after an interruption
    continues where the last commit ended (same settings required).

    Returns:
        ``store.json``'s content: settings, ``count`` (images stored), ``skipped`` (count) and ``complete``.

    Raises:
        ValueError: rerun into a folder made with other settings (names them; use a new folder); unknown preset
            or dtype.
        ImportError: ``lmdb`` missing.
    """
    _require_lmdb()
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got '{dtype}'")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    preset_name = preset if isinstance(preset, str) else getattr(preset, "__name__", type(preset).__name__)
    settings = {"version": STORE_VERSION, "preset": preset_name, "dtype": dtype, "level": level,
                "spatial_size": list(spatial_size) if isinstance(spatial_size, Sequence) else spatial_size,
                "source": str(source) if isinstance(source, (str, os.PathLike)) else "datalist"}
    meta_path = out / "store.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        changed = {k: (old.get(k), settings[k]) for k in _SETTINGS if old.get(k) != settings[k]}
        if changed:
            raise ValueError(f"{out}: a store made with other settings is here ({changed}, as (stored, asked)); "
                             "convert into a new folder")
    meta_path.write_text(json.dumps({**settings, "complete": False}, indent=1))
    items, scan_skipped = _source_items(source, level)
    for name in ("manifest.jsonl", "skipped.jsonl"):
        _trim_partial_line(out / name)
    done = {r["source"] for r in _read_jsonl(out / "manifest.jsonl")}
    done |= {r["path"] for r in _read_jsonl(out / "skipped.jsonl")}
    todo = [(i, item) for i, item in enumerate(items) if _identity(item) not in done]
    new_skips = [s for s in scan_skipped if s.path not in done]
    presets: dict[str, Callable] = {}
    np_dtype = _DTYPES[dtype]
    _close_read_env(out / "images.lmdb")  # a reader of this store in this process (LMDB allows one open per process)
    env = lmdb.open(str(out / "images.lmdb"), map_size=_MAP_SIZE, subdir=True, lock=True)
    manifest, skipped = open(out / "manifest.jsonl", "a"), open(out / "skipped.jsonl", "a")
    lines: list[str] = []
    bad = [json.dumps({"path": s.path, "reason": s.reason}) for s in new_skips]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="store", unit="img",
               disable=not (progress and has_tqdm)) if has_tqdm else None
    txn = env.begin(write=True)

    def commit() -> None:
        nonlocal txn, lines, bad
        txn.commit()  # images first: a manifest line always points at a committed image
        for f, rows in ((manifest, lines), (skipped, bad)):
            f.write("".join(r + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        lines, bad = [], []
        txn = env.begin(write=True)

    try:
        for n, (index, item) in enumerate(todo, 1):
            ident = _identity(item)
            name = preset_name if isinstance(preset, str) and preset != "auto" else _auto_preset(item.get("modality"))
            try:
                if isinstance(preset, str):
                    if name not in presets:
                        presets[name] = _preset_for(name, spatial_size)
                    transform = presets[name]
                else:
                    transform = preset
                image = transform({"image": item["image"]})["image"]
                arr = _quantise(image, np_dtype, ident)
            except Exception as e:
                bad.append(json.dumps({"path": ident, "reason": f"{type(e).__name__}: {str(e)[:300]}"}))
            else:
                key = f"{index:09d}"
                txn.put(key.encode(), np.ascontiguousarray(arr).tobytes())
                meta = getattr(image, "meta", {})
                record = {k: v for k, v in item.items() if k != "image" and _jsonable(v)}
                record.update(key=key, source=ident, shape=list(arr.shape), preset=name,
                              spacing=[float(s) for s in meta.get("spacing", [])] or None,
                              stored_spacing=[float(s) for s in getattr(image, "pixdim", [])] or None)
                lines.append(json.dumps(record))
            if bar is not None:
                bar.update(1)
            if n % commit_every == 0:
                commit()
        commit()
    finally:
        txn.abort()
        if bar is not None:
            bar.close()
        manifest.close()
        skipped.close()
        env.close()
    count = sum(1 for _ in _read_jsonl(out / "manifest.jsonl"))
    n_skipped = sum(1 for _ in _read_jsonl(out / "skipped.jsonl"))
    info = {**settings, "count": count, "skipped": n_skipped, "complete": True}
    meta_path.write_text(json.dumps(info, indent=1))
    if n_skipped:
        logger.warning("store %s: %d file(s) skipped, reasons in %s", out, n_skipped, out / "skipped.jsonl")
    return info


def _trim_partial_line(path: Path) -> None:
    """Drop a last line cut by a crash (no newline), so that appended lines start on a line of their own."""
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a crash after the last commit: rewritten on resume
                    continue
    return rows


class StoreReader:
    """Read images of a store by key; the LMDB environment is opened on first read in each process (fork-safe).

    Args:
        store_dir: a folder written by :func:`convert_to_store`.

    Raises:
        FileNotFoundError: not a store (names the missing file); ValueError: an unfinished conversion.
    """

    def __init__(self, store_dir: str | os.PathLike) -> None:
        _require_lmdb()
        self.store_dir = Path(store_dir)
        meta = self.store_dir / "store.json"
        if not meta.is_file() or not (self.store_dir / "images.lmdb").is_dir():
            raise FileNotFoundError(f"{self.store_dir}: not an image store (no store.json / images.lmdb); make one "
                                    "with `python -m monai_ssl.data.store convert SOURCE OUTPUT`")
        self.info = json.loads(meta.read_text())
        if not self.info.get("complete"):
            raise ValueError(f"{self.store_dir}: the conversion did not finish; rerun the same convert command")
        self.records = _read_jsonl(self.store_dir / "manifest.jsonl")
        self.dtype = _DTYPES[self.info["dtype"]]

    def read(self, key: str, shape: Sequence[int]) -> torch.Tensor:
        """The image under ``key`` as float32 (C, *spatial) in [0, 1]."""
        with _read_env(self.store_dir / "images.lmdb").begin(buffers=True) as txn:
            buf = txn.get(key.encode())
            if buf is None:
                raise KeyError(f"{self.store_dir}: key {key} is in the manifest but not in images.lmdb (a store "
                               "copied while being written?); rerun the convert command")
            arr = np.frombuffer(buf, dtype=self.dtype).reshape(shape)
            out = torch.from_numpy(arr.astype(np.float32))
        return out.mul_(1.0 / np.iinfo(self.dtype).max)


class LoadStored(MapTransform):
    """Replace ``d[key]`` (a store key, as in :func:`store_datalist`) by the stored image (C, *spatial) in [0, 1].

    Use as the ``cache_transform`` of :class:`~monai_ssl.data.MultiInstanceDataset` for MICLe bags from a store.
    """

    def __init__(self, keys: KeysCollection, store: str | os.PathLike | StoreReader,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reader = store if isinstance(store, StoreReader) else StoreReader(store)
        self.shapes = {r["key"]: r["shape"] for r in self.reader.records}

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            if d[key] not in self.shapes:
                raise KeyError(f"{self.reader.store_dir}: no stored image with key {d[key]!r} (item key '{key}')")
            d[key] = self.reader.read(d[key], self.shapes[d[key]])
        return d


LoadStoredd = LoadStoredD = LoadStoredDict = LoadStored


def store_datalist(store_dir: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """The manifest as a datalist: ``image`` = store key, plus ``patient_id``, ``study_id``, labels, ...;
    load with :class:`LoadStored` (e.g. ``MultiInstanceDataset(store_datalist(s), view, LoadStored("image", s))``)."""
    rows = [{**r, "image": r["key"]} for r in StoreReader(store_dir).records]
    if not rows:
        raise ValueError(f"{store_dir}: the store holds no images (see skipped.jsonl)")
    return rows if limit is None else rows[: int(limit)]


class StoreDataset(torch.utils.data.Dataset):
    """Map-style dataset over a store's images: item = ``{"image": (C, *spatial) float32 in [0, 1], **manifest
    fields}``, then ``transform``. ``records`` selects a subset of the manifest (default: all)."""

    def __init__(self, store_dir: str | os.PathLike | StoreReader, transform: Callable | None = None,
                 records: Sequence[dict] | None = None) -> None:
        self.reader = store_dir if isinstance(store_dir, StoreReader) else StoreReader(store_dir)
        self.records = list(self.reader.records if records is None else records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        r = self.records[index]
        item = {k: v for k, v in r.items() if k not in ("shape", "spacing", "stored_spacing")}
        item["image"] = self.reader.read(r["key"], r["shape"])
        return self.transform(item) if self.transform is not None else item


def store_sources(store_dir: str | os.PathLike, modalities: Sequence[str], limit: int | None = None) -> dict:
    """``{modality: StoreDataset}`` for :class:`~monai_ssl.data.MixedModalityDataset`, grouping by the preset each
    image went through (``xray``, ``us``, ``ct``, ``mr``); ``limit`` caps each modality."""
    reader = StoreReader(store_dir)
    groups: dict[str, list[dict]] = {}
    for r in reader.records:
        groups.setdefault(r["preset"], []).append(r)
    missing = [m for m in modalities if m not in groups]
    if missing:
        raise ValueError(f"config key 'store': {store_dir} has no images of modalities {missing} (it has "
                         f"{sorted(groups)}); set --modalities accordingly")
    return {m: StoreDataset(reader, records=groups[m][: limit or None]) for m in modalities}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monai_ssl.data.store", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert a DICOM folder or CSV/JSON datalist (resumable)")
    conv.add_argument("source")
    conv.add_argument("output")
    conv.add_argument("--preset", default="auto", choices=["auto", "xray", "us", "ct", "mr"])
    conv.add_argument("--size", type=int, default=224, help="stored side length in pixels (0: keep the size)")
    conv.add_argument("--dtype", default="uint8", choices=sorted(_DTYPES))
    conv.add_argument("--commit-every", type=int, default=256)
    conv.add_argument("--no-progress", action="store_true")
    info = sub.add_parser("info", help="print a store's settings and counts")
    info.add_argument("store")
    args = parser.parse_args(argv)
    if args.command == "convert":
        result = convert_to_store(args.source, args.output, args.preset, args.size or None, args.dtype,
                                  commit_every=args.commit_every, progress=not args.no_progress)
    else:
        result = StoreReader(args.store).info
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
