"""An inferer that runs the network only on the items of a batch whose preprocessing succeeded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer, SimpleInferer

__all__ = ["SkipFailedInferer"]


class SkipFailedInferer(Inferer):
    """Run ``inferer`` on the rows of ``inputs`` flagged ``ok`` and return NaN for the others.

    An inference run over a folder marks the files it cannot use (``ReportFileErrorsd(on_error="mark")`` puts a
    placeholder image and ``ok=False`` in the item); MONAI's ``PrepareBatchExtraInput(extra_keys={"ok": "ok"})``
    hands the batch's ``ok`` flags to this inferer as a keyword argument. Failed rows never reach the network.

    Args:
        inferer: the inferer of the good rows (default ``SimpleInferer``).

    Call args:
        inputs: ``(B, C, *spatial)`` batch.
        network: the model.
        ok: ``(B,)`` bool flags; None runs every row.

    Returns:
        ``(B, *out)`` predictions, NaN in the rows of failed items. A batch with no good item gives the output
        shape of the last good batch, or ``(B, 0)`` before any.
    """

    def __init__(self, inferer: Inferer | None = None) -> None:
        super().__init__()
        self.inferer = inferer if inferer is not None else SimpleInferer()
        self._out_shape: tuple[int, ...] | None = None

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 ok: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if ok is None:
            return self.inferer(inputs, network, *args, **kwargs)
        rows = torch.as_tensor(ok, device=inputs.device).reshape(-1).bool()
        if rows.numel() != inputs.shape[0]:
            raise ValueError(f"SkipFailedInferer: {rows.numel()} ok flags for a batch of {inputs.shape[0]}")
        if bool(rows.all()):
            out = self.inferer(inputs, network, *args, **kwargs)
            self._out_shape = tuple(out.shape[1:])
            return out
        if bool(rows.any()):
            good = self.inferer(inputs[rows], network, *args, **kwargs)
            self._out_shape = tuple(good.shape[1:])
            out = good.new_full((inputs.shape[0], *self._out_shape), float("nan"))
            out[rows] = good
            return out
        shape = self._out_shape if self._out_shape is not None else (0,)
        return inputs.new_full((inputs.shape[0], *shape), float("nan"))
