"""bundles/classification: one tiny epoch via the monai.bundle API and CLI, label-fraction patient split, pretrained
init and linear probe, evaluation with bootstrap CIs and ensembles, DICOM/NIfTI inference, metadata, verify_net_in_out,
TorchScript export, config typos and missing paths, multi-process (gloo) run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket

import numpy as np
import pytest
import torch

from .conftest import BUNDLES, REPO, SCHEMA, SCHEMA_MD5, cli_args, error_chain, make_workflow, run_cli
from .conftest import assert_missing_paths_named, assert_typo_refused, run_torchrun, run_workflow

NAME = "classification"
CONFIGS = BUNDLES / NAME / "configs"
# one tiny epoch: 2 iterations of batch 4 on 32-px images, 8 items per split (both classes, see _stratified_head)
TINY = {"image_size": 32, "batch_size": 4, "max_epochs": 1, "epoch_length": 2, "data_limit": 8, "progress_bar": False}


def _resnet(**kw):
    from monai.networks.nets import resnet18

    return resnet18(spatial_dims=2, n_input_channels=1, conv1_t_stride=2, **kw)


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    """One tiny fine-tuning epoch from scratch through the Python API (shared by several tests)."""
    out = tmp_path_factory.mktemp("cls_run")
    wf = run_workflow(NAME, output_dir=str(out), **TINY)
    return wf, out


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_api_one_tiny_epoch_and_train_properties(cls_run):
    wf, out = cls_run
    assert wf.check_properties() == []
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 1 and trainer.state.iteration == TINY["epoch_length"]
    history = wf.parser.get_parsed_content("train#handlers_by_name#metriclogger")
    assert len(history.loss) == TINY["epoch_length"] and all(np.isfinite(v) for _, v in history.loss)
    (_, auc), = history.metrics["val_auc"]  # one validation, both classes present in the tiny val split
    assert 0.0 <= auc <= 1.0
    ckpt = torch.load(out / f"checkpoints/checkpoint_{TINY['epoch_length']}.pt", weights_only=True)
    assert {"trainer", "network", "optimizer", "lr_scheduler", "rng"} <= set(ckpt)
    best = torch.load(out / "model.pt", weights_only=True)  # best-val-AUC weights, a plain state dict
    net = _resnet(num_classes=2)
    net.load_state_dict(best)
    assert torch.equal(best["fc.weight"], wf.parser.get_parsed_content("network_def").fc.weight.detach())


def test_label_fraction_patient_split_matches_pretraining():
    from monai_ssl.data import contrastive_datalist
    from monai_ssl.data import classification_datalists

    data = REPO / "data"
    full = classification_datalists(data, label_fraction=1.0)
    tenth = classification_datalists(data, label_fraction=0.1)
    pid = {k: {d["patient_id"] for d in v} for k, v in full.items()}
    assert not (pid["train"] & pid["val"] or pid["train"] & pid["test"] or pid["val"] & pid["test"])
    assert all(d["label"] in (0, 1) for v in full.values() for d in v)  # unlabelled (-1) dropped
    assert {d["patient_id"] for d in tenth["train"]} < pid["train"]  # nested, whole patients
    assert 0.05 < len(tenth["train"]) / len(full["train"]) < 0.2
    assert {d["label"] for d in tenth["train"]} == {0, 1}
    # the test split does not depend on the label fraction; the validation labels (used to choose the checkpoint,
    # so counted as labels used) are the same fraction of the validation patients, unless asked otherwise
    assert [d["patient_id"] for d in tenth["test"]] == [d["patient_id"] for d in full["test"]]
    assert {d["patient_id"] for d in tenth["val"]} < pid["val"] and {d["label"] for d in tenth["val"]} == {0, 1}
    assert 0.05 < len(tenth["val"]) / len(full["val"]) < 0.2
    all_val = classification_datalists(data, label_fraction=0.1, val_fraction=1.0)["val"]
    assert [d["patient_id"] for d in all_val] == [d["patient_id"] for d in full["val"]]
    # the pretraining bundle's train patients are this bundle's train patients: test patients never pretrained on
    pretrain = {d["patient_id"] for d in contrastive_datalist(data, split="train")}
    assert pid["train"] <= pretrain and not pretrain & pid["test"]
    with pytest.raises(ValueError, match="label_fraction"):
        classification_datalists(data, label_fraction=0.0)


def _fake_encoder(path):
    """A ``micle_pretrain``-style export: the pooled ResNet-18 encoder's tensors, ResNet key names."""
    torch.manual_seed(1)
    enc = _resnet(feed_forward=False)
    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    state = enc.state_dict()
    torch.save(state, path)
    return state


