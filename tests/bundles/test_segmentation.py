"""bundles/segmentation: one tiny epoch via the monai.bundle API and CLI (from a copy of the bundle), the deterministic
slice split, Swin-MAE -> SwinUNETR and ViT-MAE -> UNETR initialisation, evaluation to JSON/CSV, NIfTI and DICOM
inference to NIfTI label maps, metadata, verify_net_in_out, TorchScript export, config typos and missing paths,
multi-process (gloo) run."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from .conftest import BUNDLES, REPO, assert_missing_paths_named, assert_typo_refused, cli_args, error_chain
from .conftest import make_workflow, run_cli, run_torchrun, run_workflow

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "segmentation"
CONFIGS = BUNDLES / NAME / "configs"
# a small SwinUNETR (64 px is the smallest ROI its instance-normed bottleneck takes) and one tiny epoch
TINY_SWIN = {"networks#swinunetr#feature_size": 12, "networks#swinunetr#num_heads": [1, 2, 2, 4]}
TINY = {"roi_size": 64, "batch_size": 4, "max_epochs": 1, "epoch_length": 2, "data_limit": 4, "val_interval": 1,
        "progress_bar": False,
        **TINY_SWIN}
SWIN_KW = {"feature_size": 12, "num_heads": (1, 2, 2, 4), "depths": (2, 2, 2, 2), "window_size": 7, "patch_size": 2}


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    """One tiny 2D SwinUNETR epoch from scratch through the Python API (shared by several tests)."""
    out = tmp_path_factory.mktemp("seg_run")
    wf = run_workflow(NAME, output_dir=str(out), **TINY)
    return wf, out


def _swinunetr():
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(in_channels=1, out_channels=3, spatial_dims=2, dropout_path_rate=0.1, **SWIN_KW)


def test_api_one_tiny_epoch_and_train_properties(seg_run):
    wf, out = seg_run
    assert wf.check_properties() == []
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 1 and trainer.state.iteration == TINY["epoch_length"]
    history = wf.parser.get_parsed_content("train#handlers_by_name#metriclogger")
    assert len(history.loss) == TINY["epoch_length"] and all(np.isfinite(v) for _, v in history.loss)
    (_, dice), = history.metrics["val_mean_dice"]
    assert 0.0 <= dice <= 1.0
    ckpt = torch.load(out / f"checkpoints/checkpoint_{TINY['epoch_length']}.pt", weights_only=True)
    assert {"trainer", "network", "optimizer", "lr_scheduler", "rng"} <= set(ckpt)
    best = torch.load(out / "model.pt", weights_only=True)
    net = _swinunetr()
    net.load_state_dict(best)  # a plain SwinUNETR state dict
    assert torch.equal(best["out.conv.conv.weight"], wf.parser.get_parsed_content("network_def").out.conv.conv.weight)


def test_block_split_and_datalists_are_deterministic_and_disjoint():
    from monai_ssl.data import block_split, segmentation_datalists

    parts = block_split(40, 4, gap=1)
    assert parts["val"] == [12, 13, 14, 15, 32, 33, 34, 35] and parts["test"] == [16, 17, 18, 19, 36, 37, 38, 39]
    assert 11 not in parts["train"] and 20 not in parts["train"] and 10 in parts["train"]  # one-slice gap
    with pytest.raises(ValueError, match="block_size"):
        block_split(10, 0)
    d2 = segmentation_datalists(REPO / "data", spatial_dims=2)
    z = {k: {d["z"] for d in v} for k, v in d2.items()}
    assert not (z["train"] & z["val"] or z["train"] & z["test"] or z["val"] & z["test"])
    assert len(d2["train"]) > 2 * len(d2["test"]) > 0
    assert [d["z"] for d in segmentation_datalists(REPO / "data", spatial_dims=2)["test"]] == sorted(z["test"])
    item = d2["test"][0]
    assert item["image"].shape == item["label"].shape == (1, 76, 94)
    assert 0 <= item["image"].min() < item["image"].max() <= 1
    assert set(torch.unique(item["label"]).tolist()) <= {0.0, 1.0, 2.0} and item["label"].max() > 0
    d3 = segmentation_datalists(REPO / "data", spatial_dims=3, block_size=16)
    assert all(d["image"].ndim == 4 and d["image"].shape[-1] > 1 for v in d3.values() for d in v)
    assert sum(d["image"].shape[-1] for d in d3["test"]) == len(block_split(79, 16)["test"])


def _dice_direct(net, items, roi, overlap):
    """Pooled per-class Dice computed here: sliding window + argmax + counts (independent of the bundle helper)."""
    from monai.inferers import sliding_window_inference

    inter, psum, ysum = np.zeros(3), np.zeros(3), np.zeros(3)
    with torch.no_grad():
        for d in items:
            p = sliding_window_inference(d["image"][None], roi, 4, net.eval(), overlap=overlap)[0].argmax(0)
            y = d["label"][0].long()
            for c in range(3):
                inter[c] += ((p == c) & (y == c)).sum().item()
                psum[c] += (p == c).sum().item()
                ysum[c] += (y == c).sum().item()
    return 2 * inter / (psum + ysum)


def test_evaluate_writes_per_class_dice(seg_run, tmp_path):
    wf0, out = seg_run
    wf = run_workflow(NAME, "train", "evaluate", output_dir=str(out), eval_dir=str(tmp_path), **TINY)
    res = wf.parser.get_parsed_content("evaluate#result")
    saved = json.loads((tmp_path / "metrics_test.json").read_text())
    assert set(saved["per_class"]) == {"grey_matter", "white_matter"} and saved["n_items"] == TINY["data_limit"]
    with open(tmp_path / "metrics_test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["grey_matter", "white_matter", "mean"]
    for v in res["per_class"].values():
        assert 0.0 <= v["dice_mean"] <= 1.0 and 0.0 <= v["dice_pooled"] <= 1.0
    net = _swinunetr()
    net.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    items = wf.parser.get_parsed_content("datalists")["test"]
    direct = _dice_direct(net, items, (64, 64), wf.parser.get_parsed_content("overlap"))
    np.testing.assert_allclose([res["per_class"][c]["dice_pooled"] for c in ("grey_matter", "white_matter")],
                               direct[1:], atol=1e-6)


def _tiny_swin_mae(path):
    from monai_ssl.networks.nets import SwinMAE

    torch.manual_seed(3)
    mae = SwinMAE(spatial_dims=2, in_channels=1, decoder_depths=(1, 1, 1, 1), **SWIN_KW)
    torch.save(mae.state_dict(), path)
    return mae.state_dict()


def test_pretrained_swin_mae_and_mae_pretrain_export_init_swinunetr(tmp_path):
    from monai_ssl.handlers import export_encoder
    from monai_ssl.networks.nets import SwinMAE

    state = _tiny_swin_mae(tmp_path / "swin_mae.pt")
    wf = make_workflow(NAME, output_dir=str(tmp_path / "out"), pretrained_ckpt=str(tmp_path / "swin_mae.pt"), **TINY)
    wf.initialize()
    net = wf.parser.get_parsed_content("network")
    assert torch.equal(net.swinViT.patch_embed.proj.weight, state["encoder.patch_embed.proj.weight"])
    assert wf.parser.get_parsed_content("network_def") is net  # the checkpointed module holds the loaded weights
    # what bundles/mae_pretrain writes (models/encoder.pt: swinViT.* keys) loads the same way
    mae = SwinMAE(spatial_dims=2, in_channels=1, decoder_depths=(1, 1, 1, 1), **SWIN_KW)
    mae.load_state_dict(state)
    export_encoder(mae, tmp_path / "encoder.pt", submodule=None, key_map="swin_mae_swinunetr")
    wf = make_workflow(NAME, output_dir=str(tmp_path / "out"), pretrained_ckpt=str(tmp_path / "encoder.pt"), **TINY)
    wf.initialize()
    net2 = wf.parser.get_parsed_content("network")
    assert all(torch.equal(a, b) for a, b in zip(net.swinViT.state_dict().values(), net2.swinViT.state_dict().values()))
    # a different feature size is refused, naming the key and the mismatch
    wf = make_workflow(NAME, output_dir=str(tmp_path / "out"), pretrained_ckpt=str(tmp_path / "encoder.pt"),
                       **{**TINY, "networks#swinunetr#feature_size": 24})
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("network")
    assert any("config key 'pretrained_ckpt'" in str(e) and "feature_size" in str(e) for e in error_chain(err.value))


def test_pretrained_vit_mae_inits_unetr(tmp_path):
    from monai_ssl.networks.nets import MaskedAutoencoderViT

    torch.manual_seed(4)
    mae = MaskedAutoencoderViT(in_channels=1, img_size=64, patch_size=16, hidden_size=32, mlp_dim=64, num_layers=12,
                               num_heads=2, decoder_hidden_size=32, decoder_mlp_dim=32, decoder_num_layers=1,
                               decoder_num_heads=2, spatial_dims=2, qkv_bias=True)
    torch.save({"network": mae.state_dict(), "epoch": 3}, tmp_path / "vit_mae.pt")  # a training-checkpoint container
    tiny_unetr = {"networks#unetr#hidden_size": 32, "networks#unetr#mlp_dim": 64, "networks#unetr#num_heads": 2,
                  "networks#unetr#feature_size": 8}
    wf = run_workflow(NAME, output_dir=str(tmp_path / "out"), arch="unetr",
                      pretrained_ckpt=str(tmp_path / "vit_mae.pt"), **{**TINY, "epoch_length": 1}, **tiny_unetr)
    net = wf.parser.get_parsed_content("network_def")
    assert type(net).__name__ == "UNETR"
    ckpt = torch.load(tmp_path / "out/checkpoints/checkpoint_1.pt", weights_only=True)["network"]
    # trained one step from the MAE encoder: close to it, not equal (AdamW moved it by about lr)
    diff = (ckpt["vit.blocks.0.attn.qkv.weight"] - mae.state_dict()["blocks.0.attn.qkv.weight"]).abs().max()
    assert 0 < diff < 0.01
    with pytest.raises(Exception) as err:  # a ViT-MAE checkpoint with arch=swinunetr
        wf = make_workflow(NAME, output_dir=str(tmp_path / "o2"), pretrained_ckpt=str(tmp_path / "vit_mae.pt"), **TINY)
        wf.initialize()
        wf.parser.get_parsed_content("network")
    assert any("arch='unetr'" in str(e) for e in error_chain(err.value))


def _mr_series(folder):
    """A 4-slice DICOM series made from pydicom's MR_small.dcm (new UIDs, positions 2 mm apart)."""
    import copy

    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder.mkdir()
    src = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    series = generate_uid()
    for i in range(4):
        ds = copy.deepcopy(src)
        ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.InstanceNumber = series, generate_uid(), i + 1
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient, ds.SliceLocation = [x, y, z + 2.0 * i], z + 2.0 * i
        ds.save_as(folder / f"slice_{i}.dcm")
    return folder


