from __future__ import annotations

import torch
from ignite.engine import Events
from monai.transforms import EnsureType

from monai_ssl.data import MultiInstanceDataset, SeededDataLoader
from monai_ssl.engines import ContrastiveTrainer, DeviceViews, MaskedAutoencoderTrainer
from monai_ssl.optimizers import build_optimizer
from monai_ssl.losses import MaskedReconstructionLoss, NTXentLoss
from monai_ssl.networks import ContrastiveModel, ProjectionHead
from monai_ssl.networks.nets import MaskedAutoencoderViT
from monai_ssl.transforms import batched_cxr_augmentations, batched_mae_augmentations

from .helpers import tiny_encoder


def _contrastive(max_epochs: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(5)
    data = [{"image": torch.rand(1, 24, 24, generator=g), "patient_id": f"p{i // 2}"} for i in range(32)]
    ds = MultiInstanceDataset(data, EnsureType(track_meta=False), seed=seed)  # un-augmented source pairs
    loader = SeededDataLoader(ds, seed=seed, batch_size=8, shuffle=True)
    torch.manual_seed(seed)
    model = ContrastiveModel(tiny_encoder(), ProjectionHead(16, 32, 8))
    views = DeviceViews(batched_cxr_augmentations(16), keys=["image_view_0", "image_view_1"], seed=seed)
    trainer = ContrastiveTrainer(device="cpu", max_epochs=max_epochs, train_data_loader=loader, network=model,
                                 optimizer=build_optimizer(model, "adamw", lr=1e-2), loss_function=NTXentLoss(0.2),
                                 prepare_batch=views, amp=True, to_kwargs={"memory_format": torch.channels_last})
    return trainer, views


def test_contrastive_trainer_makes_views_on_device():
    trainer, views = _contrastive()
    seen = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.output["loss"]))
    trainer.run()
    assert trainer.state.iteration == 2 and all(torch.isfinite(x) for x in seen)
    assert views._engine() is trainer  # the trainer attached itself: draws follow its iteration


def test_views_depend_on_seed_rank_iteration_and_key_only():
    batch = {"image_view_0": torch.rand(4, 1, 24, 24), "image_view_1": torch.rand(4, 1, 24, 24), "id": ["a"] * 4}
    a = DeviceViews(batched_cxr_augmentations(16), keys=["image_view_0", "image_view_1"], seed=3)
    b = DeviceViews(batched_cxr_augmentations(16), keys=["image_view_0", "image_view_1"], seed=3)
    first = a(dict(batch), "cpu")
    assert first["image_view_0"].shape == (4, 1, 16, 16) and first["id"] == ["a"] * 4
    second = a(dict(batch), "cpu")  # next iteration: new draws
    assert not torch.equal(first["image_view_0"], second["image_view_0"])
    b.load_state_dict(a.state_dict())  # a resumed counter continues the stream
    torch.testing.assert_close(b(dict(batch), "cpu")["image_view_0"], a(dict(batch), "cpu")["image_view_0"])
    same = {"image_view_0": batch["image_view_0"], "image_view_1": batch["image_view_0"]}
    out = DeviceViews(batched_cxr_augmentations(16), keys=["image_view_0", "image_view_1"])(same, "cpu")
    assert not torch.equal(out["image_view_0"], out["image_view_1"])  # each key its own draw


def test_resumed_engine_draws_what_the_uninterrupted_run_drew():
    # the draws are a function of (seed, rank, engine iteration, key): a run resumed at iteration 3 (the checkpoint
    # restores engine.state.iteration) draws at iteration 3 what the uninterrupted run drew there
    full, _ = _contrastive(max_epochs=2)
    batch = next(iter(full.data_loader))
    drawn = {}
    for it in (2, 3):
        full.state.iteration = it
        drawn[it] = full.prepare_batch(batch, "cpu")["image_view_0"]
    resumed, views = _contrastive(max_epochs=2)
    resumed.state.iteration = 3
    again = views(batch, "cpu")["image_view_0"]
    torch.testing.assert_close(again, drawn[3])
    assert not torch.equal(drawn[2], drawn[3])
    assert again.is_contiguous(memory_format=torch.channels_last) or again.shape[1] == 1


def test_masked_autoencoder_trainer_with_device_views_and_num_views():
    net = MaskedAutoencoderViT(1, 16, 8, spatial_dims=2, hidden_size=32, mlp_dim=64, num_layers=1, num_heads=2,
                               decoder_hidden_size=32, decoder_mlp_dim=64, decoder_num_layers=1, decoder_num_heads=2)
    loss = MaskedReconstructionLoss(net.pred_patch_size, spatial_dims=2)
    data = [{"image": torch.rand(1, 24, 24)} for _ in range(8)]
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    trainer = MaskedAutoencoderTrainer("cpu", 1, loader, net, torch.optim.AdamW(net.parameters()), loss,
                                       prepare_batch=DeviceViews(batched_mae_augmentations(16), seed=1))
    trainer.run()
    assert trainer.state.output["pred"].shape[0] == 4 and torch.isfinite(trainer.state.output["loss"])
    two = DeviceViews(batched_mae_augmentations(16), num_views=2)({"image": torch.rand(2, 1, 24, 24)}, "cpu")
    assert set(two) == {"image_view_0", "image_view_1"} and two["image_view_0"].shape == (2, 1, 16, 16)


def test_requested_memory_format_is_the_one_applied():
    # a channels-last input asked for in contiguous format comes out contiguous (not forced to channels-last)
    images = torch.rand(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    copy = DeviceViews(lambda x, gen: x.clone(), keys="image", memory_format=torch.contiguous_format)
    assert copy({"image": images}, "cpu")["image"].is_contiguous()
    last = DeviceViews(lambda x, gen: x.clone(), keys="image", memory_format=torch.channels_last)
    assert last({"image": images.contiguous()}, "cpu")["image"].is_contiguous(memory_format=torch.channels_last)
    volume = DeviceViews(lambda x, gen: x.clone(), keys="image", memory_format=torch.channels_last)
    assert volume({"image": torch.rand(1, 2, 4, 4, 4)}, "cpu")["image"].is_contiguous(
        memory_format=torch.channels_last_3d)