def test_pretrained_linear_probe_trains_only_the_head(tmp_path):
    state = _fake_encoder(tmp_path / "encoder.pt")
    wf = run_workflow(NAME, output_dir=str(tmp_path / "out"), pretrained_ckpt=str(tmp_path / "encoder.pt"),
                      mode="linear_probe", **TINY)
    net = wf.parser.get_parsed_content("network_def")
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    after = net.state_dict()
    # encoder weights AND BatchNorm statistics untouched by training; the head moved away from its init
    assert all(torch.equal(after[k], v) for k, v in state.items()), "frozen encoder changed"
    ckpt = torch.load(tmp_path / f"out/checkpoints/checkpoint_{TINY['epoch_length']}.pt", weights_only=True)
    assert torch.equal(ckpt["network"]["layer4.1.bn2.running_mean"], state["layer4.1.bn2.running_mean"])


def test_pretrained_finetune_starts_from_the_encoder(tmp_path):
    from monai_ssl.networks import prepare_classifier

    state = _fake_encoder(tmp_path / "encoder.pt")
    net = prepare_classifier(_resnet(num_classes=2), str(tmp_path / "encoder.pt"), "contrastive_resnet", "finetune")
    assert torch.equal(net.conv1.weight, state["conv1.weight"])
    assert all(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="config key 'mode'"):
        prepare_classifier(_resnet(num_classes=2), None, "contrastive_resnet", "linear-probe")
    with pytest.raises(ValueError, match="kind"):  # a wrong key map fails loudly instead of loading nothing
        prepare_classifier(_resnet(num_classes=2), str(tmp_path / "encoder.pt"), "mae_vit", "finetune")


