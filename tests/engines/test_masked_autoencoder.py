"""Tests of MaskedAutoencoderTrainer on a tiny ViT-MAE."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset, MetaTensor

from monai_ssl.engines import MaskedAutoencoderTrainer
from monai_ssl.losses import MaskedReconstructionLoss
from monai_ssl.networks.nets import MaskedAutoencoderViT
from monai_ssl.utils import SSLKeys


def _setup(spatial=(16, 24), amp=False, amp_dtype=torch.bfloat16, epochs=3, meta=False, seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(1)
    base = torch.linspace(0, 1, spatial[-1]).expand(*spatial)
    data = []
    for _ in range(16):
        img = (base * torch.rand(1, generator=g) + 0.1 * torch.rand(1, *spatial, generator=g)).clamp(0, 1)
        data.append({"image": MetaTensor(img) if meta else img, "patient_id": "x"})
    loader = DataLoader(Dataset(data), batch_size=8, shuffle=False, num_workers=0)
    dims = len(spatial)
    net = MaskedAutoencoderViT(1, spatial, 8, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4,
                               decoder_hidden_size=32, decoder_mlp_dim=64, decoder_num_layers=1, decoder_num_heads=4,
                               spatial_dims=dims, qkv_bias=True)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    trainer = MaskedAutoencoderTrainer(
        device="cpu", max_epochs=epochs, train_data_loader=loader, network=net, optimizer=opt,
        loss_function=MaskedReconstructionLoss(net.pred_patch_size, spatial_dims=dims), amp=amp, amp_dtype=amp_dtype,
    )
    return trainer, net


def test_trains_and_outputs():
    trainer, net = _setup(epochs=8, meta=True)
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED,
                              lambda e: losses.append(e.state.output[SSLKeys.LOSS.value].item()))
    trainer.run()
    out = trainer.state.output
    assert out[SSLKeys.PRED.value].shape == (8, net.num_patches, 64)
    assert torch.equal(out[SSLKeys.MASK.value].sum(1), torch.full((8,), float(round(0.75 * net.num_patches))))
    assert not out[SSLKeys.PRED.value].requires_grad
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:2]) / 2  # the reconstruction loss goes down


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_amp_3d(dtype):
    trainer, net = _setup(spatial=(8, 8, 16), amp=True, amp_dtype=dtype, epochs=1)
    trainer.run()
    assert torch.isfinite(trainer.state.output[SSLKeys.LOSS.value])
    assert trainer.state.output[SSLKeys.PRED.value].dtype == dtype


def test_missing_key():
    trainer, _ = _setup(epochs=1)
    trainer.image_key = "ct"
    with pytest.raises(KeyError, match="'ct'"):
        trainer.run()
