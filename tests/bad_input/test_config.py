"""Bad bundle configs: a typo in an override key, a misspelt section (on the command line or in an extra config
file), a misspelt component argument, an unknown choice and missing data paths. MONAI alone would silently add
an unknown top-level override and train with the default; every case here must name the key and the fix.
"""

from __future__ import annotations

import pytest
from monai.bundle import ConfigWorkflow

from monai_ssl.bundle import BundleConfigError

from ..bundles.conftest import config_files, make_workflow
from .conftest import error_text

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(60)]

BUNDLES = ["micle_pretrain", "mae_pretrain", "classification"]


def _initialize_error(wf) -> str:
    with pytest.raises(Exception) as err:
        wf.initialize()
    return error_text(err.value)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_override_key_typo_is_refused_with_suggestion(bundle):
    text = _initialize_error(make_workflow(bundle, max_epoch=1, learning_rat=0.1))
    assert "BundleConfigError: unknown config key(s)" in text
    assert "'max_epoch' (did you mean 'max_epochs'?)" in text
    assert "'learning_rat' (did you mean 'learning_rate'?)" in text


@pytest.mark.parametrize("key, wrong, right", [("trian#handlers", "trian", "train"),
                                                ("train#dataloder#batch_size", "dataloder", "dataloader")])
def test_misspelt_section_in_override(key, wrong, right):
    """An override under a section that does not exist: MONAI cannot place it (the workflow is not even built) and
    says which part is wrong."""
    with pytest.raises(Exception) as err:
        make_workflow("micle_pretrain", **{key: 2}).initialize()
    text = error_text(err.value)
    assert f"By '{wrong}', did you mean '{right}'?" in text and f"query key: {wrong}" in text


def test_misspelt_section_in_an_extra_config_file(tmp_path):
    """A user's override file (outside the bundle) with a misspelt section: refused by name, not ignored."""
    extra = tmp_path / "my_overrides.yaml"
    extra.write_text("max_epochs: 1\ntrian:\n  handlers_by_name: {}\n")
    wf = ConfigWorkflow(config_file=[*config_files("micle_pretrain"), str(extra)], workflow_type="train",
                        logging_file=False)
    text = _initialize_error(wf)
    assert f"{BundleConfigError.__name__}: unknown config key(s)" in text
    assert "'trian' (did you mean 'train'?)" in text
    assert "'trian#handlers_by_name' (did you mean 'train#handlers_by_name'?)" in text
    assert "'max_epochs'" not in text.split("Known top-level keys")[0]  # the valid override is not flagged


def test_misspelt_component_argument_fails_when_built():
    """Keys inside a component are the component's arguments: a typo fails at construction naming it."""
    wf = make_workflow("micle_pretrain", **{"loss#temperatur": 0.2})
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("loss")
    text = error_text(err.value)
    assert "temperatur" in text and "unexpected keyword argument" in text


def test_unknown_choice_names_the_key_and_choices():
    wf = make_workflow("mae_pretrain", network_name="swim")
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("network_def")
    text = error_text(err.value)
    assert "config key 'network_name'" in text and "'swim'" in text and "swin" in text


@pytest.mark.parametrize("bundle", ["micle_pretrain", "mae_pretrain"])
def test_missing_dataset_dir_names_the_key(tmp_path, bundle):
    missing = tmp_path / "no_such_dir"
    text = _initialize_error(make_workflow(bundle, dataset_dir=str(missing)))
    assert "config key 'dataset_dir'" in text and str(missing) in text