def test_stem_stride_mismatch_with_the_export_warns(tmp_path):
    # a stride-1 encoder export (its sidecar's target) loaded into the stride-2 classifier without a word
    import warnings

    from monai_ssl.networks import prepare_classifier

    _fake_encoder(tmp_path / "encoder.pt")
    sidecar = tmp_path / "encoder.pt.json"
    target = "monai.networks.nets.resnet18(spatial_dims=2, n_input_channels=1, conv1_t_stride={})"
    sidecar.write_text(json.dumps({"bundle": "micle_pretrain", "target": target.format(1)}))
    with pytest.warns(UserWarning, match=r"conv1_t_stride=1 .*conv1 has stride 2 \(config key 'stem_stride'\)"):
        prepare_classifier(_resnet(num_classes=2), str(tmp_path / "encoder.pt"))
    sidecar.write_text(json.dumps({"bundle": "micle_pretrain", "target": target.format(2)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matching strides: silent
        prepare_classifier(_resnet(num_classes=2), str(tmp_path / "encoder.pt"))


def test_diverged_weights_are_not_loaded(tmp_path):
    """Issue 21 (4): an encoder export with weights up to 9.7e28 loaded "100 %" into the classifier, and a model.pt
    with inf buffers gave ``nan,nan,other`` predictions; both are refused, naming the tensors."""
    from monai_ssl.handlers import WeightsCheck
    from monai_ssl.networks import prepare_classifier
    from monai_ssl.networks import NonFiniteWeightsError, load_pretrained

    state = _fake_encoder(tmp_path / "encoder.pt")
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = 9.7e28
    torch.save(state, tmp_path / "diverged.pt")
    net = _resnet(num_classes=2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(NonFiniteWeightsError, match=r"layer1.0.conv1.weight \(max \|x\| = 9.7e\+28\)"):
        prepare_classifier(net, str(tmp_path / "diverged.pt"), "contrastive_resnet", "finetune")
    with pytest.raises(NonFiniteWeightsError, match="layer1.0.conv1.weight"):
        load_pretrained(net, state, "contrastive_resnet")  # an in-memory state dict too
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()), "the network was changed"
    model = _resnet(num_classes=2).state_dict()
    model["bn1.running_var"][3] = float("inf")
    torch.save(model, tmp_path / "model.pt")
    with pytest.raises(NonFiniteWeightsError, match=r"bn1.running_var \(inf\)"):
        # what evaluate.yaml / inference.yaml attach after their CheckpointLoader
        net = _resnet(num_classes=2)
        net.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
        WeightsCheck(net, names=[str(tmp_path / "model.pt")])(None)


def _evaluate(out, tmp_path, **kw):
    wf = run_workflow(NAME, "train", "evaluate", output_dir=str(out), n_boot=200, **{**TINY, **kw})
    return wf.parser.get_parsed_content("evaluate#result")


def test_evaluate_metrics_with_cis_and_ensemble(cls_run, tmp_path):
    _, out = cls_run
    res = _evaluate(out, tmp_path, eval_dir=str(tmp_path / "single"))
    saved = json.loads((tmp_path / "single/metrics_test.json").read_text())
    report = saved["report"]
    assert set(report) == {"auc", "accuracy", "balanced_accuracy", "f1", "n"} and report["n"]["value"] == 8
    assert saved["selected_on"] == "val" and saved["n_labels_used"] == sum(saved["labels_used"].values()) == 16
    for k in ("auc", "accuracy", "balanced_accuracy", "f1"):
        assert report[k]["low"] <= report[k]["value"] <= report[k]["high"], k
    rows = _read_csv(tmp_path / "single/metrics_test.csv")
    assert [r["metric"] for r in rows][:4] == ["auc", "accuracy", "balanced_accuracy", "f1"]
    preds = _read_csv(tmp_path / "single/predictions_test.csv")
    assert len(preds) == 8 and {r["label"] for r in preds} == {"0", "1"}
    # the bootstrap resamples patients: each prediction row carries its item's patient id, in item order
    test_items = make_workflow(NAME, output_dir=str(out), **TINY).parser.get_parsed_content("datalists")
    assert [r["patient_id"] for r in preds] == [str(d["patient_id"]) for d in test_items["test"]]
    assert res["ensemble"] is False
    # a second, different member: the ensemble's probabilities are the mean of the members' probabilities
    other = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in torch.load(out / "model.pt", weights_only=True).items()}
    torch.save(other, tmp_path / "other.pt")
    _evaluate(out, tmp_path, eval_dir=str(tmp_path / "b"), ckpt_path=str(tmp_path / "other.pt"))
    ens = _evaluate(out, tmp_path, eval_dir=str(tmp_path / "ens"), ensemble=True,
                    ensemble_ckpts=[str(out / "model.pt"), str(tmp_path / "other.pt")])
    assert ens["ensemble"] and len(ens["member_metrics"]) == 2
    p = [np.array([float(r["prob_positive"]) for r in _read_csv(tmp_path / d / "predictions_test.csv")])
         for d in ("single", "b", "ens")]
    assert not np.allclose(p[0], p[1], atol=1e-4)
    np.testing.assert_allclose(p[2], (p[0] + p[1]) / 2, atol=2e-6)
    with pytest.raises(Exception) as err:
        _evaluate(out, tmp_path, eval_dir=str(tmp_path / "none"), ensemble=True)
    assert any("ensemble_ckpts" in str(e) for e in error_chain(err.value))


def _inputs(tmp_path):
    """A real CR DICOM (pydicom's MONOCHROME1 sample, re-tagged as chest PA), a CT DICOM re-tagged as DX, a NIfTI and
    a PNG of a shipped chest X-ray."""
    import nibabel as nib
    import pydicom
    from PIL import Image
    from pydicom.data import get_testdata_file

    from monai_ssl.data import load_covid_cxr

    folder = tmp_path / "inputs"
    folder.mkdir()
    cr = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files", "dicomdirtests", "77654033", "CR1", "6154")
    cr = pydicom.dcmread(cr)  # a cervical-spine lateral: re-tagged as a chest PA, the model's declared domain
    cr.BodyPartExamined, cr.ViewPosition = "CHEST", "PA"
    cr.save_as(folder / "cr.dcm")
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ct.Modality = "DX"
    ct.save_as(folder / "ct_as_dx.dcm")
    img = load_covid_cxr(REPO / "data" / "covid_cxr_256.npz")[0]["image"][0]
    nib.save(nib.Nifti1Image((img * 255).astype(np.uint8).T, np.eye(4)), folder / "cxr.nii.gz")
    Image.fromarray((img * 255).astype(np.uint8)).save(folder / "cxr.png")
    return folder


def test_inference_on_dicom_nifti_png_writes_probabilities(cls_run, tmp_path):
    _, out = cls_run
    folder = _inputs(tmp_path)
    csv_path = tmp_path / "pred.csv"
    wf = run_workflow(NAME, "train", "inference", output_dir=str(out), input_path=str(folder),
                      output_csv=str(csv_path), image_size=TINY["image_size"], progress_bar=False)
    rows = _read_csv(csv_path)
    assert sorted(os.path.basename(r["file"]) for r in rows) == ["cr.dcm", "ct_as_dx.dcm", "cxr.nii.gz", "cxr.png"]
    for r in rows:
        p = float(r["prob_other"]) + float(r["prob_covid"])
        assert abs(p - 1) < 1e-4 and r["pred"] in ("other", "covid")
    assert len(wf.parser.get_parsed_content("infer#rows")) == 4
    # a list of files works too; with on_file_error=stop a CT DICOM ends the run, naming the file (by default it
    # gets an out_of_domain row: tests/bad_input/test_inference_folder.py)
    import pydicom
    from pydicom.data import get_testdata_file

    ct = tmp_path / "ct.dcm"
    pydicom.dcmread(get_testdata_file("CT_small.dcm")).save_as(ct)
    wf = make_workflow(NAME, "train", "inference", output_dir=str(out), input_path=[str(folder / "cxr.png"), str(ct)],
                       output_csv=str(tmp_path / "p2.csv"), image_size=TINY["image_size"], on_file_error="stop")
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.run()
    assert any("ct.dcm" in str(e) for e in error_chain(err.value))


def test_metadata_offline_verify_net_in_out_and_ckpt_export(cls_run, tmp_path, monkeypatch):
    from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    _, out = cls_run
    meta, train = str(CONFIGS / "metadata.json"), str(CONFIGS / "train.yaml")
    with monkeypatch.context() as m:
        m.setattr(socket.socket, "connect", refuse)
        m.setattr(socket, "create_connection", refuse)
        verify_metadata(meta_file=meta, filepath=str(SCHEMA), hash_val=SCHEMA_MD5)
    content = json.loads((CONFIGS / "metadata.json").read_text())
    assert content["version"] in content["changelog"]
    assert (BUNDLES / NAME / "LICENSE").read_text().lstrip().startswith("Apache License")
    verify_net_in_out(net_id="network_def", meta_file=meta, config_file=train)
    # a wrong declared output size is caught
    with pytest.raises(ValueError, match="output channel"):
        verify_net_in_out(net_id="network_def", meta_file=meta, config_file=train, num_classes=3)
    ts = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(out / "model.pt"), meta_file=meta,
                config_file=train)
    scripted = torch.jit.load(str(ts))
    eager = _resnet(num_classes=2).eval()
    eager.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x), rtol=1e-5, atol=1e-5)


