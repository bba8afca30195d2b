"""Tests of the weight-mapping utilities (generic part; MAE -> ViT/UNETR transfer is in test_mae.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_ssl.networks.weights import load_checkpoint_weights, load_mapped_state_dict


class _Opaque:
    """An arbitrary class: not allowed by weights_only unpickling."""


def _net(hidden=4):
    return nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def test_identity_load_report():
    src, dst = _net(), _net()
    report = load_mapped_state_dict(dst, src.state_dict())
    assert report.loaded_fraction == 1.0 and report.target_fraction == 1.0
    assert not report.missing and not report.unexpected and not report.mismatched
    for a, b in zip(src.parameters(), dst.parameters()):
        assert torch.equal(a, b)


def test_key_map_dict_and_callable():
    src = nn.Sequential(nn.Linear(3, 4))
    dst = nn.ModuleDict({"enc": nn.Linear(3, 4), "head": nn.Linear(4, 2)})
    report = load_mapped_state_dict(dst, src.state_dict(), key_map={"0.weight": "enc.weight", "0.bias": "enc.bias"})
    assert sorted(report.loaded) == ["enc.bias", "enc.weight"]
    assert sorted(report.missing) == ["head.bias", "head.weight"]
    assert report.target_fraction == 0.5
    assert torch.equal(dst["enc"].weight, src[0].weight)
    # callable that drops the bias
    report = load_mapped_state_dict(
        dst, src.state_dict(), key_map=lambda k: None if k.endswith("bias") else "enc." + k.split(".")[1]
    )
    assert report.skipped == ["0.bias"] and report.loaded == ["enc.weight"] and report.num_source == 1
    assert "skipped by key map (1)" in report.summary()


def test_shape_mismatch_and_too_little_loaded():
    src, dst = _net(4), _net(5)
    with pytest.raises(ValueError, match="shapes that do not match"):
        load_mapped_state_dict(dst, src.state_dict())
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(ValueError, match="only 1 of 4"):  # only 2.bias (2,) fits
        load_mapped_state_dict(dst, src.state_dict(), strict_shapes=False)
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())  # failed load leaves it untouched
    # with a low threshold the mismatches are skipped and reported
    src2 = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(4, 2))
    report = load_mapped_state_dict(dst, src2.state_dict(), strict_shapes=False, min_loaded_fraction=0.4)
    assert [m[0] for m in report.mismatched] == ["2.weight"]
    assert report.mismatched[0][1:] == ((2, 4), (2, 5))
    assert sorted(report.loaded) == ["0.bias", "0.weight", "2.bias"]
    # unexpected keys count against the fraction
    with pytest.raises(ValueError, match="wrong key map"):
        load_mapped_state_dict(dst, {"x.weight": torch.zeros(1), "0.bias": torch.zeros(5)}, min_loaded_fraction=0.9)


def test_load_checkpoint_weights(tmp_path):
    net = _net()
    plain = tmp_path / "plain.pt"
    torch.save(net.state_dict(), plain)
    assert set(load_checkpoint_weights(plain)) == set(net.state_dict())
    # ignite/monai container with a DDP prefix
    wrapped = tmp_path / "wrapped.pt"
    torch.save(
        {"network": {"module." + k: v for k, v in net.state_dict().items()}, "epoch": torch.tensor(3)}, wrapped
    )
    sd = load_checkpoint_weights(wrapped)
    assert set(sd) == set(net.state_dict())
    assert torch.equal(load_checkpoint_weights(wrapped, key="network")["0.weight"],
                       net[0].weight)
    with pytest.raises(ValueError, match="no entry 'model'"):
        load_checkpoint_weights(wrapped, key="model")


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint_weights(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint_weights(bad)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"obj": _Opaque()}, unsafe)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint_weights(unsafe)
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 1}, empty)
    with pytest.raises(ValueError, match="holds no tensors"):
        load_checkpoint_weights(empty)
