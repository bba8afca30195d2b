"""bundles/micle_pretrain: one tiny epoch via the monai.bundle API and CLI, exported encoder, resume, curriculum,
config typos and missing paths, multi-process (gloo) run."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from .conftest import (
    BUNDLES,
    REPO,
    TINY_MICLE,
    cli_args,
    config_files,
    error_chain,
    make_workflow,
    run_cli,
    run_torchrun,
    run_workflow,
)


def test_api_one_tiny_epoch_and_train_properties(micle_run):
    wf, out = micle_run
    assert wf.check_properties() == []  # MONAI's required train-workflow properties are all present
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 1 and trainer.state.iteration == TINY_MICLE["epoch_length"]
    assert math.isfinite(float(trainer.state.output["loss"]))
    ckpts = sorted((out / "checkpoints").glob("checkpoint_*.pt"))
    assert [c.name for c in ckpts] == [f"checkpoint_{TINY_MICLE['epoch_length']}.pt"]
    ckpt = torch.load(ckpts[0], weights_only=True)
    assert {"trainer", "network", "optimizer", "lr_scheduler", "grad_scaler", "rng"} <= set(ckpt)
    assert list((out / "logs").glob("events.out.tfevents.*")), "no TensorBoard event file"
    # MICLe pairs: the dataset is one item per patient and draws two different images for multi-image patients
    ds = wf.parser.get_parsed_content("train#dataset")
    assert ds.pair_mode == "micle" and len(ds) < TINY_MICLE["data_limit"]
    multi = next(i for i, bag in enumerate(ds.bags) if len(bag) > 1)
    src = ds[multi]["source_index"].tolist()
    assert src[0] != src[1]


def test_exported_encoder_loads_into_downstream_resnet18(micle_run):
    from monai.networks.nets import resnet18

    from monai_ssl.networks.weights import load_mapped_state_dict

    wf, out = micle_run
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    classifier = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=2)
    # the file holds ResNet names already; a consumer may also strip "encoder." from a raw ContrastiveModel dict
    report = load_mapped_state_dict(classifier, state, key_map=lambda k: k.removeprefix("encoder."))
    assert report.loaded_fraction == 1.0
    assert sorted(report.missing) == ["fc.bias", "fc.weight"]
    # the export is the trained encoder: equal to the checkpoint's network weights
    ckpt = torch.load(next((out / "checkpoints").glob("checkpoint_*.pt")), weights_only=True)["network"]
    for k, v in state.items():
        assert torch.equal(v, ckpt[f"encoder.{k}"]), k
    assert torch.equal(classifier.conv1.weight, state["conv1.weight"])
    info = json.loads((out / "encoder.pt.json").read_text())
    assert info["num_tensors"] == len(state) and info["pair_mode"] == "micle"
    # what the classification bundle does: the project's loader, by path
    from monai_ssl.networks import load_pretrained

    fresh = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=2)
    assert load_pretrained(fresh, out / "encoder.pt", kind="contrastive_resnet").loaded_fraction == 1.0
    assert torch.equal(fresh.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


@pytest.mark.slow
def test_resume_continues_from_checkpoint(micle_run, tmp_path):
    _, out = micle_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    wf = run_workflow("micle_pretrain", output_dir=str(copy), **{**TINY_MICLE, "max_epochs": 2})
    assert wf.parser.get_parsed_content("train#checkpointer").resumed_from is not None
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert (trainer.state.epoch, trainer.state.iteration) == (2, 2 * TINY_MICLE["epoch_length"])
    assert (copy / "checkpoints" / f"checkpoint_{2 * TINY_MICLE['epoch_length']}.pt").is_file()


@pytest.mark.slow
def test_curriculum_config_runs_stages_and_exports(tmp_path):
    overrides = {**TINY_MICLE, "data_limit": 8, "curriculum_order": ["rotation", "contrastive"]}
    wf = run_workflow("micle_pretrain", "train", "curriculum", output_dir=str(tmp_path), **overrides)
    summary = wf.parser.get_parsed_content("curriculum#summary")
    assert summary["order"] == ["rotation", "contrastive"]
    assert all(len(s["epoch_losses"]) == 1 and math.isfinite(s["epoch_losses"][0]) for s in summary["stages"])
    stage_files = sorted(p.name for p in (tmp_path / "checkpoints" / "curriculum").glob("stage*_encoder.pt"))
    assert stage_files == ["stage0_rotation_encoder.pt", "stage1_contrastive_encoder.pt"]
    final = torch.load(tmp_path / "encoder.pt", weights_only=True)
    last_stage = torch.load(tmp_path / "checkpoints" / "curriculum" / stage_files[-1], weights_only=True)
    assert final.keys() == last_stage.keys() and all(torch.equal(final[k], last_stage[k]) for k in final)


def test_pair_mode_switch_reaches_the_dataset():
    wf = make_workflow("micle_pretrain", pair_mode="simclr", **{**TINY_MICLE, "data_limit": 4})
    wf.initialize()
    assert wf.parser.get_parsed_content("train#dataset").pair_mode == "simclr"


def test_typo_in_override_is_refused_with_suggestion():
    from monai_ssl.bundle import BundleConfigError

    wf = make_workflow("micle_pretrain", max_epoch=1)  # a typo of max_epochs: MONAI alone would ignore it
    with pytest.raises(RuntimeError) as err:
        wf.initialize()
    found = [e for e in error_chain(err.value) if isinstance(e, BundleConfigError)]
    assert found and "'max_epoch' (did you mean 'max_epochs'?)" in str(found[0])
    # nested plain-dict keys are checked too; component arguments (train#dataloader#...) are left to the component
    wf = make_workflow("micle_pretrain", **{"train#dataloader#batch_size": 2, "train#handlers_by_nme": {}})
    with pytest.raises(RuntimeError) as err:
        wf.initialize()
    found = [e for e in error_chain(err.value) if isinstance(e, BundleConfigError)]
    assert found and "'train#handlers_by_nme' (did you mean 'train#handlers_by_name'?)" in str(found[0])
    assert "train#dataloader#batch_size" not in str(found[0])


def test_wrong_target_names_the_class():
    wf = make_workflow("micle_pretrain", **{"network_def#_target_": "monai_ssl.networks.nets.NoSuchModel"})
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("network_def")
    assert any("NoSuchModel" in str(e) for e in error_chain(err.value))


@pytest.mark.parametrize("key", ["dataset_dir", "datalist"])
def test_missing_data_path_names_the_key(tmp_path, key):
    missing = tmp_path / "nowhere" / ("data" if key == "dataset_dir" else "list.csv")
    wf = make_workflow("micle_pretrain", **{key: str(missing)})
    with pytest.raises(Exception) as err:
        wf.initialize()
    found = [x for x in error_chain(err.value) if isinstance(x, FileNotFoundError)]
    assert found and f"config key '{key}'" in str(found[0]) and str(missing) in str(found[0])


def test_dataset_dir_without_the_npz_names_the_file(tmp_path):
    wf = make_workflow("micle_pretrain", dataset_dir=str(tmp_path), **TINY_MICLE)
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("train#datalist")
    msgs = [str(e) for e in error_chain(err.value)]
    assert any("config key 'dataset_dir'" in m and "covid_cxr_256.npz" in m for m in msgs)


def test_cli_run_from_a_copy_of_the_bundle(tmp_path):
    """``python -m monai.bundle run`` in a copy of the bundle folder (bundle_root and data found on their own)."""
    bundle = tmp_path / "micle_pretrain"
    shutil.copytree(BUNDLES / "micle_pretrain", bundle, ignore=shutil.ignore_patterns("models"))
    out = tmp_path / "out"
    args = ["run", "--config_file", "configs/train.yaml", "--output_dir", str(out), *cli_args(TINY_MICLE)]
    proc = run_cli(args, cwd=bundle)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert "conv1.weight" in state and (out / f"checkpoints/checkpoint_{TINY_MICLE['epoch_length']}.pt").is_file()


@pytest.mark.slow
def test_cli_typo_error_is_clear(tmp_path):
    proc = run_cli(["run", "--config_file", config_files("micle_pretrain")[0], "--output_dir", str(tmp_path),
                    "--max_epoch", "1"], cwd=REPO)
    assert proc.returncode != 0
    assert "unknown config key(s) 'max_epoch' (did you mean 'max_epochs'?)" in proc.stderr


@pytest.mark.dist
@pytest.mark.timeout(300)
def test_two_gloo_ranks_forked(tmp_path):
    """multi_gpu.yaml on 2 forked gloo ranks (the default-suite form of the torchrun test): DDP, disjoint patient
    shards, gathered NT-Xent, equal weights after the all-reduced steps, rank 0's export without the DDP prefix."""
    from .conftest import assert_ranks_agree, run_forked_ranks

    out = tmp_path / "out"
    ranks = run_forked_ranks("micle_pretrain", {**TINY_MICLE, "data_limit": 24}, out, tmp_path / "ranks")
    assert_ranks_agree(ranks, TINY_MICLE["epoch_length"])
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state), "DDP wrapper leaked into the export"
    ckpt = torch.load(out / f"checkpoints/checkpoint_{TINY_MICLE['epoch_length']}.pt", weights_only=True)
    assert all(torch.equal(state[k], ckpt["network"][f"encoder.{k}"]) for k in state)


