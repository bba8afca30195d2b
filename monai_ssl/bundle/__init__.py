"""What the monai-ssl MONAI bundles (``bundles/``) need beyond stock components: default paths, clear errors
for a wrong path or an unknown override key (ending a failed ``python -m monai.bundle`` run), and a model's input
contract. Everything else a bundle config declares is a component of MONAI or
of ``monai_ssl.data`` / ``networks`` / ``transforms`` / ``handlers``."""

from __future__ import annotations

from ..utils.model_contract import check_model_contract, contract_path, load_model_contract, save_model_contract
from ..utils.bundle_errors import actionable_error, install_last_line_hook
from .paths import (
    BundleConfigError,
    active_parser,
    check_config_keys,
    choose,
    cuda_amp,
    default_bundle_root,
    default_dataset_dir,
    require_class_names,
    require_files,
    require_path,
)

__all__ = [
    "BundleConfigError",
    "actionable_error",
    "active_parser",
    "check_config_keys",
    "check_model_contract",
    "choose",
    "contract_path",
    "cuda_amp",
    "default_bundle_root",
    "default_dataset_dir",
    "install_last_line_hook",
    "load_model_contract",
    "require_class_names",
    "require_files",
    "require_path",
    "save_model_contract",
]

install_last_line_hook()  # python -m monai.bundle: a failed run ends with the actionable message
