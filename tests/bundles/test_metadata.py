"""Every bundle's metadata.json passes monai.bundle.verify_metadata offline against the shipped schema."""

from __future__ import annotations

import json
import socket

import pytest

from .conftest import BUNDLES, SCHEMA, SCHEMA_MD5

BUNDLE_NAMES = sorted(p.parent.parent.name for p in BUNDLES.glob("*/configs/metadata.json"))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_verify_metadata_offline(name, no_network):
    from monai.bundle import verify_metadata

    meta = BUNDLES / name / "configs" / "metadata.json"
    verify_metadata(meta_file=str(meta), filepath=str(SCHEMA), hash_val=SCHEMA_MD5)
    content = json.loads(meta.read_text())
    assert content["version"] in content["changelog"]
    assert (BUNDLES / name / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert (BUNDLES / name / "docs" / "README.md").is_file()


def test_schema_rejects_incomplete_metadata(tmp_path, no_network):
    from monai.bundle import verify_metadata

    content = json.loads((BUNDLES / "micle_pretrain" / "configs" / "metadata.json").read_text())
    del content["network_data_format"]["inputs"]["image"]["num_channels"]
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="num_channels"):
        verify_metadata(meta_file=str(bad), filepath=str(SCHEMA), hash_val=SCHEMA_MD5)


def test_schema_hash_is_checked(tmp_path, no_network):
    """A tampered schema file is not silently used (MONAI then tries to download it: refused offline)."""
    from monai.bundle import verify_metadata

    tampered = tmp_path / "schema.json"
    tampered.write_text(SCHEMA.read_text().replace('"numpy_version",', ""))
    with pytest.raises(Exception, match="hash check"):
        verify_metadata(meta_file=str(BUNDLES / "micle_pretrain" / "configs" / "metadata.json"),
                        filepath=str(tampered), hash_val=SCHEMA_MD5)


def test_declared_io_matches_the_micle_network():
    """verify_net_in_out-style check: the metadata's input shape gives the declared projection size."""
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "micle_pretrain" / "configs" / "train.yaml"))
    parser.read_meta(str(BUNDLES / "micle_pretrain" / "configs" / "metadata.json"))
    parser["bundle_root"] = str(BUNDLES / "micle_pretrain")
    fmt = parser["_meta_"]["network_data_format"]
    net = parser.get_parsed_content("network_def").eval()
    x = torch.rand(2, fmt["inputs"]["image"]["num_channels"], *fmt["inputs"]["image"]["spatial_shape"])
    with torch.no_grad():
        out = net(x)
    assert out["projection"].shape == (2, fmt["outputs"]["projection"]["num_channels"])
