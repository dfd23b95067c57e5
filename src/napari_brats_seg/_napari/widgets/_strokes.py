"""An intensity-limited brush stroke on a labels layer: many dabs, ONE undo step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.edit import EditError, masks


@dataclass
class MaskedStroke:
    """A stroke in progress: :meth:`dab` paints at once, :meth:`end` commits the undo step.

    The dabs are written through ``layer.data_setitem`` inside the layer's ``block_history()``
    (entered here, left in :meth:`end`), so the whole stroke is one step of napari's history.
    """

    layer: Any
    image: np.ndarray
    radius_mm: float
    cls: int
    axis: int | None
    spacing: tuple[float, float, float]
    window: masks.Window
    changed: int = 0
    _history: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        masks.in_window(self.image[:1, :1, :1], self.window)   # a reversed window raises here
        self._history = self.layer.block_history()
        self._history.__enter__()

    def dab(self, point: Sequence[float]) -> None:
        """Paint the brush at a data point, limited to the window (nothing outside the volume)."""
        try:
            idx = masks.brush_indices(self.image, point, self.radius_mm, self.window, self.spacing, self.axis)
        except EditError:
            return
        self.changed += int(np.count_nonzero(np.asarray(self.layer.data)[idx] != self.cls))
        self.layer.data_setitem(idx, self.cls)

    def end(self) -> int:
        """Commit the stroke as one undo step; returns how many voxels it changed."""
        self._history.__exit__(None, None, None)
        return self.changed
