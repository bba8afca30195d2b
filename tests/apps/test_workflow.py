from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monai_ssl.apps import bundle_workflow, run_bundle

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def test_missing_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="evaluate.yaml"):
        bundle_workflow(BUNDLES / "micle_pretrain", ("train", "evaluate"))


def test_run_bundle_applies_overrides_and_restores_cudnn_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    seen = {}

    def before(wf):
        seen["epochs"] = wf.parser.get_parsed_content("train#trainer").state.max_epochs
        seen["deterministic"] = torch.backends.cudnn.deterministic  # set by the bundle's set_determinism

    wf = run_bundle(BUNDLES / "micle_pretrain", before_run=before, output_dir=str(tmp_path), image_size=32,
                    batch_size=4, max_epochs=1, epoch_length=1, data_limit=8, resume=False, progress_bar=False,
                    device=torch.device("cpu"))
    assert seen == {"epochs": 1, "deterministic": True}
    assert wf.parser.get_parsed_content("train#trainer").state.iteration == 1
    assert (tmp_path / "encoder.pt").is_file()
    assert torch.backends.cudnn.deterministic is False and torch.backends.cudnn.benchmark is True