def test_inference_on_shipped_nifti_and_pydicom_mr_dicom(seg_run, tmp_path):
    import nibabel as nib
    from pydicom.data import get_testdata_file

    _, out = seg_run
    nifti, dicom = REPO / "data" / "brain_mr_t1_2mm.nii.gz", get_testdata_file("MR_small.dcm")
    series = _mr_series(tmp_path / "mr_series")
    # 4 mm inference grid keeps the test fast; the label map is resampled back onto the input grid
    wf = run_workflow(NAME, "train", "inference", output_dir=str(out), input_path=[str(nifti), dicom, str(series)],
                      pred_dir=str(tmp_path), infer_spacing=[4.0, 4.0, 4.0], **TINY)
    written = wf.parser.get_parsed_content("infer#outputs")
    assert [p.split("/")[-1] for p in written] == ["brain_mr_t1_2mm_seg.nii.gz", "MR_small_seg.nii.gz",
                                                   "mr_series_seg.nii.gz"]
    assert nib.load(written[2]).shape == (64, 64, 4)  # the series as one volume, on its own grid
    vol, src = nib.load(written[0]), nib.load(str(nifti))
    assert vol.shape == src.shape and np.allclose(vol.affine, src.affine)
    assert vol.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(vol.dataobj))) <= {0, 1, 2}
    img2d = nib.load(written[1])
    assert img2d.shape[:2] == (64, 64) and np.allclose(np.diag(img2d.affine)[:2], 0.3125)  # DICOM pixel spacing
    # a CT DICOM is refused by the MR preset, naming the file
    wf = make_workflow(NAME, "train", "inference", output_dir=str(out), input_path=get_testdata_file("CT_small.dcm"),
                       pred_dir=str(tmp_path / "ct"), **TINY)
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.run()
    assert any("CT_small.dcm" in str(e) for e in error_chain(err.value))


