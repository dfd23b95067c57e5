"""The Correct widget's "Intensity-limited painting" section: a thin adapter over :mod:`...core.edit.masks`.

A brush and a fill that change only voxels whose value in the chosen sequence lies in the intensity
window (ITK-SNAP's and 3D Slicer's masked painting), with the layer's selected label and brush size.
The window is typed, or picked from the voxel under a click (its value plus or minus 10 % of the
range). The three click tools (pick the window, masked brush, masked fill) are armed by checkable
buttons, click modes of :class:`CorrectTools`; their public entry points (:meth:`pick_window`,
:meth:`masked_brush_stroke`, :meth:`masked_fill_at`) take data coordinates, so they can be driven
without a mouse. A brush stroke (many dabs) and a fill are each ONE undo step of the corrected layer.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import QComboBox
from superqt import QCollapsible

from ...core.case import MODALITIES, MODALITY_NAMES
from ...core.edit import EditError, masks
from ..layers import source_of
from ._strokes import MaskedStroke
from .correct_tools import _group, _row, _spin

if TYPE_CHECKING:
    from .correct_tools import CorrectTools


class MaskedSection:
    """The "Intensity-limited painting" section of :class:`CorrectTools` (``tools.masked``).

    Public controls: ``mask_sequence``, ``mask_low``, ``mask_high``, ``mask_pick_button``,
    ``mask_brush_button``, ``mask_fill_button``; ``group`` is the collapsible section. ``buttons``
    maps the section's click modes (``window``, ``brush``, ``fill``) to their buttons.

    Parameters
    ----------
    tools
        The correction tools whose viewer, target, spacing, slicing axis, click mode and ``apply`` are used.
    """

    def __init__(self, tools: CorrectTools) -> None:
        self.tools = tools
        self.group = self._build()
        self.buttons = {"window": self.mask_pick_button, "brush": self.mask_brush_button,
                        "fill": self.mask_fill_button}

    def _build(self) -> QCollapsible:
        self.mask_sequence = QComboBox()
        for m in MODALITIES:
            self.mask_sequence.addItem(MODALITY_NAMES[m], m)
        self.mask_low = _spin(-1e6, 1e6, 0.0, "", 10)
        self.mask_high = _spin(-1e6, 1e6, 1e6, "", 10)
        self.mask_pick_button = self.tools._arm_button("Pick window from a voxel", "window")
        self.mask_brush_button = self.tools._arm_button("Masked brush", "brush")
        self.mask_fill_button = self.tools._arm_button("Masked fill", "fill")
        return _group("Intensity-limited painting (selected label, brush size)", ("Sequence", self.mask_sequence),
                      ("Window", _row(self.mask_low, self.mask_high)), self.mask_pick_button,
                      _row(self.mask_brush_button, self.mask_fill_button))

    def window(self) -> masks.Window:
        """The intensity window ``(low, high)`` of the spin boxes."""
        return (self.mask_low.value(), self.mask_high.value())

    def mask_image(self, layer: Labels, modality: str | None = None) -> np.ndarray:
        """The chosen sequence (or ``modality``) of the target's case, on the target's grid."""
        m, src = modality or self.mask_sequence.currentData(), source_of(layer)
        for ly in self.tools.viewer.layers:
            s = source_of(ly)
            if isinstance(ly, Image) and s is not None and s.modality == m and (
                    src is None or s.case_id == src.case_id):
                if tuple(ly.data.shape) != tuple(layer.data.shape):
                    break
                return np.asarray(ly.data)
        raise EditError(f"no {MODALITY_NAMES[m]} image of this case on the layer's grid is open")

    def pick_window(self, point: Sequence[float]) -> masks.Window | None:
        """Set the window from the voxel under the data point (its value plus or minus 10 % of the range)."""
        tools = self.tools
        layer = tools.layer()
        if layer is None:
            return None
        try:
            lo, hi = masks.window_at(self.mask_image(layer), point)
        except EditError as exc:
            tools._say(f"intensity window: {exc}", warn=True)
            return None
        self.mask_low.setValue(lo)
        self.mask_high.setValue(hi)
        tools.status.setText(f"intensity window [{lo:.4g}, {hi:.4g}]")
        return (lo, hi)

    def begin_masked_stroke(self) -> MaskedStroke | None:
        """Start a masked brush stroke with the layer's label and brush size (None if refused)."""
        tools = self.tools
        layer = tools._editable_layer()
        if layer is None:
            return None
        sp = tools.spacing(layer)
        axis = tools.slicing_axis() if layer.n_edit_dimensions == 2 else None
        plane = [s for i, s in enumerate(sp) if i != (axis if axis is not None else 0)]
        radius = max(float(layer.brush_size) / 2.0, 0.5) * min(plane)
        try:
            return MaskedStroke(layer, self.mask_image(layer), radius, int(layer.selected_label), axis, sp,
                                self.window())
        except EditError as exc:
            tools._say(f"masked brush: {exc}", warn=True)
            return None

    def masked_brush_stroke(self, points: Sequence[Sequence[float]]) -> int:
        """Paint a stroke through data points with the layer's brush, limited to the window: ONE undo step."""
        stroke = self.begin_masked_stroke()
        if stroke is None:
            return 0
        for p in points:
            stroke.dab(p)
        return self._end_stroke(stroke)

    def brush_drag(self, layer: Labels, point: Sequence[float], event: Any) -> Generator[None, None, None]:
        """The masked brush under a mouse drag (a napari drag callback) from the data point: ONE undo step."""
        stroke = self.begin_masked_stroke()
        if stroke is None:
            return
        stroke.dab(point)
        yield
        while event.type == "mouse_move":
            stroke.dab(tuple(float(v) for v in layer.world_to_data(event.position)))
            yield
        self._end_stroke(stroke)

    def _end_stroke(self, stroke: MaskedStroke) -> int:
        n = stroke.end()
        self.tools.status.setText(f"masked brush: {n} voxels changed")
        return n

    def masked_fill_at(self, point: Sequence[float]) -> int:
        """Fill the region under the data point with the selected label, limited to the window."""
        tools = self.tools
        layer = tools.layer()
        if layer is None:
            return tools.apply("masked fill", lambda a: a)

        def fn(a: np.ndarray) -> np.ndarray:
            axis = tools.slicing_axis() if layer.n_edit_dimensions == 2 else None
            return masks.masked_fill(a, self.mask_image(layer), point, int(layer.selected_label), self.window(), axis)

        return tools.apply("masked fill", fn)
