"""Correct widget: paint tools and clean-ups for a labels layer, each clean-up one undo step.

- One button per class (necrotic core, edema, enhancing tumour, eraser) selects the label and the
  paint tool; a brush-size box and a *3D brush* toggle (``n_edit_dimensions`` 3 or 2).
- *Remove small islands* (whole-tumour components under N voxels), *Fill holes (slice by slice)* of
  the selected class, *Nest ET in TC in WT* (:func:`..edits.nest_regions`); *Undo* calls the layer's
  own undo, which also undoes brush strokes.
- Every edit is autosaved to a recovery file (:mod:`..autosave`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core import labels as lab
from .. import edits
from ..autosave import AutosaveManager
from ._qt import LayerCombo

#: The paint buttons: internal class -> label.
PAINT_CLASSES: dict[int, str] = {
    lab.NECROTIC: f"{lab.CLASS_NAMES[lab.NECROTIC]} (1)",
    lab.EDEMA: f"{lab.CLASS_NAMES[lab.EDEMA]} (2)",
    lab.ENHANCING: f"{lab.CLASS_NAMES[lab.ENHANCING]} (3)",
    lab.BACKGROUND: "eraser (0)",
}


def _css(rgba: tuple[float, ...]) -> str:
    r, g, b = (int(255 * c) for c in rgba[:3])
    text = "black" if (0.3 * r + 0.6 * g + 0.1 * b) > 140 else "white"
    return f"background-color: rgb({r},{g},{b}); color: {text};"


class CorrectWidget(QWidget):
    """Dock widget with the correction tools.

    Public controls: ``layer_combo``, ``paint_buttons`` (internal class -> button), ``brush_size``,
    ``brush_3d``, ``island_size``, ``islands_button``, ``fill_button``, ``nest_button``,
    ``undo_button``, ``status``.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.autosave = AutosaveManager.for_viewer(napari_viewer)
        self.layer_combo = LayerCombo(napari_viewer, Labels)

        self.paint_buttons: dict[int, QPushButton] = {}
        grid = QGridLayout()
        for i, (cls, text) in enumerate(PAINT_CLASSES.items()):
            btn = QPushButton(text)
            if cls != lab.BACKGROUND:
                btn.setStyleSheet(_css(lab.CLASS_COLOURS[cls]))
            btn.clicked.connect(lambda _=False, c=cls: self.pick_label(c))
            self.paint_buttons[cls] = btn
            grid.addWidget(btn, i // 2, i % 2)

        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 100)
        self.brush_size.setValue(5)
        self.brush_size.valueChanged.connect(self._apply_brush)
        self.brush_3d = QCheckBox("3D brush (paint through neighbouring slices)")
        self.brush_3d.toggled.connect(self._apply_brush)
        self.island_size = QSpinBox()
        self.island_size.setRange(1, 1_000_000)
        self.island_size.setValue(100)
        self.island_size.setSuffix(" voxels")
        self.islands_button = QPushButton("Remove small islands")
        self.fill_button = QPushButton("Fill holes (slice by slice)")
        self.nest_button = QPushButton("Nest ET in TC in WT")
        self.undo_button = QPushButton("Undo")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Labels layer", self.layer_combo)
        form.addRow("Brush size", self.brush_size)
        form.addRow(self.brush_3d)
        islands = QHBoxLayout()
        islands.addWidget(self.island_size)
        islands.addWidget(self.islands_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(QLabel("Paint"))
        lay.addLayout(grid)
        lay.addWidget(QLabel("Clean up (each is one undo step)"))
        lay.addLayout(islands)
        lay.addWidget(self.fill_button)
        lay.addWidget(self.nest_button)
        lay.addWidget(self.undo_button)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.islands_button.clicked.connect(
            lambda: self.run_edit("remove small islands",
                                  lambda a: edits.remove_small_islands(a, self.island_size.value())))
        self.fill_button.clicked.connect(self._fill_holes)
        self.nest_button.clicked.connect(lambda: self.run_edit("nest regions", edits.nest_regions))
        self.undo_button.clicked.connect(self.undo)

    def layer(self) -> Labels | None:
        """The labels layer being corrected."""
        return self.layer_combo.layer()

    def pick_label(self, cls: int) -> None:
        """Select class ``cls`` for painting (0 erases) and switch the layer to the paint tool."""
        layer = self.layer()
        if layer is None:
            return
        layer.selected_label = int(cls)
        layer.mode = "paint" if cls != lab.BACKGROUND else "erase"
        self._apply_brush()
        self.viewer.layers.selection.active = layer

    def _apply_brush(self, *_: Any) -> None:
        layer = self.layer()
        if layer is None:
            return
        layer.brush_size = self.brush_size.value()
        layer.n_edit_dimensions = 3 if self.brush_3d.isChecked() else 2

    def _fill_holes(self) -> None:
        layer = self.layer()
        cls = int(layer.selected_label) if layer is not None else lab.BACKGROUND
        if cls not in (lab.NECROTIC, lab.EDEMA, lab.ENHANCING):
            self.status.setText("Pick the class to fill first.")
            return
        self.run_edit(f"fill holes of {lab.CLASS_NAMES[cls]}", lambda a: edits.fill_holes_slicewise(a, cls))

    def run_edit(self, what: str, fn: Callable[[np.ndarray], np.ndarray]) -> int:
        """Apply ``fn`` to the layer's data as one undoable step; returns the changed voxel count."""
        layer = self.layer()
        if layer is None:
            self.status.setText("No labels layer.")
            return 0
        n = edits.apply_edit(layer, fn(np.asarray(layer.data)))
        self.status.setText(f"{what}: {n} voxels changed")
        show_info(f"{what}: {n} voxels changed")
        return n

    def undo(self) -> None:
        """Undo the last edit of the layer (brush stroke, fill or clean-up)."""
        layer = self.layer()
        if layer is not None:
            layer.undo()