def test_metadata_verify_net_in_out_and_ckpt_export(seg_run, tmp_path):
    from monai.bundle import ckpt_export, verify_net_in_out

    _, out = seg_run
    meta, train = str(CONFIGS / "metadata.json"), str(CONFIGS / "train.yaml")
    verify_net_in_out(net_id="network_def", meta_file=meta, config_file=train, **TINY_SWIN)
    with pytest.raises(ValueError, match="output channel"):
        verify_net_in_out(net_id="network_def", meta_file=meta, config_file=train, num_classes=4, **TINY_SWIN)
    ts = tmp_path / "model.ts"
    x = torch.rand(2, 1, 64, 64)
    ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(out / "model.pt"), meta_file=meta,
                config_file=train, use_trace=True, input_shape=list(x.shape), **TINY_SWIN)
    scripted = torch.jit.load(str(ts))
    eager = _swinunetr().eval()
    eager.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x), rtol=1e-4, atol=1e-4)


def test_typo_and_missing_paths_name_the_key(tmp_path):
    assert_typo_refused(NAME, "roi_sise", "roi_size", 64)
    assert_missing_paths_named(NAME, tmp_path)
    # a dataset folder without the shipped volumes names the missing files
    (tmp_path / "empty").mkdir()
    wf = make_workflow(NAME, dataset_dir=str(tmp_path / "empty"))
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("datalists")
    assert any("brain_mr_t1_2mm.nii.gz" in str(e) and "dataset_dir" in str(e) for e in error_chain(err.value))
    wf = make_workflow(NAME, "train", "inference", ckpt_path=str(tmp_path / "no_model.pt"))
    with pytest.raises(Exception) as err:
        wf.initialize()
    assert any("config key 'ckpt_path'" in str(e) for e in error_chain(err.value))


