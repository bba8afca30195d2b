"""Helpers of the ``segmentation`` bundle (``bundles/segmentation``) for what a config cannot say cleanly: the
slice / slab split of MR volumes into datalists, the network (SwinUNETR / UNETR, optionally from an MAE encoder),
test evaluation to JSON/CSV, and volume-in / label-map-out inference (2D networks run slice-wise)."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..utils.errors import describe_error

__all__ = [
    "block_split",
    "build_network",
    "evaluate_segmentation",
    "init_network",
    "list_volumes",
    "segment_files",
    "segmentation_datalists",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # MONAI default, passed explicitly (its default changes)
_PATTERN = ("train", "train", "train", "val", "test")  # block index % 5 -> split
_VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".dcm", ".dicom")


def block_split(n: int, block_size: int, gap: int = 1) -> dict[str, list[int]]:
    """Deterministic split of ``n`` slice indices into interleaved blocks of ``block_size`` slices.

    Block ``b`` goes to ``("train", "train", "train", "val", "test")[b % 5]``; training slices closer than
    ``gap`` slices to a val/test slice are dropped, so no evaluated slice has a training neighbour.

    Returns:
        ``{"train", "val", "test"}`` sorted index lists.

    Raises:
        ValueError: ``block_size`` < 1 or ``gap`` < 0.
    """
    if int(block_size) < 1 or int(gap) < 0:
        raise ValueError(f"config key 'block_size' must be >= 1 and 'gap' >= 0, got {block_size}, {gap}")
    split = [_PATTERN[(i // int(block_size)) % len(_PATTERN)] for i in range(n)]
    held = [i for i in range(n) if split[i] != "train"]
    out: dict[str, list[int]] = {s: [i for i in range(n) if split[i] == s] for s in SPLITS}
    out["train"] = [i for i in out["train"] if all(abs(i - j) > gap for j in held)]
    return out


def _load_volumes(dataset_dir: str | os.PathLike, datalist: str | os.PathLike | None) -> list[dict[str, Any]]:
    """``[{"image": (1, X, Y, Z), "label": (1, X, Y, Z), "name", "split"}]``: RAS-oriented, MR-preset intensities."""
    from monai.transforms import Compose, EnsureTyped, Orientationd

    from ..data import load_datalist
    from ..data.brain_mr import BRAIN_MR_FILES, brain_mr_files
    from ..transforms import LoadMedicalImaged, MRPresetd
    from .paths import require_path

    if datalist is not None:
        require_path(datalist, "datalist", "file")
        rows = load_datalist(datalist, required_keys=("image", "label"), path_keys=("image", "label"))
        src = f"datalist {datalist}"
    else:
        require_path(dataset_dir, "dataset_dir", "dir", files=tuple(BRAIN_MR_FILES.values()))
        rows = [brain_mr_files(dataset_dir)]
        src = f"dataset_dir {dataset_dir}"
    prep = Compose([
        LoadMedicalImaged(["image", "label"]),
        Orientationd(["image", "label"], axcodes="RAS", labels=_RAS_LABELS),
        MRPresetd("image", load=False, spatial_dims=3),
        EnsureTyped(["image", "label"], track_meta=False),
    ])
    volumes = []
    for row in rows:
        d = prep({"image": str(row["image"]), "label": str(row["label"])})
        img, lab = d["image"].float(), d["label"].float()
        if img.shape != lab.shape or img.ndim != 4:
            raise ValueError(f"{src}: image {row['image']} {tuple(img.shape)} and label {row['label']} "
                             f"{tuple(lab.shape)} must be channel-first 3D volumes on the same grid")
        split = str(row.get("split") or "") or None
        if split is not None and split not in SPLITS:
            raise ValueError(f"{src}: split '{split}' of {row['image']} is not one of {SPLITS}")
        volumes.append({"image": img, "label": lab, "name": Path(str(row["image"])).name, "split": split})
    return volumes


def _runs(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def segmentation_datalists(
    dataset_dir: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    spatial_dims: int = 2,
    block_size: int = 8,
    gap: int = 1,
    limit: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Train / val / test items cut from MR volumes along the axial (last, I->S) axis.

    Without ``datalist``: the shipped ICBM152 T1 + tissue labels (``<dataset_dir>/brain_mr_*_2mm.nii.gz``,
    SHA-256 checked). With ``datalist`` (CSV/JSON, columns ``image`` and ``label`` = NIfTI/DICOM-series paths,
    optional ``split`` = train/val/test for the whole volume): those volumes. Volumes are reoriented to RAS and
    scaled with :class:`~monai_ssl.transforms.MRPresetd` (0.5-99.5 percentiles -> [0, 1]), exactly as inference
    does. Volumes without a ``split`` are cut by :func:`block_split` (``block_size`` slices per block).

    Args:
        dataset_dir: folder holding the shipped files.
        datalist: optional table of volumes.
        spatial_dims: 2 = one item per axial slice holding any foreground label; 3 = one item per contiguous slab
            of a split (use a large ``block_size``, e.g. a fifth of the volume, so slabs are thick).
        block_size: slices per block of the split.
        gap: training slices dropped next to val/test blocks.
        limit: keep the first N items of each split (smoke runs; 2D picks them spread over the split).

    Returns:
        ``{"train", "val", "test"}`` lists of ``{"image": (1, X, Y[, Z]) float, "label": same shape (class index
        as float), "source": file name, "z": first slice index}``.

    Raises:
        FileNotFoundError: naming the config key (``dataset_dir`` / ``datalist``) and the path.
        ValueError: bad ``spatial_dims`` / ``data_limit``, or an empty split.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"config key 'spatial_dims' must be 2 or 3, got {spatial_dims}")
    if limit is not None and int(limit) <= 0:
        raise ValueError(f"config key 'data_limit' must be a positive integer or null, got {limit}")
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for vol in _load_volumes(dataset_dir, datalist):
        img, lab, n = vol["image"], vol["label"], vol["image"].shape[-1]
        parts = {s: (list(range(n)) if s == vol["split"] else []) for s in SPLITS} if vol["split"] else \
            block_split(n, block_size, gap)
        for s, idx in parts.items():
            if spatial_dims == 2:
                out[s] += [{"image": img[..., z].clone(), "label": lab[..., z].clone(), "source": vol["name"], "z": z}
                           for z in idx if bool((lab[..., z] > 0).any())]
            else:
                out[s] += [{"image": img[..., r[0]:r[-1] + 1].clone(), "label": lab[..., r[0]:r[-1] + 1].clone(),
                            "source": vol["name"], "z": r[0]} for r in _runs(idx)]
    for s in SPLITS:
        if limit is not None and len(out[s]) > int(limit):
            step = len(out[s]) / int(limit)
            out[s] = [out[s][int(i * step)] for i in range(int(limit))]
        if not out[s]:
            raise ValueError(f"the '{s}' split is empty (dataset_dir={dataset_dir}, datalist={datalist}, "
                             f"block_size={block_size}); lower block_size or give a 'split' column")
    return out


def build_network(arch: str, spatial_dims: int, in_channels: int, num_classes: int, roi_size: int | Sequence[int],
                  networks: Mapping[str, Mapping[str, Any]]) -> nn.Module:
    """Randomly initialised MONAI ``SwinUNETR`` or ``UNETR`` with the keyword arguments ``networks[arch]``.

    Raises:
        ValueError: an unknown ``arch`` (naming the config key) or a ``roi_size`` the network cannot take.
    """
    from ..evaluation.segmentation import SEGMENTATION_ARCHS, build_segmentation_model
    from .paths import choose

    kwargs = dict(choose(networks, str(arch).lower(), "arch", choices=SEGMENTATION_ARCHS))
    model, _ = build_segmentation_model(str(arch).lower(), spatial_dims, in_channels, num_classes,
                                        img_size=roi_size, **kwargs)
    return model


def init_network(network: nn.Module, pretrained_ckpt: str | os.PathLike | None, arch: str, spatial_dims: int,
                 in_channels: int, num_classes: int, roi_size: int | Sequence[int],
                 networks: Mapping[str, Mapping[str, Any]], min_loaded_fraction: float = 0.9) -> nn.Module:
    """Load a pretrained encoder into ``network`` (in place) and return it; ``""``/None keeps the random init.

    Accepts what ``bundles/mae_pretrain`` exports (``models/encoder.pt``: ``swinViT.*`` keys for Swin, MONAI ViT
    keys for ViT), a whole ``SwinMAE`` / ``MaskedAutoencoderViT`` state dict or training checkpoint, or a
    SwinUNETR / UNETR checkpoint; the key maps and the architecture checks are those of
    :func:`monai_ssl.evaluation.segmentation.build_segmentation_model`, whose load report is logged.

    Raises:
        FileNotFoundError: naming the config key ``pretrained_ckpt``.
        ValueError: a checkpoint of the other family or of different settings (``networks#<arch>#...``).
    """
    from ..evaluation.segmentation import build_segmentation_model
    from .paths import require_path

    if not pretrained_ckpt:
        return network
    require_path(pretrained_ckpt, "pretrained_ckpt", "file")
    try:
        loaded, report = build_segmentation_model(str(arch).lower(), spatial_dims, in_channels, num_classes,
                                                  img_size=roi_size, pretrained=str(pretrained_ckpt),
                                                  min_loaded_fraction=min_loaded_fraction, **dict(networks[arch]))
    except ValueError as err:
        raise ValueError(f"config key 'pretrained_ckpt' ({pretrained_ckpt}) does not fit arch={arch}: {err}") from err
    network.load_state_dict(loaded.state_dict())
    logger.info("pretrained_ckpt %s: %s", pretrained_ckpt, report.summary(4))
    return network


@torch.no_grad()
def evaluate_segmentation(
    network: nn.Module,
    ckpt_path: str | os.PathLike,
    loader: Any,
    num_classes: int,
    roi_size: int | Sequence[int],
    output_dir: str | os.PathLike,
    class_names: Sequence[str],
    device: torch.device | str = "cpu",
    overlap: float = 0.5,
    sw_batch_size: int = 4,
    name: str = "test",
) -> dict[str, Any]:
    """Sliding-window Dice of a checkpoint on ``loader``: per foreground class, averaged over the items holding the
    class (MONAI ``MeanDice`` in :func:`~monai_ssl.evaluation.segmentation.build_segmentation_evaluator`) and
    pooled over all items (for 2D slices of one volume: the volume Dice of the evaluated slab).

    Writes ``<output_dir>/metrics_<name>.json`` and ``metrics_<name>.csv`` (class, dice_mean, dice_pooled).

    Returns:
        ``{"mean_dice", "mean_dice_pooled", "per_class": {name: {"dice_mean", "dice_pooled"}}, "n_items", ...}``.
    """
    from ignite.engine import Events

    from ..evaluation.segmentation import build_segmentation_evaluator
    from .classification import load_weights

    load_weights(network, ckpt_path)
    if len(class_names) != num_classes:
        raise ValueError(f"config key 'class_names': {len(class_names)} names for num_classes={num_classes}")
    evaluator = build_segmentation_evaluator(device, loader, network, num_classes, roi_size,
                                             sw_batch_size=sw_batch_size, overlap=overlap, metric_name="dice")
    counts = torch.zeros(3, num_classes, dtype=torch.float64)  # intersection, predicted, true voxels

    def accumulate(engine) -> None:
        for o in engine.state.output:
            p, y = o["pred"].reshape(num_classes, -1).double().cpu(), o["label"].reshape(num_classes, -1).double().cpu()
            counts[0] += (p * y).sum(1)
            counts[1] += p.sum(1)
            counts[2] += y.sum(1)

    evaluator.add_event_handler(Events.ITERATION_COMPLETED, accumulate)
    evaluator.run()
    per_item = evaluator.state.metrics["dice_per_class"]
    per_item = torch.as_tensor(per_item).flatten().tolist()
    pooled = (2 * counts[0] / (counts[1] + counts[2]).clamp_min(1e-8)).tolist()
    per_class = {c: {"dice_mean": float(per_item[i - 1]), "dice_pooled": float(pooled[i])}
                 for i, c in enumerate(class_names) if i > 0}
    result = {"mean_dice": float(evaluator.state.metrics["dice"]),
              "mean_dice_pooled": float(sum(v["dice_pooled"] for v in per_class.values()) / len(per_class)),
              "per_class": per_class, "n_items": len(loader.dataset), "split": name, "checkpoint": str(ckpt_path)}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"metrics_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out / f"metrics_{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "dice_mean", "dice_pooled"])
        for c, v in per_class.items():
            w.writerow([c, f"{v['dice_mean']:.6f}", f"{v['dice_pooled']:.6f}"])
        w.writerow(["mean", f"{result['mean_dice']:.6f}", f"{result['mean_dice_pooled']:.6f}"])
    logger.info("evaluate (%s): mean Dice %.4f (pooled %.4f)", name, result["mean_dice"], result["mean_dice_pooled"])
    return result


def list_volumes(input_path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Inputs to segment: a NIfTI/DICOM file, a DICOM series folder (one volume), a folder of NIfTI files, a
    ``.txt`` list or a list of any of these.

    Raises:
        FileNotFoundError / ValueError: naming the config key ``input_path`` and the path.
    """
    from .paths import require_path

    if not isinstance(input_path, (str, os.PathLike)):
        items = [str(p) for p in input_path]
        if not items:
            raise ValueError("config key 'input_path' is an empty list")
        return [v for p in items for v in list_volumes(p)]
    p = Path(require_path(input_path, "input_path"))
    if p.is_file():
        if p.suffix.lower() == ".txt":
            return list_volumes([ln.strip() for ln in p.read_text().splitlines() if ln.strip()])
        return [str(p)]
    files = [f for f in sorted(p.iterdir()) if f.is_file()]
    volumes = [str(f) for f in files if f.name.lower().endswith(_VOLUME_SUFFIXES) and not f.name.lower().endswith(
        (".dcm", ".dicom"))]
    if volumes:
        return volumes
    from ..transforms.io import _is_dicom

    if any(_is_dicom(f) for f in files):
        return [str(p)]  # one DICOM series
    raise ValueError(f"config key 'input_path': no NIfTI/MHA/NRRD volume or DICOM series in {p}")


def _output_stem(path: str) -> str:
    """The name MONAI's ``SaveImage`` derives from an input: the file name without its extension (and ``.gz``)."""
    name, ext = os.path.splitext(os.path.basename(os.path.normpath(path)))
    return os.path.splitext(name)[0] if ext == ".gz" else name


def _output_roots(files: Sequence[str]) -> list[str]:
    """For each input, the folder its output path is taken relative to (MONAI ``SaveImage``'s ``data_root_dir``):
    none (flat output) unless another input has the same name, then as many parent folders as make the outputs
    distinct (``a/scan.nii.gz`` and ``b/scan.nii.gz`` -> ``a/scan_seg.nii.gz``, ``b/scan_seg.nii.gz``).

    Raises:
        ValueError: an input listed twice, or two inputs no folder tells apart (``scan.nii`` and ``scan.nii.gz``
            in one folder), naming both.
    """
    paths = [os.path.abspath(f) for f in files]
    roots = [""] * len(paths)  # "": flat, <output_dir>/<name>_<postfix>.nii.gz
    by_stem: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_stem.setdefault(_output_stem(p), []).append(i)
    for stem, idx in by_stem.items():
        if len(idx) < 2:
            continue
        for i in idx:
            for j in idx:
                if j > i and (paths[i] == paths[j] or os.path.dirname(paths[i]) == os.path.dirname(paths[j])):
                    raise ValueError(f"config key 'input_path': {files[i]} and {files[j]} would both be written as "
                                     f"{stem}_<postfix>.nii.gz" + (" (the same input listed twice)" if paths[i] ==
                                                                    paths[j] else "; rename one of them"))
        parts = [os.path.dirname(paths[i]).split(os.sep) for i in idx]
        depth = 1
        while len({tuple(q[len(q) - depth:]) for q in parts}) < len(parts):
            depth += 1
        for i, q in zip(idx, parts):
            roots[i] = os.sep.join(q[:len(q) - depth]) or os.sep
    return roots


@torch.no_grad()
def segment_files(
    network: nn.Module,
    files: Sequence[str],
    spatial_dims: int,
    roi_size: int | Sequence[int],
    output_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    spacing: Sequence[float] | float | None = None,
    overlap: float = 0.5,
    sw_batch_size: int = 4,
    postfix: str = "seg",
) -> list[str]:
    """Label maps (argmax class per voxel) for image files, written as NIfTI by MONAI ``SaveImaged``.

    Each input is read with :class:`~monai_ssl.transforms.LoadMedicalImaged` (DICOM file, DICOM series folder,
    NIfTI ...), scaled with :class:`~monai_ssl.transforms.MRPresetd` (MR DICOMs only: another Modality is
    refused); a volume is reoriented to RAS and, with ``spacing``, resampled (the training grid); then a 3D
    network runs a sliding window, a 2D network a sliding window per axial slice (MONAI ``SliceInferer``), or
    directly on a 2D image. The label map is brought back to the input grid (``Invertd``, nearest) and saved
    as ``<output_dir>/<input name>_<postfix>.nii.gz``; inputs that share a name keep as many of their parent
    folders as tell them apart (``a/scan.nii.gz``, ``b/scan.nii.gz`` -> ``<output_dir>/a/scan_seg.nii.gz``,
    ``<output_dir>/b/scan_seg.nii.gz``), so no output overwrites another.

    Raises:
        ValueError: two inputs would be written to one file (the same input twice, or ``scan.nii`` and
            ``scan.nii.gz`` in one folder), naming both, before anything is segmented.
        RuntimeError: naming the file that could not be read, preprocessed or segmented.
    """
    from monai.data import MetaTensor
    from monai.inferers import SliceInferer, SlidingWindowInferer
    from monai.transforms import Compose, Identity, Invertd, Orientationd, SaveImaged, Spacingd

    from ..transforms import LoadMedicalImaged, MRPresetd

    network = network.to(device).eval()
    load = LoadMedicalImaged("image")
    roi = (int(roi_size),) * spatial_dims if isinstance(roi_size, int) else tuple(int(r) for r in roi_size)
    roots = _output_roots(files)

    def saver(squeeze: bool, root: str) -> SaveImaged:
        # MONAI 1.6.1's SaveImage fails on single-channel 2D images once it squeezes the channel away (its
        # resampler then gets a 1D grid): 2D label maps keep a trailing singleton axis, (H, W, 1), instead
        return SaveImaged("pred", output_dir=str(output_dir), output_postfix=postfix, output_ext=".nii.gz",
                          separate_folder=False, resample=False, output_dtype="uint8", print_log=False,
                          savepath_in_metadict=True, squeeze_end_dims=squeeze, data_root_dir=root)

    written: list[str] = []
    for f, root in zip(files, roots):
        try:
            d = load({"image": f})
            nd = d["image"].ndim - 1
            if nd == 3:
                geom = [Orientationd("image", axcodes="RAS", labels=_RAS_LABELS)]
                geom += [Spacingd("image", pixdim=spacing, mode="bilinear")] if spacing else []
                geom = Compose(geom)
            elif nd == 2:
                geom = Compose([Identity()])
            else:
                raise ValueError(f"expected a 2D image or a 3D volume, got shape {tuple(d['image'].shape)}")
            if spatial_dims == 3 and nd == 2:
                raise ValueError("a 3D network (spatial_dims=3) cannot segment a 2D image")
            d = MRPresetd("image", load=False, spatial_dims=nd)(geom(d))
            x = d["image"].unsqueeze(0).to(device)
            if spatial_dims == 2 and nd == 3:
                inferer = SliceInferer(roi_size=roi, sw_batch_size=sw_batch_size, spatial_dim=2, overlap=overlap)
            else:
                inferer = SlidingWindowInferer(roi_size=roi, sw_batch_size=sw_batch_size, overlap=overlap)
            logits = inferer(x.as_tensor() if isinstance(x, MetaTensor) else x, network)
            pred = MetaTensor(logits[0].argmax(0, keepdim=True).float().cpu(), meta=dict(d["image"].meta),
                              applied_operations=list(d["image"].applied_operations))
            d["pred"] = pred
            if nd == 3:
                d = Invertd("pred", transform=geom, orig_keys="image", nearest_interp=True)(d)
            d = saver(nd == 3, root)(d)
        except Exception as err:
            raise RuntimeError(f"inference: cannot segment {f}: {describe_error(err)}") from err
        saved = str(d["pred"].meta["saved_to"])
        if saved in written:  # never expected after _output_roots; refuse rather than report one file twice
            raise RuntimeError(f"inference: {f} was written to {saved}, overwriting the output of "
                               f"{files[written.index(saved)]}")
        written.append(saved)
        logger.info("inference: %s -> %s", f, written[-1])
    return written
