"""bundles/mae_pretrain: one tiny mixed-modality epoch via the monai.bundle API and CLI, exported encoders that load
into SwinUNETR / ViT / ConvNeXt, network and masking switches, datalist input, config typos and missing paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from .conftest import (
    REPO,
    TINY_CONVNEXT,
    TINY_MAE,
    TINY_VIT,
    cli_args,
    config_files,
    error_chain,
    make_workflow,
    run_cli,
    run_workflow,
)


def _encoder_fully_loaded(model: torch.nn.Module, state: dict, prefix: str = "") -> None:
    """Every exported tensor lands in ``model`` and every encoder tensor of ``model`` (under ``prefix``) is covered."""
    from monai_ssl.networks.weights import load_mapped_state_dict

    report = load_mapped_state_dict(model, state)
    assert report.loaded_fraction == 1.0, report.summary()
    # MONAI's TransformerBlock always holds norm_cross_attn, unused without cross-attention: not encoder weights
    target = [k for k in model.state_dict() if k.startswith(prefix) and "cross_attn" not in k] if prefix else None
    if target is not None:
        missing = [k for k in target if k not in state]
        assert not missing, missing[:5]
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_api_one_tiny_epoch_mixed_modalities(mae_run):
    wf, out = mae_run
    assert wf.check_properties() == []
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == TINY_MAE["epoch_length"]
    assert math.isfinite(float(trainer.state.output["loss"]))
    ds = wf.parser.get_parsed_content("train#dataset")
    assert set(ds.modalities) == {"xray", "us"}
    sampler = wf.parser.get_parsed_content("train#sampler")
    assert sampler.epoch == 1  # set_epoch(epoch) called by the config: the draw depends only on (seed, epoch)
    assert len(list(iter(sampler))) == TINY_MAE["epoch_length"] * TINY_MAE["batch_size"]
    item = ds[ds.modality_range("us")[0]]
    assert item["image"].shape == (1, TINY_MAE["image_size"], TINY_MAE["image_size"]) and item["modality"] == "us"
    assert (out / "reconstructions" / "reconstruction_epoch0001.png").is_file()
    assert (out / "checkpoints" / f"checkpoint_{TINY_MAE['epoch_length']}.pt").is_file()


def test_swin_export_loads_into_swinunetr(mae_run):
    from monai.networks.nets import SwinUNETR

    from monai_ssl.networks import load_pretrained

    wf, out = mae_run
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert state and all(k.startswith("swinViT.") for k in state)
    net = wf.parser.get_parsed_content("network_def")
    seg = SwinUNETR(in_channels=1, out_channels=2, feature_size=net.feature_size, spatial_dims=2,
                    patch_size=net.patch_size[0])
    _encoder_fully_loaded(seg, state, prefix="swinViT.")
    # the project's loader takes the exported file as a plain state dict
    report = load_pretrained(SwinUNETR(in_channels=1, out_channels=2, feature_size=net.feature_size, spatial_dims=2,
                                       patch_size=net.patch_size[0]), out / "encoder.pt", kind="state_dict")
    assert report.loaded_fraction == 1.0
    assert json.loads((out / "encoder.pt.json").read_text())["network_name"] == "swin"


def test_default_swin_export_feeds_the_segmentation_bundle(mae_run, tmp_path):
    """mae_pretrain's default Swin-MAE -> segmentation's default SwinUNETR, by overriding only pretrained_ckpt."""
    _, out = mae_run
    seg = {"roi_size": 64, "batch_size": 2, "max_epochs": 1, "epoch_length": 1, "data_limit": 2, "val_interval": 1,
           "progress_bar": False}
    wf = run_workflow("segmentation", output_dir=str(tmp_path), pretrained_ckpt=str(out / "encoder.pt"), **seg)
    network = wf.parser.get_parsed_content("network")
    exported = torch.load(out / "encoder.pt", weights_only=True)
    # the trainer ran one step from the MAE weights: patch embedding moved by at most one small AdamW step
    moved = (network.swinViT.patch_embed.proj.weight.detach() - exported["swinViT.patch_embed.proj.weight"]).abs()
    assert float(moved.max()) < 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit", "convnext"])
def test_vit_and_convnext_exports_load_downstream(tmp_path, name):
    overrides = {**TINY_MAE, **(TINY_VIT if name == "vit" else TINY_CONVNEXT), "data_limit": 8,
                 "network_name": name, "mask_mode": "entropy"}
    wf = run_workflow("mae_pretrain", output_dir=str(tmp_path), **overrides)
    net = wf.parser.get_parsed_content("network_def")
    assert net.mask_mode == "entropy"
    state = torch.load(tmp_path / "encoder.pt", weights_only=True)
    if name == "vit":
        from monai.networks.nets import ViT

        vit = ViT(in_channels=1, img_size=TINY_MAE["image_size"], patch_size=8, hidden_size=32, mlp_dim=64,
                  num_layers=2, num_heads=2, spatial_dims=2, qkv_bias=True, classification=False)
        _encoder_fully_loaded(vit, state, prefix="blocks.")
    else:
        from monai_ssl.networks.nets import ConvNeXt

        cnx = ConvNeXt(2, 1, num_classes=2, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))
        _encoder_fully_loaded(cnx, state, prefix="stages.")


def test_network_switch_and_unknown_choice():
    wf = make_workflow("mae_pretrain", network_name="convnext", **TINY_CONVNEXT)
    wf.initialize()
    net = wf.parser.get_parsed_content("network_def")
    assert type(net).__name__ == "ConvNeXtMAE" and net.masking_ratio == 0.6
    assert wf.parser.get_parsed_content("norm_pix_loss") is True
    wf = make_workflow("mae_pretrain", network_name="resnet")
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("network_def")
    msgs = [str(e) for e in error_chain(err.value)]
    assert any("config key 'network_name'" in m and "'resnet'" in m and "swin" in m for m in msgs)


def test_typo_and_missing_dataset_dir(tmp_path):
    from monai_ssl.bundle import BundleConfigError

    wf = make_workflow("mae_pretrain", network_nam="vit")
    with pytest.raises(RuntimeError) as err:
        wf.initialize()
    found = [e for e in error_chain(err.value) if isinstance(e, BundleConfigError)]
    assert found and "'network_nam' (did you mean 'network_name'?)" in str(found[0])
    wf = make_workflow("mae_pretrain", dataset_dir=str(tmp_path), **TINY_MAE)
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("train#sources")
    msgs = [str(e) for e in error_chain(err.value)]
    assert any("config key 'dataset_dir'" in m and "pneumoniamnist.npz" in m for m in msgs)


def test_csv_datalist_with_modalities(tmp_path):
    """A user datalist (PNG files, modality column) replaces the shipped data."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = ["image,modality"]
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40 + i, 48), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
        rows.append(f"img{i}.png,{'us' if i % 2 else 'xray'}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    wf = make_workflow("mae_pretrain", datalist=str(tmp_path / "list.csv"), output_dir=str(tmp_path / "out"),
                       **{**TINY_MAE, "image_size": 64})
    wf.initialize()
    ds = wf.parser.get_parsed_content("train#dataset")
    assert ds.sizes == {"xray": 3, "us": 3}
    assert ds[0]["image"].shape == (1, 64, 64)
    wf = make_workflow("mae_pretrain", datalist=str(tmp_path / "list.csv"), modalities=["xray", "ct"])
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("train#sources")
    assert any("'ct'" in str(e) and "datalist" in str(e) for e in error_chain(err.value))


