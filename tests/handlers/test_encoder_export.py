"""monai_ssl.handlers.encoder_export: plain-tensor export, DDP unwrap, the handler, atomic writes and the weights
check."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from monai_ssl.handlers import EncoderExportHandler, export_encoder, unwrap_model


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
