"""Segmentation on a pretrained encoder: model building/loading, Dice-CE loss, trainer, sliding-window evaluator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Events
from monai.handlers import from_engine
from monai.losses import DiceLoss
from monai.networks.nets import SwinUNETR

from monai_ssl.evaluation.segmentation import (
    build_segmentation_evaluator,
    build_segmentation_model,
    build_segmentation_trainer,
    mean_dice_per_class,
    segmentation_loss,
)
from monai_ssl.networks.nets import MaskedAutoencoderViT, SwinMAE

SWIN_KW = {"feature_size": 12, "num_heads": (1, 2, 2, 4), "depths": (1, 1, 1, 1)}
VIT_KW = {"hidden_size": 32, "mlp_dim": 64, "num_heads": 4}
REPO = Path(__file__).resolve().parents[2]
MR_DIR = Path("/usr/share/mricron/templates")


pytestmark = pytest.mark.usefixtures("one_thread")


def _swin_mae(spatial_dims: int = 2, seed: int = 0, **kw) -> SwinMAE:
    torch.manual_seed(seed)
    cfg = {**SWIN_KW, **kw}
    return SwinMAE(spatial_dims=spatial_dims, in_channels=1, decoder_depths=(1, 1, 1, 1), **cfg)


def _vit_mae(spatial_dims: int = 2, img: int = 32, seed: int = 0) -> MaskedAutoencoderViT:
    torch.manual_seed(seed)
    return MaskedAutoencoderViT(1, img, 16, num_layers=12, decoder_hidden_size=16, decoder_num_layers=1,
                                decoder_num_heads=2, spatial_dims=spatial_dims, **VIT_KW)


# ------------------------------------------------------------------------------------------------ loss
@pytest.mark.parametrize("shape", [(2, 3, 12, 10), (2, 4, 6, 5, 4)])
def test_loss_is_04_ce_plus_06_dice(shape):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=g)
    label = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g)
    got = segmentation_loss()(logits, label)
    dice = DiceLoss(to_onehot_y=True, softmax=True)(logits, label)
    ce = F.cross_entropy(logits, label[:, 0])
    assert torch.allclose(got, 0.4 * ce + 0.6 * dice, atol=1e-6)
    # weights really matter: the terms differ, so a swapped weighting would fail
    assert not torch.allclose(got, 0.6 * ce + 0.4 * dice, atol=1e-4)


# ------------------------------------------------------------------------------------------------ model building
def test_swinunetr_from_swin_mae_2d_same_features_and_report():
    mae = _swin_mae(2)
    net, report = build_segmentation_model("swinunetr", 2, 1, 3, img_size=32, pretrained=mae.state_dict(), **SWIN_KW)
    assert isinstance(net, SwinUNETR)
    assert report.loaded_fraction == 1.0 and not report.unexpected and not report.mismatched
    assert all(k.startswith("swinViT.") for k in report.loaded)
    # convolutional decoder/skip blocks are not transferred
    assert any(k.startswith("decoder1.") for k in report.missing) and any(k.startswith("out.") for k in report.missing)
    x = torch.rand(2, 1, 32, 32)
    net.eval(), mae.eval()
    with torch.no_grad():
        ref = mae.forward_encoder(x, None, normalize=True)
        got = net.swinViT(x, True)
    for a, b in zip(ref, got):
        assert torch.allclose(a, b, atol=1e-5)
    scratch, none_report = build_segmentation_model("swinunetr", 2, 1, 3, **SWIN_KW)
    assert none_report is None
    assert not torch.allclose(scratch.swinViT.patch_embed.proj.weight, mae.encoder.patch_embed.proj.weight)


def test_swinunetr_from_swin_mae_3d_checkpoint_file(tmp_path):
    mae = _swin_mae(3)
    path = tmp_path / "mae.pt"
    torch.save({"network": mae.state_dict(), "epoch": torch.tensor(3)}, path)
    net, report = build_segmentation_model("swinunetr", 3, 1, 2, img_size=(32, 32, 64), pretrained=path, **SWIN_KW)
    assert report.loaded_fraction == 1.0
    qkv = net.swinViT.layers4[0].blocks[0].attn.qkv.weight
    assert torch.equal(qkv, mae.encoder.layers4[0].blocks[0].attn.qkv.weight)
    with torch.no_grad():  # >= 2 bottleneck voxels: MONAI's instance norm needs more than one
        assert net(torch.rand(1, 1, 64, 32, 32)).shape == (1, 2, 64, 32, 32)
    # a SwinUNETR checkpoint (swinViT.*) loads too
    _, again = build_segmentation_model("swinunetr", 3, 1, 4, pretrained=net.state_dict(), **SWIN_KW)
    assert again.loaded_fraction == 1.0


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_unetr_from_vit_mae_same_features(spatial_dims):
    mae = _vit_mae(spatial_dims)
    net, report = build_segmentation_model("unetr", spatial_dims, 1, 2, img_size=32, pretrained=mae.state_dict(),
                                           feature_size=8, **VIT_KW)
    assert report.loaded_fraction == 1.0 and all(k.startswith("vit.") for k in report.loaded)
    assert any(k.startswith("decoder2.") for k in report.missing)
    x = torch.rand(2, 1, *([32] * spatial_dims))
    net.eval(), mae.eval()
    with torch.no_grad():
        assert torch.allclose(net.vit(x)[0], mae.forward_features(x), atol=1e-5)


def test_config_mismatches_and_bad_input_raise_clearly(tmp_path):
    swin_sd = _swin_mae(2).state_dict()
    with pytest.raises(ValueError, match=r"feature_size \(checkpoint 12, model 24\)"):
        build_segmentation_model("swinunetr", 2, 1, 3, pretrained=swin_sd, feature_size=24,
                                 num_heads=SWIN_KW["num_heads"], depths=SWIN_KW["depths"])
    with pytest.raises(ValueError, match=r"depths \(checkpoint \(1, 1, 1, 1\), model \(2, 2, 2, 2\)\)"):
        build_segmentation_model("swinunetr", 2, 1, 3, pretrained=swin_sd, feature_size=12,
                                 num_heads=SWIN_KW["num_heads"])
    with pytest.raises(ValueError, match="window_size"):
        build_segmentation_model("swinunetr", 2, 1, 3, pretrained=swin_sd, window_size=5, **SWIN_KW)
    vit_sd = _vit_mae(2).state_dict()
    with pytest.raises(ValueError, match="arch='unetr'"):
        build_segmentation_model("swinunetr", 2, 1, 3, pretrained=vit_sd, **SWIN_KW)
    with pytest.raises(ValueError, match="arch='swinunetr'"):
        build_segmentation_model("unetr", 2, 1, 3, img_size=32, pretrained=swin_sd, **VIT_KW)
    with pytest.raises(ValueError, match="num_tokens"):  # MAE trained at 32, UNETR built at 64
        build_segmentation_model("unetr", 2, 1, 3, img_size=64, pretrained=vit_sd, **VIT_KW)
    with pytest.raises(ValueError, match="img_size is required"):
        build_segmentation_model("unetr", 2, 1, 3)
    with pytest.raises(ValueError, match="divisible by 32"):
        build_segmentation_model("swinunetr", 2, 1, 3, img_size=(32, 48), **SWIN_KW)
    with pytest.raises(ValueError, match="arch must be one of"):
        build_segmentation_model("unet", 2, 1, 3)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        build_segmentation_model("swinunetr", 2, 1, 3, pretrained=tmp_path / "missing.pt", **SWIN_KW)
    # too little of the source loads (foreign keys): nothing is loaded and the error says so
    padded = {f"swinViT.{k[len('encoder.'):]}": v for k, v in swin_sd.items() if k.startswith("encoder.")}
    padded.update({f"swinViT.extra{i}.weight": torch.zeros(1) for i in range(200)})
    with pytest.raises(ValueError, match="min_loaded_fraction"):
        build_segmentation_model("swinunetr", 2, 1, 3, pretrained=padded, **SWIN_KW)


# ------------------------------------------------------------------------------------------------ Dice helper
def test_mean_dice_per_class_matches_hand_computation():
    label = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    label[0, 0, :4, :4] = 1
    label[1, 0, :4, :4] = 1
    label[1, 0, 4:, 4:] = 2  # class 2 only in image 1
    pred = label.clone()
    pred[0, 0, :2, :4] = 0  # image 0: class 1 half found -> 2*8/(8+16)
    pred[1, 0, 4:, :4] = 2  # image 1: class 2 over-segmented -> 2*16/(32+16)
    d = mean_dice_per_class(pred, label, num_classes=3)
    assert d.shape == (2,)
    assert torch.allclose(d, torch.tensor([(2 * 8 / 24 + 1.0) / 2, 2 * 16 / 48]), atol=1e-6)
    pooled = mean_dice_per_class(pred, label, num_classes=3, pooled=True)
    assert torch.allclose(pooled, torch.tensor([2 * 24 / (24 + 32), 2 * 16 / 48]), atol=1e-6)
    logits = F.one_hot(pred[:, 0], 3).movedim(-1, 1).float() * 5  # logits path (argmax) gives the same
    assert torch.allclose(mean_dice_per_class(logits, label, 3), d)
    assert torch.isnan(mean_dice_per_class(pred[:1], label[:1], 3)[1])  # class 2 absent from the ground truth
    with pytest.raises(ValueError, match="class indices"):
        mean_dice_per_class(pred, label + 3, 3)
    with pytest.raises(ValueError, match="same batch"):
        mean_dice_per_class(pred[:, :, :4], label, 3)


# ------------------------------------------------------------------------------------------------ engines
def _blob_batches(n_batches: int, size: tuple[int, int], seed: int) -> list[dict]:
    """Bright squares on noise; the mask is the square (trivially learnable)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        img = 0.1 * torch.rand(2, 1, *size, generator=g)
        lab = torch.zeros(2, 1, *size)
        for b in range(2):
            r = int(torch.randint(0, size[0] - 12, (1,), generator=g))
            c = int(torch.randint(0, size[1] - 12, (1,), generator=g))
            img[b, 0, r:r + 12, c:c + 12] += 0.8
            lab[b, 0, r:r + 12, c:c + 12] = 1
        out.append({"image": img, "label": lab})
    return out


