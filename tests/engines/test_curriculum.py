"""Curricular SSL stage runner (``run_stage``) on a handful of real COVID chest X-rays at 32 px."""

from __future__ import annotations

import math

import pytest
import torch

from monai_ssl.engines.curriculum import CurriculumStage, PretextTrainer, linear_ramp, run_stage
from monai_ssl.networks.blocks import RotationHead

from .curriculum_helpers import FEAT, encoder_of, loader_of, small_cxr_items, two_stages

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cxr_items(data_dir):
    return small_cxr_items(data_dir)


def test_stage_errors(cxr_items):
    stages = two_stages(cxr_items)
    with pytest.raises(ValueError, match="must wrap the encoder"):
        bad = CurriculumStage("rotation", stages[0].data_loader, model_fn=lambda enc: RotationHead(encoder_of(1), FEAT))
        run_stage(bad, encoder_of(), FEAT)
    with pytest.raises(ValueError, match="pred_patch_size"):
        run_stage(CurriculumStage("masked", stages[0].data_loader, model_fn=lambda e: RotationHead(e, FEAT)),
                  encoder_of(), FEAT)
    with pytest.raises(ValueError, match="no default head"):
        run_stage(CurriculumStage("masked", stages[0].data_loader), encoder_of(), FEAT)


def test_contrastive_stage_trainsencoder_of(cxr_items):
    from monai_ssl.transforms import RandMultiViewd, cxr_augmentations

    encoder = encoder_of()
    before = encoder.conv1.weight.detach().clone()
    stage = CurriculumStage(
        "contrastive",
        loader_of(cxr_items, RandMultiViewd("image", cxr_augmentations(32))),
        head_kwargs={"hidden_features": 16, "out_features": 8},
    )
    summary = run_stage(stage, encoder, FEAT)
    assert summary["iterations"] == 2 and math.isfinite(summary["epoch_losses"][0])
    assert not torch.equal(before, encoder.conv1.weight)


def test_progress_hook_and_ramp(cxr_items):
    ramp = linear_ramp(0.6, 0.08, ramp_fraction=0.5)
    assert ramp(0.0) == pytest.approx(0.6) and ramp(0.25) == pytest.approx(0.34) and ramp(0.9) == pytest.approx(0.08)
    seen = []
    stage = CurriculumStage("rotation", two_stages(cxr_items)[0].data_loader, epochs=2, on_progress=seen.append,
                            trainer_fn=PretextTrainer, schedule=False)
    run_stage(stage, encoder_of(), FEAT)
    assert seen == [0.0, 0.25, 0.5, 0.75]
