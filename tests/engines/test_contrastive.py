from __future__ import annotations

import pytest
import torch
from ignite.engine import Events

from monai_ssl.utils import SSLKeys

from .helpers import make_trainer


def test_trains_and_reports_outputs():
    trainer, model, *_ = make_trainer(max_epochs=2)
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    trainer.run()
    out = trainer.state.output
    assert trainer.state.epoch == 2 and trainer.state.iteration == 6
    assert out[SSLKeys.PROJECTION.value].shape == (16, 8) and out[SSLKeys.FEATURES.value].shape == (16, 16)
    assert not out[SSLKeys.LOSS.value].requires_grad
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_amp(dtype):
    trainer, *_ = make_trainer(max_epochs=1, amp=True, amp_dtype=dtype, grad_clip_norm=1.0)
    trainer.run()
    assert torch.isfinite(trainer.state.output["loss"])
    assert trainer.grad_scaler.is_enabled() == (dtype == torch.float16)


def test_missing_view_key_is_clear():
    trainer, *_ = make_trainer(max_epochs=1)
    with pytest.raises(KeyError, match="lacks view keys"):
        trainer.compute_loss(trainer, {"image_view_0": torch.zeros(2, 1, 16, 16)})


def test_group_ids_from_string_patient_ids():
    trainer, *_ = make_trainer(max_epochs=1)
    trainer.group_key = "patient_id"
    ids = trainer._group_ids({"patient_id": ["a", "b", "a"]}, torch.device("cpu"))
    assert ids[0] == ids[2] and ids[0] != ids[1]


def test_fp16_skipped_steps_warn():
    # on CPU the fp16 GradScaler's first steps overflow at scale 65536: a 3-step run skips all of them
    trainer, model, *_ = make_trainer(max_epochs=1, amp=True, amp_dtype=torch.float16)
    with pytest.warns(UserWarning, match=r"amp_dtype=float16: the GradScaler skipped 3 of 3 optimizer steps.*bfloat16"):
        trainer.run()
    assert trainer.skipped_steps == 3