def test_training_step_reduces_loss_on_learnable_mask():
    torch.manual_seed(0)
    net, _ = build_segmentation_model("swinunetr", 2, 1, 2, img_size=(64, 32), **SWIN_KW)
    losses: list[float] = []
    trainer = build_segmentation_trainer("cpu", max_epochs=1, train_data_loader=_blob_batches(10, (64, 32), 1),
                                         network=net, optimizer=torch.optim.AdamW(net.parameters(), 3e-3))
    trainer.add_event_handler(Events.ITERATION_COMPLETED,
                              lambda e: losses.append(float(from_engine("loss", first=True)(e.state.output))))
    trainer.run()
    assert len(losses) == 10 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3


class _OneHotIdentity(torch.nn.Module):
    """'Network' whose input is already class scores: a perfect (or corrupted) predictor for the evaluator."""

    def forward(self, x):
        return x


def test_sliding_window_evaluator_per_class_dice_2d():
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 3, (2, 1, 48, 40), generator=g)
    scores = F.one_hot(label[:, 0], 3).movedim(-1, 1).float()
    scores[1, :, :24] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]  # image 1: top half predicted as class 2
    data = [{"image": scores[i:i + 1], "label": label[i:i + 1]} for i in range(2)]
    ev = build_segmentation_evaluator("cpu", data, _OneHotIdentity(), num_classes=3, roi_size=(32, 32))
    ev.run()
    per_class = torch.as_tensor(ev.state.metrics["val_mean_dice_per_class"])
    expected = mean_dice_per_class(scores, label, num_classes=3)
    assert per_class.shape == (2,) and torch.allclose(per_class.float(), expected, atol=1e-5)
    assert per_class[0] < 0.95 and per_class[1] < 0.95  # the corruption is visible in both classes
    assert ev.state.metrics["val_mean_dice"] == pytest.approx(float(expected.mean()), abs=1e-5)


