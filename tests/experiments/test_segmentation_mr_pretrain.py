"""``experiments/segmentation_mr.py`` pretrains its Swin-MAE through the ``mae_pretrain`` bundle; the weights are
bit-identical to the experiment's earlier hand-wired trainer (same seed, crops, network, optimiser and schedule).
Synthetic slices: the ch2/AAL templates are not needed for this check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


def _experiment():
    spec = importlib.util.spec_from_file_location("segmentation_mr", REPO / "experiments" / "segmentation_mr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hand_wired(exp, images: torch.Tensor, args) -> tuple[dict, list[float]]:
    """The experiment's Swin-MAE pretraining as it was wired before it ran the bundle (the reference)."""
    from monai_ssl.engines import MaskedAutoencoderTrainer
    from monai_ssl.losses import MaskedReconstructionLoss
    from monai_ssl.networks.masking import RandomMasking
    from monai_ssl.networks.nets import SwinMAE

    torch.manual_seed(args.seed)
    net = SwinMAE(spatial_dims=2, in_channels=1, masking=RandomMasking(0.75), mask_unit_size=16,
                  **exp.swin_config(args.feature_size))
    opt = torch.optim.AdamW(net.parameters(), lr=args.mae_lr, betas=(0.9, 0.95), weight_decay=0.05)
    loader = exp._loader([{"image": x} for x in images], args.batch_size, args.seed, crop=True)
    trainer = MaskedAutoencoderTrainer("cpu", 1, loader, net, opt,
                                       MaskedReconstructionLoss(net.pred_patch_size, spatial_dims=2),
                                       epoch_length=args.mae_steps)
    exp._schedule(trainer, opt, max(1, args.mae_steps // 10), args.mae_steps)
    losses: list[float] = []
    exp._record_loss(trainer, losses, is_list=False)
    trainer.run()
    return net.state_dict(), losses


def test_swin_mae_through_the_bundle_equals_the_hand_wired_trainer():
    exp = _experiment()
    images = torch.rand(6, 1, 96, 128, generator=torch.Generator().manual_seed(5))
    args = exp.parse_args(["--mae-steps", "3", "--batch-size", "2"])
    reference, ref_losses = _hand_wired(exp, images, args)
    state, losses = exp.pretrain_mae(images, args)
    assert sorted(state) == sorted(reference)
    changed = [k for k in reference if not torch.equal(state[k], reference[k])]
    assert not changed, f"{len(changed)} tensors differ, e.g. {changed[:3]}"
    assert losses == ref_losses and len(losses) == 3