def test_typo_and_missing_paths_name_the_key(tmp_path):
    assert_typo_refused(NAME, "label_fractoin", "label_fraction", 0.1)
    assert_missing_paths_named(NAME, tmp_path)
    wf = make_workflow(NAME, "train", "inference", input_path=str(tmp_path / "no_images"),
                       ckpt_path=str(tmp_path / "no_model.pt"))
    with pytest.raises(Exception) as err:
        wf.initialize()
    assert any("config key 'ckpt_path'" in str(e) for e in error_chain(err.value))


def test_amp_on_cpu_warns_and_trains_fp32(tmp_path):
    # MONAI's SupervisedTrainer autocasts only on CUDA: --amp True on CPU ran fp32 without a word
    wf = make_workflow(NAME, output_dir=str(tmp_path), amp=True, device="$torch.device('cpu')", **TINY)
    with pytest.warns(UserWarning, match=r"config key 'amp': amp=True on device cpu.*trains in fp32"):
        trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.amp is False and trainer.scaler is None


def test_cli_train_from_a_copy_of_the_bundle(tmp_path):
    """``python -m monai.bundle run`` in a copy of the bundle folder (bundle_root and data found on their own)."""
    bundle = tmp_path / NAME
    shutil.copytree(BUNDLES / NAME, bundle, ignore=shutil.ignore_patterns("models", "outputs"))
    out = tmp_path / "out"
    args = ["run", "--config_file", "configs/train.yaml", "--output_dir", str(out), "--label_fraction", "0.1",
            *cli_args(TINY)]
    proc = run_cli(args, cwd=bundle)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "model.pt").is_file() and (out / f"checkpoints/checkpoint_{TINY['epoch_length']}.pt").is_file()


