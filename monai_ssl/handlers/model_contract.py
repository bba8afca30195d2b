"""Write a model's input contract beside its weights when training starts."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ignite.engine import Engine, Events

from ..utils.model_contract import save_model_contract

__all__ = ["ModelContractWriter"]

logger = logging.getLogger(__name__)


class ModelContractWriter:
    """At ``Events.STARTED``, write ``contract`` to ``<model_path stem>.contract.json``
    (:func:`monai_ssl.utils.model_contract.save_model_contract`): the image size, channels, class names, DICOM domain
    and preprocessing the weights saved at ``model_path`` expect. Inference reads it and refuses a mismatch.

    Args:
        model_path: where the best weights are saved (``model.pt``).
        contract: ``image_size``, ``channels``, ``class_names``, ``domain`` (DICOM tag -> accepted values) and
            ``preprocessing`` (a description).
    """

    def __init__(self, model_path: str | os.PathLike, contract: Mapping[str, Any]) -> None:
        self.model_path, self.contract = model_path, contract

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        path = save_model_contract(self.model_path, self.contract)
        logger.info("model contract written to %s", path)
