from __future__ import annotations

import pytest
from ignite.engine import Events

from monai_ssl.handlers.pair_schedule import PairModeSchedule
from tests.engines.helpers import make_trainer


def test_switches_from_simclr_to_micle():
    trainer, model, opt, sched, ds = make_trainer(max_epochs=3)
    PairModeSchedule(ds, micle_from_epoch=3).attach(trainer)
    seen = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append((e.state.epoch, ds.pair_mode)))
    trainer.run()
    assert {m for e, m in seen if e < 3} == {"simclr"} and {m for e, m in seen if e == 3} == {"micle"}
    with pytest.raises(ValueError):
        PairModeSchedule(ds, 0)