def test_cli_run_from_repo_root(tmp_path):
    """``python -m monai.bundle run --config_file bundles/mae_pretrain/configs/train.yaml`` from the repo root."""
    out = tmp_path / "out"
    args = ["run", "--config_file", "bundles/mae_pretrain/configs/train.yaml", "--output_dir", str(out),
            *cli_args({**TINY_MAE, "mask_mode": "entropy", "weighting": "balanced"})]
    proc = run_cli(args, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert all(k.startswith("swinViT.") for k in state)
    info = json.loads((out / "encoder.pt.json").read_text())
    assert info["mask_mode"] == "entropy"


@pytest.mark.slow
def test_cli_missing_dataset_dir_error_is_clear(tmp_path):
    proc = run_cli(["run", "--config_file", config_files("mae_pretrain")[0], "--dataset_dir", str(tmp_path / "x")],
                   cwd=REPO)
    assert proc.returncode != 0
    assert f"config key 'dataset_dir': directory not found: {tmp_path / 'x'}" in proc.stderr


@pytest.mark.parametrize("rank", [0, 1])
def test_multi_gpu_config_per_rank(tmp_path, monkeypatch, rank):
    """multi_gpu.yaml as rank ``rank`` sees it (in one process: a one-process gloo group, ``get_rank`` patched):
    DDP network, sampler and augmentation seeds offset by the rank, file-writing handlers on rank 0 only."""
    import torch.distributed as dist

    from monai_ssl.handlers import EncoderExportHandler
    from monai_ssl.handlers import ReconstructionImageHandler

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        monkeypatch.setattr(dist, "get_rank", lambda *a, **k: rank)
        wf = make_workflow("mae_pretrain", "train", "multi_gpu", output_dir=str(tmp_path / "out"),
                           **{**TINY_MAE, "data_limit": 4})
        wf.initialize()
        assert isinstance(wf.parser.get_parsed_content("network"), torch.nn.parallel.DistributedDataParallel)
        sampler = wf.parser.get_parsed_content("train#sampler")
        assert sampler.seed == wf.parser["seed"] + 104729 * rank
        first = list(iter(sampler))
        assert len(first) == TINY_MAE["epoch_length"] * TINY_MAE["batch_size"]  # per process
        handlers = [type(h) for h in wf.parser.get_parsed_content("train#handlers_by_name").values()]
        writers = {ReconstructionImageHandler, EncoderExportHandler}
        assert writers <= set(handlers) if rank == 0 else not writers & set(handlers)
        assert len(handlers) == (6 if rank == 0 else 3)
        wf.finalize()  # destroys the process group
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.dist
@pytest.mark.timeout(300)
def test_two_gloo_ranks_forked(tmp_path):
    """multi_gpu.yaml on 2 forked gloo ranks (the default-suite form of the torchrun test): DDP-wrapped Swin-MAE,
    rank-seeded samplers drawing differently, equal weights after the all-reduced steps, rank-0-only checkpoint,
    export and TensorBoard log."""
    from .conftest import assert_ranks_agree, run_forked_ranks

    out = tmp_path / "out"
    ranks = run_forked_ranks("mae_pretrain", {**TINY_MAE, "image_every_n_epochs": 1}, out, tmp_path / "ranks")
    assert_ranks_agree(ranks, TINY_MAE["epoch_length"], disjoint=False)  # a weighted sampler per rank, not shards
    ckpt = torch.load(out / "checkpoints" / f"checkpoint_{TINY_MAE['epoch_length']}.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in ckpt["network"]), "DDP wrapper leaked into the checkpoint"
    encoder = torch.load(out / "encoder.pt", weights_only=True)
    assert encoder and all(k.startswith("swinViT.") for k in encoder)
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == ["reconstruction_epoch0001.png"]
    assert len(list((out / "logs").glob("events.out.tfevents.*"))) == 1  # one writer, not one per process


@pytest.mark.dist
@pytest.mark.slow  # ~1 min on an idle 2-core box, 3+ min when it is shared
@pytest.mark.timeout(600)
def test_torchrun_two_processes_gloo(tmp_path):
    """multi_gpu.yaml under ``torchrun --nproc_per_node 2`` on CPU (gloo): DDP-wrapped Swin-MAE, a rank-seeded
    mixed-modality sampler per process, and rank-0-only checkpoint, encoder export, reconstructions and TensorBoard."""
    from .conftest import run_torchrun

    out = tmp_path / "out"
    run_torchrun("mae_pretrain", {**TINY_MAE, "image_every_n_epochs": 1}, out, port=29547)
    ckpt = torch.load(out / "checkpoints" / f"checkpoint_{TINY_MAE['epoch_length']}.pt", weights_only=True)
    assert ckpt["trainer"]["iteration"] == TINY_MAE["epoch_length"]
    assert not any(k.startswith("module.") for k in ckpt["network"]), "DDP wrapper leaked into the checkpoint"
    encoder = torch.load(out / "encoder.pt", weights_only=True)
    assert encoder and all(k.startswith("swinViT.") for k in encoder)
    from monai_ssl.networks.nets import swin_mae_to_swinunetr

    mapped = swin_mae_to_swinunetr(ckpt["network"], prefix="swinViT.")
    assert all(torch.equal(encoder[k], mapped[k]) for k in encoder)  # the export is the trained (rank-0) weights
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == ["reconstruction_epoch0001.png"]
    assert len(list((out / "logs").glob("events.out.tfevents.*"))) == 1  # one writer, not one per process
