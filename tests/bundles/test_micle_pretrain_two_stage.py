"""bundles/micle_pretrain: two-stage pretraining (Azizi et al., ICCV 2021): the encoder starts from a third-party
checkpoint (``--pretrained_ckpt`` + ``--pretrained_kind``) before the contrastive stage."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Events

from tests.networks.pretrained_fixtures import load_fixture, source_checkpoint

from .conftest import TINY_MICLE, error_chain, make_workflow


@pytest.fixture(scope="module")
def torchvision_resnet18(tmp_path_factory):
    """A torchvision ResNet-18 checkpoint with the fixture's weights (the ImageNet file's layout, 1000-class fc)."""
    path = tmp_path_factory.mktemp("tv") / "resnet18-f37072fd.pth"
    torch.save(source_checkpoint(load_fixture("torchvision_resnet18")), path)
    return path


def test_encoder_starts_from_the_checkpoint_and_the_report_is_logged(torchvision_resnet18, tmp_path, caplog):
    from monai.networks.nets import resnet18

    from monai_ssl.networks import load_pretrained

    # the reference: the same kind loaded into a bare encoder of the bundle's architecture (1 channel: summed stem)
    expected = resnet18(spatial_dims=2, n_input_channels=1, feed_forward=False, conv1_t_stride=2)
    load_pretrained(expected, torchvision_resnet18, kind="torchvision_resnet", verbose=False)
    expected = {k: v.clone() for k, v in expected.state_dict().items()}

    wf = make_workflow("micle_pretrain", output_dir=str(tmp_path), pretrained_ckpt=str(torchvision_resnet18),
                       pretrained_kind="torchvision_resnet", **TINY_MICLE)
    with caplog.at_level(logging.INFO, logger="monai_ssl"):
        wf.initialize()
    assert "loading weights into ResNet" in caplog.text and "fc.weight" in caplog.text  # the report, fc unused
    trainer = wf.parser.get_parsed_content("train#trainer")
    seen = {}

    @trainer.on(Events.ITERATION_STARTED(once=1))
    def _first_iteration(engine):
        seen.update({k: v.detach().clone() for k, v in wf.parser.get_parsed_content("encoder").state_dict().items()})

    wf.run()
    assert set(seen) == set(expected)
    for key, value in expected.items():
        assert torch.equal(seen[key], value), key  # iteration 0: exactly the loaded weights
    trained = wf.parser.get_parsed_content("encoder").state_dict()
    assert not torch.equal(trained["conv1.weight"], expected["conv1.weight"])  # then SSL trains them


def test_wrong_kind_names_the_unmatched_tensors(torchvision_resnet18, tmp_path):
    wf = make_workflow("micle_pretrain", output_dir=str(tmp_path), pretrained_ckpt=str(torchvision_resnet18),
                       pretrained_kind="timm_convnext", **TINY_MICLE)
    with pytest.raises(Exception) as err:
        wf.initialize()
    text = " ".join(str(e) for e in error_chain(err.value))
    assert "timm_convnext" in text or "layer1" in text


def test_missing_checkpoint_names_the_key(tmp_path):
    wf = make_workflow("micle_pretrain", output_dir=str(tmp_path), pretrained_ckpt=str(tmp_path / "none.pth"),
                       **TINY_MICLE)
    with pytest.raises(Exception) as err:
        wf.initialize()
    assert any("pretrained_ckpt" in str(e) for e in error_chain(err.value))
