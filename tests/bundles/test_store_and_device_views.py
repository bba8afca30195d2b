"""micle_pretrain and mae_pretrain trained from an image store with views made on the device (views_on: device);
the default (views_on: loader) keeps the per-sample loader views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .conftest import TINY_MAE, TINY_MICLE, TINY_VIT, error_chain, make_workflow, run_workflow

pytest.importorskip("lmdb")


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, data_dir):
    """12 shipped chest X-rays written as DICOMs (4 patients) and converted to a 48-px X-ray store."""
    from monai_ssl.data.store import convert_to_store
    from monai_ssl.utils.dicom_write import write_dicom_archive

    root = tmp_path_factory.mktemp("bundle_store")
    d = np.load(data_dir / "covid_cxr_256.npz")
    ids = [f"p{i // 3}" for i in range(12)]
    write_dicom_archive(root / "dicom", d["images"][:12].astype(np.float32) / 255.0, ids)
    convert_to_store(root / "dicom", root / "store", preset="xray", spatial_size=48, progress=False)
    return root / "store"


def test_micle_from_store_with_device_views(tiny_store, tmp_path):
    from monai_ssl.engines import DeviceViews

    wf = run_workflow("micle_pretrain", output_dir=str(tmp_path), store=str(tiny_store), views_on="device",
                      **{**TINY_MICLE, "data_limit": None, "batch_size": 2})
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert isinstance(trainer.prepare_batch, DeviceViews) and trainer.state.iteration == 2
    assert torch.isfinite(trainer.state.output["loss"])
    dataset = wf.parser.get_parsed_content("train#dataset")
    assert len(dataset) == 4 and dataset[0]["image_view_0"].shape == (1, 32, 32)  # un-augmented, resized
    assert (tmp_path / "encoder.pt").is_file()


def test_mae_from_store_with_device_views(tiny_store, tmp_path):
    wf = run_workflow("mae_pretrain", output_dir=str(tmp_path), store=str(tiny_store), views_on="device",
                      modalities=["xray"], network_name="vit", **{**TINY_MAE, **TINY_VIT})
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 2 and torch.isfinite(trainer.state.output["loss"])
    item = wf.parser.get_parsed_content("train#dataset")[0]
    assert item["image"].shape == (1, 48, 48)  # the store's images: no loader crop
    batch = trainer.prepare_batch({"image": item["image"][None].repeat(2, 1, 1, 1)}, torch.device("cpu"))
    assert batch["image"].shape == (2, 1, 64, 64)


def test_default_views_stay_in_the_loader():
    from monai_ssl.engines import prepare_ssl_batch

    for bundle in ("micle_pretrain", "mae_pretrain"):
        wf = make_workflow(bundle)
        wf.initialize()
        assert wf.parser.get_parsed_content("train#prepare_batch") is prepare_ssl_batch


def test_unknown_views_on_names_the_key(tmp_path):
    wf = make_workflow("micle_pretrain", views_on="gpu", output_dir=str(tmp_path))
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("train#prepare_batch")
    assert any("views_on" in str(e) and "'device'" in str(e) for e in error_chain(err.value))


@pytest.mark.parametrize("bundle", ["micle_pretrain", "mae_pretrain"])
def test_device_views_from_the_shipped_data(bundle, tmp_path):
    tiny = {**TINY_MICLE} if bundle == "micle_pretrain" else {**TINY_MAE, **TINY_VIT, "network_name": "vit"}
    wf = run_workflow(bundle, output_dir=str(tmp_path), views_on="device", **tiny)
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 2 and torch.isfinite(trainer.state.output["loss"])
