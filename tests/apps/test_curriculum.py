"""Curricular SSL orchestration (order by hand, probe ranking, exhaustive search) on a handful of real COVID chest
X-rays at 32 px."""

from __future__ import annotations

import math

import pytest
import torch
from monai.transforms import Compose, Resized
from torch import nn

from monai_ssl.apps.curriculum import rank_by_probe, run_curriculum, search_order
from monai_ssl.engines.curriculum import CurriculumStage
from monai_ssl.networks.blocks import JigsawHead, RotationHead
from monai_ssl.transforms.pretext import RandRotationPretextd

from ..engines.curriculum_helpers import FEAT, encoder_of, loader_of, probe_of, small_cxr_items, two_stages

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cxr_items(data_dir):
    return small_cxr_items(data_dir)


def test_two_stages_hand_over_weights(cxr_items, tmp_path):
    encoder = encoder_of()
    start = {k: v.clone() for k, v in encoder.state_dict().items()}
    built = []
    stages = two_stages(cxr_items)

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


def test_probe_ranking_orders_weakest_first(cxr_items):
    encoder = encoder_of()
    start = {k: v.clone() for k, v in encoder.state_dict().items()}
    ranking = rank_by_probe(two_stages(cxr_items), encoder, FEAT, probe_of(cxr_items), probe_epochs=1)
    assert sorted(name for name, _ in ranking) == ["jigsaw", "rotation"]
    assert ranking[0][1] <= ranking[1][1] and all(0.0 <= s <= 1.0 for _, s in ranking)
    for k, v in encoder.state_dict().items():  # ranking trains copies, never the encoder itself
        assert torch.equal(v, start[k])

    scores = iter([0.9, 0.2])  # rotation alone scores 0.9, jigsaw alone 0.2 -> jigsaw first
    result = run_curriculum(two_stages(cxr_items), encoder, FEAT, order="probe", probe_fn=lambda enc: next(scores))
    assert result["order"] == ["jigsaw", "rotation"]
    assert [s["task"] for s in result["stages"]] == ["jigsaw", "rotation"]
    assert result["probe"] == [("jigsaw", 0.2), ("rotation", 0.9)]


def test_search_and_explicit_order(cxr_items):
    scores = iter([0.3, 0.8])  # permutations in order: (rotation, jigsaw), (jigsaw, rotation)
    results = search_order(two_stages(cxr_items), encoder_of(), FEAT, lambda enc: next(scores))
    assert results[0] == (("jigsaw", "rotation"), 0.8)
    out = run_curriculum(two_stages(cxr_items), encoder_of(), FEAT, order=["jigsaw"])
    assert out["order"] == ["jigsaw"] and len(out["stages"]) == 1


def test_errors(cxr_items):
    stages = two_stages(cxr_items)
    with pytest.raises(ValueError, match="unknown stage labels"):
        run_curriculum(stages, encoder_of(), FEAT, order=["colourise"])
    with pytest.raises(ValueError, match="needs a probe_fn"):
        run_curriculum(stages, encoder_of(), FEAT, order="probe")
    with pytest.raises(ValueError, match="max_tasks"):
        search_order(stages * 2, encoder_of(), FEAT, lambda e: 0.0)


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
        CurriculumStage("rotation", loader_of(cxr_items, Compose([big, RandRotationPretextd("image")]))),
        CurriculumStage("masked", loader_of(cxr_items, big), model_fn=mae),
    ]
    before = encoder.stages[0][0].dwconv.weight.detach().clone()
    out = run_curriculum(stages, encoder, 8)
    assert [s["task"] for s in out["stages"]] == ["rotation", "masked"]
    assert all(math.isfinite(s["epoch_losses"][0]) for s in out["stages"])
    assert not torch.equal(before, encoder.stages[0][0].dwconv.weight)
