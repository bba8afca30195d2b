"""MONAI transforms for modality preprocessing, self-supervised views and pretext tasks."""

from __future__ import annotations

from .augmentation import (
    RandResizedCrop,
    RandResizedCropd,
    RandResizedCropD,
    RandResizedCropDict,
    cxr_augmentations,
    mae_augmentations,
    simclr_augmentations,
)
from .batched import (
    BatchedRandViews,
    batched_cxr_augmentations,
    batched_mae_augmentations,
    batched_simclr_augmentations,
)
from .intensity import (
    CLAHE,
    CT_WINDOWS,
    MIN_IMAGE_SIZE,
    CheckImage,
    CheckImaged,
    CheckImageD,
    CheckImageDict,
    CLAHEd,
    CLAHED,
    CLAHEDict,
    DicomWindow,
    DicomWindowd,
    DicomWindowD,
    DicomWindowDict,
    HUWindow,
    HUWindowd,
    HUWindowD,
    HUWindowDict,
    N4BiasFieldCorrection,
    N4BiasFieldCorrectiond,
    N4BiasFieldCorrectionD,
    N4BiasFieldCorrectionDict,
    RGBToGray,
    RGBToGrayd,
    RGBToGrayD,
    RGBToGrayDict,
)
from .domain import (
    DICOM_DOMAIN_TAGS,
    CheckDICOMDomaind,
    CheckDICOMDomainD,
    CheckDICOMDomainDict,
    OutOfDomainError,
    RejectFlatImaged,
    RejectFlatImageD,
    RejectFlatImageDict,
    check_dicom_domain,
)
from .errors import InputError, ReportFileErrorsd, ReportFileErrorsD, ReportFileErrorsDict, file_status
from .io import LoadMedicalImage, LoadMedicalImaged, LoadMedicalImageD, LoadMedicalImageDict, load_dicom
from .multiview import RandMultiViewd, RandMultiViewD, RandMultiViewDict
from .pretext import (
    RandJigsaw,
    RandJigsawd,
    RandRelativePatch,
    RandRelativePatchd,
    RandRotationPretext,
    RandRotationPretextd,
    hamming_permutations,
)
from .presets import ColorPresetd, CTPresetd, MRPresetd, USPresetd, XRayPresetd
from .colour import RandColorJitter, RandGrayscale, ToRGB, ToRGBD, ToRGBd, ToRGBDict
from .segmentation_io import MRInferencePreprocessd, SaveLabelMapd
from .ultrasound import (
    CineFrame,
    CineFramed,
    CineFrameD,
    CineFrameDict,
    RandCineFrame,
    RandCineFramed,
    RandCineFrameD,
    RandCineFrameDict,
    USFanCrop,
    USFanCropd,
    USFanCropD,
    USFanCropDict,
)