@pytest.mark.slow
@pytest.mark.dist
def test_torchrun_two_processes_gloo(tmp_path):
    """multi_gpu.yaml under ``torchrun --nproc_per_node 2`` on CPU (gloo): DDP, DistributedSampler, gathered NT-Xent."""
    out = tmp_path / "out"
    run_torchrun("micle_pretrain", {**TINY_MICLE, "data_limit": 24}, out, port=29533)
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state), "DDP wrapper leaked into the export"
    ckpt = torch.load(out / f"checkpoints/checkpoint_{TINY_MICLE['epoch_length']}.pt", weights_only=True)
    assert all(torch.equal(state[k], ckpt["network"][f"encoder.{k}"]) for k in state)


def test_csv_datalist_groups_patients(tmp_path):
    """A user datalist (PNG files, patient_id column) replaces the npz; MICLe bags follow its patient ids."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = ["image,patient_id"]
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (50, 40 + i), dtype=np.uint8)).save(tmp_path / f"cxr{i}.png")
        rows.append(f"cxr{i}.png,{'p0' if i < 3 else f'p{i}'}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    wf = make_workflow("micle_pretrain", datalist=str(tmp_path / "list.csv"), **TINY_MICLE)
    wf.initialize()
    ds = wf.parser.get_parsed_content("train#dataset")
    assert sorted(map(len, ds.bags)) == [1, 1, 3] and ds.patient_ids[0] == "p0"
    item = ds[0]
    size = TINY_MICLE["image_size"]
    assert item["image_view_0"].shape == item["image_view_1"].shape == (1, size, size)
    assert item["source_index"][0] != item["source_index"][1]  # two different images of patient p0


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_a_straight_run(tmp_path):
    """2 epochs straight == 1 epoch, stop, rerun the same command (bit-identical weights and BatchNorm statistics)."""
    from ignite.engine import Events

    overrides = {**TINY_MICLE, "max_epochs": 2}
    straight = run_workflow("micle_pretrain", output_dir=str(tmp_path / "a"), **overrides)
    wf = make_workflow("micle_pretrain", output_dir=str(tmp_path / "b"), **overrides)
    wf.initialize()
    wf.parser.get_parsed_content("train#trainer").add_event_handler(Events.EPOCH_COMPLETED(once=1),
                                                                     lambda e: e.terminate())
    wf.run()
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 1
    resumed = run_workflow("micle_pretrain", output_dir=str(tmp_path / "b"), **overrides)
    assert resumed.parser.get_parsed_content("train#checkpointer").resumed_from is not None
    a = straight.parser.get_parsed_content("network_def").state_dict()
    b = resumed.parser.get_parsed_content("network_def").state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]


def test_channels_last_switch_trains_in_channels_last(tmp_path):
    wf = run_workflow("micle_pretrain", output_dir=str(tmp_path), channels_last=True, resume=False, **TINY_MICLE)
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == TINY_MICLE["epoch_length"] and math.isfinite(float(trainer.state.output["loss"]))
    conv1 = wf.parser.get_parsed_content("network_def").encoder.conv1
    assert conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.to_kwargs == {"memory_format": torch.channels_last}


def test_workers_epochs_and_ranks_draw_distinct_views_through_the_bundle_loader():
    """The bundle's loader with 2 workers over 2 epochs never serves a view pair twice; another rank draws others."""
    import hashlib

    from monai_ssl.data import SeededDataLoader

    def pairs(rank: int) -> list[str]:
        wf = make_workflow("micle_pretrain", **{**TINY_MICLE, "num_workers": 2, "data_limit": 16})
        wf.initialize()
        loader = wf.parser.get_parsed_content("train#dataloader")
        assert isinstance(loader, SeededDataLoader)
        loader.rank = rank  # what torch.distributed would set under torchrun
        cache = loader.dataset._cache  # one image everywhere: equal random draws would give equal view pairs
        cache[:] = [cache[0]] * len(cache)
        out = []
        for _ in range(2):
            for batch in loader:
                out += [hashlib.sha1(a.numpy().tobytes() + b.numpy().tobytes()).hexdigest()
                        for a, b in zip(batch["image_view_0"], batch["image_view_1"])]
        return out

    rank0 = pairs(0)
    assert len(rank0) >= 16 and len(set(rank0)) == len(rank0)
    assert not set(rank0) & set(pairs(1))