def test_sliding_window_evaluator_3d_swinunetr():
    torch.manual_seed(0)
    net, _ = build_segmentation_model("swinunetr", 3, 1, 3, **SWIN_KW)
    data = [{"image": torch.rand(1, 1, 72, 32, 36), "label": torch.randint(0, 3, (1, 1, 72, 32, 36)).float()}]
    ev = build_segmentation_evaluator("cpu", data, net, num_classes=3, roi_size=(64, 32, 32), sw_batch_size=2)
    ev.run()
    per_class = torch.as_tensor(ev.state.metrics["val_mean_dice_per_class"])
    assert per_class.shape == (2,) and torch.all((per_class >= 0) & (per_class <= 1))
    assert ev.state.output[0]["pred"].shape == (3, 72, 32, 36)


# ------------------------------------------------------------------------------------------------ real MR demo data
def _load_experiment():
    spec = importlib.util.spec_from_file_location("segmentation_mr", REPO / "experiments" / "segmentation_mr.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not (MR_DIR / "ch2.nii.gz").is_file() or not (MR_DIR / "aal.nii.gz").is_file(),
                    reason="ch2 T1 MR / AAL atlas absent: install the Debian package mricron-data")
def test_real_mr_slices_and_split():
    exp = _load_experiment()
    data = exp.load_mr_slices(MR_DIR, spacing=2.0)
    img, lab = data["image"], data["label"]
    assert img.ndim == 4 and img.shape[1] == 1 and lab.shape == img.shape
    assert img.shape[2] % 32 == 0 and img.shape[3] % 32 == 0  # SwinUNETR/SwinMAE input constraint
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and float(img.std()) > 0.1
    assert set(torch.unique(lab).tolist()) == set(range(len(exp.LABEL_GROUPS) + 1))
    train, test = exp.split_slices(img.shape[0])
    assert not set(train) & set(test) and len(test) >= 10 and len(train) > len(test)
    assert min(abs(a - b) for a in train for b in test) >= 2  # a gap slice keeps neighbours apart
    for c in range(1, len(exp.LABEL_GROUPS) + 1):  # every group appears in the test slices
        assert (lab[test] == c).any()
