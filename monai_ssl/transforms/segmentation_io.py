"""Volume-in / label-map-out pieces of segmentation inference: MR preprocessing whose geometry can be inverted
(RAS + resampling for volumes, nothing for 2D images), and a label-map writer that keeps outputs apart."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import InvertibleTransform, MapTransform, Orientationd, SaveImaged, Spacingd

__all__ = ["MRInferencePreprocessd", "SaveLabelMapd"]

RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # MONAI's default, passed explicitly (its default changes)


class MRInferencePreprocessd(MapTransform, InvertibleTransform):
    """A loaded MR image for a segmentation network: a 3D volume is reoriented to RAS and, with ``pixdim``,
    resampled to the training grid; a 2D image keeps its grid; then :class:`~monai_ssl.transforms.MRPresetd`
    (0.5-99.5 percentile scaling, modality checks) for the image's own dimensionality. ``inverse`` undoes the
    geometry (use it in ``Invertd`` to bring a label map back onto the input grid).

    Args:
        keys: the image key (one).
        pixdim: target spacing of volumes in mm (None keeps the input spacing).
        network_dims: 2 or 3, the network's ``spatial_dims`` (a 3D network cannot take a 2D image).
    """

    def __init__(self, keys: KeysCollection = "image", pixdim: Sequence[float] | float | None = None,
                 network_dims: int = 3) -> None:
        super().__init__(keys)
        self.network_dims = int(network_dims)
        self.orient = Orientationd(self.keys, axcodes="RAS", labels=RAS_LABELS)
        self.spacing = Spacingd(self.keys, pixdim=pixdim, mode="bilinear") if pixdim else None
        from .presets import MRPresetd

        self.presets = {nd: MRPresetd(self.keys, load=False, spatial_dims=nd) for nd in (2, 3)}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        nd = d[self.keys[0]].ndim - 1
        if nd not in (2, 3):
            raise ValueError(f"expected a 2D image or a 3D volume, got shape {tuple(d[self.keys[0]].shape)}")
        if self.network_dims == 3 and nd == 2:
            raise ValueError("a 3D network (spatial_dims=3) cannot segment a 2D image")
        if nd == 3:
            d = self.orient(d)
            d = self.spacing(d) if self.spacing is not None else d
        return self.presets[nd](d)

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ops = getattr(d[self.keys[0]], "applied_operations", [])
        if not ops:  # a 2D image: no geometry was applied
            return d
        d = self.spacing.inverse(d) if self.spacing is not None else d
        return self.orient.inverse(d)


class SaveLabelMapd(MapTransform):
    """MONAI ``SaveImaged`` of a label map (uint8 NIfTI ``<output_dir>/<input name>_<postfix>.nii.gz``), with the
    output folder taken relative to the item's own ``data[root_key]`` (see :func:`monai_ssl.data.output_roots`:
    inputs sharing a name keep the parent folders that tell them apart). The saved paths accumulate in ``written``;
    a second item written to the same file is refused.

    MONAI 1.6's ``SaveImage`` fails on single-channel 2D images once it squeezes the channel away, so 2D label maps
    keep a trailing singleton axis, ``(H, W, 1)``.
    """

    def __init__(self, keys: KeysCollection = "pred", output_dir: str | os.PathLike = "./predictions",
                 output_postfix: str = "seg", root_key: str = "root", source_key: str = "file") -> None:
        super().__init__(keys)
        self.output_dir, self.output_postfix = str(output_dir), output_postfix
        self.root_key, self.source_key = root_key, source_key
        self.written: list[str] = []
        self._sources: list[Any] = []

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.keys:
            volume = d[key].ndim - 1 == 3
            d = SaveImaged(key, output_dir=self.output_dir, output_postfix=self.output_postfix,
                           output_ext=".nii.gz", separate_folder=False, resample=False, output_dtype="uint8",
                           print_log=False, savepath_in_metadict=True, squeeze_end_dims=volume,
                           data_root_dir=str(d.get(self.root_key) or ""))(d)
            saved = str(d[key].meta["saved_to"])
            if saved in self.written:
                raise RuntimeError(f"inference: {d.get(self.source_key)} was written to {saved}, overwriting the "
                                   f"output of {self._sources[self.written.index(saved)]}")
            self.written.append(saved)
            self._sources.append(d.get(self.source_key))
        return d
