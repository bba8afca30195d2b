"""Name the input file when a preprocessing chain fails on it."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from monai.transforms import MapTransform, Randomizable

from ..utils.errors import describe_error

__all__ = ["ReportFileErrorsd", "ReportFileErrorsD", "ReportFileErrorsDict"]


class ReportFileErrorsd(MapTransform):
    """Run ``transform`` on the item; if it fails, raise ``RuntimeError("<stage>: cannot <action> <file>:
    <Type>: <reason>")`` naming the file (``data[key]`` before the transform ran) and the first informative
    cause, instead of MONAI's ``applying transform <... object at 0x...>`` wrapper.

    Args:
        transform: a dictionary transform (or ``Compose``) that loads and preprocesses ``key``.
        key: the key holding the file path.
        action: what failed, for the message (``"read or preprocess"``).
        stage: the message prefix (``"inference"``).
    """

    def __init__(self, transform: Callable[[Mapping], Any], key: Hashable = "image",
                 action: str = "read or preprocess", stage: str = "inference") -> None:
        super().__init__(keys=key)
        self.transform, self.key, self.action, self.stage = transform, key, action, stage

    def set_random_state(self, seed: int | None = None, state: Any = None) -> ReportFileErrorsd:
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping) -> Any:
        source = data.get(self.key)
        try:
            return self.transform(data)
        except Exception as err:
            raise RuntimeError(f"{self.stage}: cannot {self.action} {source}: {describe_error(err)}") from err


ReportFileErrorsD = ReportFileErrorsDict = ReportFileErrorsd
