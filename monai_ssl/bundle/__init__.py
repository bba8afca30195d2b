"""What the monai-ssl MONAI bundles (``bundles/``) need beyond stock components: default paths, and clear errors
for a wrong path or an unknown override key. Everything else a bundle config declares is a component of MONAI or
of ``monai_ssl.data`` / ``networks`` / ``transforms`` / ``handlers``."""

from __future__ import annotations

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
    "active_parser",
    "check_config_keys",
    "choose",
    "cuda_amp",
    "default_bundle_root",
    "default_dataset_dir",
    "require_class_names",
    "require_files",
    "require_path",
]