def test_best_model_survives_a_resume_with_a_worse_epoch(cls_run, tmp_path):
    """Issue 21 (1): the best-metric saver forgot its best score on resume, so the first (worse) validation of the
    resumed run overwrote model.pt."""
    import hashlib

    from ignite.engine import Events

    wf, out = cls_run
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    best, best_epoch = float(evaluator.state.best_metric), evaluator.state.best_metric_epoch
    assert best > 0.5 and best_epoch == 1
    run = tmp_path / "run"
    shutil.copytree(out, run)
    digest = hashlib.sha256((run / "model.pt").read_bytes()).hexdigest()
    wf = make_workflow(NAME, output_dir=str(run), **{**TINY, "max_epochs": 2})
    wf.initialize()
    trainer, net = wf.parser.get_parsed_content("train#trainer"), wf.parser.get_parsed_content("network_def")

    def worse(engine):  # a worse epoch 2: constant predictions, validation AUC 0.5
        with torch.no_grad():
            net.fc.weight.zero_()
            net.fc.bias.zero_()

    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2 * TINY["epoch_length"]), worse)
    wf.run()
    assert wf.parser.get_parsed_content("train#checkpointer").resumed_from is not None and trainer.state.epoch == 2
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    assert float(evaluator.state.metrics["val_auc"]) == 0.5  # the resumed epoch was worse ...
    assert hashlib.sha256((run / "model.pt").read_bytes()).hexdigest() == digest, "model.pt was replaced"
    assert (float(evaluator.state.best_metric), evaluator.state.best_metric_epoch) == (best, best_epoch)
    ckpt = torch.load(run / f"checkpoints/checkpoint_{2 * TINY['epoch_length']}.pt", weights_only=True)
    assert ckpt["best"]["best_metric"] == best and ckpt["best"]["best_metric_epoch"] == best_epoch


@pytest.mark.slow
def test_resume_continues_from_checkpoint(cls_run, tmp_path):
    _, out = cls_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    wf = run_workflow(NAME, output_dir=str(copy), **{**TINY, "max_epochs": 2})
    assert wf.parser.get_parsed_content("train#checkpointer").resumed_from is not None
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert (trainer.state.epoch, trainer.state.iteration) == (2, 2 * TINY["epoch_length"])


@pytest.mark.dist
@pytest.mark.timeout(300)
def test_two_gloo_ranks_forked(tmp_path):
    """multi_gpu.yaml on 2 forked gloo ranks (the default-suite form of the torchrun test): DDP, disjoint
    DistributedSampler shards, equal weights after the all-reduced steps, rank 0's files without the DDP prefix."""
    from .conftest import assert_ranks_agree, run_forked_ranks

    out = tmp_path / "out"
    ranks = run_forked_ranks(NAME, {**TINY, "data_limit": 16}, out, tmp_path / "ranks")
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
    run_torchrun(NAME, {**TINY, "data_limit": 16}, out, port=29541)
    state = torch.load(out / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state), "DDP wrapper leaked into model.pt"
    ckpt = torch.load(out / f"checkpoints/checkpoint_{TINY['epoch_length']}.pt", weights_only=True)
    assert set(ckpt["network"]) == set(state)


def test_demo_table_and_plot(tmp_path):
    """scripts/demo_covid.py's results table (values and CIs from the reports) and plot, on made-up reports."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo_covid.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    rep = {m: {"value": 0.5 + 0.1 * i, "low": 0.4, "high": 0.9} for i, m in enumerate(demo.METRICS)}
    results = {"scratch": {"report": {**rep, "n": {"value": 82.0}}, "val_auc": [0.5, 0.61], "n_train_images": 38},
               "MICLe-pretrained": {"report": {**rep, "n": {"value": 82.0}}, "val_auc": [], "n_train_images": 38}}
    md = demo.table(results)
    lines = md.splitlines()
    assert lines[2].startswith("| scratch | 38 | 0.610 | 0.500 [0.400, 0.900] | 0.600 [0.400, 0.900]")
    assert "| MICLe-pretrained | 38 | n/a |" in lines[3] and "82 images" in md
    demo.plot(results, tmp_path / "demo.png")
    assert (tmp_path / "demo.png").stat().st_size > 1000
    args = demo.parse_args([])
    assert args.label_fraction == 0.1 and args.image_size == 64