def test_cli_train_from_a_copy_of_the_bundle(tmp_path):
    """``python -m monai.bundle run`` in a copy of the bundle folder (bundle_root and data found on their own)."""
    bundle = tmp_path / NAME
    shutil.copytree(BUNDLES / NAME, bundle, ignore=shutil.ignore_patterns("models", "outputs"))
    out = tmp_path / "out"
    args = ["run", "--config_file", "configs/train.yaml", "--output_dir", str(out), *cli_args(TINY)]
    proc = run_cli(args, cwd=bundle)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "model.pt").is_file() and (out / f"checkpoints/checkpoint_{TINY['epoch_length']}.pt").is_file()


@pytest.mark.dist
@pytest.mark.timeout(300)
def test_two_gloo_ranks_forked(tmp_path):
    """multi_gpu.yaml on 2 forked gloo ranks (the default-suite form of the torchrun test): DDP, disjoint
    DistributedSampler shards, equal weights after the all-reduced steps, rank 0's files without the DDP prefix."""
    from .conftest import assert_ranks_agree, run_forked_ranks

    out = tmp_path / "out"
    ranks = run_forked_ranks(NAME, {**TINY, "data_limit": 8}, out, tmp_path / "ranks")
    assert_ranks_agree(ranks, TINY["epoch_length"])
    state = torch.load(out / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state), "DDP wrapper leaked into model.pt"
    ckpt = torch.load(out / f"checkpoints/checkpoint_{TINY['epoch_length']}.pt", weights_only=True)
    assert set(ckpt["network"]) == set(state)


@pytest.mark.slow
@pytest.mark.dist
def test_torchrun_two_processes_gloo(tmp_path):
    """multi_gpu.yaml under ``torchrun --nproc_per_node 2`` on CPU (gloo): DDP and DistributedSampler."""
    out = tmp_path / "out"
    run_torchrun(NAME, {**TINY, "data_limit": 8}, out, port=29561)
    state = torch.load(out / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state), "DDP wrapper leaked into model.pt"
    ckpt = torch.load(out / f"checkpoints/checkpoint_{TINY['epoch_length']}.pt", weights_only=True)
    assert set(ckpt["network"]) == set(state)
