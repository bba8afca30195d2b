"""Shared helpers for the bundle tests: paths, tiny overrides, running a bundle in-process or via the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"
SCHEMA = BUNDLES / "schema" / "meta_schema_20240725.json"
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"

# one tiny epoch: 2 iterations of batch 4 on small images and a few images per source
TINY_MICLE = {"image_size": 32, "batch_size": 4, "max_epochs": 1, "epoch_length": 2, "data_limit": 12,
              "progress_bar": False}
TINY_MAE = {"image_size": 64, "batch_size": 4, "max_epochs": 1, "epoch_length": 2, "data_limit": 16,
            "progress_bar": False}
# small MAE networks (the defaults are full size)
TINY_VIT = {"networks#vit#hidden_size": 32, "networks#vit#mlp_dim": 64, "networks#vit#num_layers": 2,
            "networks#vit#num_heads": 2, "networks#vit#patch_size": 8, "networks#vit#decoder_hidden_size": 32,
            "networks#vit#decoder_mlp_dim": 32, "networks#vit#decoder_num_layers": 1,
            "networks#vit#decoder_num_heads": 2}
TINY_CONVNEXT = {"networks#convnext#depths": [1, 1, 1, 1], "networks#convnext#dims": [8, 16, 32, 64],
                 "networks#convnext#decoder_dim": 32}


def error_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (MONAI wraps errors raised in config expressions in ``RuntimeError``)."""
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def config_files(bundle: str, *names: str) -> list[str]:
    """Absolute paths of ``bundles/<bundle>/configs/<name>.yaml``."""
    return [str(BUNDLES / bundle / "configs" / f"{n}.yaml") for n in (names or ("train",))]


def make_workflow(bundle: str, *names: str, **overrides):
    """A ``monai.bundle.ConfigWorkflow`` (train type) over the bundle's configs with ``overrides``."""
    from monai.bundle import ConfigWorkflow

    files = config_files(bundle, *names)
    return ConfigWorkflow(config_file=files if len(files) > 1 else files[0], workflow_type="train",
                          logging_file=False, **overrides)


def run_workflow(bundle: str, *names: str, **overrides):
    """initialize -> run -> finalize; returns the workflow (its parser holds the built objects)."""
    wf = make_workflow(bundle, *names, **overrides)
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf


def cli_args(overrides: dict) -> list[str]:
    """``--key value`` pairs for ``python -m monai.bundle run`` (values as Python literals, as fire parses them)."""
    out = []
    for k, v in overrides.items():
        out += [f"--{k}", repr(v) if isinstance(v, (list, str)) else str(v)]
    return out


def run_cli(args: list[str], cwd: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle <args>`` in ``cwd`` with this interpreter and this checkout's ``monai_ssl``
    (first on ``PYTHONPATH``: an installed copy of another checkout must not stand in for it); output as text."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=str(cwd), env=env, text=True,
                          capture_output=True, timeout=timeout)


def run_torchrun(bundle: str, overrides: dict, output_dir: Path, port: int) -> None:
    """``train.yaml`` + ``multi_gpu.yaml`` of ``bundle`` under ``torchrun --nproc_per_node 2`` (gloo on CPU)."""
    files = config_files(bundle, "train", "multi_gpu")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "monai.bundle", "run", "--config_file", repr(files), "--output_dir", str(output_dir),
           *cli_args(overrides)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def _bundle_rank(rank: int, bundle: str, overrides: dict, output_dir: str) -> dict:
    """One rank of :func:`run_forked_ranks`: the workflow, then what the test compares across ranks."""
    import hashlib

    import torch

    wf = run_workflow(bundle, "train", "multi_gpu", output_dir=output_dir, **overrides)
    net = wf.parser.get_parsed_content("network")
    digest = hashlib.sha256()
    # the parameters: DDP all-reduces their gradients, so they stay equal; buffers (BatchNorm statistics) are
    # broadcast from rank 0 at the start of each forward and so differ after the last one
    for name, value in getattr(net, "module", net).named_parameters():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return {"ddp": isinstance(net, torch.nn.parallel.DistributedDataParallel),
            "iteration": wf.parser.get_parsed_content("train#trainer").state.iteration,
            "weights": digest.hexdigest(),
            "indices": [int(i) for i in wf.parser.get_parsed_content("train#sampler")]}


def run_forked_ranks(bundle: str, overrides: dict, output_dir: Path, workdir: Path, timeout: float = 240) -> list[dict]:
    """``train.yaml`` + ``multi_gpu.yaml`` of ``bundle`` on 2 gloo ranks forked from this process (the default-suite
    stand-in for :func:`run_torchrun`: no interpreter start-up). Per rank: whether the network is DDP-wrapped, the
    iterations trained, a digest of the trained parameters and the sampler's last indices."""
    from tests.forked_ranks import run_ranks

    return run_ranks(_bundle_rank, workdir, bundle, overrides, str(output_dir), timeout=timeout)


def assert_ranks_agree(ranks: list[dict], iterations: int, disjoint: bool = True) -> None:
    """Both ranks ran DDP for ``iterations`` steps on different data and ended with the same parameters."""
    assert len(ranks) == 2 and all(r["ddp"] for r in ranks), "the network is not DDP-wrapped"
    assert [r["iteration"] for r in ranks] == [iterations] * 2
    assert ranks[0]["indices"] != ranks[1]["indices"], "both ranks drew the same items"
    if disjoint:
        assert not set(ranks[0]["indices"]) & set(ranks[1]["indices"]), "an item on both ranks"
    assert ranks[0]["weights"] == ranks[1]["weights"], "the ranks' weights diverged (gradients not all-reduced)"


@pytest.fixture(scope="session")
def micle_run(tmp_path_factory):
    """One tiny MICLe epoch through the Python API (shared by several tests)."""
    out = tmp_path_factory.mktemp("micle_run")
    wf = run_workflow("micle_pretrain", output_dir=str(out), **TINY_MICLE)
    return wf, out


@pytest.fixture(scope="session")
def mae_run(tmp_path_factory):
    """One tiny Swin-MAE epoch on mixed X-ray + US through the Python API (shared by several tests)."""
    out = tmp_path_factory.mktemp("mae_run")
    wf = run_workflow("mae_pretrain", output_dir=str(out), **TINY_MAE)
    return wf, out


def assert_typo_refused(bundle: str, typo: str, correct: str, value=1) -> None:
    """An override key with a typo stops ``initialize`` with a ``BundleConfigError`` suggesting ``correct``."""
    from monai_ssl.bundle import BundleConfigError

    wf = make_workflow(bundle, **{typo: value})
    with pytest.raises(RuntimeError) as err:
        wf.initialize()
    found = [e for e in error_chain(err.value) if isinstance(e, BundleConfigError)]
    assert found and f"'{typo}' (did you mean '{correct}'?)" in str(found[0])


def assert_missing_paths_named(bundle: str, tmp_path: Path,
                               keys: tuple[str, ...] = ("pretrained_ckpt", "dataset_dir", "datalist")) -> None:
    """Each path key pointing nowhere stops ``initialize`` with a ``FileNotFoundError`` naming the key and path."""
    for key in keys:
        missing = tmp_path / "nowhere" / key
        wf = make_workflow(bundle, **{key: str(missing)})
        with pytest.raises(Exception) as err:
            wf.initialize()
        msgs = [str(e) for e in error_chain(err.value) if isinstance(e, FileNotFoundError)]
        assert msgs and f"config key '{key}'" in msgs[0] and str(missing) in msgs[0], key
