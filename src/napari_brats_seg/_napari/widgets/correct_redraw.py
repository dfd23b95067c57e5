"""The Correct widget's "Redraw on a few slices" section: a thin adapter over :mod:`...core.edit.redraw`.

What ITK-SNAP and 3D Slicer users do when a prediction's border is wrong over many slices: draw the
true outline (closed contours, one drag around each part; the tool fills their holes) on a few
slices of a scratch *outline layer*, and the region is replaced, on every slice from the first to
the last outlined one, by the interpolation between the outlined slices.

Each redraw is ONE undo step of the corrected layer, written through :meth:`CorrectTools.apply`
(so autosave and the undo history work as for every tool). With *Redraw again as outlines are
added*, each stroke into the outline layer re-applies shortly after; a re-apply replaces the
previous redraw (it starts from the labels before it while the layer still holds its result)
rather than compounding it, as the grow from seeds does. The work is numpy/scipy on the outlined
slab, so it runs on the GUI thread like *Fill between slices*.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtGui import QStandardItemModel
from qtpy.QtWidgets import QCheckBox, QComboBox, QPushButton
from superqt import QCollapsible

from ...core import labels as lab
from ...core.edit import EditError, redraw
from ...core.edit._common import Target, target_classes, target_name
from ..layers import unwrap
from ._scratch import Applied, add_scratch_layer, reapply_start, single_shot_timer
from .correct_tools import _class_combo, _group, _row

if TYPE_CHECKING:
    from .correct_tools import CorrectTools

#: What the outlines may trace: display name -> region or class.
REGIONS: dict[str, Target] = {
    **{f"{lab.REGION_NAMES[r]} ({r})": r for r in lab.REGIONS},
    **{lab.CLASS_NAMES[c]: c for c in (lab.NECROTIC, lab.EDEMA)},   # the enhancing class is the ET region
}


#: The outlines' colour (magenta: none of the tumour classes' colours).
OUTLINE_RGBA = np.array([1.0, 0.0, 1.0, 1.0])
#: Delay between an outline stroke and the automatic re-apply (ms).
AUTO_DELAY_MS = 300


class RedrawSection:
    """The "Redraw on a few slices" section of :class:`CorrectTools` (``tools.redraw``).

    Public controls: ``outline_button``, ``region_combo``, ``fill_combo``, ``redraw_button``,
    ``auto_check``; ``group`` is the collapsible section, ``outline_layer`` the scratch layer.

    Parameters
    ----------
    tools
        The correction tools whose target, spacing, slicing axis and ``apply`` are used.
    """

    def __init__(self, tools: CorrectTools) -> None:
        self.tools = tools
        self.outline_layer: Labels | None = None
        #: The last redraw: (layer, outline layer, labels before it, labels after it).
        self._done: Applied | None = None
        self.timer = single_shot_timer(tools, AUTO_DELAY_MS, self.redraw)
        self.group = self._build()

    def _build(self) -> QCollapsible:
        self.outline_button = QPushButton("New outline layer")
        self.outline_button.setToolTip("A scratch layer to draw the region's true border in, on a few slices: "
                                       "one closed drag around each part (holes are filled)")
        self.outline_button.clicked.connect(self.make_outline_layer)
        self.region_combo = QComboBox()
        for name, region in REGIONS.items():
            self.region_combo.addItem(name, region)
        self.fill_combo = _class_combo()
        self.fill_combo.setToolTip("The class voxels entering the region get (classes of the region already "
                                   "there are kept)")
        self.region_combo.currentIndexChanged.connect(self._region_changed)
        self.redraw_button = QPushButton("Redraw")
        self.redraw_button.clicked.connect(self.redraw)
        self.clear_button = QPushButton("Clear outlines")
        self.clear_button.setToolTip("Empty the outline layer to outline another region (the labels stay)")
        self.clear_button.clicked.connect(self.clear_outlines)
        self.auto_check = QCheckBox("Redraw again as outlines are added")
        self.auto_check.setChecked(True)
        self._region_changed()
        return _group("Redraw on a few slices (outlines, interpolated between)", self.outline_button,
                      ("Region", self.region_combo), ("New voxels become", self.fill_combo),
                      _row(self.redraw_button, self.clear_button), self.auto_check)

    def _region_changed(self, *_: Any) -> None:
        """Offer only the region's classes as the new voxels' class, its default chosen."""
        region = self.region_combo.currentData()
        classes = target_classes(region)
        model = self.fill_combo.model()
        if isinstance(model, QStandardItemModel):
            for i in range(self.fill_combo.count()):
                model.item(i).setEnabled(self.fill_combo.itemData(i) in classes)
        self.fill_combo.setCurrentIndex(self.fill_combo.findData(redraw.default_fill(region)))

    def region(self) -> Target:
        """The region (``"WT"``, ``"TC"``, ``"ET"``) or class the outlines trace."""
        return self.region_combo.currentData()

    # -- the outline layer -------------------------------------------------------------
    def make_outline_layer(self) -> Labels | None:
        """Add (or return) the outline layer of the target and select it to paint outlines into."""
        tools = self.tools
        target = tools.target_or_say()
        if target is None:
            return None
        layer = self.outline_layer
        if layer is None or layer not in tools.viewer.layers or tuple(layer.data.shape) != tuple(target.data.shape):
            layer = add_scratch_layer(tools.viewer, target, "outlines", DirectLabelColormap(
                color_dict={None: np.zeros(4), 0: np.zeros(4), 1: OUTLINE_RGBA}))   # magenta: no class's colour
            layer.events.paint.connect(self._on_outline_paint)
            self.outline_layer = layer
        layer.selected_label = 1
        layer.brush_size = 3
        layer.mode = "paint"
        if tools.click_mode is not None:
            tools.arm(None)                  # a drag paints outlines, not a click tool's action
        tools.viewer.layers.selection.active = layer
        tools.status.setText("outline layer: draw the region's true border (one closed drag around each part) "
                             "on a few slices, then Redraw")
        if tools._set_layer is not None:
            tools._set_layer(target)
        return layer

    def clear_outlines(self) -> None:
        """Empty the outline layer (the labels keep the last redraw; the next one starts from them)."""
        self.timer.stop()
        if self.outline_layer is not None and self.outline_layer in self.tools.viewer.layers:
            self.outline_layer.data = np.zeros_like(self.outline_layer.data)
        self._done = None
        self.tools.status.setText("outlines cleared: draw the next region's outline")

    def _on_outline_paint(self, _event: Any = None) -> None:
        if self.auto_check.isChecked():
            self.timer.start()

    # -- redraw --------------------------------------------------------------------------
    def redraw(self) -> int:
        """Replace the region by the outlines' interpolated extent: ONE undo step of the target.

        Returns the number of changed voxels (0 when refused).
        """
        tools, outlines = self.tools, self.outline_layer
        layer, region, fill = tools.layer(), self.region(), self.fill_combo.currentData()
        axis = tools.slicing_axis()
        sp = tools.spacing(layer) if layer is not None else None
        made: list[np.ndarray] = []

        def fn(a: np.ndarray) -> np.ndarray:
            if outlines is None or outlines not in tools.viewer.layers:
                raise EditError("draw the outlines first (New outline layer)")
            if unwrap(outlines) is unwrap(layer):
                raise EditError("the outline layer is the corrected layer: pick the layer to correct")
            start = reapply_start(self._done, layer, self.outline_layer)   # a re-apply replaces the last
            new = redraw.redraw(start, np.asarray(outlines.data), region, fill, axis=axis, spacing=sp)
            made.extend((start, new))
            return new

        n = tools.apply(f"redraw the {target_name(region)}", fn)
        if made and layer is not None and outlines is not None:
            self._done = (layer, outlines, made[0], np.array(layer.data, copy=True))
        return n
