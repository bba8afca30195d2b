"""Curricular SSL runner on a handful of real COVID chest X-rays at 32 px."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.metrics import compute_roc_auc
from monai.networks.nets import ResNet
from monai.transforms import Compose, Resized
from torch import nn

from monai_ssl.engines.curriculum import (
    CurriculumStage,
    PretextTrainer,
    linear_ramp,
    rank_by_probe,
    run_curriculum,
    run_stage,
    search_order,
)
from monai_ssl.networks.blocks import JigsawHead, RotationHead
from monai_ssl.transforms.pretext import RandJigsawd, RandRotationPretextd

FEAT = 16


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cxr_items(data_dir):
    from monai_ssl.data import load_covid_cxr

    items = [d for d in load_covid_cxr(data_dir / "covid_cxr_256.npz") if d["label"] >= 0]
    pos = [d for d in items if d["label"] == 1][:6]
    neg = [d for d in items if d["label"] == 0][:6]
    small = Resized("image", (32, 32))
    return [small({"image": d["image"], "label": d["label"]}) for d in pos + neg]


def _encoder(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ResNet("basic", [1, 1, 1, 1], [4, 8, 8, FEAT], spatial_dims=2, n_input_channels=1, feed_forward=False)


def _loader(items, transform, seed: int = 0) -> DataLoader:
    ds = Dataset(items, Compose([transform]).set_random_state(seed))
    return DataLoader(ds, batch_size=6, shuffle=True, num_workers=0, generator=torch.Generator().manual_seed(seed))


def _stages(items, seed: int = 0) -> list[CurriculumStage]:
    return [
        CurriculumStage("rotation", _loader(items, RandRotationPretextd("image"), seed)),
        CurriculumStage(
            "jigsaw",
            _loader(items, RandJigsawd("image", num_permutations=8), seed),
            head_kwargs={"num_classes": 8, "hidden_features": 16},
        ),
    ]


def _probe(items):
    """Linear probe score: logistic regression on frozen features, AUC on the same handful of images."""

    def probe(encoder: nn.Module) -> float:
        encoder.eval()
        with torch.no_grad():
            x = torch.stack([torch.as_tensor(d["image"]) for d in items]).float()
            feats = encoder(x)
        y = torch.tensor([float(d["label"]) for d in items])
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
        lin = nn.Linear(feats.shape[1], 1)
        opt = torch.optim.LBFGS(lin.parameters(), max_iter=50)

        def closure():
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(lin(feats)[:, 0], y) + 1e-2 * lin.weight.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
        return float(compute_roc_auc(lin(feats).detach()[:, 0], y))

    return probe


def test_two_stages_hand_over_weights(cxr_items, tmp_path):
    encoder = _encoder()
    start = {k: v.clone() for k, v in encoder.state_dict().items()}
    built = []
    stages = _stages(cxr_items)

    def recorder(task: str, kwargs: dict):  # record the model each stage builds around the current encoder
        def build(enc: nn.Module) -> nn.Module:
            built.append(RotationHead(enc, FEAT) if task == "rotation" else JigsawHead(enc, FEAT, **kwargs))
            return built[-1]

        return build

    for stage in stages:
        stage.model_fn = recorder(stage.task, stage.head_kwargs)
    result = run_curriculum(stages, encoder, FEAT, output_dir=tmp_path)

    assert result["order"] == ["rotation", "jigsaw"] and result["probe"] is None
    assert [type(m) for m in built] == [RotationHead, JigsawHead]
    assert built[0].encoder is encoder and built[1].encoder is encoder  # one backbone, a new head per stage
    assert built[0].classifier is not built[1].classifier
    ckpts = [torch.load(s["checkpoint"], weights_only=True) for s in result["stages"]]
    w = "conv1.weight"
    assert not torch.equal(start[w], ckpts[0][w])  # stage 1 trained the encoder
    assert not torch.equal(ckpts[0][w], ckpts[1][w])  # stage 2 continued from it
    for k, v in encoder.state_dict().items():
        torch.testing.assert_close(v, ckpts[1][k])
    for s in result["stages"]:
        assert s["iterations"] == 2 and len(s["epoch_losses"]) == 1 and math.isfinite(s["epoch_losses"][0])
    assert (tmp_path / "summary.json").is_file()


def test_contrastive_stage_trains_encoder(cxr_items):
    from monai_ssl.transforms import RandMultiViewd, cxr_augmentations

    encoder = _encoder()
    before = encoder.conv1.weight.detach().clone()
    stage = CurriculumStage(
        "contrastive",
        _loader(cxr_items, RandMultiViewd("image", cxr_augmentations(32))),
        head_kwargs={"hidden_features": 16, "out_features": 8},
    )
    summary = run_stage(stage, encoder, FEAT)
    assert summary["iterations"] == 2 and math.isfinite(summary["epoch_losses"][0])
    assert not torch.equal(before, encoder.conv1.weight)


def test_probe_ranking_orders_weakest_first(cxr_items):
    encoder = _encoder()
    start = {k: v.clone() for k, v in encoder.state_dict().items()}
    ranking = rank_by_probe(_stages(cxr_items), encoder, FEAT, _probe(cxr_items), probe_epochs=1)
    assert sorted(name for name, _ in ranking) == ["jigsaw", "rotation"]
    assert ranking[0][1] <= ranking[1][1] and all(0.0 <= s <= 1.0 for _, s in ranking)
    for k, v in encoder.state_dict().items():  # ranking trains copies, never the encoder itself
        assert torch.equal(v, start[k])

    scores = iter([0.9, 0.2])  # rotation alone scores 0.9, jigsaw alone 0.2 -> jigsaw first
    result = run_curriculum(_stages(cxr_items), encoder, FEAT, order="probe", probe_fn=lambda enc: next(scores))
    assert result["order"] == ["jigsaw", "rotation"]
    assert [s["task"] for s in result["stages"]] == ["jigsaw", "rotation"]
    assert result["probe"] == [("jigsaw", 0.2), ("rotation", 0.9)]


def test_search_and_explicit_order(cxr_items):
    scores = iter([0.3, 0.8])  # permutations in order: (rotation, jigsaw), (jigsaw, rotation)
    results = search_order(_stages(cxr_items), _encoder(), FEAT, lambda enc: next(scores))
    assert results[0] == (("jigsaw", "rotation"), 0.8)
    out = run_curriculum(_stages(cxr_items), _encoder(), FEAT, order=["jigsaw"])
    assert out["order"] == ["jigsaw"] and len(out["stages"]) == 1


def test_errors(cxr_items):
    stages = _stages(cxr_items)
    with pytest.raises(ValueError, match="unknown stage labels"):
        run_curriculum(stages, _encoder(), FEAT, order=["colourise"])
    with pytest.raises(ValueError, match="needs a probe_fn"):
        run_curriculum(stages, _encoder(), FEAT, order="probe")
    with pytest.raises(ValueError, match="must wrap the encoder"):
        bad = CurriculumStage("rotation", stages[0].data_loader, model_fn=lambda enc: RotationHead(_encoder(1), FEAT))
        run_stage(bad, _encoder(), FEAT)
    with pytest.raises(ValueError, match="max_tasks"):
        search_order(stages * 2, _encoder(), FEAT, lambda e: 0.0)
    with pytest.raises(ValueError, match="pred_patch_size"):
        run_stage(CurriculumStage("masked", stages[0].data_loader, model_fn=lambda e: RotationHead(e, FEAT)),
                  _encoder(), FEAT)
    with pytest.raises(ValueError, match="no default head"):
        run_stage(CurriculumStage("masked", stages[0].data_loader), _encoder(), FEAT)


def test_progress_hook_and_ramp(cxr_items):
    ramp = linear_ramp(0.6, 0.08, ramp_fraction=0.5)
    assert ramp(0.0) == pytest.approx(0.6) and ramp(0.25) == pytest.approx(0.34) and ramp(0.9) == pytest.approx(0.08)
    seen = []
    stage = CurriculumStage("rotation", _stages(cxr_items)[0].data_loader, epochs=2, on_progress=seen.append,
                            trainer_fn=PretextTrainer, schedule=False)
    run_stage(stage, _encoder(), FEAT)
    assert seen == [0.0, 0.25, 0.5, 0.75]


def test_masked_stage_after_rotation_on_convnext(cxr_items):
    from monai_ssl.networks.nets import ConvNeXt, ConvNeXtMAE

    depths, dims = (1, 1, 1, 1), (8, 8, 8, 8)
    torch.manual_seed(0)
    encoder = ConvNeXt(2, 1, num_classes=0, depths=depths, dims=dims)  # forward -> pooled (B, 8)

    def mae(enc: nn.Module) -> nn.Module:
        model = ConvNeXtMAE(2, 1, depths=depths, dims=dims, decoder_dim=8)
        model.encoder = enc  # the curriculum's backbone, reconstructed through a fresh decoder
        return model

    big = Resized("image", (64, 64))
    stages = [
        CurriculumStage("rotation", _loader(cxr_items, Compose([big, RandRotationPretextd("image")]))),
        CurriculumStage("masked", _loader(cxr_items, big), model_fn=mae),
    ]
    before = encoder.stages[0][0].dwconv.weight.detach().clone()
    out = run_curriculum(stages, encoder, 8)
    assert [s["task"] for s in out["stages"]] == ["rotation", "masked"]
    assert all(math.isfinite(s["epoch_losses"][0]) for s in out["stages"])
    assert not torch.equal(before, encoder.stages[0][0].dwconv.weight)
