"""Helpers the monai-ssl MONAI bundles (``bundles/``) call from their configs: default paths, clear errors for
wrong paths and unknown override keys, datalists from the shipped data, and encoder export."""

from __future__ import annotations

from .data import contrastive_datalist, mixed_modality_sources
from .export import EncoderExportHandler, export_encoder, unwrap_model
from .paths import (
    BundleConfigError,
    active_parser,
    check_config_keys,
    choose,
    cuda_amp,
    default_bundle_root,
    default_dataset_dir,
    require_path,
)

__all__ = [
    "BundleConfigError",
    "EncoderExportHandler",
    "active_parser",
    "check_config_keys",
    "choose",
    "contrastive_datalist",
    "cuda_amp",
    "default_bundle_root",
    "default_dataset_dir",
    "export_encoder",
    "mixed_modality_sources",
    "require_path",
    "unwrap_model",
]

from . import segmentation  # noqa: E402  (bundles/segmentation helpers)
from .segmentation import (  # noqa: E402
    block_split,
    evaluate_segmentation,
    list_volumes,
    segment_files,
    segmentation_datalists,
)

__all__ += ["block_split", "evaluate_segmentation", "list_volumes", "segment_files", "segmentation",
            "segmentation_datalists"]
