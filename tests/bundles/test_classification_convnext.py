"""bundles/classification with ``network_name convnext``: Florindo & Moura's two members (an ImageNet ConvNeXt and
a ConvNeXt-MAE encoder) fine-tuned through the bundle by overrides, then ensembled by ``evaluate.yaml`` (the
commands of docs/README.md, on a tiny ConvNeXt for one tiny epoch)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from tests.networks.pretrained_fixtures import load_fixture, source_checkpoint

from .conftest import error_chain, make_workflow, run_workflow

NAME = "classification"
# the timm_convnext_mini fixture's architecture (depths 2-2-2-2, widths 16-32-64-128), 32-px images
CONVNEXT = {"network_name": "convnext", "networks#convnext#depths": [2, 2, 2, 2],
            "networks#convnext#dims": [16, 32, 64, 128]}
TINY = {"image_size": 32, "batch_size": 4, "max_epochs": 1, "epoch_length": 2, "data_limit": 8, "progress_bar": False,
        **CONVNEXT}


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Train the two members: (A) from a timm ImageNet-layout checkpoint, (B) from a ConvNeXt-MAE state dict."""
    from monai_ssl.networks.nets import ConvNeXtMAE

    root = tmp_path_factory.mktemp("fm")
    imagenet = root / "convnext_mini.pth"
    torch.save(source_checkpoint(load_fixture("timm_convnext_mini")), imagenet)
    torch.manual_seed(0)
    mae = ConvNeXtMAE(2, 1, depths=(2, 2, 2, 2), dims=(16, 32, 64, 128), decoder_dim=32)
    mae_path = root / "mae.pt"
    torch.save(mae.state_dict(), mae_path)
    runs = {}
    for name, ckpt, kind in (("imagenet", imagenet, "timm_convnext"), ("mae", mae_path, "convnext_mae")):
        out = root / name
        wf = make_workflow(NAME, output_dir=str(out), pretrained_ckpt=str(ckpt), pretrained_kind=kind, **TINY)
        wf.initialize()
        loaded = {k: v.detach().clone() for k, v in wf.parser.get_parsed_content("network").state_dict().items()}
        wf.run()
        wf.finalize()
        runs[name] = {"out": out, "ckpt": ckpt, "loaded": loaded, "wf": wf}
    return runs


def test_members_start_from_their_checkpoints(members):
    from monai_ssl.networks import load_pretrained
    from monai_ssl.networks.nets import ConvNeXt

    for name, kind in (("imagenet", "timm_convnext"), ("mae", "convnext_mae")):
        ref = ConvNeXt(2, 1, num_classes=2, depths=(2, 2, 2, 2), dims=(16, 32, 64, 128))
        load_pretrained(ref, members[name]["ckpt"], kind=kind, verbose=False)
        loaded = members[name]["loaded"]
        for key, value in ref.state_dict().items():
            if not key.startswith("head."):
                assert torch.equal(loaded[key], value), (name, key)
        assert (members[name]["out"] / "model.pt").is_file()
    # the ImageNet stem (RGB summed to the 1-channel input) differs from the MAE member's
    a, b = members["imagenet"]["loaded"], members["mae"]["loaded"]
    assert a["downsample_layers.0.0.weight"].shape == (16, 1, 4, 4)
    assert not torch.equal(a["downsample_layers.0.0.weight"], b["downsample_layers.0.0.weight"])


def test_evaluate_ensemble_averages_the_two_members(members, tmp_path):
    ckpts = [str(members[n]["out"] / "model.pt") for n in ("imagenet", "mae")]
    probs = []
    for i, ckpt in enumerate(ckpts):  # each member alone
        run_workflow(NAME, "train", "evaluate", output_dir=str(tmp_path / f"m{i}"), ckpt_path=ckpt, n_boot=20,
                     **TINY)
        probs.append(_probs(tmp_path / f"m{i}" / "eval" / "predictions_test.csv"))
    wf = run_workflow(NAME, "train", "evaluate", output_dir=str(tmp_path / "ens"), ensemble=True,
                      ensemble_ckpts=ckpts, n_boot=20, **TINY)
    ens = _probs(tmp_path / "ens" / "eval" / "predictions_test.csv")
    np.testing.assert_allclose(ens, (probs[0] + probs[1]) / 2, atol=1e-5)  # probability averaging
    assert not np.allclose(probs[0], probs[1])
    metrics = json.loads((tmp_path / "ens" / "eval" / "metrics_test.json").read_text())
    assert len(metrics["member_metrics"]) == 2 and 0.0 <= metrics["report"]["auc"]["value"] <= 1.0
    assert len(wf.parser.get_parsed_content("evaluate#networks")) == 2


def test_linear_probe_trains_the_convnext_head_only(members, tmp_path):
    wf = make_workflow(NAME, output_dir=str(tmp_path), mode="linear_probe", pretrained_kind="timm_convnext",
                       pretrained_ckpt=str(members["imagenet"]["ckpt"]), **TINY)
    wf.initialize()
    net = wf.parser.get_parsed_content("network")
    trainable = {k for k, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"}


def test_wrong_network_name_lists_the_choices(tmp_path):
    wf = make_workflow(NAME, output_dir=str(tmp_path), **{**TINY, "network_name": "convnet"})
    with pytest.raises(Exception) as err:
        wf.initialize()
        wf.parser.get_parsed_content("network")
    text = " ".join(str(e) for e in error_chain(err.value))
    assert "network_name" in text and "convnext" in text and "resnet18" in text


def _probs(path) -> np.ndarray:
    with open(path, newline="") as f:
        return np.array([float(r["prob_positive"]) for r in csv.DictReader(f)])


def test_readme_ensemble_commands_use_known_keys():
    """Every override of the README's Florindo & Moura commands is a key of the config it is passed to."""
    import re

    from monai.bundle import ConfigParser

    from .conftest import BUNDLES, config_files

    text = (BUNDLES / NAME / "docs" / "README.md").read_text()
    block = text.split("### ConvNeXt, and the two-member ensemble")[1].split("```bash")[1].split("```")[0]
    commands = [c for c in block.replace("\\\n", " ").splitlines() if c.startswith("python -m monai.bundle run")]
    assert len(commands) == 4
    for command in commands:
        bundle = re.search(r"bundles/(\w+)/configs", command)[1]
        parser = ConfigParser()
        parser.read_config(config_files(bundle, *(["train", "evaluate"] if "evaluate.yaml" in command else [])))
        keys = re.findall(r"--(\w[\w#]*)", command)
        assert "network_name" in keys
        for key in keys:
            if key != "config_file":
                assert key in parser, (bundle, key)
