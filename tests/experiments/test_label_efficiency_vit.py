"""``experiments/label_efficiency.py --arch vit`` (scratch ViT vs MAE-pretrained ViT), its argparse rules, the
output-folder network marker, the ViT features of ``experiments/probe_encoders.py`` and the lead's COVID
``--test-split val+test``. Everything runs in-process on the shipped data (subsets where the full split is slow)."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _script(name: str):
    if name in sys.modules:
        return sys.modules[name]
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))  # probe_encoders imports label_efficiency by name
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def le():
    return _script("label_efficiency")


def _both_labels(items: list[dict], n: int) -> list[dict]:
    """First ``n // 2`` items of each label (real PneumoniaMNIST images, a split small enough for a smoke run)."""
    out = [d for d in items if d["label"] == 0][: n // 2] + [d for d in items if d["label"] == 1][: n // 2]
    assert len(out) == n
    return out


def test_vit_scratch_and_mae_smoke(le, tmp_path, monkeypatch):
    real_load = le.load_splits

    def small_splits(args):
        s = real_load(args)
        small = {"train": _both_labels(s["train"], 40), "val": _both_labels(s["val"], 8),
                 "test": _both_labels(s["test"], 24)}
        return {**small, "pretrain": small["train"]}

    built: dict[str, dict[str, torch.Tensor]] = {}
    real_build = le.build_model

    def recording_build(name, seed, args, ckpts):
        model = real_build(name, seed, args, ckpts)
        built.setdefault(name, {k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(le, "load_splits", small_splits)
    monkeypatch.setattr(le, "build_model", recording_build)
    out = tmp_path / "vit"
    rows = le.main(["--arch", "vit", "--inits", "scratch", "mae", "--fractions", "0.25", "1.0", "--seeds", "0",
                    "--steps", "2", "--batch-size", "4", "--pretrain-steps", "2", "--pretrain-batch-size", "8",
                    "--threads", "1", "--out", str(out)])

    with open(out / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(rows) == len(csv_rows) == 4 and {r["init"] for r in csv_rows} == {"scratch", "mae"}
    assert all(0.0 <= float(r["test_auc"]) <= 1.0 for r in csv_rows)
    assert (out / "mae_encoder.pt").is_file() and (out / "network.txt").read_text().strip() == "vit"
    log = (out / "mae_pretrain.txt").read_text()
    assert log.startswith("MAE pretraining: 2 steps x 8 images, 75% masked")
    summary = (out / "summary.md").read_text()
    assert "ViT hidden" in summary and log.strip() in summary and (out / "label_efficiency.png").stat().st_size > 0

    # the MAE row's classifier started from the cached encoder, tensor for tensor, with a fresh (seeded) head
    cached = torch.load(out / "mae_encoder.pt", weights_only=True)
    assert any(k.startswith("blocks.3.") for k in cached) and not any("decoder" in k for k in cached)
    mae, scratch = built["mae"], built["scratch"]
    for key, value in cached.items():
        assert torch.equal(mae[key], value), key
    assert not torch.equal(scratch["blocks.0.attn.qkv.weight"], cached["blocks.0.attn.qkv.weight"])
    for key in ("classification_head.weight", "classification_head.bias", "cls_token"):
        assert torch.equal(mae[key], scratch[key]), key


def test_load_encoder_refuses_a_partial_vit_checkpoint(le, tmp_path):
    from monai_ssl.networks.nets import MaskedAutoencoderViT
    from monai_ssl.networks.nets.mae import mae_vit_to_monai_vit

    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(1, 28, le.vit_patch_size(28), spatial_dims=2, **le.VIT, **le.MAE_DECODER)
    full = mae_vit_to_monai_vit(mae.state_dict())
    torch.save({k: v for k, v in full.items() if not k.startswith("blocks.1.")}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="blocks.1.attn.qkv.weight"):
        le.load_encoder(le.make_classifier(0, arch="vit", size=28), tmp_path / "partial.pt", "vit")


@pytest.mark.parametrize("argv, needs", [
    (["--arch", "vit", "--inits", "scratch", "simclr"], "--arch resnet18"),
    (["--arch", "vit", "--dataset", "covid", "--inits", "micle"], "--arch resnet18"),
    (["--inits", "scratch", "mae"], "--arch vit"),
    (["--arch", "resnet18", "--inits", "mae"], "--arch vit"),
    (["--arch", "vit", "--size", "30"], "not a multiple of its patch size 4"),
])
def test_init_must_fit_the_network(le, capsys, argv, needs):
    with pytest.raises(SystemExit) as err:
        le.parse_args(argv)
    assert err.value.code == 2
    assert needs in capsys.readouterr().err


def test_arch_defaults(le):
    vit = le.parse_args(["--arch", "vit"])
    assert vit.inits == ["scratch", "mae"] and vit.size == 28 and le.vit_patch_size(vit.size) == 4
    assert le.vit_patch_size(64) == 8
    assert le.parse_args([]).arch == "resnet18" and le.parse_args([]).inits == ["scratch", "simclr"]


def test_network_marker_keeps_arches_apart(le, tmp_path):
    (tmp_path / "results.csv").write_text("init,fraction,seed\n")  # a folder made before --arch: ResNet rows
    with pytest.raises(SystemExit, match="--arch resnet18 results"):
        le.check_network_marker(tmp_path, "vit", fresh=False)
    le.check_network_marker(tmp_path, "resnet18", fresh=False)
    assert not (tmp_path / "network.txt").exists()  # ResNet folders stay as they were
    le.check_network_marker(tmp_path, "vit", fresh=True)
    assert (tmp_path / "network.txt").read_text().strip() == "vit"
    with pytest.raises(SystemExit, match="--arch vit results"):
        le.check_network_marker(tmp_path, "resnet18", fresh=False)


def test_probe_features_of_the_vit(le):
    probe = _script("probe_encoders")
    args = probe.parse_args(["--arch", "vit"])
    model = le.make_classifier(0, arch=args.arch, size=args.size)
    items = [{"image": torch.rand(1, 28, 28)} for _ in range(3)]
    feats = probe.features(model, items)
    assert feats.shape == (3, le.VIT["hidden_size"])
    _, hidden = model(torch.stack([d["image"] for d in items]))  # mean of the normed patch tokens, not the cls one
    assert torch.allclose(feats, model.norm(hidden[-1])[:, 1:].mean(1), atol=1e-6)


def test_covid_val_plus_test_split(le):
    default = le.load_splits(le.parse_args(["--dataset", "covid"]))
    held = le.load_splits(le.parse_args(["--dataset", "covid", "--test-split", "val+test", "--recipes", "fixed"]))

    def patients(items):
        return {d["patient_id"] for d in items}

    assert held["val"] == [] and default["val"]
    assert patients(held["test"]) == patients(default["val"]) | patients(default["test"])
    assert len(held["test"]) == len(default["val"]) + len(default["test"])
    assert all(d["label"] in (0, 1) for d in held["test"])
    for split in ("train", "pretrain"):
        assert not patients(held["test"]) & patients(held[split])
        assert patients(held[split]) == patients(default[split])
    # the default option still scores the test patients of the seeded patient-level split
    from monai_ssl.data import load_covid_cxr, patient_split

    split = patient_split(load_covid_cxr(), fractions=(0.7, 0.15, 0.15), seed=0)
    assert patients(default["test"]) == {d["patient_id"] for d in split["test"] if d["label"] >= 0}
    assert not patients(default["test"]) & patients(default["val"])