def test_no_bundle_builds_a_plain_torch_dataloader():
    from tests.bundles.conftest import BUNDLES

    offenders = [str(p.relative_to(BUNDLES)) for p in BUNDLES.glob("*/configs/*.yaml")
                 if "torch.utils.data.DataLoader" in p.read_text()]
    assert not offenders, f"use monai_ssl.data.SeededDataLoader (seeded per worker, epoch and rank): {offenders}"


def test_resume_with_changed_settings_is_refused_naming_the_keys(micle_run, tmp_path):
    """Issue 21 (9): a new learning rate, pair mode, image size or data limit was silently ignored on resume."""
    from monai_ssl.handlers import ResumeConfigError

    _, out = micle_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    changed = {**TINY_MICLE, "learning_rate": 0.01, "pair_mode": "simclr", "data_limit": 8, "max_epochs": 2}
    with pytest.raises(Exception) as err:
        run_workflow("micle_pretrain", output_dir=str(run), **changed)
    found = [e for e in error_chain(err.value) if isinstance(e, ResumeConfigError)]
    assert found, err.value
    msg = str(found[0])
    assert "checkpoint_2.pt" in msg and "pair_mode: 'micle' -> 'simclr'" in msg
    assert "learning_rate: 0.001 -> 0.01" in msg and "data_limit: 12 -> 8" in msg
    assert "max_epochs" not in msg.split("settings:")[1].split(".")[0]  # allowed to change: not listed
    assert "output_dir" in msg and "resume=false" in msg
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == ["checkpoint_2.pt"]  # nothing written
    assert not (run / "checkpoints" / "train.lock").exists()  # the refused run does not keep the folder locked
    saved = torch.load(run / "checkpoints" / "checkpoint_2.pt", weights_only=True)["run_config"]
    assert saved["learning_rate"] == 0.001 and saved["pair_mode"] == "micle" and saved["image_size"] == 32


