"""monai_ssl.bundle helpers: key check, choices, path errors, bundle/data folders, encoder export."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from monai_ssl.bundle import (
    BundleConfigError,
    EncoderExportHandler,
    check_config_keys,
    choose,
    default_bundle_root,
    default_dataset_dir,
    export_encoder,
    require_path,
    unwrap_model,
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


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
        self.head = nn.Linear(2, 2)


def test_export_encoder_plain_tensors_and_unwrap(tmp_path):
    model = _Model()
    wrapped = nn.DataParallel(model)
    assert unwrap_model(wrapped) is model
    state = export_encoder(wrapped, tmp_path / "sub" / "enc.pt", info={"bundle": "x"})
    loaded = torch.load(tmp_path / "sub" / "enc.pt", weights_only=True)
    assert loaded.keys() == model.encoder.state_dict().keys() == state.keys()
    assert all(torch.equal(loaded[k], v) for k, v in model.encoder.state_dict().items())
    side = json.loads((tmp_path / "sub" / "enc.pt.json").read_text())
    assert side["num_tensors"] == len(loaded) and side["bundle"] == "x"
    assert not list((tmp_path / "sub").glob("*.tmp"))
    mapped = export_encoder(model, tmp_path / "m.pt", submodule=None,
                            key_map=lambda sd: {"x." + k: v for k, v in sd.items() if k.startswith("head.")})
    assert sorted(mapped) == ["x.head.bias", "x.head.weight"]
    with pytest.raises(AttributeError, match="no submodule 'backbone'"):
        export_encoder(model, tmp_path / "b.pt", submodule="backbone")
    with pytest.raises(ValueError, match="nothing to export"):
        export_encoder(model, tmp_path / "e.pt", submodule=None, key_map=lambda sd: {})


def test_export_handler_runs_on_completion(tmp_path):
    from ignite.engine import Engine

    model = _Model()
    engine = Engine(lambda e, b: None)
    EncoderExportHandler(model, tmp_path / "enc.pt", every_n_epochs=1).attach(engine)
    EncoderExportHandler(model, tmp_path / "off.pt", enabled=False).attach(engine)
    engine.run([0, 1], max_epochs=2)
    assert json.loads((tmp_path / "enc.pt.json").read_text())["epoch"] == 2
    assert not (tmp_path / "off.pt").exists()


def test_export_encoder_ignores_a_planted_tmp_symlink(tmp_path):
    """Issue 21 (14): a fixed ``encoder.pt.tmp`` let a planted symlink redirect the write (and became the export)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "models"
    out.mkdir()
    for name in ("enc.pt.tmp", "enc.pt.json.tmp"):
        (out / name).symlink_to(victim)
    model = _Model()
    export_encoder(model, out / "enc.pt")
    assert victim.read_bytes() == b"precious", "the export wrote through the planted symlink"
    assert not (out / "enc.pt").is_symlink() and not (out / "enc.pt.json").is_symlink()
    loaded = torch.load(out / "enc.pt", weights_only=True)
    assert all(torch.equal(loaded[k], v) for k, v in model.encoder.state_dict().items())
    assert json.loads((out / "enc.pt.json").read_text())["num_tensors"] == len(loaded)
    assert sorted(p.name for p in out.iterdir()) == ["enc.pt", "enc.pt.json", "enc.pt.json.tmp", "enc.pt.tmp"]


def test_export_encoder_refuses_diverged_weights_and_keeps_the_previous_export(tmp_path):
    """Issue 21 (4): weights up to 9.7e28 were exported (and then loaded "100 %" downstream)."""
    from monai_ssl.networks import NonFiniteWeightsError

    model = _Model()
    export_encoder(model, tmp_path / "enc.pt")
    good = torch.load(tmp_path / "enc.pt", weights_only=True)
    with torch.no_grad():
        model.encoder[0].weight[0, 0, 0, 0] = 9.7e28
        model.encoder[1].running_var[1] = float("nan")
    with pytest.raises(NonFiniteWeightsError) as err:
        export_encoder(model, tmp_path / "enc.pt")
    assert "0.weight (max |x| = 9.7e+28)" in str(err.value) and "1.running_var (nan)" in str(err.value)
    kept = torch.load(tmp_path / "enc.pt", weights_only=True)
    assert all(torch.equal(kept[k], v) for k, v in good.items())
    from ignite.engine import Engine

    with torch.no_grad():
        model.encoder[0].weight.fill_(float("inf"))
    engine = Engine(lambda e, b: None)
    EncoderExportHandler(model, tmp_path / "enc.pt").attach(engine)
    with pytest.raises(NonFiniteWeightsError, match=r"0.weight \(inf\)"):  # the run ends with an error
        engine.run([0], max_epochs=1)
