"""``experiments/label_efficiency.py`` pretrains SimCLR / MICLe through the ``micle_pretrain`` bundle and MAE through
``mae_pretrain``; the encoder it exports is bit-identical to the one the experiment's earlier hand-wired stage
produced (same seed, data, views, network, optimiser and schedule), so the committed results and ``make demo``
figures stand."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture(scope="module")
def le():
    if "label_efficiency" in sys.modules:
        return sys.modules["label_efficiency"]
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location("label_efficiency", EXPERIMENTS / "label_efficiency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["label_efficiency"] = module
    spec.loader.exec_module(module)
    return module


def _hand_wired_simclr(items: list[dict], args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """The experiment's SimCLR pretraining as it was wired before it ran the bundle (the reference)."""
    from monai.data import Dataset
    from monai.networks.nets import resnet18

    from monai_ssl.data import SeededDataLoader
    from monai_ssl.engines import CurriculumStage, run_stage
    from monai_ssl.losses import NTXentLoss
    from monai_ssl.optimizers import build_optimizer
    from monai_ssl.transforms import RandMultiViewd, cxr_augmentations

    seed = args.pretrain_seed
    torch.manual_seed(seed)
    encoder = resnet18(spatial_dims=2, n_input_channels=1, feed_forward=False, conv1_t_stride=args.stem_stride)
    views = RandMultiViewd("image", cxr_augmentations(args.size, crop_scale=tuple(args.crop_scale)), num_views=2,
                           delete_original=True)
    data = Dataset([{"image": d["image"]} for d in items], views)
    loader = SeededDataLoader(data, seed=seed, batch_size=min(args.pretrain_batch_size, len(data)), shuffle=True,
                              drop_last=True, num_workers=args.workers)
    stage = CurriculumStage(
        "contrastive", loader, epochs=1, loss_function=NTXentLoss(args.temperature),
        optimizer_fn=lambda m: build_optimizer(m, "adamw", lr=args.pretrain_lr, weight_decay=1e-6),
        trainer_kwargs={"epoch_length": args.pretrain_steps},
    )
    run_stage(stage, encoder, 512, args.device)
    return {k: v.detach().cpu() for k, v in encoder.state_dict().items()}


def test_simclr_through_the_bundle_equals_the_hand_wired_stage(le, tmp_path):
    args = le.parse_args(["--pretrain-steps", "2", "--pretrain-batch-size", "8", "--device", "cpu"])
    items = le.load_splits(args)["pretrain"][:16]
    reference = _hand_wired_simclr(items, args)
    run = le.pretrain_encoder("simclr", items, args, tmp_path / "simclr_encoder.pt")
    exported = torch.load(tmp_path / "simclr_encoder.pt", weights_only=True)
    assert sorted(exported) == sorted(reference)
    changed = [k for k in reference if not torch.equal(exported[k], reference[k])]
    assert not changed, f"{len(changed)} tensors differ, e.g. {changed[:3]}"
    assert run["iterations"] == 2 and torch.isfinite(torch.tensor(run["epoch_losses"])).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["simclr_encoder.pt", "simclr_encoder.pt.json"]  # no leftovers


def _hand_wired_mae(le, items: list[dict], args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """The experiment's MAE pretraining as it was wired before it ran the bundle (the reference)."""
    from monai.data import Dataset

    from monai_ssl.data import SeededDataLoader
    from monai_ssl.engines import CurriculumStage, run_stage
    from monai_ssl.networks.nets import MaskedAutoencoderViT
    from monai_ssl.networks.nets.mae import mae_vit_to_monai_vit
    from monai_ssl.optimizers import build_optimizer
    from monai_ssl.transforms import RandMultiViewd, mae_augmentations
    from monai_ssl.networks.masking import RandomMasking
    from monai_ssl.utils import SSLKeys, view_key

    seed = args.pretrain_seed
    torch.manual_seed(seed)
    mae = MaskedAutoencoderViT(1, args.size, le.vit_patch_size(args.size), spatial_dims=2,
                               masking=RandomMasking(le.MASKING_RATIO), **le.VIT, **le.MAE_DECODER)
    view = RandMultiViewd(SSLKeys.IMAGE.value, mae_augmentations(args.size, crop_scale=tuple(args.mae_crop_scale)),
                          num_views=1, delete_original=True)
    data = Dataset([{SSLKeys.IMAGE.value: d["image"]} for d in items], view)
    loader = SeededDataLoader(data, seed=seed, batch_size=min(args.pretrain_batch_size, len(data)), shuffle=True,
                              drop_last=True, num_workers=args.workers)
    stage = CurriculumStage(
        "masked", loader, epochs=1, model_fn=lambda m: m,
        optimizer_fn=lambda m: build_optimizer(m, "adamw", lr=args.pretrain_lr, weight_decay=0.05, betas=(0.9, 0.95)),
        trainer_kwargs={"epoch_length": args.pretrain_steps, "image_key": view_key(SSLKeys.IMAGE.value, 0)},
    )
    run_stage(stage, mae, le.VIT["hidden_size"], args.device)
    return {k: v.detach().cpu() for k, v in mae_vit_to_monai_vit(mae.state_dict()).items()}


def test_mae_through_the_bundle_equals_the_hand_wired_stage(le, tmp_path):
    args = le.parse_args(["--arch", "vit", "--pretrain-steps", "3", "--pretrain-batch-size", "8", "--device", "cpu"])
    items = le.load_splits(args)["pretrain"][:32]
    reference = _hand_wired_mae(le, items, args)
    run = le.pretrain_encoder("mae", items, args, tmp_path / "mae_encoder.pt")
    exported = torch.load(tmp_path / "mae_encoder.pt", weights_only=True)
    assert sorted(exported) == sorted(reference)
    changed = [k for k in reference if not torch.equal(exported[k], reference[k])]
    assert not changed, f"{len(changed)} tensors differ, e.g. {changed[:3]}"
    assert run["iterations"] == 3 and torch.isfinite(torch.tensor(run["epoch_losses"])).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mae_encoder.pt", "mae_encoder.pt.json"]  # no leftovers