def test_divergent_learning_rate_fails_and_exports_nothing(tmp_path):
    """Issue 21 (4): ``--learning_rate 1e6`` exited 0 and exported weights up to 9.7e28 (the NT-Xent loss of
    normalised embeddings stays finite); now the run fails naming the tensors, before any checkpoint or export."""
    from monai_ssl.handlers import NonFiniteLossError
    from monai_ssl.networks import NonFiniteWeightsError

    with pytest.raises(Exception) as err:
        run_workflow("micle_pretrain", output_dir=str(tmp_path), learning_rate=1e6, **TINY_MICLE)
    found = [e for e in error_chain(err.value) if isinstance(e, (NonFiniteWeightsError, NonFiniteLossError))]
    assert found, err.value
    assert "diverged" in str(found[0]) or "non-finite" in str(found[0])
    assert not (tmp_path / "encoder.pt").exists() and not list((tmp_path / "checkpoints").glob("*.pt"))


def test_colour_datalist_gets_rgb_views_with_simclr_colour_jitter(tmp_path):
    """``--channels 3``: colour photographs keep their 3 channels, the views use SimCLR's colour jitter and random
    greyscale (Chen et al. 2020), the encoder takes 3 channels and its export says so."""
    import numpy as np
    from PIL import Image

    from monai_ssl.transforms import RandColorJitter, RandGrayscale

    rng = np.random.default_rng(0)
    rows = ["image,patient_id"]
    for i in range(4):
        rgb = rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)
        rgb[..., 2] //= 4  # a colour cast the views must not flatten to grey
        Image.fromarray(rgb).save(tmp_path / f"derm{i}.png")
        rows.append(f"derm{i}.png,p{i // 2}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    wf = make_workflow("micle_pretrain", datalist=str(tmp_path / "list.csv"), channels=3, **TINY_MICLE)
    wf.initialize()
    views = wf.parser.get_parsed_content("train#view_transform").transforms
    assert any(isinstance(t, RandColorJitter) for t in views) and any(isinstance(t, RandGrayscale) for t in views)
    assert wf.parser.get_parsed_content("encoder").conv1.in_channels == 3
    assert "n_input_channels=3" in wf.parser.get_parsed_content("train#handlers_by_name#encoder_export").info["target"]
    item = wf.parser.get_parsed_content("train#dataset")[0]
    size = TINY_MICLE["image_size"]
    assert item["image_view_0"].shape == (3, size, size)
