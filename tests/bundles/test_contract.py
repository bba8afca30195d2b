"""monai_ssl.bundle: a model's input contract beside its weights, and the last line of a failed bundle run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from monai_ssl.bundle import actionable_error, check_model_contract, contract_path, save_model_contract

from .conftest import REPO

CONTRACT = {"image_size": 64, "channels": 1, "class_names": ["other", "covid"], "domain": {"Modality": ["CR"]},
            "preprocessing": "XRayPresetd"}


def test_contract_round_trip_and_mismatch_names_both_sides(tmp_path):
    model = tmp_path / "model.pt"
    path = save_model_contract(model, {**CONTRACT, "class_names": ("other", "covid")})
    assert path == contract_path(model) == tmp_path / "model.contract.json"
    saved = json.loads(path.read_text())
    assert saved["format"] == "monai_ssl.model_contract/1" and saved["class_names"] == ["other", "covid"]
    assert check_model_contract(model, CONTRACT)["domain"] == {"Modality": ["CR"]}
    with pytest.raises(ValueError) as err:
        check_model_contract(model, {**CONTRACT, "image_size": 128})
    assert str(err.value) == (f"config key 'image_size': this run uses 128 but model.pt was trained with 64 ({path}); "
                              f"pass --image_size 64")
    with pytest.raises(ValueError, match=r"'network_def#n_input_channels': this run uses 3 .* trained with 1"):
        check_model_contract(model, {**CONTRACT, "channels": 3})
    with pytest.raises(ValueError, match=r"'class_names'.*\['a', 'b'\].*pass --class_names \"\['other', 'covid'\]\""):
        check_model_contract(model, {**CONTRACT, "class_names": ["a", "b"]})
    with pytest.raises(ValueError, match="missing \\['channels'\\]"):
        save_model_contract(model, {"image_size": 1, "class_names": []})


def test_weights_without_a_contract_use_the_config(tmp_path, caplog):
    got = check_model_contract(tmp_path / "old.pt", CONTRACT)
    assert got["image_size"] == 64 and got["source"] == "config (no contract file)"
    assert "no old.contract.json" in caplog.text
    (tmp_path / "bad.contract.json").write_text("{}")
    with pytest.raises(ValueError, match="not a model contract"):
        check_model_contract(tmp_path / "bad.pt", CONTRACT)


def test_actionable_error_is_the_monai_ssl_message():
    from monai_ssl.utils.config import require_path

    try:
        try:
            require_path("/no/such/model.pt", "ckpt_path", "file")
        except FileNotFoundError as e:
            raise RuntimeError("Failed to evaluate ConfigExpression") from e
    except RuntimeError as wrapped:
        root = actionable_error(wrapped)
        assert isinstance(root, FileNotFoundError) and "config key 'ckpt_path'" in str(root)
    plain = ValueError("x")
    assert actionable_error(plain) is plain


def test_excepthook_prints_the_message_last():
    code = ("import sys; from monai_ssl.bundle import install_last_line_hook; install_last_line_hook(force=True)\n"
            "from monai_ssl.utils.config import require_path\n"
            "try:\n    require_path('/no/such/model.pt', 'ckpt_path', 'file')\n"
            "except FileNotFoundError as e:\n    raise RuntimeError('Failed to evaluate ConfigExpression') from e\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "RuntimeError: Failed to evaluate ConfigExpression" in lines
    assert lines[-1].startswith("FileNotFoundError: config key 'ckpt_path'") and "/no/such/model.pt" in lines[-1]
