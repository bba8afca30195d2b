"""multi_gpu.yaml of every bundle: only rank 0 writes TensorBoard event files (issue 21 item 15: under torchrun
both ranks wrote them, two interleaved event files per run in one log_dir). The merged train + multi_gpu config is
parsed with a fake rank; only the TensorBoard handlers are built (no process group, data or network)."""

from __future__ import annotations

import pytest
import torch

from .conftest import config_files

BUNDLE_NAMES = ["classification", "segmentation", "micle_pretrain", "mae_pretrain"]


def _tensorboard_ids(parser) -> list[str]:
    ids = []
    for section in ("train", "validate"):
        handlers = parser.get(f"{section}#handlers_by_name", None) or {}
        assert isinstance(handlers, dict), (
            f"{section}#handlers_by_name must be named (a mapping), not addressed by position")
        ids += [f"{section}#handlers_by_name#{name}" for name, h in handlers.items()
                if isinstance(h, dict) and "TensorBoard" in str(h.get("_target_", ""))]
    return ids


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_only_rank_0_builds_tensorboard_handlers(bundle, tmp_path, monkeypatch):
    from monai.bundle import ConfigParser
    from monai.handlers import TensorBoardStatsHandler

    for rank in (1, 0):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None, r=rank: r)
        parser = ConfigParser()
        parser.read_config(config_files(bundle, "train", "multi_gpu"))
        parser["output_dir"] = str(tmp_path / f"rank{rank}")
        ids = _tensorboard_ids(parser)
        assert ids, f"{bundle}: no TensorBoard handler found in train/validate#handlers"
        built = {i: parser.get_parsed_content(i) for i in ids}
        if rank:
            assert all(h is None for h in built.values()), (
                f"{bundle}: rank 1 builds {sorted(i for i, h in built.items() if h is not None)}")
            assert not (tmp_path / "rank1").exists()  # no event file either
        else:
            assert all(isinstance(h, TensorBoardStatsHandler) for h in built.values())
