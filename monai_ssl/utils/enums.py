"""String keys shared by datasets, transforms, engines and handlers."""

from __future__ import annotations

from enum import Enum

__all__ = ["SSLKeys", "view_key"]


class SSLKeys(str, Enum):
    """Dictionary keys used across monai-ssl.

    Data keys follow MONAI's ``CommonKeys`` where they overlap (``image``, ``label``, ``pred``,
    ``loss``); the rest name what self-supervised pipelines add: patient/study grouping,
    multi-view outputs and masked-autoencoder outputs.
    """

    IMAGE = "image"
    LABEL = "label"
    PATIENT_ID = "patient_id"
    STUDY_ID = "study_id"
    SERIES_ID = "series_id"
    MODALITY = "modality"
    VIEW = "view"
    SOURCE_INDEX = "source_index"
    # multi-view outputs: "<key>_view_<i>" (see view_key)
    VIEW_0 = "image_view_0"
    VIEW_1 = "image_view_1"
    # engine outputs
    PRED = "pred"
    LOSS = "loss"
    FEATURES = "features"
    PROJECTION = "projection"
    MASK = "mask"
    TARGET = "target"

    def __str__(self) -> str:
        return self.value


def view_key(key: str, index: int) -> str:
    """Name of view ``index`` of ``key`` written by multi-view transforms, e.g. ``image_view_0``."""
    return f"{key}_view_{index}"
