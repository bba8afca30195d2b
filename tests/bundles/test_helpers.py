"""monai_ssl.bundle helpers: key check, choices, path errors, bundle/data folders."""

from __future__ import annotations

import pytest

from monai_ssl.bundle import (
    BundleConfigError,
    check_config_keys,
    choose,
    default_bundle_root,
    default_dataset_dir,
    require_path,
)

from .conftest import BUNDLES, REPO


def test_check_config_keys_accepts_known_and_nested_keys(tmp_path):
    (tmp_path / "a.yaml").write_text("max_epochs: 2\ntrain:\n  handlers: []\n  trainer: {_target_: x, foo: 1}\n")
    (tmp_path / "b.yaml").write_text("train#sampler: 1\nextra: 3\n")
    (tmp_path / "metadata.json").write_text('{"secret_key": 1}')
    train = {"handlers": [], "sampler": 2, "trainer": {"_target_": "x", "bar": 2}}
    config = {"max_epochs": 5, "extra": 1, "train": train, "_meta_": {"version": "1"}, "imports": [], "run": []}
    assert check_config_keys(tmp_path, config=config) is True  # component kwargs (trainer#bar) are not checked
    with pytest.raises(BundleConfigError) as err:
        check_config_keys([tmp_path / "a.yaml"], config={**config, "secret_key": 1})
    msg = str(err.value)
    assert "'extra'" in msg and "'train#sampler'" in msg and "'secret_key'" in msg  # b.yaml/metadata not read
    with pytest.raises(BundleConfigError, match=r"'max_epoch' \(did you mean 'max_epochs'\?\)"):
        check_config_keys(tmp_path, config={"max_epoch": 1})
    assert check_config_keys(tmp_path, config={"max_epoch": 1}, extra_keys=["max_epoch"])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        check_config_keys(tmp_path / "nowhere", config={})


def test_check_config_keys_needs_a_parser_or_config():
    with pytest.raises(RuntimeError, match="no running monai.bundle ConfigParser"):
        check_config_keys(BUNDLES / "micle_pretrain" / "configs")


def test_choose():
    assert choose({"a": 1, "b": 2}, "b", "k") == 2
    with pytest.raises(ValueError, match=r"config key 'net': unknown choice 'c'; choose from \['a', 'b'\]"):
        choose({"a": 1}, "c", "net", choices=["a", "b"])
    with pytest.raises(ValueError, match="unknown choice 'b'"):  # a disabled (dropped) component
        choose({"a": 1}, "b", "net", choices=["a", "b"])


def test_require_path(tmp_path):
    assert require_path(None, "datalist") is None
    assert require_path(tmp_path, "dataset_dir", "dir") == str(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"config key 'dataset_dir': directory not found: .*missing"):
        require_path(tmp_path / "missing", "dataset_dir", "dir")
    (tmp_path / "f.csv").write_text("image\n")
    with pytest.raises(FileNotFoundError, match="config key 'datalist': file not found"):
        require_path(tmp_path, "datalist", "file")
    with pytest.raises(FileNotFoundError, match=r"lacks \['x.npz'\]"):
        require_path(tmp_path, "dataset_dir", "dir", files=["f.csv", "x.npz"])


def test_default_bundle_root_and_dataset_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert default_bundle_root("micle_pretrain") == str(REPO / "bundles" / "micle_pretrain")
    monkeypatch.chdir(BUNDLES / "mae_pretrain")
    assert default_bundle_root("mae_pretrain") == str(BUNDLES / "mae_pretrain")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="--bundle_root"):
        default_bundle_root("micle_pretrain")
    assert default_dataset_dir(BUNDLES / "micle_pretrain") == str(REPO / "data")
    monkeypatch.setenv("MONAI_SSL_DATA_DIR", str(tmp_path))
    assert default_dataset_dir(tmp_path / "copy" / "micle_pretrain") == str(tmp_path)
