"""Tests of the reconstruction-grid handler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_ssl.handlers import ReconstructionImageHandler, reconstruction_grid
from monai_ssl.networks.patching import patchify


class _Writer:
    def __init__(self):
        self.calls = []

    def add_image(self, tag, img, step, dataformats="CHW"):
        self.calls.append((tag, np.asarray(img).shape, step, dataformats))


def test_grid_content_2d():
    image = torch.rand(3, 1, 8, 12)
    target = patchify(image, 4)
    mask = torch.zeros(3, 6)
    mask[:, ::2] = 1
    grid = reconstruction_grid(image, target, mask, 4, max_images=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 10, 4 * 14, 3)
    tiles = grid.reshape(2, 10, 4, 14, 3)[:, 1:-1, :, 1:-1, 0].astype(float)  # (row, H, col, W)
    # perfect prediction: reconstruction == pasted == input; the masked panel differs on masked patches
    assert np.abs(tiles[:, :, 2] - tiles[:, :, 0]).max() <= 1
    assert np.abs(tiles[:, :, 3] - tiles[:, :, 0]).max() <= 1
    assert np.abs(tiles[:, :, 1] - tiles[:, :, 0]).max() > 10
    assert np.array_equal(tiles[:, 4:, 1, :4], tiles[:, 4:, 0, :4])  # patch 3 (row 1, col 0) is visible


def test_grid_norm_pix_and_3d_rgb():
    image = torch.rand(2, 3, 8, 8, 4)
    target = patchify(image, (4, 4, 2))
    normed = (target - target.mean(-1, keepdim=True)) / (target.std(-1, keepdim=True, unbiased=False) + 1e-6)
    mask = torch.ones(2, 8)
    plain = reconstruction_grid(image, target, mask, (4, 4, 2))
    denorm = reconstruction_grid(image, normed, mask, (4, 4, 2), norm_pix_loss=True)
    assert plain.shape == (2 * 10, 4 * 10, 3)
    assert np.abs(plain.astype(int) - denorm.astype(int)).max() <= 1


def test_handler_png_and_tensorboard(tmp_path):
    image = torch.rand(4, 1, 8, 8)
    writer = _Writer()

    def step(engine, batch):
        return {"pred": patchify(batch["image"], 4), "mask": torch.ones(4, 4), "loss": torch.tensor(0.0)}

    engine = Engine(step)
    engine.network = type("Net", (), {"pred_patch_size": (4, 4)})()
    handler = ReconstructionImageHandler(tmp_path / "png", summary_writer=writer, every_n_epochs=2, max_images=3)
    handler.attach(engine)
    engine.run([{"image": image}], max_epochs=4)
    names = [p.split("/")[-1] for p in handler.written]
    assert names == ["reconstruction_epoch0002.png", "reconstruction_epoch0004.png"]
    assert (tmp_path / "png" / "reconstruction_epoch0004.png").stat().st_size > 0
    assert [(c[0], c[2]) for c in writer.calls] == [("reconstruction", 2), ("reconstruction", 4)]
    assert writer.calls[0][1] == (30, 40, 3)


def test_handler_errors():
    with pytest.raises(ValueError, match="output_dir"):
        ReconstructionImageHandler()
    engine = Engine(lambda e, b: {"loss": torch.tensor(0.0)})
    ReconstructionImageHandler(summary_writer=_Writer(), patch_size=4).attach(engine)
    with pytest.raises(KeyError, match="'pred'"):
        engine.run([{"image": torch.rand(1, 1, 8, 8)}], max_epochs=1)
